"""What a new connection costs over TLS: a sign-in's first connection, and the
reconnect after a dropped link (the pool makes a new one).

The measurement starts a private PostgreSQL server of its own (initdb in a
temporary folder, a free port on 127.0.0.1, fsync off) with ``ssl = on`` and a
server certificate from a CA made for it, and connects with
``sslmode=verify-full`` and that CA as ``sslrootcert``, as a workstation checks
RDS against Amazon's CA bundle; the login gives its password (SCRAM). The same
server without TLS gives the comparison. Each connection goes through the delay
proxy, whose first client bytes also wait for the TCP handshake.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg

from getmeds_desktop import db

from .common import median, percentile
from .netdelay import DelayProxy

SAMPLES = 30
PASSWORD_BYTES = 18


def _bin_dir() -> Path:
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True,
                             check=True).stdout.strip()
        if (Path(out) / "initdb").exists():
            return Path(out)
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not found:
        raise RuntimeError("the tls benchmark needs PostgreSQL's initdb and pg_ctl")
    return found[-1].parent


def _certificates(folder: Path) -> tuple[Path, Path, Path]:
    """A CA, and a certificate for 127.0.0.1 and localhost signed by it."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("GetMeds benchmark CA"))
          .issuer_name(name("GetMeds benchmark CA")).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(days=1))
          .not_valid_after(now + dt.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(name("localhost"))
            .issuer_name(ca.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .sign(ca_key, hashes.SHA256()))
    ca_path, cert_path, key_path = folder / "ca.pem", folder / "server.crt", folder / "server.key"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    return ca_path, cert_path, key_path


@contextlib.contextmanager
def _private_server(log: Callable[[str], None]) -> Iterator[tuple[int, str, Path]]:
    """A throwaway PostgreSQL server with TLS: (port, the superuser's password,
    the CA file)."""
    import secrets
    import socket

    bindir = _bin_dir()
    folder = Path(tempfile.mkdtemp(prefix="getmeds-bench-tls-"))
    as_postgres: list[str] = []
    if os.geteuid() == 0:  # initdb and the server refuse to run as root
        as_postgres = ["runuser", "-u", "postgres", "--"]
    try:
        ca, cert, key = _certificates(folder)
        password = secrets.token_urlsafe(PASSWORD_BYTES)
        pwfile = folder / "pw"
        pwfile.write_text(password + "\n")
        if as_postgres:
            shutil.chown(folder, "postgres")
            for f in (cert, key, pwfile):
                shutil.chown(f, "postgres")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        data = folder / "data"
        subprocess.run([*as_postgres, str(bindir / "initdb"), "-D", str(data), "-U", "postgres",
                        "--auth-host=scram-sha-256", "--auth-local=trust",
                        f"--pwfile={pwfile}", "--no-sync"],
                       check=True, capture_output=True)
        pwfile.unlink()
        options = (f"-c port={port} -c listen_addresses=127.0.0.1 -c ssl=on "
                   f"-c ssl_cert_file={cert} -c ssl_key_file={key} "
                   f"-c unix_socket_directories={folder} -c fsync=off")
        subprocess.run([*as_postgres, str(bindir / "pg_ctl"), "-D", str(data), "-w", "-s",
                        "-l", str(folder / "log"), "-o", options, "start"],
                       check=True, capture_output=True)
        log(f"tls: a private PostgreSQL server on 127.0.0.1:{port} with TLS")
        try:
            yield port, password, ca
        finally:
            subprocess.run([*as_postgres, str(bindir / "pg_ctl"), "-D", str(data), "-w", "-s",
                            "-m", "immediate", "stop"], capture_output=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def run(log: Callable[[str], None], rtt_ms: float) -> dict[str, float]:
    results: dict[str, float] = {}
    with _private_server(log) as (port, password, ca), \
            DelayProxy("127.0.0.1", port, rtt_ms=rtt_ms) as proxy:
        base = (f"postgresql://postgres@127.0.0.1:{proxy.port}/postgres")
        for label, params in (("plain", {"sslmode": "disable"}),
                              ("tls", {"sslmode": "verify-full", "sslrootcert": str(ca)})):
            conninfo = psycopg.conninfo.make_conninfo(
                f"host=127.0.0.1 port={proxy.port} dbname=postgres user=postgres",
                password=password, connect_timeout=10, **params)
            if label == "tls":  # the connection really is TLS, verified
                with psycopg.connect(conninfo) as c:
                    assert c.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = "
                                     "pg_backend_pid()").fetchone() == (True,)
            times, trips = [], []
            for _ in range(SAMPLES + 3):
                before = proxy.turns
                t0 = time.perf_counter()
                with psycopg.connect(conninfo) as c:
                    took = (time.perf_counter() - t0) * 1000
                    after = proxy.turns
                    c.execute("SELECT 1")
                times.append(took)
                trips.append(after - before + 1)  # + the TCP handshake
            results[f"connect_{label}_ms"] = round(median(times[3:]), 1)
            results[f"connect_{label}_p95_ms"] = round(percentile(times[3:], 95), 1)
            results[f"connect_{label}_round_trips"] = median([float(t) for t in trips[3:]])
            log(f"tls: a new {label} connection {results[f'connect_{label}_ms']} ms "
                f"(p95 {results[f'connect_{label}_p95_ms']}), "
                f"{results[f'connect_{label}_round_trips']:.0f} round trips")
        # the app's own engine: first connection of a sign-in (with SQLAlchemy's
        # one-round-trip initialisation) over verify-full
        url = f"{base}?sslmode=verify-full&sslrootcert={ca}"
        firsts = []
        for _ in range(10):
            engine = db.make_engine(url, password=password, pool_size=1)
            t0 = time.perf_counter()
            with engine.connect() as c:
                c.exec_driver_sql("SELECT 1")
            firsts.append((time.perf_counter() - t0) * 1000)
            engine.dispose()
        results["engine_first_connection_tls_ms"] = round(median(firsts[2:]), 1)
        log(f"tls: an engine's first connection and statement "
            f"{results['engine_first_connection_tls_ms']} ms")
    return results
