"""Staff accounts and embedded-mode sign-in."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from getmeds_desktop import db
from getmeds_desktop.errors import AccountLocked, AuthenticationFailed
from getmeds_desktop.models import AuditEntry, Role
from getmeds_desktop.services import clock, staff
from getmeds_desktop.services.context import SYSTEM
from getmeds_desktop.services.errors import PermissionDenied, ValidationError
from tests.fixtures.data import PASSWORD
from tests.unit.helpers import nothing_written

# Embedded (SQLite) sign-in: app accounts with argon2 hashes and a lockout. On
# PostgreSQL the server checks passwords (tests/unit/test_security_pg.py).
embedded = pytest.mark.parametrize("backend_name", ["sqlite"], indirect=True)


@embedded
def test_sign_in_with_the_right_password(world):
    actor = staff.authenticate(world.sf, world.pharmacist.username.upper(), PASSWORD)
    assert actor == world.pharmacist


@embedded
def test_wrong_password_and_unknown_user_get_the_same_answer(world):
    with pytest.raises(AuthenticationFailed) as wrong:
        staff.authenticate(world.sf, world.pharmacist.username, "wrong password!!")
    with pytest.raises(AuthenticationFailed) as unknown:
        staff.authenticate(world.sf, "nobody-here", "wrong password!!")
    assert str(wrong.value) == str(unknown.value) == "Wrong username or password."


@pytest.mark.parametrize("who", ["existing", "unknown"])
@embedded
def test_five_failures_lock_for_fifteen_minutes(world, who):
    username = world.clerk.username if who == "existing" else "ghost"
    for _ in range(4):
        with pytest.raises(AuthenticationFailed) as err:
            staff.authenticate(world.sf, username, "bad password 123")
        assert not isinstance(err.value, AccountLocked)
    with pytest.raises(AccountLocked, match="locked until"):
        staff.authenticate(world.sf, username, "bad password 123")
    # even the right password is refused while locked
    if who == "existing":
        with pytest.raises(AccountLocked):
            staff.authenticate(world.sf, username, PASSWORD)
    later = clock.now() + dt.timedelta(minutes=16)
    with clock.travel(later):
        if who == "existing":
            assert staff.authenticate(world.sf, username, PASSWORD).username == username
        else:
            with pytest.raises(AuthenticationFailed) as err:
                staff.authenticate(world.sf, username, "bad password 123")
            assert not isinstance(err.value, AccountLocked)


@embedded
def test_admin_unlocks_early(world):
    for _ in range(5):
        with pytest.raises(AuthenticationFailed):
            staff.authenticate(world.sf, world.clerk.username, "bad password 123")
    staff.unlock(world.sf, world.admin, world.clerk.username)
    assert staff.authenticate(world.sf, world.clerk.username, PASSWORD) == world.clerk


@embedded
def test_inactive_staff_cannot_sign_in(world):
    info = staff.find_by_username(world.sf, world.clerk.username)
    staff.set_active(world.sf, world.admin, info.id, False, expected_version=info.version)
    with pytest.raises(AuthenticationFailed):
        staff.authenticate(world.sf, world.clerk.username, PASSWORD)


@pytest.mark.parametrize(
    ("password", "message"),
    [("short pass", "at least 12"), ("xx{user}xxxxxxxx", "must not contain the username")],
)
def test_password_policy(world, password, message):
    with nothing_written(world.sf), pytest.raises(ValidationError, match=message):
        staff.create_staff(world.sf, world.admin, username="newbie", full_name="New Bie",
                           role=Role.CLERK, password=password.format(user="newbie"))


def test_only_admins_manage_staff(world):
    with nothing_written(world.sf), pytest.raises(PermissionDenied):
        staff.create_staff(world.sf, world.pharmacist, username="sneaky", full_name="S",
                           role=Role.ADMIN, password="long enough password")


@embedded
def test_reset_password_forces_change_and_hash_is_never_audited(world):
    info = staff.find_by_username(world.sf, world.clerk.username)
    staff.reset_password(world.sf, world.admin, info.id, "temporary password 1")
    assert staff.password_must_change(world.sf, info.id)
    actor = staff.authenticate(world.sf, world.clerk.username, "temporary password 1")
    staff.change_own_password(world.sf, actor, "temporary password 1", "my own new password")
    assert not staff.password_must_change(world.sf, info.id)
    with db.read_session(world.sf) as s:
        bodies = [str(e.after) + str(e.before) for e in s.scalars(sa.select(AuditEntry))]
    assert not any("argon2" in b for b in bodies)


def test_last_admin_cannot_be_deactivated(world):
    info = staff.find_by_username(world.sf, world.admin.username)
    other = staff.create_staff(world.sf, SYSTEM, username="admin2", full_name="Second Admin",
                               role=Role.ADMIN, password="long enough password")
    staff.set_active(world.sf, SYSTEM, other.id, False)
    with pytest.raises(ValidationError, match="last active administrator"):
        staff.set_active(world.sf, SYSTEM, info.id, False)


def test_username_rules(world):
    with pytest.raises(ValidationError, match="taken"):
        staff.create_staff(world.sf, SYSTEM, username=world.clerk.username, full_name="Dup",
                           role=Role.CLERK)
    with pytest.raises(ValidationError, match="start with a letter"):
        staff.create_staff(world.sf, SYSTEM, username="1abc", full_name="X", role=Role.CLERK)
    with pytest.raises(ValidationError, match="Role must be"):
        staff.create_staff(world.sf, SYSTEM, username="abc", full_name="X", role="janitor")


def test_production_hash_parameters(monkeypatch):
    import getmeds_desktop.services.staff as mod

    monkeypatch.undo()  # drop the cheap test hasher: look at the real one
    assert mod._hasher.time_cost >= 2 and mod._hasher.memory_cost >= 19 * 1024  # OWASP minimum
    assert mod._hasher.hash("x" * 12).startswith("$argon2id$")
    assert mod.MAX_FAILED_ATTEMPTS == 5 and dt.timedelta(minutes=15) == mod.LOCKOUT
