"""Proof that the caches and the controlled register agree with the ledger."""

from __future__ import annotations

import dataclasses

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from .. import db
from ..models import ControlledRegisterEntry, Product, ProductStock, StockLot, StockMovement


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
    # Register: one entry per controlled movement, and each product's latest
    # balance equals its ledger sum.
    controlled_moves = s.scalar(
        sa.select(sa.func.count()).select_from(StockMovement)
        .join(StockLot, StockLot.id == StockMovement.lot_id)
        .join(Product, Product.id == StockLot.product_id)
        .where(Product.schedule != "none")
    ) or 0
    entries = s.scalar(sa.select(sa.func.count()).select_from(ControlledRegisterEntry)) or 0
    last = (
        sa.select(ControlledRegisterEntry.product_id,
                  sa.func.max(ControlledRegisterEntry.id).label("last_id"))
        .group_by(ControlledRegisterEntry.product_id).subquery()
    )
    balance_mismatch = s.scalar(
        sa.select(sa.func.count())
        .select_from(last)
        .join(ControlledRegisterEntry, ControlledRegisterEntry.id == last.c.last_id)
        .outerjoin(per_product, per_product.c.product_id == last.c.product_id)
        .where(ControlledRegisterEntry.balance_after != sa.func.coalesce(per_product.c.q, 0))
    ) or 0
    # Dispenses and movements carry UNIQUE request ids; count any duplicates anyway.
    from ..models import Dispense

    dup = s.scalar(
        sa.select(sa.func.count()).select_from(
            sa.select(Dispense.request_id).group_by(Dispense.request_id)
            .having(sa.func.count() > 1).subquery())
    ) or 0
    return LedgerCheck(lots_checked, negative, lot_mismatch, product_mismatch,
                       abs(controlled_moves - entries) + balance_mismatch, dup)
