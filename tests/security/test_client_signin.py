"""Embedded sign-in tells an attacker nothing and lets them lock out no one
who does not exist yet.

* Failures for a username that is not staff leave no ``login_throttle`` row
  (so typing "omar" five times before IT creates omar locks nobody out, and a
  script cannot fill the table with names); they still lock in memory like a
  real account, so the lockout does not reveal which names exist.
* The same message and the same work (one argon2 verification with the same
  parameters) for an unknown name, a wrong password, a disabled account and
  an account without a password.
"""

from __future__ import annotations

import statistics
import time

import pytest
import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import VerifyMismatchError

from getmeds_desktop import db
from getmeds_desktop.errors import AccountLocked, AuthenticationFailed
from getmeds_desktop.models import LoginThrottle, Role
from getmeds_desktop.services import clock, staff
from tests.fixtures.data import PASSWORD

embedded = pytest.mark.parametrize("backend_name", ["sqlite"], indirect=True)
WRONG = "wrong password 123"


def throttle_rows(world) -> dict[str, int]:
    with db.read_session(world.sf) as s:
        return {t.username: t.failed_attempts for t in s.scalars(sa.select(LoginThrottle))}


def answer(world, username: str, password: str = WRONG) -> str:
    with pytest.raises(AuthenticationFailed) as caught:
        staff.authenticate(world.sf, username, password)
    return f"{type(caught.value).__name__}: {caught.value}"


@embedded
def test_unknown_usernames_leave_no_rows(world):
    for name in ("omar", "OMAR", " omar ", "nobody", "x" * 500, "robert'); drop table staff;--"):
        for _ in range(7):
            with pytest.raises(AuthenticationFailed):
                staff.authenticate(world.sf, name, WRONG)
    assert throttle_rows(world) == {}


@embedded
def test_nobody_can_lock_out_a_name_before_it_is_created(world):
    for _ in range(12):
        with pytest.raises(AuthenticationFailed):
            staff.authenticate(world.sf, "omar", WRONG)
    staff.create_staff(world.sf, world.admin, username="omar", full_name="Omar Haddad",
                       role=Role.CLERK, password="a fresh start 2026")
    assert staff.authenticate(world.sf, "omar", "a fresh start 2026").username == "omar"


@embedded
def test_rows_an_older_version_left_for_unknown_names_stop_counting(world):
    """Such a row (even one saying 'locked') never locks out the person who later
    gets that username, and the next attempt for the unknown name removes it."""
    later = clock.now() + __import__("datetime").timedelta(minutes=10)
    with db.write_transaction(world.sf, None) as s:
        s.add(LoginThrottle(username="omar", failed_attempts=0, locked_until=later))
        s.add(LoginThrottle(username="zed", failed_attempts=4, locked_until=later))
    answer(world, "zed")
    assert "zed" not in throttle_rows(world)
    staff.create_staff(world.sf, world.admin, username="omar", full_name="Omar Haddad",
                       role=Role.CLERK, password="a fresh start 2026")
    assert staff.authenticate(world.sf, "omar", "a fresh start 2026").username == "omar"


@embedded
def test_real_accounts_still_count_and_lock(world):
    name = world.clerk.username
    for _ in range(4):
        answer(world, name)
    assert throttle_rows(world) == {name: 4}
    with pytest.raises(AccountLocked):
        staff.authenticate(world.sf, name, WRONG)
    with pytest.raises(AccountLocked):
        staff.authenticate(world.sf, name, PASSWORD)


@embedded
def test_the_same_message_whoever_is_named(world):
    disabled = staff.create_staff(world.sf, world.admin, username="gone", full_name="Gone",
                                  role=Role.CLERK, password="a long password 11")
    staff.set_active(world.sf, world.admin, disabled.id, False,
                     expected_version=disabled.version)
    staff.create_staff(world.sf, world.admin, username="nopass", full_name="No Password",
                       role=Role.CLERK)  # e.g. brought over from the web app
    answers = {
        "wrong password": answer(world, world.clerk.username),
        "unknown name": answer(world, "no-such-person"),
        "disabled, right password": answer(world, "gone", "a long password 11"),
        "no password set": answer(world, "nopass"),
        "empty name": answer(world, ""),
    }
    assert set(answers.values()) == {"AuthenticationFailed: Wrong username or password."}


@embedded
def test_the_lockout_looks_the_same_for_unknown_and_real_names(world):
    def five(name: str) -> str:
        for _ in range(4):
            answer(world, name)
        with pytest.raises(AccountLocked) as caught:
            staff.authenticate(world.sf, name, WRONG)
        with pytest.raises(AccountLocked) as again:
            staff.authenticate(world.sf, name, WRONG)
        return f"{caught.value} / {again.value}"

    assert five(world.clerk.username) == five("ghost")
    assert "ghost" not in throttle_rows(world)


@embedded
def test_unknown_names_in_memory_are_bounded(world, monkeypatch):
    monkeypatch.setattr(staff.unknown_names, "LIMIT", 50)
    for i in range(200):
        answer(world, f"name{i}")
    assert len(staff.unknown_names._table(world.sf)) == 50


class CountingHasher:
    def __init__(self, inner: PasswordHasher) -> None:
        self.inner = inner
        self.verified: list[str] = []

    def verify(self, hash_: str, password: str) -> bool:
        self.verified.append(hash_)
        return self.inner.verify(hash_, password)

    def __getattr__(self, name: str):
        return getattr(self.inner, name)


@embedded
def test_one_argon2_verification_with_the_same_parameters_in_every_case(world, monkeypatch):
    counting = CountingHasher(staff._hasher)
    monkeypatch.setattr(staff, "_hasher", counting)
    for name in (world.clerk.username, "no-such-person", ""):
        counting.verified.clear()
        answer(world, name)
        assert len(counting.verified) == 1, name
        params = counting.verified[0].split("$")[3]  # m=...,t=...,p=...
        assert params == staff._hasher.hash("x").split("$")[3]


def test_the_dummy_hash_matches_the_production_parameters(monkeypatch):
    production = PasswordHasher()
    monkeypatch.setattr(staff, "_hasher", production)
    monkeypatch.setattr(staff, "_DUMMY_HASH", None)
    dummy = staff._dummy_hash()
    assert not production.check_needs_rehash(dummy)
    with pytest.raises(VerifyMismatchError):
        production.verify(dummy, "anything")


@pytest.mark.slow
@embedded
def test_unknown_names_and_wrong_passwords_take_the_same_time(world, monkeypatch):
    """With the production argon2 cost, the two answers cannot be told apart by
    their timing (medians of interleaved tries within a third of each other)."""
    production = PasswordHasher()
    with db.write_transaction(world.sf, None) as s:
        from getmeds_desktop.models import StaffCredential

        cred = s.get(StaffCredential, world.clerk.staff_id)
        cred.password_hash = production.hash(PASSWORD)
    monkeypatch.setattr(staff, "_hasher", production)
    monkeypatch.setattr(staff, "_DUMMY_HASH", None)
    monkeypatch.setattr(staff, "MAX_FAILED_ATTEMPTS", 10_000)
    times: dict[str, list[float]] = {"known": [], "unknown": []}
    answer(world, "warm-up")  # the dummy hash is made on the first call, whoever it is for
    for i in range(9):
        for kind, name in (("known", world.clerk.username), ("unknown", f"nobody{i}")):
            start = time.perf_counter()
            answer(world, name)
            times[kind].append(time.perf_counter() - start)
    known, unknown = statistics.median(times["known"]), statistics.median(times["unknown"])
    assert 0.67 < unknown / known < 1.5, (known, unknown)
