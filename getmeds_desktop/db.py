"""Engines, sessions, the schema-version check and the migrations runner.

SQLite (embedded): WAL, foreign keys on, a busy timeout, and real transactions
(pysqlite's implicit transaction handling is switched off so BEGIN is ours);
write transactions take the write lock up front (BEGIN IMMEDIATE) so two
writers never deadlock upgrading a read lock.

PostgreSQL: psycopg 3, a connect timeout, pre-ping, and TLS settings from the URL.
"""

from __future__ import annotations

import collections
import datetime as dt
import functools
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.orm import Session, sessionmaker

from . import private_files
from .errors import AuthenticationFailed, DatabaseUnavailable, GetMedsError, SchemaMismatch

if TYPE_CHECKING:
    import sqlite3

    from sqlalchemy.pool import PoolProxiedConnection

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
IMMEDIATE = "getmeds_sqlite_immediate"


class BadDatabaseURL(GetMedsError):
    pass


def normalize_url(url: str | URL) -> URL:
    """Parse a SQLAlchemy URL; plain ``postgresql://`` means psycopg 3."""
    try:
        u = make_url(url) if isinstance(url, str) else url
    except Exception:
        raise BadDatabaseURL(
            "The database URL is not valid; expected e.g. postgresql://host/dbname "
            "or sqlite:///path/to/file.sqlite3."
        ) from None
    backend = u.get_backend_name()
    if backend in ("postgresql", "postgres"):
        if u.drivername in ("postgresql", "postgres"):
            u = u.set(drivername="postgresql+psycopg")
        elif u.drivername != "postgresql+psycopg":
            raise BadDatabaseURL("Only the psycopg driver is supported (postgresql+psycopg://).")
    elif backend == "sqlite":
        if u.drivername != "sqlite":
            raise BadDatabaseURL("Only the built-in SQLite driver is supported (sqlite:///...).")
    else:
        raise BadDatabaseURL(
            f"Unsupported database '{backend}': GetMeds works with PostgreSQL or SQLite."
        )
    return u


def describe_url(url: str | URL) -> str:
    """A URL as it may be shown or logged: never with the password."""
    try:
        return normalize_url(url).render_as_string(hide_password=True)
    except GetMedsError:
        return "(invalid database URL)"


def _sqlite_on_connect(dbapi_conn: Any, record: Any) -> None:
    dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
    holder: dict[str, str | None] = {"actor": None}
    record.info["actor_holder"] = holder
    dbapi_conn.create_function("getmeds_actor", 0, lambda: holder["actor"], deterministic=False)
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys = ON")
    cur.execute("PRAGMA busy_timeout = 10000")
    mode = cur.execute("PRAGMA journal_mode").fetchone()[0]
    if mode != "memory":
        cur.execute("PRAGMA journal_mode = WAL")
        cur.execute("PRAGMA synchronous = NORMAL")
    cur.close()


def _sqlite_on_begin(conn: sa.Connection) -> None:
    immediate = conn.get_execution_options().get(IMMEDIATE)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _sqlite_on_checkin(dbapi_conn: Any, record: Any) -> None:
    holder = record.info.get("actor_holder")
    if holder is not None:
        holder["actor"] = None


STRONG_SSL = ("require", "verify-ca", "verify-full")
# keyword arguments of psycopg.connect() that are not libpq connection parameters
_PSYCOPG_KWARGS = frozenset({"autocommit", "prepare_threshold", "context", "row_factory",
                             "cursor_factory"})


def _is_local(host: str, *, address: bool = False) -> bool:
    """This machine: a Unix socket, localhost or a loopback address."""
    import ipaddress

    h = host.strip()
    if not address and (h in ("", "localhost") or h.startswith(("/", "@"))):
        return True
    try:
        return ipaddress.ip_address(h.strip("[]")).is_loopback
    except ValueError:
        return False


def final_connect_params(conninfo: str = "", **kwargs: Any) -> dict[str, str]:
    """The libpq parameters a connection really uses, with the TLS rule applied.

    Whatever names the server (the URL's host, ``host=``/``hostaddr=`` in its
    query string, several comma-separated hosts, a connection string, or
    libpq's PGHOST/PGHOSTADDR in the environment), a connection to any host
    that is not this machine uses ``sslmode=verify-full`` unless the settings
    themselves say ``require`` or ``verify-ca``; anything weaker is refused.
    host, hostaddr and sslmode are then written out explicitly, so libpq's
    environment variables cannot change them after this check. PostgreSQL
    service files (``service=``, PGSERVICE) could name another host and are
    refused.
    """
    from psycopg import ProgrammingError
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    from .errors import ConfigError

    for key, value in kwargs.items():
        if isinstance(value, (tuple, list)):
            raise ConfigError(f"The connection setting {key} is given more than once.")
    try:
        raw = conninfo_to_dict(conninfo, **{k: v for k, v in kwargs.items() if v is not None})
    except ProgrammingError:
        raise BadDatabaseURL("The database connection settings are not valid.") from None
    params = {k: str(v) for k, v in raw.items()}
    service = params.get("service", os.environ.get("PGSERVICE", ""))
    if service or params.get("servicefile"):
        raise ConfigError(
            "PostgreSQL service files (service=, PGSERVICE) are not used by GetMeds: give the "
            "host, database and sslmode in the connection profile.")
    host = params.get("host", os.environ.get("PGHOST", ""))
    hostaddr = params.get("hostaddr", os.environ.get("PGHOSTADDR", ""))
    remote = [h.strip() for h in host.split(",") if not _is_local(h)]
    remote += [a.strip() for a in hostaddr.split(",")
               if a.strip() and not _is_local(a, address=True)]
    params["host"] = host
    params["hostaddr"] = hostaddr
    if remote:
        mode = params.get("sslmode") or "verify-full"  # never PGSSLMODE for a remote host
        if mode not in STRONG_SSL:
            raise ConfigError(
                f"The connection to {remote[0]} must be encrypted and verified, but it asks for "
                f"sslmode={mode}. Use sslmode=verify-full (or require) in the profile.")
        params["sslmode"] = mode
    try:
        make_conninfo("", **params)  # libpq checks every keyword and value
    except ProgrammingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise BadDatabaseURL(f"The database connection settings are not valid: {first}") \
            from None
    return params


def secure_connect_args(cargs: list[Any], cparams: dict[str, Any]) -> None:
    """Rewrite what is about to be passed to ``psycopg.connect`` (in place) into
    the checked parameters of :func:`final_connect_params`."""
    extra = {k: v for k, v in cparams.items() if k in _PSYCOPG_KWARGS}
    libpq = {k: v for k, v in cparams.items() if k not in _PSYCOPG_KWARGS}
    conninfo = str(cargs[0]) if cargs else ""
    params = final_connect_params(conninfo, **libpq)
    cargs[:] = []
    cparams.clear()
    cparams.update(params)
    cparams.update(extra)


def _on_do_connect(_dialect: Any, _conn_rec: Any, cargs: list[Any],
                   cparams: dict[str, Any]) -> None:
    secure_connect_args(cargs, cparams)


def require_tls(u: URL, connect_args: dict[str, Any] | None = None) -> URL:
    """A server that is not this machine is reached over verified TLS only.

    No sslmode means verify-full; a weaker mode for a remote host is refused
    (never a silent downgrade). IT may point sslrootcert at a CA bundle. The
    rule is applied to the parameters the URL becomes (see
    :func:`final_connect_params`); every connection is checked again when it
    is made.
    """
    cargs, cparams = u.get_dialect()().create_connect_args(u)
    cparams = {**cparams, **(connect_args or {})}
    params = final_connect_params(*cargs, **{k: v for k, v in cparams.items()
                                             if k not in _PSYCOPG_KWARGS})
    if "sslmode" in params and "sslmode" not in cparams:
        return u.update_query_dict({"sslmode": params["sslmode"]})
    return u


def make_engine(
    url: str | URL,
    *,
    username: str | None = None,
    password: str | None = None,
    connect_timeout: int = 8,
    pool_size: int = 5,
    **kwargs: Any,
) -> Engine:
    """Create an engine. Credentials given here override those in the URL."""
    u = normalize_url(url)
    if username is not None:
        u = u.set(username=username)
    if password is not None:
        u = u.set(password=password)
    if u.get_backend_name() == "sqlite":
        return _sqlite_engine(u, **kwargs)
    connect_args = dict(kwargs.pop("connect_args", {}))
    u = require_tls(u, connect_args)
    connect_args.setdefault("connect_timeout", connect_timeout)
    connect_args.setdefault("application_name", "GetMeds Desktop")
    # notice a dead server or a cut cable within seconds, not after hours
    connect_args.setdefault("keepalives", 1)
    connect_args.setdefault("keepalives_idle", 10)
    connect_args.setdefault("keepalives_interval", 3)
    connect_args.setdefault("keepalives_count", 3)
    # Plans: PostgreSQL's default, a statement prepared by psycopg (after five
    # runs) and each query inside a trigger or security function keeps a generic
    # plan once it is known to be as good as planning anew. Forcing a plan per
    # run (plan_cache_mode=force_custom_plan, as before) re-planned every query
    # of every trigger of a fill: 7.5 ms of server time per fill instead of 4.8.
    # Searches are the exception (a generic plan of ``lower(name) LIKE $1``
    # cannot use the prefix and trigram indexes: 15 ms became 150 ms): they run
    # with the execution option ``custom_plan`` (see quick_read), which sends
    # them unprepared, and an unprepared statement is planned for its values.
    url_options = u.query.get("options", "")
    options = str(connect_args.get("options", url_options if isinstance(url_options, str)
                                   else " ".join(url_options)))
    # No JIT compilation: it is for long analytic queries; the app's statements
    # are short, and a search whose plan merely looked costly spent 15 ms
    # compiling for a 10 ms read.
    if "jit" not in options:
        options = (options + " -c jit=off").strip()
    connect_args["options"] = options
    if "poolclass" not in kwargs:
        kwargs["pool_size"] = pool_size
    # no hstore columns here: its type lookup was a round trip at every sign-in
    kwargs.setdefault("use_native_hstore", False)
    engine = sa.create_engine(u, connect_args=connect_args, **kwargs)
    # the TLS rule on the final parameters of every connection this engine makes
    event.listen(engine, "do_connect", _on_do_connect)
    _initialize_in_one_round_trip(engine.dialect)
    _ping_when_idle(engine)
    event.listen(engine, "do_execute", _unprepared_when_asked, retval=True)
    return engine


def _sqlite_engine(u: URL, **kwargs: Any) -> Engine:
    if u.database and u.database != ":memory:" and not u.query.get("uri"):
        # created 0600 in a 0700 folder before SQLite opens it: its -wal and
        # -shm files then get the same mode (see private_files)
        path = Path(u.database)
        private_files.private_folder(path.parent)
        private_files.private_file(path)
    engine = sa.create_engine(u, **kwargs)
    event.listen(engine, "connect", _sqlite_on_connect)
    event.listen(engine, "begin", _sqlite_on_begin)
    event.listen(engine.pool, "checkin", _sqlite_on_checkin)
    return engine


ENCRYPTION_KEY_BYTES = 32  # AES-256


class WrongKey(GetMedsError):
    """An encrypted database that its key does not open."""


def make_encrypted_engine(path: Path, key: bytes, *, read_only: bool = False,
                          **kwargs: Any) -> Engine:
    """An embedded database encrypted at rest with SQLCipher (AES-256, every
    page, its -wal file included), for the offline replica, which holds patient
    data. ``key`` is 32 random bytes kept in the OS keyring; it is given to
    SQLCipher as a raw key, so opening a connection costs no key derivation.
    Everything else is as :func:`make_engine` makes an embedded database.
    ``read_only``: every connection refuses to write (SQLite's query_only)."""
    if len(key) != ENCRYPTION_KEY_BYTES:
        raise ValueError("the key of an encrypted database is 32 bytes")
    u = URL.create("sqlite+pysqlcipher", password=f"x'{key.hex()}'", database=str(path))
    kwargs.setdefault("poolclass", sa.pool.QueuePool)  # not the dialect's one per thread
    kwargs.setdefault("connect_args", {"check_same_thread": False})
    engine = _sqlite_engine(u, **kwargs)

    def quiet(dbapi_conn: Any, _record: Any) -> None:
        # a page that fails its check is an error GetMeds reports (WrongKey), not
        # a line SQLCipher prints on the console
        dbapi_conn.execute("PRAGMA cipher_log_level = NONE")

    event.listen(engine, "connect", quiet, insert=True)
    if read_only:
        event.listen(engine, "connect",
                     lambda dbapi_conn, _r: dbapi_conn.execute("PRAGMA query_only = ON"))
    try:
        with engine.connect() as c:  # a wrong key reads the file as not a database
            c.exec_driver_sql("SELECT count(*) FROM sqlite_master").scalar()
    except sa.exc.DatabaseError as exc:
        engine.dispose()
        raise WrongKey(f"The offline copy of the database at {path} cannot be opened with "
                       "the key kept for it in this computer's keyring: it was made by "
                       "another account or computer, or is damaged. It can be deleted and "
                       "made again from the server.") from exc
    return engine


def _unprepared_when_asked(cursor: Any, statement: str, parameters: Any, context: Any
                           ) -> bool:
    """A statement run with the execution option ``custom_plan`` is sent
    unprepared (psycopg prepares a statement after its fifth run), so the server
    plans it for its own values every time."""
    if not context.execution_options.get("custom_plan"):
        return False
    cursor.execute(statement, parameters, prepare=False)
    return True


def _initialize_in_one_round_trip(dialect: Any) -> None:
    """SQLAlchemy learns about the server on an engine's first connection:
    five statements in a transaction (about ten round trips, paid at every
    sign-in since each staff member's login has its own engine). The server
    version and standard_conforming_strings are reported by the server when the
    connection is made (libpq), and the default schema and isolation level come
    back together in one statement outside a transaction."""

    def server_version(connection: sa.Connection) -> tuple[int, ...]:
        v = int(connection.connection.dbapi_connection.info.server_version)  # type: ignore[union-attr]
        return (v // 10000, v % 10000) if v >= 100000 else (v // 10000, v // 100 % 100, v % 100)

    learnt: dict[str, str] = {}

    def default_schema(connection: sa.Connection) -> str | None:
        raw: Any = connection.connection.dbapi_connection
        was = raw.autocommit  # an AUTOCOMMIT engine's connection stays so
        raw.autocommit = True
        try:
            schema, isolation = raw.execute(
                "SELECT current_schema(), current_setting('transaction_isolation')").fetchone()
        finally:
            raw.autocommit = was
        learnt["isolation"] = str(isolation).upper()
        return str(schema) if schema is not None else None

    def default_isolation(dbapi_conn: Any) -> str:
        return learnt.pop("isolation", None) or dialect.get_isolation_level(dbapi_conn)

    def backslash_escapes(connection: sa.Connection) -> None:
        raw: Any = connection.connection.dbapi_connection
        value = raw.info.parameter_status("standard_conforming_strings")
        dialect._backslash_escapes = value == "off"

    dialect._get_server_version_info = server_version
    dialect._get_default_schema_name = default_schema
    dialect.get_default_isolation_level = default_isolation
    dialect._set_backslash_escapes = backslash_escapes


# A pooled connection idle for longer than this is pinged before it is used
# again; one in use at the counter is not (a ping on every checkout was a round
# trip on every action). A connection that died meanwhile all the same fails its
# statement as "connection lost": the task is tried again on a new connection
# (sync.retry, request ids make a write's retry harmless).
PING_AFTER_IDLE_S = 20.0


def _ping_when_idle(engine: Engine) -> None:
    dialect = engine.dialect

    def checkin(_dbapi_conn: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    def checkout(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        since = record.info.pop("idle_since", None)
        if since is not None and time.monotonic() - since > PING_AFTER_IDLE_S:
            try:
                dialect.do_ping(dbapi_conn)
            except Exception:
                raise sa.exc.DisconnectionError() from None  # the pool connects anew

    event.listen(engine.pool, "checkin", checkin)
    event.listen(engine.pool, "checkout", checkout)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False, autoflush=False)


def is_sqlite(bind: Engine | sa.Connection | Session) -> bool:
    if isinstance(bind, Session):
        bind = bind.get_bind()
    return bind.dialect.name == "sqlite"


def set_actor(session: Session, username: str | None) -> None:
    """Declare which staff member the current transaction acts for (audit ``actor``)."""
    conn = session.connection()
    if conn.dialect.name == "sqlite":
        holder = conn.connection.info.get("actor_holder")
        if holder is not None:
            holder["actor"] = username
    else:
        conn.execute(
            sa.text("SELECT set_config('getmeds.actor', :u, true)"), {"u": username or ""}
        )


@contextmanager
def write_transaction(sf: sessionmaker[Session], actor: str | None) -> Iterator[Session]:
    """One transaction for a write: SQLite takes the write lock up front."""
    with _begin_write(sf, actor) as session:
        yield session


@contextmanager
def _begin_write(sf: sessionmaker[Session], actor: str | None) -> Iterator[Session]:
    with sf() as session, session.begin():
        session.connection(execution_options={IMMEDIATE: True})
        set_actor(session, actor)
        yield session


class _QueuedWrites:
    """The writes of a :func:`pipelined_write` on a PostgreSQL server: BEGIN,
    the actor, every write and COMMIT go to the server together, in one round
    trip, when the transaction ends. The server runs them in order as one
    transaction; the first refusal rolls all of it back and is raised (as
    SQLAlchemy raises it) when the transaction ends."""

    def __init__(self, session: Session, actor: str | None) -> None:
        self.session, self.actor = session, actor
        self.pipeline: Any = None
        self.conn: Any = None
        self.raw: Any = None

    def begin(self, check: tuple[sa.Executable, Mapping[str, Any]] | None) -> Callable[[], Any]:
        if self.pipeline is not None:
            raise RuntimeError("the writes of this transaction have begun already")
        import psycopg

        conn = self.conn = self.session.connection()
        raw = self.raw = conn.connection.driver_connection
        try:
            return self._begin(conn, raw, check)
        except psycopg.Error as exc:  # the connection was lost: said as SQLAlchemy says it
            raise _driver_error(conn, raw, exc, "BEGIN") from None

    def _begin(self, conn: Any, raw: Any, check: tuple[sa.Executable, Mapping[str, Any]] | None
               ) -> Callable[[], Any]:
        self.pipeline = raw.pipeline()
        self.pipeline.__enter__()
        conn.exec_driver_sql("BEGIN")
        conn.execute(sa.text("SELECT set_config('getmeds.actor', :u, true)"),
                     {"u": self.actor or ""})
        if check is None:
            return lambda: None
        stmt, params = check
        # a callable value (a clock) is read as late as possible, just before it is sent
        sql, bound = _pipelined(stmt, conn.dialect).bound(
            {k: v() if callable(v) else v for k, v in params.items()})
        cur = raw.cursor()
        cur.execute(sql, bound)

        def answer() -> Any:
            """The check's one value, once the transaction has committed."""
            row = cur.fetchone()
            return None if row is None else row[0]
        return answer

    def end(self, failed: BaseException | None) -> None:
        """Send COMMIT (or, after ``failed``, roll back) and wait for the answer.
        The first refusal of the server is raised (a later statement of an
        aborted pipeline only says that it was skipped)."""
        import psycopg

        if self.pipeline is None:
            return
        conn, raw = self.conn, self.raw
        pipeline, self.pipeline = self.pipeline, None
        error: BaseException | None = None
        try:
            if failed is None:
                conn.exec_driver_sql("COMMIT")
        except sa.exc.DBAPIError as exc:  # an earlier statement's refusal, read meanwhile
            error = exc
        except sa.exc.PendingRollbackError as exc:  # the connection was lost meanwhile
            error = exc
        try:
            pipeline.__exit__(None, None, None)  # sends it all and waits for the answers
        except psycopg.Error as exc:
            if error is None:
                error = _driver_error(conn, raw, exc, "COMMIT")
        if error is not None or failed is not None:
            self._roll_back(raw)
            if _gone(raw):
                conn.invalidate()  # the pool connects anew
        if error is not None and failed is None:
            raise error

    @staticmethod
    def _roll_back(raw: Any) -> None:
        import psycopg

        try:
            if raw.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                raw.execute("ROLLBACK")
        except psycopg.Error:  # the connection is gone: the pool drops it
            pass


def _gone(raw: Any) -> bool:
    """Is this psycopg connection unusable (lost, or stuck in pipeline mode)?"""
    import psycopg

    try:
        return bool(raw.closed or raw.broken
                    or raw.pgconn.pipeline_status != psycopg.pq.PipelineStatus.OFF)
    except Exception:  # whatever it is, it is not usable
        return True


def _driver_error(conn: sa.Connection, raw: Any, exc: Exception, sql: str) -> sa.exc.DBAPIError:
    """A psycopg error raised outside SQLAlchemy, as SQLAlchemy raises one: a
    lost connection is invalidated (the pool connects anew) and marked so, and
    the reconnect-and-retry path (sync/retry.py) knows it."""
    import psycopg

    gone = _gone(raw)
    if gone:
        try:
            conn.invalidate()
        except Exception:  # it is being dropped anyway
            pass
    return sa.exc.DBAPIError.instance(sql, None, exc, psycopg.Error,  # type: ignore[return-value]
                                      connection_invalidated=gone)


@contextmanager
def pipelined_write(sf: sessionmaker[Session], actor: str | None) -> Iterator[Session]:
    """A write that reads first and then writes, with as few round trips as a
    server allows. On PostgreSQL the reads run outside a transaction (each
    statement sees what is committed; :func:`together` sends several at once)
    and lock nothing; :func:`begin_writes` starts the writes, which are queued
    and sent with BEGIN and COMMIT in one round trip: whatever the reads relied
    on must be checked by the first write, under its locks. On SQLite this is
    a :func:`write_transaction` (the write lock taken before the reads)."""
    bind = sf.kw.get("bind")
    if not pipelines(sf):
        with _begin_write(sf, actor) as session:
            yield session
        return
    assert isinstance(bind, Engine)
    with sf(bind=bind.execution_options(isolation_level="AUTOCOMMIT")) as session:
        writes = _QueuedWrites(session, actor)
        session.info["getmeds_writes"] = writes
        try:
            yield session
        except BaseException as exc:
            writes.end(exc)
            raise
        writes.end(None)


def pipelines(sf: sessionmaker[Session]) -> bool:
    """Does :func:`pipelined_write` send the writes of ``sf`` in one round trip
    without locking the reads (a PostgreSQL engine), or hold the write lock
    from the start (SQLite, or a session bound to one open connection)?"""
    bind = sf.kw.get("bind")
    return isinstance(bind, Engine) and bind.dialect.name == "postgresql"


def begin_writes(session: Session, check: tuple[sa.Executable, Mapping[str, Any]] | None = None
                 ) -> Callable[[], Any] | None:
    """From here on the statements of a :func:`pipelined_write` are writes whose
    results are not read. On a server ``check`` is its first statement: a
    SELECT of one value that raises if what the reads found is no longer so
    (a parameter given as a function, a clock, is called just before it is sent);
    the returned function gives its value once the transaction has committed.
    Without a pipeline (SQLite) nothing is checked and None is returned: the
    write lock was held before the reads."""
    writes = session.info.get("getmeds_writes")
    if writes is None:
        return None
    answer: Callable[[], Any] = writes.begin(check)
    return answer


@contextmanager
def read_session(sf: sessionmaker[Session]) -> Iterator[Session]:
    """A read whose statements see one snapshot of the database (a transaction)."""
    with sf() as session, session.begin():
        yield session


@contextmanager
def quick_read(sf: sessionmaker[Session], *, custom_plan: bool = False) -> Iterator[Session]:
    """A read of one statement (a page of a list, a search, a pick list). On a
    PostgreSQL server it runs outside a transaction, so it costs one round trip
    instead of three (BEGIN, the statement, COMMIT). Several statements that must
    agree with each other use :func:`read_session`.

    ``custom_plan``: the statements are planned for their values every time,
    never by a generic plan (searches, whose best plan depends on what is
    searched for)."""
    bind = sf.kw.get("bind")
    if isinstance(bind, Engine) and bind.dialect.name == "postgresql":
        options: dict[str, Any] = {"isolation_level": "AUTOCOMMIT"}
        if custom_plan:
            options["custom_plan"] = True
        with sf(bind=bind.execution_options(**options)) as session:
            yield session
    else:
        with read_session(sf) as session:
            yield session


# --------------------------------------------------------------------------- errors


def describe_operational_error(exc: BaseException, url: str | URL | None = None) -> GetMedsError:
    """Turn a driver error at connect time into a message a person can act on."""
    text = str(getattr(exc, "orig", None) or exc)
    low = text.lower()
    where = ""
    if url is not None:
        try:
            u = normalize_url(url)
            where = f" at {u.host or 'localhost'}:{u.port or 5432}" if u.host is not None else ""
        except GetMedsError:
            pass
    if ("password authentication failed" in low or "no password supplied" in low
            or "not permitted to log in" in low or ("role" in low and "does not exist" in low)):
        return AuthenticationFailed("Wrong username or password.")
    if "certificate" in low or "ssl" in low or "tls" in low:
        if "root certificate file" in low:
            return DatabaseUnavailable(
                f"The database server{where} requires a CA certificate file that was not "
                "found; check the sslrootcert path of the connection profile."
            )
        if "does not support ssl" in low:
            return DatabaseUnavailable(
                f"The database server{where} does not offer an encrypted connection, "
                "and this profile requires one."
            )
        return DatabaseUnavailable(
            f"The secure connection to the database server{where} failed: its certificate "
            "could not be verified. Ask IT to check the CA bundle and host name."
        )
    if "does not exist" in low and "database" in low:
        return DatabaseUnavailable(f"The database named in the connection does not exist{where}.")
    if "timeout" in low or "timed out" in low:
        return DatabaseUnavailable(f"The database server{where} did not answer in time.")
    if "could not translate host name" in low or "name or service not known" in low:
        return DatabaseUnavailable(f"The database server's host name{where} is not known.")
    if "connection refused" in low or "could not connect" in low or "connection failed" in low:
        return DatabaseUnavailable(
            f"The database server{where} cannot be reached; check the network or ask IT "
            "whether the server is running."
        )
    if "unable to open database file" in low:
        return DatabaseUnavailable("The embedded database file cannot be opened.")
    if "file is not a database" in low:
        return DatabaseUnavailable("The embedded database file is damaged or not a database.")
    return DatabaseUnavailable(f"The database cannot be used: {text.splitlines()[0]}")


def connect_check(engine: Engine) -> None:
    """Open one connection now, translating failures into a clear message. On a
    server the statement runs outside a transaction (one round trip, not three)."""
    try:
        with engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            conn.exec_driver_sql("SELECT 1")
    except sa.exc.DBAPIError as exc:
        raise describe_operational_error(exc, engine.url) from None


def pharmacy_time_zone(engine: Engine) -> str | None:
    """The pharmacy's time zone: on a server, the one set on its database (what
    its rules judge dates in; UTC when none is set); None for the embedded
    database (the workstation's own)."""
    if engine.dialect.name != "postgresql":
        return None
    with engine.connect() as conn:
        zone = conn.execute(sa.text("SELECT getmeds_pharmacy_time_zone()")).scalar()
    return str(zone) if zone else None


def set_pharmacy_time_zone(engine: Engine, name: str) -> None:
    """Set the server database's time zone (its owner or IT): the zone the
    database's rules judge dates in, and every workstation shows them in."""
    if engine.dialect.name != "postgresql":
        raise ValueError("the embedded database uses its workstation's time zone")
    with engine.connect() as conn:
        ok = conn.execute(sa.text("SELECT count(*) FROM pg_catalog.pg_timezone_names "
                                  "WHERE name = :n"), {"n": name}).scalar()
        if not ok:
            raise ValueError(f"{name!r} is not a time zone the server knows (an IANA name "
                             f"such as America/Chicago)")
        database = conn.execute(sa.text("SELECT current_database()")).scalar_one()
        ident = conn.dialect.identifier_preparer.quote_identifier(database)
        literal = name.replace("'", "''")
        conn.exec_driver_sql(f"ALTER DATABASE {ident} SET timezone = '{literal}'")
        conn.commit()


# ----------------------------------------------------------------------- migrations


def alembic_config(connection: sa.Connection | None = None) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("path_separator", "os")
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


@functools.cache
def _revisions() -> tuple[str, frozenset[str]]:
    """The migrations this version of GetMeds ships (read once: they cannot change)."""
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory.from_config(alembic_config())
    head = scripts.get_current_head()
    assert head is not None
    return head, frozenset(s.revision for s in scripts.walk_revisions())


def head_revision() -> str:
    return _revisions()[0]


def known_revisions() -> frozenset[str]:
    return _revisions()[1]


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    except sa.exc.DBAPIError as exc:
        raise describe_operational_error(exc, engine.url) from None


def has_tables(engine: Engine) -> bool:
    with engine.connect() as conn:
        names = sa.inspect(conn).get_table_names()
    return any(n != "alembic_version" and not n.startswith("sqlite_") for n in names)


def schema_state(engine: Engine) -> tuple[str | None, str, str]:
    """(current, head, state) with state one of: current, empty, older, newer, foreign."""
    current = current_revision(engine)
    head = head_revision()
    if current == head:
        return current, head, "current"
    if current is None:
        return current, head, "foreign" if has_tables(engine) else "empty"
    if current in known_revisions():
        return current, head, "older"
    return current, head, "newer"


def check_schema(engine: Engine) -> None:
    """Refuse a database this version does not know, with a one-line message."""
    current, head, state = schema_state(engine)
    if state == "current":
        return
    messages = {
        "empty": "The database is empty: ask IT to run 'getmeds-admin db upgrade' first.",
        "foreign": "The database holds tables that are not a GetMeds database.",
        "older": (
            f"The database schema ({current}) is older than this GetMeds ({head}): "
            "ask IT to run 'getmeds-admin db upgrade'."
        ),
        "newer": (
            f"The database schema ({current}) is newer than this GetMeds knows ({head}): "
            "install the newer version of GetMeds."
        ),
    }
    raise SchemaMismatch(messages[state], current=current, head=head)


def upgrade(engine: Engine, revision: str = "head", *, role_prefix: str | None = None) -> None:
    """Bring the database to ``revision`` (default: head).

    PostgreSQL: ``role_prefix`` names this pharmacy's group roles when the
    security migration creates them (default "getmeds_").
    """
    from alembic import command

    _, _, state = schema_state(engine)
    if state == "newer":
        check_schema(engine)
    if state == "foreign":
        check_schema(engine)
    if engine.dialect.name == "sqlite":
        upgrade_embedded(engine, revision)
        return
    with engine.begin() as conn:
        if role_prefix and conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT set_config('getmeds.role_prefix', :p, true)"),
                         {"p": role_prefix})
        command.upgrade(alembic_config(conn), revision)


def upgrade_embedded(engine: Engine, revision: str = "head", *,
                     keep_dangling: bool = False) -> None:
    """The embedded database migrates with foreign keys off, as SQLite requires
    for rebuilding a table that others refer to
    (https://sqlite.org/lang_altertable.html#otheralter), and every foreign key
    is checked before the migration commits. ``keep_dangling``: references the
    file held before to rows it does not hold are not an error (the offline
    replica: a ledger movement's fill outside its window); only one the
    upgrade broke is."""
    from alembic import command

    def dangling(conn: sa.Connection) -> collections.Counter[tuple[str, str]]:
        return collections.Counter((row[0], row[2]) for row in conn.exec_driver_sql(
            "PRAGMA foreign_key_check"))

    with engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        assert raw is not None
        raw.execute("PRAGMA foreign_keys = OFF")  # outside a transaction, as it must be
        try:
            with conn.begin():
                before = dangling(conn) if keep_dangling else collections.Counter()
                command.upgrade(alembic_config(conn), revision)
                broken = {k: n for k, n in dangling(conn).items() if n > before.get(k, 0)}
                if broken:
                    raise RuntimeError(f"the upgrade would break foreign keys: {broken}")
        finally:
            raw.execute("PRAGMA foreign_keys = ON")


def prepare_embedded(path: Path) -> tuple[Engine, Path | None]:
    """Open (creating or upgrading) the embedded database file.

    An existing file whose schema is older is first copied aside with the SQLite
    backup API; the copy's path is returned so the user can be told. A path that
    cannot be used (a file where a folder should be, no permission, a full disk,
    a file that is not a database) is DatabaseUnavailable naming the path and
    the problem.
    """
    try:
        return _prepare_embedded(path)
    except (OSError, sa.exc.DBAPIError, DatabaseUnavailable) as exc:
        raise DatabaseUnavailable(_unusable(path, exc)) from None


def _unusable(path: Path, exc: BaseException) -> str:
    import errno

    text = str(getattr(exc, "orig", None) or exc).lower()
    blocker = next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()
                    and p != path), None)
    if blocker is not None or isinstance(exc, NotADirectoryError):
        why = f"{blocker or path.parent} is a file, not a folder"
    elif path.exists() and path.is_dir():
        why = "that is a folder, not a database file"
    elif isinstance(exc, PermissionError) or "readonly" in text or "permission" in text:
        why = "this account may not write there"
    elif getattr(exc, "errno", None) == errno.ENOSPC or "full" in text:
        why = "the disk is full"
    elif "not a database" in text or "malformed" in text:
        why = "the file is not a GetMeds database (or it is damaged)"
    else:
        why = str(getattr(exc, "orig", None) or exc).strip() or type(exc).__name__
    return (f"The database at {path} cannot be opened: {why}. Choose another database, or "
            "ask IT to check the path.")


def _prepare_embedded(path: Path) -> tuple[Engine, Path | None]:
    from .config import data_dir

    own = path.parent.resolve() == data_dir().resolve()
    engine = make_engine(f"sqlite:///{path}")
    try:
        return _open_embedded(engine, path, own)
    except BaseException:
        engine.dispose()  # nothing of a database that cannot be used stays open
        raise


def _open_embedded(engine: Engine, path: Path, own: bool) -> tuple[Engine, Path | None]:
    connect_check(engine)
    # files an older version left readable by every account are narrowed
    private_files.secure_database(path, own_folder=own)
    _, _, state = schema_state(engine)
    backup: Path | None = None
    if state == "older":
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        backup = path.with_name(f"{path.stem}.before-upgrade-{stamp}{path.suffix}")
        sqlite_backup(engine, backup)
        log.info("embedded database copied to %s before upgrade", backup)
    if state in ("older", "empty"):
        upgrade(engine)
    check_schema(engine)
    return engine, backup


def sqlite_driver_connection(raw: PoolProxiedConnection) -> sqlite3.Connection:
    """The sqlite3 connection under a pooled connection of an embedded engine."""
    import sqlite3

    conn = raw.driver_connection
    if not isinstance(conn, sqlite3.Connection):
        raise TypeError(f"not an SQLite connection: {type(conn).__name__}")
    return conn


def sqlite_backup(engine: Engine, target: Path) -> None:
    """Consistent copy of a live SQLite database (sqlite3 backup API). Of an
    encrypted one (make_encrypted_engine): the file itself, its log written into
    it first, so the copy is as encrypted as the original, never plain."""
    import sqlite3

    # backups/ is GetMeds' own; a before-upgrade copy sits next to the database
    private_files.private_folder(target.parent, ours=target.parent.name == "backups")
    tmp = target.with_suffix(target.suffix + ".part")
    tmp.unlink(missing_ok=True)
    private_files.private_file(tmp)  # 0600 from the start (and so its journal)
    if engine.dialect.driver == "pysqlcipher":
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            shutil.copyfile(str(engine.url.database), tmp)
        shutil.move(tmp, target)
        private_files.narrow(target)
        return
    raw = engine.raw_connection()
    try:
        dest = sqlite3.connect(tmp)
        try:
            sqlite_driver_connection(raw).backup(dest)
        finally:
            dest.close()
    finally:
        raw.close()
    shutil.move(tmp, target)
    private_files.narrow(target)


def bulk_insert(conn: sa.Connection, table: sa.Table, columns: Sequence[str],
                rows: Iterable[Sequence[Any]]) -> int:
    """Insert many rows inside the caller's transaction: COPY on PostgreSQL,
    batches of executemany on SQLite. The table's triggers and constraints apply
    as to any insert. Returns the number of rows."""
    n = 0
    if conn.dialect.name == "postgresql":
        raw = conn.connection.driver_connection
        assert raw is not None
        cols = ", ".join(columns)
        with raw.cursor() as cur, cur.copy(f"COPY {table.name} ({cols}) FROM STDIN") as cp:
            for row in rows:
                cp.write_row(row)
                n += 1
        return n
    batch: list[dict[str, Any]] = []
    stmt = table.insert()
    for row in rows:
        batch.append(dict(zip(columns, row, strict=True)))
        if len(batch) >= 5000:
            conn.execute(stmt, batch)
            n += len(batch)
            batch = []
    if batch:
        conn.execute(stmt, batch)
        n += len(batch)
    return n


# ------------------------------------------------------------ statements together


class _Pipelined:
    """A SELECT compiled once for :func:`together`: its SQL, how its parameters
    are bound and how its columns are read, as SQLAlchemy itself would."""

    def __init__(self, stmt: sa.Executable, dialect: sa.Dialect) -> None:
        compiled = stmt.compile(dialect=dialect)  # type: ignore[attr-defined]
        self.compiled = compiled
        self.escaped = compiled.escaped_bind_names
        columns = compiled._result_columns
        self.keys = [c.keyname for c in columns]
        # how SQLAlchemy reads each column (psycopg's own types need nothing)
        self.procs = [c.type._cached_result_processor(dialect, None) for c in columns]
        self.row: Any = collections.namedtuple("Row", self.keys, rename=True)  # type: ignore[misc]

    def bound(self, given: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        """The SQL and its parameters (IN lists expanded, values converted)."""
        state = self.compiled.construct_expanded_state(dict(given), escape_names=False)
        procs = state.processors
        out = {self.escaped.get(k, k): procs[k](v) if k in procs else v
               for k, v in state.parameters.items()}
        return state.statement, out

    def rows(self, raw: Sequence[Sequence[Any]]) -> list[Any]:
        procs = self.procs
        if not any(procs):
            return [self.row._make(r) for r in raw]
        return [self.row._make(v if p is None else p(v) for p, v in zip(procs, r, strict=True))
                for r in raw]


@functools.lru_cache(maxsize=256)
def _pipelined(stmt: sa.Executable, dialect: sa.Dialect) -> _Pipelined:
    return _Pipelined(stmt, dialect)


def together(conn: sa.Connection,
             statements: Sequence[tuple[sa.Executable, Mapping[str, Any]]]) -> list[list[Any]]:
    """Run several SELECTs and return the rows of each (attribute access by
    column name, as SQLAlchemy's rows). On a PostgreSQL server they are sent
    together in one round trip (psycopg's pipeline mode) instead of one round
    trip each; elsewhere they run one after another. The statements must not
    depend on each other's results (one may use a scalar subquery instead)."""
    import psycopg

    if (conn.dialect.name != "postgresql" or len(statements) < 2
            or not psycopg.Pipeline.is_supported()):
        return [list(conn.execute(stmt, dict(params)).all()) for stmt, params in statements]
    prepared = [(_pipelined(stmt, conn.dialect), params) for stmt, params in statements]
    raw = conn.connection.driver_connection
    assert isinstance(raw, psycopg.Connection)
    out: list[list[Any]] = []
    sql = ""
    try:
        with raw.pipeline():
            cursors = []
            for p, params in prepared:
                cur = raw.cursor()
                sql, bound = p.bound(params)
                cur.execute(sql, bound)
                cursors.append(cur)
        # leaving the pipeline sends it and waits for every answer: one round trip
        for (p, _), cur in zip(prepared, cursors, strict=True):
            out.append(p.rows(cur.fetchall()))
    except psycopg.Error as exc:
        raise _driver_error(conn, raw, exc, sql) from exc
    return out
