"""PostgreSQL: the database itself enforces the permission matrix.

Every test connects with psycopg directly as a staff member's own login role,
bypassing the application, and checks that what the role may do succeeds and
what it may not is refused by the server (permission denied or row-level
security)."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

import psycopg
import pytest
import sqlalchemy as sa
from psycopg import errors

from getmeds_desktop import db
from getmeds_desktop.config import DatabaseTarget
from getmeds_desktop.errors import AuthenticationFailed, ConfigError
from getmeds_desktop.models import Schedule
from getmeds_desktop.services import staff
from getmeds_desktop.services.context import SYSTEM
from getmeds_desktop.startup import Connector
from tests.fixtures.data import PASSWORD, build_world


@pytest.fixture
def pharmacy(pg_fresh_db):
    engine = db.make_engine(pg_fresh_db)
    world = build_world(db.session_factory(engine))
    plain = world.product("Secplain")
    controlled = world.product("Secoxy", schedule=Schedule.II)
    plain_lot = world.receive(plain.id, 50, lot="SP-1").lot_id
    controlled_lot = world.receive(controlled.id, 50, lot="SC-1").lot_id
    patient = world.patient("Sam", "Secure")
    other_rx = world.rx(patient.id, plain.id)  # written by the outside prescriber
    url = sa.engine.make_url(pg_fresh_db)
    yield {
        "world": world, "url": url, "plain": plain, "controlled": controlled,
        "plain_lot": plain_lot, "controlled_lot": controlled_lot, "patient": patient,
        "other_rx": other_rx,
    }
    engine.dispose()


@contextlib.contextmanager
def as_role(pharmacy: dict, actor) -> Iterator[psycopg.Connection]:
    url = pharmacy["url"]
    conn = psycopg.connect(host=url.host, port=url.port or 5432, dbname=url.database,
                           user=actor.username, password=PASSWORD)
    try:
        yield conn
    finally:
        conn.close()


def ok(conn: psycopg.Connection, sql: str, params: dict | None = None) -> int:
    with conn.transaction(force_rollback=True):
        cur = conn.execute(sql, params or {})
        return cur.rowcount


def denied(conn: psycopg.Connection, sql: str, params: dict | None = None) -> str:
    with pytest.raises((errors.InsufficientPrivilege, errors.RaiseException,
                        errors.IntegrityConstraintViolation)) as exc:
        with conn.transaction(force_rollback=True):
            conn.execute(sql, params or {})
    return str(exc.value)


NEW_PATIENT = ("INSERT INTO patients (id, first_name, last_name, date_of_birth, sex, active, "
               "created_at, updated_at, version) VALUES (gen_random_uuid(), 'Direct', 'Sql', "
               "'1970-01-01', 'unknown', true, now(), now(), 1)")


def new_rx(status: str = "new", prescriber=None, created_by=None) -> str:
    return (
        "INSERT INTO prescriptions (id, rx_number, patient_id, prescriber_id, product_id, sig, "
        "quantity, days_supply, refills_authorized, daw, date_written, status, owed_quantity, "
        "created_by, created_at, updated_at, version) VALUES (gen_random_uuid(), "
        "nextval('rx_number_seq'), %(patient)s, " + (prescriber or "%(prescriber)s")
        + ", %(product)s, 'Take 1 daily', 30, 30, 0, false, current_date, "
        f"'{status}', 0, " + (created_by or "%(staff)s") + ", now(), now(), 1)")


def movement(kind: str, qty: int, reason: str | None = "Count") -> str:
    return ("INSERT INTO stock_movements (id, lot_id, kind, quantity, reason, staff_id, "
            f"created_at) VALUES (gen_random_uuid(), %(lot)s, '{kind}', {qty}, "
            f"{'NULL' if reason is None else repr(reason)}, %(staff)s, now())")


def test_admin(pharmacy):
    w = pharmacy["world"]
    with as_role(pharmacy, w.admin) as c:
        ok(c, "SELECT * FROM audit_log LIMIT 5")
        ok(c, NEW_PATIENT)
        ok(c, "UPDATE app_settings SET pharmacy_name = 'Renamed'")
        ok(c, "INSERT INTO categories (id, name) VALUES (gen_random_uuid(), 'Admin cat')")
        # history is permanent, for administrators too
        denied(c, "UPDATE stock_movements SET quantity = 1")
        denied(c, "DELETE FROM dispenses")
        denied(c, "DELETE FROM audit_log")
        denied(c, "UPDATE controlled_register SET balance_after = 0")
        # nobody writes the audit trail or the register by hand
        denied(c, "INSERT INTO audit_log (occurred_at, db_user, action, table_name, row_id) "
                  "VALUES (now(), 'x', 'INSERT', 'patients', '1')")
        denied(c, "UPDATE stock_lots SET on_hand = 999")
        # staff logins through the SECURITY DEFINER functions, without CREATEROLE
        assert c.execute("SELECT rolcreaterole FROM pg_roles WHERE rolname = current_user"
                         ).fetchone()[0] is False
        verifier = c.pgconn.encrypt_password(b"another long pass", b"newbie",
                                             b"scram-sha-256").decode()
        group = staff_group(c, "clerk")
        ok(c, "SELECT getmeds_add_staff(gen_random_uuid(), 'newbie', %(v)s, %(g)s, 'New Bie')",
           {"v": verifier, "g": group})
        # a login only comes with its staff row: no "ghost" logins
        denied(c, "SELECT getmeds_create_login('newbie', %(v)s, %(g)s)",
               {"v": verifier, "g": group})
        denied(c, "SELECT getmeds_create_login('rogue', %(v)s, 'pg_read_all_data')",
               {"v": verifier})
        denied(c, "SELECT getmeds_alter_login('postgres', NULL, false)")


def staff_group(c: psycopg.Connection, role: str) -> str:
    prefix = c.execute("SELECT role_prefix FROM db_security").fetchone()[0]
    return f"{prefix}{role}"


def test_pharmacist(pharmacy):
    w = pharmacy["world"]
    p = {"lot": pharmacy["plain_lot"], "staff": w.pharmacist.staff_id,
         "patient": pharmacy["patient"].id}
    with as_role(pharmacy, w.pharmacist) as c:
        for table in ("patients", "products", "stock_lots", "stock_movements", "dispenses",
                      "controlled_register", "prescriptions", "staff", "app_settings"):
            ok(c, f"SELECT * FROM {table} LIMIT 1")
        assert "permission denied" in denied(c, "SELECT * FROM audit_log")
        ok(c, NEW_PATIENT)
        ok(c, "UPDATE patients SET notes = 'seen' WHERE id = %(patient)s", p)
        ok(c, movement("adjustment", -1), p)
        ok(c, movement("receipt", 5, None), p)
        ok(c, "UPDATE stock_lots SET status = 'quarantined', status_reason = 'Hold' "
              "WHERE id = %(lot)s", p)
        denied(c, "UPDATE stock_lots SET on_hand = 999 WHERE id = %(lot)s", p)
        denied(c, "INSERT INTO products (id, name, storage, schedule, unit, pack_size, "
                  "reorder_level, reorder_quantity, unit_price, active, created_at, updated_at, "
                  "version) VALUES (gen_random_uuid(), 'X', 'room', 'none', 'each', 1, 0, 0, 0, "
                  "true, now(), now(), 1)")
        denied(c, "UPDATE app_settings SET auto_lock_minutes = 60")
        denied(c, "UPDATE staff SET role = 'admin'")
        denied(c, "DELETE FROM stock_movements")
        denied(c, "SELECT getmeds_create_login('x1', 'SCRAM-SHA-256$x', 'x')")


def test_clerk(pharmacy):
    w = pharmacy["world"]
    p = {"lot": pharmacy["plain_lot"], "staff": w.clerk.staff_id,
         "patient": pharmacy["patient"].id, "prescriber": w.prescriber_id,
         "product": pharmacy["plain"].id}
    pc = dict(p, lot=pharmacy["controlled_lot"])
    with as_role(pharmacy, w.clerk) as c:
        for table in ("patients", "prescribers", "products", "stock_lots", "product_stock"):
            ok(c, f"SELECT * FROM {table} LIMIT 1")
        denied(c, "SELECT * FROM audit_log")
        ok(c, NEW_PATIENT)
        ok(c, new_rx("new"), p)
        assert "row-level security" in denied(c, new_rx("dispensed"), p)
        ok(c, movement("receipt", 10, None), p)
        # a controlled receipt as complete as 0022 asks (supplier, order form): the
        # clerk's row-level security still refuses it
        assert "row-level security" in denied(c, movement("receipt", 10, None).replace(
            "staff_id, created_at)", "staff_id, created_at, supplier_id, order_form)").replace(
            "now())", "now(), %(supplier)s, '222-0002')"), dict(pc, supplier=w.supplier_id))
        assert "row-level security" in denied(c, movement("adjustment", -1), p)
        denied(c, "INSERT INTO dispenses (id, prescription_id, fill_number, part, quantity, "
                  "owed_after, days_supply, pharmacist_id, dispensed_at, request_id) VALUES "
                  "(gen_random_uuid(), %(rx)s, 0, 1, 1, 0, 30, %(staff)s, now(), "
                  "gen_random_uuid())", dict(p, rx=pharmacy["other_rx"].id))
        denied(c, "UPDATE prescriptions SET quantity = 1")
        denied(c, "UPDATE stock_lots SET status = 'recalled'")


def test_doctor(pharmacy):
    w = pharmacy["world"]
    own = w.doctor.prescriber_id
    p = {"patient": pharmacy["patient"].id, "prescriber": own,
         "product": pharmacy["plain"].id, "staff": w.doctor.staff_id,
         "other": pharmacy["other_rx"].id}
    with as_role(pharmacy, w.doctor) as c:
        for table in ("patients", "products", "product_stock"):
            ok(c, f"SELECT * FROM {table} LIMIT 1")
        denied(c, "SELECT * FROM stock_lots")
        denied(c, "SELECT * FROM stock_movements")
        denied(c, "SELECT * FROM audit_log")
        # writes prescriptions as themselves only
        ok(c, new_rx("new"), p)
        assert "row-level security" in denied(c, new_rx("new"), dict(
            p, prescriber=w.prescriber_id))
        assert "row-level security" in denied(c, new_rx("in_progress"), p)
        # sees and edits only their own; another prescriber's are invisible
        assert ok(c, "UPDATE prescriptions SET quantity = 1 WHERE id = %(other)s", p) == 0
        seen = c.execute("SELECT count(*) FROM prescriptions WHERE id = %(other)s",
                         p).fetchone()[0]
        assert seen == 0
        with c.transaction(force_rollback=True):
            rid = c.execute(new_rx("new") + " RETURNING id", p).fetchone()[0]
            assert c.execute("UPDATE prescriptions SET status = 'cancelled' WHERE id = %(r)s",
                             {"r": rid}).rowcount == 1
            # once cancelled (no longer new) it is out of reach
            assert c.execute("UPDATE prescriptions SET quantity = 2 WHERE id = %(r)s",
                             {"r": rid}).rowcount == 0


def test_nobody_changes_history(pharmacy):
    w = pharmacy["world"]
    for actor in (w.admin, w.pharmacist, w.clerk, w.doctor):
        with as_role(pharmacy, actor) as c:
            for table in ("stock_movements", "dispenses", "controlled_register", "audit_log",
                          "dispense_warnings"):
                denied(c, f"DELETE FROM {table}")
                denied(c, f"UPDATE {table} SET id = id")


def test_audit_records_the_database_login(pharmacy):
    w = pharmacy["world"]
    pid = pharmacy["patient"].id
    with as_role(pharmacy, w.pharmacist) as c:
        # even a client that claims to be somebody else is recorded as itself
        c.execute("SELECT set_config('getmeds.actor', 'someone-else', false)")
        c.execute("UPDATE patients SET notes = 'changed by psql' WHERE id = %s", (pid,))
        c.commit()
    engine = db.make_engine(pharmacy["url"])
    with engine.connect() as conn:
        row = conn.execute(sa.text(
            "SELECT db_user, actor, after->>'notes' FROM audit_log WHERE table_name = "
            "'patients' AND row_id = :r ORDER BY id DESC LIMIT 1"), {"r": str(pid)}).one()
    engine.dispose()
    # a staff login cannot label its changes as somebody else's
    assert row == (w.pharmacist.username, w.pharmacist.username, "changed by psql")


def test_sign_in_as_the_staff_role(pharmacy, pg_password_checks):
    w = pharmacy["world"]
    target = DatabaseTarget(pharmacy["url"].render_as_string(hide_password=False), "t", "t")
    c = Connector()
    try:
        for actor in (w.admin, w.pharmacist, w.clerk, w.doctor):
            _, signed = c.sign_in(target, actor.username.upper(), PASSWORD)
            assert (signed.username, signed.role) == (actor.username, actor.role)
        with pytest.raises(AuthenticationFailed, match="Wrong username or password"):
            c.sign_in(target, w.clerk.username, "not the password")
        with pytest.raises(AuthenticationFailed, match="Wrong username or password"):
            c.sign_in(target, "nobody-at-all", "not the password")
    finally:
        c.close_all()


def test_disabled_staff_cannot_connect(pharmacy):
    w = pharmacy["world"]
    engine = db.make_engine(pharmacy["url"])
    sf = db.session_factory(engine)
    info = staff.find_by_username(sf, w.clerk.username)
    staff.set_active(sf, SYSTEM, info.id, False)
    target = DatabaseTarget(pharmacy["url"].render_as_string(hide_password=False), "t", "t")
    c = Connector()
    try:
        with pytest.raises(AuthenticationFailed):
            c.sign_in(target, w.clerk.username, PASSWORD)
        staff.set_active(sf, SYSTEM, info.id, True)
        staff.reset_password(sf, SYSTEM, info.id, "a brand new password")
        _, actor = c.sign_in(target, w.clerk.username, "a brand new password")
        assert actor.role.value == "clerk"
    finally:
        c.close_all()
        engine.dispose()


def test_a_login_that_is_not_staff_is_refused(pharmacy):
    engine = db.make_engine(pharmacy["url"])
    name = f"stranger{uuid.uuid4().hex[:6]}"
    with engine.begin() as conn:
        prefix = conn.scalar(sa.text("SELECT role_prefix FROM db_security"))
        conn.exec_driver_sql(f'CREATE ROLE "{name}" LOGIN PASSWORD \'{PASSWORD}\' '
                             f'IN ROLE "{prefix}clerk"')
    target = DatabaseTarget(pharmacy["url"].render_as_string(hide_password=False), "t", "t")
    try:
        with pytest.raises(AuthenticationFailed, match="not an active GetMeds staff account"):
            Connector().sign_in(target, name, PASSWORD)
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql(f'DROP ROLE "{name}"')
        engine.dispose()


def test_remote_servers_need_verified_tls():
    with pytest.raises(ConfigError, match="must be encrypted"):
        db.make_engine("postgresql://rx.example.org/getmeds?sslmode=disable")
    engine = db.make_engine("postgresql://rx.example.org/getmeds")
    assert engine.url.query["sslmode"] == "verify-full"  # the default, never a downgrade
    engine.dispose()
    local = db.make_engine("postgresql://127.0.0.1/getmeds")
    assert "sslmode" not in local.url.query
    local.dispose()


def test_staff_passwords_never_reach_the_server_in_clear(pharmacy):
    """The login is created from a SCRAM verifier computed by the client."""
    w = pharmacy["world"]
    engine = db.make_engine(pharmacy["url"])
    with engine.connect() as conn:
        stored = conn.scalar(sa.text("SELECT rolpassword FROM pg_authid WHERE rolname = :r"),
                             {"r": w.clerk.username})
    engine.dispose()
    assert stored.startswith("SCRAM-SHA-256$") and PASSWORD not in stored
