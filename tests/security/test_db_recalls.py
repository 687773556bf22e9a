"""The recall worklist's records, whatever a staff login types into psql
(migration 0017): a notice is in the login's own name, at the server's time,
for a lot that is recalled and a fill that took stock from it, and says what
was said; notices are never changed or removed. The same rules are in
services/recalls.py, which explains them on the screen."""

from __future__ import annotations

import uuid

from getmeds_desktop.services import dispensing
from getmeds_desktop.services.dispensing import DispenseRequest
from tests.fixtures.data import NO_SCAN

from .conftest import Pharmacy, refused

NOTICE = ("INSERT INTO recall_notices (id, lot_id, dispense_id, method, outcome, notified_by, "
          "notified_at) VALUES (%(id)s, %(lot)s, %(dispense)s, 'phone', %(outcome)s, %(by)s, "
          "%(at)s)")


def _filled(ph: Pharmacy, name: str):
    w = ph.world
    product, lot = ph.stocked(name, 20)
    other = w.receive(product.id, 20, lot=f"{name[:6].upper()}-2", days=500).lot_id
    d = dispensing.dispense(w.sf, w.pharmacist, DispenseRequest(
        ph.rx(product.id, quantity=5).id, uuid.uuid4(), no_scan_reason=NO_SCAN))
    return lot, other, d.dispense_id


def test_a_notice_is_for_a_recalled_lot_and_a_fill_that_took_from_it(pharmacy: Pharmacy):
    w = pharmacy.world
    lot, other, dispense = _filled(pharmacy, "Recallsec")
    params = {"id": uuid.uuid4(), "lot": lot, "dispense": dispense, "outcome": "Told by phone",
              "by": w.clerk.staff_id, "at": "2020-01-01T00:00:00Z"}
    with pharmacy.login(w.clerk) as c:
        # the lot is not recalled (yet)
        refused(c, NOTICE, params, match="for a recalled lot")
        pharmacy.q("UPDATE stock_lots SET status = 'recalled' WHERE id IN (%s, %s)",
                   (lot, other))
        # a fill that did not take stock from this lot
        refused(c, NOTICE, dict(params, lot=other), match="took stock from the lot")
        # nothing said
        refused(c, NOTICE, dict(params, outcome="   "), match="says what was said")
        # in another's name
        refused(c, NOTICE, dict(params, by=w.pharmacist.staff_id),
                match="signed-in staff member's own id")
        c.execute(NOTICE, params)
        c.commit()
        # at the server's time, not the one given; and a record for good
        assert pharmacy.one("SELECT notified_at > now() - interval '1 hour' FROM "
                            "recall_notices WHERE id = %s", (params["id"],)) is True
        refused(c, "UPDATE recall_notices SET outcome = 'Not told' WHERE id = %s",
                (params["id"],))
        refused(c, "DELETE FROM recall_notices WHERE id = %s", (params["id"],))
    with pharmacy.login(w.doctor) as c:  # a doctor keeps no recall worklist
        refused(c, NOTICE, dict(params, id=uuid.uuid4(), by=w.doctor.staff_id))
    assert pharmacy.one("SELECT count(*) FROM recall_notices WHERE lot_id = %s", (lot,)) == 1
