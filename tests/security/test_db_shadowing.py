"""Temporary tables cannot stand in for ours, function by function.

For every function of ours found in pg_proc there is a scenario here. Each
runs as the role that would try it, given TEMPORARY on purpose (staff have no
TEMPORARY privilege at all, so this proves the second line of defence): it
creates a temporary table for every table and catalog the function names,
filled with what an attacker would like the function to read, and shows that
the function used the real one (the audit row is in the real audit_log, the
register row in the real controlled_register, the refusal still comes).

The attacker's own statements name the real tables (search_path public,
pg_temp): what would have gone wrong is the function resolving a name to the
temporary table, as it did while functions ran with the creating session's
search_path, where pg_temp comes first.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import uuid
from collections.abc import Callable, Iterator

import psycopg
import pytest

from getmeds_desktop.enums import PartialReason
from getmeds_desktop.models import Schedule
from getmeds_desktop.services import clock, dispensing, fills, prescriptions
from getmeds_desktop.services.context import Actor
from getmeds_desktop.services.dispensing import DispenseRequest
from tests.fixtures.data import NO_SCAN, PASSWORD

from . import dbsql as sql
from .conftest import Pharmacy, refused, refused_at_commit, shadow, verifier
from .test_db_catalogue import functions

SCENARIOS: dict[str, Callable[[Pharmacy], None]] = {}


def covers(*names: str) -> Callable[[Callable[[Pharmacy], None]], Callable[[Pharmacy], None]]:
    def register(fn: Callable[[Pharmacy], None]) -> Callable[[Pharmacy], None]:
        for name in names:
            assert name not in SCENARIOS, name
            SCENARIOS[name] = fn
        return fn
    return register


@contextlib.contextmanager
def attacker(ph: Pharmacy, who: Actor | str) -> Iterator[psycopg.Connection]:
    with ph.temporary(who), ph.login(who) as c:
        c.execute("SET search_path = public, pg_temp")
        c.commit()
        yield c


def temp_count(c: psycopg.Connection, table: str) -> int:
    return c.execute(f"SELECT count(*) FROM pg_temp.{table}").fetchone()[0]


def last_audit(ph: Pharmacy, table: str, row_id: object) -> tuple:
    return ph.q("SELECT db_user, actor, action, after FROM audit_log WHERE table_name = %s "
                "AND row_id = %s ORDER BY id DESC LIMIT 1", (table, str(row_id)))[0]


def me_is(c: psycopg.Connection, other: uuid.UUID) -> None:
    """A temporary staff table that says this login is somebody else."""
    shadow(c, "staff")
    c.execute("INSERT INTO pg_temp.staff SELECT * FROM public.staff")
    c.execute("UPDATE pg_temp.staff SET id = %s WHERE username = session_user", (other,))


def test_every_function_of_ours_has_a_scenario(pharmacy: Pharmacy):
    with pharmacy.owner() as c:
        found = {f[0].split("(")[0] for f in functions(c)}
    assert found == set(SCENARIOS), (
        f"without a scenario: {sorted(found - set(SCENARIOS))}; "
        f"gone: {sorted(set(SCENARIOS) - found)}")


# ----------------------------------------------------------- the ledger


@covers("getmeds_apply_movements")
def _ledger(ph: Pharmacy) -> None:
    w = ph.world
    product, lot = ph.stocked("Shadowxycodone", 50, Schedule.II)
    mid = uuid.uuid4()
    with attacker(ph, w.pharmacist) as c:
        shadow(c, "stock_lots", "product_stock", "controlled_register", "products")
        c.execute("INSERT INTO pg_temp.products SELECT * FROM public.products")
        c.execute("UPDATE pg_temp.products SET schedule = 'none'")
        c.execute(sql.movement("adjustment", reason="Broken vial"),
                  {"mid": mid, "lot": lot, "qty": -2, "staff": w.pharmacist.staff_id})
        c.commit()
        assert temp_count(c, "controlled_register") == 0
    assert ph.q("SELECT kind, quantity, balance_after, staff_id, register FROM "
                "controlled_register WHERE movement_id = %s", (mid,)) == [
        ("adjustment", -2, 48, w.pharmacist.staff_id, "II")]
    assert ph.one("SELECT on_hand FROM stock_lots WHERE id = %s", (lot,)) == 48
    assert ph.one("SELECT on_hand FROM product_stock WHERE product_id = %s", (product.id,)) == 48


@covers("getmeds_product_stock_row")
def _stock_row(ph: Pharmacy) -> None:
    pid = uuid.uuid4()
    with attacker(ph, ph.world.admin) as c:
        shadow(c, "product_stock")
        c.execute(sql.NEW_PRODUCT, {"id": pid, "name": "Shadow stock row"})
        c.commit()
        assert temp_count(c, "product_stock") == 0
    assert ph.one("SELECT on_hand FROM product_stock WHERE product_id = %s", (pid,)) == 0


@covers("getmeds_forbid_change")
def _permanent(ph: Pharmacy) -> None:
    _, lot = ph.stocked("Shadowpermanent", 5)
    with ph.owner() as c:  # only the owner may even try: nobody else has UPDATE or DELETE
        c.autocommit = False
        shadow(c, "stock_movements", "dispenses")
        for statement in ("UPDATE public.stock_movements SET reason = 'x' WHERE lot_id = %s",
                          "DELETE FROM public.stock_movements WHERE lot_id = %s"):
            refused(c, statement, (lot,), match="permanent records")


# ------------------------------------------------------------ the audit


@covers("getmeds_audit")
def _audit(ph: Pharmacy) -> None:
    w = ph.world
    patient = w.patient("Shadow", "Audit")
    for who in (w.clerk, w.pharmacist, w.admin):
        with attacker(ph, who) as c:
            shadow(c, "audit_log")
            c.execute("UPDATE public.patients SET notes = %s WHERE id = %s",
                      (f"by {who.username}", patient.id))
            c.commit()
            assert temp_count(c, "audit_log") == 0
        db_user, actor, action, after = last_audit(ph, "patients", patient.id)
        assert (db_user, actor, action, after["notes"]) == (
            who.username, who.username, "UPDATE", f"by {who.username}")


@covers("getmeds_audit_row")
def _audit_row(ph: Pharmacy) -> None:
    w = ph.world
    _, lot = ph.stocked("Shadowlotaudit", 5)
    with attacker(ph, w.pharmacist) as c:
        shadow(c, "audit_log")
        c.execute("UPDATE public.stock_lots SET status = 'quarantined', status_reason = 'Damp', "
                  "version = version + 1 WHERE id = %s", (lot,))
        c.commit()
        assert temp_count(c, "audit_log") == 0
    db_user, _, action, after = last_audit(ph, "stock_lots", lot)
    assert (db_user, action, after["status"]) == (w.pharmacist.username, "UPDATE", "quarantined")


@covers("getmeds_trusted_session")
def _trusted(ph: Pharmacy) -> None:
    w = ph.world
    patient = w.patient("Shadow", "Trust")
    with attacker(ph, w.clerk) as c:
        # catalogs that say the clerk owns the database, or is a member of its owner
        shadow(c, "pg_database", "pg_roles", "pg_auth_members")
        c.execute("UPDATE pg_temp.pg_database SET datdba = (SELECT oid FROM pg_catalog.pg_roles "
                  "WHERE rolname = session_user)")
        c.execute("UPDATE pg_temp.pg_roles SET rolsuper = true WHERE rolname = session_user")
        c.execute("INSERT INTO pg_temp.pg_auth_members (roleid, member) SELECT d.datdba, r.oid "
                  "FROM pg_catalog.pg_database d, pg_catalog.pg_roles r WHERE d.datname = "
                  "current_database() AND r.rolname = session_user")
        assert c.execute("SELECT getmeds_trusted_session()").fetchone()[0] is False
        c.execute("SELECT set_config('getmeds.actor', 'owner-maintenance', false)")
        c.execute("UPDATE public.patients SET notes = 'trusted?' WHERE id = %s", (patient.id,))
        c.commit()
    assert last_audit(ph, "patients", patient.id)[:2] == (w.clerk.username, w.clerk.username)


# ----------------------------------------------------- row-level helpers


@covers("getmeds_current_staff", "getmeds_current_prescriber")
def _current(ph: Pharmacy) -> None:
    w, other = ph.world, ph.doctor2
    product, _ = ph.stocked("Shadowdoctor", 5)
    theirs = ph.rx(product.id, prescriber_id=other.prescriber_id, actor=other)
    with attacker(ph, w.doctor) as c:
        shadow(c, "staff")
        c.execute("INSERT INTO pg_temp.staff SELECT * FROM public.staff")
        c.execute("UPDATE pg_temp.staff SET id = %s, prescriber_id = %s "
                  "WHERE username = session_user", (other.staff_id, other.prescriber_id))
        assert c.execute("SELECT getmeds_current_staff(), getmeds_current_prescriber()"
                         ).fetchone() == (w.doctor.staff_id, w.doctor.prescriber_id)
        assert c.execute("SELECT count(*) FROM public.prescriptions WHERE id = %s",
                         (theirs.id,)).fetchone()[0] == 0


@covers("getmeds_product_controlled")
def _product_controlled(ph: Pharmacy) -> None:
    w = ph.world
    product, _ = ph.stocked("Shadowmorphine", 5, Schedule.II)
    with attacker(ph, w.clerk) as c:
        shadow(c, "products")
        c.execute("INSERT INTO pg_temp.products SELECT * FROM public.products")
        c.execute("UPDATE pg_temp.products SET schedule = 'none'")
        refused(c, sql.NEW_LOT.replace("INTO stock_lots", "INTO public.stock_lots"),
                {"id": uuid.uuid4(), "product": product.id, "number": "CLERK-II"},
                match="row-level security")


@covers("getmeds_lot_controlled")
def _lot_controlled(ph: Pharmacy) -> None:
    w = ph.world
    _, lot = ph.stocked("Shadowfentanyl", 5, Schedule.II)
    with attacker(ph, w.clerk) as c:
        shadow(c, "stock_lots", "products")
        c.execute("INSERT INTO pg_temp.products SELECT * FROM public.products")
        c.execute("INSERT INTO pg_temp.stock_lots SELECT * FROM public.stock_lots")
        c.execute("UPDATE pg_temp.products SET schedule = 'none'")
        refused(c, sql.receipt_with_order(table="public.stock_movements"),
                {"mid": None, "lot": lot, "qty": 10, "staff": w.clerk.staff_id,
                 "supplier": w.supplier_id},
                match="row-level security")
    assert ph.one("SELECT on_hand FROM stock_lots WHERE id = %s", (lot,)) == 5


# ------------------------------------------------- DEA receipts and forms (0022)


def _form41(ph: Pharmacy, form: uuid.UUID, by: Actor) -> dict:
    return {"form": form, "staff": by.staff_id, "w1": ph.world.pharmacist.staff_id,
            "w2": ph.world.technician.staff_id}


@covers("getmeds_guard_dea_forms")
def _dea_forms_guard(ph: Pharmacy) -> None:
    """Temporary staff that make a technician a pharmacist, or this pharmacist
    another one, change nothing: only a pharmacist files, in their own name."""
    w = ph.world
    with attacker(ph, w.technician) as c:
        shadow(c, "staff")
        c.execute("INSERT INTO pg_temp.staff SELECT * FROM public.staff")
        c.execute("UPDATE pg_temp.staff SET role = 'pharmacist'")
        refused(c, sql.FORM_41.replace("INTO dea_forms", "INTO public.dea_forms"),
                _form41(ph, uuid.uuid4(), w.technician))
    with attacker(ph, w.pharmacist) as c:
        me_is(c, w.pharmacist2.staff_id)
        refused(c, sql.FORM_41, _form41(ph, uuid.uuid4(), w.pharmacist2), match="filed_by")
        # a temporary staff table with a doctor made an employee: still no witness
        c.execute("UPDATE pg_temp.staff SET role = 'pharmacist' WHERE id = %s",
                  (w.doctor.staff_id,))
        refused(c, sql.FORM_41, dict(_form41(ph, uuid.uuid4(), w.pharmacist),
                                     w2=w.doctor.staff_id), match="employee")


@covers("getmeds_check_dea_form_posted")
def _dea_form_posted(ph: Pharmacy) -> None:
    """A temporary ledger that holds a movement of the record changes nothing:
    the record without a real movement is refused at commit."""
    w = ph.world
    form = uuid.uuid4()
    with attacker(ph, w.pharmacist) as c:
        shadow(c, "stock_movements")
        c.execute("INSERT INTO pg_temp.stock_movements (id, lot_id, kind, quantity, "
                  "staff_id, created_at, dea_form_id) VALUES (gen_random_uuid(), "
                  "gen_random_uuid(), 'write_off', -1, %s, now(), %s)",
                  (w.pharmacist.staff_id, form))
        c.commit()
        refused_at_commit(c, [(sql.FORM_41, _form41(ph, form, w.pharmacist))],
                          match="has no movement")
    assert ph.one("SELECT count(*) FROM dea_forms WHERE id = %s", (form,)) == 0


@covers("getmeds_guard_dea_movements")
def _dea_movements(ph: Pharmacy) -> None:
    """Temporary products that make a Schedule II lot ordinary, or suppliers that
    give one a DEA number, change nothing."""
    w = ph.world
    _, lot = ph.stocked("Shadowdeareceipt", 10, Schedule.II)
    plain = ph.world.product("Shadownodea")  # a supplier without a DEA number
    from getmeds_desktop.services import catalog
    from getmeds_desktop.services.context import SYSTEM

    nodea = catalog.create_supplier(ph.sf, SYSTEM, name=f"Shadow {uuid.uuid4().hex[:6]}")
    assert plain.schedule is Schedule.NONE
    with attacker(ph, w.pharmacist) as c:
        shadow(c, "products", "stock_lots", "suppliers", "dea_forms")
        c.execute("INSERT INTO pg_temp.products SELECT * FROM public.products")
        c.execute("INSERT INTO pg_temp.stock_lots SELECT * FROM public.stock_lots")
        c.execute("INSERT INTO pg_temp.suppliers SELECT * FROM public.suppliers")
        c.execute("UPDATE pg_temp.products SET schedule = 'none'")
        c.execute("UPDATE pg_temp.suppliers SET dea_number = 'AB1234563'")
        refused(c, sql.movement("write_off", reason="Expired").replace(
            "INTO stock_movements", "INTO public.stock_movements"),
            {"mid": None, "lot": lot, "qty": -1, "staff": w.pharmacist.staff_id},
            match="DEA Form 41")
        refused(c, sql.receipt_with_order(table="public.stock_movements"),
                {"mid": None, "lot": lot, "qty": 1, "staff": w.pharmacist.staff_id,
                 "supplier": nodea.id}, match="DEA registration number")
    assert ph.one("SELECT on_hand FROM stock_lots WHERE id = %s", (lot,)) == 10


# --------------------------------------------------------------- logins


def _catalog_shadows(c: psycopg.Connection) -> None:
    shadow(c, "pg_roles", "pg_auth_members", "pg_database", "staff", "audit_log")
    c.execute("INSERT INTO pg_temp.staff SELECT * FROM public.staff")


@covers("getmeds_create_login")
def _create_login(ph: Pharmacy) -> None:
    w = ph.world
    ghost, later = (f"{n}{uuid.uuid4().hex[:6]}" for n in ("ghost", "later"))
    with ph.login(w.admin) as c:  # a staff row without a login yet (an imported one)
        c.execute("INSERT INTO staff (id, username, full_name, role, active, created_at, "
                  "updated_at, version) VALUES (gen_random_uuid(), %s, 'Later Login', "
                  "'clerk', true, now(), now(), 1)", (later,))
    with attacker(ph, w.admin) as c:
        _catalog_shadows(c)
        c.execute("INSERT INTO pg_temp.staff (id, username, full_name, role, active) VALUES "
                  "(gen_random_uuid(), %s, 'Ghost', 'admin', true)", (ghost,))
        refused(c, "SELECT getmeds_create_login(%s, %s, %s)",
                (ghost, verifier(c, ghost, PASSWORD), ph.group("admin")),
                match="no active staff member")
        c.execute("SELECT getmeds_create_login(%s, %s, %s)",
                  (later, verifier(c, later, PASSWORD), ph.group("clerk")))
        c.commit()
        assert temp_count(c, "audit_log") == 0
    assert ph.one("SELECT count(*) FROM pg_roles WHERE rolname = %s", (ghost,)) == 0
    assert ph.q("SELECT g.rolname FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid "
                "JOIN pg_roles u ON u.oid = m.member WHERE u.rolname = %s", (later,)) == [
        (ph.group("clerk"),)]
    db_user, _, action, after = last_audit(ph, "db_logins", later)
    assert (db_user, action, after["group"]) == (w.admin.username, "INSERT", ph.group("clerk"))
    with ph.login(later):
        pass  # the new login signs in with its password


@covers("getmeds_add_staff")
def _add_staff(ph: Pharmacy) -> None:
    w = ph.world
    name = f"added{uuid.uuid4().hex[:6]}"
    with attacker(ph, w.admin) as c:
        _catalog_shadows(c)
        # a temporary pg_roles that says the login exists already
        c.execute("INSERT INTO pg_temp.pg_roles (rolname, oid) VALUES (%s, 1)", (name,))
        sid = c.execute("SELECT getmeds_add_staff(gen_random_uuid(), %s, %s, %s, 'Added Here')",
                        (name, verifier(c, name, PASSWORD), ph.group("pharmacist"))
                        ).fetchone()[0]
        c.commit()
        assert temp_count(c, "audit_log") == 0
        assert c.execute("SELECT count(*) FROM pg_temp.staff WHERE username = %s",
                         (name,)).fetchone()[0] == 0
    assert ph.q("SELECT username, role, active, updated_by FROM staff WHERE id = %s",
                (sid,)) == [(name, "pharmacist", True, w.admin.username)]
    assert last_audit(ph, "staff", sid)[:3] == (w.admin.username, w.admin.username, "INSERT")
    assert last_audit(ph, "db_logins", name)[2] == "INSERT"
    with ph.login(name):
        pass


@contextlib.contextmanager
def superuser(ph: Pharmacy) -> Iterator[str]:
    """A throwaway superuser (NOLOGIN: nobody could use it even if reset)."""
    name = f"{ph.prefix}su{uuid.uuid4().hex[:6]}"
    ph.q(f'CREATE ROLE "{name}" SUPERUSER NOLOGIN')
    try:
        yield name
    finally:
        ph.q(f'DROP ROLE "{name}"')


@covers("getmeds_alter_login")
def _alter_login(ph: Pharmacy) -> None:
    w = ph.world
    name = f"resetme{uuid.uuid4().hex[:6]}"
    with ph.owner() as o:
        o.execute("SELECT getmeds_add_staff(NULL, %s, %s, %s, 'Reset Me')",
                  (name, verifier(o, name, PASSWORD), ph.group("clerk")))
    with superuser(ph) as su, attacker(ph, w.admin) as c:
        _catalog_shadows(c)
        # catalogs that say the superuser is an ordinary clerk of this pharmacy
        c.execute("UPDATE pg_temp.pg_roles SET rolsuper = false WHERE rolname = %s", (su,))
        c.execute("INSERT INTO pg_temp.pg_auth_members (roleid, member) SELECT g.oid, u.oid "
                  "FROM pg_catalog.pg_roles g, pg_catalog.pg_roles u WHERE g.rolname = %s "
                  "AND u.rolname = %s", (ph.group("clerk"), su))
        c.execute("INSERT INTO pg_temp.staff (id, username, full_name, role, active) VALUES "
                  "(gen_random_uuid(), %s, 'Super', 'clerk', true)", (su,))
        refused(c, "SELECT getmeds_alter_login(%s, %s, NULL)",
                (su, verifier(c, su, "taken over 123")), match="not a GetMeds staff login")
        c.execute("SELECT getmeds_alter_login(%s, %s, NULL)",
                  (name, verifier(c, name, "a fresh password 1")))
        c.commit()
        assert temp_count(c, "audit_log") == 0
        assert ph.one("SELECT rolpassword FROM pg_authid WHERE rolname = %s", (su,)) is None
    with ph.login(name, "a fresh password 1"):
        pass
    _, _, action, after = last_audit(ph, "db_logins", name)
    assert (action, after["password"]) == ("UPDATE", "reset")


@covers("getmeds_check_verifier")
def _verifier(ph: Pharmacy) -> None:
    with attacker(ph, ph.world.admin) as c:
        refused(c, "SELECT getmeds_check_verifier('SCRAM-SHA-256$x')", match="SCRAM-SHA-256")
        c.execute("SELECT getmeds_check_verifier(%s)", (verifier(c, "x1", "whatever 123"),))


@covers("getmeds_restrict_database")
def _restrict(ph: Pharmacy) -> None:
    with attacker(ph, ph.world.clerk) as c, pytest.raises(psycopg.errors.InsufficientPrivilege):
        c.execute("SELECT getmeds_restrict_database()")
    with ph.owner() as c:
        shadow(c, "pg_database")  # the owner's own temporary table, for completeness
        c.execute("SELECT getmeds_restrict_database()")
        acl = c.execute("SELECT datacl::text[] FROM pg_catalog.pg_database "
                        "WHERE datname = current_database()").fetchone()[0]
    assert not [a for a in acl if a.startswith("=")]


# ------------------------------------------------------------- identity


@covers("getmeds_guard_stock_movements")
def _guard_movements(ph: Pharmacy) -> None:
    w = ph.world
    _, lot = ph.stocked("Shadowledger", 5)
    with attacker(ph, w.pharmacist) as c:
        me_is(c, w.clerk.staff_id)
        statement = sql.movement("receipt").replace("INTO stock_movements",
                                                    "INTO public.stock_movements")
        refused(c, statement, {"mid": None, "lot": lot, "qty": 3, "staff": w.clerk.staff_id},
                match="staff_id must be the signed-in staff member")
        c.execute(statement, {"mid": None, "lot": lot, "qty": 3, "staff": w.pharmacist.staff_id})
        c.commit()
    assert ph.one("SELECT on_hand FROM stock_lots WHERE id = %s", (lot,)) == 8


@covers("getmeds_guard_dispense_warnings")
def _guard_warnings(ph: Pharmacy) -> None:
    w = ph.world
    product, _ = ph.stocked("Shadowwarning", 20)
    rx = ph.rx(product.id, quantity=5)
    done = dispensing.dispense(w.sf, w.pharmacist, DispenseRequest(rx.id, uuid.uuid4(),
                                                                   no_scan_reason=NO_SCAN))
    with attacker(ph, w.pharmacist) as c:
        me_is(c, w.clerk.staff_id)
        refused(c, "INSERT INTO public.dispense_warnings (id, dispense_id, kind, key, detail, "
                   "reason, acknowledged_by) VALUES (gen_random_uuid(), %s, 'allergy', 'k', "
                   "'d', 'r', %s)", (done.dispense_id, w.clerk.staff_id),
                match="acknowledged_by must be the signed-in staff member")


@covers("getmeds_guard_prescriptions")
def _guard_rx(ph: Pharmacy) -> None:
    w = ph.world
    product, _ = ph.stocked("Shadowrx", 5)
    patient = w.patient("Shadow", "Rx")
    rid = uuid.uuid4()
    params = {"id": rid, "patient": patient.id, "prescriber": w.prescriber_id,
              "product": product.id, "staff": w.clerk.staff_id, "updated_by": "someone-else"}
    statement = sql.new_rx().replace("INTO prescriptions", "INTO public.prescriptions")
    with attacker(ph, w.pharmacist) as c:
        me_is(c, w.clerk.staff_id)
        refused(c, statement, params, match="created_by must be the signed-in staff member")
        c.execute(statement, dict(params, staff=w.pharmacist.staff_id))
        c.commit()
        refused(c, "UPDATE public.prescriptions SET created_by = %s WHERE id = %s",
                (w.clerk.staff_id, rid), match="cannot be changed")
    assert ph.q("SELECT created_by, updated_by FROM prescriptions WHERE id = %s", (rid,)) == [
        (w.pharmacist.staff_id, w.pharmacist.username)]


@covers("getmeds_guard_stocktakes", "getmeds_guard_stocktake_lines")
def _guard_stocktake(ph: Pharmacy) -> None:
    w = ph.world
    _, lot = ph.stocked("Shadowcount", 5)
    new = ("INSERT INTO public.stocktakes (id, scope, status, started_by, created_at, "
           "updated_at, version) VALUES (%s, 'all', 'open', %s, now(), now(), 1)")
    line = ("INSERT INTO public.stocktake_lines (id, stocktake_id, lot_id, expected_quantity, "
            "counted_quantity, counted_by) VALUES (gen_random_uuid(), %s, %s, 5, 4, %s)")
    with attacker(ph, w.pharmacist) as c:
        me_is(c, w.clerk.staff_id)
        refused(c, new, (uuid.uuid4(), w.clerk.staff_id), match="started_by must be")
        sid = uuid.uuid4()
        c.execute(new, (sid, w.pharmacist.staff_id))
        c.commit()
        refused(c, line, (sid, lot, w.clerk.staff_id), match="counted_by must be")
        c.execute(line, (sid, lot, w.pharmacist.staff_id))
        c.commit()
        refused(c, "UPDATE public.stocktakes SET posted_by = %s WHERE id = %s",
                (w.clerk.staff_id, sid), match="posted_by must be")


@covers("getmeds_guard_patient_feedback")
def _guard_feedback(ph: Pharmacy) -> None:
    w = ph.world
    patient = w.patient("Shadow", "Feedback")
    new = ("INSERT INTO public.patient_feedback (id, patient_id, feedback, received_by, "
           "created_at, updated_at, version) VALUES (%s, %s, 'Kind staff', %s, now(), now(), 1)")
    with attacker(ph, w.clerk) as c:
        me_is(c, w.pharmacist.staff_id)
        refused(c, new, (uuid.uuid4(), patient.id, w.pharmacist.staff_id),
                match="received_by must be")
        fid = uuid.uuid4()
        c.execute(new, (fid, patient.id, w.clerk.staff_id))
        c.commit()
        refused(c, "UPDATE public.patient_feedback SET reply = 'Thanks', replied_by = %s, "
                   "replied_at = now() WHERE id = %s", (w.pharmacist.staff_id, fid),
                match="replied_by must be")


@covers("getmeds_stamp_updated_by")
def _stamp(ph: Pharmacy) -> None:
    w = ph.world
    patient = w.patient("Shadow", "Stamp")
    with attacker(ph, w.clerk) as c:
        me_is(c, w.admin.staff_id)
        c.execute("UPDATE public.patients SET updated_by = %s, phone = '555-0142' "
                  "WHERE id = %s", (w.admin.username, patient.id))
        c.commit()
    assert ph.one("SELECT updated_by FROM patients WHERE id = %s", (patient.id,)) == \
        w.clerk.username


@covers("getmeds_guard_staff")
def _guard_staff(ph: Pharmacy) -> None:
    w = ph.world
    name = f"keepname{uuid.uuid4().hex[:6]}"
    with ph.owner() as o:
        sid = o.execute("SELECT getmeds_add_staff(NULL, %s, %s, %s, 'Keep Name')",
                        (name, verifier(o, name, PASSWORD), ph.group("clerk"))).fetchone()[0]
    with attacker(ph, w.admin) as c:
        # a pg_roles that says this staff member has no login
        shadow(c, "pg_roles")
        c.execute("DELETE FROM pg_temp.pg_roles WHERE rolname = %s", (name,))
        refused(c, "UPDATE public.staff SET username = 'someone' WHERE id = %s", (sid,),
                match="username cannot change")
        refused(c, "DELETE FROM public.staff WHERE id = %s", (sid,), match="deactivate them")
        c.execute("UPDATE public.staff SET full_name = 'Kept Name', updated_by = 'x' "
                  "WHERE id = %s", (sid,))
        c.commit()
    assert ph.q("SELECT username, full_name, updated_by FROM staff WHERE id = %s", (sid,)) == [
        (name, "Kept Name", w.admin.username)]


# ----------------------------------------------------------- dispensing


@covers("getmeds_guard_label_prints")
def _guard_label_prints(ph: Pharmacy) -> None:
    # a temporary staff table that says this login is the administrator does not
    # let a label print be recorded in the administrator's name
    w = ph.world
    product, _lot = ph.stocked("Shadowlabel", 10)
    rx = ph.rx(product.id, quantity=2)
    d = dispensing.dispense(w.sf, w.pharmacist, DispenseRequest(
        rx.id, uuid.uuid4(), no_scan_reason=NO_SCAN))
    with attacker(ph, w.pharmacist) as c:
        me_is(c, w.admin.staff_id)
        c.commit()
        refused(c, "INSERT INTO public.label_prints (id, dispense_id, printed_by, printed_at,"
                   " reprint, reason) VALUES (gen_random_uuid(), %s, %s, now(), false, NULL)",
                (d.dispense_id, w.admin.staff_id),
                match="printed_by must be the signed-in staff member")
    assert ph.one("SELECT count(*) FROM label_prints") == 0


@covers("getmeds_equivalent_products")
def _equivalent_products(ph: Pharmacy) -> None:
    # temporary products and ingredients that make another drug look like the
    # prescribed one do not let a substitution through
    w = ph.world
    me = w.pharmacist.staff_id
    product, _ = ph.stocked("Shadowsub", 5)
    rx = ph.rx(product.id, quantity=5)
    other = w.product("Shadowsub", strength="77 mg")
    other_lot = w.receive(other.id, 20, lot="SHSUB-1").lot_id
    with attacker(ph, w.pharmacist) as c:
        shadow(c, "products", "product_ingredients")
        c.execute("INSERT INTO pg_temp.products SELECT * FROM public.products")
        c.execute("UPDATE pg_temp.products SET strength = %s WHERE id = %s",
                  (product.strength, other.id))
        c.execute("INSERT INTO pg_temp.product_ingredients "
                  "SELECT * FROM public.product_ingredients")
        c.commit()
        steps = sql.dispense(rx.id, other_lot, 5, me)
        insert, params = steps[0]
        insert = (insert.replace("INTO dispenses", "INTO public.dispenses")
                  .replace("request_id) VALUES", "request_id, dispensed_product_id) VALUES")
                  .replace("gen_random_uuid())", "gen_random_uuid(), %(sub)s)"))
        rest = [(x.replace("INTO stock_movements", "INTO public.stock_movements")
                 .replace("UPDATE prescriptions", "UPDATE public.prescriptions"), p)
                for x, p in steps[1:]]
        refused_at_commit(c, [(insert, dict(params, sub=other.id)), *rest],
                          match="same ingredients, strength and dosage form")
    assert ph.one("SELECT on_hand FROM stock_lots WHERE id = %s", (other_lot,)) == 20


@covers("getmeds_check_dispense")
def _check_dispense(ph: Pharmacy) -> None:
    w = ph.world
    me = w.pharmacist.staff_id
    product, lot = ph.stocked("Shadowcancel", 20)
    rx = ph.rx(product.id, quantity=5)
    with attacker(ph, w.pharmacist) as c:
        shadow(c, "prescriptions", "dispenses", "stock_movements", "stock_lots", "staff")
        c.execute("INSERT INTO pg_temp.prescriptions SELECT * FROM public.prescriptions")
        c.execute("UPDATE pg_temp.prescriptions SET status = 'new', quantity = 500")
        # a history in which part 1 left 5 owed, and movements that take the quantity
        c.execute("INSERT INTO pg_temp.dispenses (id, prescription_id, fill_number, part, "
                  "quantity, owed_after) VALUES (gen_random_uuid(), %s, 0, 1, 0, 5)", (rx.id,))
        c.commit()

        def real(steps: list[tuple[str, dict]]) -> list[tuple[str, dict]]:
            return [(s.replace("INTO dispenses", "INTO public.dispenses")
                     .replace("INTO stock_movements", "INTO public.stock_movements")
                     .replace("UPDATE prescriptions", "UPDATE public.prescriptions"), p)
                    for s, p in steps]

        refused_at_commit(c, real(sql.dispense(rx.id, lot, 5, me, part=2)),
                          match="follows no part 1")
        refused_at_commit(c, real(sql.dispense(rx.id, lot, 15, me, owed=0)),
                          match="5 remain")
        steps = real(sql.dispense(rx.id, lot, 5, me, update_rx=False))
        steps.append(("UPDATE public.prescriptions SET status = 'cancelled' WHERE id = %(rx)s",
                      {"rx": rx.id}))
        refused_at_commit(c, steps, match="is cancelled")
    assert ph.one("SELECT count(*) FROM dispenses WHERE prescription_id = %s", (rx.id,)) == 0
    assert ph.one("SELECT on_hand FROM stock_lots WHERE id = %s", (lot,)) == 20


@covers("getmeds_guard_dispenses")
def _guard_dispenses(ph: Pharmacy) -> None:
    w = ph.world
    product, lot = ph.stocked("Shadowhold", 20)
    rx = ph.rx(product.id, quantity=5)
    prescriptions.change_status(w.sf, w.pharmacist, rx.id, prescriptions.RxAction.HOLD,
                                reason="Insurance")
    with attacker(ph, w.pharmacist) as c:
        shadow(c, "prescriptions")
        c.execute("INSERT INTO pg_temp.prescriptions SELECT * FROM public.prescriptions")
        c.execute("UPDATE pg_temp.prescriptions SET status = 'new'")
        statement, params = sql.dispense(rx.id, lot, 5, w.pharmacist.staff_id)[0]
        refused(c, statement.replace("INTO dispenses", "INTO public.dispenses"), params,
                match="is on hold")


# ------------------------------------------------ DEA rules (migration 0016)


def _shadow_copy(c: psycopg.Connection, *tables: str) -> None:
    """Temporary copies of our tables, rows and all, for the attacker to edit."""
    shadow(c, *tables)
    for table in tables:
        c.execute(f"INSERT INTO pg_temp.{table} SELECT * FROM public.{table}")


@covers("getmeds_check_dea_schedule_ii")
def _check_dea_schedule_ii(ph: Pharmacy) -> None:
    # temporary prescriptions without the earliest fill date, products that are
    # not Schedule II, and a first part with a longer limit and a fresh audit
    # row change none of the refusals
    w = ph.world
    me = w.pharmacist.staff_id
    product, lot = ph.stocked("Shadowdea", 50, Schedule.II)
    early = ph.rx(product.id, quantity=10)
    ph.q("UPDATE prescriptions SET not_before = current_date + 5 WHERE id = %s", (early.id,))
    late = ph.rx(product.id, quantity=10)
    now = clock.now()
    clock.pin(now - dt.timedelta(days=4))
    try:
        first = dispensing.dispense(w.sf, w.pharmacist, DispenseRequest(
            late.id, uuid.uuid4(), quantity=4, no_scan_reason=NO_SCAN,
            partial_reason=PartialReason.SHORTAGE))
    finally:
        clock.pin(now)
    with attacker(ph, w.pharmacist) as c:
        _shadow_copy(c, "prescriptions", "products", "dispenses")
        c.execute("UPDATE pg_temp.prescriptions SET not_before = NULL")
        c.execute("UPDATE pg_temp.products SET schedule = 'none'")
        c.execute("UPDATE pg_temp.dispenses SET partial_reason = 'long_term_care', "
                  "dispensed_at = now()")
        shadow(c, "audit_log")
        c.execute("INSERT INTO pg_temp.audit_log (occurred_at, table_name, row_id, action) "
                  "VALUES (now(), 'dispenses', %s, 'INSERT')", (str(first.dispense_id),))
        c.commit()
        insert, params = sql.dispense(early.id, lot, 10, me)[0]
        refused(c, insert.replace("INTO dispenses", "INTO public.dispenses"), params,
                match="may not be filled before")
        insert, params = sql.dispense(late.id, lot, 6, me, part=2)[0]
        refused(c, insert.replace("INTO dispenses", "INTO public.dispenses"), params,
                match="within 72 hours of the first part")
        insert, params = sql.dispense(early.id, lot, 4, me, owed=6)[0]
        ph.q("UPDATE prescriptions SET not_before = NULL WHERE id = %s", (early.id,))
        refused(c, insert.replace("INTO dispenses", "INTO public.dispenses"), params,
                match="records its reason")


@covers("getmeds_guard_dea_prescriptions")
def _guard_dea_prescriptions(ph: Pharmacy) -> None:
    # a temporary staff table that makes the pharmacist the prescriber (or
    # somebody else), and no dispenses, change none of the refusals
    w = ph.world
    product, lot = ph.stocked("Shadowguard", 50, Schedule.II)
    rx = ph.rx(product.id, quantity=10, prescriber_id=w.doctor.prescriber_id,
               actor=w.doctor)
    ph.q("UPDATE prescriptions SET not_before = current_date + 9 WHERE id = %s", (rx.id,))
    filled = ph.rx(product.id, quantity=10)
    dispensing.dispense(w.sf, w.pharmacist, DispenseRequest(
        filled.id, uuid.uuid4(), quantity=4, no_scan_reason=NO_SCAN,
        partial_reason=PartialReason.SHORTAGE))
    with attacker(ph, w.pharmacist) as c:
        _shadow_copy(c, "staff")
        c.execute("UPDATE pg_temp.staff SET prescriber_id = %s, id = %s "
                  "WHERE username = session_user", (w.doctor.prescriber_id, w.admin.staff_id))
        shadow(c, "dispenses")
        c.commit()
        refused(c, "UPDATE public.prescriptions SET not_before = NULL WHERE id = %s", (rx.id,),
                match="only its prescriber")
        refused(c, "UPDATE public.prescriptions SET daw_code = 3 WHERE id = %s", (filled.id,),
                match="has been dispensed")
        refused(c, "UPDATE public.prescriptions SET remainder_void_at = now(), "
                   "remainder_void_by = %s, prescriber_notice = 'Phoned' WHERE id = %s",
                (w.admin.staff_id, filled.id), match="remainder_void_by must be")
    assert ph.one("SELECT remainder_void_at FROM prescriptions WHERE id = %s",
                  (filled.id,)) is None


@covers("getmeds_pharmacy_time_zone")
def _pharmacy_time_zone(ph: Pharmacy) -> None:
    # temporary catalogs that give this database another time zone do not move
    # the pharmacy's day
    w = ph.world
    product, lot = ph.stocked("Shadowzone", 20, Schedule.II)
    rx = ph.rx(product.id, quantity=10)
    ph.q("UPDATE prescriptions SET not_before = (now() AT TIME ZONE 'Pacific/Kiritimati')::date"
         " WHERE id = %s", (rx.id,))
    try:
        ph.q(f"ALTER DATABASE \"{ph.database}\" SET timezone = 'Etc/GMT+12'")
        with attacker(ph, w.pharmacist) as c:
            shadow(c, "pg_db_role_setting", "pg_database")
            c.execute("UPDATE pg_temp.pg_db_role_setting "
                      "SET setconfig = '{TimeZone=Pacific/Kiritimati}'")
            c.commit()
            insert, params = sql.dispense(rx.id, lot, 10, w.pharmacist.staff_id)[0]
            refused(c, insert.replace("INTO dispenses", "INTO public.dispenses"), params,
                    match="may not be filled before")
    finally:
        ph.q(f"ALTER DATABASE \"{ph.database}\" RESET timezone")


@covers("getmeds_fill_unchanged")
def _fill_unchanged(ph: Pharmacy) -> None:
    # temporary prescriptions and lots that say a quarantined, empty lot is still
    # available do not get a fill past the check of its locks (0025)
    w = ph.world
    product, lot = ph.stocked("Shadowfill", 5)
    rx = ph.rx(product.id, quantity=5)
    ph.q("UPDATE stock_lots SET status = 'quarantined' WHERE id = %s", (lot,))
    version = ph.one("SELECT version FROM prescriptions WHERE id = %s", (rx.id,))
    call = ("SELECT getmeds_fill_unchanged(%(rx)s, %(v)s, ARRAY[%(lot)s]::uuid[], "
            "ARRAY[%(take)s]::integer[], current_date, now())")
    params = {"rx": rx.id, "v": version, "lot": lot, "take": 5}
    with attacker(ph, w.pharmacist) as c:
        shadow(c, "stock_lots", "prescriptions")
        c.execute("INSERT INTO pg_temp.prescriptions SELECT * FROM public.prescriptions "
                  "WHERE id = %s", (rx.id,))
        c.execute("INSERT INTO pg_temp.stock_lots SELECT * FROM public.stock_lots WHERE id = %s",
                  (lot,))
        c.execute("UPDATE pg_temp.stock_lots SET status = 'available', on_hand = 1000")
        c.commit()
        refused(c, call, params, match="changed after it was prepared")
        # the real prescription's version is what counts, not a temporary one's
        c.execute("UPDATE pg_temp.prescriptions SET version = version + 7")
        ph.q("UPDATE stock_lots SET status = 'available' WHERE id = %s", (lot,))
        c.execute(call, params)
        c.rollback()
        refused(c, call, dict(params, v=version + 7), match="prescription changed")


# -------------------------------------------------------- notifications


def _notified(listener: psycopg.Connection) -> list[dict]:
    return [json.loads(n.payload) for n in listener.notifies(timeout=0.5)]


def _notify_case(who: str, setup: Callable[[Pharmacy], dict],
                 statement: str | Callable[[dict], list[tuple[str, dict]]],
                 shown_as: str, key: str, op: str, table: str) -> Callable[[Pharmacy], None]:
    def run(ph: Pharmacy) -> None:
        actor = getattr(ph.world, who)
        params = setup(ph)
        with ph.owner() as listener:
            listener.execute("LISTEN getmeds_changes")
            with attacker(ph, actor) as c:
                shadow(c, table)
                steps = statement(params) if callable(statement) else [(statement, params)]
                for s, p in steps:
                    c.execute(s, p)
                c.commit()
            got = _notified(listener)
        ours = [n for n in got if n["t"] == shown_as and n["id"] == str(params[key])]
        assert ours and all(set(n) == {"t", "id", "op"} for n in got), got
        assert {n["op"] for n in ours} == {op}
    return run


def _patient(ph: Pharmacy) -> dict:
    return {"patient": ph.world.patient("Shadow", "Notify").id, "id": uuid.uuid4()}


def _lot(ph: Pharmacy) -> dict:
    product, lot = ph.stocked(f"Shadownote{uuid.uuid4().hex[:4]}", 5)
    return {"product": product.id, "lot": lot, "id": uuid.uuid4(), "number": "NEW-1",
            "mid": uuid.uuid4(), "qty": 4, "staff": ph.world.pharmacist.staff_id}


def _rx(ph: Pharmacy) -> dict:
    w = ph.world
    product, lot = ph.stocked(f"Shadowrxnote{uuid.uuid4().hex[:4]}", 20)
    patient = w.patient("Shadow", "Rxnote")
    return {"id": uuid.uuid4(), "patient": patient.id, "prescriber": w.prescriber_id,
            "product": product.id, "staff": w.clerk.staff_id, "updated_by": None, "lot": lot}


def _dispensable(ph: Pharmacy) -> dict:
    p = _rx(ph)
    rx = ph.rx(p["product"], quantity=5)
    return dict(p, rx=rx.id, dispense=uuid.uuid4(), staff_pharmacist=ph.world.pharmacist.staff_id)


for _name, _case in {
    "getmeds_notify_patients": _notify_case(
        "clerk", _patient, "UPDATE public.patients SET notes = 'n' WHERE id = %(patient)s",
        "patients", "patient", "update", "patients"),
    "getmeds_notify_patient_allergies": _notify_case(
        "clerk", _patient, "INSERT INTO public.patient_allergies (id, patient_id, allergen, "
        "severity, recorded_at) VALUES (%(id)s, %(patient)s, 'Latex', 'mild', now())",
        "patients", "patient", "insert", "patient_allergies"),
    "getmeds_notify_patient_conditions": _notify_case(
        "clerk", _patient, "INSERT INTO public.patient_conditions (id, patient_id, name, "
        "recorded_at) VALUES (%(id)s, %(patient)s, 'Asthma', now())",
        "patients", "patient", "insert", "patient_conditions"),
    "getmeds_notify_products": _notify_case(
        "admin", _lot, "UPDATE public.products SET reorder_level = 7 WHERE id = %(product)s",
        "products", "product", "update", "products"),
    "getmeds_notify_stock_lots": _notify_case(
        "pharmacist", _lot, sql.NEW_LOT.replace("INTO stock_lots", "INTO public.stock_lots"),
        "stock_lots", "id", "insert", "stock_lots"),
    "getmeds_notify_stock_lots_update": _notify_case(
        "pharmacist", _lot, "UPDATE public.stock_lots SET status = 'recalled', status_reason = "
        "'Recall', version = version + 1 WHERE id = %(lot)s",
        "stock_lots", "lot", "update", "stock_lots"),
    "getmeds_notify_stock_movements": _notify_case(
        "pharmacist", _lot, sql.movement("receipt").replace("INTO stock_movements",
                                                            "INTO public.stock_movements"),
        "stock_movements", "mid", "insert", "stock_movements"),
    "getmeds_notify_prescriptions": _notify_case(
        "clerk", _rx, sql.new_rx().replace("INTO prescriptions", "INTO public.prescriptions"),
        "prescriptions", "id", "insert", "prescriptions"),
    "getmeds_notify_dispenses": _notify_case(
        "pharmacist", _dispensable,
        lambda p: [(s.replace("INTO dispenses", "INTO public.dispenses")
                    .replace("INTO stock_movements", "INTO public.stock_movements")
                    .replace("UPDATE prescriptions", "UPDATE public.prescriptions"), q)
                   for s, q in sql.dispense(p["rx"], p["lot"], 5, p["staff_pharmacist"],
                                            dispense_id=p["dispense"])],
        "dispenses", "dispense", "insert", "dispenses"),
}.items():
    covers(_name)(_case)


# ------------------------------------------------------------- transfers (0020)

_TRANSFER_OUT = ("INSERT INTO public.prescription_transfers (id, prescription_id, direction, "
                 "pharmacy_name, pharmacy_address, other_pharmacist, pharmacist_id, "
                 "transferred_at, request_id) VALUES (gen_random_uuid(), %s, 'out', 'Elsewhere',"
                 " '1 Road', 'Pat Lee', %s, now(), gen_random_uuid())")


@covers("getmeds_guard_transfers")
def _guard_transfers(ph: Pharmacy) -> None:
    # a temporary staff table that makes an administrator a pharmacist does not
    # let them transfer
    w = ph.world
    product, _lot = ph.stocked("Shadowxfer", 10)
    rx = ph.rx(product.id, refills=1)
    with attacker(ph, w.admin) as c:
        shadow(c, "staff")
        c.execute("INSERT INTO pg_temp.staff SELECT * FROM public.staff")
        c.execute("UPDATE pg_temp.staff SET role = 'pharmacist'")
        c.commit()
        refused(c, _TRANSFER_OUT, (rx.id, w.admin.staff_id), match="only a pharmacist transfers")
    assert ph.one("SELECT count(*) FROM prescription_transfers WHERE prescription_id = %s",
                  (rx.id,)) == 0


@covers("getmeds_check_transfer_closed")
def _check_transfer_closed(ph: Pharmacy) -> None:
    # a temporary prescriptions table that shows it closed does not let a
    # transfer out leave the prescription open
    w = ph.world
    product, _lot = ph.stocked("Shadowclose", 10)
    rx = ph.rx(product.id, refills=1)
    with attacker(ph, w.pharmacist) as c:
        shadow(c, "prescriptions")
        c.execute("INSERT INTO pg_temp.prescriptions SELECT * FROM public.prescriptions")
        c.execute("UPDATE pg_temp.prescriptions SET status = 'transferred'")
        c.commit()
        refused_at_commit(c, [(_TRANSFER_OUT, (rx.id, w.pharmacist.staff_id))],
                          match="closed here")
    assert ph.one("SELECT status FROM prescriptions WHERE id = %s", (rx.id,)) == "new"


@covers("getmeds_guard_transferred_rx")
def _guard_transferred_rx(ph: Pharmacy) -> None:
    # a temporary transfers table with a transfer out does not let a
    # prescription be closed without one
    w = ph.world
    product, _lot = ph.stocked("Shadowshut", 10)
    rx = ph.rx(product.id, refills=1)
    with attacker(ph, w.pharmacist) as c:
        shadow(c, "prescription_transfers")
        c.execute("INSERT INTO pg_temp.prescription_transfers (id, prescription_id, direction, "
                  "pharmacy_name, pharmacy_address, other_pharmacist, pharmacist_id, "
                  "transferred_at, request_id) VALUES (gen_random_uuid(), %s, 'out', 'X', 'Y',"
                  " 'Z', %s, now(), gen_random_uuid())", (rx.id, w.pharmacist.staff_id))
        c.commit()
        refused(c, "UPDATE public.prescriptions SET status = 'transferred', version = version "
                   "+ 1 WHERE id = %s", (rx.id,), match="only with its transfer out")
    assert ph.one("SELECT status FROM prescriptions WHERE id = %s", (rx.id,)) == "new"


@covers("getmeds_guard_transferred_fill")
def _guard_transferred_fill(ph: Pharmacy) -> None:
    # temporary prescriptions and transfers that show it open do not let a
    # transferred prescription be dispensed
    from getmeds_desktop.services import transfers

    w = ph.world
    product, lot = ph.stocked("Shadowgone", 10)
    rx = ph.rx(product.id, quantity=2, refills=1)
    transfers.transfer_out(w.sf, w.pharmacist, rx.id, transfers.OtherPharmacy(
        "Elsewhere", "1 Road", None, "Pat Lee"))
    with attacker(ph, w.pharmacist) as c:
        shadow(c, "prescriptions", "prescription_transfers")
        c.execute("INSERT INTO pg_temp.prescriptions SELECT * FROM public.prescriptions")
        c.execute("UPDATE pg_temp.prescriptions SET status = 'new'")
        c.commit()
        statement, params = sql.dispense(rx.id, lot, 2, w.pharmacist.staff_id)[0]
        refused(c, statement.replace("INSERT INTO dispenses", "INSERT INTO public.dispenses"),
                params, match="transferred to another pharmacy")
    assert ph.one("SELECT count(*) FROM dispenses WHERE prescription_id = %s", (rx.id,)) == 0


@covers("getmeds_check_schedule_ii_supply")
def _check_schedule_ii_supply(ph: Pharmacy) -> None:
    # temporary prescriptions of one day each, products that are not Schedule II
    # and settings that only warn change neither the 90-day total of 1306.12(b)
    # nor the pharmacy's refusal of a longer supply
    w = ph.world
    product, _lot = ph.stocked("Shadowsupply", 50, Schedule.II)
    patient = w.patient("Shadow", "Supply").id
    ph.q("UPDATE app_settings SET schedule_ii_max_days = 45, schedule_ii_over_limit = 'refuse'")
    params = {"patient": patient, "prescriber": w.prescriber_id, "product": product.id,
              "staff": w.pharmacist.staff_id, "updated_by": w.pharmacist.username}
    try:
        with attacker(ph, w.pharmacist) as c:
            _shadow_copy(c, "prescriptions", "products", "app_settings")
            c.execute("UPDATE pg_temp.prescriptions SET days_supply = 1")
            c.execute("UPDATE pg_temp.products SET schedule = 'none'")
            c.execute("UPDATE pg_temp.app_settings SET schedule_ii_over_limit = 'warn'")
            c.commit()
            insert = sql.new_rx().replace("INTO prescriptions", "INTO public.prescriptions")
            for _ in range(3):
                c.execute(insert, dict(params, id=uuid.uuid4()))
            c.commit()
            refused_at_commit(c, [(insert, dict(params, id=uuid.uuid4()))],
                              match="at most 90 are allowed")
            longer = insert.replace("'Take 1 daily', 30, 30,", "'Take 1 daily', 60, 60,")
            refused_at_commit(c, [(longer, dict(params, id=uuid.uuid4(),
                                                patient=w.patient("Shadow", "Longer").id))],
                              match="more than the 45 days")
    finally:
        ph.q("UPDATE app_settings SET schedule_ii_max_days = 90, "
             "schedule_ii_over_limit = 'warn'")


# ----------------------------------------------------------- the steps of a fill


@covers("getmeds_guard_dispense_steps")
def _guard_dispense_steps(ph: Pharmacy) -> None:
    # a temporary staff table that makes the technician a pharmacist, and
    # temporary settings that allow verifying one's own fill, change nothing
    w = ph.world
    product, _lot = ph.stocked("Shadowstep", 10)
    d = dispensing.dispense(w.sf, w.technician, DispenseRequest(
        ph.rx(product.id, quantity=2).id, uuid.uuid4(), no_scan_reason=NO_SCAN))
    with attacker(ph, w.technician) as c:
        shadow(c, "staff", "app_settings")
        c.execute("INSERT INTO pg_temp.staff SELECT * FROM public.staff")
        c.execute("UPDATE pg_temp.staff SET role = 'pharmacist'")
        c.execute("INSERT INTO pg_temp.app_settings SELECT * FROM public.app_settings")
        c.execute("UPDATE pg_temp.app_settings SET self_verify = true")
        c.commit()
        refused(c, "UPDATE public.dispenses SET status = 'verified', verified_by = %s, "
                   "verified_at = now() WHERE id = %s", (w.technician.staff_id, d.dispense_id),
                match="only a pharmacist verifies")
    assert ph.one("SELECT status FROM dispenses WHERE id = %s", (d.dispense_id,)) == "filled"


@covers("getmeds_check_restock")
def _check_restock(ph: Pharmacy) -> None:
    # a temporary ledger that shows the stock already back does not let a
    # fill be returned without its restock
    w = ph.world
    product, _lot = ph.stocked("Shadowback", 10)
    d = dispensing.dispense(w.sf, w.pharmacist, DispenseRequest(
        ph.rx(product.id, quantity=2).id, uuid.uuid4(), no_scan_reason=NO_SCAN))
    fills.verify(w.sf, w.pharmacist2, d.dispense_id)
    with attacker(ph, w.pharmacist) as c:
        shadow(c, "stock_movements", "dispenses")
        c.commit()
        refused_at_commit(c, [(
            "UPDATE public.dispenses SET status = 'returned', returned_by = %(me)s, "
            "returned_at = now(), return_reason = 'not_picked_up' WHERE id = %(d)s",
            {"me": w.pharmacist.staff_id, "d": d.dispense_id})], match="lots it came from")
    assert ph.one("SELECT status FROM dispenses WHERE id = %s", (d.dispense_id,)) == "verified"


@covers("getmeds_guard_warning_role")
def _guard_warning_role(ph: Pharmacy) -> None:
    # a temporary staff table that makes the technician a pharmacist does not
    # let a technician override a severe warning
    w = ph.world
    product, _lot = ph.stocked("Shadowstop", 10)
    d = dispensing.dispense(w.sf, w.technician, DispenseRequest(
        ph.rx(product.id, quantity=2).id, uuid.uuid4(), no_scan_reason=NO_SCAN))
    with attacker(ph, w.technician) as c:
        shadow(c, "staff")
        c.execute("INSERT INTO pg_temp.staff SELECT * FROM public.staff")
        c.execute("UPDATE pg_temp.staff SET role = 'pharmacist'")
        c.commit()
        refused(c, "INSERT INTO public.dispense_warnings (id, dispense_id, kind, key, detail, "
                   "severity, reason_code, reason, acknowledged_by) VALUES (gen_random_uuid(),"
                   " %s, 'allergy', 'allergy:x', 'x', 'severe', 'other', 'went ahead anyway',"
                   " %s)", (d.dispense_id, w.technician.staff_id),
                match="only a pharmacist overrides a severe")


@covers("getmeds_guard_new_fill")
def _guard_new_fill(ph: Pharmacy) -> None:
    # the check reads only the new row: a temporary dispenses table changes nothing
    w = ph.world
    product, lot = ph.stocked("Shadowfresh", 10)
    rx = ph.rx(product.id, quantity=2)
    with attacker(ph, w.pharmacist) as c:
        shadow(c, "dispenses")
        c.commit()
        statement, params = sql.dispense(rx.id, lot, 2, w.pharmacist.staff_id)[0]
        refused(c, statement.replace("INSERT INTO dispenses", "INSERT INTO public.dispenses")
                .replace("request_id)", "request_id, status, released_by, released_at, "
                         "verified_by, verified_at)")
                .replace("gen_random_uuid())", "gen_random_uuid(), 'released', %(staff)s, "
                         "now(), %(staff)s, now())"), params,
                match="a fill is written as filled")


@covers("getmeds_guard_recall_notices")
def _guard_recall_notices(ph: Pharmacy) -> None:
    # a temporary staff table that says this login is the pharmacist does not
    # let a recall notice be recorded in the pharmacist's name
    w = ph.world
    product, lot = ph.stocked("Shadowrecall", 10)
    d = dispensing.dispense(w.sf, w.pharmacist, DispenseRequest(
        ph.rx(product.id, quantity=2).id, uuid.uuid4(), no_scan_reason=NO_SCAN))
    with attacker(ph, w.clerk) as c:
        me_is(c, w.pharmacist.staff_id)
        c.commit()
        refused(c, "INSERT INTO public.recall_notices (id, lot_id, dispense_id, method, outcome,"
                   " notified_by, notified_at) VALUES (gen_random_uuid(), %s, %s, 'phone', "
                   "'told', %s, now())", (lot, d.dispense_id, w.pharmacist.staff_id),
                match="notified_by must be the signed-in staff member")
    assert ph.one("SELECT count(*) FROM recall_notices") == 0


@covers("getmeds_guard_dea_inventories")
def _guard_dea_inventories(ph: Pharmacy) -> None:
    # a temporary staff table that makes an administrator a pharmacist does not let
    # them take a DEA inventory
    w = ph.world
    with attacker(ph, w.admin) as c:
        shadow(c, "staff")
        c.execute("INSERT INTO pg_temp.staff SELECT * FROM public.staff")
        c.execute("UPDATE pg_temp.staff SET role = 'pharmacist' WHERE username = session_user")
        c.commit()
        refused(c, "INSERT INTO public.dea_inventories (id, kind, business, taken_on, taken_by,"
                   " taken_at, stocktake_id) VALUES (gen_random_uuid(), 'initial', 'opening',"
                   " current_date, %s, now(), gen_random_uuid())", (w.admin.staff_id,),
                match="only a pharmacist takes a DEA inventory")
    assert ph.one("SELECT count(*) FROM dea_inventories WHERE taken_by = %s",
                  (w.admin.staff_id,)) == 0


@covers("getmeds_guard_dea_inventory_lines")
def _guard_dea_inventory_lines(ph: Pharmacy) -> None:
    # a temporary inventory table that dates an old inventory to this transaction
    # does not let a line be added to it afterwards
    from getmeds_desktop.services import dea_inventory

    w = ph.world
    product = w.product("Shadowinv", schedule=Schedule.II)
    old = dea_inventory.take_inventory(w.sf, w.pharmacist, "initial", "opening", [
        dea_inventory.Count(ln.lot_id, ln.on_hand)
        for ln in dea_inventory.count_sheet(w.sf, w.pharmacist)])
    with attacker(ph, w.pharmacist) as c:
        shadow(c, "dea_inventories")
        c.execute("INSERT INTO pg_temp.dea_inventories SELECT * FROM public.dea_inventories")
        c.execute("UPDATE pg_temp.dea_inventories SET txn = txid_current()")
        refused(c, "INSERT INTO public.dea_inventory_lines (id, inventory_id, product_id,"
                   " schedule, product_name, quantity, exact) VALUES (gen_random_uuid(), %s,"
                   " %s, 'II', 'x', 0, true)", (old.id, product.id),
                match="never added afterwards")
    assert ph.one("SELECT count(*) FROM dea_inventory_lines WHERE inventory_id = %s",
                  (old.id,)) == len(old.lines)


@covers("getmeds_check_schedule_change")
def _check_schedule_change(ph: Pharmacy) -> None:
    # temporary inventory tables claiming this transaction's newly-controlled
    # inventory of the product do not let its schedule change alone
    w = ph.world
    product, _lot = ph.stocked("Shadowsched", 20)
    with attacker(ph, w.admin) as c:
        shadow(c, "dea_inventories", "dea_inventory_lines")
        inv = uuid.uuid4()
        c.execute("INSERT INTO pg_temp.dea_inventories (id, kind, business, taken_on, "
                  "taken_by, taken_at, stocktake_id, txn) VALUES (%s, 'newly_controlled', "
                  "'opening', current_date, %s, now(), gen_random_uuid(), txid_current())",
                  (inv, w.admin.staff_id))
        c.execute("INSERT INTO pg_temp.dea_inventory_lines (id, inventory_id, product_id, "
                  "schedule, product_name, quantity, exact) VALUES (gen_random_uuid(), %s, %s, "
                  "'IV', 'x', 20, true)", (inv, product.id))
        refused_at_commit(c, [("UPDATE public.products SET schedule = 'IV' WHERE id = %s",
                               (product.id,))],
                          match="changes only together with its newly-controlled")
    assert ph.one("SELECT schedule FROM products WHERE id = %s", (product.id,)) == "none"


@covers("getmeds_change_stamp")
def _change_stamp(ph: Pharmacy) -> None:
    # the row's stamp is the writing transaction's own id, whatever the row says
    # and whatever temporary tables stand beside it (0026)
    w = ph.world
    patient = w.patient("Shadow", "Changestamp")
    with attacker(ph, w.clerk) as c:
        shadow(c, "patients", "change_tombstones")
        c.execute("UPDATE public.patients SET phone = '555-0143', change_xid = 1 WHERE id = %s",
                  (patient.id,))
        xid = c.execute("SELECT pg_current_xact_id()::text::bigint").fetchone()[0]
        c.commit()
    assert ph.one("SELECT change_xid FROM patients WHERE id = %s", (patient.id,)) == xid


@covers("getmeds_change_tombstone")
def _change_tombstone(ph: Pharmacy) -> None:
    # a deleted row's tombstone goes to the real table, not to a temporary one
    w = ph.world
    patient = w.patient("Shadow", "Tombstone", allergies=("Latex",))
    allergy = ph.one("SELECT id FROM patient_allergies WHERE patient_id = %s", (patient.id,))
    with attacker(ph, w.clerk) as c:
        shadow(c, "change_tombstones")
        c.execute("DELETE FROM public.patient_allergies WHERE id = %s", (allergy,))
        assert temp_count(c, "change_tombstones") == 0
        c.commit()
    assert ph.one("SELECT count(*) FROM change_tombstones WHERE table_name = "
                  "'patient_allergies' AND row_key ->> 'id' = %s", (str(allergy),)) == 1


@covers("getmeds_prune_tombstones")
def _prune_tombstones(ph: Pharmacy) -> None:
    # the owner's maintenance only: no staff login may run it, shadows or not
    w = ph.world
    with attacker(ph, w.admin) as c:
        shadow(c, "change_tombstones")
        refused(c, "SELECT public.getmeds_prune_tombstones(interval '0 seconds')",
                match="permission denied")


# (after every scenario has registered)
@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_temporary_tables_change_nothing(pharmacy: Pharmacy, name: str):
    SCENARIOS[name](pharmacy)
