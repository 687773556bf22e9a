"""Scratch databases: a fresh, migrated database for each case, dropped after it.

* Embedded SQLite (the default): one template is migrated per process and
  written to each run's temporary folder; each case gets a copy of it.
* PostgreSQL (``--database URL`` of a server): one template database is
  migrated per run, with group roles of a prefix of its own (group roles are
  server-wide); each case gets ``CREATE DATABASE ... TEMPLATE``, dropped when
  the case ends; the template and the roles are dropped at the end of the run.
  The URL's login must be allowed to create databases and roles (the server's
  owner or, on AWS RDS, the master user). Nothing else on the server is
  touched: use a test server all the same.
"""

from __future__ import annotations

import functools
import itertools
import os
import secrets
import shutil
import tempfile
from pathlib import Path

import sqlalchemy as sa

from .. import db
from ..enums import DATABASE_GROUPS
from ..errors import GetMedsError

GROUPS = DATABASE_GROUPS


class ScratchError(GetMedsError):
    """No scratch database could be made (the message says why)."""


@functools.cache
def _migrated_sqlite() -> bytes:
    """A migrated, empty embedded database (made once per process: the
    migrations of this version cannot change while it runs)."""
    folder = Path(tempfile.mkdtemp(prefix="getmeds-rules-template-"))
    try:
        path = folder / "template.sqlite3"
        engine = db.make_engine(f"sqlite:///{path}")
        try:
            db.upgrade(engine)
        finally:
            engine.dispose()
        return path.read_bytes()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


class SqliteScratch:
    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="getmeds-rules-"))
        self._n = itertools.count(1)
        self.template = self.folder / "template.sqlite3"
        try:
            self.template.write_bytes(_migrated_sqlite())
        except BaseException:
            self.close()
            raise

    def new(self) -> str:
        target = self.folder / f"case{next(self._n)}.sqlite3"
        shutil.copyfile(self.template, target)
        return f"sqlite:///{target}"

    def drop(self, url: str) -> None:
        path = Path(sa.make_url(url).database or "")
        for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm"), Path(f"{path}-journal")):
            p.unlink(missing_ok=True)

    def close(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    def describe(self) -> str:
        return "embedded SQLite (a temporary folder)"


def _quote(name: str) -> str:
    """A quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


class PostgresScratch:
    def __init__(self, url: str) -> None:
        self.url = db.normalize_url(url)
        if self.url.get_backend_name() != "postgresql":
            raise ScratchError("--database takes the URL of a PostgreSQL server "
                               "(postgresql://user@host/postgres); without it the cases run "
                               "on embedded SQLite databases in a temporary folder.")
        tag = f"{os.getpid()}_{secrets.token_hex(4)}"
        self.prefix = f"getmeds_rules_{tag}"
        self.role_prefix = f"gmrules{secrets.token_hex(4)}_"
        self._n = itertools.count(1)
        self.template = f"{self.prefix}_template"
        self._made = False
        try:
            self._admin(f"CREATE DATABASE {_quote(self.template)}")
            self._made = True
            engine = db.make_engine(self.url.set(database=self.template), poolclass=sa.NullPool)
            try:
                db.upgrade(engine, role_prefix=self.role_prefix)
            finally:
                engine.dispose()
        except sa.exc.DBAPIError as exc:
            self.close()
            raise ScratchError(
                f"Cannot make a scratch database on {db.describe_url(self.url)}: "
                f"{str(exc.orig).strip().splitlines()[0]}. The login needs the right to "
                "create databases and roles.") from None
        except BaseException:
            self.close()
            raise

    def _engine(self) -> sa.Engine:
        return db.make_engine(self.url, poolclass=sa.NullPool, isolation_level="AUTOCOMMIT")

    def _admin(self, *statements: str) -> None:
        engine = self._engine()
        try:
            with engine.connect() as conn:
                for statement in statements:
                    conn.exec_driver_sql(statement)
        finally:
            engine.dispose()

    def new(self) -> str:
        name = f"{self.prefix}_{next(self._n)}"
        self._admin(f"CREATE DATABASE {_quote(name)} TEMPLATE {_quote(self.template)}")
        url = self.url.set(database=name)
        # database privileges are not copied from a template (as after a restore)
        engine = db.make_engine(url, poolclass=sa.NullPool)
        try:
            with engine.begin() as conn:
                conn.exec_driver_sql("SELECT getmeds_restrict_database()")
        finally:
            engine.dispose()
        return url.render_as_string(hide_password=False)

    def drop(self, url: str) -> None:
        name = sa.make_url(url).database or ""
        if name.startswith(self.prefix + "_"):
            self._admin(f"DROP DATABASE IF EXISTS {_quote(name)} WITH (FORCE)")

    def close(self) -> None:
        """Drop every database and role this run made (safe to call twice)."""
        engine = self._engine()
        try:
            with engine.connect() as conn:
                names = conn.execute(sa.text(
                    "SELECT datname FROM pg_database WHERE datname LIKE :p"),
                    {"p": self.prefix.replace("_", r"\_") + r"\_%"}).scalars().all()
                for name in names:
                    conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {_quote(name)} WITH (FORCE)")
                # only the groups this run made (staff get no server logins here)
                for g in GROUPS:
                    conn.exec_driver_sql(f"DROP ROLE IF EXISTS {_quote(self.role_prefix + g)}")
        except sa.exc.DBAPIError:
            if self._made:
                raise
        finally:
            engine.dispose()

    def describe(self) -> str:
        return f"PostgreSQL scratch databases on {db.describe_url(self.url)}"


Scratch = SqliteScratch | PostgresScratch


def open_scratch(database: str | None) -> Scratch:
    return SqliteScratch() if database is None else PostgresScratch(database)


__all__ = ["PostgresScratch", "Scratch", "ScratchError", "SqliteScratch", "open_scratch"]
