"""Stock: receiving, adjustments, write-offs, lot status, returns, and stock queries.

Every change of quantity is a new row in the ledger (``stock_movements``); the
database keeps the per-lot and per-product balances and the controlled-substance
register from it, and refuses a movement that would take a lot below zero.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from .. import db
from ..models import (
    Category,
    LotStatus,
    MovementKind,
    Product,
    ProductStock,
    Schedule,
    Staff,
    StockLot,
    StockMovement,
    Supplier,
    table_of,
)
from . import clock, ledger, uow
from ._common import Query, money, text, whole_number
from .context import Actor, Perm
from .errors import Conflict, InvalidState, NotFound, ValidationError
from .identifiers import clean_dea

ADJUSTMENT_REASONS = ("Count correction", "Damaged", "Theft or loss", "Found stock", "Other")


@dataclasses.dataclass(frozen=True)
class LotInfo:
    id: uuid.UUID
    product_id: uuid.UUID
    lot_number: str
    expiry_date: dt.date
    status: LotStatus
    status_reason: str | None
    on_hand: int
    unit_cost: decimal.Decimal
    supplier_name: str | None
    received_at: dt.datetime
    version: int

    def expired_on(self, day: dt.date) -> bool:
        return self.expiry_date < day

    @property
    def expired(self) -> bool:
        return self.expired_on(clock.today())


@dataclasses.dataclass(frozen=True)
class MovementInfo:
    id: uuid.UUID
    lot_id: uuid.UUID
    lot_number: str
    product_id: uuid.UUID
    kind: MovementKind
    quantity: int
    reason: str | None
    reference: str | None
    staff_username: str
    created_at: dt.datetime
    dispense_id: uuid.UUID | None
    lot_balance_after: int | None = None


@dataclasses.dataclass(frozen=True)
class ReceiptRequest:
    product_id: uuid.UUID
    lot_number: str
    expiry_date: dt.date | None
    quantity: int
    unit_cost: decimal.Decimal | str | float | int = 0
    supplier_id: uuid.UUID | None = None
    invoice_ref: str | None = None
    request_id: uuid.UUID = dataclasses.field(default_factory=uuid.uuid4)
    # Schedule II: the DEA Form 222 serial number or the CSOS order number
    # (21 CFR 1305.13(e), 1305.22(g))
    order_form: str | None = None


def controlled_receipt_supplier(s: Session, product: Product,
                                supplier_id: uuid.UUID | None) -> str | None:
    """The supplier's DEA registration number a receipt of ``product`` records:
    a controlled substance is received only from a supplier whose DEA number is
    on file (21 CFR 1304.22(c): the name, address and registration number of the
    person it was received from). ``None`` for an ordinary product without one."""
    supplier = s.get(Supplier, supplier_id) if supplier_id is not None else None
    if supplier_id is not None and supplier is None:
        raise NotFound("That supplier does not exist.", field="supplier_id")
    if not product.schedule.controlled:
        return supplier.dea_number if supplier is not None else None
    if supplier is None:
        raise ValidationError(
            f"{product.name} is a Schedule {product.schedule.value} controlled substance: "
            "choose the supplier it came from (21 CFR 1304.22(c) records the supplier's "
            "name, address and DEA number).", field="supplier_id")
    if not supplier.dea_number:
        raise ValidationError(
            f"The supplier {supplier.name} has no DEA registration number on file: a "
            "controlled substance is received only from a DEA registrant. Add its DEA "
            "number under Suppliers first (21 CFR 1304.22(c)).", field="supplier_id")
    clean_dea(supplier.dea_number, "supplier_id")  # a number on file that fails its check
    return supplier.dea_number


def _order_form(value: str | None, product: Product) -> str | None:
    form = text(value, "order_form", "The DEA Form 222 or CSOS order number", required=False,
                max_len=40)
    if product.schedule is Schedule.II and not form:
        raise ValidationError(
            f"{product.name} is Schedule II: give the DEA Form 222 serial number or the CSOS "
            "order number it was ordered on (21 CFR 1305.13(e), 1305.22(g)).",
            field="order_form")
    return form


def _lot_info(lot: StockLot, supplier_name: str | None) -> LotInfo:
    return LotInfo(
        id=lot.id, product_id=lot.product_id, lot_number=lot.lot_number,
        expiry_date=lot.expiry_date, status=lot.status, status_reason=lot.status_reason,
        on_hand=lot.on_hand, unit_cost=decimal.Decimal(lot.unit_cost),
        supplier_name=supplier_name, received_at=lot.received_at, version=lot.version,
    )


def _movement_info(m: StockMovement, lot: StockLot, username: str) -> MovementInfo:
    return MovementInfo(
        id=m.id, lot_id=m.lot_id, lot_number=lot.lot_number, product_id=lot.product_id,
        kind=m.kind, quantity=m.quantity, reason=m.reason, reference=m.reference,
        staff_username=username, created_at=m.created_at, dispense_id=m.dispense_id,
    )


def _movement_by_id(s: Session, movement_id: str) -> MovementInfo:
    row = s.execute(
        sa.select(StockMovement, StockLot, Staff.username)
        .join(StockLot, StockLot.id == StockMovement.lot_id)
        .join(Staff, Staff.id == StockMovement.staff_id)
        .where(StockMovement.id == uuid.UUID(movement_id))
    ).one()
    return _movement_info(*row)


def _replay_movement(w: uow.Work, movement_id: str) -> MovementInfo:
    return _movement_by_id(w.session, movement_id)


def _insert_ignoring(s: Session, table: sa.Table) -> Any:
    """INSERT ... ON CONFLICT DO NOTHING, in the dialect of the session."""
    from sqlalchemy.dialects import postgresql, sqlite

    if s.get_bind().dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def controlled_lot(s: Session, lot: StockLot) -> bool:
    product = s.get(Product, lot.product_id)
    return product is not None and product.schedule.controlled


def _posted(w: uow.Work, m: ledger.Movement) -> MovementInfo:
    ledger.post(w, [m])
    return _movement_by_id(w.session, str(m.id))


def receive_stock(sf: sessionmaker[Session], actor: Actor, req: ReceiptRequest) -> MovementInfo:
    """Receive a delivery into a lot (created on first receipt of that lot number)."""
    lot_number = text(req.lot_number, "lot_number", "Lot number", max_len=40)
    qty = whole_number(req.quantity, "quantity", "Quantity received", minimum=1)
    if not isinstance(req.expiry_date, dt.date):
        raise ValidationError("Expiry date is required.", field="expiry_date")
    if req.expiry_date < clock.today():
        raise ValidationError(
            f"Expiry date {req.expiry_date:%Y-%m-%d} is in the past: expired stock cannot "
            "be received.", field="expiry_date")
    cost = money(req.unit_cost, "unit_cost", "Unit cost")
    invoice = text(req.invoice_ref, "invoice_ref", "Invoice reference", required=False,
                   max_len=100)

    def body(w: uow.Work) -> MovementInfo:
        s = w.session
        product = s.get(Product, req.product_id)
        if product is None:
            raise NotFound("That product does not exist.", field="product_id")
        if product.schedule.controlled:
            w.require(Perm.RECEIVE_CONTROLLED)
        supplier_dea = controlled_receipt_supplier(s, product, req.supplier_id)
        order_form = _order_form(req.order_form, product)
        # A receipt only adds stock, so the lot is not locked (a clerk may not
        # lock it); a lot two workstations receive at once is made once.
        made = w.conn.execute(_insert_ignoring(s, table_of(StockLot)).values(
            id=uuid.uuid4(), product_id=product.id, lot_number=lot_number,
            expiry_date=req.expiry_date, supplier_id=req.supplier_id, unit_cost=cost,
            received_at=clock.now(), updated_by=w.actor.username, on_hand=0, version=1,
            status=LotStatus.AVAILABLE, created_at=clock.now(), updated_at=clock.now(),
        ).on_conflict_do_nothing(index_elements=["product_id", "lot_number"])
            .returning(table_of(StockLot).c.id)).first() is not None
        lot = s.scalar(sa.select(StockLot).where(StockLot.product_id == product.id,
                                                 StockLot.lot_number == lot_number))
        assert lot is not None
        if made:
            w.touched("stock_lots", lot.id)
        else:
            if lot.expiry_date != req.expiry_date:
                raise Conflict(
                    f"Lot {lot_number} of this product is already recorded with expiry "
                    f"{lot.expiry_date:%Y-%m-%d}, not {req.expiry_date:%Y-%m-%d}. Check the "
                    "package; a different expiry means a different lot.", field="expiry_date")
            if lot.status is LotStatus.RECALLED:
                raise InvalidState(
                    f"Lot {lot_number} has been recalled: it cannot be received.",
                    field="lot_number")
        m = ledger.Movement(
            ledger.Lot(lot.id, product.id, lot.lot_number, lot.on_hand), MovementKind.RECEIPT,
            qty, reference=invoice, supplier_id=req.supplier_id, request_id=req.request_id,
            order_form=order_form, supplier_dea=supplier_dea)
        at = clock.now()
        ledger.post(w, [m], at=at)
        return MovementInfo(
            id=m.id, lot_id=lot.id, lot_number=lot.lot_number, product_id=product.id,
            kind=m.kind, quantity=qty, reason=None, reference=invoice,
            staff_username=w.actor.username, created_at=at, dispense_id=None)

    return uow.write(sf, actor, Perm.RECEIVE, body, request_id=req.request_id,
                     operation="stock_movements.receipt", replay=_replay_movement)


def adjust_stock(
    sf: sessionmaker[Session],
    actor: Actor,
    lot_id: uuid.UUID,
    change: int,
    reason: str,
    *,
    request_id: uuid.UUID | None = None,
) -> MovementInfo:
    """Correct a lot's quantity up or down (count correction, damage, theft or loss)."""
    delta = whole_number(change, "quantity", "Adjustment")
    if delta == 0:
        raise ValidationError("An adjustment must change the quantity.", field="quantity")
    why = text(reason, "reason", "A reason for the adjustment", max_len=300)
    request_id = request_id or uuid.uuid4()

    def body(w: uow.Work) -> MovementInfo:
        _lot, lot = ledger.lock_lot(w.session, lot_id)
        return _posted(w, ledger.Movement(lot, MovementKind.ADJUSTMENT, delta, reason=why,
                                          request_id=request_id))

    return uow.write(sf, actor, Perm.ADJUST, body, request_id=request_id,
                     operation="stock_movements.adjustment", replay=_replay_movement)


def write_off_lot(
    sf: sessionmaker[Session],
    actor: Actor,
    lot_id: uuid.UUID,
    reason: str | None = None,
    *,
    request_id: uuid.UUID | None = None,
) -> MovementInfo:
    """Write off everything left of an expired or recalled lot."""
    request_id = request_id or uuid.uuid4()

    def body(w: uow.Work) -> MovementInfo:
        row, lot = ledger.lock_lot(w.session, lot_id)
        expired = row.expiry_date < clock.today()
        if not expired and row.status is not LotStatus.RECALLED:
            raise InvalidState(
                f"Lot {lot.lot_number} is neither expired nor recalled. Use an adjustment "
                "with a reason for damaged or lost stock.")
        if lot.on_hand == 0:
            raise InvalidState(f"Lot {lot.lot_number} has nothing left to write off.")
        if controlled_lot(w.session, row):
            raise InvalidState(
                f"Lot {lot.lot_number} is a controlled substance: its destruction is recorded "
                "on a DEA Form 41 record with two witnesses (Inventory > Lots > Record "
                "destruction), which writes it off (21 CFR 1304.21(e), 1317.95(d)).")
        default = "Expired" if expired else "Recalled"
        why = text(reason, "reason", "Reason", required=False, max_len=300) or default
        return _posted(w, ledger.Movement(lot, MovementKind.WRITE_OFF, -lot.on_hand, reason=why,
                                          request_id=request_id))

    return uow.write(sf, actor, Perm.ADJUST, body, request_id=request_id,
                     operation="stock_movements.write_off", replay=_replay_movement)


def return_to_supplier(
    sf: sessionmaker[Session],
    actor: Actor,
    lot_id: uuid.UUID,
    quantity: int,
    reason: str,
    *,
    supplier_id: uuid.UUID | None = None,
    reference: str | None = None,
    request_id: uuid.UUID | None = None,
) -> MovementInfo:
    qty = whole_number(quantity, "quantity", "Quantity returned", minimum=1)
    why = text(reason, "reason", "A reason for the return", max_len=300)
    ref = text(reference, "reference", "Return reference", required=False, max_len=100)
    request_id = request_id or uuid.uuid4()

    def body(w: uow.Work) -> MovementInfo:
        row, lot = ledger.lock_lot(w.session, lot_id)
        supplier = supplier_id or row.supplier_id
        if supplier is not None and w.session.get(Supplier, supplier) is None:
            raise NotFound("That supplier does not exist.", field="supplier_id")
        return _posted(w, ledger.Movement(lot, MovementKind.RETURN, -qty, reason=why,
                                          reference=ref, supplier_id=supplier,
                                          request_id=request_id))

    return uow.write(sf, actor, Perm.ADJUST, body, request_id=request_id,
                     operation="stock_movements.return", replay=_replay_movement)


_STATUS_MOVES = {
    LotStatus.QUARANTINED: {LotStatus.AVAILABLE},
    LotStatus.RECALLED: {LotStatus.AVAILABLE, LotStatus.QUARANTINED},
    LotStatus.AVAILABLE: {LotStatus.QUARANTINED},  # release
}


def _lot_of(s: Session, lot: StockLot) -> LotInfo:
    supplier = s.get(Supplier, lot.supplier_id) if lot.supplier_id else None
    return _lot_info(lot, supplier.name if supplier else None)


def set_lot_status(
    sf: sessionmaker[Session],
    actor: Actor,
    lot_id: uuid.UUID,
    status: LotStatus | str,
    reason: str | None,
    *,
    expected_version: int | None = None,
    request_id: uuid.UUID | None = None,
) -> LotInfo:
    """Quarantine, recall or release a lot. A recalled lot is never released.
    A ``request_id`` makes a retry harmless."""
    try:
        new = LotStatus(status)
    except ValueError:
        raise ValidationError("Unknown lot status.", field="status") from None
    why = text(reason, "reason", "A reason", required=new is not LotStatus.AVAILABLE,
               max_len=300)

    def body(w: uow.Work) -> LotInfo:
        lot, _ = ledger.lock_lot(w.session, lot_id)
        w.expect_version(lot, expected_version, "lot")
        if lot.status is new:
            raise InvalidState(f"Lot {lot.lot_number} is already {new.value}.")
        if lot.status not in _STATUS_MOVES[new]:
            raise InvalidState(
                f"Lot {lot.lot_number} is {lot.status.value}; a recalled lot cannot be "
                "released or quarantined — write it off or return it to the supplier.")
        lot.status = new
        lot.status_reason = why
        lot.updated_by = w.actor.username
        w.session.flush()
        return _lot_of(w.session, lot)

    def replay(w: uow.Work, entity: str) -> LotInfo:
        lot = w.session.get(StockLot, uuid.UUID(entity))
        assert lot is not None
        return _lot_of(w.session, lot)

    return uow.write(sf, actor, Perm.LOT_STATUS, body, request_id=request_id,
                     operation=f"stock_lots.{new.value}", replay=replay)


# --------------------------------------------------------------------- queries


def lots_of_product(
    sf: sessionmaker[Session], product_id: uuid.UUID, *, with_empty: bool = False
) -> list[LotInfo]:
    with db.read_session(sf) as s:
        q = (
            sa.select(StockLot, Supplier.name)
            .outerjoin(Supplier, Supplier.id == StockLot.supplier_id)
            .where(StockLot.product_id == product_id)
            .order_by(StockLot.expiry_date, StockLot.lot_number)
        )
        if not with_empty:
            q = q.where(StockLot.on_hand > 0)
        return [_lot_info(lot, name) for lot, name in s.execute(q)]


def get_lot(sf: sessionmaker[Session], lot_id: uuid.UUID) -> LotInfo:
    with db.read_session(sf) as s:
        row = s.execute(
            sa.select(StockLot, Supplier.name)
            .outerjoin(Supplier, Supplier.id == StockLot.supplier_id)
            .where(StockLot.id == lot_id)
        ).first()
        if row is None:
            raise NotFound("That lot does not exist.")
        return _lot_info(*row)


def on_hand(sf: sessionmaker[Session], product_id: uuid.UUID) -> int:
    with db.read_session(sf) as s:
        return s.scalar(
            sa.select(ProductStock.on_hand).where(ProductStock.product_id == product_id)
        ) or 0


@dataclasses.dataclass(frozen=True)
class LowStockRow:
    product_id: uuid.UUID
    name: str
    strength: str | None
    dosage_form: str | None
    on_hand: int
    reorder_level: int
    reorder_quantity: int
    pack_size: int
    suggested_quantity: int
    last_supplier: str | None


def suggested_order(on_hand: int, reorder_level: int, reorder_quantity: int,
                    pack_size: int) -> int:
    """Enough to reach reorder level + reorder quantity, in whole packs."""
    need = max(reorder_level + reorder_quantity - on_hand, 0)
    if need == 0:
        return 0
    packs = -(-need // max(pack_size, 1))
    return packs * max(pack_size, 1)


def low_stock_query(today: dt.date | None = None) -> Query:
    """Products to reorder: those whose dispensable stock (available lots not
    past their expiry; quarantined, recalled and expired stock cannot fill a
    prescription) is at or below the reorder level; ``on_hand`` is that
    dispensable stock, and the suggestion is made from it."""
    day = today or clock.today()
    dispensable = (
        sa.select(sa.func.coalesce(sa.func.sum(StockLot.on_hand), 0))
        .where(StockLot.product_id == Product.id, StockLot.status == LotStatus.AVAILABLE,
               StockLot.expiry_date >= day, StockLot.on_hand > 0)
        .correlate(Product).scalar_subquery())
    last_supplier = (
        sa.select(Supplier.name)
        .join(StockLot, StockLot.supplier_id == Supplier.id)
        .where(StockLot.product_id == Product.id)
        .order_by(StockLot.received_at.desc())
        .limit(1)
        .correlate(Product)
        .scalar_subquery()
    )
    return (
        sa.select(
            Product.id, Product.name, Product.strength, Product.dosage_form,
            dispensable.label("on_hand"), Product.reorder_level, Product.reorder_quantity,
            Product.pack_size, last_supplier.label("last_supplier"),
        )
        .where(Product.active.is_(True), dispensable <= Product.reorder_level)
        .order_by(Product.name, Product.id)
    )


def low_stock(sf: sessionmaker[Session], *, limit: int | None = None) -> list[LowStockRow]:
    with db.read_session(sf) as s:
        q = low_stock_query()
        if limit:
            q = q.limit(limit)
        return [
            LowStockRow(r.id, r.name, r.strength, r.dosage_form, r.on_hand, r.reorder_level,
                        r.reorder_quantity, r.pack_size,
                        suggested_order(r.on_hand, r.reorder_level, r.reorder_quantity,
                                        r.pack_size), r.last_supplier)
            for r in s.execute(q)
        ]


@dataclasses.dataclass(frozen=True)
class LotRow:
    lot_id: uuid.UUID
    product_id: uuid.UUID
    product_name: str
    strength: str | None
    lot_number: str
    expiry_date: dt.date
    status: LotStatus
    on_hand: int
    unit_cost: decimal.Decimal

    @property
    def value(self) -> decimal.Decimal:
        return self.unit_cost * self.on_hand


def _lot_rows_query() -> Query:
    return (
        sa.select(StockLot.id, StockLot.product_id, Product.name, Product.strength,
                  StockLot.lot_number, StockLot.expiry_date, StockLot.status,
                  StockLot.on_hand, StockLot.unit_cost)
        .join(Product, Product.id == StockLot.product_id)
        .where(StockLot.on_hand > 0)
        .order_by(StockLot.expiry_date, Product.name, StockLot.lot_number)
    )


def _lot_rows(s: Session, q: Query) -> list[LotRow]:
    return [LotRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], decimal.Decimal(r[8]))
            for r in s.execute(q)]


def expiring_query(days: int, day: dt.date) -> Query:
    return _lot_rows_query().where(
        StockLot.expiry_date >= day, StockLot.expiry_date <= day + dt.timedelta(days=days))


def expired_query(day: dt.date) -> Query:
    return _lot_rows_query().where(StockLot.expiry_date < day)


def expiring_lots(sf: sessionmaker[Session], days: int, *, limit: int | None = None
                  ) -> list[LotRow]:
    days = whole_number(days, "days", "Days", minimum=0, maximum=3650)
    with db.read_session(sf) as s:
        q = expiring_query(days, clock.today())
        return _lot_rows(s, q.limit(limit) if limit else q)


def expired_lots(sf: sessionmaker[Session], *, limit: int | None = None) -> list[LotRow]:
    with db.read_session(sf) as s:
        q = expired_query(clock.today())
        return _lot_rows(s, q.limit(limit) if limit else q)


@dataclasses.dataclass(frozen=True)
class StockValue:
    total: decimal.Decimal
    by_category: tuple[tuple[str, decimal.Decimal], ...]


def stock_value(sf: sessionmaker[Session]) -> StockValue:
    """Value at cost of everything on hand, in total and by category."""
    with db.read_session(sf) as s:
        value = sa.func.sum(StockLot.on_hand * StockLot.unit_cost)
        rows = s.execute(
            sa.select(Category.name, value)
            .select_from(StockLot)
            .join(Product, Product.id == StockLot.product_id)
            .outerjoin(Category, Category.id == Product.category_id)
            .where(StockLot.on_hand > 0)
            .group_by(Category.name)
            .order_by(value.desc())
        ).all()
        by_cat = tuple((name or "Uncategorised",
                        decimal.Decimal(v or 0).quantize(decimal.Decimal("0.01")))
                       for name, v in rows)
        total = sum((v for _, v in by_cat), decimal.Decimal("0.00"))
        return StockValue(total, by_cat)


def movement_history(
    sf: sessionmaker[Session],
    *,
    product_id: uuid.UUID | None = None,
    lot_id: uuid.UUID | None = None,
    limit: int = 500,
) -> list[MovementInfo]:
    """Newest first, with each lot's balance after the movement."""
    if product_id is None and lot_id is None:
        raise ValidationError("Give a product or a lot.")
    with db.read_session(sf) as s:
        running = sa.func.sum(StockMovement.quantity).over(
            partition_by=StockMovement.lot_id,
            order_by=(StockMovement.created_at, StockMovement.id),
        )
        scope = (StockMovement.lot_id == lot_id) if lot_id else (StockLot.product_id == product_id)
        balances = (
            sa.select(StockMovement.id.label("mid"), running.label("balance"))
            .join(StockLot, StockLot.id == StockMovement.lot_id)
            .where(scope)
            .subquery()
        )
        rows = s.execute(
            sa.select(StockMovement, StockLot, Staff.username, balances.c.balance)
            .join(balances, balances.c.mid == StockMovement.id)
            .join(StockLot, StockLot.id == StockMovement.lot_id)
            .join(Staff, Staff.id == StockMovement.staff_id)
            .order_by(StockMovement.created_at.desc(), StockMovement.id.desc())
            .limit(limit)
        ).all()
        return [dataclasses.replace(_movement_info(m, lot, user), lot_balance_after=bal)
                for m, lot, user, bal in rows]
