"""How a change is written: the one write path.

Every write of the services goes through :func:`write`:

1. the permission is checked (trusted callers — maintenance, imports, the demo
   seed — act as :data:`~.context.SYSTEM`, never as ``None`` or a made-up id);
2. one transaction is opened (SQLite takes the write lock at BEGIN) and the
   audit actor is declared;
3. with a request id, a request that was already carried out returns its first
   result (``replay``) instead of writing again, and the id is recorded with the
   write (a retry racing its original ends the same way);
4. the command gets a :class:`Work`: the session, the actor, version checks and
   ``touched()`` for what it changed (ORM objects are recorded by themselves);
5. the database's refusals become domain errors here, in one place;
6. once committed, what changed (:class:`Changes`) goes to whoever collects it
   (:func:`collect`: the GUI refreshes its lists from it).
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.exc import StaleDataError

from .. import db
from ..models import (
    AppSettings,
    Category,
    Dispense,
    Patient,
    PatientAllergy,
    PatientCondition,
    PatientFeedback,
    Prescriber,
    Prescription,
    PrescriptionTransfer,
    Product,
    ProductDrugClass,
    ProductIngredient,
    RequestLog,
    Staff,
    StockLot,
    StockMovement,
    Stocktake,
    StocktakeLine,
    Supplier,
)
from ._common import conflict_from, constraint_of
from .context import Actor, Perm, require
from .errors import (
    Conflict,
    DomainError,
    InsufficientStock,
    InvalidState,
    PermissionDenied,
    StaleEdit,
    ValidationError,
)

T = TypeVar("T")


# ------------------------------------------------------------------ changes


@dataclasses.dataclass(frozen=True)
class Changes:
    """What a write changed, by the table the screens know (``patients``,
    ``products``, ``stock_lots``, ``prescriptions``, ``dispenses``, ...) -> ids.
    An empty id set means "anything in that table"."""

    tables: Mapping[str, frozenset[uuid.UUID]] = dataclasses.field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.tables)

    def __or__(self, other: Changes) -> Changes:
        out: dict[str, frozenset[uuid.UUID]] = dict(self.tables)
        for table, ids in other.tables.items():
            if table in out and (not out[table] or not ids):
                out[table] = frozenset()
            else:
                out[table] = out.get(table, frozenset()) | ids
        return Changes(out)


class _ChangeSet:
    def __init__(self) -> None:
        self._tables: dict[str, set[uuid.UUID] | None] = {}

    def add(self, table: str, ids: Iterable[uuid.UUID | None]) -> None:
        have = self._tables.setdefault(table, set())
        if have is None:
            return
        for i in ids:
            if i is None:
                self._tables[table] = None  # "anything in that table"
                return
            have.add(i)

    def add_all(self, table: str) -> None:
        self._tables[table] = None

    def frozen(self) -> Changes:
        return Changes({t: frozenset(ids or ()) for t, ids in self._tables.items()})


# Which screen rows a changed ORM object stands for.
_SCREEN: dict[type, Callable[[Any], list[tuple[str, uuid.UUID | None]]]] = {
    Patient: lambda o: [("patients", o.id)],
    PatientAllergy: lambda o: [("patients", o.patient_id)],
    PatientCondition: lambda o: [("patients", o.patient_id)],
    PatientFeedback: lambda o: [("feedback", o.id), ("patients", o.patient_id)],
    Prescriber: lambda o: [("prescribers", o.id)],
    Product: lambda o: [("products", o.id)],
    ProductIngredient: lambda o: [("products", o.product_id)],
    ProductDrugClass: lambda o: [("products", o.product_id)],
    Category: lambda o: [("categories", o.id)],
    Supplier: lambda o: [("suppliers", o.id)],
    StockLot: lambda o: [("stock_lots", o.id), ("products", o.product_id)],
    StockMovement: lambda o: [("stock_movements", o.id), ("stock_lots", o.lot_id)],
    Stocktake: lambda o: [("stocktakes", o.id)],
    StocktakeLine: lambda o: [("stocktakes", o.stocktake_id)],
    Prescription: lambda o: [("prescriptions", o.id)],
    PrescriptionTransfer: lambda o: [("prescriptions", o.prescription_id)],
    Dispense: lambda o: [("dispenses", o.id), ("prescriptions", o.prescription_id)],
    Staff: lambda o: [("staff", o.id)],
    AppSettings: lambda o: [("settings", None)],
}


def _record_flush(changes: _ChangeSet) -> Callable[..., None]:
    def after_flush(session: Session, _context: Any) -> None:
        for obj in (*session.new, *session.dirty, *session.deleted):
            rows = _SCREEN.get(type(obj))
            if rows is None:
                continue
            for table, rid in rows(obj):
                changes.add(table, [rid])
    return after_flush


_sinks: contextvars.ContextVar[Callable[[Changes], None] | None] = contextvars.ContextVar(
    "getmeds_changes", default=None)


@contextlib.contextmanager
def publishing_to(sink: Callable[[Changes], None]) -> Iterator[None]:
    """Hand ``sink`` the :class:`Changes` of every write committed in the block
    (in this thread), as each commits: the GUI runs each task in one and
    refreshes what it shows from them."""
    token = _sinks.set(sink)
    try:
        yield
    finally:
        _sinks.reset(token)


@contextlib.contextmanager
def collect() -> Iterator[list[Changes]]:
    """The :class:`Changes` of every write committed in the block, in a list."""
    got: list[Changes] = []
    with publishing_to(got.append):
        yield got


def merged(changes: Iterable[Changes]) -> Changes:
    out = Changes()
    for c in changes:
        out = out | c
    return out


# --------------------------------------------------------------------- work


class Work:
    """The open unit of work a command writes through."""

    def __init__(self, session: Session, actor: Actor, request_id: uuid.UUID | None) -> None:
        self.session = session
        self.actor = actor
        self.request_id = request_id
        self._changes = _ChangeSet()
        self._versioned: list[tuple[type, Any, str]] = []
        self._finish: list[Callable[[Any], Any]] = []

    @property
    def conn(self) -> sa.Connection:
        return self.session.connection()

    @property
    def staff_id(self) -> uuid.UUID:
        """The staff member this write is recorded under. A trusted caller
        (``SYSTEM``) has none: a write that records a person needs a real one."""
        if self.actor.staff_id is None:
            raise PermissionDenied(
                "This change is recorded under a staff member: sign in as one to make it.")
        return self.actor.staff_id

    def require(self, perm: Perm) -> None:
        """A permission that depends on what the command found (a controlled product)."""
        require(self.actor, perm)

    def touched(self, table: str, *ids: uuid.UUID | None) -> None:
        """Record that rows of ``table`` changed (for writes made without the ORM)."""
        self._changes.add(table, ids)

    def touched_all(self, table: str) -> None:
        self._changes.add_all(table)

    def expect_version(self, obj: Any, expected: int | None, what: str) -> None:
        """Refuse a save based on an older version than the one in the database."""
        self._versioned.append((type(obj), obj.id, what))
        if expected is not None and obj.version != expected:
            raise StaleEdit(what, obj.updated_by, obj.updated_at)

    def after_commit(self, finish: Callable[[Any], Any]) -> None:
        """Complete the body's result once the write has committed, with what
        only the commit tells (a pipelined write's answer: the fill's time)."""
        self._finish.append(finish)

    @property
    def changes(self) -> Changes:
        return self._changes.frozen()


def write(
    sf: sessionmaker[Session],
    actor: Actor,
    perm: Perm | None,
    body: Callable[[Work], T],
    *,
    request_id: uuid.UUID | None = None,
    operation: str | None = None,
    replay: Callable[[Work, str], T] | None = None,
    key: Callable[[T], Any] | None = None,
    earlier: Callable[[Work], T | None] | None = None,
    dry_run: bool = False,
    pipelined: bool = False,
) -> T:
    """Run ``body`` as one unit of work (see the module docstring).

    ``operation`` is ``"<table>.<action>"`` (e.g. ``"patients.update"``); with a
    ``request_id`` it is recorded, with the id ``key(result)`` (default
    ``result.id``), and a repeat of the request returns ``replay(work, id)``.
    A write whose own rows carry the request id (a dispense) gives
    ``earlier`` instead: it finds the first attempt's result, or None.
    ``dry_run`` does all the work and rolls it back (an import's exact check).
    ``pipelined``: the body reads, then calls ``db.begin_writes(work.session)``
    and writes (db.pipelined_write: on a server the reads lock nothing and the
    writes go with BEGIN and COMMIT in one round trip; the first write checks
    under its locks what the reads found, and raises :class:`Changed` if it
    changed).
    """
    if perm is not None:
        require(actor, perm)
    logged = request_id is not None and operation is not None and replay is not None
    work: Work | None = None
    try:
        opened = (db.pipelined_write(sf, actor.username) if pipelined
                  else db.write_transaction(sf, actor.username))
        with opened as s:
            work = Work(s, actor, request_id)
            if earlier is not None:
                found = earlier(work)
                if found is not None:
                    return found
            if logged:
                done = s.get(RequestLog, request_id)
                if done is not None:
                    return _replayed(work, done, replay)  # type: ignore[arg-type]
            listener = _record_flush(work._changes)
            sa.event.listen(s, "after_flush", listener)
            try:
                result = body(work)
                if logged:
                    entity = (key or _id)(result)
                    s.add(RequestLog(request_id=request_id, operation=operation,
                                     entity_id=str(entity)))
                s.flush()
                if dry_run:
                    raise _DryRun(result)
            finally:
                sa.event.remove(s, "after_flush", listener)
    except _DryRun as done:
        return done.result  # type: ignore[no-any-return]
    except sa.exc.IntegrityError as exc:
        if request_id is not None and _is_request_clash(exc):
            # the same request committed meanwhile (a retry racing its original)
            if earlier is not None:
                with db.read_session(sf) as s:
                    found = earlier(Work(s, actor, request_id))
                if found is not None:
                    return found
            elif logged:
                return _replay_after_race(sf, actor, request_id, replay)  # type: ignore[arg-type]
        raise translate(exc) from None
    except StaleDataError:
        raise _stale(sf, work) from None
    except sa.exc.DBAPIError as exc:
        refused = translate(exc)
        if refused is exc:
            raise
        raise refused from None
    for finish in work._finish:
        result = finish(result)
    _publish(work.changes)
    return result


class _DryRun(Exception):
    def __init__(self, result: Any) -> None:
        super().__init__()
        self.result = result


def _id(result: Any) -> Any:
    return result.id


def _replayed(work: Work, done: RequestLog, replay: Callable[[Work, str], T]) -> T:
    result = replay(work, done.entity_id)
    table = done.operation.split(".", 1)[0]
    try:
        work.touched(table, uuid.UUID(done.entity_id))
    except ValueError:
        work.touched_all(table)
    _publish(work.changes)
    return result


def _replay_after_race(sf: sessionmaker[Session], actor: Actor, request_id: uuid.UUID,
                       replay: Callable[[Work, str], T]) -> T:
    with db.read_session(sf) as s:
        done = s.get(RequestLog, request_id)
        if done is None:  # pragma: no cover - the clash was on another unique column
            raise Conflict("This request clashed with another one; try again.")
        return _replayed(Work(s, actor, request_id), done, replay)


def _is_request_clash(exc: sa.exc.IntegrityError) -> bool:
    name = constraint_of(exc)
    return "request_log" in name or "request_id" in name


def _publish(changes: Changes) -> None:
    sink = _sinks.get()
    if sink is not None and changes:
        sink(changes)


def publish(changes: Changes) -> None:
    """Hand committed changes made outside :func:`write` to the block's sink
    (an offline write, committed on the replica with its outbox entry)."""
    _publish(changes)


def _stale(sf: sessionmaker[Session], work: Work | None) -> StaleEdit:
    """Somebody saved a record this write had read: say who and when."""
    if work is not None and work._versioned:
        model, rid, what = work._versioned[-1]
        with db.read_session(sf) as s:
            obj = s.get(model, rid)
            if obj is not None:
                return StaleEdit(what, obj.updated_by, obj.updated_at)
        return StaleEdit(what, None, None)
    return StaleEdit("record", None, None)


# ------------------------------------------------ database refusals -> words

_SQLSTATE_PRIVILEGE = "42501"
_SQLSTATE_SERIALIZATION = "40001"


class Changed(Conflict):
    """What a pipelined write was decided from changed before it was written
    (the database checked it under its locks and wrote nothing): reading again
    and deciding again is safe."""
_SQLSTATE_OUT_OF_RANGE = ("22003", "22001", "22008")


OFFLINE_READ_ONLY = ("This cannot be done offline: the server cannot be reached, and only "
                     "what the pharmacy allows offline (fills, receipts, patients, new "
                     "prescriptions) is saved on this workstation to be sent later. Try "
                     "again when the status bar shows Connected.")


def translate(exc: sa.exc.DBAPIError) -> Exception:
    """A domain error for a refusal a person can act on, else ``exc`` itself."""
    if "attempt to write a readonly database" in str(exc.orig):
        # the offline copy as the screens read it (sync.offline): writes go
        # through its outbox, or wait for the server
        return InvalidState(OFFLINE_READ_ONLY)
    if isinstance(exc, sa.exc.IntegrityError):
        conflict = conflict_from(exc)
        if conflict is not None:
            return conflict
        name = constraint_of(exc)
        if "on_hand_nonneg" in name:
            return InsufficientStock(
                "The stock changed meanwhile and is no longer enough. Look at the lot again "
                "and try again.", available=0, requested=0)
        if "permanent records" in str(exc.orig):
            return DomainError("History cannot be changed or removed: correct a mistake "
                               "with a new entry.")
        if name in ("products_schedule_inventory", "dea_inventories_valid",
                    "dea_inventory_lines_valid"):  # 0021's rules of the DEA inventories
            first = str(exc.orig).splitlines()[0]
            return InvalidState(f"The database refused this: {first}.")
        if name in ("dispenses_steps", "dispenses_restock"):  # 0015's rules of the steps
            first = str(exc.orig).splitlines()[0]
            return InvalidState(f"The database refused this step: {first}.")
        if name in ("stock_movements_dea_receipt", "stock_movements_dea_form",
                    "dea_forms_valid", "dea_forms_posted"):  # 0022's DEA records
            first = str(exc.orig).splitlines()[0]
            return InvalidState(f"The database refused this DEA record: {first}.")
        if name == "prescription_transfers_rules":  # 0020's rules of transfers
            first = str(exc.orig).splitlines()[0]
            return InvalidState(f"The database refused this transfer: {first}.")
        return exc
    state = getattr(exc.orig, "sqlstate", None)
    if state == _SQLSTATE_SERIALIZATION and constraint_of(exc) == "fill_unchanged":
        return Changed(str(exc.orig).splitlines()[0])  # migration 0025
    if state == _SQLSTATE_PRIVILEGE:
        return PermissionDenied(
            "The database refused this for your role: "
            f"{str(exc.orig).splitlines()[0]}")
    if state in _SQLSTATE_OUT_OF_RANGE:
        return ValidationError("A value is too large or out of range for the database.")
    return exc


__all__ = ["Changed", "Changes", "Work", "collect", "merged", "publishing_to", "translate", "write"]
