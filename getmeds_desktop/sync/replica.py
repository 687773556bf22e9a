"""A workstation's offline replica: a local SQLite database with the server's
schema (the same migrations), holding what the workstation needs to work
alone, kept current from the server's change feed (migration 0026).

What it holds: the catalogue, lots, balances and the whole stock ledger (so
that ``ledger.verify`` holds on it), the controlled register, stocktakes and DEA
records, prescribers, staff and settings, and the patients of a window (every
patient with activity in the last two years by default: created or edited, or
a prescription written or edited, or a fill) with their prescriptions, fills
and what hangs from them. Everything is read with the workstation user's OWN
login: grants and row-level security decide what the replica holds, and a
table the login may not read stays empty.

The feed: every replicated row carries ``change_xid``, the id of the
transaction that last wrote it; deletes leave tombstones. Each sync reads in
one REPEATABLE READ snapshot and keeps that snapshot's position as its cursor:
its xmax and the transactions it saw in progress (xip). Every other transaction
below xmax had ended before the snapshot, so what it committed was visible to
this sync or an earlier one; a transaction that ends later has an id at or
above xmax or is one of those in progress. The next pull therefore reads the
tombstones and rows stamped at or above xmax, or by one of those transactions:
nothing committed is skipped, whatever the commit order, and nothing is read
twice. (A cursor at the snapshot's xmin alone would be correct as well, but
xids are counted across the whole server: one long transaction in any
database would make every pull read again everything written since.)

Applying server rows: the server's rows are copied as they are, balances
included. The embedded schema's triggers would derive balances and register
entries a second time, write audit rows, or refuse to replace a "permanent"
row, so the apply runs in one SQLite transaction with foreign keys off (a fill
outside the window is referred to by a ledger movement) and the triggers of
the tables it writes dropped, and puts them back before it commits; a reader
or a writer on another connection never sees the schema without them. Offline
writes (the outbox) run on the replica with every trigger in place.

Replica-only bookkeeping (the cursor, the login and database it was made from,
the tables it could read, the last sync) lives in ``replica_state``, made here
and not by a migration.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import MappingProxyType
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from .. import db, private_files
from ..errors import GetMedsError
from ..models import Base, ChangeTombstone
from ..services import clock

log = logging.getLogger(__name__)

__all__ = ["DEFAULT_WINDOW", "REPLICATED", "FeedPosition", "PullResult", "Replica",
           "ReplicaMismatch", "SyncCancelled", "SyncResult"]

DEFAULT_WINDOW = dt.timedelta(days=730)
BATCH = 5000  # rows per keyset batch of one table
PATIENT_BATCH = 2000  # patients whose records are read together

# Whole tables, in an order that keeps parents before children.
REFERENCE = (
    "app_settings", "prescribers", "staff", "categories", "suppliers", "products",
    "product_ingredients", "product_drug_classes", "product_stock", "stock_lots",
    "stocktakes", "stocktake_lines", "dea_forms", "dea_inventories", "dea_inventory_lines",
    "stock_movements", "controlled_register", "knowledge_imports",
)
# Tables of the patient window: the path from a row to its patient, as
# (foreign key column, parent table) hops ending at ``patients``.
_RX = (("prescription_id", "prescriptions"), ("patient_id", "patients"))
_FILL = (("dispense_id", "dispenses"), *_RX)
WINDOWED: dict[str, tuple[tuple[str, str], ...]] = {
    "patients": (),
    "patient_allergies": (("patient_id", "patients"),),
    "patient_conditions": (("patient_id", "patients"),),
    "patient_feedback": (("patient_id", "patients"),),
    "legacy_prescriptions": (("patient_id", "patients"),),
    "legacy_dispenses": (("patient_id", "patients"),),
    "prescriptions": (("patient_id", "patients"),),
    "prescription_transfers": _RX,
    "dispenses": _RX,
    "dispense_warnings": _FILL,
    "label_prints": _FILL,
    "recall_notices": _FILL,
}
REPLICATED = (*REFERENCE, *WINDOWED)

STATE_TABLE = "replica_state"
PRUNED = "*pruned*"  # the tombstone marking where pruned tombstones end (0026)
# the extra column naming a windowed row's patient (no table has a column so named)
_PATIENT = "replica_patient"


@dataclasses.dataclass(frozen=True)
class FeedPosition:
    """Where the feed was read up to: a server snapshot's xmax and the
    transactions that snapshot saw in progress."""

    xmax: int
    in_flight: tuple[int, ...] = ()

    def missed(self, pruned_below: int | None) -> bool:
        """Whether tombstones up to ``pruned_below`` (gone from the server) may
        hold one this position has not read."""
        if pruned_below is None:
            return False
        return pruned_below >= self.xmax or any(x <= pruned_below for x in self.in_flight)

    def newer(self, stamp: sa.ColumnElement[Any]) -> sa.ColumnElement[bool]:
        """Rows written after this position."""
        if not self.in_flight:
            return stamp >= self.xmax
        return sa.or_(stamp >= self.xmax, stamp.in_(list(self.in_flight)))


class SyncCancelled(GetMedsError):
    """The first sync was cancelled; the replica is as it was before it."""


class ReplicaMismatch(GetMedsError):
    """The replica was made from another database or for another login."""


@dataclasses.dataclass(frozen=True)
class SyncResult:
    """What a first sync copied: rows per table, patients of the window."""

    rows: Mapping[str, int]
    patients: int
    cursor: int
    seconds: float


@dataclasses.dataclass(frozen=True)
class PullResult:
    """What a pull (or a refetch) changed in the replica: rows written and rows
    deleted per table, and the keys of both per table (a key is the primary
    key's value, a tuple for a key of several columns)."""

    upserted: Mapping[str, int]
    deleted: Mapping[str, int]
    changed: Mapping[str, frozenset[Any]]
    cursor: int

    @property
    def total(self) -> int:
        return sum(self.upserted.values()) + sum(self.deleted.values())


def _table(name: str) -> sa.Table:
    return Base.metadata.tables[name]


def _key_columns(table: sa.Table) -> list[sa.Column[Any]]:
    return list(table.primary_key.columns)


@functools.cache
def _key_index(name: str) -> tuple[int, ...]:
    """Where a table's primary key columns are in its rows (table column order)."""
    t = _table(name)
    names = [c.name for c in t.columns]
    return tuple(names.index(c.name) for c in _key_columns(t))


def _key_of(table: sa.Table, row: Sequence[Any]) -> Any:
    """The primary key of a row given in table column order."""
    where = _key_index(table.name)
    if len(where) == 1:
        return row[where[0]]
    return tuple(row[i] for i in where)


def _patient_select(name: str) -> tuple[sa.Select[Any], sa.ColumnElement[Any]]:
    """SELECT the rows of windowed table ``name`` with their patient's id, and
    the expression of that id (to filter on)."""
    t = _table(name)
    path = WINDOWED[name]
    if not path:
        patient: sa.ColumnElement[Any] = t.c.id
        return sa.select(t, patient.label(_PATIENT)), patient
    joined: sa.FromClause = t
    current: sa.Table = t
    for column, parent_name in path[:-1]:
        parent = _table(parent_name)
        joined = joined.join(parent, parent.c.id == current.c[column])
        current = parent
    patient = current.c[path[-1][0]]
    return sa.select(t, patient.label(_PATIENT)).select_from(joined), patient


def _row(table: sa.Table, row: Any) -> tuple[Any, ...]:
    """A server row (SQLAlchemy's, or ``db.together``'s named tuple) as the
    values of the table's columns in order, without a windowed row's patient."""
    return tuple(row)[:len(table.columns)]


def _ids_in(column: sa.ColumnElement[Any], ids: Sequence[uuid.UUID]) -> sa.ColumnElement[bool]:
    """``column = ANY(:ids)``: one array parameter, not one parameter per id."""
    return column == sa.any_(sa.bindparam(None, list(ids), type_=postgresql.ARRAY(sa.Uuid())))


def _tombstone_key(table: sa.Table, key: Mapping[str, Any]) -> Any:
    """A tombstone's key (JSON) as the primary key's value (a tuple for several
    columns)."""
    out: list[Any] = []
    for col in _key_columns(table):
        value = key[col.name]
        if isinstance(col.type, sa.Uuid):
            value = uuid.UUID(str(value))
        elif isinstance(col.type, sa.Integer):
            value = int(value)
        out.append(value)
    return out[0] if len(out) == 1 else tuple(out)


def _key_filter(table: sa.Table, keys: Iterable[Any]) -> sa.ColumnElement[bool]:
    cols = _key_columns(table)
    keys = list(keys)
    if len(cols) == 1:
        return cols[0].in_(keys)
    return sa.tuple_(*cols).in_([tuple(k) for k in keys])


def _readable(head: Mapping[Any, Any]) -> list[str]:
    """The replicated tables the login may read, in order; a windowed table is
    read through its parents (a fill through its prescription), so only when
    it may read those too."""
    may = {name for name in REPLICATED if head[name]}
    return [name for name in REPLICATED if name in may
            and all(parent in may for _, parent in WINDOWED.get(name, ()))]


def _pipelinable(name: str) -> bool:
    """``db.together`` reads a table's rows as SQLAlchemy does, except NUMERIC
    columns (their reading depends on the type the server answers with)."""
    return not any(isinstance(c.type, sa.Numeric) and not isinstance(c.type, sa.Float)
                   for c in _table(name).columns)


def _fetch(server: sa.Connection, stmts: Sequence[tuple[str, sa.Select[Any]]]
           ) -> dict[str, list[Any]]:
    """Several tables' statements: those ``db.together`` can read in one round
    trip, the others one by one."""
    together = [(name, stmt) for name, stmt in stmts if _pipelinable(name)]
    out = dict(zip([n for n, _ in together],
                   db.together(server, [(s, {}) for _, s in together]), strict=True))
    for name, stmt in stmts:
        if name not in out:
            out[name] = list(server.execute(stmt))
    return out


# ------------------------------------------------------------------- applying


class _Apply:
    """One SQLite write transaction that copies server rows as they are: foreign
    keys off, and the triggers of each table it writes dropped before its first
    write and made again (from their own SQL) before the commit. A failure rolls
    everything back, the triggers included."""

    def __init__(self, conn: sa.Connection, *, keys: bool = True) -> None:
        self.conn = conn
        self.keys = keys  # keep the keys of what changed (a first sync does not)
        self._writers: dict[str, tuple[str, list[Any]]] = {}
        self._triggers: dict[str, list[str]] = {}
        self.upserted: dict[str, int] = {}
        self.deleted: dict[str, int] = {}
        self.changed: dict[str, set[Any]] = {}

    def quiet(self, name: str) -> None:
        if name in self._triggers:
            return
        found = self.conn.exec_driver_sql(
            "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = ?",
            (name,)).all()
        self._triggers[name] = [sql for _, sql in found]
        for trigger, _ in found:
            self.conn.exec_driver_sql(f'DROP TRIGGER "{trigger}"')

    def restore(self) -> None:
        for statements in self._triggers.values():
            for sql in statements:
                self.conn.exec_driver_sql(sql)
        self._triggers.clear()

    def _writer(self, name: str) -> tuple[str, list[Any]]:
        """The INSERT OR REPLACE of a table's rows and how SQLAlchemy converts
        each column's value for SQLite (done here once per value, without
        building a statement per row)."""
        found = self._writers.get(name)
        if found is None:
            t = _table(name)
            cols = ", ".join(f'"{c.name}"' for c in t.columns)
            marks = ", ".join("?" for _ in t.columns)
            found = (f'INSERT OR REPLACE INTO "{name}" ({cols}) VALUES ({marks})',
                     [c.type._cached_bind_processor(self.conn.dialect) for c in t.columns])
            self._writers[name] = found
        return found

    def upsert(self, name: str, rows: Sequence[Sequence[Any]]) -> None:
        """Write rows given as their columns' values in table order."""
        if not rows:
            return
        self.quiet(name)
        t = _table(name)
        sql, procs = self._writer(name)
        self.conn.exec_driver_sql(sql, [
            tuple(v if p is None or v is None else p(v) for p, v in zip(procs, r, strict=True))
            for r in rows])
        self.upserted[name] = self.upserted.get(name, 0) + len(rows)
        if self.keys:
            self.changed.setdefault(name, set()).update(_key_of(t, r) for r in rows)

    def delete(self, name: str, keys: Iterable[Any], *, count: bool = True) -> None:
        keys = list(keys)
        if not keys:
            return
        self.quiet(name)
        t = _table(name)
        gone = 0
        for i in range(0, len(keys), 500):
            part = keys[i:i + 500]
            gone += self.conn.execute(t.delete().where(_key_filter(t, part))).rowcount or 0
        if count and gone:
            self.deleted[name] = self.deleted.get(name, 0) + gone
            self.changed.setdefault(name, set()).update(keys)

    def clear(self, name: str) -> None:
        t = _table(name)
        if self.conn.execute(sa.select(sa.exists().select_from(t))).scalar():
            self.quiet(name)
            self.conn.execute(t.delete())

    def result(self, cursor: int) -> PullResult:
        return PullResult(
            upserted=MappingProxyType(dict(self.upserted)),
            deleted=MappingProxyType(dict(self.deleted)),
            changed=MappingProxyType({k: frozenset(v) for k, v in self.changed.items()}),
            cursor=cursor)


# ------------------------------------------------------------------ the replica


class Replica:
    """The replica file and what a sync needs. ``open`` it; run services on
    ``session_factory()``; ``first_sync`` once, ``pull`` after each change
    notification and on a timer, ``refetch`` after replaying offline writes."""

    def __init__(self, path: Path, engine: Engine, window: dt.timedelta) -> None:
        self.path = path
        self.engine = engine
        self.window = window
        self._sf = db.session_factory(engine)

    # ------------------------------------------------------------ file

    @classmethod
    def open(cls, path: Path, *, window: dt.timedelta = DEFAULT_WINDOW,
             key: bytes | None = None) -> Replica:
        """Create or upgrade the replica at ``path`` (a copy of an older one is
        kept beside it first). Its folder is the replica's own: made (or narrowed
        to) 0700; the database, its side files and copies 0600. With ``key``
        (the app always gives one) it is encrypted at rest, its copies too
        (db.make_encrypted_engine; a key that does not open it: db.WrongKey)."""
        path = Path(path)
        private_files.private_folder(path.parent, ours=True)
        engine = (db.make_encrypted_engine(path, key) if key is not None
                  else db.make_engine(f"sqlite:///{path}"))
        try:
            db.connect_check(engine)
            private_files.secure_database(path, own_folder=True)
            _, _, state = db.schema_state(engine)
            if state == "older":  # the outbox's waiting writes are in it too
                stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
                db.sqlite_backup(engine, path.with_name(
                    f"{path.stem}.before-upgrade-{stamp}{path.suffix}"))
            if state in ("older", "empty"):
                # references the replica held to rows outside its window (a
                # ledger movement's fill) are not an error; one the upgrade broke is
                db.upgrade_embedded(engine, keep_dangling=True)
            db.check_schema(engine)
        except BaseException:
            engine.dispose()
            raise
        with engine.begin() as conn:
            conn.exec_driver_sql(
                f"CREATE TABLE IF NOT EXISTS {STATE_TABLE} "
                "(name TEXT PRIMARY KEY, value TEXT NOT NULL)")
        return cls(path, engine, window)

    def close(self) -> None:
        self.engine.dispose()

    def session_factory(self) -> sessionmaker[Session]:
        return self._sf

    # ------------------------------------------------------------ state

    def state(self) -> dict[str, str]:
        with self.engine.connect() as conn:
            return dict(conn.exec_driver_sql(
                f"SELECT name, value FROM {STATE_TABLE}").all())

    @property
    def cursor(self) -> FeedPosition | None:
        state = self.state()
        value = state.get("cursor")
        if value is None:
            return None
        return FeedPosition(int(value), tuple(json.loads(state.get("in_flight", "[]"))))

    @property
    def synced_at(self) -> dt.datetime | None:
        value = self.state().get("synced_at")
        return dt.datetime.fromisoformat(value) if value else None

    @staticmethod
    def _put_state(conn: sa.Connection, **values: str) -> None:
        for name, value in values.items():
            conn.exec_driver_sql(
                f"INSERT OR REPLACE INTO {STATE_TABLE} (name, value) VALUES (?, ?)",
                (name, value))

    # ------------------------------------------------------------ local transaction

    @contextmanager
    def _applying(self, *, keys: bool = True) -> Iterator[_Apply]:
        with self.engine.connect() as conn:
            raw = conn.connection.dbapi_connection
            assert raw is not None
            raw.execute("PRAGMA foreign_keys = OFF")  # outside a transaction, as it must be
            try:
                with conn.execution_options(**{db.IMMEDIATE: True}).begin():
                    apply = _Apply(conn, keys=keys)
                    try:
                        yield apply
                    finally:
                        # on failure the rollback puts them back anyway
                        apply.restore()
            finally:
                raw.execute("PRAGMA foreign_keys = ON")

    # ------------------------------------------------------------ server reads

    @staticmethod
    @contextmanager
    def _snapshot(server_sf: sessionmaker[Session]) -> Iterator[sa.Connection]:
        """One REPEATABLE READ transaction on the server: every read of a sync
        sees one snapshot, the one whose position becomes the cursor."""
        with server_sf() as s, s.begin():
            conn = s.connection(execution_options={"isolation_level": "REPEATABLE READ"})
            if conn.dialect.name != "postgresql":
                raise GetMedsError("A replica is made from a PostgreSQL server only.")
            yield conn

    @staticmethod
    def _head() -> sa.Select[Any]:
        """The snapshot's xmin, the login, the database and the tables it may read."""
        checks = [sa.func.has_table_privilege(
            sa.func.current_schema().concat("." + name), "SELECT").label(name)
            for name in REPLICATED]
        return sa.select(
            sa.cast(sa.cast(sa.func.pg_snapshot_xmax(sa.func.pg_current_snapshot()), sa.Text),
                    sa.BigInteger).label("xmax"),
            sa.literal_column(
                "ARRAY(SELECT x::text::bigint FROM pg_catalog.pg_snapshot_xip("
                "pg_catalog.pg_current_snapshot()) AS x)").label("xip"),
            sa.literal_column("session_user").label("login"),
            sa.func.current_database().label("database"),
            *checks)

    def _check_identity(self, login: str, database: str, *, first: bool = False) -> None:
        """A replica is kept current from one database, for one login (a first
        sync replaces everything, so it may make it for another)."""
        state = self.state()
        made_for = (state.get("server_user"), state.get("server_database"))
        if made_for == (None, None) or first:
            return
        if made_for != (login, database):
            raise ReplicaMismatch(
                f"This workstation's offline copy was made for {made_for[0]} from the "
                f"database {made_for[1]}; it cannot be kept current as {login} from "
                f"{database}. Make a new offline copy (first sync).")

    def _check_readable(self, readable: Sequence[str]) -> None:
        """The rows of a table the login may now read but could not at the last
        sync were never copied (the feed brings changes only)."""
        before = self.state().get("readable")
        gained = set(readable) - set(json.loads(before)) if before else set()
        if gained:
            raise ReplicaMismatch(
                "This login may now read more than when the workstation's offline copy "
                f"was made ({', '.join(sorted(gained))}). Make a new offline copy (first "
                "sync).")

    # ------------------------------------------------------------ first sync

    def first_sync(self, server_sf: sessionmaker[Session],
                   progress: Callable[[int, int], None] | None = None,
                   cancelled: Callable[[], bool] | None = None) -> SyncResult:
        """Copy everything the login may read (the patients of the window and
        what is theirs) into the replica, replacing what it held. One server
        snapshot and one local transaction: a cancel (``SyncCancelled``) or a
        failure leaves the replica as it was. ``progress(done, total)`` counts
        rows of the whole tables plus one per patient of the window."""
        started = time.monotonic()
        with self._snapshot(server_sf) as server, self._applying(keys=False) as apply:
            head = server.execute(self._head()).one()._mapping
            self._check_identity(head["login"], head["database"], first=True)
            readable = set(_readable(head))
            since = clock.now() - self.window
            window_ids = self._window(server, readable, since)
            counts = self._counts(server, readable)
            total = sum(counts.values()) + len(window_ids)
            done = 0
            if progress is not None:
                progress(0, total)

            def step(n: int) -> None:
                nonlocal done
                done += n
                if cancelled is not None and cancelled():
                    raise SyncCancelled("The offline copy was not made: the first sync "
                                        "was cancelled.")
                if progress is not None:
                    progress(done, total)

            for name in REPLICATED:
                apply.clear(name)
            for name in REFERENCE:
                if name not in readable:
                    continue
                for rows in self._whole(server, name):
                    apply.upsert(name, rows)
                    step(len(rows))
            for i in range(0, len(window_ids), PATIENT_BATCH):
                part = window_ids[i:i + PATIENT_BATCH]
                self._copy_patients(server, apply, readable, part)
                step(len(part))
            self._put_state(
                apply.conn, cursor=str(head["xmax"]), in_flight=json.dumps(list(head["xip"])),
                server_user=head["login"],
                server_database=head["database"], synced_at=clock.now().isoformat(),
                window_since=since.isoformat(), readable=json.dumps(sorted(readable)))
            copied = dict(apply.upserted)
        seconds = time.monotonic() - started
        log.info("replica first sync: %d rows, %d patients of the window, %.1f s",
                 sum(copied.values()), len(window_ids), seconds)
        return SyncResult(rows=MappingProxyType(copied), patients=len(window_ids),
                          cursor=int(head["xmax"]), seconds=seconds)

    @staticmethod
    def _counts(server: sa.Connection, readable: set[str]) -> dict[str, int]:
        names = [n for n in REFERENCE if n in readable]
        stmts: list[tuple[sa.Executable, Mapping[str, Any]]] = [
            (sa.select(sa.func.count()).select_from(_table(n)), {}) for n in names]
        return {n: int(rows[0][0]) for n, rows in zip(names, db.together(server, stmts),
                                                      strict=True)}

    @staticmethod
    def _window(server: sa.Connection, readable: set[str], since: dt.datetime
                ) -> list[uuid.UUID]:
        """The patients with activity since ``since`` that the login may read."""
        if "patients" not in readable:
            return []
        p = _table("patients")
        parts: list[sa.Select[Any]] = [sa.select(p.c.id).where(
            sa.or_(p.c.created_at >= since, p.c.updated_at >= since))]
        if "prescriptions" in readable:
            rx = _table("prescriptions")
            parts.append(sa.select(rx.c.patient_id).where(
                sa.or_(rx.c.created_at >= since, rx.c.updated_at >= since)))
            if "dispenses" in readable:
                d = _table("dispenses")
                parts.append(sa.select(rx.c.patient_id).join(d, d.c.prescription_id == rx.c.id)
                             .where(d.c.dispensed_at >= since))
        union = sa.union(*parts).subquery()
        # only patients the login can read themselves
        stmt = sa.select(p.c.id).where(p.c.id.in_(sa.select(union.c[0]))).order_by(p.c.id)
        return list(server.execute(stmt).scalars())

    @staticmethod
    def _whole(server: sa.Connection, name: str) -> Iterator[list[tuple[Any, ...]]]:
        """A whole table in keyset batches by primary key."""
        t = _table(name)
        cols = _key_columns(t)
        last: tuple[Any, ...] | None = None
        while True:
            stmt = sa.select(t).order_by(*cols).limit(BATCH)
            if last is not None:
                stmt = stmt.where(sa.tuple_(*cols) > sa.tuple_(*last))
            rows = [_row(t, r) for r in server.execute(stmt)]
            if not rows:
                return
            yield rows
            if len(rows) < BATCH:
                return
            key = _key_of(t, rows[-1])
            last = key if len(cols) > 1 else (key,)

    @staticmethod
    def _copy_patients(server: sa.Connection, apply: _Apply, readable: set[str],
                       patient_ids: Sequence[uuid.UUID]) -> None:
        """Every row of the windowed tables that belongs to these patients, in
        one round trip."""
        names = [n for n in WINDOWED if n in readable]
        stmts: list[tuple[str, sa.Select[Any]]] = []
        for name in names:
            stmt, patient = _patient_select(name)
            stmts.append((name, stmt.where(_ids_in(patient, patient_ids))))
        found = _fetch(server, stmts)
        for name in names:
            t = _table(name)
            apply.upsert(name, [_row(t, r) for r in found[name]])

    # ------------------------------------------------------------ pull

    def pull(self, server_sf: sessionmaker[Session]) -> PullResult:
        """Apply what changed on the server since the cursor: deletes first, then
        the rows written (as they are now), then the records of patients who came
        into the window (a patient not in the replica with a row that changed).
        Tables the login may no longer read are emptied."""
        cursor = self.cursor
        if cursor is None:
            raise ReplicaMismatch("This workstation has no offline copy yet: run the first "
                                  "sync.")
        with self._snapshot(server_sf) as server, self._applying() as apply:
            # first the snapshot and what the login may read (a statement on a
            # table it may not read would end the transaction)
            head = server.execute(self._head()).one()._mapping
            self._check_identity(head["login"], head["database"])
            readable = _readable(head)
            self._check_readable(readable)
            tomb = _table(ChangeTombstone.__tablename__)
            tomb_stmt = (sa.select(tomb.c.table_name, tomb.c.row_key)
                         .where(cursor.newer(tomb.c.change_xid),
                                tomb.c.table_name.in_(readable))
                         .order_by(tomb.c.change_xid, tomb.c.id))
            # the tombstones and which tables changed in one round trip, then the
            # rows of the tables that did (a fill: five or six)
            stamped = sa.select(*(
                sa.exists().where(cursor.newer(_table(name).c.change_xid)).label(name)
                for name in readable))
            pruned = sa.select(sa.func.max(tomb.c.change_xid).label("below")).where(
                tomb.c.table_name == PRUNED)
            tombstones, flags, horizon = db.together(
                server, [(tomb_stmt, {}), (stamped, {}), (pruned, {})])
            if cursor.missed(horizon[0].below):
                raise ReplicaMismatch(
                    "This workstation's offline copy is older than the deletions the "
                    "server keeps (pruned). Make a new offline copy (first sync).")
            changed = [name for name in readable if getattr(flags[0], name)]
            for name in REPLICATED:
                if name not in readable:
                    apply.clear(name)
            for row in tombstones:
                t = _table(row.table_name)
                key = row.row_key if isinstance(row.row_key, dict) else json.loads(row.row_key)
                apply.delete(row.table_name, [_tombstone_key(t, key)])
            firsts = _fetch(server, [(name, self._changes(name, cursor, None))
                                     for name in changed])
            patients_seen: set[uuid.UUID] = set()
            for name in changed:
                self._apply_changes(server, apply, name, cursor, firsts[name], patients_seen)
            self._enter_window(server, apply, set(readable), patients_seen)
            self._put_state(apply.conn, cursor=str(head["xmax"]),
                            in_flight=json.dumps(list(head["xip"])),
                            synced_at=clock.now().isoformat(),
                            readable=json.dumps(sorted(readable)))
            result = apply.result(int(head["xmax"]))
        if result.total:
            log.info("replica pull: %s written, %s deleted", dict(result.upserted),
                     dict(result.deleted))
        return result

    @staticmethod
    def _changes(name: str, cursor: FeedPosition, after: tuple[Any, ...] | None
                 ) -> sa.Select[Any]:
        """A batch of ``name``'s rows written after ``cursor``, in (stamp,
        key) order, after ``after``."""
        t = _table(name)
        cols = [t.c.change_xid, *_key_columns(t)]
        if name in WINDOWED:
            stmt, _patient = _patient_select(name)
        else:
            stmt = sa.select(t)
        stmt = stmt.where(cursor.newer(t.c.change_xid)).order_by(*cols).limit(BATCH)
        if after is not None:
            stmt = stmt.where(sa.tuple_(*cols) > sa.tuple_(*after))
        return stmt

    def _apply_changes(self, server: sa.Connection, apply: _Apply, name: str,
                       cursor: FeedPosition,
                       rows: list[Any], patients_seen: set[uuid.UUID]) -> None:
        t = _table(name)
        stamp = [c.name for c in t.columns].index("change_xid")
        while rows:
            if name in WINDOWED:  # the patient comes last
                patients_seen.update(self._not_here(apply, {r[-1] for r in rows}))
            batch = [_row(t, r) for r in rows]
            apply.upsert(name, batch)
            if len(rows) < BATCH:
                return
            key = _key_of(t, batch[-1])
            after = (batch[-1][stamp], *(key if isinstance(key, tuple) else (key,)))
            rows = list(server.execute(self._changes(name, cursor, after)))

    @staticmethod
    def _not_here(apply: _Apply, patient_ids: set[uuid.UUID]) -> set[uuid.UUID]:
        """Those of these patients the replica does not hold (yet)."""
        p = _table("patients")
        seen = sorted(patient_ids)
        have: set[uuid.UUID] = set()
        for i in range(0, len(seen), 500):
            have.update(apply.conn.execute(
                sa.select(p.c.id).where(p.c.id.in_(seen[i:i + 500]))).scalars())
        return patient_ids - have

    def _enter_window(self, server: sa.Connection, apply: _Apply, readable: set[str],
                      newcomers_seen: set[uuid.UUID]) -> None:
        """Patients who were not in the replica before this pull and have a row
        in it came into the window (new, or active again): copy all their
        records, those from before the window too."""
        newcomers = sorted(newcomers_seen)
        for i in range(0, len(newcomers), PATIENT_BATCH):
            self._copy_patients(server, apply, readable, newcomers[i:i + PATIENT_BATCH])

    # ------------------------------------------------------------ refetch

    def refetch(self, server_sf: sessionmaker[Session],
                rows: Mapping[str, set[uuid.UUID]]) -> PullResult:
        """Replace the replica's copies of these rows by the server's, as they
        are now (rows gone from the server, or that the login may not read, are
        deleted here); tables the replica does not hold are left out. For
        movements, their lots' and products' balances and their register entries
        are read again too: the local triggers had moved them when the movements
        were written here."""
        wanted: dict[str, set[Any]] = {name: set(ids) for name, ids in rows.items()
                                       if ids and name in REPLICATED}
        moved = wanted.get("stock_movements", set())
        with self._snapshot(server_sf) as server, self._applying() as apply:
            head = server.execute(self._head()).one()._mapping
            self._check_identity(head["login"], head["database"])
            readable = set(_readable(head))
            if moved and "stock_movements" in readable:
                self._balances_of(server, apply.conn, moved, wanted)
            names = sorted(wanted, key=REPLICATED.index)
            asked = [name for name in names if name in readable]
            stmts: list[tuple[str, sa.Select[Any]]] = []
            for name in asked:
                t = _table(name)
                stmts.append((name, sa.select(t).where(_key_filter(t, wanted[name]))))
            found_in = _fetch(server, stmts)
            reg = _table("controlled_register")
            registered: list[Any] = []
            if moved and "controlled_register" in readable:
                registered = list(server.execute(
                    sa.select(reg).where(reg.c.movement_id.in_(list(moved)))))
            for name in names:
                found = found_in.get(name, [])
                apply.delete(name, wanted[name], count=False)
                t = _table(name)
                rows_found = [_row(t, r) for r in found]
                apply.upsert(name, rows_found)
                gone = wanted[name] - {_key_of(t, r) for r in rows_found}
                if gone:
                    apply.deleted[name] = apply.deleted.get(name, 0) + len(gone)
                    apply.changed.setdefault(name, set()).update(gone)
            if moved:
                apply.quiet("controlled_register")
                apply.conn.execute(reg.delete().where(reg.c.movement_id.in_(list(moved))))
                if "controlled_register" in readable:
                    apply.upsert("controlled_register", [_row(reg, r) for r in registered])
            position = self.cursor
            return apply.result(position.xmax if position is not None else 0)

    @staticmethod
    def _balances_of(server: sa.Connection, local: sa.Connection, moved: set[Any],
                     wanted: dict[str, set[Any]]) -> None:
        """The lots and products of these movements, here and on the server."""
        m, lots = _table("stock_movements"), _table("stock_lots")
        ids = list(moved)
        stmt = (sa.select(lots.c.id, lots.c.product_id)
                .join(m, m.c.lot_id == lots.c.id).where(m.c.id.in_(ids)))
        found = [*local.execute(stmt).all(), *server.execute(stmt)]
        wanted.setdefault("stock_lots", set()).update(lot for lot, _ in found)
        wanted.setdefault("product_stock", set()).update(product for _, product in found)
