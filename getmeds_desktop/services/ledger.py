"""The stock ledger: the one writer of stock movements, and the proof that the
caches and the controlled register agree with it.

Every change of a quantity is a movement posted with :func:`post` (receipts,
dispenses, adjustments, write-offs, returns, counts, imports) or, for a whole
history at once (the demo seed), :func:`load`.
Nothing else inserts into ``stock_movements``; nobody updates or deletes a
movement (the database refuses it): a mistake is corrected by a new one. The
database keeps the lot and product balances and the controlled-substance
register from the movements, and refuses one that would take a lot below zero;
:func:`post` refuses it first, in words.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from .. import db
from ..models import (
    ControlledRegisterEntry,
    MovementKind,
    Product,
    ProductStock,
    StockLot,
    StockMovement,
    table_of,
)
from . import clock
from ._common import constraint_of
from .errors import InsufficientStock

if TYPE_CHECKING:
    from .uow import Work


@dataclasses.dataclass(frozen=True)
class Lot:
    """The lot a movement is posted on, as the caller read it (locked)."""

    id: uuid.UUID
    product_id: uuid.UUID
    lot_number: str
    on_hand: int


@dataclasses.dataclass(frozen=True)
class Movement:
    lot: Lot
    kind: MovementKind
    quantity: int  # + into stock, - out of it
    reason: str | None = None
    reference: str | None = None
    supplier_id: uuid.UUID | None = None
    dispense_id: uuid.UUID | None = None
    stocktake_id: uuid.UUID | None = None
    request_id: uuid.UUID | None = None
    # a receipt: its DEA Form 222 / CSOS order number and the supplier's DEA
    # number; a destruction or a theft or loss: the DEA form record it is posted from
    order_form: str | None = None
    supplier_dea: str | None = None
    dea_form_id: uuid.UUID | None = None
    id: uuid.UUID = dataclasses.field(default_factory=uuid.uuid4)


_INSERT = sa.insert(table_of(StockMovement))


def post(w: Work, movements: Sequence[Movement], *,
         at: dt.datetime | sa.ColumnElement[dt.datetime] | None = None,
         staff_id: uuid.UUID | None = None) -> list[uuid.UUID]:
    """Post ``movements`` in one statement, recorded under ``staff_id`` (default:
    the acting staff member) at ``at`` (default: now; or an SQL expression the
    database evaluates, as a pipelined fill's time). A movement that would take
    its lot below zero is refused (:class:`InsufficientStock`) and nothing is
    posted."""
    if not movements:
        return []
    staff = staff_id or w.staff_id
    when = clock.now() if at is None else at
    taken: dict[uuid.UUID, int] = {}
    for m in movements:
        left = m.lot.on_hand + taken.get(m.lot.id, 0) + m.quantity
        if left < 0:
            raise _short(m)
        taken[m.lot.id] = taken.get(m.lot.id, 0) + m.quantity
    w.session.flush()  # pending rows first (a lot made in this unit of work)
    try:
        # a time the database evaluates goes in the statement, not in the rows
        stmt = _INSERT if isinstance(when, dt.datetime) else _INSERT.values(created_at=when)
        w.conn.execute(stmt, [_row(m, staff, when) for m in movements])
    except sa.exc.IntegrityError as exc:
        if "on_hand_nonneg" in constraint_of(exc):  # someone took it meanwhile
            raise _short(movements[0], changed=True) from None
        raise
    for m in movements:
        w.touched("stock_movements", m.id)
        w.touched("stock_lots", m.lot.id)
        w.touched("products", m.lot.product_id)
    return [m.id for m in movements]


# The columns of a movement row, in the order :func:`load` takes them.
COLUMNS = ("id", "lot_id", "kind", "quantity", "reason", "reference", "staff_id", "created_at",
           "dispense_id", "supplier_id", "stocktake_id", "request_id")


def load(conn: sa.Connection, movements: Iterable[Sequence[object]]) -> int:
    """A whole history at once (the demo seed): rows in :data:`COLUMNS` order and
    in time order, streamed with COPY inside the caller's transaction. The
    database applies the same triggers and constraints as to :func:`post`: lot
    and product balances, the controlled register, the audit trail, and no lot
    below zero. Returns the number of movements."""
    return db.bulk_insert(conn, table_of(StockMovement), COLUMNS, movements)


def _row(m: Movement, staff: uuid.UUID, when: dt.datetime | sa.ColumnElement[dt.datetime]
         ) -> dict[str, object]:
    row: dict[str, object] = {
        "id": m.id, "lot_id": m.lot.id, "kind": m.kind, "quantity": m.quantity,
        "reason": m.reason, "reference": m.reference, "staff_id": staff,
        "dispense_id": m.dispense_id, "supplier_id": m.supplier_id,
        "stocktake_id": m.stocktake_id, "request_id": m.request_id,
        "order_form": m.order_form, "supplier_dea": m.supplier_dea,
        "dea_form_id": m.dea_form_id}
    if isinstance(when, dt.datetime):
        row["created_at"] = when
    return row


def _short(m: Movement, *, changed: bool = False) -> InsufficientStock:
    if changed:
        text = (f"The stock of lot {m.lot.lot_number} changed meanwhile and is no longer "
                "enough. Look at the lot again and try again.")
    elif m.kind is MovementKind.ADJUSTMENT:
        text = (f"Lot {m.lot.lot_number} has {m.lot.on_hand} on hand; it cannot go down by "
                f"{-m.quantity}.")
    elif m.kind is MovementKind.RETURN:
        text = f"Lot {m.lot.lot_number} has only {m.lot.on_hand} on hand to return."
    else:
        text = f"Lot {m.lot.lot_number} has only {m.lot.on_hand} on hand."
    return InsufficientStock(text, available=m.lot.on_hand, requested=-m.quantity)


def lock_lot(s: Session, lot_id: uuid.UUID) -> tuple[StockLot, Lot]:
    """The lot, locked for the rest of the transaction, and its ledger view."""
    from .errors import NotFound

    lot = s.scalar(sa.select(StockLot).where(StockLot.id == lot_id).with_for_update())
    if lot is None:
        raise NotFound("That lot does not exist.")
    return lot, Lot(lot.id, lot.product_id, lot.lot_number, lot.on_hand)


@dataclasses.dataclass(frozen=True)
class LedgerCheck:
    lots_checked: int
    negative_lots: int
    lot_mismatches: int
    product_mismatches: int
    register_mismatches: int
    duplicate_request_ids: int

    @property
    def anomalies(self) -> int:
        return (self.negative_lots + self.lot_mismatches + self.product_mismatches
                + self.register_mismatches + self.duplicate_request_ids)

    @property
    def ok(self) -> bool:
        return self.anomalies == 0


def verify(sf: sessionmaker[Session]) -> LedgerCheck:
    with db.read_session(sf) as s:
        return verify_in(s)


def verify_in(s: Session) -> LedgerCheck:
    ledger = (
        sa.select(StockMovement.lot_id, sa.func.sum(StockMovement.quantity).label("q"))
        .group_by(StockMovement.lot_id).subquery()
    )
    lots_checked = s.scalar(sa.select(sa.func.count()).select_from(StockLot)) or 0
    negative = s.scalar(sa.select(sa.func.count()).select_from(StockLot).where(
        StockLot.on_hand < 0)) or 0
    lot_mismatch = s.scalar(
        sa.select(sa.func.count()).select_from(StockLot)
        .outerjoin(ledger, ledger.c.lot_id == StockLot.id)
        .where(StockLot.on_hand != sa.func.coalesce(ledger.c.q, 0))
    ) or 0
    per_product = (
        sa.select(StockLot.product_id, sa.func.sum(StockLot.on_hand).label("q"))
        .group_by(StockLot.product_id).subquery()
    )
    product_mismatch = s.scalar(
        sa.select(sa.func.count()).select_from(ProductStock)
        .outerjoin(per_product, per_product.c.product_id == ProductStock.product_id)
        .where(ProductStock.on_hand != sa.func.coalesce(per_product.c.q, 0))
    ) or 0
    # Register: every movement of a controlled product has its entry, from the
    # register's opening on (a product moved into a schedule: its newly-
    # controlled inventory, 21 CFR 1304.11(d); what moved before it is not in
    # the register); and each controlled product's latest balance equals its
    # ledger sum. A product taken out of the schedules keeps its entries.
    from ..models import DeaInventory, DeaInventoryLine, Stocktake

    opened = (
        sa.select(DeaInventoryLine.product_id, sa.func.max(Stocktake.created_at).label("at"))
        .join(DeaInventory, DeaInventory.id == DeaInventoryLine.inventory_id)
        .join(Stocktake, Stocktake.id == DeaInventory.stocktake_id)
        .where(DeaInventory.kind == "newly_controlled")
        .group_by(DeaInventoryLine.product_id).subquery()
    )
    entry = sa.select(ControlledRegisterEntry.id).where(
        ControlledRegisterEntry.movement_id == StockMovement.id).exists()
    missing = s.scalar(
        sa.select(sa.func.count()).select_from(StockMovement)
        .join(StockLot, StockLot.id == StockMovement.lot_id)
        .join(Product, Product.id == StockLot.product_id)
        .outerjoin(opened, opened.c.product_id == Product.id)
        .where(Product.schedule != "none", ~entry,
               sa.or_(opened.c.at.is_(None), StockMovement.created_at > opened.c.at))
    ) or 0
    last = (
        sa.select(ControlledRegisterEntry.product_id,
                  sa.func.max(ControlledRegisterEntry.id).label("last_id"))
        .group_by(ControlledRegisterEntry.product_id).subquery()
    )
    balance_mismatch = s.scalar(
        sa.select(sa.func.count())
        .select_from(Product)
        .join(ProductStock, ProductStock.product_id == Product.id)
        .outerjoin(last, last.c.product_id == Product.id)
        .outerjoin(ControlledRegisterEntry, ControlledRegisterEntry.id == last.c.last_id)
        .where(Product.schedule != "none",
               sa.func.coalesce(ControlledRegisterEntry.balance_after, 0)
               != ProductStock.on_hand)
    ) or 0
    # Dispenses and movements carry UNIQUE request ids; count any duplicates anyway.
    from ..models import Dispense

    dup = s.scalar(
        sa.select(sa.func.count()).select_from(
            sa.select(Dispense.request_id).group_by(Dispense.request_id)
            .having(sa.func.count() > 1).subquery())
    ) or 0
    return LedgerCheck(lots_checked, negative, lot_mismatch, product_mismatch,
                       missing + balance_mismatch, dup)
