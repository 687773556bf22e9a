"""Writes made offline, kept in an outbox on the replica and replayed exactly
once on the server when the link comes back (no Qt).

Offline write (:meth:`Outbox.run`): the same service call the workstation makes
online (dispensing.dispense, inventory.receive_stock, patients.create_patient /
update_patient, prescriptions.create_prescription) runs against the replica, so
the same rules and screening apply. The service and the outbox entry share ONE
replica transaction: the service's session joins an outer transaction on one
replica connection (its own "commit" releases a SAVEPOINT), the entry is
inserted next to what the service wrote, and only then the outer transaction
commits. Either both are on disk or neither: a crash can neither lose a write
the pharmacist saw succeed nor queue one the replica does not have.

Replay (:meth:`Outbox.replay`): the waiting entries go to the server in their
order, through the server's normal service calls with the SAME request ids
(services/uow.py: a request already carried out answers with its first
result). An entry is marked done only once the server answered, so:

* the link drops before the server committed: nothing is on the server, the
  entry is still waiting, the next replay sends it;
* the link drops after the server committed but before the answer arrived (or
  the workstation dies before marking it): the entry is still waiting, the next
  replay sends it again and the server answers with the first result.

A lost connection stops the replay (the rest waits); a refusal of the server (a
domain error: the stock another workstation used, a stale edit, a cancelled
prescription, a permission) moves the entry to "Needs attention" with the
reason and the actions that resolve it, and the replay goes on (a later write
about the same record waits behind it); anything else is a bug: it is logged
and stops the replay with the entry still waiting.

The request travels as JSON (:func:`encode` / :func:`decode`): uuids, dates,
times, decimals, enums and nested dataclasses (a clinical Override) are tagged
so that they come back as they were; only request types named here and enums of
GetMeds are ever rebuilt from an entry.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
import importlib
import json
import logging
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from .. import db
from ..enums import PartialReason
from ..errors import ConfigError, DatabaseUnavailable
from ..models import Prescription, Product, Schedule, Staff, table_of
from ..services import clock, dispensing, inventory, patients, prescriptions, staff, uow
from ..services.clinical import Override
from ..services.context import Actor
from ..services.errors import (
    Conflict,
    DomainError,
    InsufficientStock,
    InvalidState,
    NotFound,
    PermissionDenied,
    PossibleDuplicate,
    StaleEdit,
    ValidationError,
    WarningsNeedAcknowledgement,
)
from .retry import is_disconnect

log = logging.getLogger(__name__)

# ------------------------------------------------------------------ requests


@dataclasses.dataclass(frozen=True)
class PatientCreate:
    """A patient registered offline. The id is chosen here, so the replica and
    the server hold the same patient (and a repeat finds it)."""

    draft: patients.PatientDraft
    patient_id: uuid.UUID = dataclasses.field(default_factory=uuid.uuid4)
    another_person: bool = False

    @property
    def request_id(self) -> uuid.UUID:
        return self.patient_id


@dataclasses.dataclass(frozen=True)
class PatientUpdate:
    patient_id: uuid.UUID
    draft: patients.PatientDraft
    expected_version: int
    request_id: uuid.UUID = dataclasses.field(default_factory=uuid.uuid4)


@dataclasses.dataclass(frozen=True)
class PrescriptionCreate:
    draft: prescriptions.PrescriptionDraft
    request_id: uuid.UUID = dataclasses.field(default_factory=uuid.uuid4)


@dataclasses.dataclass(frozen=True)
class LabelPrintRequest:
    """A fill's label printed (recorded before it is printed, as online; a
    reprint with its reason)."""

    dispense_id: uuid.UUID
    reprint: bool = False
    reason: str | None = None
    request_id: uuid.UUID = dataclasses.field(default_factory=uuid.uuid4)


class Kind(enum.StrEnum):
    DISPENSE = "dispense"
    LABEL = "label"
    RECEIVE = "receive"
    PATIENT_CREATE = "patient.create"
    PATIENT_UPDATE = "patient.update"
    PRESCRIPTION_CREATE = "prescription.create"

    @property
    def label(self) -> str:
        return {
            Kind.DISPENSE: "dispensing",
            Kind.LABEL: "printing a label",
            Kind.RECEIVE: "receiving stock",
            Kind.PATIENT_CREATE: "registering a patient",
            Kind.PATIENT_UPDATE: "editing a patient",
            Kind.PRESCRIPTION_CREATE: "entering a new prescription",
        }[self]


@dataclasses.dataclass(frozen=True)
class _Spec:
    request_type: type[Any]
    call: Callable[[sessionmaker[Session], Actor, Any], Any]
    result_id: Callable[[Any], uuid.UUID]


def _dispense(sf: sessionmaker[Session], actor: Actor, r: dispensing.DispenseRequest) -> Any:
    return dispensing.dispense(sf, actor, r)


def _label(sf: sessionmaker[Session], actor: Actor, r: LabelPrintRequest) -> Any:
    return dispensing.record_label(sf, actor, r.dispense_id, reprint=r.reprint, reason=r.reason,
                                   request_id=r.request_id)


def _receive(sf: sessionmaker[Session], actor: Actor, r: inventory.ReceiptRequest) -> Any:
    return inventory.receive_stock(sf, actor, r)


def _patient_create(sf: sessionmaker[Session], actor: Actor, r: PatientCreate) -> Any:
    return patients.create_patient(sf, actor, r.draft, patient_id=r.patient_id,
                                   another_person=r.another_person)


def _patient_update(sf: sessionmaker[Session], actor: Actor, r: PatientUpdate) -> Any:
    return patients.update_patient(sf, actor, r.patient_id, r.draft,
                                   expected_version=r.expected_version,
                                   request_id=r.request_id)


def _rx_create(sf: sessionmaker[Session], actor: Actor, r: PrescriptionCreate) -> Any:
    return prescriptions.create_prescription(sf, actor, r.draft, request_id=r.request_id)


_SPECS: dict[Kind, _Spec] = {
    Kind.DISPENSE: _Spec(dispensing.DispenseRequest, _dispense, lambda r: r.dispense_id),
    Kind.LABEL: _Spec(LabelPrintRequest, _label, lambda r: r.label_id),
    Kind.RECEIVE: _Spec(inventory.ReceiptRequest, _receive, lambda r: r.id),
    Kind.PATIENT_CREATE: _Spec(PatientCreate, _patient_create, lambda r: r.id),
    Kind.PATIENT_UPDATE: _Spec(PatientUpdate, _patient_update, lambda r: r.id),
    Kind.PRESCRIPTION_CREATE: _Spec(PrescriptionCreate, _rx_create, lambda r: r.id),
}


# ------------------------------------------------------------------ the setting

DEFAULT_KINDS = frozenset({Kind.DISPENSE, Kind.LABEL, Kind.RECEIVE, Kind.PATIENT_CREATE,
                           Kind.PATIENT_UPDATE, Kind.PRESCRIPTION_CREATE})


@dataclasses.dataclass(frozen=True)
class OfflinePolicy:
    """Which writes the pharmacy allows while the server is unreachable.
    Default: dispensing of non-controlled products, receiving, patient edits and
    new prescriptions; dispensing a controlled substance offline is a separate
    setting, off by default."""

    kinds: frozenset[Kind] = DEFAULT_KINDS
    controlled_dispense: bool = False

    @classmethod
    def from_setting(cls, value: Mapping[str, Any] | None) -> OfflinePolicy:
        """From the ``[offline]`` setting of the site file (config.AppConfig.offline,
        which IT may lock): ``kinds = ["dispense", "receive", ...]`` and
        ``controlled_dispense = false``; what is missing keeps its default."""
        if not value:
            return cls()
        unknown = sorted(set(value) - {"kinds", "controlled_dispense"})
        if unknown:
            raise ConfigError(f"[offline] has no setting {', '.join(unknown)} (known: kinds, "
                              "controlled_dispense).")
        kinds = cls.kinds
        if "kinds" in value:
            raw = value["kinds"]
            known = ", ".join(k.value for k in Kind)
            if not isinstance(raw, list | tuple | frozenset | set) or not all(
                    isinstance(k, str) for k in raw):
                raise ConfigError(f"[offline] kinds must be a list of the writes allowed "
                                  f"offline (of: {known}).")
            try:
                kinds = frozenset(Kind(k) for k in raw)
            except ValueError:
                raise ConfigError(f"[offline] kinds names an unknown kind of write (known: "
                                  f"{known}).") from None
        controlled = value.get("controlled_dispense", False)
        if not isinstance(controlled, bool):
            raise ConfigError("[offline] controlled_dispense must be true or false.")
        return cls(kinds, controlled)

    def to_setting(self) -> dict[str, Any]:
        return {"kinds": sorted(k.value for k in self.kinds),
                "controlled_dispense": self.controlled_dispense}


class OfflineRefused(DomainError):
    """The pharmacy's settings do not allow this write while offline."""


# ------------------------------------------------------------------ JSON

_REQUEST_TYPES: dict[str, type[Any]] = {
    f"{t.__module__}.{t.__qualname__}": t for t in (
        dispensing.DispenseRequest, inventory.ReceiptRequest, PatientCreate, PatientUpdate,
        PrescriptionCreate, LabelPrintRequest, patients.PatientDraft, patients.AllergyDraft,
        patients.ConditionDraft, prescriptions.PrescriptionDraft, Override)
}


def _name(t: type[Any]) -> str:
    return f"{t.__module__}.{t.__qualname__}"


def _tagged(value: Any) -> Any:
    if isinstance(value, enum.Enum):  # before str and int: a StrEnum is a str
        return {"$enum": _name(type(value)), "value": value.value}
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int | float):
        return value
    if isinstance(value, uuid.UUID):
        return {"$uuid": str(value)}
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise ValueError("a naive datetime cannot be queued (always a bug)")
        return {"$datetime": value.isoformat()}
    if isinstance(value, dt.date):
        return {"$date": value.isoformat()}
    if isinstance(value, decimal.Decimal):
        return {"$decimal": str(value)}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        name = _name(type(value))
        if name not in _REQUEST_TYPES:
            raise TypeError(f"{name} is not a request the outbox knows")
        return {"$dc": name, "fields": {f.name: _tagged(getattr(value, f.name))
                                        for f in dataclasses.fields(value)}}
    if isinstance(value, Mapping):
        if not all(isinstance(k, str) for k in value):
            raise TypeError("only mappings with text keys can be queued")
        return {"$map": {k: _tagged(v) for k, v in value.items()}}
    if isinstance(value, tuple):
        return {"$tuple": [_tagged(v) for v in value]}
    if isinstance(value, list):
        return [_tagged(v) for v in value]
    raise TypeError(f"{type(value).__name__} cannot be queued")


def _enum_type(name: str) -> type[enum.Enum]:
    module, _, qual = name.rpartition(".")
    if not module.startswith("getmeds_desktop."):
        raise ValueError(f"{name} is not an enum of GetMeds")
    found: Any = importlib.import_module(module)
    for part in qual.split("."):
        found = getattr(found, part)
    if not (isinstance(found, type) and issubclass(found, enum.Enum)):
        raise ValueError(f"{name} is not an enum")
    return found


def _untagged(value: Any) -> Any:
    if isinstance(value, list):
        return [_untagged(v) for v in value]
    if not isinstance(value, dict):
        return value
    if "$uuid" in value:
        return uuid.UUID(value["$uuid"])
    if "$datetime" in value:
        return dt.datetime.fromisoformat(value["$datetime"])
    if "$date" in value:
        return dt.date.fromisoformat(value["$date"])
    if "$decimal" in value:
        return decimal.Decimal(value["$decimal"])
    if "$enum" in value:
        return _enum_type(value["$enum"])(value["value"])
    if "$tuple" in value:
        return tuple(_untagged(v) for v in value["$tuple"])
    if "$map" in value:
        return {k: _untagged(v) for k, v in value["$map"].items()}
    if "$dc" in value:
        t = _REQUEST_TYPES.get(value["$dc"])
        if t is None:
            raise ValueError(f"{value['$dc']} is not a request the outbox knows")
        return t(**{k: _untagged(v) for k, v in value["fields"].items()})
    raise ValueError("an outbox entry holds a value it cannot read")


def encode(request: Any) -> str:
    """A request as JSON text that :func:`decode` turns back into an equal one."""
    return json.dumps(_tagged(request), separators=(",", ":"))


def decode(text: str) -> Any:
    return _untagged(json.loads(text))


def _changes_json(rows: Mapping[str, Iterable[uuid.UUID]]) -> str:
    return json.dumps({t: sorted(str(i) for i in ids) for t, ids in rows.items()},
                      sort_keys=True)


def _changes_of(text: str | None) -> dict[str, set[uuid.UUID]]:
    if not text:
        return {}
    return {t: {uuid.UUID(i) for i in ids} for t, ids in json.loads(text).items()}


def _merge(into: dict[str, set[uuid.UUID]], rows: Mapping[str, Iterable[uuid.UUID]]) -> None:
    """Add ``rows`` to ``into``; an empty id set means "any row of the table"
    (as in uow.Changes) and stays so."""
    for table, ids in rows.items():
        wanted = set(ids)
        if table in into and not into[table]:
            continue
        if not wanted:
            into[table] = set()
        else:
            into.setdefault(table, set()).update(wanted)


def _rows(changes: Iterable[uow.Changes]) -> dict[str, set[uuid.UUID]]:
    out: dict[str, set[uuid.UUID]] = {}
    _merge(out, uow.merged(changes).tables)
    return out


# ------------------------------------------------------------------ tables

metadata = sa.MetaData()
STATUSES = ("waiting", "done", "attention", "dismissed")

outbox_entries = sa.Table(
    "outbox_entries", metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("id", sa.Uuid, nullable=False, unique=True),
    sa.Column("kind", sa.String(40), nullable=False),
    sa.Column("request", sa.Text, nullable=False),  # encode(request)
    sa.Column("request_id", sa.Uuid, nullable=False, unique=True),
    sa.Column("staff_id", sa.Uuid, nullable=False),
    sa.Column("username", sa.String(100), nullable=False),
    sa.Column("created_at", sa.DateTime, nullable=False),  # naive UTC
    sa.Column("status", sa.String(20), nullable=False, server_default="waiting"),
    sa.Column("summary", sa.String(300), nullable=False, server_default=""),
    # the record the write is about (a fill's prescription, an edit's patient):
    # a later write about it waits while an earlier one needs attention
    sa.Column("subject", sa.Uuid),
    # what the offline write made on the replica: its result's id, and its rows
    sa.Column("local_id", sa.Uuid),
    sa.Column("local_rows", sa.Text),
    # what the server answered
    sa.Column("server_id", sa.Uuid),
    sa.Column("server_rows", sa.Text),
    sa.Column("replayed_at", sa.DateTime),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.CheckConstraint("status IN ('waiting', 'done', 'attention', 'dismissed')",
                       name="outbox_entries_status"),
)
sa.Index("outbox_entries_status_seq", outbox_entries.c.status, outbox_entries.c.seq)

needs_attention_table = sa.Table(
    "outbox_needs_attention", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("entry_id", sa.Uuid, sa.ForeignKey("outbox_entries.id"), nullable=False),
    sa.Column("at", sa.DateTime, nullable=False),
    sa.Column("error", sa.String(100), nullable=False),  # the domain error's class
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("actions", sa.Text, nullable=False),  # JSON [[code, label], ...]
    sa.Column("resolved_at", sa.DateTime),
    sa.Column("resolution", sa.String(20)),
    sa.Column("resolved_by", sa.String(100)),
)


def _utc_naive(moment: dt.datetime) -> dt.datetime:
    return moment.astimezone(dt.UTC).replace(tzinfo=None)


def _aware(moment: dt.datetime | None) -> dt.datetime | None:
    return None if moment is None else moment.replace(tzinfo=dt.UTC)


# ------------------------------------------------------------------ results


@dataclasses.dataclass(frozen=True)
class Queued:
    """An offline write done on the replica and waiting for the server."""

    entry_id: uuid.UUID
    seq: int
    kind: Kind
    request_id: uuid.UUID
    result: Any  # what the service answered on the replica
    # what it changed on the replica, once committed (the service's own Changes
    # are held back until the entry is stored with them: the screens refresh
    # from these, as from uow.publishing_to online)
    changes: uow.Changes = dataclasses.field(default_factory=uow.Changes)


@dataclasses.dataclass(frozen=True)
class Action:
    code: str  # count_shelf, merge_edit, contact_prescriber, review_warnings, ...
    label: str


@dataclasses.dataclass(frozen=True)
class AttentionItem:
    entry_id: uuid.UUID
    seq: int
    kind: Kind
    username: str
    created_at: dt.datetime
    summary: str
    error: str
    reason: str
    actions: tuple[Action, ...]
    request: Any


@dataclasses.dataclass(frozen=True)
class OutboxState:
    waiting: int
    needs_attention: int
    oldest_waiting: dt.datetime | None


@dataclasses.dataclass(frozen=True)
class ReplayResult:
    sent: int  # entries the server answered with a result (done)
    attention: int  # entries the server refused (now in Needs attention)
    waiting: int  # entries still waiting after this replay
    lost_connection: bool = False
    stopped: str | None = None  # why the replay stopped early, in words
    # rows the replica should take from the server: what the server changed and
    # what the offline writes made locally (table -> ids; an empty set: any row)
    refetch: dict[str, set[uuid.UUID]] = dataclasses.field(default_factory=dict)



# ------------------------------------------------------------------ suggestions


def suggested_actions(kind: Kind, exc: DomainError) -> tuple[Action, ...]:
    """What a person does about a refused offline write."""
    retry = Action("retry", "Send it again once the cause is resolved")
    dismiss = Action("dismiss", "Dismiss it (the change is not made on the server)")
    if isinstance(exc, InsufficientStock):
        return (Action("count_shelf", "Count the shelf: another workstation used this stock "
                       "while offline, and the medicine already handed out is not in the "
                       "server's stock. Record the count, then send the fill again."),
                retry, dismiss)
    if isinstance(exc, StaleEdit):
        return (Action("merge_edit", "Open the record, compare it with the change made "
                       "offline and make the edit again on the current version."), dismiss)
    if isinstance(exc, PossibleDuplicate):
        return (Action("merge_patients", "Check whether this is a patient already "
                       "registered; merge the records or confirm another person."), dismiss)
    if isinstance(exc, WarningsNeedAcknowledgement):
        return (Action("review_warnings", "A pharmacist reviews the safety warnings the "
                       "server found (new history from other workstations)."), retry, dismiss)
    if isinstance(exc, PermissionDenied):
        return (Action("ask_permission", "Ask a staff member who may do this to do it."),
                dismiss)
    if kind is Kind.DISPENSE and exc.field == "scan" and "recalled" in str(exc):
        return (Action("recalled_lot", "The lot handed out was recalled on the server "
                       "meanwhile: follow the recall for this patient (contact them), then "
                       "record the fill as the recall notice says."), dismiss)
    if kind is Kind.DISPENSE and exc.field == "scan":
        return (Action("check_lot", "The scanned lot cannot be dispensed on the server (used "
                       "up, expired or put aside there): count that lot and correct its "
                       "records, then send the fill again."), retry, dismiss)
    if kind is Kind.DISPENSE and isinstance(exc, InvalidState | NotFound):
        return (Action("contact_prescriber", "Look at the prescription on the server (it "
                       "was cancelled, put on hold or changed meanwhile) and contact the "
                       "prescriber about the fill already handed out."), retry, dismiss)
    return (Action("review", "Look at the record on the server and make the change "
                   "again if it is still needed."), retry, dismiss)


def _check_amendment(kind: Kind, old: Any, new: Any) -> None:
    if type(new) is not type(old) or new.request_id != old.request_id:
        raise ValidationError("An amended request is the same kind of write with the same "
                              "request id.", field="request")
    if kind is Kind.DISPENSE and (new.quantity != old.quantity or new.allow_partial
                                  or new.prescription_id != old.prescription_id):
        raise ValidationError("An amended fill is of the same prescription and the quantity "
                              "that was handed out.", field="request")


def _subject(kind: Kind, request: Any) -> uuid.UUID | None:
    if kind is Kind.DISPENSE:
        return request.prescription_id  # type: ignore[no-any-return]
    if kind in (Kind.PATIENT_CREATE, Kind.PATIENT_UPDATE):
        return request.patient_id  # type: ignore[no-any-return]
    return None


def _described(kind: Kind, request: Any, result: Any) -> str:
    plain = _summary(kind, request)
    return _said(kind, result) or plain


def _said(kind: Kind, result: Any) -> str | None:
    """What an offline write was, in the words of the pharmacy (from what the
    service answered on the replica), for the Needs attention list."""
    try:
        if kind is Kind.DISPENSE:
            fill = ("first fill" if result.fill_number == 0
                    else f"refill {result.fill_number}") + (
                        f", part {result.part}" if result.part > 1 else "")
            return f"Rx {result.rx_number}, {fill}: {result.quantity:,} handed out"
        if kind is Kind.RECEIVE:
            return f"Receipt of {result.quantity:,} into lot {result.lot_number}"
        if kind in (Kind.PATIENT_CREATE, Kind.PATIENT_UPDATE):
            what = "New patient" if kind is Kind.PATIENT_CREATE else "Edit of patient"
            return f"{what} {result.first_name} {result.last_name}"
        if kind is Kind.PRESCRIPTION_CREATE:
            return (f"New prescription for {result.patient_name}: {result.quantity:,} x "
                    f"{result.product_name} (Rx {result.rx_number} here)")
        if kind is Kind.LABEL:
            return ("Label reprint" if result.reprint else "Label") + " of an offline fill"
    except AttributeError:  # an answer of another shape: the request's own words
        return None
    return None


def _summary(kind: Kind, request: Any) -> str:
    if kind is Kind.DISPENSE:
        return f"Fill of prescription {request.prescription_id}"
    if kind is Kind.LABEL:
        return ("Label reprint" if request.reprint else "Label") + \
            f" of fill {request.dispense_id}"
    if kind is Kind.RECEIVE:
        return f"Receipt of {request.quantity} into lot {request.lot_number}"
    if kind is Kind.PATIENT_CREATE:
        return f"New patient {request.draft.first_name} {request.draft.last_name}"
    if kind is Kind.PATIENT_UPDATE:
        return f"Edit of patient {request.draft.first_name} {request.draft.last_name}"
    return f"New prescription (request {request.request_id})"


_NOTES_MAX = 1000  # dispensing's limit of a fill's notes


def offline_note(at: dt.datetime) -> str:
    return (f"Handed out offline at {clock.local(at):%Y-%m-%d %H:%M}; recorded when the "
            "server could be reached again.")


def _as_handed_out(req: dispensing.DispenseRequest, result: dispensing.DispenseResult
                   ) -> dispensing.DispenseRequest:
    """The fill the server is asked to repeat: exactly the quantity handed out
    at the counter, never a partial fill of what the server still has (the
    patient has the medicine already): the server fills that quantity or
    refuses it, and a refusal goes to Needs attention. The server records the
    fill as of when it was handed out (its notes say so too)."""
    note = offline_note(result.dispensed_at)
    notes: str | None = (f"{req.notes.strip()} ({note})" if req.notes and req.notes.strip()
                         else note)
    if notes is not None and len(notes) > _NOTES_MAX:
        notes = req.notes  # the pharmacist's own notes come first
    return dataclasses.replace(
        req, quantity=result.quantity, allow_partial=False, notes=notes,
        handed_out_at=result.dispensed_at,
        partial_reason=PartialReason(result.partial_reason) if result.partial_reason
        else req.partial_reason)


def server_actors(sf: sessionmaker[Session]) -> Callable[[uuid.UUID], Actor | None]:
    """``actor_for`` for :meth:`Outbox.replay`: a staff member as the server
    knows them now (None for one no longer active: their entries wait)."""
    def actor_for(staff_id: uuid.UUID) -> Actor | None:
        with db.read_session(sf) as s:
            st = s.get(Staff, staff_id)
            return staff.actor_of(st) if st is not None and st.active else None
    return actor_for


# ------------------------------------------------------------------ the outbox

ServerSessions = sessionmaker[Session] | Callable[[Actor], sessionmaker[Session]]


class Outbox:
    """The outbox of one workstation's replica (see the module docstring)."""

    def __init__(self, replica_engine: Engine, policy: OfflinePolicy | None = None) -> None:
        self.engine = replica_engine
        self.policy = policy or OfflinePolicy()
        self._replaying = threading.Lock()  # one replay at a time
        metadata.create_all(replica_engine)

    # ---------------------------------------------------------- offline writes

    @contextmanager
    def _replica_transaction(self) -> Iterator[tuple[sa.Connection, sessionmaker[Session]]]:
        """One replica transaction (the write lock taken at BEGIN) and a session
        factory whose sessions join it (their commits are SAVEPOINT releases)."""
        with self.engine.connect() as conn:
            conn = conn.execution_options(**{db.IMMEDIATE: True})
            with conn.begin():
                yield conn, sessionmaker(bind=conn, join_transaction_mode="create_savepoint",
                                         expire_on_commit=False, autoflush=False)

    def allowed(self, kind: Kind) -> None:
        if kind not in self.policy.kinds:
            raise OfflineRefused(
                f"The server cannot be reached, and this pharmacy's settings do not allow "
                f"{kind.label} while offline. Wait until the status bar shows Online.")

    def _check_controlled(self, conn: sa.Connection, req: dispensing.DispenseRequest) -> None:
        if self.policy.controlled_dispense:
            return
        rx, pr = table_of(Prescription), table_of(Product)
        ids = [pid for pid in (req.substitute_product_id,) if pid is not None]
        product = conn.execute(sa.select(rx.c.product_id).where(
            rx.c.id == req.prescription_id)).scalar()
        if product is not None:
            ids.append(product)
        schedules = conn.execute(sa.select(pr.c.schedule).where(pr.c.id.in_(ids))).scalars()
        if any(Schedule(s) is not Schedule.NONE for s in schedules):
            raise OfflineRefused(
                "The server cannot be reached, and this pharmacy's settings do not allow "
                "dispensing a controlled substance offline (a separate setting, off unless "
                "the pharmacy turns it on). Wait until the status bar shows Online.")

    def run(self, kind: Kind | str, actor: Actor, request: Any) -> Queued:
        """Make ``request`` on the replica with the service online writes use,
        and queue it for the server, in one replica transaction."""
        kind = Kind(kind)
        self.allowed(kind)
        spec = _SPECS[kind]
        if not isinstance(request, spec.request_type):
            raise TypeError(f"{kind.value} takes a {spec.request_type.__name__}")
        if actor.staff_id is None:
            raise PermissionDenied("An offline write is replayed under the staff member who "
                                   "made it: sign in as one to make it.")
        encode(request)  # refuse what cannot be queued before anything is written
        entry_id = uuid.uuid4()
        with self._replica_transaction() as (conn, sf):
            if kind is Kind.DISPENSE:
                self._check_controlled(conn, request)
            with uow.collect() as got:
                result = spec.call(sf, actor, request)
            queued = _as_handed_out(request, result) if kind is Kind.DISPENSE else request
            text = encode(queued)
            if decode(text) != queued:  # pragma: no cover - the round trip is tested
                raise TypeError("this request does not survive being queued")
            seq = conn.execute(sa.insert(outbox_entries).values(
                id=entry_id, kind=kind.value, request=text, request_id=request.request_id,
                staff_id=actor.staff_id, username=actor.username,
                created_at=_utc_naive(clock.now()), status="waiting",
                summary=_described(kind, request, result)[:300],
                subject=_subject(kind, request),
                local_id=spec.result_id(result),
                local_rows=_changes_json(_rows(got)),
            ).returning(outbox_entries.c.seq)).scalar_one()
        log.info("offline %s queued as entry %s (request %s)", kind.value, seq,
                 request.request_id)
        return Queued(entry_id, seq, kind, request.request_id, result, uow.merged(got))

    # ---------------------------------------------------------- replay

    def _waiting(self) -> list[sa.Row[Any]]:
        with self.engine.connect() as conn:
            return list(conn.execute(sa.select(outbox_entries).where(
                outbox_entries.c.status == "waiting").order_by(outbox_entries.c.seq)))

    def _made_offline(self, kind: Kind, local_id: uuid.UUID | None) -> Any:
        if local_id is None:
            return None
        with self.engine.connect() as conn:
            return conn.execute(sa.select(outbox_entries.c.seq, outbox_entries.c.status,
                                          outbox_entries.c.server_id).where(
                outbox_entries.c.kind == kind.value,
                outbox_entries.c.local_id == local_id)).first()

    def _earlier_refused(self, entry: sa.Row[Any]) -> Any:
        if entry.subject is None:
            return None
        e = outbox_entries
        with self.engine.connect() as conn:
            return conn.execute(sa.select(e.c.seq).where(
                e.c.subject == entry.subject, e.c.seq < entry.seq,
                e.c.status == "attention").order_by(e.c.seq).limit(1)).first()

    def _mapped(self, entry: sa.Row[Any], kind: Kind, request: Any) -> Any:
        """A write about a record whose earlier offline write needs attention
        waits for it (a later fill of a prescription after a refused one: the
        order of fills, refills and owed quantities matters). A request that
        names a record made offline waits for the server to have accepted that
        record (else it is refused, saying which entry to resolve first); a
        prescription entered offline is named by the id the server gave it (and
        it has another Rx number there)."""
        earlier = self._earlier_refused(entry)
        if earlier is not None:
            raise InvalidState(
                f"An earlier offline write about this record (outbox entry {earlier.seq}) "
                "needs attention: resolve it first, then send this again.")
        if kind is Kind.DISPENSE:
            made, what = self._made_offline(Kind.PRESCRIPTION_CREATE,
                                            request.prescription_id), "prescription"
        elif kind is Kind.LABEL:  # the label of a fill made offline: the server's fill
            made, what = self._made_offline(Kind.DISPENSE, request.dispense_id), "fill"
        elif kind is Kind.PRESCRIPTION_CREATE:
            made, what = self._made_offline(Kind.PATIENT_CREATE,
                                            request.draft.patient_id), "patient"
        elif kind is Kind.PATIENT_UPDATE:
            made, what = self._made_offline(Kind.PATIENT_CREATE, request.patient_id), "patient"
        else:
            return request
        if made is None:
            return request
        if made.status != "done" or made.server_id is None:
            raise InvalidState(
                f"This is about a {what} entered offline (outbox entry {made.seq}) that the "
                "server has not accepted: resolve that entry first, then send this again.")
        if kind is Kind.DISPENSE:
            return dataclasses.replace(request, prescription_id=made.server_id)
        if kind is Kind.LABEL:
            return dataclasses.replace(request, dispense_id=made.server_id)
        return request

    def replay(self, server: ServerSessions, actor_for: Callable[[uuid.UUID], Actor | None],
               on_progress: Callable[[int, int], None] | None = None, *,
               refetch: Callable[[Mapping[str, set[uuid.UUID]]], None] | None = None
               ) -> ReplayResult:
        """Send the waiting entries to the server, in order (module docstring).

        ``server``: the server's session factory, or a function giving the one
        of a staff member (on PostgreSQL the database records who did what from
        the session's login, so an entry is replayed over its maker's login).
        ``actor_for(staff_id)``: that staff member as the server knows them; None
        stops the replay there (they must sign in). ``on_progress(done, total)``
        before each entry and at the end. ``refetch(rows)`` after each entry with
        the rows the replica should take from the server.

        A replay while another one runs returns at once (``stopped`` says so):
        two would send the same entries (harmless, by their request ids, but
        twice the traffic)."""
        if not self._replaying.acquire(blocking=False):
            return ReplayResult(sent=0, attention=0, waiting=self.state().waiting,
                                stopped="The offline writes are being sent already.")
        try:
            return self._replay(server, actor_for, on_progress, refetch)
        finally:
            self._replaying.release()

    def _replay(self, server: ServerSessions, actor_for: Callable[[uuid.UUID], Actor | None],
                on_progress: Callable[[int, int], None] | None,
                refetch: Callable[[Mapping[str, set[uuid.UUID]]], None] | None
                ) -> ReplayResult:
        entries = self._waiting()
        total = len(entries)
        sent = attention = 0
        lost = False
        stopped: str | None = None
        everything: dict[str, set[uuid.UUID]] = {}
        for index, entry in enumerate(entries):
            if on_progress is not None:
                on_progress(index, total)
            kind = Kind(entry.kind)
            try:
                actor = actor_for(entry.staff_id)  # server_actors: a read of the server
            except (sa.exc.DBAPIError, DatabaseUnavailable) as exc:
                if isinstance(exc, sa.exc.DBAPIError) and not is_disconnect(exc):
                    raise
                lost = True
                stopped = "The connection to the server was lost: the rest waits."
                break
            if actor is None:
                stopped = (f"{entry.username} must sign in for the writes they made offline "
                           "to be sent.")
                break
            sf = server if isinstance(server, sessionmaker) else server(actor)
            self._count_attempt(entry.id)
            rows = _changes_of(entry.local_rows)
            try:
                request = self._mapped(entry, kind, decode(entry.request))
                with uow.collect() as got:
                    result = _SPECS[kind].call(sf, actor, request)
            except DomainError as exc:
                self._needs_attention(entry, kind, exc)
                attention += 1
                log.info("outbox entry %s refused by the server: %s", entry.seq, exc)
            except (sa.exc.DBAPIError, DatabaseUnavailable) as exc:
                if isinstance(exc, sa.exc.DBAPIError) and not is_disconnect(exc):
                    log.exception("outbox entry %s: the server failed unexpectedly; the "
                                  "replay stops and the entry waits", entry.seq)
                    stopped = "The server failed on an offline write: it was logged and waits."
                    break
                lost = True
                stopped = "The connection to the server was lost: the rest waits."
                log.info("outbox replay: connection lost at entry %s", entry.seq)
                break
            except Exception:
                log.exception("outbox entry %s: a bug stopped the replay; the entry waits",
                              entry.seq)
                stopped = "An offline write could not be sent because of an error (logged)."
                break
            else:
                server_rows = _rows(got)
                _merge(rows, server_rows)
                self._done(entry.id, _SPECS[kind].result_id(result), server_rows)
                sent += 1
            _merge(everything, rows)
            if refetch is not None:
                refetch(rows)
        if on_progress is not None:
            on_progress(sent + attention, total)
        return ReplayResult(sent=sent, attention=attention, waiting=self.state().waiting,
                            lost_connection=lost, stopped=stopped, refetch=everything)

    def _count_attempt(self, entry_id: uuid.UUID) -> None:
        with self.engine.begin() as conn:
            conn.execute(sa.update(outbox_entries).where(outbox_entries.c.id == entry_id)
                         .values(attempts=outbox_entries.c.attempts + 1))

    def _done(self, entry_id: uuid.UUID, server_id: uuid.UUID,
              server_rows: Mapping[str, set[uuid.UUID]]) -> None:
        with self.engine.begin() as conn:
            conn.execute(sa.update(outbox_entries).where(outbox_entries.c.id == entry_id)
                         .values(status="done", server_id=server_id,
                                 server_rows=_changes_json(server_rows),
                                 replayed_at=_utc_naive(clock.now())))

    def _needs_attention(self, entry: sa.Row[Any], kind: Kind, exc: DomainError) -> None:
        actions = suggested_actions(kind, exc)
        reason = str(exc)
        if isinstance(exc, InsufficientStock):
            reason = ("Stock discrepancy: the server's stock was used meanwhile (another "
                      f"workstation?). {exc}")
        with self.engine.begin() as conn:
            conn.execute(sa.update(outbox_entries).where(outbox_entries.c.id == entry.id)
                         .values(status="attention", replayed_at=_utc_naive(clock.now())))
            conn.execute(sa.insert(needs_attention_table).values(
                entry_id=entry.id, at=_utc_naive(clock.now()), error=type(exc).__name__,
                reason=reason, actions=json.dumps([[a.code, a.label] for a in actions])))

    # ---------------------------------------------------------- status

    def state(self) -> OutboxState:
        e = outbox_entries
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(
                sa.func.count().filter(e.c.status == "waiting"),
                sa.func.count().filter(e.c.status == "attention"),
                sa.func.min(e.c.created_at).filter(e.c.status == "waiting"))).one()
        return OutboxState(int(row[0]), int(row[1]), _aware(row[2]))

    def needs_attention(self) -> list[AttentionItem]:
        e, a = outbox_entries, needs_attention_table
        latest = (sa.select(sa.func.max(a.c.id)).where(a.c.entry_id == e.c.id)
                  .correlate(e).scalar_subquery())
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(e, a.c.error, a.c.reason, a.c.actions)
                                .join(a, a.c.id == latest)
                                .where(e.c.status == "attention").order_by(e.c.seq)).all()
        return [AttentionItem(
            entry_id=r.id, seq=r.seq, kind=Kind(r.kind), username=r.username,
            created_at=_aware(r.created_at) or clock.now(), summary=r.summary, error=r.error,
            reason=r.reason, actions=tuple(Action(c, lbl) for c, lbl in json.loads(r.actions)),
            request=decode(r.request)) for r in rows]

    def resolve(self, entry_id: uuid.UUID, how: str, actor: Actor, *,
                request: Any = None) -> None:
        """``dismiss``: the entry is closed (kept, never sent); ``retry``: it waits
        again, in its place, and the next replay sends it with its request id.
        A retry may send an amended ``request`` (the edit made again on the
        current version, the warnings acknowledged, "another person" confirmed):
        the same kind of request with the same request id (the server refused
        the first one, so it wrote nothing under that id); a fill keeps the
        quantity that was handed out."""
        if how not in ("dismiss", "retry"):
            raise ValidationError("An entry that needs attention is dismissed or sent again "
                                  "('dismiss' or 'retry').", field="how")
        if request is not None and how != "retry":
            raise ValidationError("Only an entry sent again takes an amended request.",
                                  field="request")
        e, a = outbox_entries, needs_attention_table
        with self._replica_transaction() as (conn, _sf):
            row = conn.execute(sa.select(e.c.status, e.c.kind, e.c.request).where(
                e.c.id == entry_id)).first()
            if row is None:
                raise NotFound("That outbox entry does not exist.")
            if row.status != "attention":
                raise Conflict("That outbox entry does not need attention (any more).")
            amended: dict[str, Any] = {}
            if request is not None:
                kind = Kind(row.kind)
                _check_amendment(kind, decode(row.request), request)
                amended = {"request": encode(request),
                           "summary": _summary(kind, request)[:300]}
            conn.execute(sa.update(e).where(e.c.id == entry_id).values(
                status="dismissed" if how == "dismiss" else "waiting", **amended))
            conn.execute(sa.update(a).where(a.c.entry_id == entry_id, a.c.resolved_at.is_(None))
                         .values(resolved_at=_utc_naive(clock.now()),
                                 resolution="retry amended" if amended else how,
                                 resolved_by=actor.username))

    def entries(self, statuses: Sequence[str] = STATUSES) -> list[sa.Row[Any]]:
        """The entries (for diagnostics and tests), in order."""
        with self.engine.connect() as conn:
            return list(conn.execute(sa.select(outbox_entries).where(
                outbox_entries.c.status.in_(list(statuses))).order_by(outbox_entries.c.seq)))


__all__ = [
    "DEFAULT_KINDS", "Action", "AttentionItem", "Kind", "OfflinePolicy", "OfflineRefused",
    "Outbox", "OutboxState", "PatientCreate", "PatientUpdate", "PrescriptionCreate", "Queued",
    "ReplayResult", "decode", "encode", "metadata", "server_actors", "suggested_actions",
]
