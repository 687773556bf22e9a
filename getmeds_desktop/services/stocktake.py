"""Stocktakes: snapshot the ledger, enter counts, review variances, post them.

The snapshot is taken at start; a counted quantity is compared with it, and the
posted count movement is the variance (counted - snapshot). Movements made
while the count is open (a dispense, a receipt) are already in the ledger, so
they are neither lost nor counted twice, provided the shelf was counted as it
stood at the snapshot. A controlled lot's count is posted even when it matches
(a count of 0), so the register shows every count. The DEA inventory (21 CFR
1304.11) is services/dea_inventory.py: a controlled stocktake taken and posted
at once, with its DEA record.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from .. import db
from ..models import (
    Category,
    MovementKind,
    Product,
    Schedule,
    StockLot,
    Stocktake,
    StocktakeLine,
    StocktakeScope,
    StocktakeStatus,
)
from . import clock, ledger, uow
from ._common import text, whole_number
from .context import Actor, Perm, require
from .errors import InsufficientStock, InvalidState, NotFound, ValidationError


@dataclasses.dataclass(frozen=True)
class StocktakeInfo:
    id: uuid.UUID
    scope: StocktakeScope
    category_name: str | None
    status: StocktakeStatus
    started_at: dt.datetime
    posted_at: dt.datetime | None
    lines: int
    counted: int
    version: int


@dataclasses.dataclass(frozen=True)
class CountLine:
    line_id: uuid.UUID
    lot_id: uuid.UUID
    product_id: uuid.UUID
    product_name: str
    strength: str | None
    schedule: Schedule
    lot_number: str
    expiry_date: dt.date
    expected: int
    counted: int | None
    reason: str | None

    @property
    def variance(self) -> int | None:
        return None if self.counted is None else self.counted - self.expected


def _info(s: Session, st: Stocktake) -> StocktakeInfo:
    lines, counted = s.execute(
        sa.select(sa.func.count(), sa.func.count(StocktakeLine.counted_quantity))
        .where(StocktakeLine.stocktake_id == st.id)
    ).one()
    cat = s.get(Category, st.category_id) if st.category_id else None
    return StocktakeInfo(st.id, st.scope, cat.name if cat else None, st.status, st.created_at,
                         st.posted_at, lines, counted, st.version)


def start_stocktake(
    sf: sessionmaker[Session],
    actor: Actor,
    scope: StocktakeScope | str,
    *,
    category_id: uuid.UUID | None = None,
    note: str | None = None,
) -> StocktakeInfo:
    """Open a count of all lots with stock in scope, snapshotting their balances."""
    try:
        scope = StocktakeScope(scope)
    except ValueError:
        raise ValidationError("Scope must be all, category or controlled.", field="scope") from None
    if (scope is StocktakeScope.CATEGORY) != (category_id is not None):
        raise ValidationError("Choose a category for a category count (and only then).",
                              field="category_id")
    clean_note = text(note, "note", "Note", required=False, max_len=300)

    def body(w: uow.Work) -> StocktakeInfo:
        s = w.session
        if category_id is not None and s.get(Category, category_id) is None:
            raise NotFound("That category does not exist.", field="category_id")
        st = Stocktake(scope=scope, category_id=category_id, started_by=w.staff_id,
                       note=clean_note, updated_by=w.actor.username, created_at=clock.now())
        s.add(st)
        s.flush()
        q = (
            sa.select(sa.literal(st.id), StockLot.id, StockLot.on_hand)
            .join(Product, Product.id == StockLot.product_id)
            .where(StockLot.on_hand > 0)
        )
        if scope is StocktakeScope.CATEGORY:
            q = q.where(Product.category_id == category_id)
        elif scope is StocktakeScope.CONTROLLED:
            q = q.where(Product.schedule != Schedule.NONE)
        # The snapshot: lots are locked while read so no movement slips between
        # reading and recording (SQLite holds the write lock already).
        rows = s.execute(q.with_for_update(of=StockLot)).all()
        if rows:
            s.execute(sa.insert(StocktakeLine), [
                {"id": uuid.uuid4(), "stocktake_id": st.id, "lot_id": lot_id,
                 "expected_quantity": qty} for _, lot_id, qty in rows
            ])
        return _info(s, st)

    return uow.write(sf, actor, Perm.STOCKTAKE, body)


def count_lines(sf: sessionmaker[Session], actor: Actor, stocktake_id: uuid.UUID,
                *, only_variances: bool = False) -> list[CountLine]:
    require(actor, Perm.STOCKTAKE)
    with db.read_session(sf) as s:
        q = (
            sa.select(StocktakeLine, StockLot, Product)
            .join(StockLot, StockLot.id == StocktakeLine.lot_id)
            .join(Product, Product.id == StockLot.product_id)
            .where(StocktakeLine.stocktake_id == stocktake_id)
            .order_by(Product.name, StockLot.expiry_date, StockLot.lot_number)
        )
        if only_variances:
            q = q.where(StocktakeLine.counted_quantity.is_not(None),
                        StocktakeLine.counted_quantity != StocktakeLine.expected_quantity)
        return [
            CountLine(line.id, lot.id, p.id, p.name, p.strength, p.schedule, lot.lot_number,
                      lot.expiry_date, line.expected_quantity, line.counted_quantity, line.reason)
            for line, lot, p in s.execute(q)
        ]


def _open(s: Session, stocktake_id: uuid.UUID, lock: bool = False) -> Stocktake:
    q = sa.select(Stocktake).where(Stocktake.id == stocktake_id)
    st = s.scalar(q.with_for_update() if lock else q)
    if st is None:
        raise NotFound("That stocktake does not exist.")
    if st.status is not StocktakeStatus.OPEN:
        raise InvalidState(f"This stocktake is {st.status.value}; it can no longer change.")
    return st


def enter_count(
    sf: sessionmaker[Session],
    actor: Actor,
    line_id: uuid.UUID,
    counted: int | None,
    reason: str | None = None,
) -> CountLine:
    """Record the counted quantity of one lot (None clears it)."""
    value = None if counted is None else whole_number(counted, "counted", "Counted quantity",
                                                       minimum=0)
    why = text(reason, "reason", "Reason", required=False, max_len=300)

    def body(w: uow.Work) -> CountLine:
        s = w.session
        line = s.get(StocktakeLine, line_id, with_for_update=True)
        if line is None:
            raise NotFound("That count line does not exist.")
        _open(s, line.stocktake_id)
        line.counted_quantity = value
        line.reason = why
        line.counted_by = w.staff_id if value is not None else None
        s.flush()
        lot = s.get(StockLot, line.lot_id)
        assert lot is not None  # a foreign key
        p = s.get(Product, lot.product_id)
        assert p is not None
        return CountLine(line.id, lot.id, p.id, p.name, p.strength, p.schedule, lot.lot_number,
                         lot.expiry_date, line.expected_quantity, line.counted_quantity,
                         line.reason)

    return uow.write(sf, actor, Perm.STOCKTAKE, body)


def post_stocktake(
    sf: sessionmaker[Session],
    actor: Actor,
    stocktake_id: uuid.UUID,
    *,
    expected_version: int | None = None,
) -> StocktakeInfo:
    """Post every variance as a count movement. Each variance needs a reason;
    uncounted lines are refused so nothing is silently assumed."""
    def body(w: uow.Work) -> StocktakeInfo:
        s = w.session
        st = _open(s, stocktake_id, lock=True)
        w.expect_version(st, expected_version, "stocktake")
        lines = list(s.scalars(sa.select(StocktakeLine).where(
            StocktakeLine.stocktake_id == st.id)))
        uncounted = sum(1 for ln in lines if ln.counted_quantity is None)
        if uncounted:
            raise InvalidState(
                f"{uncounted} lot(s) have no count yet. Enter a count for every lot "
                "(0 if none was found) before posting.")
        missing = [ln for ln in lines if ln.counted_quantity != ln.expected_quantity
                   and not ln.reason]
        if missing:
            raise ValidationError(
                f"{len(missing)} variance(s) have no reason. Give a reason for each "
                "difference before posting.", field="reason")
        now = clock.now()
        # A controlled lot's count is in the register even when it matches (a
        # count movement of 0, 21 CFR 1304.21(a)); an ordinary lot's only when
        # it differs.
        controlled = set(s.scalars(
            sa.select(StockLot.id).join(Product, Product.id == StockLot.product_id)
            .where(StockLot.id.in_([ln.lot_id for ln in lines]),
                   Product.schedule != Schedule.NONE))) if lines else set()
        varied = [ln for ln in lines if ln.counted_quantity != ln.expected_quantity
                  or ln.lot_id in controlled]
        counted = {ln.id: ln.counted_quantity or 0 for ln in varied}  # every line is counted
        lots = {lot.id: lot for lot in s.scalars(
            sa.select(StockLot).where(StockLot.id.in_([ln.lot_id for ln in varied]))
            .with_for_update())} if varied else {}
        moves = []
        for ln in varied:
            lot = lots[ln.lot_id]
            m = ledger.Movement(
                ledger.Lot(lot.id, lot.product_id, lot.lot_number, lot.on_hand),
                MovementKind.COUNT, counted[ln.id] - ln.expected_quantity,
                reason=ln.reason or "Stocktake: the count matches the register",
                reference="Stocktake", stocktake_id=st.id)
            moves.append(m)
        short = next((m for m in moves if m.lot.on_hand + m.quantity < 0), None)
        if short is not None:
            raise InsufficientStock(
                f"Lot {short.lot.lot_number}: since the count started, more left the shelf "
                f"than the count allows ({short.lot.on_hand} on hand now, variance "
                f"{short.quantity}). Recount this lot.", available=short.lot.on_hand,
                requested=-short.quantity)
        ledger.post(w, moves, at=now)
        for ln, m in zip(varied, moves, strict=True):
            ln.movement_id = m.id
        st.status = StocktakeStatus.POSTED
        st.posted_by = w.staff_id
        st.posted_at = now
        st.updated_by = w.actor.username
        s.flush()
        return _info(s, st)

    return uow.write(sf, actor, Perm.STOCKTAKE, body)


def cancel_stocktake(sf: sessionmaker[Session], actor: Actor, stocktake_id: uuid.UUID
                     ) -> StocktakeInfo:
    def body(w: uow.Work) -> StocktakeInfo:
        st = _open(w.session, stocktake_id, lock=True)
        st.status = StocktakeStatus.CANCELLED
        st.updated_by = w.actor.username
        w.session.flush()
        return _info(w.session, st)

    return uow.write(sf, actor, Perm.STOCKTAKE, body)


def list_stocktakes(sf: sessionmaker[Session], actor: Actor, limit: int = 50
                    ) -> list[StocktakeInfo]:
    require(actor, Perm.STOCKTAKE)
    with db.read_session(sf) as s:
        rows = s.scalars(sa.select(Stocktake).order_by(Stocktake.created_at.desc()).limit(limit))
        return [_info(s, st) for st in rows]
