"""Staff logins: made with their staff row, from well-formed SCRAM verifiers
only, every change audited, and only ever roles of this pharmacy's staff."""

from __future__ import annotations

import contextlib
import datetime as dt
import uuid
from collections.abc import Iterator

import psycopg
import pytest
import sqlalchemy as sa

from getmeds_desktop import db
from getmeds_desktop.models import Role
from getmeds_desktop.services import staff
from getmeds_desktop.services.errors import ValidationError

from .conftest import PASSWORD, Pharmacy, refused, verifier


def test_the_server_checks_staff_passwords(pharmacy: Pharmacy):
    """Without this, every test here would prove nothing: a wrong password fails."""
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        pharmacy.login(pharmacy.world.clerk, "not the password").close()
    pharmacy.login(pharmacy.world.clerk).close()


def _bad_verifiers(good: str) -> dict[str, str | None]:
    head, keys = good.rsplit("$", 1)
    _, params = head.split("$", 1)
    iterations, salt = params.split(":")
    stored, server = keys.split(":")
    assert iterations == "4096"
    return {
        "NULL": None,
        "empty": "",
        "a plain password": "correct horse battery staple",
        "md5": "md5" + "0" * 32,
        "the prefix alone": "SCRAM-SHA-256$",
        "what the old check let through": "SCRAM-SHA-256$x",
        "no keys": f"SCRAM-SHA-256${iterations}:{salt}$",
        "one key": f"SCRAM-SHA-256${iterations}:{salt}${stored}",
        "one iteration": f"SCRAM-SHA-256$1:{salt}${stored}:{server}",
        "no iterations": f"SCRAM-SHA-256$:{salt}${stored}:{server}",
        "short salt": f"SCRAM-SHA-256${iterations}:c2FsdA==${stored}:{server}",
        "short key": f"SCRAM-SHA-256${iterations}:{salt}$c2hvcnQ=:{server}",
        "not base64": f"SCRAM-SHA-256${iterations}:{salt}${stored[:-2]}*=:{server}",
        "something after": f"{good}$extra",
        "a line after": f"{good}\nSCRAM-SHA-256$x",
        "lower case": good.replace("SCRAM-SHA-256", "scram-sha-256"),
        "SHA-1": good.replace("SCRAM-SHA-256", "SCRAM-SHA-1"),
    }


def test_null_and_malformed_verifiers_are_refused(pharmacy: Pharmacy):
    w = pharmacy.world
    target = f"keeppw{uuid.uuid4().hex[:6]}"
    with pharmacy.owner() as o:
        o.execute("SELECT getmeds_add_staff(NULL, %s, %s, %s, 'Keep Password')",
                  (target, verifier(o, target, PASSWORD), pharmacy.group("clerk")))
    stored = pharmacy.one("SELECT rolpassword FROM pg_authid WHERE rolname = %s", (target,))
    with pharmacy.login(w.admin) as c:
        for why, bad in _bad_verifiers(verifier(c, "anyone", PASSWORD)).items():
            name = f"bad{uuid.uuid4().hex[:6]}"
            refused(c, "SELECT getmeds_add_staff(NULL, %s, %s, %s, 'Bad')",
                    (name, bad, pharmacy.group("clerk")), match="SCRAM-SHA-256 verifier")
            c.execute("INSERT INTO staff (id, username, full_name, role, active, created_at, "
                      "updated_at, version) VALUES (gen_random_uuid(), %s, 'Bad', 'clerk', "
                      "true, now(), now(), 1)", (name,))
            refused(c, "SELECT getmeds_create_login(%s, %s, %s)",
                    (name, bad, pharmacy.group("clerk")), match="SCRAM-SHA-256 verifier")
            c.rollback()
            if bad is not None:
                refused(c, "SELECT getmeds_alter_login(%s, %s, NULL)", (target, bad),
                        match="SCRAM-SHA-256 verifier")
            assert pharmacy.one("SELECT count(*) FROM pg_roles WHERE rolname = %s",
                                (name,)) == 0, why
        # a reset that changes nothing is no reset
        refused(c, "SELECT getmeds_alter_login(%s, NULL, NULL)", (target,),
                match="nothing to change")
    assert pharmacy.one("SELECT rolpassword FROM pg_authid WHERE rolname = %s",
                        (target,)) == stored
    pharmacy.login(target).close()


def test_login_changes_through_the_app_are_audited(pharmacy: Pharmacy):
    """The Administration screen's actions, as an administrator's own login."""
    w = pharmacy.world
    engine = db.make_engine(pharmacy.url, username=w.admin.username, password=PASSWORD,
                            poolclass=sa.NullPool)
    try:
        sf = db.session_factory(engine)
        admin = staff.actor_from_session(sf)
        name = f"audited{uuid.uuid4().hex[:6]}"
        info = staff.create_staff(sf, admin, username=name, full_name="Audited Person",
                                  role=Role.PHARMACIST, password="first password 123")
        staff.set_active(sf, admin, info.id, False)
        with pytest.raises(psycopg.OperationalError):
            pharmacy.login(name, "first password 123").close()
        staff.set_active(sf, admin, info.id, True)
        staff.reset_password(sf, admin, info.id, "second password 123")
        pharmacy.login(name, "second password 123").close()
        # a name taken on the server: neither the staff row nor the login appears
        with pytest.raises(ValidationError, match="already has a login"):
            staff.create_staff(sf, admin, username=pharmacy.url.username or "postgres",
                               full_name="Taken", role=Role.ADMIN, password=PASSWORD)
    finally:
        engine.dispose()
    rows = pharmacy.q("SELECT action, actor, db_user, before, after FROM audit_log WHERE "
                      "table_name = 'db_logins' AND row_id = %s ORDER BY id", (name,))
    assert [(a, actor, user) for a, actor, user, _, _ in rows] == [
        ("INSERT", w.admin.username, w.admin.username)] + [
        ("UPDATE", w.admin.username, w.admin.username)] * 3
    after = [r[4] for r in rows]
    assert after[0] == {"login": name, "group": pharmacy.group("pharmacist"),
                        "can_login": True, "staff_id": str(info.id)}
    assert [a["can_login"] for a in after[1:]] == [False, True, True]
    assert [a.get("password") for a in after] == [None, None, None, "reset"]
    assert all("SCRAM" not in str(r) for r in rows)  # never the verifier
    assert pharmacy.one("SELECT count(*) FROM staff WHERE username = %s",
                        (pharmacy.url.username or "postgres",)) == 0


def test_no_login_without_its_staff_row(pharmacy: Pharmacy):
    w = pharmacy.world
    name = f"ghost{uuid.uuid4().hex[:6]}"
    with pharmacy.login(w.admin) as c:
        v = verifier(c, name, PASSWORD)
        for group in ("admin", "clerk"):
            refused(c, "SELECT getmeds_create_login(%s, %s, %s)", (name, v,
                                                                  pharmacy.group(group)),
                    match="no active staff member")
        # nor for a staff member of another role, or a deactivated one
        c.execute("INSERT INTO staff (id, username, full_name, role, active, created_at, "
                  "updated_at, version) VALUES (gen_random_uuid(), %s, 'Ghost', 'clerk', "
                  "false, now(), now(), 1)", (name,))
        c.commit()
        for group in ("admin", "clerk"):
            refused(c, "SELECT getmeds_create_login(%s, %s, %s)", (name, v,
                                                                  pharmacy.group(group)),
                    match="no active staff member")
    assert pharmacy.one("SELECT count(*) FROM pg_roles WHERE rolname = %s", (name,)) == 0


def test_only_active_administrators_manage_logins(pharmacy: Pharmacy):
    w = pharmacy.world
    name = f"nobody{uuid.uuid4().hex[:6]}"
    for who in (w.pharmacist, w.clerk, w.doctor):
        with pharmacy.login(who) as c:
            v = verifier(c, name, PASSWORD)
            for statement, args in (
                    ("SELECT getmeds_add_staff(NULL, %s, %s, %s, 'X')",
                     (name, v, pharmacy.group("admin"))),
                    ("SELECT getmeds_create_login(%s, %s, %s)",
                     (name, v, pharmacy.group("admin"))),
                    ("SELECT getmeds_alter_login(%s, %s, NULL)", (w.admin.username, v))):
                refused(c, statement, args)
    # an administrator whose staff row was deactivated (their session still open)
    boss = f"boss{uuid.uuid4().hex[:6]}"
    with pharmacy.owner() as o:
        sid = o.execute("SELECT getmeds_add_staff(NULL, %s, %s, %s, 'Old Boss')",
                        (boss, verifier(o, boss, PASSWORD), pharmacy.group("admin"))
                        ).fetchone()[0]
    with pharmacy.login(boss) as c:
        pharmacy.q("UPDATE staff SET active = false WHERE id = %s", (sid,))
        refused(c, "SELECT getmeds_alter_login(%s, NULL, false)", (w.clerk.username,),
                match="only GetMeds administrators")
    assert pharmacy.one("SELECT rolcanlogin FROM pg_roles WHERE rolname = %s",
                        (w.clerk.username,)) is True


@contextlib.contextmanager
def role(ph: Pharmacy, sql: str) -> Iterator[str]:
    name = f"{ph.prefix}r{uuid.uuid4().hex[:6]}"
    ph.q(sql.format(name=f'"{name}"'))
    try:
        yield name
    finally:
        ph.q(f'DROP ROLE "{name}"')


def test_only_this_pharmacys_staff_logins_are_touched(pharmacy: Pharmacy):
    w, g = pharmacy.world, pharmacy.group
    cases = [
        # a superuser someone made a member of our clerk group
        f'CREATE ROLE {{name}} SUPERUSER NOLOGIN IN ROLE "{g("clerk")}"',
        # a clerk login that is also a member of something else
        f'CREATE ROLE {{name}} NOLOGIN IN ROLE "{g("clerk")}", pg_read_all_data',
        # a member of our group without a staff row
        f'CREATE ROLE {{name}} NOLOGIN IN ROLE "{g("clerk")}"',
        # a role with CREATEROLE
        f'CREATE ROLE {{name}} CREATEROLE NOLOGIN IN ROLE "{g("clerk")}"',
        # the backup group's member: not staff
        f'CREATE ROLE {{name}} NOLOGIN IN ROLE "{g("backup")}"',
    ]
    for n, sql in enumerate(cases):
        with role(pharmacy, sql) as name:
            if n != 2:  # give it a staff row: it still is no staff login of ours
                pharmacy.q("INSERT INTO staff (id, username, full_name, role, active, "
                           "created_at, updated_at, version) VALUES (gen_random_uuid(), %s, "
                           "'Odd', 'clerk', true, now(), now(), 1)", (name,))
            with pharmacy.login(w.admin) as c:
                refused(c, "SELECT getmeds_alter_login(%s, %s, true)",
                        (name, verifier(c, name, "taken over 1234")),
                        match="not a GetMeds staff login of this pharmacy")
            assert pharmacy.one("SELECT rolpassword FROM pg_authid WHERE rolname = %s",
                                (name,)) is None
            pharmacy.q("DELETE FROM staff WHERE username = %s", (name,))
    with pharmacy.login(w.admin) as c:
        v = verifier(c, "intruder2", PASSWORD)
        for group in ("pg_read_all_data", "pg_write_all_data", g("backup"), "postgres"):
            refused(c, "SELECT getmeds_add_staff(NULL, 'intruder2', %s, %s, 'Intruder')",
                    (v, group), match="not a GetMeds group")
            refused(c, "SELECT getmeds_create_login('intruder2', %s, %s)", (v, group),
                    match="not a GetMeds group")
    assert pharmacy.one("SELECT count(*) FROM pg_roles WHERE rolname = 'intruder2'") == 0


def test_signing_in_brings_the_practice_role_and_the_pharmacys_time_zone(pharmacy: Pharmacy):
    """An owner who is also a pharmacist fills on the shared database as on the
    embedded one; dates are the database's zone's, whatever the workstation's."""
    from getmeds_desktop.config import DatabaseTarget
    from getmeds_desktop.services import clock
    from getmeds_desktop.startup import Connector

    w = pharmacy.world
    staff.set_practice_role(w.sf, w.admin, w.admin.staff_id, Role.PHARMACIST)
    database = pharmacy.database
    connector = Connector()
    try:
        pharmacy.q(f'ALTER DATABASE "{database}" SET timezone = \'America/Chicago\'')
        target = DatabaseTarget(url=str(pharmacy.url.set(username=None, password=None)
                                        .render_as_string(hide_password=False)),
                                profile="pg", label="Server")
        _opened, actor = connector.sign_in(target, w.admin.username, PASSWORD)
        assert actor.role is Role.ADMIN and actor.practice is Role.PHARMACIST
        assert str(clock.zone()) == "America/Chicago"
        _opened, clerk = connector.sign_in(target, w.clerk.username, PASSWORD)
        assert clerk.practice_role is None
        pharmacy.q(f'ALTER DATABASE "{database}" RESET timezone')
        connector.sign_in(target, w.clerk.username, PASSWORD)
        assert clock.zone() is dt.UTC  # none set on the database: UTC, as its rules say
        # no staff login moves the pharmacy's zone (its own session's TimeZone is not it)
        for who in (w.admin, w.pharmacist):
            with pharmacy.login(who) as c:
                refused(c, f'ALTER DATABASE "{database}" SET timezone = \'Pacific/Kiritimati\'')
                c.execute("SET TimeZone = 'Pacific/Kiritimati'")
                assert c.execute("SELECT getmeds_pharmacy_time_zone()").fetchone()[0] == "UTC"
    finally:
        pharmacy.q(f'ALTER DATABASE "{database}" RESET timezone')
        connector.close_all()
