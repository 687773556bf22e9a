"""Where GetMeds keeps its files, and which database it opens.

Configuration comes from TOML files, lowest precedence first:

1. the site file IT installs: ``getmeds.toml`` next to the executable (frozen
   builds), in the system-wide config folder, or the file named by
   ``GETMEDS_SITE_CONFIG``;
2. the user's file ``config.toml`` in the user config folder.

A site file may lock settings (``locked = ["auto_lock_minutes", ...]``): the
user's file cannot change a locked value. Connection profiles look like::

    default_profile = "pharmacy"

    [profiles.pharmacy]
    host = "getmeds.abc123.us-east-1.rds.amazonaws.com"
    port = 5432
    database = "getmeds"
    sslmode = "verify-full"
    sslrootcert = "global-bundle.pem"   # relative to the file that names it

    [profiles.lab]
    url = "postgresql://db.lab.local/getmeds"

The database is chosen by ``--database URL``, then ``GETMEDS_DATABASE_URL``,
then ``--profile``/``default_profile``, and otherwise the embedded SQLite file
in the user data folder.
"""

from __future__ import annotations

import dataclasses
import os
import re
import sys
import tomllib
from pathlib import Path
from typing import Any

import platformdirs

from .errors import ConfigError

APP_NAME = "GetMeds"
EMBEDDED_PROFILE = "embedded"
SITE_FILE_NAME = "getmeds.toml"
USER_FILE_NAME = "config.toml"
SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1", "")

# host = a name or address, several separated by commas, or a socket folder
_HOST = re.compile(r"^(?:[A-Za-z0-9_.\-:\[\],]*|/[^?#&=\s]*)$")

# Settings a site file may preset (and lock) for every workstation.
PRESETTABLE = ("auto_lock_minutes", "default_profile", "pharmacy", "paper_size", "backups",
               "updates", "offline")


def _dirs() -> platformdirs.PlatformDirs:
    return platformdirs.PlatformDirs(APP_NAME, appauthor=False)


def data_dir() -> Path:
    return Path(_dirs().user_data_dir)


def config_dir() -> Path:
    return Path(_dirs().user_config_dir)


def log_dir() -> Path:
    return Path(_dirs().user_log_dir)


def updates_dir() -> Path:
    """Where verified downloads of new versions wait for IT (updates.py)."""
    return data_dir() / "updates"


def embedded_database_path() -> Path:
    return data_dir() / "getmeds.sqlite3"


def site_config_candidates() -> list[Path]:
    """Site files in the order they are read (a later one overrides)."""
    paths: list[Path] = [Path(_dirs().site_config_dir) / SITE_FILE_NAME]
    if getattr(sys, "frozen", False):
        paths.append(Path(sys.executable).resolve().parent / SITE_FILE_NAME)
    env = os.environ.get("GETMEDS_SITE_CONFIG")
    if env:
        paths.append(Path(env))
    return paths


def user_config_path() -> Path:
    return config_dir() / USER_FILE_NAME


@dataclasses.dataclass(frozen=True)
class ConnectionProfile:
    """A named database connection. Never holds a password."""

    name: str
    url: str | None = None
    host: str | None = None
    port: int = 5432
    database: str | None = None
    username: str | None = None
    sslmode: str | None = None
    sslrootcert: str | None = None
    source: str = ""
    # a read replica for reports (cloud/template.yaml ReportingReplica): the same
    # logins and settings, another host
    reporting_host: str | None = None
    reporting_port: int | None = None

    def effective_sslmode(self) -> str:
        """verify-full by default for any host that is not this machine."""
        if self.sslmode:
            return self.sslmode
        host = self.host or ""
        return "prefer" if host in LOCAL_HOSTS else "verify-full"

    def to_url(self) -> str:
        """The profile as a URL. Its TLS settings are checked on the parameters
        the connection finally uses (db.final_connect_params), whichever way the
        profile is written."""
        if self.url:
            if not (self.sslmode or self.sslrootcert):
                return self.url
            from sqlalchemy.engine import make_url

            try:
                u = make_url(self.url)
            except Exception:
                return self.url
            extra = {k: v for k, v in (("sslmode", self.sslmode),
                                       ("sslrootcert", self.sslrootcert)) if v}
            return u.update_query_dict(extra).render_as_string(hide_password=False)
        from sqlalchemy.engine import URL

        query: dict[str, str] = {"sslmode": self.effective_sslmode()}
        if self.sslrootcert:
            query["sslrootcert"] = self.sslrootcert
        return URL.create(
            "postgresql+psycopg",
            username=self.username,
            host=self.host,
            port=self.port,
            database=self.database,
            query=query,
        ).render_as_string(hide_password=False)

    def reporting_url(self) -> str | None:
        """The profile's URL pointed at its reporting host, if it names one."""
        if not self.reporting_host:
            return None
        from sqlalchemy.engine import make_url

        u = make_url(self.to_url()).set(host=self.reporting_host,
                                        port=self.reporting_port or self.port)
        return u.render_as_string(hide_password=False)

    def describe(self) -> str:
        if self.url:
            from sqlalchemy.engine import make_url

            try:
                return make_url(self.url).render_as_string(hide_password=True)
            except Exception:
                return self.name
        return f"{self.host}:{self.port}/{self.database}"


@dataclasses.dataclass(frozen=True)
class AppConfig:
    profiles: dict[str, ConnectionProfile]
    default_profile: str | None
    auto_lock_minutes: int | None
    paper_size: str | None
    pharmacy: dict[str, str]
    locked: frozenset[str]
    files: tuple[Path, ...]
    # [backups] bucket / prefix / region: the embedded database's daily copy is
    # also uploaded to this S3 bucket (optional)
    backups: dict[str, str] = dataclasses.field(default_factory=dict)
    # [updates] manifest_url / enabled / check_at_start / pin (updates.py)
    updates: dict[str, Any] = dataclasses.field(default_factory=dict)
    # [offline] kinds / controlled_dispense: the writes allowed while the server
    # is unreachable (sync.outbox.OfflinePolicy.from_setting)
    offline: dict[str, Any] = dataclasses.field(default_factory=dict)

    def profile(self, name: str) -> ConnectionProfile:
        try:
            return self.profiles[name]
        except KeyError:
            known = ", ".join(sorted(self.profiles)) or "none"
            raise ConfigError(
                f"There is no connection profile named '{name}' (known profiles: {known})."
            ) from None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        # The message already carries "(at line L, column C)".
        raise ConfigError(f"Configuration file {path} is not valid TOML: {exc}.") from None
    except OSError as exc:
        raise ConfigError(f"Configuration file {path} cannot be read: {exc.strerror}.") from None


def _parse_profile(name: str, raw: Any, path: Path) -> ConnectionProfile:
    where = f"{path}, [profiles.{name}]"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: a profile must be a table of settings.")
    if "password" in raw:
        raise ConfigError(
            f"{where}: passwords do not belong in configuration files; "
            "GetMeds asks for them at sign-in and can remember them in the system keyring."
        )
    known = {"url", "host", "port", "database", "username", "sslmode", "sslrootcert",
             "reporting_host", "reporting_port"}
    unknown = set(raw) - known
    if unknown:
        raise ConfigError(f"{where}: unknown setting(s) {', '.join(sorted(unknown))}.")
    if "url" not in raw and not (raw.get("host") and raw.get("database")):
        raise ConfigError(f"{where}: give either url, or host and database.")
    port = raw.get("port", 5432)
    if not isinstance(port, int) or not 0 < port < 65536:
        raise ConfigError(f"{where}: port must be a number between 1 and 65535.")
    sslmode = raw.get("sslmode")
    if sslmode is not None and sslmode not in SSL_MODES:
        raise ConfigError(f"{where}: sslmode must be one of {', '.join(SSL_MODES)}.")
    host = raw.get("host") or ""
    if isinstance(host, str) and not _HOST.match(host):
        raise ConfigError(
            f"{where}: host must be a host name or address (several separated by commas), "
            "or the folder of a local socket.")
    if sslmode in ("disable", "allow", "prefer") and host not in LOCAL_HOSTS:
        raise ConfigError(
            f"{where}: {host} is not this computer, so the connection must be encrypted and "
            f"verified; sslmode={sslmode} is refused (use verify-full).")
    reporting = raw.get("reporting_host")
    if reporting is not None and (not isinstance(reporting, str) or not reporting
                                  or not _HOST.match(reporting)):
        raise ConfigError(f"{where}: reporting_host must be the host name of the read replica.")
    rport = raw.get("reporting_port")
    if rport is not None and (not isinstance(rport, int) or not 0 < rport < 65536):
        raise ConfigError(f"{where}: reporting_port must be a number between 1 and 65535.")
    ca = raw.get("sslrootcert")
    if ca:
        ca_path = Path(ca)
        if not ca_path.is_absolute():
            ca_path = path.parent / ca_path
        ca = str(ca_path)
    for key in ("url", "host", "database", "username"):
        if key in raw and not isinstance(raw[key], str):
            raise ConfigError(f"{where}: {key} must be text.")
    return ConnectionProfile(
        name=name,
        url=raw.get("url"),
        host=raw.get("host"),
        port=port,
        database=raw.get("database"),
        username=raw.get("username"),
        sslmode=sslmode,
        sslrootcert=ca,
        source=str(path),
        reporting_host=reporting,
        reporting_port=rport,
    )


def _check_updates(raw: Any, path: Path) -> None:
    from .updates import check_settings

    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: [updates] must be a table.")
    try:
        check_settings(raw, str(path))
    except ValueError as exc:
        raise ConfigError(f"{exc}.") from None


def load_config(
    site_files: list[Path] | None = None, user_file: Path | None = None
) -> AppConfig:
    """Read the site file(s) and the user's file. Missing files are fine."""
    site_files = site_config_candidates() if site_files is None else site_files
    user_file = user_config_path() if user_file is None else user_file

    profiles: dict[str, ConnectionProfile] = {}
    values: dict[str, Any] = {"pharmacy": {}}
    locked: set[str] = set()
    read: list[Path] = []

    def apply(path: Path, site: bool) -> None:
        data = _read_toml(path)
        read.append(path)
        for name, raw in (data.get("profiles") or {}).items():
            if name == EMBEDDED_PROFILE:
                raise ConfigError(f"{path}: the profile name '{EMBEDDED_PROFILE}' is reserved.")
            if not site and "profiles" in locked and name in profiles:
                continue
            profiles[name] = _parse_profile(name, raw, path)
        for key in PRESETTABLE:
            if key not in data:
                continue
            if not site and key in locked:
                continue  # IT locked it: the user's value is ignored
            if key == "updates":
                _check_updates(data[key], path)
                values.setdefault(key, {}).update(data[key])
            elif key == "offline":
                if not isinstance(data[key], dict):
                    raise ConfigError(f"{path}: [offline] must be a table.")
                values.setdefault(key, {}).update(data[key])
            elif key in ("pharmacy", "backups"):
                if not isinstance(data[key], dict):
                    raise ConfigError(f"{path}: [{key}] must be a table.")
                values.setdefault(key, {}).update({k: str(v) for k, v in data[key].items()})
            else:
                values[key] = data[key]
        if site:
            lk = data.get("locked", [])
            if not isinstance(lk, list) or not all(isinstance(x, str) for x in lk):
                raise ConfigError(f"{path}: locked must be a list of setting names.")
            locked.update(lk)

    for path in site_files:
        if path.is_file():
            apply(path, site=True)
    if user_file.is_file():
        apply(user_file, site=False)

    minutes = values.get("auto_lock_minutes")
    if minutes is not None and (not isinstance(minutes, int) or not 1 <= minutes <= 240):
        raise ConfigError("auto_lock_minutes must be a whole number of minutes from 1 to 240.")
    return AppConfig(
        profiles=profiles,
        default_profile=values.get("default_profile"),
        auto_lock_minutes=minutes,
        paper_size=values.get("paper_size"),
        pharmacy=values["pharmacy"],
        locked=frozenset(locked),
        files=tuple(read),
        backups=values.get("backups", {}),
        updates=values.get("updates", {}),
        offline=values.get("offline", {}),
    )


@dataclasses.dataclass(frozen=True)
class DatabaseTarget:
    """The database this run opens, and how to describe it on screen."""

    url: str
    profile: str
    label: str
    # reports read here when set (the profile's reporting_host: a read replica)
    reporting_url: str | None = None

    @property
    def is_sqlite(self) -> bool:
        return self.url.startswith("sqlite")


def resolve_database(
    cli_url: str | None = None,
    profile: str | None = None,
    config: AppConfig | None = None,
) -> DatabaseTarget:
    """--database, then GETMEDS_DATABASE_URL, then a profile, then the embedded file."""
    from .db import describe_url

    url = cli_url or os.environ.get("GETMEDS_DATABASE_URL")
    if url:
        return DatabaseTarget(url=url, profile="command line", label=describe_url(url))
    cfg = config if config is not None else load_config()
    name = profile or cfg.default_profile
    if name and name != EMBEDDED_PROFILE:
        prof = cfg.profile(name)
        return DatabaseTarget(url=prof.to_url(), profile=name, label=prof.describe(),
                              reporting_url=prof.reporting_url())
    path = embedded_database_path()
    return DatabaseTarget(
        url=f"sqlite:///{path}", profile=EMBEDDED_PROFILE, label=f"Embedded ({path})"
    )
