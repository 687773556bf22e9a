"""The audit trail as a manager reads it: filters, changes in words, exports."""

from __future__ import annotations

import csv
import datetime as dt
import uuid

import pytest

from getmeds_desktop.services import audit, clock, dispensing
from getmeds_desktop.services.errors import PermissionDenied, ValidationError


@pytest.fixture
def story(world):
    amox = world.product("Amoxicillin", classes=("Penicillin-class Antibacterial [EPC]",))
    other = world.product("Otherdrug")
    for p in (amox, other):
        world.receive(p.id, 100)
    ann = world.patient("Ann", "Audited", allergies=("Penicillin",))
    bob = world.patient("Bob", "Bystander")
    rx = world.rx(ann.id, amox.id)
    key = dispensing.preview_dispense(world.sf, world.pharmacist, rx.id).warnings[0].key
    dispensing.dispense(world.sf, world.pharmacist, dispensing.DispenseRequest(
        rx.id, uuid.uuid4(), no_scan_reason="label torn", acknowledgements={
            key: dispensing.Override("prescriber_consulted", "Dr Lee said tolerated before")}))
    world.rx(bob.id, other.id)
    return world, ann, bob, rx, amox


def _filter(**kw) -> audit.AuditFilter:
    today = clock.today()
    return audit.AuditFilter(today - dt.timedelta(days=1), today + dt.timedelta(days=1), **kw)


def test_a_patients_changes_in_words(story):
    world, ann, bob, rx, _ = story
    page = audit.audit_page(world.sf, world.admin, _filter(patient_id=ann.id))
    whats = {r.what for r in page.rows}
    assert "Patient Ann Audited" in whats and f"Prescription Rx {rx.rx_number}" in whats
    assert f"Dispense Rx {rx.rx_number} original fill" in whats
    assert not any("Bystander" in w for w in whats)
    override = next(r for r in page.rows if r.what.startswith("Safety warning override"))
    text = override.changes_text
    assert "reason code: prescriber_consulted" in text and "Dr Lee said" in text
    assert f"acknowledged by: Test Pharmacist ({world.pharmacist.username})" in text
    changed = next(r for r in page.rows if r.action == "Changed"
                   and r.what == f"Prescription Rx {rx.rx_number}")
    assert "status: new -> dispensed" in changed.changes
    assert page.total == len(page.rows)


def test_filters_by_prescription_product_staff_and_table(story):
    world, ann, bob, rx, amox = story
    by_rx = audit.audit_page(world.sf, world.admin, _filter(prescription_id=rx.id)).rows
    assert by_rx and all(f"Rx {rx.rx_number}" in r.what or r.what.startswith(
        ("Safety warning", "Stock movement")) for r in by_rx)
    by_product = audit.audit_page(world.sf, world.admin, _filter(product_id=amox.id)).rows
    assert any(r.what.startswith("Stock lot ") and "of Amoxicillin" in r.what for r in by_product)
    assert not any("Otherdrug" in r.what for r in by_product)
    clerk_rows = audit.audit_page(world.sf, world.admin,
                                  _filter(staff=world.clerk.username)).rows
    assert clerk_rows and {r.what.split()[0] for r in clerk_rows} <= {"Patient", "Allergy"}
    only = audit.audit_page(world.sf, world.admin, _filter(table="dispense_warnings")).rows
    assert len(only) == 1


def test_csv_export_and_refusals(story, tmp_path):
    world, ann, *_ = story
    out = tmp_path / "audit.csv"
    n = audit.export_csv(world.sf, world.admin, _filter(patient_id=ann.id), out)
    with open(out, encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    assert rows[0][:2] == ["when", "who"] and len(rows) == n + 1
    with pytest.raises(ValidationError, match="cannot be written"):
        audit.export_csv(world.sf, world.admin, _filter(), tmp_path)  # a folder
    with pytest.raises(PermissionDenied):
        audit.audit_page(world.sf, world.pharmacist, _filter())
    with pytest.raises(ValidationError, match="before its start"):
        audit.audit_page(world.sf, world.admin, audit.AuditFilter(
            clock.today(), clock.today() - dt.timedelta(days=1)))
    with pytest.raises(ValidationError, match="not an audited table"):
        audit.audit_page(world.sf, world.admin, _filter(table="staff_credentials"))
