"""The scan at fill is checked and kept by the dispensing service, not only by
the dialog: the right product, the lot the barcode names (when it names one),
and a recorded reason when nothing was scanned."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from getmeds_desktop.models import Dispense
from getmeds_desktop.services import dispensing, inventory, settings
from getmeds_desktop.services.dispensing import DispenseRequest
from getmeds_desktop.services.errors import InvalidState, ValidationError
from tests.unit.helpers import nothing_written

NDC = "12345-678-90"  # 5-3-2: 11 digits 12345067890, in a barcode as 1234567890


def gs1(lot: str | None, expiry: dt.date | None) -> str:
    """A GS1 DataMatrix as a scanner sends it (raw, with group separators)."""
    body = "0" + "03" + "1234567890"
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(body))
    text = "01" + body + str((10 - total % 10) % 10)
    if expiry is not None:
        text += f"17{expiry:%y%m%d}"
    if lot is not None:
        text += f"10{lot}\x1d"
    return text + "21SERIAL42"


@pytest.fixture
def shelf(world, today):
    p = world.product("Scanolol", ndc=NDC)
    soon = world.receive(p.id, 10, lot="SOON", days=60)
    later = world.receive(p.id, 10, lot="LATER", days=300)
    rx = world.rx(world.patient().id, p.id, quantity=5)
    return p, rx, inventory.get_lot(world.sf, soon.lot_id), inventory.get_lot(world.sf,
                                                                            later.lot_id)


def fill(world, rx, **kw):
    return dispensing.dispense(world.sf, world.pharmacist,
                               DispenseRequest(rx.id, uuid.uuid4(), **kw))


def stored(world, dispense_id):
    with world.sf() as s:
        return s.get(Dispense, dispense_id)


def test_a_scan_of_another_product_is_refused_by_the_service(world, shelf):
    p, rx, *_ = shelf
    other = world.product("Notscanolol")
    with nothing_written(world.sf), pytest.raises(ValidationError, match="Wrong product"):
        fill(world, rx, scan=other.ndc_display)


def test_the_scanned_lot_is_the_one_dispensed_and_the_scan_is_kept(world, shelf):
    p, rx, soon, later = shelf
    r = fill(world, rx, scan=gs1("LATER", later.expiry_date))
    assert [(a.lot_number, a.quantity) for a in r.allocations] == [("LATER", 5)]  # not FEFO
    d = stored(world, r.dispense_id)
    assert (d.scan_ndc, d.scan_lot, d.scan_expiry) == ("12345067890", "LATER",
                                                       later.expiry_date)
    assert d.scan_gtin == "00312345678906" and "<GS>" in d.scan_text and d.no_scan_reason is None


def test_a_scan_without_a_lot_leaves_the_allocation_first_expiring_first(world, shelf):
    p, rx, soon, later = shelf
    r = fill(world, rx, scan=NDC)
    assert [a.lot_number for a in r.allocations] == ["SOON"]
    assert stored(world, r.dispense_id).scan_text == NDC


@pytest.mark.parametrize("case, fragment", [
    ("unknown", "is not in stock here"),
    ("quarantined", "is quarantined"),
    ("recalled", "is recalled"),
    ("expiry", "recorded with"),
    ("expired package", "expired on"),
])
def test_a_scanned_lot_that_may_not_be_dispensed_is_refused(world, shelf, today, case,
                                                            fragment):
    p, rx, soon, later = shelf
    if case == "unknown":
        scan = gs1("NOSUCH", later.expiry_date)
    elif case in ("quarantined", "recalled"):
        inventory.set_lot_status(world.sf, world.pharmacist, later.id, case, "Supplier notice")
        scan = gs1("LATER", later.expiry_date)
    elif case == "expiry":
        scan = gs1("LATER", later.expiry_date + dt.timedelta(days=31))
    else:
        scan = gs1("LATER", today - dt.timedelta(days=1))
    with nothing_written(world.sf), pytest.raises((ValidationError, InvalidState),
                                                  match=fragment):
        fill(world, rx, scan=scan)
    preview = dispensing.preview_dispense(world.sf, world.pharmacist, rx.id, scan=scan)
    assert preview.scan_problem is not None and fragment in preview.scan_problem


def test_no_scan_needs_a_reason_which_is_kept(world, shelf):
    p, rx, *_ = shelf
    with nothing_written(world.sf), pytest.raises(ValidationError, match="give the reason"):
        fill(world, rx)
    r = fill(world, rx, no_scan_reason="Barcode torn; NDC read off the box")
    d = stored(world, r.dispense_id)
    assert d.scan_text is None and d.no_scan_reason == "Barcode torn; NDC read off the box"


def test_a_pharmacy_may_require_a_scan_for_every_fill(world, shelf):
    p, rx, *_ = shelf
    s = settings.get_settings(world.sf)
    settings.update_settings(world.sf, world.admin, {"scan_required": True},
                             expected_version=s.version)
    with nothing_written(world.sf), pytest.raises(InvalidState, match="requires a scan"):
        fill(world, rx, no_scan_reason="Barcode torn")
    assert dispensing.preview_dispense(world.sf, world.pharmacist, rx.id).scan_required
    assert fill(world, rx, scan=NDC).quantity == 5


def test_the_preview_says_what_the_service_makes_of_a_scan(world, shelf):
    p, rx, soon, later = shelf
    ok = dispensing.preview_dispense(world.sf, world.pharmacist, rx.id,
                                     scan=gs1("LATER", later.expiry_date))
    assert ok.scan_problem is None and "lot LATER" in ok.scanned
    assert [a.lot_number for a in ok.allocations] == ["LATER"]
