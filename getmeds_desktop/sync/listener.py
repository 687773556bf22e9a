"""Live changes from other workstations, and the health of the connection.

A :class:`ChangeListener` keeps one dedicated PostgreSQL connection that
LISTENs on the channel the database's triggers notify (migration 0004). It runs
in its own thread and hands the GUI plain :class:`Change` records in batches,
and tells it whether the server is reachable:

* ``connected``: listening;
* ``reconnecting``: the connection dropped (server restart, network cut,
  ``pg_terminate_backend``); it tries again with backoff;
* ``offline``: still unreachable after ``offline_after`` seconds; it keeps
  trying every ``max_backoff`` seconds.

After a reconnect it sends one ``Change("*")``: notifications sent while it was
away are lost, so whatever is on screen should be read again.

A notification says only which row changed: ``{"t": table, "id": id, "op": ...}``
(migration 0007), because any login may LISTEN, and anyone may send a
notification (``pg_notify``). So a payload is a hint, never data: anything else
in it is ignored, and what a change affects (a dispense's prescription, product
and patient; a movement's lot and product) is looked up here, on the listener's
own connection, under the signed-in login's privileges, with one query per
batch. Row-level security hides what this login may not see; a forged or
hidden id resolves to nothing, and the worst a forged notification can cause is
a re-read of rows the screens show.

No Qt here: the GUI wraps the callbacks into signals (ui/sync.py).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy.engine import Engine

log = logging.getLogger(__name__)

CHANNEL = "getmeds_changes"
EVERYTHING = "*"


# The tables the triggers announce.
TABLES = frozenset({"patients", "products", "stock_lots", "stock_movements", "prescriptions",
                    "dispenses"})
# Changes whose consequences are looked up (what the row refers to).
LOOKED_UP = ("dispenses", "stock_movements", "stock_lots")


@dataclasses.dataclass(frozen=True)
class Change:
    """One changed row (or, with ``id`` None, "many rows of this table").

    ``product``, ``patient``, ``rx`` and ``lot`` are never taken from a
    notification: :func:`resolve` fills them in from the database."""

    table: str
    id: uuid.UUID | None = None
    op: str = ""
    product: uuid.UUID | None = None
    patient: uuid.UUID | None = None
    rx: uuid.UUID | None = None
    lot: uuid.UUID | None = None

    @property
    def everything(self) -> bool:
        return self.table == EVERYTHING


def _uuid(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value)) if value else None
    except (ValueError, TypeError, AttributeError):
        return None


def parse_payload(payload: str) -> Change | None:
    """A notification as the triggers send it: only the table, the row's id and
    the operation are read; anything else is ignored (and logged)."""
    try:
        data = json.loads(payload)
        table = str(data["t"])
    except (ValueError, KeyError, TypeError):
        log.warning("ignored a change notification that is not ours")
        return None
    if table not in TABLES:
        log.warning("ignored a change notification for an unknown table")
        return None
    op = data.get("op")
    op = op if op in ("insert", "update", "delete") else ""
    if data.get("all") is True:
        return Change(table, None, op)
    rid = _uuid(data.get("id"))
    if rid is None:
        log.warning("ignored a change notification without a valid id")
        return None
    return Change(table, rid, op)


# What a changed row refers to, read under the listener login's own privileges
# (row-level security applies): kind, row id, prescription, product, patient, lot.
_RESOLVE = {
    "dispenses": (
        "SELECT 'dispenses', d.id, p.id, p.product_id, p.patient_id, NULL::uuid"
        " FROM dispenses AS d JOIN prescriptions AS p ON p.id = d.prescription_id"
        " WHERE d.id = ANY(%(dispenses)s)"),
    "stock_movements": (
        "SELECT 'stock_movements', m.id, NULL::uuid, l.product_id, NULL::uuid, m.lot_id"
        " FROM stock_movements AS m JOIN stock_lots AS l ON l.id = m.lot_id"
        " WHERE m.id = ANY(%(stock_movements)s)"),
    "stock_lots": (
        "SELECT 'stock_lots', l.id, NULL::uuid, l.product_id, NULL::uuid, l.id"
        " FROM stock_lots AS l WHERE l.id = ANY(%(stock_lots)s)"),
}
# The tables each lookup reads: a login without SELECT on one of them cannot
# look that kind of change up, and refreshes more broadly instead.
_NEEDS = {"dispenses": ("dispenses", "prescriptions"),
          "stock_movements": ("stock_movements", "stock_lots"),
          "stock_lots": ("stock_lots",)}


def readable_lookups(conn: Any) -> frozenset[str]:
    """Which kinds of change this connection's login may look up."""
    tables = sorted({t for need in _NEEDS.values() for t in need})
    row = conn.execute(
        "SELECT " + ", ".join("pg_catalog.has_table_privilege(%s, 'SELECT')" for _ in tables),
        tables).fetchone()
    may = {t for t, ok in zip(tables, row, strict=True) if ok}
    return frozenset(k for k, need in _NEEDS.items() if all(t in may for t in need))


def resolve(conn: Any, batch: list[Change], readable: frozenset[str]) -> list[Change]:
    """Fill in what each change refers to, with one query for the whole batch.

    A change this login may not look up becomes "many rows of that table" (its
    screens re-read what they show); one whose row it cannot see (hidden by
    row-level security, or a forged id) is dropped."""
    wanted: dict[str, set[uuid.UUID]] = {}
    for c in batch:
        if c.id is not None and c.table in LOOKED_UP and c.table in readable:
            wanted.setdefault(c.table, set()).add(c.id)
    found: dict[tuple[str, uuid.UUID], tuple[Any, ...]] = {}
    if wanted:
        sql = " UNION ALL ".join(_RESOLVE[t] for t in LOOKED_UP if t in wanted)
        params = {t: sorted(ids) for t, ids in wanted.items()}
        for kind, rid, rx, product, patient, lot in conn.execute(sql, params):
            found[(kind, rid)] = (rx, product, patient, lot)
    out: list[Change] = []
    for c in batch:
        if c.id is None or c.table not in LOOKED_UP:
            out.append(c)
        elif c.table not in readable:
            out.append(Change(c.table, None, c.op))
        elif (c.table, c.id) in found:
            rx, product, patient, lot = found[(c.table, c.id)]
            out.append(Change(c.table, c.id, c.op, product=product, patient=patient, rx=rx,
                              lot=lot))
    return out


class ChangeListener:
    """Listens for changes in a thread of its own; see the module docstring."""

    def __init__(
        self,
        engine: Engine,
        on_changes: Callable[[list[Change]], None],
        on_state: Callable[[str], None],
        *,
        batch_seconds: float = 0.01,
        probe_seconds: float = 5.0,
        first_backoff: float = 0.5,
        max_backoff: float = 5.0,
        offline_after: float = 20.0,
    ) -> None:
        self._engine = engine
        self._on_changes = on_changes
        self._on_state = on_state
        self.batch_seconds = batch_seconds
        self.probe_seconds = probe_seconds
        self.first_backoff = first_backoff
        self.max_backoff = max_backoff
        self.offline_after = offline_after
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._conn: Any = None
        self._readable: frozenset[str] = frozenset()
        self.state = "connecting"

    # ------------------------------------------------------------------ API

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="getmeds-listener",
                                            daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        conn = self._conn
        if conn is not None:
            try:
                conn.cancel_safe(timeout=1.0)  # interrupt a blocking wait
            except Exception:
                pass
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def check_now(self) -> None:
        """Something else saw the connection fail: probe without waiting."""
        self._wake.set()

    # ------------------------------------------------------------ internals

    def _connect(self) -> Any:
        dialect = self._engine.dialect
        cargs, cparams = dialect.create_connect_args(self._engine.url)
        cparams = dict(cparams)
        cparams["autocommit"] = True
        cparams["application_name"] = "GetMeds Desktop (listener)"
        cparams.setdefault("connect_timeout", 5)
        # notice a cut network cable within seconds, not hours
        cparams.setdefault("keepalives", 1)
        cparams.setdefault("keepalives_idle", 5)
        cparams.setdefault("keepalives_interval", 2)
        cparams.setdefault("keepalives_count", 3)
        import psycopg

        from ..db import secure_connect_args

        cargs = list(cargs)
        secure_connect_args(cargs, cparams)  # the same TLS rule as the engine's connections
        conn = psycopg.connect(*cargs, **cparams)
        conn.execute(f"LISTEN {CHANNEL}")
        self._readable = readable_lookups(conn)
        return conn

    def _set_state(self, state: str) -> None:
        if state != self.state:
            self.state = state
            log.info("database connection: %s", state)
            self._on_state(state)

    def _run(self) -> None:
        import psycopg

        lost_at: float | None = None
        backoff = self.first_backoff
        first = True
        while not self._stop.is_set():
            try:
                self._conn = self._connect()
            except psycopg.Error as exc:
                now = time.monotonic()
                lost_at = lost_at or now
                self._set_state("offline" if now - lost_at >= self.offline_after
                                else "reconnecting")
                log.debug("listener cannot connect: %s", exc.__class__.__name__)
                self._wake.wait(backoff)
                self._wake.clear()
                backoff = min(backoff * 2, self.max_backoff)
                continue
            self._set_state("connected")
            if not first:
                self._on_changes([Change(EVERYTHING)])  # what we missed: read again
            first = False
            lost_at, backoff = None, self.first_backoff
            try:
                self._listen(self._conn)
            except psycopg.Error as exc:
                if self._stop.is_set():
                    break
                log.info("listener connection lost: %s", exc.__class__.__name__)
                lost_at = time.monotonic()
                self._set_state("reconnecting")
            finally:
                conn, self._conn = self._conn, None
                try:
                    conn.close()
                except Exception:
                    pass
        log.debug("listener stopped")

    def _listen(self, conn: Any) -> None:
        last_probe = time.monotonic()
        while not self._stop.is_set():
            # wait a little for the first notification, then gather what follows
            # it within batch_seconds: one refresh per burst of changes (a
            # transaction's notifications arrive together at its commit, so a
            # short window merges them; every millisecond waited here is one
            # more before another workstation's change shows)
            got = list(conn.notifies(timeout=0.25, stop_after=1))
            if got:
                got.extend(conn.notifies(timeout=self.batch_seconds, stop_after=500))
                batch = [c for c in (parse_payload(n.payload) for n in got) if c is not None]
                if batch:
                    batch = self._resolve(conn, batch)
                if batch:
                    self._on_changes(batch)
            now = time.monotonic()
            if self._wake.is_set() or now - last_probe >= self.probe_seconds:
                self._wake.clear()
                conn.execute("SELECT 1")  # raises if the server went away
                last_probe = now


    def _resolve(self, conn: Any, batch: list[Change]) -> list[Change]:
        import psycopg

        try:
            return resolve(conn, batch, self._readable)
        except psycopg.Error:
            if conn.broken or conn.closed:
                raise  # the connection is gone: reconnect
            # a refusal (say, privileges changed under us): refresh broadly
            log.warning("could not look up what changed; refreshing broadly")
            return [Change(c.table, None, c.op) if c.table in LOOKED_UP else c for c in batch]


# Which lists a change concerns: (table the screens know, id or None for "any").
def affected(change: Change) -> list[tuple[str, uuid.UUID | None]]:
    t = change.table
    if change.everything:
        return [(EVERYTHING, None)]
    many = change.id is None
    if t == "patients":
        return [("patients", change.id)]
    if t == "products":
        return [("products", change.id)]
    if t in ("stock_lots", "stock_movements"):
        out: list[tuple[str, uuid.UUID | None]] = [("products", None if many else change.product)]
        lot = change.id if t == "stock_lots" else change.lot
        out.append(("stock_lots", None if many else lot))
        return out
    if t == "prescriptions":
        return [("prescriptions", change.id)]
    if t == "dispenses":
        if many:
            return [("prescriptions", None), ("products", None), ("dispenses", None)]
        return [("prescriptions", change.rx), ("products", change.product),
                ("dispenses", change.id)]
    return [(t, change.id)]


def group(changes: list[Change]) -> dict[str, set[uuid.UUID] | None]:
    """Merge a batch into table -> ids to refresh (None: everything shown)."""
    out: dict[str, set[uuid.UUID] | None] = {}
    for change in changes:
        for table, rid in affected(change):
            if table not in out:
                out[table] = set()
            ids = out[table]
            if ids is None:
                continue
            if rid is None:
                out[table] = None
            else:
                ids.add(rid)
    return out
