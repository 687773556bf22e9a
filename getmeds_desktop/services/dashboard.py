"""What the dashboard shows: counts that open filtered lists, and chart data."""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import itertools
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from .. import db
from ..enums import FillStatus
from ..models import (
    Category,
    Dispense,
    Patient,
    Prescription,
    Product,
    ProductStock,
    RxStatus,
    StockLot,
)
from . import clock
from .context import Actor, Perm


@dataclasses.dataclass(frozen=True)
class DashboardData:
    patients: int | None
    waiting: dict[RxStatus, int]
    low_stock: int | None
    expiring_30: int | None
    expired_on_hand: int | None
    dispenses_per_day: tuple[tuple[dt.date, int], ...]
    value_by_category: tuple[tuple[str, decimal.Decimal], ...]
    as_of: dt.datetime
    # fills waiting for a pharmacist's verification, and for the patient (None:
    # a role that does not work with fills)
    to_verify: int | None = None
    ready_for_pickup: int | None = None


WAITING = (RxStatus.NEW, RxStatus.IN_PROGRESS, RxStatus.READY_FOR_CHECK,
           RxStatus.PARTIALLY_DISPENSED, RxStatus.ON_HOLD)


def dashboard(sf: sessionmaker[Session], actor: Actor, days: int = 30) -> DashboardData:
    """Counts the actor may see (None where the role may not), in one statement
    (one round trip on a server, and one snapshot of the database)."""
    today = clock.today()
    figures: list[sa.ColumnElement[Any]] = []
    if actor.can(Perm.READ_PATIENTS):
        figures.append(sa.select(sa.func.count()).select_from(Patient)
                       .where(Patient.active.is_(True)).scalar_subquery().label("patients"))
    if actor.can(Perm.READ_PRESCRIPTIONS):
        for st in WAITING:
            q = sa.select(sa.func.count()).select_from(Prescription).where(
                Prescription.status == st)
            if actor.role.value == "doctor" and actor.prescriber_id is not None:
                q = q.where(Prescription.prescriber_id == actor.prescriber_id)
            figures.append(q.scalar_subquery().label(f"waiting_{st.value}"))
    if actor.can(Perm.READ_STOCK):
        figures.append(
            sa.select(sa.func.count()).select_from(Product)
            .join(ProductStock, ProductStock.product_id == Product.id)
            .where(Product.active.is_(True), ProductStock.on_hand <= Product.reorder_level)
            .scalar_subquery().label("low"))
        figures.append(sa.select(sa.func.count()).select_from(StockLot).where(
            StockLot.on_hand > 0, StockLot.expiry_date >= today,
            StockLot.expiry_date <= today + dt.timedelta(days=30))
            .scalar_subquery().label("expiring"))
        figures.append(sa.select(sa.func.count()).select_from(StockLot).where(
            StockLot.on_hand > 0, StockLot.expiry_date < today)
            .scalar_subquery().label("expired"))
    works_fills = actor.can(Perm.RELEASE) or actor.can(Perm.VERIFY)
    if works_fills:
        for fs in (FillStatus.FILLED, FillStatus.VERIFIED):
            figures.append(sa.select(sa.func.count()).select_from(Dispense)
                           .where(Dispense.status == fs).scalar_subquery()
                           .label(f"fills_{fs.value}"))
    dates = [today - dt.timedelta(days=i) for i in range(days - 1, -1, -1)]
    if actor.can(Perm.READ_DISPENSES):
        # local midnights: a dispense counts on the workstation's calendar day
        bounds = [_local_midnight(d) for d in [*dates, today + dt.timedelta(days=1)]]
        at = Dispense.dispensed_at
        per_day_q = sa.select(*[
            sa.func.count().filter(at >= lo, at < hi).label(f"day_{i}")
            for i, (lo, hi) in enumerate(itertools.pairwise(bounds))
        ]).where(at >= bounds[0], at < bounds[-1]).subquery("per_day")
        figures.extend(per_day_q.c)
    stmt: sa.Select[Any] = sa.select(*figures, sa.literal(1).label("present"))
    if actor.can(Perm.REPORTS):
        value = sa.func.sum(StockLot.on_hand * StockLot.unit_cost)
        by_cat_q = (sa.select(Category.name.label("category"), value.label("value"))
                    .select_from(StockLot)
                    .join(Product, Product.id == StockLot.product_id)
                    .outerjoin(Category, Category.id == Product.category_id)
                    .where(StockLot.on_hand > 0)
                    .group_by(Category.name)
                    .subquery("by_category"))
        head = sa.select(*figures, sa.literal(1).label("present")).subquery("figures")
        stmt = (sa.select(*head.c, by_cat_q.c.category, by_cat_q.c.value,
                          sa.literal(1).label("grouped"))
                .select_from(head.outerjoin(by_cat_q, sa.true()))
                .order_by(by_cat_q.c.value.desc()))
    elif actor.can(Perm.READ_DISPENSES):
        stmt = stmt.select_from(per_day_q)
    with db.quick_read(sf) as s:
        rows = s.execute(stmt).mappings().all()
    first = rows[0]
    patients = first["patients"] if actor.can(Perm.READ_PATIENTS) else None
    waiting: dict[RxStatus, int] = {}
    if actor.can(Perm.READ_PRESCRIPTIONS):
        waiting = {st: first[f"waiting_{st.value}"] for st in WAITING
                   if first[f"waiting_{st.value}"]}
    low = expiring = expired = None
    if actor.can(Perm.READ_STOCK):
        low, expiring, expired = first["low"], first["expiring"], first["expired"]
    per_day: list[tuple[dt.date, int]] = []
    if actor.can(Perm.READ_DISPENSES):
        per_day = [(d, int(first[f"day_{i}"] or 0)) for i, d in enumerate(dates)]
    by_cat: tuple[tuple[str, decimal.Decimal], ...] = ()
    if actor.can(Perm.REPORTS):
        cent = decimal.Decimal("0.01")
        by_cat = tuple((r["category"] or "Uncategorised",
                        decimal.Decimal(r["value"] or 0).quantize(cent))
                       for r in rows if r["grouped"] is not None and r["value"] is not None)
    return DashboardData(patients, waiting, low, expiring, expired, tuple(per_day), by_cat,
                         clock.now(),
                         to_verify=first["fills_filled"] if works_fills else None,
                         ready_for_pickup=first["fills_verified"] if works_fills else None)


def _local_midnight(day: dt.date) -> dt.datetime:
    """The start of a calendar day of the pharmacy, as an aware datetime."""
    return clock.local(clock.start_of_day(day))


@dataclasses.dataclass(frozen=True)
class DispenseHistoryRow:
    id: uuid.UUID
    dispensed_at: dt.datetime
    rx_number: int
    product: str
    quantity: int
    fill_number: int
    part: int
    pharmacist: str
    days_supply: int = 0  # this fill's own (a part's, in proportion to its quantity)
    owed_after: int = 0
    partial_reason: str | None = None  # why it left some owed (enums.PartialReason)
    status: FillStatus = FillStatus.RELEASED  # where the fill is (0015)
    return_note: str | None = None  # what was wrong, when it went back to stock

    @property
    def returned(self) -> bool:
        return self.status is FillStatus.RETURNED


def patient_dispenses(sf: sessionmaker[Session], actor: Actor, patient_id: uuid.UUID,
                      limit: int = 500) -> list[DispenseHistoryRow]:
    from ..models import Staff
    from .context import require

    require(actor, Perm.READ_DISPENSES)
    with db.read_session(sf) as s:
        rows = s.execute(
            sa.select(Dispense.id, Dispense.dispensed_at, Prescription.rx_number, Product.name,
                      Product.strength, Dispense.quantity, Dispense.fill_number, Dispense.part,
                      Staff.full_name, Dispense.days_supply, Dispense.owed_after,
                      Dispense.partial_reason, Dispense.status, Dispense.return_note)
            .join(Prescription, Prescription.id == Dispense.prescription_id)
            .join(Product, Product.id == Prescription.product_id)
            .join(Staff, Staff.id == Dispense.pharmacist_id)
            .where(Prescription.patient_id == patient_id)
            .order_by(Dispense.dispensed_at.desc())
            .limit(limit))
        return [DispenseHistoryRow(i, at, n, f"{name} {st}" if st else name, q, f, p, who,
                                   days, owed, why, FillStatus(status), note)
                for i, at, n, name, st, q, f, p, who, days, owed, why, status, note in rows]
