"""The step kinds of a case, in one registry: :data:`STEP_KINDS`.

A step kind is one function decorated with :func:`step`: the decorator
declares its keys (each with how it is read and checked when the file is
loaded) and what may be expected of it; the function carries it out through
the services, as the staff member, and returns an :class:`~.expect.Outcome`.
A step kind the app cannot do yet is declared with :func:`not_yet`: a case
that uses it is refused when it is loaded, saying so. Adding a step kind is
one decorated function here.

A step that the app refuses raises the service's :class:`DomainError`
(or :class:`Refused`, which keeps the warnings screening raised before the
refusal); :func:`refusal_kind` turns it into the kind a case expects.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import Callable, Collection, Mapping
from typing import Any

from ..enums import LotStatus, PartialReason, Role, Schedule, StocktakeScope
from ..services import (
    catalog,
    clock,
    dea_inventory,
    deaforms,
    dispensing,
    fills,
    inventory,
    prescriptions,
    settings,
    stocktake,
    transfers,
)
from ..services.context import SYSTEM, Actor
from ..services.dispensing import DispenseRequest
from ..services.errors import (
    Conflict,
    DomainError,
    InsufficientStock,
    InvalidState,
    NotFound,
    PermissionDenied,
    StaleEdit,
    WarningsNeedAcknowledgement,
)
from ..services.prescriptions import PrescriptionDraft, RxAction
from . import vocabulary as v
from .expect import Outcome
from .setup import World, noon

# ------------------------------------------------------------ what a case names


@dataclasses.dataclass
class Names:
    """What the case has defined up to the step being read."""

    staff: dict[str, Role]
    products: dict[str, Schedule]
    patients: set[str]
    prescribers: set[str]
    rx: dict[str, int] = dataclasses.field(default_factory=dict)  # id -> defining step
    lots: set[tuple[str, str]] = dataclasses.field(default_factory=set)  # (product, LOT)
    day: dt.date = dt.date(2000, 1, 1)  # the case's day at this step


class RunProblem(Exception):
    """The case cannot go on (a record an earlier, refused step would have made)."""


class Refused(Exception):
    """The app refused the step after screening raised ``warnings``."""

    def __init__(self, error: DomainError, warnings: tuple[str, ...]) -> None:
        super().__init__(str(error))
        self.error = error
        self.warnings = warnings


# ----------------------------------------------------------------- the keys


@dataclasses.dataclass(frozen=True)
class Field:
    """How one key of a step is read. ``default`` when it is left out."""

    required: bool = False
    default: Any = None

    @property
    def takes_nothing(self) -> bool:
        """Is a key given without a value read (rather than left at the default)?"""
        return False

    def read(self, value: Any, line: int, what: str, names: Names, args: dict[str, Any]
             ) -> Any:
        raise NotImplementedError


@dataclasses.dataclass(frozen=True)
class Text(Field):
    max_len: int = 300
    empty_ok: bool = False  # '' is passed to the app as is (to see it refused)

    @property
    def takes_nothing(self) -> bool:
        return self.empty_ok

    def read(self, value: Any, line: int, what: str, names: Names, args: dict[str, Any]
             ) -> Any:
        if value is None and self.empty_ok:
            return ""
        if not isinstance(value, str):
            v.fail(f"{what} must be text, not {v.describe(value)}", line)
        if len(value) > self.max_len:
            v.fail(f"{what} is longer than {self.max_len} characters", line)
        if not value.strip() and not self.empty_ok:
            v.fail(f"{what} is empty", line)
        return value


@dataclasses.dataclass(frozen=True)
class Whole(Field):
    minimum: int | None = None
    maximum: int | None = 10_000_000
    nonzero: bool = False

    def read(self, value: Any, line: int, what: str, names: Names, args: dict[str, Any]
             ) -> Any:
        n = v.whole(value, line, what, minimum=self.minimum, maximum=self.maximum)
        if self.nonzero and n == 0:
            v.fail(f"{what} must not be 0", line)
        return n


@dataclasses.dataclass(frozen=True)
class Day(Field):
    def read(self, value: Any, line: int, what: str, names: Names, args: dict[str, Any]
             ) -> Any:
        return v.a_date(value, line, what)


@dataclasses.dataclass(frozen=True)
class Flag(Field):
    def read(self, value: Any, line: int, what: str, names: Names, args: dict[str, Any]
             ) -> Any:
        return v.a_bool(value, line, what)


@dataclasses.dataclass(frozen=True)
class Ref(Field):
    """The name of a record of the setup (or, for rx, of an earlier prescribe)."""

    kind: str = "product"  # product, patient, prescriber, rx
    required: bool = True

    def read(self, value: Any, line: int, what: str, names: Names, args: dict[str, Any]
             ) -> Any:
        if not isinstance(value, str) or not value.strip():
            v.fail(f"{what} must name a {self.kind}, not {v.describe(value)}", line)
        value = value.strip()
        known: Collection[str] = {
            "product": names.products, "patient": names.patients,
            "prescriber": names.prescribers, "rx": names.rx}[self.kind]
        if value not in known:
            where = ("an earlier prescribe step's id" if self.kind == "rx"
                     else f"one of setup's {self.kind}s")
            v.fail(f"{what}: '{value}' is not {where}{v.suggest(value, known)}", line)
        return value


@dataclasses.dataclass(frozen=True)
class NewRx(Field):
    """The id a prescribe step gives its prescription, for later steps."""

    required: bool = True

    def read(self, value: Any, line: int, what: str, names: Names, args: dict[str, Any]
             ) -> Any:
        if not isinstance(value, str):
            v.fail(f"{what} must be a name, not {v.describe(value)}", line)
        name = v.key_name(value.strip(), line, what)
        if name in names.rx:
            v.fail(f"{what}: '{name}' is already the id of step {names.rx[name]}'s "
                   "prescription", line)
        return name


@dataclasses.dataclass(frozen=True)
class LotOf(Field):
    """A lot number of the step's ``product``; ``new``: the step makes it."""

    required: bool = True
    new: bool = False

    def read(self, value: Any, line: int, what: str, names: Names, args: dict[str, Any]
             ) -> Any:
        if not isinstance(value, str) or not value.strip():
            v.fail(f"{what} must be a lot number, not {v.describe(value)}", line)
        lot = value.strip()
        if len(lot) > 40:
            v.fail(f"{what} is longer than 40 characters", line)
        product = args.get("product")
        if product is not None and not self.new and (product, lot.upper()) not in names.lots:
            v.fail(f"{what}: {product} has no lot {lot} in setup's lots or an earlier "
                   "receive step", line)
        return lot


@dataclasses.dataclass(frozen=True)
class Acknowledge(Field):
    """{warning kind: reason}: the reason each warning of that kind is dispensed
    despite (an empty reason is passed on as is)."""

    default: Any = dataclasses.field(default_factory=dict)

    def read(self, value: Any, line: int, what: str, names: Names, args: dict[str, Any]
             ) -> Any:
        m = v.as_map(value, line, what)
        out = {}
        for kind, reason in m.items():
            at = m.line_of(kind)
            v.warning_kind(kind, at, what)
            if reason is None:
                reason = ""
            if not isinstance(reason, str):
                v.fail(f"{what}: the reason for {kind} must be text, not {v.describe(reason)}",
                       at)
            if len(reason) > 500:
                v.fail(f"{what}: the reason for {kind} is longer than 500 characters", at)
            out[kind] = reason
        return out


@dataclasses.dataclass(frozen=True)
class Partial(Field):
    """true / false, or a DEA partial-fill reason (shortage, patient_request,
    long_term_care, terminally_ill; 21 CFR 1306.13): read as (partial allowed,
    reason or None)."""

    default: Any = (False, None)
    reasons: tuple[str, ...] = tuple(r.value for r in PartialReason)

    def read(self, value: Any, line: int, what: str, names: Names, args: dict[str, Any]
             ) -> Any:
        if isinstance(value, str) and value.strip() in self.reasons:
            return True, PartialReason(value.strip())
        if isinstance(value, str) and value.strip().lower() in ("true", "false", "yes", "no"):
            return value.strip().lower() in ("true", "yes"), None
        v.fail(f"{what} must be true, false or a partial-fill reason "
               f"({', '.join(self.reasons)}), not {v.describe(value)}", line)


@dataclasses.dataclass(frozen=True)
class Daw(Field):
    """Dispense as written: the NCPDP product-selection code 0-9, or true (1) /
    false (0)."""

    default: Any = 0

    def read(self, value: Any, line: int, what: str, names: Names, args: dict[str, Any]
             ) -> Any:
        if isinstance(value, str) and len(value.strip()) == 1 and value.strip().isdigit():
            return int(value.strip())
        if isinstance(value, str) and value.strip().isdigit():
            v.fail(f"{what}: {value.strip()} is not a product-selection code (0-9)", line)
        return 1 if v.a_bool(value, line, what) else 0


@dataclasses.dataclass(frozen=True)
class Later(Field):
    """A key the format has but the app cannot use yet: refused when given."""

    why: str = ""

    @property
    def takes_nothing(self) -> bool:
        return True

    def read(self, value: Any, line: int, what: str, names: Names, args: dict[str, Any]
             ) -> Any:
        v.fail(f"{what} {v.NOT_YET} ({self.why})", line)


@dataclasses.dataclass(frozen=True)
class OneOf(Field):
    """One of ``choices`` (text)."""

    choices: tuple[str, ...] = ()

    def read(self, value: Any, line: int, what: str, names: Names, args: dict[str, Any]
             ) -> Any:
        if not isinstance(value, str) or value.strip() not in self.choices:
            v.fail(f"{what} must be one of {', '.join(self.choices)}, not {v.describe(value)}",
                   line)
        return value.strip()


@dataclasses.dataclass(frozen=True)
class CountLine:
    product: str
    lot: str
    counted: int
    estimate: bool
    container: int | None
    reason: str | None


@dataclasses.dataclass(frozen=True)
class CountLines(Field):
    """An inventory's counts: a list of {product, lot, counted, estimate, container,
    reason} (``product`` left out: the step's). Lots not listed are counted as
    they stand."""

    default: Any = ()

    def read(self, value: Any, line: int, what: str, names: Names, args: dict[str, Any]
             ) -> Any:
        seq = v.as_list(value, line, what)
        out = []
        for i, item in enumerate(seq):
            at = seq.line_of(i)
            m = v.as_map(item, at, what)
            v.check_keys(m, what, ("product", "lot", "counted", "estimate", "container",
                                   "reason"), required=("lot", "counted"))
            product = v.text(m, "product", what, max_len=40) or args.get("product")
            if product is None:
                v.fail(f"{what}: say which product each line counts ('product')", at)
            if product not in names.products:
                v.fail(f"{what}: '{product}' is not one of setup's products"
                       f"{v.suggest(product, names.products)}", m.line_of("product"))
            lot = v.required_text(m, "lot", what, max_len=40).strip()
            if (product, lot.upper()) not in names.lots:
                v.fail(f"{what}: {product} has no lot {lot} in setup's lots or an earlier "
                       "receive step", m.line_of("lot"))
            counted = v.number(m, "counted", what, minimum=0, maximum=10_000_000)
            assert counted is not None
            out.append(CountLine(product, lot, counted,
                                 bool(v.boolean(m, "estimate", what, default=False)),
                                 v.number(m, "container", what, minimum=1,
                                          maximum=10_000_000),
                                 v.text(m, "reason", what, max_len=300)))
        return tuple(out)


# ------------------------------------------------------------ the registry

Run = Callable[[World, Mapping[str, Any], Actor], Outcome]
ALWAYS = frozenset({"refused", "register_balance", "on_hand", "reorder", "register_entry"})
FILL_EXPECTS = frozenset({"warnings", "warnings_include", "dispensed", "owed", "lots",
                          "label_contains", "days_supply"})


@dataclasses.dataclass(frozen=True)
class StepKind:
    name: str
    does: str
    fields: Mapping[str, Field]
    expects: frozenset[str]
    run: Run | None  # None: not supported yet
    actor: bool = True  # done by a staff member (``as:``)
    after: Callable[[Mapping[str, Any], Names, int], None] | None = None  # what it defines
    check: Callable[[Mapping[str, Any], Names, int, str], None] | None = None  # keys together


STEP_KINDS: dict[str, StepKind] = {}


def step(name: str, does: str, *, expects: frozenset[str] = frozenset(),
         aliases: tuple[str, ...] = (), actor: bool = True,
         after: Callable[[Mapping[str, Any], Names, int], None] | None = None,
         check: Callable[[Mapping[str, Any], Names, int, str], None] | None = None,
         **fields: Field) -> Callable[[Run], Run]:
    """Register a step kind carried out by the decorated function. ``fields``:
    its keys; ``after``: what it defines for later steps (an rx id, a lot);
    ``check``: a check of its keys together, when the file is read."""
    def register(run: Run) -> Run:
        for n in (name, *aliases):
            STEP_KINDS[n] = StepKind(n, does, fields, ALWAYS | expects, run, actor, after,
                                     check)
        return run
    return register


def not_yet(name: str, does: str) -> None:
    """A step kind of the format that the app cannot do yet."""
    STEP_KINDS[name] = StepKind(name, does, {}, frozenset(), None)


def _rx(world: World, name: str) -> uuid.UUID:
    rx = world.rx.get(name)
    if rx is None:
        raise RunProblem(f"prescription '{name}' does not exist: the prescribe step that "
                         "would have made it was refused")
    return rx


def _lot(world: World, product: str, lot: str) -> uuid.UUID:
    found = world.lot(product, lot)
    if found is None:
        raise RunProblem(f"lot {lot} of {product} does not exist: the receive step that would "
                         "have made it was refused")
    return found


# -------------------------------------------------------------- step kinds


def _defines_rx(args: Mapping[str, Any], names: Names, number: int) -> None:
    names.rx[args["id"]] = number


@step("prescribe", "enter a prescription (as written by the prescriber)",
      expects=frozenset({"warnings", "warnings_include"}), after=_defines_rx,
      id=NewRx(), patient=Ref(kind="patient"), prescriber=Ref(kind="prescriber"),
      product=Ref(kind="product"), quantity=Whole(required=True, minimum=-10_000_000),
      days_supply=Whole(default=30, minimum=-10_000), refills=Whole(default=0, minimum=-99),
      written=Day(), sig=Text(default="Take as directed", max_len=1000), daw=Daw(),
      electronic=Flag(default=True), notes=Text(max_len=2000), not_before=Day())
def prescribe(world: World, a: Mapping[str, Any], actor: Actor) -> Outcome:
    # what the prescription form shows as it is written (shown, not stored)
    try:
        raised = prescriptions.screen_draft(
            world.sf, actor, world.patients[a["patient"]], world.products[a["product"]].id,
            a["quantity"], a["days_supply"]).warnings
    except DomainError:
        raised = ()  # the prescription itself will say why
    kinds = tuple(w.kind.value for w in raised)
    try:
        info = prescriptions.create_prescription(world.sf, actor, PrescriptionDraft(
            patient_id=world.patients[a["patient"]],
            prescriber_id=world.prescribers[a["prescriber"]],
            product_id=world.products[a["product"]].id, sig=a["sig"], quantity=a["quantity"],
            days_supply=a["days_supply"], refills_authorized=a["refills"],
            daw_code=a["daw"], not_before=a["not_before"], electronic=a["electronic"],
            date_written=a["written"] or clock.today(), notes=a["notes"]))
    except DomainError as exc:
        raise Refused(exc, kinds) from None
    world.rx[a["id"]] = info.id
    return Outcome(warnings=kinds)


NO_SCAN_DEFAULT = "not scanned (rules case)"


FILL_FIELDS: dict[str, Field] = dict(
    rx=Ref(kind="rx"), quantity=Whole(minimum=-10_000_000), scan=Text(max_len=500),
    no_scan_reason=Text(default=NO_SCAN_DEFAULT, empty_ok=True, max_len=300),
    partial=Partial(), acknowledge=Acknowledge(), notes=Text(max_len=1000),
    substitute=Ref(kind="product", required=False))


@step("fill", "fill a prescription (stock leaves the shelf, the label can be printed)",
      expects=FILL_EXPECTS, **FILL_FIELDS)  # type: ignore[arg-type]
def fill(world: World, a: Mapping[str, Any], actor: Actor) -> Outcome:
    rx = _rx(world, a["rx"])
    scan = a["scan"].replace("<GS>", "\x1d") if a["scan"] else None
    instead = world.products[a["substitute"]].id if a["substitute"] else None
    try:
        raised = dispensing.preview_dispense(world.sf, actor, rx, a["quantity"],
                                             scan=scan, substitute=instead).warnings
    except DomainError:
        raised = ()  # the fill itself will say why
    kinds = tuple(w.kind.value for w in raised)
    acks = {w.key: a["acknowledge"][w.kind.value] for w in raised
            if w.kind.value in a["acknowledge"]}
    try:
        result = dispensing.dispense(world.sf, actor, DispenseRequest(
            prescription_id=rx, request_id=uuid.uuid4(), quantity=a["quantity"],
            allow_partial=a["partial"][0], partial_reason=a["partial"][1],
            acknowledgements=acks, scan=scan, substitute_product_id=instead,
            no_scan_reason=None if scan else a["no_scan_reason"], notes=a["notes"]))
    except WarningsNeedAcknowledgement as exc:
        # the warnings it stopped for are among those raised (the preview's, unless
        # the preview itself was refused)
        raise Refused(exc, tuple(dict.fromkeys(
            [*kinds, *(w.kind.value for w in exc.warnings)]))) from None
    except DomainError as exc:
        raise Refused(exc, kinds) from None
    return Outcome(warnings=kinds, dispense=result)


@step("dispense", "fill a prescription, and verify it when the pharmacy lets one pharmacist "
      "do both (setting self_verify)", expects=FILL_EXPECTS,
      **FILL_FIELDS)  # type: ignore[arg-type]
def dispense(world: World, a: Mapping[str, Any], actor: Actor) -> Outcome:
    out = fill(world, a, actor)
    if out.dispense is not None and settings.get_settings(world.sf).self_verify:
        try:
            fills.verify(world.sf, actor, out.dispense.dispense_id)
        except DomainError as exc:
            raise Refused(exc, out.warnings) from None
    return out


def _fill_of(world: World, name: str, actor: Actor) -> uuid.UUID:
    found = fills.latest_fill(world.sf, actor, _rx(world, name))
    if found is None:
        raise RunProblem(f"prescription '{name}' has no fill to take further: fill it first")
    return found


@step("verify", "the pharmacist's final check of the prescription's latest fill (refuse: "
      "what was wrong; the fill goes back to stock)", rx=Ref(kind="rx"),
      refuse=Text(max_len=300))
def verify(world: World, a: Mapping[str, Any], actor: Actor) -> Outcome:
    d = _fill_of(world, a["rx"], actor)
    if a["refuse"]:
        fills.refuse(world.sf, actor, d, a["refuse"])
    else:
        fills.verify(world.sf, actor, d)
    return Outcome()


@step("release", "hand the verified fill to the patient (counseling offered, accepted or "
      "declined; id: the ID seen, for a controlled substance)", rx=Ref(kind="rx"),
      counseling=Text(default="offered", max_len=20), id=Text(max_len=100))
def release(world: World, a: Mapping[str, Any], actor: Actor) -> Outcome:
    fills.release(world.sf, actor, _fill_of(world, a["rx"], actor),
                  counseling=a["counseling"], id_checked=a["id"])
    return Outcome()


@step("print_label", "print the label of the prescription's latest fill; printing it again "
      "is a reprint, which needs its reason (kept with it)", rx=Ref(kind="rx"),
      reprint=Text(max_len=300, empty_ok=True))
def print_label(world: World, a: Mapping[str, Any], actor: Actor) -> Outcome:
    d = _fill_of(world, a["rx"], actor)
    again = a["reprint"] is not None
    dispensing.record_label(world.sf, actor, d, reprint=again, reason=a["reprint"])
    return Outcome()


@step("return_to_stock", "put a verified fill that was not picked up (or was declined) back "
      "to its lots", rx=Ref(kind="rx"), reason=Text(default="not_picked_up", max_len=30),
      note=Text(max_len=300))
def return_to_stock(world: World, a: Mapping[str, Any], actor: Actor) -> Outcome:
    fills.return_to_stock(world.sf, actor, _fill_of(world, a["rx"], actor), a["reason"],
                          a["note"])
    return Outcome()


def _status(action: str, default_reason: str | None
            ) -> Callable[[World, Mapping[str, Any], Actor], Outcome]:
    def run(world: World, a: Mapping[str, Any], actor: Actor) -> Outcome:
        reason = a.get("reason")
        prescriptions.change_status(world.sf, actor, _rx(world, a["rx"]), action,
                                    reason=default_reason if reason is None else reason)
        return Outcome()
    return run


step("cancel", "cancel a prescription (with a reason)",
     rx=Ref(kind="rx"), reason=Text(empty_ok=True))(_status(RxAction.CANCEL,
                                                            "Cancelled (rules case)"))
step("hold", "put a prescription on hold",
     rx=Ref(kind="rx"), reason=Text(empty_ok=True))(_status(RxAction.HOLD, None))
step("release_hold", "take a prescription off hold",
     rx=Ref(kind="rx"))(_status(RxAction.RELEASE, None))


@step("void_remainder", "declare the rest of a Schedule II partial fill void, recording how "
      "the prescriber was told (21 CFR 1306.13(a))",
      rx=Ref(kind="rx"), notice=Text(default="Prescriber notified (rules case)",
                                     empty_ok=True, max_len=500))
def void_remainder(world: World, a: Mapping[str, Any], actor: Actor) -> Outcome:
    prescriptions.void_remainder(world.sf, actor, _rx(world, a["rx"]), a["notice"])
    return Outcome()


def _defines_lot(args: Mapping[str, Any], names: Names, number: int) -> None:
    names.lots.add((args["product"], args["lot"].upper()))


@step("receive", "receive a delivery into a lot (made on its first receipt)", after=_defines_lot,
      product=Ref(kind="product"), lot=LotOf(new=True), expiry=Day(required=True),
      quantity=Whole(required=True, minimum=-10_000_000), supplier=Text(max_len=200),
      supplier_dea=Text(max_len=20), unit_cost=Text(default="0", max_len=20),
      invoice=Text(max_len=100), order_form=Text(max_len=60))
def receive(world: World, a: Mapping[str, Any], actor: Actor) -> Outcome:
    moved = inventory.receive_stock(world.sf, actor, inventory.ReceiptRequest(
        product_id=world.products[a["product"]].id, lot_number=a["lot"],
        expiry_date=a["expiry"], quantity=a["quantity"], unit_cost=a["unit_cost"],
        supplier_id=world.supplier(a["supplier"], a["supplier_dea"]) if a["supplier"]
        else None, invoice_ref=a["invoice"], order_form=a["order_form"]))
    world.lots[(a["product"], a["lot"].upper())] = moved.lot_id
    return Outcome()


@dataclasses.dataclass(frozen=True)
class StaffList(Field):
    """A list of staff keys of the setup (a destruction's witnesses)."""

    required: bool = True

    def read(self, value: Any, line: int, what: str, names: Names, args: dict[str, Any]
             ) -> Any:
        items = v.as_list(value, line, what)
        out = []
        for item in items:
            if not isinstance(item, str) or item.strip() not in names.staff:
                v.fail(f"{what}: {v.describe(item)} is not one of setup's staff"
                       f"{v.suggest(str(item), names.staff)}", line)
            out.append(item.strip())
        return tuple(out)


def _form_line(world: World, a: Mapping[str, Any]) -> list[deaforms.FormLine]:
    return [deaforms.FormLine(_lot(world, a["product"], a["lot"]), a["quantity"])]


@step("destroy", "destroy controlled stock on site and record it on a DEA Form 41 (two "
      "witnesses, the method, the date and the place); its write-off is posted from the "
      "record", product=Ref(kind="product"), lot=LotOf(),
      quantity=Whole(required=True, minimum=-10_000_000),
      witnesses=StaffList(), method=Text(default="", empty_ok=True, max_len=200),
      place=Text(default="", empty_ok=True), date=Day())
def destroy(world: World, a: Mapping[str, Any], actor: Actor) -> Outcome:
    ids = [world.staff[k].staff_id for k in a["witnesses"]]
    if len(ids) > 2:
        raise RunProblem("a destruction names two witnesses, not more")
    deaforms.record_destruction(world.sf, actor, deaforms.DestructionRequest(
        lines=_form_line(world, a), destroyed_on=a["date"] or clock.today(),
        method=a["method"], place=a["place"], witness1_id=ids[0] if ids else None,
        witness2_id=ids[1] if len(ids) > 1 else None))
    return Outcome()


@step("report_loss", "report a theft or significant loss of controlled stock on a DEA "
      "Form 106; its adjustment is posted from the record", product=Ref(kind="product"),
      lot=LotOf(), quantity=Whole(required=True, minimum=-10_000_000),
      type=Text(default="other", max_len=40), discovered=Day(), happened=Day(),
      police=Text(default="", empty_ok=True, max_len=200),
      detail=Text(default="", empty_ok=True, max_len=500),
      carrier=Text(default="", empty_ok=True, max_len=200))
def report_loss(world: World, a: Mapping[str, Any], actor: Actor) -> Outcome:
    deaforms.report_theft_or_loss(world.sf, actor, deaforms.TheftLossRequest(
        lines=_form_line(world, a), discovered_on=a["discovered"] or clock.today(),
        occurred_on=a["happened"], loss_type=a["type"], police_notified=bool(a["police"]),
        police_department=a["police"] or None, loss_detail=a["detail"] or None,
        carrier=a["carrier"] or None))
    return Outcome()


@step("adjust", "correct a lot's quantity (damage, loss, found stock), with a reason",
      product=Ref(kind="product"), lot=LotOf(),
      quantity=Whole(required=True, minimum=-10_000_000, nonzero=True),
      reason=Text(default="Count correction", empty_ok=True))
def adjust(world: World, a: Mapping[str, Any], actor: Actor) -> Outcome:
    inventory.adjust_stock(world.sf, actor, _lot(world, a["product"], a["lot"]), a["quantity"],
                           a["reason"])
    return Outcome()


@step("count", "count a lot in a stocktake (the product's other lots are counted as they "
      "stand) and post it", product=Ref(kind="product"), lot=LotOf(),
      counted=Whole(required=True, minimum=-10_000_000),
      reason=Text(default="Stocktake variance (rules case)", empty_ok=True))
def count(world: World, a: Mapping[str, Any], actor: Actor) -> Outcome:
    lot_id = _lot(world, a["product"], a["lot"])
    controlled = world.products[a["product"]].schedule.controlled
    st = stocktake.start_stocktake(world.sf, actor, StocktakeScope.CONTROLLED if controlled
                                   else StocktakeScope.ALL, note="rules case")
    try:
        lines = stocktake.count_lines(world.sf, actor, st.id)
        if not any(ln.lot_id == lot_id for ln in lines):
            raise RunProblem(f"lot {a['lot']} of {a['product']} has nothing on hand, so a "
                             "stocktake does not list it: use adjust for stock found")
        for ln in lines:
            if ln.lot_id == lot_id:
                stocktake.enter_count(world.sf, actor, ln.line_id, a["counted"],
                                      a["reason"] if a["counted"] != ln.expected else None)
            else:
                stocktake.enter_count(world.sf, actor, ln.line_id, ln.expected)
        stocktake.post_stocktake(world.sf, actor, st.id)
    except BaseException:
        try:
            stocktake.cancel_stocktake(world.sf, SYSTEM, st.id)
        except DomainError:
            pass
        raise
    return Outcome()


def _dea_counts(world: World, actor: Actor, lines: tuple[CountLine, ...],
                product: str | None = None) -> list[dea_inventory.Count]:
    """The counts of an inventory's sheet: the case's lines, and every other lot
    as it stands."""
    sheet = dea_inventory.count_sheet(
        world.sf, SYSTEM, product_id=world.products[product].id if product else None)
    given = {(_lot(world, ln.product, ln.lot)): ln for ln in lines}
    out = []
    for row in sheet:
        if row.lot_id is None:
            continue
        ln = given.pop(row.lot_id, None)
        if ln is None:
            out.append(dea_inventory.Count(row.lot_id, row.on_hand))
        else:
            out.append(dea_inventory.Count(row.lot_id, ln.counted, exact=not ln.estimate,
                                           container_units=ln.container, reason=ln.reason))
    for lot_id, ln in given.items():  # not on the sheet: the app says why
        out.append(dea_inventory.Count(lot_id, ln.counted, exact=not ln.estimate,
                                       container_units=ln.container, reason=ln.reason))
    return out


@step("inventory", "take an initial or biennial DEA inventory: every lot of a controlled "
      "substance on hand is counted (the lots listed at their count, the others as they "
      "stand) and posted; every count is in the register (21 CFR 1304.11)",
      kind=OneOf(required=True, choices=("initial", "biennial")),
      business=OneOf(default="opening", choices=("opening", "close")),
      lines=CountLines())
def take_inventory(world: World, a: Mapping[str, Any], actor: Actor) -> Outcome:
    dea_inventory.take_inventory(world.sf, actor, a["kind"], a["business"],
                                 _dea_counts(world, actor, a["lines"]))
    return Outcome()


def _schedule_names(args: Mapping[str, Any], names: Names, number: int) -> None:
    names.products[args["product"]] = Schedule(args["to"])


@step("schedule", "move a product to another schedule; into a register (from none, or "
      "between II and III-V) with its newly-controlled inventory (its lots listed at their "
      "count, the others as they stand), which opens the register (21 CFR 1304.11(d))",
      after=_schedule_names, product=Ref(kind="product"),
      to=OneOf(required=True, choices=tuple(x.value for x in Schedule)),
      business=OneOf(default="opening", choices=("opening", "close")),
      lines=CountLines())
def schedule(world: World, a: Mapping[str, Any], actor: Actor) -> Outcome:
    p = catalog.get_product(world.sf, world.products[a["product"]].id)
    counts = (_dea_counts(world, actor, a["lines"], a["product"])
              if dea_inventory.needs_inventory(p.schedule, Schedule(a["to"])) else [])
    done = dea_inventory.change_schedule(world.sf, actor, p.id, a["to"],
                                         expected_version=p.version, business=a["business"],
                                         counts=counts)
    world.products[a["product"]] = done.product
    return Outcome()


def _lot_status(status: LotStatus) -> Callable[[World, Mapping[str, Any], Actor], Outcome]:
    def run(world: World, a: Mapping[str, Any], actor: Actor) -> Outcome:
        lot = _lot(world, a["product"], a["lot"])
        inventory.set_lot_status(world.sf, actor, lot, status, a["reason"])
        return Outcome(lot_id=lot)
    return run


step("quarantine", "quarantine a lot (it may not be dispensed)",
     product=Ref(kind="product"), lot=LotOf(),
     reason=Text(default="Quarantined (rules case)", empty_ok=True))(
         _lot_status(LotStatus.QUARANTINED))
step("recall", "mark a lot recalled (it may never be dispensed again)",
     expects=frozenset({"recall_patients"}), product=Ref(kind="product"), lot=LotOf(),
     reason=Text(default="Recalled (rules case)", empty_ok=True))(_lot_status(LotStatus.RECALLED))


def _travel_day(args: Mapping[str, Any], names: Names, number: int) -> None:
    names.day = args["to"] if args["to"] else names.day + dt.timedelta(days=args["days"])


def _travel_check(args: Mapping[str, Any], names: Names, line: int, what: str) -> None:
    if (args["days"] is None) == (args["to"] is None):
        v.fail(f"{what}: give either 'days' (how many days later) or 'to' (the date)", line)
    if args["to"] is not None and args["to"] < names.day:
        v.fail(f"{what}: {args['to']:%Y-%m-%d} is before the case's day at this step "
               f"({names.day:%Y-%m-%d}): the clock only moves on", line)


@step("travel", "move the case's clock on: {days: N} or {to: YYYY-MM-DD}", actor=False,
      after=_travel_day, check=_travel_check, days=Whole(minimum=1, maximum=36_500), to=Day())
def travel(world: World, a: Mapping[str, Any], actor: Actor) -> Outcome:
    if a["to"]:
        world.now = noon(a["to"])
    else:
        world.now = world.now + dt.timedelta(days=a["days"])
    return Outcome()


# Transfers between pharmacies (21 CFR 1306.25, 1306.08(e)-(i); state law for
# prescriptions that are not controlled).
PHARMACY_FIELDS: dict[str, Field] = dict(
    pharmacy=Text(default="Elm Street Pharmacy", empty_ok=True, max_len=200),
    address=Text(default="4 Elm Street, Springfield", empty_ok=True, max_len=300),
    dea=Text(max_len=20), pharmacist=Text(default="Jo Park, RPh", empty_ok=True, max_len=200))


def _other(a: Mapping[str, Any]) -> transfers.OtherPharmacy:
    return transfers.OtherPharmacy(name=a["pharmacy"], address=a["address"],
                                   dea_number=a["dea"], pharmacist=a["pharmacist"])


@step("transfer_out", "transfer a prescription's remaining fills to another pharmacy (its "
      "name, address, DEA number and receiving pharmacist); the prescription is closed here",
      rx=Ref(kind="rx"), **PHARMACY_FIELDS)  # type: ignore[arg-type]
def transfer_out(world: World, a: Mapping[str, Any], actor: Actor) -> Outcome:
    transfers.transfer_out(world.sf, actor, _rx(world, a["rx"]), _other(a))
    return Outcome()


@step("transfer_in", "enter a prescription transferred from another pharmacy, with the "
      "original's details; it has only the refills remaining", after=_defines_rx,
      id=NewRx(), patient=Ref(kind="patient"), prescriber=Ref(kind="prescriber"),
      product=Ref(kind="product"), quantity=Whole(required=True, minimum=-10_000_000),
      days_supply=Whole(default=30, minimum=-10_000), written=Day(required=True),
      sig=Text(default="Take as directed", max_len=1000), daw=Daw(),
      electronic=Flag(default=True), original_rx=Text(default="T-1001", empty_ok=True,
                                                      max_len=40),
      dispensed=Day(), refills_authorized=Whole(default=0, minimum=-99),
      refills_remaining=Whole(minimum=-99), previous_refills=Text(max_len=1000),
      first_filled_at=Text(max_len=500), **PHARMACY_FIELDS)  # type: ignore[arg-type]
def transfer_in(world: World, a: Mapping[str, Any], actor: Actor) -> Outcome:
    remaining = a["refills_remaining"]
    info = transfers.transfer_in(world.sf, actor, transfers.TransferIn(
        draft=PrescriptionDraft(
            patient_id=world.patients[a["patient"]],
            prescriber_id=world.prescribers[a["prescriber"]],
            product_id=world.products[a["product"]].id, sig=a["sig"], quantity=a["quantity"],
            days_supply=a["days_supply"], daw_code=a["daw"], electronic=a["electronic"],
            date_written=a["written"]),
        pharmacy=_other(a), original_rx_number=a["original_rx"],
        refills_authorized_original=a["refills_authorized"],
        refills_remaining=a["refills_authorized"] if remaining is None else remaining,
        original_dispensed_on=a["dispensed"], previous_refills=a["previous_refills"],
        original_pharmacy=a["first_filled_at"]))
    world.rx[a["id"]] = info.id
    return Outcome()


# ------------------------------------------------------------- refusals


def refusal_kind(error: DomainError, kind: StepKind, args: Mapping[str, Any],
                 world: World) -> str:
    """The refusal kind (vocabulary.REFUSAL_KINDS) of the app's refusal of a step."""
    field = getattr(error, "field", None)
    if isinstance(error, WarningsNeedAcknowledgement):
        return "warning"
    if isinstance(error, InsufficientStock):
        return "stock"
    if isinstance(error, PermissionDenied):
        return "permission"
    if isinstance(error, StaleEdit):
        return "stale"
    if isinstance(error, NotFound):
        return "not_found"
    if field in ("supplier_id", "order_form", "witnesses", "lines", "loss_type",
                 "police_department", "carrier", "loss_detail", "method", "place"):
        return "dea_record"
    if field == "scan":
        return "scan"
    if field == "transfer" or (kind.name.startswith("transfer") and field in (
            "original_dispensed_on", "electronic") and "1306.08" in str(error)):
        return "transfer"  # a transfer the law does not allow
    if field in ("refills_authorized", "refills_authorized_original", "refills_remaining"):
        return "refills"
    if field == "prescriber_id":
        return "prescriber"
    if field == "date_written":
        written = args.get("written")
        return "expired" if written is None or written < clock.today() else "invalid"
    if field == "quantity":
        return "quantity"
    if field in ("expiry_date", "lot_number"):
        return "lot"
    if field == "status":  # a step of a fill out of turn (verify, release, return)
        return "state"
    if isinstance(error, Conflict):
        return "conflict"
    if isinstance(error, InvalidState):
        rx = world.rx.get(args.get("rx") or "")
        if rx is not None:
            state = prescriptions.get_prescription(world.sf, SYSTEM, rx).state
            problem = state.problem_kind(clock.today(), clock.now())
            if problem is not None:
                return "refills" if problem == "no_refills" else problem
        return "state"
    return "invalid"


__all__ = ["STEP_KINDS", "Field", "Names", "Refused", "RunProblem", "StepKind", "not_yet",
           "refusal_kind", "step"]
