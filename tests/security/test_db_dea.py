"""The DEA prescription rules the database keeps, whatever a pharmacist types
into psql (migration 0016):

* 21 CFR 1306.12(b): a prescription is not filled before its earliest fill
  date (``not_before``), and only its prescriber may move that date earlier;
* 21 CFR 1306.13: a Schedule II partial fill records its reason, and the rest
  is dispensed within its limit (72 hours after the first part for a
  shortage, 30 days after the date written at the patient's request, 60 for
  long-term care), never once declared void;
* ``daw`` always says whether the DAW code forbids substitution.

The same rules stay in the services (services/rxstate.py), which explain them
at the counter; here they hold for a staff login's own SQL too.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import uuid
from collections.abc import Iterator

import pytest
from psycopg import errors

from getmeds_desktop.enums import PartialReason
from getmeds_desktop.models import Schedule
from getmeds_desktop.services import clock, dispensing, prescriptions
from getmeds_desktop.services.dispensing import DispenseRequest
from tests.fixtures.data import NO_SCAN

from . import dbsql as sql
from .conftest import Pharmacy, refused, refused_at_commit

DISPENSE_WITH_REASON = sql.DISPENSE.replace(
    "request_id) VALUES", "request_id, partial_reason) VALUES").replace(
    "gen_random_uuid())", "gen_random_uuid(), %(reason)s)")


def _schedule_ii(ph: Pharmacy, name: str, *, quantity: int = 10, stock: int = 100):
    product, lot = ph.stocked(name, stock, Schedule.II)
    return ph.rx(product.id, quantity=quantity), lot


def _commit(ph: Pharmacy, statements: list[tuple[str, dict]]) -> None:
    with ph.login(ph.world.pharmacist) as c:
        for statement, params in statements:
            c.execute(statement, params)
        c.commit()


@contextlib.contextmanager
def _days_ago(days: float) -> Iterator[None]:
    """The app's clock, this many days back (what it wrote then)."""
    now = clock.now()
    clock.pin(now - dt.timedelta(days=days))
    try:
        yield
    finally:
        clock.pin(now)


def _first_part(ph: Pharmacy, rx_id: uuid.UUID, reason: PartialReason, qty: int = 4) -> None:
    """Part 1 of a fill, written by the app (as the owner: no check of this file runs)."""
    w = ph.world
    dispensing.dispense(w.sf, w.pharmacist, DispenseRequest(
        rx_id, uuid.uuid4(), quantity=qty, partial_reason=reason, no_scan_reason=NO_SCAN))


def _server_day(ph: Pharmacy, offset: int = 0) -> dt.date:
    return ph.one(f"SELECT (now() AT TIME ZONE getmeds_pharmacy_time_zone())::date + {offset}")


def test_no_fill_before_the_earliest_fill_date(pharmacy: Pharmacy):
    w = pharmacy.world
    me = w.pharmacist.staff_id
    rx, lot = _schedule_ii(pharmacy, "Deaearly")
    pharmacy.q("UPDATE prescriptions SET not_before = %s WHERE id = %s",
               (_server_day(pharmacy, 3), rx.id))
    with pharmacy.login(w.pharmacist) as c:
        statement, params = sql.dispense(rx.id, lot, 10, me)[0]
        refused(c, statement, params, match="may not be filled before")
        # neither the session's own time zone nor a dispense dated later moves the day
        c.execute("SET TimeZone = 'Pacific/Kiritimati'")
        refused(c, statement, params, match="may not be filled before")
        later = statement.replace("now(), gen_random_uuid()",
                                  "now() + interval '10 days', gen_random_uuid()")
        refused(c, later, params, match="may not be filled before")
    assert pharmacy.one("SELECT count(*) FROM dispenses WHERE prescription_id = %s",
                        (rx.id,)) == 0
    # from that day on it is filled (yesterday's date here)
    ready, lot2 = _schedule_ii(pharmacy, "Deaready")
    pharmacy.q("UPDATE prescriptions SET not_before = %s WHERE id = %s",
               (_server_day(pharmacy, -1), ready.id))
    _commit(pharmacy, sql.dispense(ready.id, lot2, 10, me))


def test_only_the_prescriber_moves_the_earliest_fill_date_earlier(pharmacy: Pharmacy):
    w = pharmacy.world
    doctor = w.doctor
    rx = pharmacy.rx(pharmacy.stocked("Deamove", 50, Schedule.II)[0].id,
                     prescriber_id=doctor.prescriber_id, actor=doctor)
    day = _server_day(pharmacy, 20)
    pharmacy.q("UPDATE prescriptions SET not_before = %s WHERE id = %s", (day, rx.id))
    update = "UPDATE prescriptions SET not_before = %(d)s WHERE id = %(rx)s"
    with pharmacy.login(w.pharmacist) as c:
        for earlier in (None, day - dt.timedelta(days=1)):
            refused(c, update, {"d": earlier, "rx": rx.id},
                    match="only its prescriber may let it be filled earlier")
        c.execute(update, {"d": day + dt.timedelta(days=2), "rx": rx.id})  # later: stricter
        c.commit()
    with pharmacy.login(doctor) as c:
        c.execute(update, {"d": day, "rx": rx.id})
        c.commit()
    assert pharmacy.one("SELECT not_before FROM prescriptions WHERE id = %s", (rx.id,)) == day


def test_what_was_prescribed_stays_once_dispensed(pharmacy: Pharmacy):
    w = pharmacy.world
    rx, lot = _schedule_ii(pharmacy, "Deafinal")
    _commit(pharmacy, sql.dispense(rx.id, lot, 10, w.pharmacist.staff_id))
    with pharmacy.login(w.pharmacist) as c:
        for change in ("not_before = current_date + 30", "daw_code = 3", "electronic = NOT "
                       "electronic"):
            refused(c, f"UPDATE prescriptions SET {change} WHERE id = %s", (rx.id,),
                    match="has been dispensed")


def test_daw_says_whether_the_code_forbids_substitution(pharmacy: Pharmacy):
    w = pharmacy.world
    rx = pharmacy.rx(pharmacy.stocked("Deadaw", 5)[0].id)
    with pharmacy.login(w.pharmacist) as c:
        for change in ("daw_code = 1", "daw_code = 7", "daw = true", "daw_code = 2, daw = false",
                       "daw_code = 3, daw = true"):
            with pytest.raises(errors.CheckViolation, match="daw_matches_code"), \
                    c.transaction():
                c.execute(f"UPDATE prescriptions SET {change} WHERE id = %s", (rx.id,))
        with pytest.raises(errors.CheckViolation, match="daw_code_range"), c.transaction():
            c.execute("UPDATE prescriptions SET daw_code = 10 WHERE id = %s", (rx.id,))
        c.execute("UPDATE prescriptions SET daw_code = 9, daw = true WHERE id = %s", (rx.id,))
        c.commit()


def test_a_schedule_ii_partial_fill_records_its_reason(pharmacy: Pharmacy):
    w = pharmacy.world
    me = w.pharmacist.staff_id
    rx, lot = _schedule_ii(pharmacy, "Deareason")
    statements = sql.dispense(rx.id, lot, 4, me, owed=6)
    with pharmacy.login(w.pharmacist) as c:
        refused(c, *statements[0], match="records its reason")
        with pytest.raises(errors.CheckViolation, match="partial_reason_known"), \
                c.transaction():
            c.execute(DISPENSE_WITH_REASON, dict(statements[0][1], reason="because"))
    _commit(pharmacy, [(DISPENSE_WITH_REASON, dict(statements[0][1], reason="shortage")),
                       *statements[1:]])
    # the rest needs no reason of its own (it leaves nothing owed)
    _commit(pharmacy, sql.dispense(rx.id, lot, 6, me, part=2))


def test_the_rest_of_a_shortage_partial_fill_only_within_72_hours(pharmacy: Pharmacy):
    w = pharmacy.world
    me = w.pharmacist.staff_id
    late, lot = _schedule_ii(pharmacy, "Dealate")
    with _days_ago(4):
        _first_part(pharmacy, late.id, PartialReason.SHORTAGE)
    with pharmacy.login(w.pharmacist) as c:
        statement, params = sql.dispense(late.id, lot, 6, me, part=2)[0]
        refused(c, statement, params, match="within 72 hours of the first part")
        # a part dated back into the 72 hours is judged by the server's clock
        back = statement.replace("now(), gen_random_uuid()",
                                 "now() - interval '3 days', gen_random_uuid()")
        refused(c, back, params, match="within 72 hours of the first part")
    # within them it is dispensed
    soon, lot2 = _schedule_ii(pharmacy, "Deasoon")
    with _days_ago(1):
        _first_part(pharmacy, soon.id, PartialReason.SHORTAGE)
    _commit(pharmacy, sql.dispense(soon.id, lot2, 6, me, part=2))


@pytest.mark.parametrize(("reason", "days"), [(PartialReason.PATIENT_REQUEST, 30),
                                              (PartialReason.LONG_TERM_CARE, 60),
                                              (PartialReason.TERMINALLY_ILL, 60)])
def test_the_rest_of_a_requested_or_long_term_care_partial_fill_within_its_days(
        pharmacy: Pharmacy, reason: PartialReason, days: int):
    w = pharmacy.world
    me = w.pharmacist.staff_id
    rx, lot = _schedule_ii(pharmacy, f"Dea{reason.value[:8]}")
    _first_part(pharmacy, rx.id, reason)
    pharmacy.q("UPDATE prescriptions SET date_written = %s WHERE id = %s",
               (_server_day(pharmacy, -days - 1), rx.id))
    with pharmacy.login(w.pharmacist) as c:
        refused(c, *sql.dispense(rx.id, lot, 6, me, part=2)[0], match="could be dispensed "
                f"until {_server_day(pharmacy, -1)}")
    pharmacy.q("UPDATE prescriptions SET date_written = %s WHERE id = %s",
               (_server_day(pharmacy, -days + 1), rx.id))
    _commit(pharmacy, sql.dispense(rx.id, lot, 6, me, part=2))


def test_a_void_remainder_stays_void(pharmacy: Pharmacy):
    w = pharmacy.world
    me = w.pharmacist.staff_id
    rx, lot = _schedule_ii(pharmacy, "Deavoid")
    _first_part(pharmacy, rx.id, PartialReason.SHORTAGE)
    update = ("UPDATE prescriptions SET remainder_void_at = now(), remainder_void_by = %(by)s, "
              "prescriber_notice = %(notice)s WHERE id = %(rx)s")
    with pharmacy.login(w.pharmacist) as c:
        # recorded as the signed-in pharmacist, with the notice
        refused(c, update, {"by": w.admin.staff_id, "notice": "Phoned Dr Lee", "rx": rx.id},
                match="remainder_void_by must be the signed-in staff member")
        refused(c, update, {"by": me, "notice": None, "rx": rx.id},
                match="with the prescriber notice")
    info = prescriptions.void_remainder(w.sf, w.pharmacist, rx.id,
                                        "Phoned Dr Lee's office, spoke to the nurse")
    assert info.state.problem_kind(clock.today()) == "partial_limit"
    with pharmacy.login(w.pharmacist) as c:
        refused(c, *sql.dispense(rx.id, lot, 6, me, part=2)[0],
                match="the rest of this Schedule II prescription is void")
        for change in ("remainder_void_at = NULL", "prescriber_notice = 'never mind'",
                       "remainder_void_by = NULL"):
            refused(c, f"UPDATE prescriptions SET {change} WHERE id = %s", (rx.id,),
                    match="cannot be changed")
    # a pharmacist's own void, written by hand, is stamped with the server's time
    other, _ = _schedule_ii(pharmacy, "Deavoid2")
    _first_part(pharmacy, other.id, PartialReason.SHORTAGE)
    _commit(pharmacy, [(update.replace("now()", "now() - interval '30 days'"),
                        {"by": me, "notice": "Faxed the prescriber", "rx": other.id})])
    assert pharmacy.one("SELECT remainder_void_at > now() - interval '1 hour' FROM "
                        "prescriptions WHERE id = %s", (other.id,)) is True


def test_the_pharmacy_time_zone_is_the_databases_not_the_sessions(pharmacy: Pharmacy):
    w = pharmacy.world
    me = w.pharmacist.staff_id
    rx, lot = _schedule_ii(pharmacy, "Deazone")
    # the day has begun on Kiritimati (UTC+14) but not on Baker Island (UTC-12)
    pharmacy.q("UPDATE prescriptions SET not_before = (now() AT TIME ZONE "
               "'Pacific/Kiritimati')::date WHERE id = %s", (rx.id,))
    database = pharmacy.database
    try:
        pharmacy.q(f'ALTER DATABASE "{database}" SET timezone = \'Etc/GMT+12\'')
        with pharmacy.login(w.pharmacist) as c:
            c.execute("SET TimeZone = 'Pacific/Kiritimati'")
            refused(c, *sql.dispense(rx.id, lot, 10, me)[0], match="may not be filled before")
        pharmacy.q(f'ALTER DATABASE "{database}" SET timezone = \'Pacific/Kiritimati\'')
        _commit(pharmacy, sql.dispense(rx.id, lot, 10, me))
    finally:
        pharmacy.q(f'ALTER DATABASE "{database}" RESET timezone')


def _rx_params(ph: Pharmacy, product_id: uuid.UUID, patient_id: uuid.UUID) -> dict:
    w = ph.world
    return {"id": uuid.uuid4(), "patient": patient_id, "prescriber": w.prescriber_id,
            "product": product_id, "staff": w.pharmacist.staff_id,
            "updated_by": w.pharmacist.username}


def test_schedule_ii_prescriptions_written_together_total_at_most_90_days(pharmacy: Pharmacy):
    """21 CFR 1306.12(b)(1): however a pharmacist writes them in psql (three
    30-day prescriptions, then a fourth, or one made longer afterwards)."""
    w = pharmacy.world
    product, _lot = pharmacy.stocked("Deaninety", 100, Schedule.II)
    patient = w.patient("Sec", "Ninety").id
    p = _rx_params(pharmacy, product.id, patient)
    with pharmacy.login(w.pharmacist) as c:
        for _ in range(3):  # 3 x 30 days: allowed
            c.execute(sql.new_rx(), dict(p, id=uuid.uuid4()))
        c.commit()
        refused_at_commit(c, [(sql.new_rx(), dict(p, id=uuid.uuid4()))],
                          match="at most 90 are allowed")
        one = c.execute("SELECT id FROM prescriptions WHERE patient_id = %s LIMIT 1",
                        (patient,)).fetchone()[0]
        refused_at_commit(c, [("UPDATE prescriptions SET days_supply = 31 WHERE id = %s",
                               (one,))], match="1306.12(b)")
        # a cancelled one no longer counts
        c.execute("UPDATE prescriptions SET status = 'cancelled' WHERE id = %s", (one,))
        c.execute(sql.new_rx(), dict(p, id=uuid.uuid4()))
        c.commit()
    assert pharmacy.one("SELECT count(*) FROM prescriptions WHERE patient_id = %s AND "
                        "status <> 'cancelled'", (patient,)) == 3


def test_a_schedule_ii_supply_over_the_pharmacys_limit_is_refused_when_it_says_so(
        pharmacy: Pharmacy):
    w = pharmacy.world
    product, _lot = pharmacy.stocked("Dealimitdb", 100, Schedule.II)
    other, _lot2 = pharmacy.stocked("Dealimitdb4", 100, Schedule.IV)
    longer = sql.new_rx().replace("'Take 1 daily', 30, 30,", "'Take 1 daily', 60, 60,")
    with pharmacy.login(w.pharmacist) as c:  # by default a longer supply is warned of
        c.execute(longer, _rx_params(pharmacy, product.id, w.patient("Sec", "Warned").id))
        c.commit()
    pharmacy.q("UPDATE app_settings SET schedule_ii_max_days = 45, "
               "schedule_ii_over_limit = 'refuse'")
    with pharmacy.login(w.pharmacist) as c:
        refused_at_commit(c, [(longer, _rx_params(pharmacy, product.id,
                                                  w.patient("Sec", "Refused").id))],
                          match="more than the 45 days")
        c.execute(sql.new_rx(), _rx_params(pharmacy, product.id, w.patient("Sec", "Ok").id))
        c.execute(longer, _rx_params(pharmacy, other.id, w.patient("Sec", "Four").id))
        c.commit()
        # nor may a pharmacist turn the setting off for themselves
        refused(c, "UPDATE app_settings SET schedule_ii_over_limit = 'warn'")
