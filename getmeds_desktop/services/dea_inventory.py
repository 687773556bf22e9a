"""DEA inventories of controlled substances (21 CFR 1304.11) and moving a
product into a schedule.

An inventory is a controlled stocktake (services/stocktake.py) taken and posted
in one operation, with its DEA record (models/inventory.py): the kind (initial,
1304.11(b); biennial, (c); newly controlled, (d)), the date and whether it was
taken as of the opening or the close of business ((a)), who took it, and per
product and lot the schedule, name, strength, form, NDC, the quantity counted
and whether that is an exact count or the estimate of an opened container.
1304.11(e)(3): Schedule II is counted exactly; for Schedule III-V an opened
container may be estimated unless it holds more than 1,000 tablets or capsules
(then it is counted exactly). Only a pharmacist takes one.

Every lot counted gets a count movement through ``ledger.post`` (the variance,
or 0 when the count matches), so every count is in the controlled register,
matching or not, and nobody updates or deletes a movement.

Moving a product into a register (from no schedule to II-V, or between
Schedule II and III-V) is :func:`change_schedule`: the schedule changes and the
newly-controlled inventory of the product is taken in the same transaction; its
count movements open the product's register in the new schedule with the
balance counted (0 when nothing is on hand). Moving within III-V (III, IV, V
share one register) needs no inventory. Moving out of the schedules
(decontrol) needs none either (1304.11 inventories controlled substances only):
the register keeps every entry it has (1304.04(a): two years at least) and
records nothing more for the product; only a pharmacist does it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.orm import Session, selectinload, sessionmaker

from .. import db
from ..models import (
    ControlledRegisterEntry,
    DeaInventory,
    DeaInventoryLine,
    MovementKind,
    Product,
    Schedule,
    Staff,
    StockLot,
    Stocktake,
    StocktakeLine,
    StocktakeScope,
    StocktakeStatus,
)
from . import clock, ledger, uow
from ._common import text, whole_number
from .catalog import ProductInfo, product_info
from .context import Actor, Perm, require
from .errors import InvalidState, NotFound, PermissionDenied, ValidationError

# More than this many tablets or capsules in an opened container: an exact count
# (21 CFR 1304.11(e)(3)(ii)).
ESTIMATE_LIMIT = 1000
REFERENCE = "DEA inventory"


class InventoryKind(str, enum.Enum):
    INITIAL = "initial"  # 21 CFR 1304.11(b)
    BIENNIAL = "biennial"  # 1304.11(c)
    NEWLY_CONTROLLED = "newly_controlled"  # 1304.11(d)

    @property
    def label(self) -> str:
        return {"initial": "Initial", "biennial": "Biennial",
                "newly_controlled": "Newly controlled"}[self.value]


class Business(str, enum.Enum):
    """As of the opening or the close of business (21 CFR 1304.11(a))."""

    OPENING = "opening"
    CLOSE = "close"

    @property
    def label(self) -> str:
        return "Opening of business" if self is Business.OPENING else "Close of business"


def register_of(schedule: Schedule) -> str | None:
    """The register a schedule is kept in: 'II', 'III-V', or None (not controlled)."""
    if schedule is Schedule.NONE:
        return None
    return "II" if schedule is Schedule.II else "III-V"


@dataclasses.dataclass(frozen=True)
class SheetLine:
    """One lot to count, as the ledger and the register have it now."""

    product_id: uuid.UUID
    lot_id: uuid.UUID | None  # None: the product has no lot at all
    product_name: str
    strength: str | None
    dosage_form: str | None
    ndc: str | None
    schedule: Schedule
    lot_number: str | None
    expiry_date: dt.date | None
    on_hand: int  # the lot's ledger balance
    register_balance: int | None  # the product's last register balance (None: no entry)
    pack_size: int
    unit: str

    @property
    def display_name(self) -> str:
        return " ".join(x for x in (self.product_name, self.strength, self.dosage_form) if x)


@dataclasses.dataclass(frozen=True)
class Count:
    """What was counted for one lot. ``exact``: False for the estimate of an
    opened container; ``container_units``: what that container holds (default
    the product's pack size); ``expected``: the balance the sheet showed (a
    lot whose stock changed since is refused, to be counted again)."""

    lot_id: uuid.UUID
    counted: int | str
    exact: bool = True
    container_units: int | str | None = None
    reason: str | None = None
    expected: int | None = None


@dataclasses.dataclass(frozen=True)
class InventoryLineInfo:
    product_id: uuid.UUID
    lot_id: uuid.UUID | None
    schedule: Schedule
    product_name: str
    strength: str | None
    dosage_form: str | None
    ndc: str | None
    lot_number: str | None
    quantity: int
    exact: bool
    container_units: int | None
    expected: int | None  # the ledger before the count (None: no lot)

    @property
    def display_name(self) -> str:
        return " ".join(x for x in (self.product_name, self.strength, self.dosage_form) if x)


@dataclasses.dataclass(frozen=True)
class InventoryInfo:
    id: uuid.UUID
    kind: InventoryKind
    business: Business
    taken_on: dt.date
    taken_at: dt.datetime
    taken_by: str  # the pharmacist's name
    note: str | None
    stocktake_id: uuid.UUID
    lines: tuple[InventoryLineInfo, ...]

    @property
    def schedule_ii(self) -> tuple[InventoryLineInfo, ...]:
        return tuple(ln for ln in self.lines if ln.schedule is Schedule.II)

    @property
    def schedule_iii_v(self) -> tuple[InventoryLineInfo, ...]:
        return tuple(ln for ln in self.lines if ln.schedule is not Schedule.II)


@dataclasses.dataclass(frozen=True)
class ScheduleChange:
    product: ProductInfo
    old_schedule: Schedule
    inventory: InventoryInfo | None  # the newly-controlled inventory, when one was needed


def _kind(value: InventoryKind | str) -> InventoryKind:
    try:
        return InventoryKind(value)
    except ValueError:
        raise ValidationError("The kind of inventory must be initial, biennial or newly "
                              "controlled.", field="kind") from None


def _business(value: Business | str) -> Business:
    try:
        return Business(value)
    except ValueError:
        raise ValidationError("Say whether the inventory is taken as of the opening or the "
                              "close of business (21 CFR 1304.11(a)).", field="business") from None


def _require_pharmacist(actor: Actor, doing: str) -> None:
    if not actor.can(Perm.DEA_INVENTORY):
        raise PermissionDenied(f"{doing} takes a DEA inventory, which only a pharmacist takes "
                               f"(21 CFR 1304.11); your role ({actor.role.label}) may not.")


# ------------------------------------------------------------------ reading


def _register_balances(s: Session, product_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, int]:
    if not product_ids:
        return {}
    last = (sa.select(ControlledRegisterEntry.product_id,
                      sa.func.max(ControlledRegisterEntry.id).label("last_id"))
            .where(ControlledRegisterEntry.product_id.in_(list(product_ids)))
            .group_by(ControlledRegisterEntry.product_id).subquery())
    return dict(s.execute(
        sa.select(ControlledRegisterEntry.product_id, ControlledRegisterEntry.balance_after)
        .join(last, last.c.last_id == ControlledRegisterEntry.id)).all())


def _sheet(s: Session, product_id: uuid.UUID | None) -> list[SheetLine]:
    q = (sa.select(StockLot, Product).join(Product, Product.id == StockLot.product_id)
         .where(StockLot.on_hand > 0)
         .order_by(Product.schedule, Product.name, Product.strength, StockLot.expiry_date,
                   StockLot.lot_number))
    q = q.where(Product.id == product_id) if product_id is not None else q.where(
        Product.schedule != Schedule.NONE)
    rows = s.execute(q).all()
    balances = _register_balances(s, sorted({p.id for _, p in rows}))
    out = [SheetLine(p.id, lot.id, p.name, p.strength, p.dosage_form, p.ndc, p.schedule,
                     lot.lot_number, lot.expiry_date, lot.on_hand, balances.get(p.id),
                     p.pack_size, p.unit) for lot, p in rows]
    if product_id is not None and not out:
        p = s.get(Product, product_id)
        if p is None:
            raise NotFound("That product does not exist.")
        out.append(SheetLine(p.id, None, p.name, p.strength, p.dosage_form, p.ndc, p.schedule,
                             None, None, 0, _register_balances(s, [p.id]).get(p.id),
                             p.pack_size, p.unit))
    return out


def count_sheet(sf: sessionmaker[Session], actor: Actor, *,
                product_id: uuid.UUID | None = None) -> list[SheetLine]:
    """What an inventory counts: every lot of a controlled product with stock
    (or, for a product about to be scheduled, its lots), with the ledger's
    balance to prefill the count."""
    require(actor, Perm.READ_LOTS)
    with db.read_session(sf) as s:
        return _sheet(s, product_id)


def _info(s: Session, inv: DeaInventory) -> InventoryInfo:
    staff = s.get(Staff, inv.taken_by)
    rows = s.execute(
        sa.select(DeaInventoryLine, StocktakeLine.expected_quantity)
        .outerjoin(StocktakeLine, sa.and_(StocktakeLine.stocktake_id == inv.stocktake_id,
                                          StocktakeLine.lot_id == DeaInventoryLine.lot_id))
        .where(DeaInventoryLine.inventory_id == inv.id)
        .order_by(DeaInventoryLine.schedule, DeaInventoryLine.product_name,
                  DeaInventoryLine.strength, DeaInventoryLine.lot_number)).all()
    lines = tuple(InventoryLineInfo(
        ln.product_id, ln.lot_id, Schedule(ln.schedule), ln.product_name, ln.strength,
        ln.dosage_form, ln.ndc, ln.lot_number, ln.quantity, ln.exact, ln.container_units,
        expected) for ln, expected in rows)
    return InventoryInfo(inv.id, InventoryKind(inv.kind), Business(inv.business), inv.taken_on,
                         inv.taken_at, staff.full_name if staff else "?", inv.note,
                         inv.stocktake_id, lines)


def get_inventory(sf: sessionmaker[Session], actor: Actor, inventory_id: uuid.UUID
                  ) -> InventoryInfo:
    require(actor, Perm.READ_LOTS)
    with db.read_session(sf) as s:
        inv = s.get(DeaInventory, inventory_id)
        if inv is None:
            raise NotFound("That inventory does not exist.")
        return _info(s, inv)


def inventory_in(s: Session, inventory_id: uuid.UUID | None) -> InventoryInfo:
    """An inventory (None: the latest one) read in the session ``s`` (a report's)."""
    if inventory_id is None:
        inv = s.scalar(sa.select(DeaInventory).order_by(DeaInventory.taken_at.desc(),
                                                        DeaInventory.id).limit(1))
        if inv is None:
            raise NotFound("No DEA inventory has been taken yet.", field="inventory")
    else:
        inv = s.get(DeaInventory, inventory_id)
        if inv is None:
            raise NotFound("That inventory does not exist.", field="inventory")
    return _info(s, inv)


@dataclasses.dataclass(frozen=True)
class InventorySummary:
    id: uuid.UUID
    kind: InventoryKind
    business: Business
    taken_on: dt.date
    taken_by: str
    lines: int


def list_inventories(sf: sessionmaker[Session], actor: Actor, limit: int = 50
                     ) -> list[InventorySummary]:
    require(actor, Perm.READ_LOTS)
    with db.read_session(sf) as s:
        counts = (sa.select(DeaInventoryLine.inventory_id, sa.func.count().label("n"))
                  .group_by(DeaInventoryLine.inventory_id).subquery())
        rows = s.execute(
            sa.select(DeaInventory, Staff.full_name, sa.func.coalesce(counts.c.n, 0))
            .join(Staff, Staff.id == DeaInventory.taken_by)
            .outerjoin(counts, counts.c.inventory_id == DeaInventory.id)
            .order_by(DeaInventory.taken_at.desc(), DeaInventory.id).limit(limit)).all()
        return [InventorySummary(i.id, InventoryKind(i.kind), Business(i.business), i.taken_on,
                                 name, n) for i, name, n in rows]


# ------------------------------------------------------------------ writing


def _clean(c: Count, schedule: Schedule, pack_size: int, label: str
           ) -> tuple[int, bool, int | None, str | None]:
    counted = whole_number(c.counted, "counted", f"Count of {label}", minimum=0)
    exact = bool(c.exact)
    units = pack_size if c.container_units in (None, "") else whole_number(
        c.container_units, "container_units", f"Container size of {label}", minimum=1)
    if not exact and schedule is Schedule.II:
        raise ValidationError(
            f"{label} is Schedule II: count it exactly; an estimate is allowed only for an "
            "opened container of Schedule III-V (21 CFR 1304.11(e)(3)(i)).", field="exact")
    if not exact and units > ESTIMATE_LIMIT:
        raise ValidationError(
            f"{label}: the container holds {units} units, more than {ESTIMATE_LIMIT:,}: "
            "count it exactly (21 CFR 1304.11(e)(3)(ii)).", field="exact")
    reason = text(c.reason, "reason", "Reason", required=False, max_len=300)
    return counted, exact, (units if not exact else None), reason


def _take(w: uow.Work, kind: InventoryKind, business: Business, counts: Sequence[Count],
          note: str | None, request_id: uuid.UUID | None,
          product: Product | None = None) -> InventoryInfo:
    """The inventory in the unit of work ``w``: every lot in scope counted (all
    controlled lots with stock, or ``product``'s lots), posted, recorded."""
    s = w.session
    now = clock.now()
    q = (sa.select(StockLot, Product).join(Product, Product.id == StockLot.product_id)
         .where(StockLot.on_hand > 0))
    q = q.where(Product.id == product.id) if product is not None else q.where(
        Product.schedule != Schedule.NONE)
    rows: list[tuple[StockLot, Product]] = [
        (lot, p) for lot, p in s.execute(q.order_by(StockLot.id).with_for_update(of=StockLot))]
    by_lot = {c.lot_id: c for c in counts}
    if len(by_lot) != len(counts):
        raise ValidationError("A lot is counted twice. Count each lot once.", field="counted")
    in_scope = {lot.id for lot, _ in rows}
    if product is not None and not rows:
        # nothing on hand: the register opens at 0, on the product's latest lot if any
        latest = s.scalar(sa.select(StockLot).where(StockLot.product_id == product.id)
                          .order_by(StockLot.received_at.desc(), StockLot.id).limit(1)
                          .with_for_update())
        if latest is not None:
            rows = [(latest, product)]
            in_scope = {latest.id}
            by_lot.setdefault(latest.id, Count(latest.id, 0))
    stray = set(by_lot) - in_scope
    if stray:
        raise ValidationError(
            f"{len(stray)} counted lot(s) are not in this inventory (no stock of a controlled "
            "product, or another product). Reload the count sheet.", field="counted")
    missing = [lot for lot, _ in rows if lot.id not in by_lot]
    if missing:
        raise InvalidState(
            f"{len(missing)} lot(s) have no count. An inventory counts every lot on hand "
            "(0 if none was found) (21 CFR 1304.11(a)).")
    st = Stocktake(scope=StocktakeScope.CONTROLLED, status=StocktakeStatus.POSTED,
                   started_by=w.staff_id, posted_by=w.staff_id, posted_at=now,
                   note=f"{REFERENCE}: {kind.label.lower()}", updated_by=w.actor.username,
                   created_at=now)
    s.add(st)
    s.flush()
    moves: list[ledger.Movement] = []
    lines: list[tuple[StockLot, Product, int, bool, int | None]] = []
    stock_lines: list[StocktakeLine] = []
    for lot, p in rows:
        c = by_lot[lot.id]
        schedule = p.schedule
        label = " ".join(x for x in (p.name, p.strength, "lot " + lot.lot_number) if x)
        counted, exact, units, reason = _clean(c, schedule, p.pack_size, label)
        if c.expected is not None and c.expected != lot.on_hand:
            raise InvalidState(
                f"The stock of {label} changed since the count sheet was made ({c.expected} "
                f"then, {lot.on_hand} now). Reload the sheet and count it again.")
        if counted != lot.on_hand and not reason:
            raise ValidationError(
                f"{label}: counted {counted}, the register holds {lot.on_hand}. Give a reason "
                "for the difference.", field="reason")
        m = ledger.Movement(
            ledger.Lot(lot.id, lot.product_id, lot.lot_number, lot.on_hand), MovementKind.COUNT,
            counted - lot.on_hand,
            reason=reason if counted != lot.on_hand else (
                f"{REFERENCE} (newly controlled, 21 CFR 1304.11(d)): the register opens "
                "with this count" if kind is InventoryKind.NEWLY_CONTROLLED else
                f"{REFERENCE} ({kind.label.lower()}): the count matches the register"),
            reference=REFERENCE, stocktake_id=st.id)
        moves.append(m)
        lines.append((lot, p, counted, exact, units))
        stock_lines.append(StocktakeLine(
            stocktake_id=st.id, lot_id=lot.id, expected_quantity=lot.on_hand,
            counted_quantity=counted, reason=reason, counted_by=w.staff_id, movement_id=m.id))
    ledger.post(w, moves, at=now)
    s.add_all(stock_lines)
    inv = DeaInventory(kind=kind.value, business=business.value, taken_on=clock.today(),
                       taken_by=w.staff_id, taken_at=now, stocktake_id=st.id,
                       request_id=request_id, note=note)
    s.add(inv)
    s.flush()
    records = [DeaInventoryLine(
        inventory_id=inv.id, product_id=p.id, lot_id=lot.id, schedule=p.schedule.value,
        product_name=p.name, strength=p.strength, dosage_form=p.dosage_form, ndc=p.ndc,
        lot_number=lot.lot_number, quantity=counted, exact=exact, container_units=units,
        movement_id=m.id) for (lot, p, counted, exact, units), m in zip(lines, moves,
                                                                         strict=True)]
    if product is not None and not rows:  # no lot at all: the register opens at 0
        records.append(DeaInventoryLine(
            inventory_id=inv.id, product_id=product.id, lot_id=None,
            schedule=product.schedule.value, product_name=product.name,
            strength=product.strength, dosage_form=product.dosage_form, ndc=product.ndc,
            quantity=0, exact=True))
    s.add_all(records)
    s.flush()
    w.touched("dea_inventories", inv.id)
    w.touched("stocktakes", st.id)
    s.refresh(inv)  # the server's time and date, where it sets them
    return _info(s, inv)


def take_inventory(
    sf: sessionmaker[Session],
    actor: Actor,
    kind: InventoryKind | str,
    business: Business | str,
    counts: Sequence[Count],
    *,
    note: str | None = None,
    request_id: uuid.UUID | None = None,
) -> InventoryInfo:
    """An initial or biennial inventory of every controlled substance on hand
    (21 CFR 1304.11(b), (c)): every lot counted, in one transaction. With no
    controlled stock at all, it records that nothing is on hand."""
    the_kind = _kind(kind)
    if the_kind is InventoryKind.NEWLY_CONTROLLED:
        raise ValidationError("A newly-controlled inventory is taken with the product's move "
                              "into its schedule (Change schedule).", field="kind")
    the_business = _business(business)
    clean_note = text(note, "note", "Note", required=False, max_len=300)
    _require_pharmacist(actor, "This")

    def body(w: uow.Work) -> InventoryInfo:
        return _take(w, the_kind, the_business, counts, clean_note, request_id)

    def replay(w: uow.Work, inventory_id: str) -> InventoryInfo:
        inv = w.session.get(DeaInventory, uuid.UUID(inventory_id))
        assert inv is not None  # the request log names it
        return _info(w.session, inv)

    return uow.write(sf, actor, Perm.DEA_INVENTORY, body, request_id=request_id,
                     operation="dea_inventories.take", replay=replay)


def change_schedule(
    sf: sessionmaker[Session],
    actor: Actor,
    product_id: uuid.UUID,
    schedule: Schedule | str,
    *,
    expected_version: int,
    business: Business | str = Business.OPENING,
    counts: Sequence[Count] = (),
    note: str | None = None,
    request_id: uuid.UUID | None = None,
) -> ScheduleChange:
    """Move a product to ``schedule``. Into a register (from none, or between
    Schedule II and III-V): with the newly-controlled inventory of its lots
    (``counts``), which opens the register at the count (21 CFR 1304.11(d)).
    Within III-V: the schedule only. Out of the schedules: the register keeps
    its entries and records nothing more; a pharmacist's act."""
    try:
        new = Schedule(schedule)
    except ValueError:
        raise ValidationError("Schedule must be none, II, III, IV or V.",
                              field="schedule") from None
    the_business = _business(business)
    clean_note = text(note, "note", "Note", required=False, max_len=300)
    require(actor, Perm.WRITE_CATALOG)

    def body(w: uow.Work) -> ScheduleChange:
        s = w.session
        p = s.scalar(sa.select(Product).where(Product.id == product_id).with_for_update())
        if p is None:
            raise NotFound("That product does not exist.")
        w.expect_version(p, expected_version, "product")
        old = p.schedule
        if old is new:
            raise InvalidState(f"{p.name} is already {_schedule_words(new)}.", field="schedule")
        inventory = None
        if register_of(old) != register_of(new):
            _require_pharmacist(actor, "Moving a product into or out of the schedules"
                                if new is Schedule.NONE or old is Schedule.NONE
                                else "Moving a product between Schedule II and III-V")
        p.schedule = new
        p.updated_by = w.actor.username
        s.flush()
        if register_of(new) is not None and register_of(old) != register_of(new):
            inventory = _take(w, InventoryKind.NEWLY_CONTROLLED, the_business, counts,
                              clean_note, request_id, product=p)
        elif counts:
            raise ValidationError(f"Moving {p.name} from {_schedule_words(old)} to "
                                  f"{_schedule_words(new)} takes no inventory.",
                                  field="counted")
        s.flush()
        p = s.scalar(sa.select(Product).where(Product.id == product_id)
                     .options(selectinload(Product.ingredients),
                              selectinload(Product.drug_classes)))
        assert p is not None
        return ScheduleChange(product_info(s, p), old, inventory)

    return uow.write(sf, actor, None, body)


def _schedule_words(schedule: Schedule) -> str:
    return "not scheduled" if schedule is Schedule.NONE else f"Schedule {schedule.value}"


def needs_inventory(old: Schedule, new: Schedule) -> bool:
    """Does moving from ``old`` to ``new`` take a newly-controlled inventory?"""
    return register_of(new) is not None and register_of(old) != register_of(new)


__all__ = ["ESTIMATE_LIMIT", "Business", "Count", "InventoryInfo", "InventoryKind",
           "InventoryLineInfo", "InventorySummary", "ScheduleChange", "SheetLine",
           "change_schedule", "count_sheet", "get_inventory", "inventory_in", "list_inventories",
           "needs_inventory", "register_of", "take_inventory"]
