"""What the dashboard shows: counts that open filtered lists, and chart data."""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import uuid

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from .. import db
from ..models import Dispense, Patient, Prescription, Product, ProductStock, RxStatus, StockLot
from . import clock, inventory
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


WAITING = (RxStatus.NEW, RxStatus.IN_PROGRESS, RxStatus.READY_FOR_CHECK,
           RxStatus.PARTIALLY_DISPENSED, RxStatus.ON_HOLD)


def dashboard(sf: sessionmaker[Session], actor: Actor, days: int = 30) -> DashboardData:
    """Counts the actor may see (None where the role may not)."""
    today = clock.today()
    with db.read_session(sf) as s:
        patients = None
        if actor.can(Perm.READ_PATIENTS):
            patients = s.scalar(sa.select(sa.func.count()).select_from(Patient).where(
                Patient.active.is_(True)))
        waiting: dict[RxStatus, int] = {}
        if actor.can(Perm.READ_PRESCRIPTIONS):
            q = sa.select(Prescription.status, sa.func.count()).where(
                Prescription.status.in_(WAITING)).group_by(Prescription.status)
            if actor.role.value == "doctor" and actor.prescriber_id is not None:
                q = q.where(Prescription.prescriber_id == actor.prescriber_id)
            waiting = {st: n for st, n in s.execute(q)}
        low = expiring = expired = None
        per_day: list[tuple[dt.date, int]] = []
        by_cat: tuple[tuple[str, decimal.Decimal], ...] = ()
        if actor.can(Perm.READ_STOCK):
            low = s.scalar(
                sa.select(sa.func.count()).select_from(Product)
                .join(ProductStock, ProductStock.product_id == Product.id)
                .where(Product.active.is_(True),
                       ProductStock.on_hand <= Product.reorder_level))
            expiring = s.scalar(sa.select(sa.func.count()).select_from(StockLot).where(
                StockLot.on_hand > 0, StockLot.expiry_date >= today,
                StockLot.expiry_date <= today + dt.timedelta(days=30)))
            expired = s.scalar(sa.select(sa.func.count()).select_from(StockLot).where(
                StockLot.on_hand > 0, StockLot.expiry_date < today))
        if actor.can(Perm.READ_DISPENSES):
            start = clock.now() - dt.timedelta(days=days)
            counts: dict[dt.date, int] = {}
            for (when,) in s.execute(sa.select(Dispense.dispensed_at).where(
                    Dispense.dispensed_at >= start)):
                d = when.astimezone().date()
                counts[d] = counts.get(d, 0) + 1
            per_day = [(today - dt.timedelta(days=i), counts.get(today - dt.timedelta(days=i), 0))
                       for i in range(days - 1, -1, -1)]
        if actor.can(Perm.REPORTS):
            by_cat = inventory.stock_value(sf).by_category
        return DashboardData(patients, waiting, low, expiring, expired, tuple(per_day), by_cat,
                             clock.now())


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


def patient_dispenses(sf: sessionmaker[Session], actor: Actor, patient_id: uuid.UUID,
                      limit: int = 500) -> list[DispenseHistoryRow]:
    from ..models import Staff
    from .context import require

    require(actor, Perm.READ_DISPENSES)
    with db.read_session(sf) as s:
        rows = s.execute(
            sa.select(Dispense.id, Dispense.dispensed_at, Prescription.rx_number, Product.name,
                      Product.strength, Dispense.quantity, Dispense.fill_number, Dispense.part,
                      Staff.full_name)
            .join(Prescription, Prescription.id == Dispense.prescription_id)
            .join(Product, Product.id == Prescription.product_id)
            .join(Staff, Staff.id == Dispense.pharmacist_id)
            .where(Prescription.patient_id == patient_id)
            .order_by(Dispense.dispensed_at.desc())
            .limit(limit))
        return [DispenseHistoryRow(i, at, n, f"{name} {st}" if st else name, q, f, p, who)
                for i, at, n, name, st, q, f, p, who in rows]
