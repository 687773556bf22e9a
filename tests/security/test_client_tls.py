"""TLS to the database server cannot be sidestepped.

The rule (a host that is not this machine gets sslmode=verify-full unless the
settings say require or verify-ca; anything weaker is refused) holds on the
parameters psycopg finally receives, however the server is named: the URL's
host, host= or hostaddr= in its query string, several hosts, connect_args, a
profile written as a URL, or libpq's environment variables. A hostile or
careless setting is tried for each.

Connections that are really made go only to a small server on 127.0.0.1 (the
host *name* is what makes them remote, hostaddr keeps them on this machine).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from getmeds_desktop import config, db
from getmeds_desktop.backup import core
from getmeds_desktop.backup.core import BackupError
from getmeds_desktop.config import DatabaseTarget
from getmeds_desktop.errors import ConfigError, DatabaseUnavailable, GetMedsError
from getmeds_desktop.startup import Connector
from getmeds_desktop.sync import ChangeListener

SSL_REQUEST = (8).to_bytes(4, "big") + (80877103).to_bytes(4, "big")
PASSWORD = "correct horse battery"


@pytest.fixture(autouse=True)
def _clean_libpq_environment(monkeypatch):
    for var in ("PGHOST", "PGHOSTADDR", "PGSSLMODE", "PGSERVICE", "PGSERVICEFILE",
                "PGREQUIRESSL", "PGPORT"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def plain_server() -> Iterator[dict]:
    """A server on 127.0.0.1 that has no TLS: it answers an SSLRequest with 'N'
    and counts every start-up message a client then sends in clear."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    seen = {"ssl_requests": 0, "plain_startups": 0}
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                try:
                    while data := conn.recv(8):
                        if data == SSL_REQUEST:
                            seen["ssl_requests"] += 1
                            conn.sendall(b"N")
                        else:
                            seen["plain_startups"] += 1
                            break
                except OSError:
                    continue

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield {"port": listener.getsockname()[1], "seen": seen}
    stop.set()
    listener.close()
    thread.join(5)


# ------------------------------------------------------- refused before connecting

REFUSED = [
    # the server named in the query string, not in the URL's host
    "postgresql:///getmeds?host=db.example.org&sslmode=disable",
    "postgresql://localhost/getmeds?host=db.example.org&sslmode=prefer",
    # hostaddr: the name says localhost, the packets go elsewhere
    "postgresql://localhost/getmeds?hostaddr=192.0.2.7&sslmode=disable",
    "postgresql://127.0.0.1/getmeds?hostaddr=192.0.2.7&sslmode=allow",
    # several hosts: one remote one is enough
    "postgresql://localhost,db.example.org/getmeds?sslmode=disable",
    "postgresql:///getmeds?host=localhost&host=db.example.org&sslmode=prefer",
    "postgresql:///getmeds?host=localhost,localhost&hostaddr=127.0.0.1,192.0.2.7"
    "&sslmode=disable",
    # IPv6, and a mode that is not a mode
    "postgresql://[2001:db8::1]/getmeds?sslmode=disable",
    "postgresql://db.example.org/getmeds?sslmode=verify-fulI",
    # the last of two sslmodes must not win
    "postgresql://db.example.org/getmeds?sslmode=verify-full&sslmode=disable",
    # a service file can name any host and mode
    "postgresql://localhost/getmeds?service=pharmacy",
    # a connection string smuggled in a parameter
    "postgresql://localhost/getmeds?options=-c%20x%3D1&host=db.example.org&sslmode=disable",
]


@pytest.mark.parametrize("url", REFUSED)
def test_weak_tls_to_a_remote_host_is_refused_however_the_host_is_named(url):
    with pytest.raises((ConfigError, db.BadDatabaseURL)):
        db.make_engine(url, password=PASSWORD)


@pytest.mark.parametrize("connect_args", [
    {"host": "db.example.org", "sslmode": "disable"},
    {"hostaddr": "192.0.2.7", "sslmode": "prefer"},
    {"sslmode": "disable"},   # the URL's host is remote
])
def test_connect_args_cannot_lower_tls(connect_args):
    url = ("postgresql://localhost/getmeds" if "sslmode" not in connect_args or
           len(connect_args) > 1 else "postgresql://db.example.org/getmeds")
    with pytest.raises(ConfigError, match="must be encrypted"):
        db.make_engine(url, connect_args=connect_args)


def test_the_refusal_names_the_host_and_never_the_password():
    with pytest.raises(ConfigError) as caught:
        db.make_engine(f"postgresql://nina:{PASSWORD.replace(' ', '%20')}@localhost/getmeds"
                       "?host=db.example.org&sslmode=disable")
    assert "db.example.org" in str(caught.value)
    assert "horse" not in str(caught.value)


@pytest.mark.parametrize(("url", "mode"), [
    ("postgresql://db.example.org/getmeds", "verify-full"),
    ("postgresql:///getmeds?host=db.example.org", "verify-full"),
    ("postgresql://localhost/getmeds?hostaddr=192.0.2.7", "verify-full"),
    ("postgresql://db.example.org/getmeds?sslmode=require", "require"),
    ("postgresql://db.example.org/getmeds?sslmode=verify-ca", "verify-ca"),
])
def test_remote_hosts_get_verify_full_unless_the_settings_say_require(url, mode):
    u = db.normalize_url(url)
    cargs, cparams = u.get_dialect()().create_connect_args(u)
    cparams.pop("context", None)
    assert db.final_connect_params(*cargs, **cparams)["sslmode"] == mode


def test_the_environment_never_lowers_tls_for_a_remote_host(monkeypatch):
    monkeypatch.setenv("PGSSLMODE", "disable")
    params = db.final_connect_params(host="db.example.org", dbname="getmeds")
    assert params["sslmode"] == "verify-full"


@pytest.mark.parametrize(("var", "value"), [
    ("PGHOST", "db.example.org"),         # the URL names no host at all
    ("PGHOSTADDR", "192.0.2.7"),          # the URL says localhost
])
def test_libpq_environment_naming_a_remote_server_is_caught(monkeypatch, var, value):
    monkeypatch.setenv(var, value)
    with pytest.raises(ConfigError, match="must be encrypted"):
        db.make_engine("postgresql://localhost/getmeds?sslmode=disable"
                       if var == "PGHOSTADDR" else "postgresql:///getmeds?sslmode=disable")
    # with no sslmode the environment's server gets verify-full
    params = db.final_connect_params(dbname="getmeds",
                                     **({"host": "localhost"} if var == "PGHOSTADDR" else {}))
    assert params["sslmode"] == "verify-full"


def test_pgservice_in_the_environment_is_refused(monkeypatch):
    monkeypatch.setenv("PGSERVICE", "pharmacy")
    with pytest.raises(ConfigError, match="service"):
        db.make_engine("postgresql://localhost/getmeds")


def test_host_and_hostaddr_are_written_out_so_libpq_cannot_fill_them_in():
    params = db.final_connect_params(dbname="getmeds", sslmode="disable")
    assert params["host"] == "" and params["hostaddr"] == ""


def test_a_connection_is_checked_again_when_it_is_made(monkeypatch):
    """Settings that change after the engine was made (here the environment)
    are caught on the final parameters of the connection itself."""
    engine = db.make_engine("postgresql://localhost:1/getmeds?sslmode=disable")
    try:
        monkeypatch.setenv("PGHOSTADDR", "192.0.2.7")
        with pytest.raises(ConfigError, match="192.0.2.7"), engine.connect():
            pass
    finally:
        engine.dispose()


def test_local_connections_stay_as_they_were():
    for url in ("postgresql://127.0.0.1/getmeds?sslmode=disable",
                "postgresql://localhost/getmeds",
                "postgresql://[::1]/getmeds?sslmode=disable",
                "postgresql:///getmeds?host=/var/run/postgresql&sslmode=disable"):
        engine = db.make_engine(url)
        engine.dispose()
    assert "sslmode" not in db.make_engine("postgresql://localhost/getmeds").url.query


# --------------------------------------------------- what reaches a real socket

def _no_plain_startup(server: dict) -> None:
    assert server["seen"]["ssl_requests"] >= 1
    assert server["seen"]["plain_startups"] == 0


@pytest.mark.parametrize("template", [
    # the URL's own host is a remote name (hostaddr keeps the packets here)
    "postgresql://pharmacy-db.test:{port}/getmeds?hostaddr=127.0.0.1",
    # the bypass: the URL says localhost, the query string names the server
    "postgresql://localhost:{port}/getmeds?host=pharmacy-db.test&hostaddr=127.0.0.1",
    "postgresql:///getmeds?host=pharmacy-db.test&port={port}&hostaddr=127.0.0.1",
])
def test_sign_in_to_a_server_named_remotely_insists_on_tls(plain_server, template):
    url = template.format(port=plain_server["port"]) + "&connect_timeout=5"
    target = DatabaseTarget(url=url, profile="pharmacy", label="Pharmacy server")
    with pytest.raises(DatabaseUnavailable) as caught:
        Connector().sign_in(target, "nina", PASSWORD)
    assert PASSWORD not in str(caught.value)
    _no_plain_startup(plain_server)


def test_pghost_from_the_environment_gets_tls_too(plain_server, monkeypatch):
    monkeypatch.setenv("PGHOST", "pharmacy-db.test")
    url = f"postgresql:///getmeds?port={plain_server['port']}&hostaddr=127.0.0.1"
    target = DatabaseTarget(url=url, profile="pharmacy", label="Pharmacy server")
    with pytest.raises(DatabaseUnavailable):
        Connector().sign_in(target, "nina", PASSWORD)
    _no_plain_startup(plain_server)


def test_the_change_listener_uses_the_same_rule(plain_server):
    engine = db.make_engine(f"postgresql://localhost:{plain_server['port']}/getmeds"
                            "?host=pharmacy-db.test&hostaddr=127.0.0.1&connect_timeout=5")
    try:
        listener = ChangeListener(engine, lambda _c: None, lambda _s: None)
        with pytest.raises(psycopg.OperationalError):
            listener._connect()
    finally:
        engine.dispose()
    _no_plain_startup(plain_server)


def test_the_change_listener_refuses_weak_tls_before_connecting(plain_server, monkeypatch):
    engine = db.make_engine(f"postgresql://localhost:{plain_server['port']}/getmeds"
                            "?sslmode=disable")
    try:
        listener = ChangeListener(engine, lambda _c: None, lambda _s: None)
        monkeypatch.setenv("PGHOSTADDR", "192.0.2.7")
        with pytest.raises(ConfigError):
            listener._connect()
    finally:
        engine.dispose()
    assert plain_server["seen"]["plain_startups"] == 0


# ------------------------------------------------------------------- profiles

def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("profile", [
    'url = "postgresql:///getmeds?host=db.example.org&sslmode=disable"',
    'url = "postgresql://localhost/getmeds?hostaddr=192.0.2.7&sslmode=prefer"',
    'url = "postgresql://db.example.org/getmeds"\nsslmode = "disable"',
])
def test_a_profile_written_as_a_url_gets_the_same_check(tmp_path, profile):
    site = _write(tmp_path / "getmeds.toml", f"[profiles.lab]\n{profile}\n")
    cfg = config.load_config([site], tmp_path / "none.toml")
    target = config.resolve_database(profile="lab", config=cfg)
    with pytest.raises(ConfigError, match="must be encrypted"):
        Connector().sign_in(target, "nina", PASSWORD)


def test_a_url_profile_keeps_its_ca_bundle(tmp_path):
    site = _write(tmp_path / "getmeds.toml", '[profiles.lab]\n'
                  'url = "postgresql://db.example.org/getmeds"\n'
                  'sslrootcert = "global-bundle.pem"\n')
    cfg = config.load_config([site], tmp_path / "none.toml")
    u = db.normalize_url(cfg.profiles["lab"].to_url())
    assert u.query["sslrootcert"] == str(tmp_path / "global-bundle.pem")


@pytest.mark.parametrize("host", [
    "localhost/getmeds?host=db.example.org&sslmode=disable#",
    "db.example.org?sslmode=disable",
    "nina@db.example.org",
])
def test_a_profile_host_cannot_carry_url_parts(tmp_path, host):
    site = _write(tmp_path / "getmeds.toml",
                  f'[profiles.x]\nhost = "{host}"\ndatabase = "getmeds"\n')
    with pytest.raises(ConfigError, match="host must be a host name"):
        config.load_config([site], tmp_path / "none.toml")


# -------------------------------------------------- backups from a workstation

@pytest.mark.parametrize("url", [
    "postgresql:///getmeds?host=db.example.org&sslmode=disable",
    "postgresql://localhost/getmeds?hostaddr=192.0.2.7&sslmode=prefer",
])
def test_backups_and_restores_from_a_workstation_follow_the_rule(url):
    with pytest.raises(BackupError, match="must be encrypted"):
        core.params_from_url(url)


def test_backup_connection_strings_pin_the_server():
    params = core.params_from_url("postgresql://nina:pw@db.example.org/getmeds")
    info, env = core.conninfo(params)
    assert "sslmode=verify-full" in info and "hostaddr=''" in info
    assert "pw" not in info and env == {"PGPASSWORD": "pw"}


def test_every_refusal_is_a_message_not_a_crash():
    for url in REFUSED:
        with pytest.raises(GetMedsError):
            db.require_tls(db.normalize_url(url))
