"""The application's own services, signed in as each role's own login (SCRAM):
what a role may do in the app works against the database's rules, and what it
may not is refused in words."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from getmeds_desktop import db
from getmeds_desktop.models import Schedule
from getmeds_desktop.services import clock, inventory, staff
from getmeds_desktop.services.errors import PermissionDenied
from tests.fixtures.data import PASSWORD
from tests.security.conftest import Pharmacy


def _as(pharmacy: Pharmacy, who):
    engine = db.make_engine(pharmacy.url, username=who.username, password=PASSWORD,
                            poolclass=sa.NullPool)
    sf = db.session_factory(engine)
    return engine, sf, staff.actor_from_session(sf)


def test_a_clerk_receives_ordinary_stock_through_the_app(pharmacy: Pharmacy):
    """Once refused by the database: the receipt locked the lot (which needs an
    UPDATE privilege clerks do not have) and read the ledger back."""
    w = pharmacy.world
    product, _lot = pharmacy.stocked("Clerkrecv", 5)
    controlled = pharmacy.world.product("Clerkoxy", schedule=Schedule.II)
    engine, sf, clerk = _as(pharmacy, w.clerk)
    try:
        expiry = clock.today() + dt.timedelta(days=400)
        for lot in ("CLERKRECV-1", "CR-NEW"):  # an existing lot, then a new one
            m = inventory.receive_stock(sf, clerk, inventory.ReceiptRequest(
                product_id=product.id, lot_number=lot, expiry_date=expiry if lot == "CR-NEW"
                else inventory.get_lot(w.sf, _lot).expiry_date, quantity=7,
                unit_cost="1.00", supplier_id=w.supplier_id, invoice_ref="INV-C"))
            assert m.quantity == 7 and m.staff_username == w.clerk.username
        with pytest.raises(PermissionDenied):
            inventory.receive_stock(sf, clerk, inventory.ReceiptRequest(
                product_id=controlled.id, lot_number="OXY-1", expiry_date=expiry,
                quantity=5, supplier_id=w.supplier_id))
    finally:
        engine.dispose()
    assert inventory.on_hand(w.sf, product.id) == 5 + 14
