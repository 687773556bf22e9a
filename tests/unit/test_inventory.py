"""Inventory rules: receiving, adjustments, write-offs, lot status, returns, queries."""

from __future__ import annotations

import datetime as dt
import decimal
import uuid

import pytest

from getmeds_desktop.models import LotStatus, MovementKind, Schedule
from getmeds_desktop.services import clock, inventory, ledger
from getmeds_desktop.services.errors import (
    Conflict,
    InsufficientStock,
    InvalidState,
    NotFound,
    PermissionDenied,
    ValidationError,
)
from getmeds_desktop.services.inventory import ReceiptRequest
from tests.fixtures.clock import RUN_DAY as TODAY
from tests.fixtures.data import ORDER_FORM
from tests.unit.helpers import nothing_written


def receipt(world, pid, **kw):
    values = dict(product_id=pid, lot_number="A100", expiry_date=TODAY + dt.timedelta(400),
                  quantity=50, unit_cost="2.5", supplier_id=world.supplier_id,
                  invoice_ref="INV-77", order_form=ORDER_FORM)
    values.update(kw)
    return ReceiptRequest(**values)


def test_receive_creates_lot_and_receipt(world):
    p = world.product()
    m = inventory.receive_stock(world.sf, world.pharmacist, receipt(world, p.id))
    assert (m.kind, m.quantity, m.reference, m.lot_number) == (
        MovementKind.RECEIPT, 50, "INV-77", "A100")
    lots = inventory.lots_of_product(world.sf, p.id)
    assert [(lot.lot_number, lot.on_hand, lot.unit_cost) for lot in lots] == [
        ("A100", 50, decimal.Decimal("2.5000"))]
    assert inventory.on_hand(world.sf, p.id) == 50
    # a second delivery of the same lot adds to it
    inventory.receive_stock(world.sf, world.clerk, receipt(world, p.id, quantity=10))
    assert inventory.on_hand(world.sf, p.id) == 60
    assert len(inventory.lots_of_product(world.sf, p.id)) == 1


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        ({"quantity": 0}, ValidationError, "more than zero"),
        ({"quantity": -5}, ValidationError, "more than zero"),
        ({"expiry_date": TODAY - dt.timedelta(days=1)}, ValidationError, "in the past"),
        ({"expiry_date": None}, ValidationError, "Expiry date is required"),
        ({"lot_number": "  "}, ValidationError, "Lot number is required"),
        ({"unit_cost": "-1"}, ValidationError, "cannot be negative"),
        ({"unit_cost": "abc"}, ValidationError, "must be a number"),
        ({"product_id": uuid.uuid4()}, NotFound, "product does not exist"),
    ],
)
def test_receive_refusals(world, change, error, message):
    p = world.product()
    with nothing_written(world.sf), pytest.raises(error, match=message):
        inventory.receive_stock(world.sf, world.pharmacist, receipt(world, p.id, **change))


def test_receive_refuses_existing_lot_number_with_other_expiry(world):
    p = world.product()
    inventory.receive_stock(world.sf, world.pharmacist, receipt(world, p.id))
    with nothing_written(world.sf), pytest.raises(Conflict, match="already recorded with expiry"):
        inventory.receive_stock(world.sf, world.pharmacist, receipt(
            world, p.id, expiry_date=TODAY + dt.timedelta(500)))


def test_receive_is_idempotent(world):
    p = world.product()
    req = receipt(world, p.id)
    first = inventory.receive_stock(world.sf, world.pharmacist, req)
    with nothing_written(world.sf):
        again = inventory.receive_stock(world.sf, world.pharmacist, req)
    assert again == first
    assert inventory.on_hand(world.sf, p.id) == 50


def test_clerk_cannot_receive_controlled_substances(world):
    p = world.product("Oxycodone", schedule=Schedule.II)
    with nothing_written(world.sf), pytest.raises(PermissionDenied, match="controlled"):
        inventory.receive_stock(world.sf, world.clerk, receipt(world, p.id))
    inventory.receive_stock(world.sf, world.pharmacist, receipt(world, p.id))


def test_doctor_cannot_receive(world):
    p = world.product()
    with pytest.raises(PermissionDenied):
        inventory.receive_stock(world.sf, world.doctor, receipt(world, p.id))


def test_receive_into_recalled_lot_is_refused(world):
    p = world.product()
    m = inventory.receive_stock(world.sf, world.pharmacist, receipt(world, p.id))
    inventory.set_lot_status(world.sf, world.pharmacist, m.lot_id, LotStatus.RECALLED,
                             "FDA recall 2026-11")
    with nothing_written(world.sf), pytest.raises(InvalidState, match="recalled"):
        inventory.receive_stock(world.sf, world.pharmacist, receipt(world, p.id))


def test_adjustment_needs_a_reason_and_cannot_go_negative(world):
    p = world.product()
    lot = inventory.receive_stock(world.sf, world.pharmacist, receipt(world, p.id)).lot_id
    with nothing_written(world.sf):
        with pytest.raises(ValidationError, match="reason"):
            inventory.adjust_stock(world.sf, world.pharmacist, lot, -3, "  ")
        with pytest.raises(ValidationError, match="must change"):
            inventory.adjust_stock(world.sf, world.pharmacist, lot, 0, "x")
        with pytest.raises(InsufficientStock, match="cannot go down by 51"):
            inventory.adjust_stock(world.sf, world.pharmacist, lot, -51, "Theft or loss")
        with pytest.raises(PermissionDenied):
            inventory.adjust_stock(world.sf, world.clerk, lot, -1, "Damaged")
    m = inventory.adjust_stock(world.sf, world.pharmacist, lot, -3, "Damaged: dropped bottle")
    assert (m.kind, m.quantity, m.reason) == (MovementKind.ADJUSTMENT, -3,
                                              "Damaged: dropped bottle")
    assert inventory.on_hand(world.sf, p.id) == 47


def test_write_off_only_expired_or_recalled(world):
    p = world.product()
    soon = inventory.receive_stock(world.sf, world.pharmacist, receipt(
        world, p.id, lot_number="SOON", expiry_date=TODAY + dt.timedelta(5), quantity=8)).lot_id
    good = inventory.receive_stock(world.sf, world.pharmacist, receipt(
        world, p.id, lot_number="GOOD", quantity=4)).lot_id
    with nothing_written(world.sf), pytest.raises(InvalidState, match="neither expired"):
        inventory.write_off_lot(world.sf, world.pharmacist, good)
    with clock.travel(clock.now() + dt.timedelta(days=10)):
        m = inventory.write_off_lot(world.sf, world.pharmacist, soon)
        assert (m.kind, m.quantity, m.reason) == (MovementKind.WRITE_OFF, -8, "Expired")
        with pytest.raises(InvalidState, match="nothing left"):
            inventory.write_off_lot(world.sf, world.pharmacist, soon)
    inventory.set_lot_status(world.sf, world.pharmacist, good, LotStatus.RECALLED, "Recall")
    m = inventory.write_off_lot(world.sf, world.pharmacist, good)
    assert (m.quantity, m.reason) == (-4, "Recalled")
    assert inventory.on_hand(world.sf, p.id) == 0


def test_lot_status_flow(world):
    p = world.product()
    lot = inventory.receive_stock(world.sf, world.pharmacist, receipt(world, p.id)).lot_id
    with pytest.raises(ValidationError, match="reason"):
        inventory.set_lot_status(world.sf, world.pharmacist, lot, LotStatus.QUARANTINED, "")
    info = inventory.set_lot_status(world.sf, world.pharmacist, lot, LotStatus.QUARANTINED,
                                    "Temperature excursion")
    assert (info.status, info.status_reason) == (LotStatus.QUARANTINED, "Temperature excursion")
    info = inventory.set_lot_status(world.sf, world.pharmacist, lot, LotStatus.AVAILABLE, None,
                                    expected_version=info.version)
    assert info.status is LotStatus.AVAILABLE
    inventory.set_lot_status(world.sf, world.pharmacist, lot, LotStatus.RECALLED, "Recall")
    with pytest.raises(InvalidState, match="cannot be released"):
        inventory.set_lot_status(world.sf, world.pharmacist, lot, LotStatus.AVAILABLE, None)
    with pytest.raises(PermissionDenied):
        inventory.set_lot_status(world.sf, world.clerk, lot, LotStatus.QUARANTINED, "x")


def test_return_to_supplier(world):
    p = world.product()
    lot = inventory.receive_stock(world.sf, world.pharmacist, receipt(world, p.id)).lot_id
    with nothing_written(world.sf), pytest.raises(InsufficientStock):
        inventory.return_to_supplier(world.sf, world.pharmacist, lot, 51, "Overstock")
    m = inventory.return_to_supplier(world.sf, world.pharmacist, lot, 20, "Overstock",
                                     reference="RMA-9")
    assert (m.kind, m.quantity, m.reference) == (MovementKind.RETURN, -20, "RMA-9")
    assert inventory.on_hand(world.sf, p.id) == 30


def test_low_stock_with_suggested_quantity(world):
    p = world.product("Lisinopril", reorder_level=100, reorder_quantity=200, pack_size=90)
    world.product("Plenty", reorder_level=10)
    world.receive(p.id, 40)
    rows = {r.product_id: r for r in inventory.low_stock(world.sf)}
    row = rows[p.id]
    assert (row.on_hand, row.reorder_level) == (40, 100)
    # need 100 + 200 - 40 = 260 -> 3 packs of 90
    assert row.suggested_quantity == 270
    assert row.last_supplier.startswith("McKesson")


def test_reorder_counts_only_dispensable_stock(world):
    """Quarantined, recalled and expired lots cannot fill a prescription, so they
    do not keep a product off the reorder list (issue: reorder suggestions)."""
    p = world.product("Shelfbound", reorder_level=20, reorder_quantity=30, pack_size=10)
    good = world.receive(p.id, 5, lot="OK-1").lot_id
    bad = world.receive(p.id, 50, lot="Q-1").lot_id
    recalled = world.receive(p.id, 50, lot="R-1").lot_id
    inventory.set_lot_status(world.sf, world.pharmacist, bad, LotStatus.QUARANTINED, "damp")
    inventory.set_lot_status(world.sf, world.pharmacist, recalled, LotStatus.RECALLED,
                             "FDA recall")
    world.receive(p.id, 40, lot="SOON-1", days=2)
    row = {r.product_id: r for r in inventory.low_stock(world.sf)}.get(p.id)
    assert row is None  # 45 dispensable: above the reorder level
    with clock.travel(clock.now() + dt.timedelta(days=5)):  # SOON-1 has expired
        row = {r.product_id: r for r in inventory.low_stock(world.sf)}[p.id]
        assert inventory.on_hand(world.sf, p.id) == 145  # what the shelf holds
        assert (row.on_hand, row.suggested_quantity) == (5, 50)  # 20 + 30 - 5 -> 5 packs
    del good


def test_expiry_queries_and_value(world):
    p = world.product()
    world.receive(p.id, 10, lot="E10", days=10, cost="3.00")
    world.receive(p.id, 5, lot="E200", days=200, cost="1.00")
    soon = {r.lot_number for r in inventory.expiring_lots(world.sf, 30) if r.product_id == p.id}
    assert soon == {"E10"}
    with clock.travel(clock.now() + dt.timedelta(days=20)):
        expired = [r for r in inventory.expired_lots(world.sf) if r.product_id == p.id]
        assert [(r.lot_number, r.value) for r in expired] == [("E10", decimal.Decimal("30.0000"))]
    value = inventory.stock_value(world.sf)
    assert value.total >= decimal.Decimal("35.00")
    assert sum(v for _, v in value.by_category) == value.total


def test_movement_history_with_running_balance(world):
    p = world.product()
    lot = world.receive(p.id, 10, lot="H1").lot_id
    inventory.adjust_stock(world.sf, world.pharmacist, lot, -2, "Damaged")
    world.receive(p.id, 5, lot="H1", days=365)
    hist = inventory.movement_history(world.sf, product_id=p.id)
    assert [(m.kind.value, m.quantity, m.lot_balance_after) for m in hist] == [
        ("receipt", 5, 13), ("adjustment", -2, 8), ("receipt", 10, 10)]
    assert ledger.verify(world.sf).ok
