"""The dashboard's figures, read in one statement, are the figures each count
means, for every role (None where the role may not see it)."""

from __future__ import annotations

import datetime as dt
import decimal
import uuid

import sqlalchemy as sa

from getmeds_desktop import db
from getmeds_desktop.models import (
    Category,
    Dispense,
    Patient,
    Prescription,
    Product,
    ProductStock,
    RxStatus,
    StockLot,
)
from getmeds_desktop.services import catalog, clock, dashboard, dispensing
from getmeds_desktop.services.context import Perm
from getmeds_desktop.services.dispensing import DispenseRequest
from tests.fixtures.data import NO_SCAN


def plainly(world, actor) -> dict:
    """Each figure by its own query, as the dashboard once read them."""
    today = clock.today()
    out: dict = {}
    with db.read_session(world.sf) as s:
        def n(q):
            return s.scalar(sa.select(sa.func.count()).select_from(q.subquery()))

        out["patients"] = (n(sa.select(Patient.id).where(Patient.active.is_(True)))
                           if actor.can(Perm.READ_PATIENTS) else None)
        waiting = {}
        if actor.can(Perm.READ_PRESCRIPTIONS):
            q = sa.select(Prescription.status, sa.func.count()).where(
                Prescription.status.in_(dashboard.WAITING)).group_by(Prescription.status)
            if actor.role.value == "doctor" and actor.prescriber_id is not None:
                q = q.where(Prescription.prescriber_id == actor.prescriber_id)
            waiting = dict(s.execute(q).all())
        out["waiting"] = waiting
        stock = actor.can(Perm.READ_STOCK)
        out["low"] = n(sa.select(Product.id).join(ProductStock).where(
            Product.active.is_(True), ProductStock.on_hand <= Product.reorder_level)) \
            if stock else None
        out["expiring"] = n(sa.select(StockLot.id).where(
            StockLot.on_hand > 0, StockLot.expiry_date >= today,
            StockLot.expiry_date <= today + dt.timedelta(days=30))) if stock else None
        out["expired"] = n(sa.select(StockLot.id).where(
            StockLot.on_hand > 0, StockLot.expiry_date < today)) if stock else None
        per_day = []
        if actor.can(Perm.READ_DISPENSES):
            counts: dict = {}
            for (when,) in s.execute(sa.select(Dispense.dispensed_at).where(
                    Dispense.dispensed_at >= clock.now() - dt.timedelta(days=30))):
                counts[when.astimezone().date()] = counts.get(when.astimezone().date(), 0) + 1
            per_day = [(today - dt.timedelta(days=i), counts.get(today - dt.timedelta(days=i), 0))
                       for i in range(29, -1, -1)]
        out["per_day"] = tuple(per_day)
        by_cat = ()
        if actor.can(Perm.REPORTS):
            value = sa.func.sum(StockLot.on_hand * StockLot.unit_cost)
            rows = s.execute(sa.select(Category.name, value).select_from(StockLot)
                             .join(Product, Product.id == StockLot.product_id)
                             .outerjoin(Category, Category.id == Product.category_id)
                             .where(StockLot.on_hand > 0).group_by(Category.name)
                             .order_by(value.desc())).all()
            by_cat = tuple((name or "Uncategorised",
                            decimal.Decimal(v or 0).quantize(decimal.Decimal("0.01")))
                           for name, v in rows)
        out["by_cat"] = by_cat
    return out


def test_the_figures_are_what_each_count_means_for_every_role(world):
    cat = catalog.create_category(world.sf, world.admin, f"Dash {uuid.uuid4().hex[:6]}")
    low = world.product("Dashlow", reorder_level=50, category_id=cat.id)
    world.receive(low.id, 20, days=10, cost="2.50")  # low, and expiring within 30 days
    plenty = world.product("Dashplenty")
    world.receive(plenty.id, 500, cost="0.10")
    for i in range(3):
        pat = world.patient("Dash", f"Patient{i}")
        rx = world.rx(pat.id, plenty.id, quantity=10)
        if i < 2:
            dispensing.dispense(world.sf, world.pharmacist, DispenseRequest(
                rx.id, uuid.uuid4(), no_scan_reason=NO_SCAN))
    world.rx(world.patient("Dash", "Doctorsown").id, plenty.id, actor=world.doctor,
             prescriber_id=world.doctor.prescriber_id)
    for actor in (world.admin, world.pharmacist, world.clerk, world.doctor):
        d = dashboard.dashboard(world.sf, actor)
        want = plainly(world, actor)
        assert (d.patients, d.waiting, d.low_stock, d.expiring_30, d.expired_on_hand,
                d.dispenses_per_day, d.value_by_category) == (
            want["patients"], want["waiting"], want["low"], want["expiring"], want["expired"],
            want["per_day"], want["by_cat"]), actor.role
    d = dashboard.dashboard(world.sf, world.pharmacist)
    assert d.dispenses_per_day[-1][1] >= 2 and d.low_stock and d.expiring_30
    assert d.waiting.get(RxStatus.NEW, 0) >= 2
