"""The DEA prescription rules in the prescription state and the services:
21 CFR 1306.12(b) (earliest fill date, a set of Schedule II prescriptions for
up to 90 days), 1306.13 (partial-fill reasons and their limits, the void
remainder and the prescriber notice), each part's own days supply, the NCPDP
DAW codes and electronic prescriptions. The database's side of them is in
tests/security/test_db_dea.py."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
import warnings

import pytest
import sqlalchemy as sa
from alembic import command

from getmeds_desktop import db
from getmeds_desktop.enums import PartialReason, RxStatus, Schedule
from getmeds_desktop.models import Dispense, Prescription
from getmeds_desktop.services import clock, dashboard, dispensing, prescriptions, rxstate
from getmeds_desktop.services.dispensing import DispenseRequest
from getmeds_desktop.services.errors import (
    InvalidState,
    PermissionDenied,
    ValidationError,
)
from getmeds_desktop.services.prescriptions import PrescriptionDraft
from getmeds_desktop.services.rxstate import RxState
from tests.fixtures.data import NO_SCAN, build_world

WRITTEN = dt.date(2026, 3, 1)
NOON = dt.datetime(2026, 3, 2, 12, tzinfo=dt.UTC)


def _state(**kw) -> RxState:
    base = dict(rx_number=1, status=RxStatus.PARTIALLY_DISPENSED, schedule=Schedule.II,
                quantity=30, refills_authorized=0, date_written=WRITTEN, owed_quantity=10,
                validity_months=12, last_fill=0, last_part=1,
                partial_reason=PartialReason.SHORTAGE, partial_started=NOON)
    return RxState(**(base | kw))  # type: ignore[arg-type]


def test_the_rest_of_a_shortage_is_void_72_hours_after_the_first_part():
    state = _state()
    limit = NOON + dt.timedelta(hours=72)
    assert state.remainder_limit == limit
    day = limit.astimezone().date()
    assert state.problem_kind(day, limit) is None
    assert state.problem_kind(day, limit + dt.timedelta(minutes=1)) == "partial_limit"
    assert "72 hours after the first part" in state.problem(day, limit + dt.timedelta(hours=1))
    assert "1306.13(a)" in state.problem(day + dt.timedelta(days=1))  # by the day alone


@pytest.mark.parametrize(("reason", "days"), [(PartialReason.PATIENT_REQUEST, 30),
                                              (PartialReason.LONG_TERM_CARE, 60),
                                              (PartialReason.TERMINALLY_ILL, 60)])
def test_requested_and_long_term_care_partial_fills_run_from_the_date_written(reason, days):
    state = _state(partial_reason=reason)
    last = WRITTEN + dt.timedelta(days=days)
    assert state.remainder_limit == last
    assert state.problem_kind(last) is None
    assert state.problem_kind(last + dt.timedelta(days=1)) == "partial_limit"
    assert f"{last:%Y-%m-%d}" in state.problem(last + dt.timedelta(days=1))


def test_limits_apply_to_schedule_ii_only_and_to_an_open_remainder():
    assert _state(schedule=Schedule.IV).remainder_limit is None
    assert not _state(schedule=Schedule.IV).remainder_void(dt.date(2027, 1, 1))
    done = _state(status=RxStatus.DISPENSED, owed_quantity=0)
    assert done.remainder_limit is None
    assert done.problem_kind(dt.date(2027, 1, 1)) == "no_refills"
    void = dataclasses.replace(done, remainder_void_at=NOON)
    assert void.problem_kind(dt.date(2026, 3, 3)) == "partial_limit"
    assert "declared void" in void.problem(dt.date(2026, 3, 3))


def test_no_fill_before_the_earliest_fill_date():
    state = _state(status=RxStatus.NEW, owed_quantity=0, last_fill=None, last_part=None,
                   partial_reason=None, partial_started=None, not_before=dt.date(2026, 4, 1))
    assert state.problem_kind(dt.date(2026, 3, 31)) == "not_before"
    assert "2026-04-01" in state.problem(dt.date(2026, 3, 31))
    assert "1306.12(b)" in state.problem(dt.date(2026, 3, 31))
    assert state.problem_kind(dt.date(2026, 4, 1)) is None


def test_a_part_has_its_own_days_supply():
    assert rxstate.proportional_days(30, 30, 10) == 10
    assert rxstate.proportional_days(30, 30, 30) == 30
    assert rxstate.proportional_days(15, 30, 7) == 4  # 3.5 rounds up
    assert rxstate.proportional_days(10, 120, 1) == 1  # never 0
    assert rxstate.proportional_days(30, 0, 5) == 30


def test_daw_codes_and_substitution():
    assert sorted(rxstate.DAW_CODES) == list(range(10))
    assert [c for c in range(10) if not rxstate.substitution_allowed(c)] == [1, 2, 7, 9]
    assert rxstate.daw_label(1) == "1 - Substitution not allowed by prescriber"


# ------------------------------------------------------------------ services


def _draft(world, product_id, **kw) -> PrescriptionDraft:
    base = dict(patient_id=kw.pop("patient_id", None) or world.patient().id,
                prescriber_id=world.prescriber_id, product_id=product_id, sig="Take 1 daily",
                quantity=30, days_supply=30, date_written=clock.today())
    return PrescriptionDraft(**(base | kw))


def test_a_prescription_records_its_daw_code_earliest_fill_date_and_how_it_arrived(world):
    product = world.product("Deacode", strength="10 mg", dosage_form="tablet")
    later = clock.today() + dt.timedelta(days=10)
    rx = prescriptions.create_prescription(world.sf, world.pharmacist, _draft(
        world, product.id, daw_code=2, not_before=later, electronic=False))
    assert (rx.daw_code, rx.daw, rx.not_before, rx.electronic) == (2, True, later, False)
    assert rx.daw_text == "2 - Substitution allowed - patient requested product dispensed"
    assert rx.state.problem_kind(clock.today()) == "not_before"
    # the old yes/no still means code 1 or 0; new prescriptions are electronic
    yes = prescriptions.create_prescription(world.sf, world.pharmacist,
                                            _draft(world, product.id, daw=True))
    no = prescriptions.create_prescription(world.sf, world.pharmacist,
                                           _draft(world, product.id, daw_code=3))
    assert (yes.daw_code, yes.daw, yes.electronic) == (1, True, True)
    assert (no.daw_code, no.daw) == (3, False)
    with db.read_session(world.sf) as s:
        assert s.get(Prescription, no.id).daw is False
    for bad in (10, -1):
        with pytest.raises(ValidationError, match="product-selection codes 0-9"):
            prescriptions.create_prescription(world.sf, world.pharmacist,
                                              _draft(world, product.id, daw_code=bad))
    with pytest.raises(ValidationError, match="before the date written") as exc:
        prescriptions.create_prescription(world.sf, world.pharmacist, _draft(
            world, product.id, not_before=clock.today() - dt.timedelta(days=1)))
    assert exc.value.field == "not_before"
    with pytest.raises(ValidationError, match="after the last day"):
        prescriptions.create_prescription(world.sf, world.pharmacist, _draft(
            world, product.id, not_before=clock.today() + dt.timedelta(days=400)))


def test_multiple_schedule_ii_prescriptions_total_at_most_90_days(world):
    product = world.product("Deaset", schedule=Schedule.II)
    patient = world.patient().id
    for weeks in (0, 4, 8):
        prescriptions.create_prescription(world.sf, world.pharmacist, _draft(
            world, product.id, patient_id=patient,
            not_before=clock.today() + dt.timedelta(weeks=weeks) if weeks else None))
    with pytest.raises(ValidationError, match="at most 90 days") as exc:
        prescriptions.create_prescription(world.sf, world.pharmacist, _draft(
            world, product.id, patient_id=patient, days_supply=1,
            not_before=clock.today() + dt.timedelta(weeks=12)))
    assert exc.value.field == "days_supply" and "1306.12(b)" in str(exc.value)
    # another day's prescription is not of the set
    prescriptions.create_prescription(world.sf, world.pharmacist, _draft(
        world, product.id, patient_id=patient,
        date_written=clock.today() - dt.timedelta(days=1)))


def test_only_the_prescriber_lets_it_be_filled_earlier(world):
    product = world.product("Deaearlier", schedule=Schedule.II)
    later = clock.today() + dt.timedelta(days=20)
    draft = _draft(world, product.id, not_before=later,
                   prescriber_id=world.doctor.prescriber_id)
    rx = prescriptions.create_prescription(world.sf, world.doctor, draft)
    earlier = dataclasses.replace(draft, not_before=later - dt.timedelta(days=5))
    with pytest.raises(PermissionDenied, match="Only the prescriber"):
        prescriptions.update_prescription(world.sf, world.pharmacist, rx.id, earlier,
                                          expected_version=rx.version)
    with pytest.raises(PermissionDenied, match="Only the prescriber"):
        prescriptions.update_prescription(world.sf, world.pharmacist, rx.id,
                                          dataclasses.replace(draft, not_before=None),
                                          expected_version=rx.version)
    done = prescriptions.update_prescription(world.sf, world.doctor, rx.id, earlier,
                                             expected_version=rx.version)
    assert done.not_before == later - dt.timedelta(days=5)


def test_a_fill_before_the_earliest_fill_date_is_refused(world):
    product = world.product("Deawait", schedule=Schedule.II)
    world.receive(product.id, 100)
    later = clock.today() + dt.timedelta(days=2)
    rx = prescriptions.create_prescription(world.sf, world.pharmacist,
                                           _draft(world, product.id, not_before=later))
    preview = dispensing.preview_dispense(world.sf, world.pharmacist, rx.id)
    assert preview.problem and "may not be filled before" in preview.problem
    with pytest.raises(InvalidState, match="may not be filled before"):
        dispensing.dispense(world.sf, world.pharmacist, DispenseRequest(
            rx.id, uuid.uuid4(), no_scan_reason=NO_SCAN))
    clock.pin(clock.now() + dt.timedelta(days=2))
    done = dispensing.dispense(world.sf, world.pharmacist, DispenseRequest(
        rx.id, uuid.uuid4(), no_scan_reason=NO_SCAN))
    assert done.quantity == 30


def test_a_schedule_ii_partial_fill_records_its_reason_and_its_days(world):
    product = world.product("Deapart", schedule=Schedule.II)
    world.receive(product.id, 100)
    rx = prescriptions.create_prescription(world.sf, world.pharmacist,
                                           _draft(world, product.id))
    with pytest.raises(ValidationError, match="say why it is filled in part") as exc:
        dispensing.dispense(world.sf, world.pharmacist, DispenseRequest(
            rx.id, uuid.uuid4(), quantity=10, no_scan_reason=NO_SCAN))
    assert exc.value.field == "partial_reason"
    first = dispensing.dispense(world.sf, world.pharmacist, DispenseRequest(
        rx.id, uuid.uuid4(), quantity=10, no_scan_reason=NO_SCAN,
        partial_reason=PartialReason.PATIENT_REQUEST))
    assert (first.owed_after, first.days_supply, first.partial_reason) == (
        20, 10, "patient_request")
    # a later part keeps the first part's reason, and its own days
    second = dispensing.dispense(world.sf, world.pharmacist, DispenseRequest(
        rx.id, uuid.uuid4(), quantity=5, no_scan_reason=NO_SCAN))
    last = dispensing.dispense(world.sf, world.pharmacist, DispenseRequest(
        rx.id, uuid.uuid4(), no_scan_reason=NO_SCAN))
    with db.read_session(world.sf) as s:
        rows = s.execute(sa.select(Dispense.part, Dispense.days_supply, Dispense.partial_reason)
                         .where(Dispense.prescription_id == rx.id)
                         .order_by(Dispense.part)).all()
    assert [tuple(r) for r in rows] == [(1, 10, "patient_request"), (2, 5, "patient_request"),
                                        (3, 15, None)]
    assert (second.owed_after, last.owed_after) == (15, 0)
    state = prescriptions.get_prescription(world.sf, world.pharmacist, rx.id).state
    assert state.partial_reason is PartialReason.PATIENT_REQUEST
    # the patient's dispense history shows each part's days and why it was partial
    info = prescriptions.get_prescription(world.sf, world.pharmacist, rx.id)
    history = dashboard.patient_dispenses(world.sf, world.pharmacist, info.patient_id)
    assert sorted((h.part, h.days_supply, h.owed_after, h.partial_reason) for h in history) == [
        (1, 10, 20, "patient_request"), (2, 5, 15, "patient_request"), (3, 15, 0, None)]


def test_a_fill_short_of_stock_is_a_shortage_and_its_rest_can_be_declared_void(world):
    product = world.product("Deashort", schedule=Schedule.II)
    world.receive(product.id, 12)
    rx = prescriptions.create_prescription(world.sf, world.pharmacist,
                                           _draft(world, product.id))
    part = dispensing.dispense(world.sf, world.pharmacist, DispenseRequest(
        rx.id, uuid.uuid4(), allow_partial=True, no_scan_reason=NO_SCAN))
    assert (part.quantity, part.owed_after, part.partial_reason, part.days_supply) == (
        12, 18, "shortage", 12)
    with pytest.raises(ValidationError, match="how and when the prescriber was notified"):
        prescriptions.void_remainder(world.sf, world.pharmacist, rx.id, "ok")
    info = prescriptions.void_remainder(world.sf, world.pharmacist, rx.id,
                                        "Phoned Dr Lee's office at 3 pm")
    assert (info.status, info.owed_quantity) == (RxStatus.DISPENSED, 0)
    assert info.prescriber_notice == "Phoned Dr Lee's office at 3 pm"
    assert "Remaining 18 void: Phoned Dr Lee's office" in (info.notes or "")
    assert info.state.problem_kind(clock.today()) == "partial_limit"
    with pytest.raises(InvalidState, match="declared void"):
        dispensing.dispense(world.sf, world.pharmacist, DispenseRequest(
            rx.id, uuid.uuid4(), no_scan_reason=NO_SCAN))
    with pytest.raises(InvalidState, match="nothing|no rest"):
        prescriptions.void_remainder(world.sf, world.pharmacist, rx.id, "Phoned again today")


def test_the_rest_of_a_shortage_after_72_hours_is_refused(world):
    product = world.product("Dealimit", schedule=Schedule.II)
    world.receive(product.id, 10)
    rx = prescriptions.create_prescription(world.sf, world.pharmacist,
                                           _draft(world, product.id))
    dispensing.dispense(world.sf, world.pharmacist, DispenseRequest(
        rx.id, uuid.uuid4(), allow_partial=True, no_scan_reason=NO_SCAN))
    world.receive(product.id, 50)
    clock.pin(clock.now() + dt.timedelta(hours=73))
    with pytest.raises(InvalidState, match="72 hours after the first part"):
        dispensing.dispense(world.sf, world.pharmacist, DispenseRequest(
            rx.id, uuid.uuid4(), no_scan_reason=NO_SCAN))


@pytest.mark.slow
def test_the_migration_turns_dispense_as_written_into_code_1(fresh_engine):
    """0016 on a database with prescriptions: DAW yes -> 1, no -> 0; and back (to 0015,
    which it follows)."""
    sf = db.session_factory(fresh_engine)
    world = build_world(sf)
    product = world.product("Deamigrate")
    yes = world.rx(world.patient().id, product.id)
    no = world.rx(world.patient().id, product.id)
    with fresh_engine.begin() as conn:
        conn.execute(sa.update(Prescription).where(Prescription.id == yes.id)
                     .values(daw=True, daw_code=1))
        with warnings.catch_warnings():
            # SQLite copies the tables (batch mode), reflecting what they refer to
            warnings.filterwarnings("ignore", message="Skipped unsupported reflection of "
                                    "expression-based index")
            command.downgrade(db.alembic_config(conn), "0015")
    with fresh_engine.begin() as conn:
        command.upgrade(db.alembic_config(conn), "head")
    with fresh_engine.connect() as conn:
        got = dict(conn.execute(sa.select(Prescription.id, Prescription.daw_code)
                                .where(Prescription.id.in_([yes.id, no.id]))).all())
        electronic = set(conn.scalars(sa.select(Prescription.electronic)
                                      .where(Prescription.id.in_([yes.id, no.id]))))
    assert got == {yes.id: 1, no.id: 0}
    assert electronic == {False}  # nothing says the old ones arrived electronically


def test_the_database_keeps_the_daw_flag_with_its_code_and_knows_the_reasons(world):
    product = world.product("Deaschema")
    world.receive(product.id, 10)
    rx = world.rx(world.patient().id, product.id, quantity=5)
    done = dispensing.dispense(world.sf, world.pharmacist, DispenseRequest(
        rx.id, uuid.uuid4(), no_scan_reason=NO_SCAN))

    def refused(s, statement) -> None:
        with pytest.raises(sa.exc.DBAPIError), s.begin_nested():
            s.execute(statement)

    change = sa.update(Prescription).where(Prescription.id == rx.id)
    with world.sf() as s, s.begin():
        for values in ({"daw_code": 1}, {"daw_code": 9}, {"daw": True},
                       {"daw_code": 10, "daw": False}):
            refused(s, change.values(**values))
        s.execute(change.values(daw_code=2, daw=True))
        d = s.get(Dispense, done.dispense_id)

        def dispense(reason: str):
            return sa.insert(Dispense).values(
                id=uuid.uuid4(), prescription_id=rx.id, fill_number=9, part=1, quantity=1,
                owed_after=0, days_supply=1, pharmacist_id=d.pharmacist_id,
                dispensed_at=d.dispensed_at, request_id=uuid.uuid4(), partial_reason=reason)

        refused(s, dispense("because"))
        s.execute(dispense("long_term_care"))  # (the owner's rows are not checked further)


# ---------------------------------------- the longest Schedule II supply (0023)


def test_a_long_schedule_ii_supply_is_a_stop_for_the_pharmacist_by_default(world):
    """No federal limit on one Schedule II prescription: by default a supply
    over 90 days (the setting) is written, and its fill stops for a pharmacist."""
    from getmeds_desktop.services import settings as app_settings

    assert app_settings.get_settings(world.sf).schedule_ii_max_days == 90
    product = world.product("Dealong", schedule=Schedule.II, strength="10 mg",
                            dosage_form="tablet")
    world.receive(product.id, 500)
    rx = world.rx(world.patient().id, product.id, quantity=120, days_supply=120)
    preview = dispensing.preview_dispense(world.sf, world.pharmacist, rx.id)
    long = [w for w in preview.warnings if w.key == "dose:schedule_ii_days"]
    assert len(long) == 1 and long[0].is_stop and "120-day" in long[0].message
    # 90 days is within the setting; a product in another schedule is not concerned
    rx90 = world.rx(world.patient().id, product.id, quantity=90, days_supply=90)
    assert not [w for w in dispensing.preview_dispense(world.sf, world.pharmacist, rx90.id)
                .warnings if w.key == "dose:schedule_ii_days"]
    other = world.product("Dealongiv", schedule=Schedule.IV, strength="10 mg",
                          dosage_form="tablet")
    world.receive(other.id, 500)
    rx4 = world.rx(world.patient().id, other.id, quantity=120, days_supply=120)
    assert not [w for w in dispensing.preview_dispense(world.sf, world.pharmacist, rx4.id)
                .warnings if w.key == "dose:schedule_ii_days"]
    # the same stop is the prescriber's advice when the prescription is written
    advice = prescriptions.screen_draft(world.sf, world.pharmacist, world.patient().id,
                                        product.id, 120, 120)
    assert [w.key for w in advice.warnings if w.key == "dose:schedule_ii_days"]


def test_a_stricter_pharmacy_refuses_a_longer_schedule_ii_supply(world):
    from getmeds_desktop.services import settings as app_settings

    s = app_settings.update_settings(world.sf, world.admin, {
        "schedule_ii_max_days": 30, "schedule_ii_over_limit": "refuse"})
    assert s.schedule_ii_refused_over == 30
    product = world.product("Dealimit", schedule=Schedule.II)
    with pytest.raises(ValidationError, match="more than the 30 days") as exc:
        prescriptions.create_prescription(world.sf, world.pharmacist, _draft(
            world, product.id, days_supply=31))
    assert exc.value.field == "days_supply"
    rx = prescriptions.create_prescription(world.sf, world.pharmacist, _draft(
        world, product.id, days_supply=30))
    # nor can an edit lengthen it
    with pytest.raises(ValidationError, match="more than the 30 days"):
        prescriptions.update_prescription(
            world.sf, world.pharmacist, rx.id,
            dataclasses.replace(_draft(world, product.id, patient_id=rx.patient_id),
                                days_supply=45), expected_version=rx.version)
    # a Schedule III product is not concerned
    prescriptions.create_prescription(world.sf, world.pharmacist, _draft(
        world, world.product("Dealimit3", schedule=Schedule.III).id, days_supply=90))


@pytest.mark.parametrize("value, field", [
    ({"schedule_ii_max_days": 0}, "schedule_ii_max_days"),
    ({"schedule_ii_max_days": 400}, "schedule_ii_max_days"),
    ({"schedule_ii_over_limit": "block"}, "schedule_ii_over_limit"),
])
def test_the_schedule_ii_supply_settings_are_checked(world, value, field):
    from getmeds_desktop.services import settings as app_settings

    with pytest.raises(ValidationError) as exc:
        app_settings.update_settings(world.sf, world.admin, value)
    assert exc.value.field == field


def test_a_fill_is_named_the_same_everywhere():
    """One home for "original, part 2" (the fills queue, the recall list and a
    patient's fill history used to write it three ways)."""
    assert rxstate.fill_label(0) == "original"
    assert rxstate.fill_label(0, 2) == "original, part 2"
    assert rxstate.fill_label(3, 1) == "refill 3"
    assert rxstate.fill_label(3, 2) == "refill 3, part 2"
