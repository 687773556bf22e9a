"""Who did it is decided by the database, from the login.

For a staff login the "who" columns (staff_id, created_by, started_by,
acknowledged_by, ...) must be the login's own staff id: a forged one is
refused; updated_by is stamped with the login; the audit actor is the login,
whatever ``getmeds.actor`` says. The owner's sessions (migrations, imports,
getmeds-admin) keep what they write and may label their audit rows.
"""

from __future__ import annotations

import uuid

import pytest

from . import dbsql as sql
from .conftest import Pharmacy, refused, verifier

FORGED = "must be the signed-in staff member"


def test_forged_staff_ids_are_refused(pharmacy: Pharmacy):
    w = pharmacy.world
    _, lot = pharmacy.stocked("Whoamoxil", 20)
    product, _ = pharmacy.stocked("Whorx", 5)
    patient = w.patient("Who", "Forged")
    rx = {"id": None, "patient": patient.id, "prescriber": w.prescriber_id,
          "product": product.id, "updated_by": None}
    cases = [
        (w.clerk, sql.movement("receipt"), {"mid": None, "lot": lot, "qty": 5,
                                            "staff": w.pharmacist.staff_id}),
        (w.pharmacist, sql.movement("write_off", reason="Broken"),
         {"mid": None, "lot": lot, "qty": -1, "staff": w.admin.staff_id}),
        (w.admin, sql.movement("adjustment", reason="Count"),
         {"mid": None, "lot": lot, "qty": -1, "staff": w.pharmacist.staff_id}),
        (w.clerk, sql.new_rx(), dict(rx, staff=w.pharmacist.staff_id)),
        (w.pharmacist, sql.new_rx(), dict(rx, staff=w.doctor.staff_id)),
        (w.pharmacist, "INSERT INTO stocktakes (id, scope, status, started_by, created_at, "
         "updated_at, version) VALUES (gen_random_uuid(), 'all', 'open', %(staff)s, now(), "
         "now(), 1)", {"staff": w.admin.staff_id}),
        (w.clerk, "INSERT INTO patient_feedback (id, patient_id, feedback, received_by, "
         "created_at, updated_at, version) VALUES (gen_random_uuid(), %(patient)s, 'Slow', "
         "%(staff)s, now(), now(), 1)", {"patient": patient.id, "staff": w.pharmacist.staff_id}),
    ]
    for who, statement, params in cases:
        with pharmacy.login(who) as c:
            refused(c, statement, params, match=FORGED)
            # with their own id the same statement is fine
            c.execute(statement, dict(params, staff=who.staff_id))
    assert pharmacy.one("SELECT on_hand FROM stock_lots WHERE id = %s", (lot,)) == 23


def test_a_doctor_writes_prescriptions_only_in_their_own_name(pharmacy: Pharmacy):
    w = pharmacy.world
    product, _ = pharmacy.stocked("Whodoc", 5)
    patient = w.patient("Who", "Doctor")
    params = {"id": None, "patient": patient.id, "prescriber": w.doctor.prescriber_id,
              "product": product.id, "staff": pharmacy.doctor2.staff_id, "updated_by": None}
    with pharmacy.login(w.doctor) as c:
        refused(c, sql.new_rx(), params)
        c.execute(sql.new_rx(), dict(params, staff=w.doctor.staff_id))


def test_updated_by_is_the_login(pharmacy: Pharmacy):
    w = pharmacy.world
    product, lot = pharmacy.stocked("Whostamp", 5)
    patient = w.patient("Who", "Stamped")
    pid, rid = uuid.uuid4(), uuid.uuid4()
    with pharmacy.login(w.clerk) as c:
        c.execute(sql.NEW_PATIENT.replace("version) VALUES", "version, updated_by) VALUES")
                  .replace("now(), now(), 1)", "now(), now(), 1, 'admin')"), {"id": pid})
        c.execute("UPDATE patients SET phone = '555-0100', updated_by = %s WHERE id = %s",
                  (w.admin.username, patient.id))
        c.execute(sql.new_rx(), {"id": rid, "patient": patient.id,
                                 "prescriber": w.prescriber_id, "product": product.id,
                                 "staff": w.clerk.staff_id, "updated_by": w.admin.username})
    with pharmacy.login(w.pharmacist) as c:
        c.execute("UPDATE stock_lots SET status = 'quarantined', status_reason = 'Check', "
                  "updated_by = 'nobody' WHERE id = %s", (lot,))
        c.execute("UPDATE prescriptions SET notes = 'Called', updated_by = NULL WHERE id = %s",
                  (rid,))
    with pharmacy.login(w.admin) as c:
        c.execute("UPDATE products SET reorder_level = 3, updated_by = %s WHERE id = %s",
                  (w.pharmacist.username, product.id))
        c.execute("UPDATE app_settings SET pharmacy_name = pharmacy_name, updated_by = 'x'")
    assert pharmacy.one("SELECT updated_by FROM patients WHERE id = %s", (pid,)) == \
        w.clerk.username
    assert pharmacy.one("SELECT updated_by FROM patients WHERE id = %s", (patient.id,)) == \
        w.clerk.username
    assert pharmacy.one("SELECT updated_by FROM stock_lots WHERE id = %s", (lot,)) == \
        w.pharmacist.username
    assert pharmacy.one("SELECT updated_by FROM prescriptions WHERE id = %s", (rid,)) == \
        w.pharmacist.username
    assert pharmacy.one("SELECT updated_by FROM products WHERE id = %s", (product.id,)) == \
        w.admin.username
    assert pharmacy.one("SELECT updated_by FROM app_settings") == w.admin.username


def test_who_did_an_earlier_act_cannot_be_rewritten(pharmacy: Pharmacy):
    w = pharmacy.world
    product, _ = pharmacy.stocked("Whohistory", 5)
    rx = pharmacy.rx(product.id, actor=w.pharmacist)
    stocktake, feedback = uuid.uuid4(), uuid.uuid4()
    patient = w.patient("Who", "History")
    with pharmacy.login(w.pharmacist) as c:
        c.execute("INSERT INTO stocktakes (id, scope, status, started_by, created_at, "
                  "updated_at, version) VALUES (%s, 'all', 'open', %s, now(), now(), 1)",
                  (stocktake, w.pharmacist.staff_id))
        c.execute("INSERT INTO patient_feedback (id, patient_id, feedback, received_by, "
                  "created_at, updated_at, version) VALUES (%s, %s, 'Kind', %s, now(), now(), "
                  "1)", (feedback, patient.id, w.pharmacist.staff_id))
    with pharmacy.login(w.admin) as c:
        for statement, params in (
                ("UPDATE prescriptions SET created_by = %s WHERE id = %s",
                 (w.admin.staff_id, rx.id)),
                ("UPDATE stocktakes SET started_by = %s WHERE id = %s",
                 (w.admin.staff_id, stocktake)),
                ("UPDATE patient_feedback SET received_by = %s WHERE id = %s",
                 (w.admin.staff_id, feedback))):
            refused(c, statement, params, match="earlier act")
        # recording one's own act is fine
        c.execute("UPDATE stocktakes SET status = 'posted', posted_by = %s, posted_at = now() "
                  "WHERE id = %s", (w.admin.staff_id, stocktake))
        c.execute("UPDATE patient_feedback SET reply = 'Thank you', replied_by = %s, "
                  "replied_at = now() WHERE id = %s", (w.admin.staff_id, feedback))
    assert pharmacy.q("SELECT started_by, posted_by FROM stocktakes WHERE id = %s",
                      (stocktake,)) == [(w.pharmacist.staff_id, w.admin.staff_id)]


@pytest.mark.parametrize("scope", ["session", "transaction"])
def test_a_staff_login_cannot_label_its_audit_rows(pharmacy: Pharmacy, scope: str):
    w = pharmacy.world
    patient = w.patient("Who", f"Actor{scope}")
    for who in (w.clerk, w.pharmacist, w.admin):
        with pharmacy.login(who) as c:
            c.execute("SELECT set_config('getmeds.actor', %s, %s)",
                      (w.admin.username if who is not w.admin else "owner", scope != "session"))
            c.execute("SET getmeds.actor = 'demo-seed'" if scope == "session" else "SELECT 1")
            c.execute("UPDATE patients SET notes = %s WHERE id = %s", (who.username, patient.id))
        assert pharmacy.q("SELECT actor, db_user FROM audit_log WHERE table_name = 'patients' "
                          "AND row_id = %s ORDER BY id DESC LIMIT 1", (str(patient.id),)) == [
            (who.username, who.username)]
    with pharmacy.login(w.doctor) as c:
        c.execute("SET getmeds.actor = 'somebody else'")
        rid = c.execute(sql.new_rx() + " RETURNING id", {
            "id": None, "patient": patient.id, "prescriber": w.doctor.prescriber_id,
            "product": pharmacy.stocked(f"Whoactor{scope}", 1)[0].id,
            "staff": w.doctor.staff_id, "updated_by": None}).fetchone()[0]
    assert pharmacy.q("SELECT actor, db_user FROM audit_log WHERE table_name = "
                      "'prescriptions' AND row_id = %s", (str(rid),)) == [
        (w.doctor.username, w.doctor.username)]


def test_the_owner_keeps_what_it_writes_and_may_label_itself(pharmacy: Pharmacy):
    w = pharmacy.world
    _, lot = pharmacy.stocked("Whoowner", 5)
    mid = uuid.uuid4()
    with pharmacy.owner() as c:
        c.autocommit = False
        c.execute("SELECT set_config('getmeds.actor', 'web-import', true)")
        # an import records history in the name of the staff member it belongs to
        c.execute(sql.movement("receipt"), {"mid": mid, "lot": lot, "qty": 2,
                                            "staff": w.clerk.staff_id})
        c.commit()
    assert pharmacy.q("SELECT actor, db_user FROM audit_log WHERE table_name = "
                      "'stock_movements' AND row_id = %s", (str(mid),)) == [
        ("web-import", pharmacy.url.username)]
    assert pharmacy.one("SELECT staff_id FROM stock_movements WHERE id = %s", (mid,)) == \
        w.clerk.staff_id


def test_a_deactivated_staff_members_open_session_records_nothing_in_their_name(
        pharmacy: Pharmacy):
    w = pharmacy.world
    _, lot = pharmacy.stocked("Whogone", 5)
    name = f"leaving{uuid.uuid4().hex[:6]}"
    with pharmacy.owner() as o:
        sid = o.execute("SELECT getmeds_add_staff(NULL, %s, %s, %s, 'Leaving Soon')",
                        (name, verifier(o, name, "a password 12345"), pharmacy.group("clerk"))
                        ).fetchone()[0]
    with pharmacy.login(name, "a password 12345") as c:
        with pharmacy.login(w.admin) as a:
            a.execute("UPDATE staff SET active = false WHERE id = %s", (sid,))
            a.execute("SELECT getmeds_alter_login(%s, NULL, false)", (name,))
        refused(c, sql.movement("receipt"), {"mid": None, "lot": lot, "qty": 1, "staff": sid},
                match=FORGED)
    assert pharmacy.one("SELECT on_hand FROM stock_lots WHERE id = %s", (lot,)) == 5
