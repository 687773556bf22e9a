"""Another package of the same drug when the prescribed one is out: offered,
dispensed from its own lots, recorded; never for dispense-as-written, never
another drug."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa

from getmeds_desktop import db
from getmeds_desktop.models import Dispense, StockLot, StockMovement
from getmeds_desktop.services import clock, dispensing, prescriptions
from getmeds_desktop.services.dispensing import DispenseRequest
from getmeds_desktop.services.errors import InvalidState, ValidationError
from getmeds_desktop.services.prescriptions import PrescriptionDraft
from tests.fixtures.data import NO_SCAN


def _drug(world, ndc: str, strength: str = "10 mg"):
    return world.product("Lisinopril", strength=strength, dosage_form="tablet", ndc=ndc,
                         ingredients=None)


def _setup(world, *, daw: bool = False, labeler: int = 1):
    prescribed = _drug(world, f"1111{labeler}-0001-01")
    other_pack = _drug(world, f"2222{labeler}-0002-02")
    other_strength = _drug(world, f"3333{labeler}-0003-03", strength="20 mg")
    world.receive(other_pack.id, 50, lot="OP-1")
    world.receive(other_strength.id, 50, lot="OS-1")
    pat = world.patient()
    rx = prescriptions.create_prescription(world.sf, world.pharmacist, PrescriptionDraft(
        patient_id=pat.id, prescriber_id=world.prescriber_id, product_id=prescribed.id,
        sig="Take 1 daily", quantity=30, days_supply=30, daw=daw,
        date_written=clock.today()))
    return rx, prescribed, other_pack, other_strength


def test_the_same_drug_in_another_package_is_offered_and_recorded(world):
    rx, prescribed, other_pack, other_strength = _setup(world)
    preview = dispensing.preview_dispense(world.sf, world.pharmacist, rx.id)
    assert preview.available == 0
    assert [s.product_id for s in preview.substitutes] == [other_pack.id]  # not 20 mg
    instead = dispensing.preview_dispense(world.sf, world.pharmacist, rx.id,
                                          substitute=other_pack.id)
    assert instead.available == 50 and instead.substitute.product_id == other_pack.id
    assert [a.lot_number for a in instead.allocations] == ["OP-1"]
    # the scan must be the package dispensed
    with pytest.raises(ValidationError, match="Wrong product"):
        dispensing.dispense(world.sf, world.pharmacist, DispenseRequest(
            rx.id, uuid.uuid4(), scan=prescribed.ndc, substitute_product_id=other_pack.id))
    done = dispensing.dispense(world.sf, world.pharmacist, DispenseRequest(
        rx.id, uuid.uuid4(), scan=other_pack.ndc, substitute_product_id=other_pack.id))
    assert done.quantity == 30
    with db.read_session(world.sf) as s:
        assert s.get(Dispense, done.dispense_id).dispensed_product_id == other_pack.id
        lots = s.scalars(sa.select(StockLot.product_id).join(
            StockMovement, StockMovement.lot_id == StockLot.id).where(
            StockMovement.dispense_id == done.dispense_id)).all()
        assert set(lots) == {other_pack.id}


def test_another_drug_or_a_dispense_as_written_prescription_is_refused(world):
    rx, _prescribed, other_pack, other_strength = _setup(world)
    with pytest.raises(ValidationError, match="same ingredients, strength and dosage form"):
        dispensing.dispense(world.sf, world.pharmacist, DispenseRequest(
            rx.id, uuid.uuid4(), no_scan_reason=NO_SCAN,
            substitute_product_id=other_strength.id))
    daw, _p, pack, _s = _setup(world, daw=True, labeler=2)
    assert dispensing.preview_dispense(world.sf, world.pharmacist, daw.id).substitutes == ()
    with pytest.raises(InvalidState, match="dispense as written"):
        dispensing.dispense(world.sf, world.pharmacist, DispenseRequest(
            daw.id, uuid.uuid4(), no_scan_reason=NO_SCAN, substitute_product_id=pack.id))
