"""Prescription rules: the legal checks at entry, who may edit, the status flow,
validity at fill time, and optimistic locking."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid

import pytest

from getmeds_desktop.models import RxStatus, Schedule
from getmeds_desktop.services import clock, prescriptions, settings
from getmeds_desktop.services.errors import (
    InvalidState,
    NotFound,
    PermissionDenied,
    StaleEdit,
    ValidationError,
)
from getmeds_desktop.services.prescriptions import PrescriptionDraft, RxAction
from tests.fixtures.clock import RUN_DAY as TODAY
from tests.unit.helpers import nothing_written


def draft(world, patient_id, product_id, **kw) -> PrescriptionDraft:
    values = dict(patient_id=patient_id, prescriber_id=world.prescriber_id, product_id=product_id,
                  sig="Take 1 tablet by mouth twice daily", quantity=60, days_supply=30,
                  refills_authorized=2, date_written=TODAY)
    values.update(kw)
    return PrescriptionDraft(**values)


def test_create_gives_sequential_rx_numbers(world):
    pat, prod = world.patient(), world.product()
    a = prescriptions.create_prescription(world.sf, world.clerk, draft(world, pat.id, prod.id))
    b = prescriptions.create_prescription(world.sf, world.pharmacist, draft(world, pat.id, prod.id))
    assert b.rx_number > a.rx_number >= 100001
    assert (a.status, a.refills_left, a.fills) == (RxStatus.NEW, 2, 0)
    assert a.expires_on == clock.add_months(TODAY, 12)
    assert a.patient_name == pat.full_name


@pytest.mark.parametrize(
    ("schedule", "change", "message"),
    [
        (Schedule.NONE, {"quantity": 0}, "Quantity must be more than zero"),
        (Schedule.NONE, {"days_supply": 0}, "Days supply must be more than zero"),
        (Schedule.NONE, {"sig": ""}, "Directions"),
        (Schedule.NONE, {"date_written": TODAY + dt.timedelta(days=1)}, "cannot be in the future"),
        (Schedule.NONE, {"date_written": TODAY - dt.timedelta(days=400)}, "expired on"),
        (Schedule.IV, {"date_written": TODAY - dt.timedelta(days=200)}, "expired on"),
        (Schedule.II, {"refills_authorized": 1}, "Schedule II prescriptions cannot have refills"),
        (Schedule.III, {"refills_authorized": 6}, "at most 5 refills"),
        (Schedule.V, {"refills_authorized": 6}, "at most 5 refills"),
        (Schedule.II, {"prescriber": "no_dea"}, "has no DEA number"),
        (Schedule.NONE, {"patient_id": None}, "Choose the patient"),
    ],
)
def test_create_refusals(world, schedule, change, message):
    pat, prod = world.patient(), world.product("Drug X", schedule=schedule)
    change = dict(change)
    if change.pop("prescriber", None):
        change["prescriber_id"] = world.no_dea_prescriber_id
    d = dataclasses.replace(draft(world, pat.id, prod.id, refills_authorized=0), **change)
    with nothing_written(world.sf), pytest.raises(ValidationError, match=message):
        prescriptions.create_prescription(world.sf, world.pharmacist, d)


def test_controlled_rules_allow_the_legal_cases(world):
    pat = world.patient()
    c2 = world.product("Oxycodone", schedule=Schedule.II)
    c4 = world.product("Alprazolam", schedule=Schedule.IV)
    prescriptions.create_prescription(world.sf, world.pharmacist,
                                      draft(world, pat.id, c2.id, refills_authorized=0))
    rx = prescriptions.create_prescription(world.sf, world.pharmacist, draft(
        world, pat.id, c4.id, refills_authorized=5, date_written=TODAY - dt.timedelta(days=150)))
    assert rx.expires_on == clock.add_months(rx.date_written, 6)
    # non-controlled from a prescriber without DEA is fine
    prescriptions.create_prescription(world.sf, world.pharmacist, draft(
        world, pat.id, world.product().id, prescriber_id=world.no_dea_prescriber_id))


def test_unknown_references_are_refused(world):
    pat = world.patient()
    with pytest.raises(NotFound, match="product"):
        prescriptions.create_prescription(world.sf, world.pharmacist,
                                          draft(world, pat.id, uuid.uuid4()))


def test_doctor_writes_only_as_themselves(world):
    pat, prod = world.patient(), world.product()
    with nothing_written(world.sf), pytest.raises(PermissionDenied, match="as themselves"):
        prescriptions.create_prescription(world.sf, world.doctor, draft(world, pat.id, prod.id))
    rx = prescriptions.create_prescription(world.sf, world.doctor, draft(
        world, pat.id, prod.id, prescriber_id=world.doctor.prescriber_id))
    assert rx.prescriber_id == world.doctor.prescriber_id


def test_request_id_makes_create_idempotent(world):
    pat, prod = world.patient(), world.product()
    rid = uuid.uuid4()
    a = prescriptions.create_prescription(world.sf, world.clerk, draft(world, pat.id, prod.id),
                                          request_id=rid)
    with nothing_written(world.sf):
        b = prescriptions.create_prescription(world.sf, world.clerk,
                                              draft(world, pat.id, prod.id), request_id=rid)
    assert a.id == b.id and a.rx_number == b.rx_number


def test_who_may_edit_a_new_prescription(world):
    pat, prod = world.patient(), world.product()
    own = prescriptions.create_prescription(world.sf, world.doctor, draft(
        world, pat.id, prod.id, prescriber_id=world.doctor.prescriber_id))
    other = prescriptions.create_prescription(world.sf, world.pharmacist,
                                              draft(world, pat.id, prod.id))
    new = dataclasses.replace(own.draft(), quantity=90)
    edited = prescriptions.update_prescription(world.sf, world.doctor, own.id, new,
                                               expected_version=own.version)
    assert edited.quantity == 90 and edited.version == own.version + 1
    with pytest.raises(PermissionDenied, match="you wrote"):
        prescriptions.update_prescription(world.sf, world.doctor, other.id, other.draft(),
                                          expected_version=other.version)
    with pytest.raises(PermissionDenied):
        prescriptions.update_prescription(world.sf, world.clerk, other.id, other.draft(),
                                          expected_version=other.version)
    edited2 = prescriptions.update_prescription(
        world.sf, world.pharmacist, other.id, dataclasses.replace(other.draft(), sig="1 tab qd"),
        expected_version=other.version)
    assert edited2.sig == "1 tab qd"
    # once the pharmacy works on it, the doctor can no longer change or cancel it
    started = prescriptions.change_status(world.sf, world.pharmacist, own.id, RxAction.START)
    with pytest.raises(PermissionDenied, match="only while it is new"):
        prescriptions.change_status(world.sf, world.doctor, own.id, RxAction.CANCEL, reason="x")
    with pytest.raises(InvalidState, match="only a new prescription"):
        prescriptions.update_prescription(world.sf, world.pharmacist, own.id, started.draft(),
                                          expected_version=started.version)


def test_stale_edit_is_refused_with_who_and_when(world):
    pat, prod = world.patient(), world.product()
    rx = prescriptions.create_prescription(world.sf, world.pharmacist,
                                           draft(world, pat.id, prod.id))
    prescriptions.update_prescription(world.sf, world.admin, rx.id,
                                      dataclasses.replace(rx.draft(), quantity=10),
                                      expected_version=rx.version)
    with nothing_written(world.sf), pytest.raises(StaleEdit) as err:
        prescriptions.update_prescription(world.sf, world.pharmacist, rx.id,
                                          dataclasses.replace(rx.draft(), quantity=20),
                                          expected_version=rx.version)
    assert f"changed by {world.admin.username} at" in str(err.value)
    assert prescriptions.get_prescription(world.sf, world.pharmacist, rx.id).quantity == 10


def test_status_flow(world):
    pat, prod = world.patient(), world.product()
    rx = prescriptions.create_prescription(world.sf, world.clerk, draft(world, pat.id, prod.id))
    with pytest.raises(PermissionDenied):
        prescriptions.change_status(world.sf, world.clerk, rx.id, RxAction.START)
    rx = prescriptions.change_status(world.sf, world.pharmacist, rx.id, RxAction.START)
    assert rx.status is RxStatus.IN_PROGRESS
    rx = prescriptions.change_status(world.sf, world.pharmacist, rx.id, RxAction.READY)
    assert rx.status is RxStatus.READY_FOR_CHECK
    rx = prescriptions.change_status(world.sf, world.pharmacist, rx.id, RxAction.HOLD,
                                     reason="Waiting for prior authorisation")
    assert rx.status is RxStatus.ON_HOLD and "prior authorisation" in rx.notes
    with pytest.raises(InvalidState):
        prescriptions.change_status(world.sf, world.pharmacist, rx.id, RxAction.START)
    rx = prescriptions.change_status(world.sf, world.pharmacist, rx.id, RxAction.RELEASE)
    assert rx.status is RxStatus.NEW
    with pytest.raises(ValidationError, match="reason"):
        prescriptions.change_status(world.sf, world.pharmacist, rx.id, RxAction.CANCEL)
    rx = prescriptions.change_status(world.sf, world.pharmacist, rx.id, RxAction.CANCEL,
                                     reason="Patient changed pharmacy")
    assert rx.status is RxStatus.CANCELLED
    with pytest.raises(InvalidState, match="already cancelled"):
        prescriptions.change_status(world.sf, world.pharmacist, rx.id, RxAction.CANCEL,
                                    reason="again")


@pytest.mark.parametrize(
    ("schedule", "days_later", "fillable"),
    [
        (Schedule.IV, 150, True),
        (Schedule.IV, 190, False),  # more than 6 months after written
        (Schedule.II, 190, True),
        (Schedule.NONE, 300, True),
        (Schedule.NONE, 370, False),  # more than a year
    ],
)
def test_validity_at_fill_time(world, schedule, days_later, fillable):
    pat, prod = world.patient(), world.product("Drug Y", schedule=schedule)
    rx = prescriptions.create_prescription(world.sf, world.pharmacist,
                                           draft(world, pat.id, prod.id, refills_authorized=0))
    day = TODAY + dt.timedelta(days=days_later)
    problem = prescriptions.fill_problem(rx, day)
    assert (problem is None) == fillable
    if not fillable:
        assert "expired on" in problem


def test_validity_limits_are_settings(world):
    pat, prod = world.patient(), world.product("Drug Z", schedule=Schedule.III)
    s = settings.get_settings(world.sf)
    settings.update_settings(world.sf, world.admin, {"controlled_validity_months": 3},
                             expected_version=s.version)
    with pytest.raises(ValidationError, match="expired on"):
        prescriptions.create_prescription(world.sf, world.pharmacist, draft(
            world, pat.id, prod.id, refills_authorized=0,
            date_written=TODAY - dt.timedelta(days=100)))


def test_a_setting_cannot_make_schedule_iii_v_valid_longer_than_six_months(world):
    """21 CFR 1306.22(a): six months from the date written; a setting can only
    shorten it. A database of an earlier version that holds twelve is read as six."""
    import sqlalchemy as sa

    from getmeds_desktop.models import AppSettings

    s = settings.get_settings(world.sf)
    for months in (7, 12):
        with pytest.raises(ValidationError, match=r"at most 6 months .*1306\.22\(a\)"):
            settings.update_settings(world.sf, world.admin,
                                     {"controlled_validity_months": months},
                                     expected_version=s.version)
    with world.sf.begin() as session:  # as an earlier version allowed
        session.execute(sa.update(AppSettings).values(controlled_validity_months=12))
    assert settings.get_settings(world.sf).controlled_validity_months == 6
    pat = world.patient()
    for schedule in (Schedule.III, Schedule.IV, Schedule.V):
        prod = world.product(f"Drug {schedule.value}", schedule=schedule)
        with pytest.raises(ValidationError, match="expired on"):
            prescriptions.create_prescription(world.sf, world.pharmacist, draft(
                world, pat.id, prod.id, refills_authorized=0,
                date_written=clock.add_months(TODAY, -6) - dt.timedelta(days=1)))
    # other prescriptions keep their own setting
    plain = world.product("Drug plain")
    prescriptions.create_prescription(world.sf, world.pharmacist, draft(
        world, pat.id, plain.id, refills_authorized=0,
        date_written=clock.add_months(TODAY, -6) - dt.timedelta(days=1)))
