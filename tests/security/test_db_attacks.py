"""The attacks of the security review, each as the staff login that would try it.

First line of defence: staff logins cannot create temporary tables, and only
this pharmacy's groups may connect. Second line: even given TEMPORARY on
purpose, a temporary audit_log, products, controlled_register, staff, pg_roles
or pg_auth_members changes nothing, and the audit and register rows that must
exist do exist.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import errors

from getmeds_desktop.models import Schedule

from . import dbsql as sql
from .conftest import PASSWORD, Pharmacy, refused, shadow, verifier

TEMP_AUDIT_LOG = ("CREATE TEMP TABLE audit_log (id bigserial, occurred_at timestamptz, "
                  "actor text, db_user text, action text, table_name text, row_id text, "
                  "before jsonb, after jsonb)")


@contextlib.contextmanager
def attacker(ph: Pharmacy, who) -> Iterator[psycopg.Connection]:
    """The staff member's own login, given TEMPORARY on purpose; their own
    statements name the real tables."""
    with ph.temporary(who), ph.login(who) as c:
        c.execute("SET search_path = public, pg_temp")
        c.commit()
        yield c


# ------------------------------------------------------- first line


@pytest.mark.parametrize("role", ["admin", "pharmacist", "clerk", "doctor"])
def test_staff_cannot_create_temporary_tables(pharmacy: Pharmacy, role: str):
    with pharmacy.login(getattr(pharmacy.world, role)) as c:
        with pytest.raises(errors.InsufficientPrivilege, match="temporary tables"):
            c.execute(TEMP_AUDIT_LOG)


@contextlib.contextmanager
def other_pharmacy(ph: Pharmacy) -> Iterator[tuple[str, str]]:
    """Another pharmacy on the same server: its admin group and an admin login."""
    tag = uuid.uuid4().hex[:6]
    group, login = f"{ph.prefix}o{tag}_admin", f"{ph.prefix}o{tag}boss"
    ph.q(f'CREATE ROLE "{group}" NOLOGIN')
    ph.q(f'CREATE ROLE "{login}" LOGIN PASSWORD \'their own secret 1\' IN ROLE "{group}"')
    try:
        yield group, login
    finally:
        ph.q(f'DROP ROLE "{login}"')
        ph.q(f'DROP ROLE "{group}"')


def test_only_this_pharmacys_logins_may_connect(pharmacy: Pharmacy):
    outsider = f"{pharmacy.prefix}out{uuid.uuid4().hex[:6]}"
    pharmacy.q(f'CREATE ROLE "{outsider}" LOGIN PASSWORD \'{PASSWORD}\'')
    try:
        with pytest.raises(psycopg.OperationalError, match="CONNECT privilege"):
            pharmacy.login(outsider).close()
        with other_pharmacy(pharmacy) as (_group, theirs):
            with pytest.raises(psycopg.OperationalError, match="CONNECT privilege"):
                pharmacy.login(theirs, "their own secret 1").close()
    finally:
        pharmacy.q(f'DROP ROLE "{outsider}"')
    for role in ("admin", "pharmacist", "clerk", "doctor"):
        pharmacy.login(getattr(pharmacy.world, role)).close()


# ------------------------------------------------------ second line


def test_a_temporary_audit_log_does_not_hide_changes_to_patients(pharmacy: Pharmacy):
    w = pharmacy.world
    for who in (w.clerk, w.pharmacist, w.admin):
        pid = uuid.uuid4()
        with attacker(pharmacy, who) as c:
            c.execute(TEMP_AUDIT_LOG)
            c.execute(sql.NEW_PATIENT, {"id": pid})
            c.execute("UPDATE patients SET first_name = 'Hidden?' WHERE id = %s", (pid,))
            c.commit()
            assert c.execute("SELECT count(*) FROM pg_temp.audit_log").fetchone()[0] == 0
        rows = pharmacy.q("SELECT action, db_user, actor FROM audit_log WHERE table_name = "
                          "'patients' AND row_id = %s ORDER BY id", (str(pid),))
        assert rows == [("INSERT", who.username, who.username),
                        ("UPDATE", who.username, who.username)]


def test_a_clerk_cannot_receive_controlled_stock_through_temporary_products(
        pharmacy: Pharmacy):
    w = pharmacy.world
    product, lot = pharmacy.stocked("Attackoxycodone", 10, Schedule.II)
    plain, plain_lot = pharmacy.stocked("Attackplain", 10)
    registered = pharmacy.one("SELECT count(*) FROM controlled_register WHERE product_id = %s",
                              (product.id,))
    with attacker(pharmacy, w.clerk) as c:
        shadow(c, "products", "stock_lots")
        c.execute("INSERT INTO pg_temp.products SELECT * FROM public.products")
        c.execute("INSERT INTO pg_temp.stock_lots SELECT * FROM public.stock_lots")
        c.execute("UPDATE pg_temp.products SET schedule = 'none'")
        refused(c, sql.NEW_LOT, {"id": uuid.uuid4(), "product": product.id, "number": "X-1"},
                match="row-level security")
        refused(c, sql.receipt_with_order(), {"mid": None, "lot": lot, "qty": 100,
                                               "staff": w.clerk.staff_id,
                                               "supplier": w.supplier_id},
                match="row-level security")
        # ordinary stock still comes in, and is recorded as the clerk's
        c.execute(sql.movement("receipt"), {"mid": None, "lot": plain_lot, "qty": 5,
                                            "staff": w.clerk.staff_id})
        c.commit()
    assert pharmacy.one("SELECT on_hand FROM stock_lots WHERE id = %s", (lot,)) == 10
    assert pharmacy.one("SELECT count(*) FROM controlled_register WHERE product_id = %s",
                        (product.id,)) == registered
    assert pharmacy.one("SELECT on_hand FROM stock_lots WHERE id = %s", (plain_lot,)) == 15
    assert plain.schedule is Schedule.NONE


def test_a_schedule_ii_write_off_is_registered_despite_a_temporary_register(
        pharmacy: Pharmacy):
    w = pharmacy.world
    product, lot = pharmacy.stocked("Attackmorphine", 30, Schedule.II)
    mid = uuid.uuid4()
    with attacker(pharmacy, w.pharmacist) as c:
        shadow(c, "controlled_register")
        form = uuid.uuid4()  # a controlled write-off is posted from its DEA Form 41
        c.execute(sql.FORM_41, {"form": form, "staff": w.pharmacist.staff_id,
                                "w1": w.pharmacist.staff_id, "w2": w.technician.staff_id})
        c.execute(sql.from_form("write_off", reason="Expired"),
                  {"mid": mid, "lot": lot, "qty": -30, "staff": w.pharmacist.staff_id,
                   "form": form})
        c.commit()
        assert c.execute("SELECT count(*) FROM pg_temp.controlled_register").fetchone()[0] == 0
    assert pharmacy.q("SELECT register, kind, quantity, balance_after, staff_id FROM "
                      "controlled_register WHERE movement_id = %s", (mid,)) == [
        ("II", "write_off", -30, 0, w.pharmacist.staff_id)]
    assert pharmacy.q("SELECT action, db_user FROM audit_log WHERE table_name = "
                      "'stock_movements' AND row_id = %s", (str(mid),)) == [
        ("INSERT", w.pharmacist.username)]
    assert product.schedule is Schedule.II


def test_a_doctor_cannot_act_as_another_prescriber_through_a_temporary_staff_table(
        pharmacy: Pharmacy):
    w, other = pharmacy.world, pharmacy.doctor2
    product, _ = pharmacy.stocked("Attackdoctor", 5)
    patient = w.patient("Pat", "Impersonated")
    theirs = pharmacy.rx(product.id, prescriber_id=other.prescriber_id, actor=other,
                         patient_id=patient.id)
    params = {"id": None, "patient": patient.id, "prescriber": other.prescriber_id,
              "product": product.id, "staff": other.staff_id, "updated_by": None}
    with attacker(pharmacy, w.doctor) as c:
        shadow(c, "staff")
        c.execute("INSERT INTO pg_temp.staff SELECT * FROM public.staff")
        c.execute("UPDATE pg_temp.staff SET id = %s, prescriber_id = %s "
                  "WHERE username = session_user", (other.staff_id, other.prescriber_id))
        c.commit()
        # read
        assert c.execute("SELECT count(*) FROM prescriptions WHERE id = %s",
                         (theirs.id,)).fetchone()[0] == 0
        # edit and cancel
        assert c.execute("UPDATE prescriptions SET quantity = 90 WHERE id = %s",
                         (theirs.id,)).rowcount == 0
        assert c.execute("UPDATE prescriptions SET status = 'cancelled' WHERE id = %s",
                         (theirs.id,)).rowcount == 0
        c.commit()
        # create, as the other prescriber or in their name
        refused(c, sql.new_rx(), params)
        refused(c, sql.new_rx(), dict(params, prescriber=w.doctor.prescriber_id))
        # as themselves it works
        c.execute(sql.new_rx(), dict(params, prescriber=w.doctor.prescriber_id,
                                     staff=w.doctor.staff_id))
        c.commit()
    assert pharmacy.q("SELECT quantity, status FROM prescriptions WHERE id = %s",
                      (theirs.id,)) == [(theirs.quantity, "new")]


@contextlib.contextmanager
def superuser(ph: Pharmacy) -> Iterator[str]:
    name = f"{ph.prefix}su{uuid.uuid4().hex[:6]}"
    ph.q(f'CREATE ROLE "{name}" SUPERUSER NOLOGIN')
    try:
        yield name
    finally:
        ph.q(f'DROP ROLE "{name}"')


def test_an_admin_cannot_reach_other_roles_through_temporary_catalogs(pharmacy: Pharmacy):
    w = pharmacy.world
    with superuser(pharmacy) as su, other_pharmacy(pharmacy) as (_g, theirs):
        before = pharmacy.q("SELECT rolname, rolpassword, rolcanlogin FROM pg_authid "
                            "WHERE rolname = ANY(%s) ORDER BY 1", ([su, theirs],))
        with attacker(pharmacy, w.admin) as c:
            shadow(c, "pg_roles", "pg_auth_members", "staff")
            c.execute("INSERT INTO pg_temp.staff SELECT * FROM public.staff")
            for target in (su, theirs):
                # catalogs that say the target is an ordinary administrator here
                c.execute("UPDATE pg_temp.pg_roles SET rolsuper = false WHERE rolname = %s",
                          (target,))
                c.execute("INSERT INTO pg_temp.pg_auth_members (roleid, member) SELECT g.oid, "
                          "u.oid FROM pg_catalog.pg_roles g, pg_catalog.pg_roles u WHERE "
                          "g.rolname = %s AND u.rolname = %s", (pharmacy.group("admin"), target))
                c.execute("INSERT INTO pg_temp.staff (id, username, full_name, role, active) "
                          "VALUES (gen_random_uuid(), %s, 'Target', 'admin', true)", (target,))
            c.commit()
            for target in (su, theirs):
                v = verifier(c, target, "taken over 1234")
                for args in ((target, v, None), (target, None, False), (target, v, True)):
                    refused(c, "SELECT getmeds_alter_login(%s, %s, %s)", args,
                            match="not a GetMeds staff login of this pharmacy")
            # nor with a group of theirs
            refused(c, "SELECT getmeds_add_staff(NULL, 'intruder1', %s, %s, 'Intruder')",
                    (verifier(c, "intruder1", PASSWORD), _g), match="not a GetMeds group")
        after = pharmacy.q("SELECT rolname, rolpassword, rolcanlogin FROM pg_authid "
                           "WHERE rolname = ANY(%s) ORDER BY 1", ([su, theirs],))
        assert after == before
    assert pharmacy.one("SELECT count(*) FROM pg_roles WHERE rolname = 'intruder1'") == 0


# ------------------------------------------------- clinical knowledge


KB_INSERT = ("INSERT INTO knowledge_imports (id, kind, file_name, sha256, rule_count, "
             "source_label, content, imported_at, imported_by, active) VALUES "
             "(gen_random_uuid(), 'interactions', 'evil.csv', repeat('0', 64), 0, 'evil', "
             "'\\x00'::bytea, now(), 'someone', true)")


@pytest.mark.parametrize("role", ["pharmacist", "clerk", "doctor"])
def test_only_administrators_change_the_clinical_knowledge(pharmacy: Pharmacy, role: str):
    # the knowledge every fill is screened with is the administrator's to import
    with pharmacy.login(getattr(pharmacy.world, role)) as c:
        assert c.execute("SELECT count(*) FROM knowledge_imports").fetchone() == (0,)
        refused(c, KB_INSERT, match="permission denied")
        refused(c, "UPDATE knowledge_imports SET active = false", match="permission denied")


def test_an_administrator_cannot_rewrite_an_imported_file(pharmacy: Pharmacy):
    with pharmacy.login(pharmacy.world.admin) as c:
        c.execute(KB_INSERT)
        c.commit()
        refused(c, "UPDATE knowledge_imports SET content = '\\x01'::bytea",
                match="permission denied")
        refused(c, "DELETE FROM knowledge_imports", match="permission denied")
        c.execute("UPDATE knowledge_imports SET active = false")  # going back is allowed
        c.commit()
    assert pharmacy.one("SELECT count(*) FROM audit_log WHERE table_name = "
                        "'knowledge_imports' AND after ? 'content'") == 0


# ------------------------------------------------------------- label prints


LABEL_PRINT = ("INSERT INTO label_prints (id, dispense_id, printed_by, printed_at, reprint, "
               "reason) VALUES (gen_random_uuid(), %s, %s, now(), true, 'smudged label')")


def test_a_label_print_is_the_logins_own_and_stays(pharmacy: Pharmacy):
    from getmeds_desktop.services import dispensing
    from tests.fixtures.data import NO_SCAN

    w = pharmacy.world
    product, _lot = pharmacy.stocked("Labelattack", 20)
    rx = pharmacy.rx(product.id, quantity=5)
    d = dispensing.dispense(w.sf, w.pharmacist, dispensing.DispenseRequest(
        rx.id, uuid.uuid4(), no_scan_reason=NO_SCAN))
    with pharmacy.login(w.pharmacist) as c:
        # not in another pharmacist's (or the admin's) name
        refused(c, LABEL_PRINT, (d.dispense_id, w.admin.staff_id),
                match="printed_by must be the signed-in staff member")
        c.execute(LABEL_PRINT, (d.dispense_id, w.pharmacist.staff_id))
        c.commit()
        refused(c, "UPDATE label_prints SET reason = 'rewritten'", match="permission denied")
        refused(c, "DELETE FROM label_prints", match="permission denied")
    with pharmacy.login(w.clerk) as c:
        refused(c, LABEL_PRINT, (d.dispense_id, w.clerk.staff_id), match="permission denied")
    assert pharmacy.one("SELECT count(*) FROM label_prints") == 1
    # not even the owner rewrites the record of what was printed
    with pytest.raises(psycopg.errors.IntegrityConstraintViolation, match="permanent"), \
            pharmacy.owner() as c:
        c.execute("UPDATE label_prints SET reason = 'rewritten'")
