"""A recalled lot traced to the patients who received it, from the lot the fill
actually took (the scanned lot first), and the worklist of telling them
(issue: recalls traced to patients)."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa

from getmeds_desktop.enums import FillStatus, LotStatus
from getmeds_desktop.models import RecallNotice
from getmeds_desktop.services import dispensing, fills, inventory, recalls
from getmeds_desktop.services.errors import InvalidState, PermissionDenied, ValidationError
from tests.fixtures.data import NO_SCAN


def _fill(world, rx_id, scan=None):
    return dispensing.dispense(world.sf, world.technician, dispensing.DispenseRequest(
        rx_id, uuid.uuid4(), scan=scan, no_scan_reason=None if scan else NO_SCAN))


def test_the_patients_who_received_a_lot_and_their_notices(world):
    p = world.product("Recallpril", ndc="12345-0777-01")
    early = world.receive(p.id, 10, lot="RC-EARLY", days=60).lot_id
    late = world.receive(p.id, 100, lot="RC-LATE", days=400).lot_id
    ann = world.patient("Ann", "Early", phone="518-555-0101", address_line="1 Main St",
                        city="Albany", state="NY", postal_code="12207")
    bob = world.patient("Bob", "Scanned")
    cal = world.patient("Cal", "Waiting")
    dee = world.patient("Dee", "Returned")
    # FEFO takes RC-EARLY for Ann; Bob's scan names RC-LATE; Cal's fill waits for
    # verification; Dee's fill of RC-LATE went back to stock
    a = _fill(world, world.rx(ann.id, p.id, quantity=10).id)
    b = _fill(world, world.rx(bob.id, p.id, quantity=5).id,
              scan="(01)00312345077716(10)RC-LATE")
    c = _fill(world, world.rx(cal.id, p.id, quantity=5).id)
    d = _fill(world, world.rx(dee.id, p.id, quantity=5).id)
    for x in (a, b, d):
        fills.verify(world.sf, world.pharmacist, x.dispense_id)
    fills.release(world.sf, world.clerk, a.dispense_id, counseling="declined")
    fills.release(world.sf, world.clerk, b.dispense_id, counseling="declined")
    fills.return_to_stock(world.sf, world.pharmacist, d.dispense_id, "not_picked_up")
    inventory.set_lot_status(world.sf, world.pharmacist, late, LotStatus.RECALLED,
                             "FDA class II recall")
    got = recalls.recipients(world.sf, world.pharmacist, late)
    by_patient = {r.patient: r for r in got.rows}
    assert set(by_patient) == {"Scanned, Bob", "Waiting, Cal", "Returned, Dee"}
    assert by_patient["Scanned, Bob"].to_contact
    assert by_patient["Waiting, Cal"].not_handed_out  # pull it before it is handed out
    assert by_patient["Returned, Dee"].returned and not by_patient["Returned, Dee"].to_contact
    assert got.outstanding == 1 and (got.status, got.reason) == (LotStatus.RECALLED,
                                                                 "FDA class II recall")
    first = recalls.recipients(world.sf, world.pharmacist, early).rows
    assert [(r.patient, r.phone, r.address) for r in first] == [
        ("Early, Ann", "518-555-0101", "1 Main St, Albany, NY 12207")]
    # the worklist
    with pytest.raises(InvalidState, match="not recalled"):
        recalls.record_notice(world.sf, world.clerk, early, a.dispense_id, "phone", "told")
    with pytest.raises(ValidationError, match="took nothing"):
        recalls.record_notice(world.sf, world.clerk, late, a.dispense_id, "phone", "told")
    with pytest.raises(ValidationError):
        recalls.record_notice(world.sf, world.clerk, late, b.dispense_id, "pigeon", "told")
    with pytest.raises(ValidationError):
        recalls.record_notice(world.sf, world.clerk, late, b.dispense_id, "phone", "  ")
    with pytest.raises(PermissionDenied):
        recalls.record_notice(world.sf, world.doctor, late, b.dispense_id, "phone", "told")
    recalls.record_notice(world.sf, world.clerk, late, b.dispense_id, "phone",
                          "Told to stop taking it and bring it back; replacement ready")
    again = {r.patient: r for r in recalls.recipients(world.sf, world.pharmacist, late).rows}
    bob_row = again["Scanned, Bob"]
    assert bob_row.notified and not bob_row.to_contact
    assert [(n.method, n.by) for n in bob_row.notices] == [("phone", "Test Clerk")]
    assert recalls.recipients(world.sf, world.pharmacist, late).outstanding == 0
    assert by_patient["Waiting, Cal"].fill_status is FillStatus.FILLED
    # the notices stay
    with pytest.raises(sa.exc.DBAPIError, match="permanent"), world.sf.begin() as s:
        s.execute(sa.update(RecallNotice).values(outcome="rewritten"))
    del c


def test_the_recall_worklist_pdf(world, tmp_path):
    from pypdf import PdfReader

    from getmeds_desktop.reports import ReportParams, generate
    from getmeds_desktop.services.errors import ValidationError as Invalid

    p = world.product("Recallworklist")
    lot = world.receive(p.id, 50, lot="RW-1").lot_id
    told = world.patient("Tia", "Told", phone="518-555-0199")
    open_ = world.patient("Ola", "Open")
    a = _fill(world, world.rx(told.id, p.id, quantity=5).id)
    b = _fill(world, world.rx(open_.id, p.id, quantity=5).id)
    for x in (a, b):
        fills.verify(world.sf, world.pharmacist, x.dispense_id)
        fills.release(world.sf, world.clerk, x.dispense_id, counseling="declined")
    inventory.set_lot_status(world.sf, world.pharmacist, lot, LotStatus.RECALLED, "Class I")
    recalls.record_notice(world.sf, world.pharmacist, lot, a.dispense_id, "phone",
                          "Told to stop; bringing it back")
    with pytest.raises(Invalid, match="lot"):
        generate(world.sf, world.pharmacist, "recall", ReportParams(), tmp_path / "x.pdf")
    out = tmp_path / "recall.pdf"
    generate(world.sf, world.pharmacist, "recall", ReportParams(lot_id=lot), out)
    text = " ".join(" ".join(pg.extract_text() for pg in PdfReader(str(out)).pages).split())
    assert "Recall worklist" in text and "RW-1" in text and "Class I" in text
    assert "Told, Tia" in text and "518-555-0199" in text and "Told to stop" in text
    assert "Open, Ola" in text and "TO CONTACT" in text
    assert "Not yet told: 1" in text


def test_a_patient_with_two_fills_of_the_lot_is_told_once(world):
    p = world.product("Recalltwice")
    lot = world.receive(p.id, 50, lot="RT-1").lot_id
    pat = world.patient("Twy", "Twice")
    one = _fill(world, world.rx(pat.id, p.id, quantity=5).id)
    rx2 = world.rx(pat.id, p.id, quantity=5).id
    warned = dispensing.preview_dispense(world.sf, world.pharmacist, rx2).warnings
    two = dispensing.dispense(world.sf, world.pharmacist, dispensing.DispenseRequest(
        rx2, uuid.uuid4(), no_scan_reason=NO_SCAN, acknowledgements={
            w.key: "prescriber_consulted: a second supply for the holiday" for w in warned}))
    for x, verifier in ((one, world.pharmacist), (two, world.pharmacist2)):
        fills.verify(world.sf, verifier, x.dispense_id)
        fills.release(world.sf, world.clerk, x.dispense_id, counseling="declined")
    inventory.set_lot_status(world.sf, world.pharmacist, lot, LotStatus.RECALLED, "Class II")
    got = recalls.recipients(world.sf, world.pharmacist, lot)
    assert (got.patients, got.outstanding, len(got.rows)) == (1, 1, 2)
    recalls.record_notice(world.sf, world.clerk, lot, one.dispense_id, "phone", "told")
    got = recalls.recipients(world.sf, world.pharmacist, lot)
    assert (got.patients, got.outstanding) == (1, 0)
    assert all(r.patient_told and not r.to_contact for r in got.rows)
