"""Test set-up shared by every test.

* The user's real home, config and keyring are never touched: HOME and the XDG
  folders point into a temporary folder, and keyring uses an in-memory backend.
* Qt runs offscreen unless a display is asked for (GETMEDS_TEST_DISPLAY=1).
* Data tests run on SQLite and PostgreSQL. PostgreSQL comes from
  GETMEDS_TEST_DATABASE_URL (default: the local server as user postgres); the
  run creates throwaway databases and drops them at the end.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

_TMP_HOME = Path(tempfile.mkdtemp(prefix="getmeds-test-home-"))
os.environ["HOME"] = str(_TMP_HOME)
for var, sub in (
    ("XDG_CONFIG_HOME", ".config"),
    ("XDG_DATA_HOME", ".local/share"),
    ("XDG_STATE_HOME", ".local/state"),
    ("XDG_CACHE_HOME", ".cache"),
    ("XDG_CONFIG_DIRS", "etc-xdg"),
):
    os.environ[var] = str(_TMP_HOME / sub)
os.environ.pop("GETMEDS_DATABASE_URL", None)
os.environ.pop("GETMEDS_SITE_CONFIG", None)
if not os.environ.get("GETMEDS_TEST_DISPLAY"):
    os.environ["QT_QPA_PLATFORM"] = "offscreen"
os.environ.setdefault("QT_QUICK_BACKEND", "software")

import pytest  # noqa: E402

pytest_plugins = ["tests.fixtures.clock", "tests.fixtures.database", "tests.fixtures.data"]


# Python's cycle collector runs on the main (Qt GUI) thread only, as in the
# application (getmeds_desktop/ui/gc_guard.py): a test's closed widgets and task
# managers are often freed only by the collector, and a collection triggered in
# another thread (a task worker, or pytest-xdist's receiver thread) would destroy
# them there and crash the run. Collection happens after each test, once pytest
# has let go of the test's objects, and on the GUI tests' timer meanwhile.
def pytest_configure(config: pytest.Config) -> None:
    import gc

    gc.disable()


# The fast lane (`./scripts/test.sh -m "not slow"`): the rules, services and
# reports on the embedded database. "slow" is everything that needs a real
# window, the PostgreSQL server, moto or a subprocess, and the few tests marked
# one by one; the whole suite runs them all.
_SLOW_FOLDERS = ("ui", "security", "cloud", "packaging")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    slow = pytest.mark.slow
    for item in items:
        folder = item.path.parent.name
        params = getattr(getattr(item, "callspec", None), "params", {})
        uses_pg = params.get("backend_name") == "postgresql" or any(
            name.startswith("pg_") for name in getattr(item, "fixturenames", ()))
        if folder in _SLOW_FOLDERS or uses_pg:
            item.add_marker(slow)


# The test clock's midnight run, the moto server and the frozen-build smoke
# test are marked slow where they are defined.


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item):
    from getmeds_desktop.ui.gc_guard import collect_due

    result = yield
    collect_due()
    return result


@pytest.fixture(autouse=True)
def _memory_keyring(monkeypatch):
    """The in-memory keyring, trusted like the operating system's keyrings
    (getmeds_desktop.secrets uses only an allow-list of backends)."""
    import keyring

    from getmeds_desktop import secrets
    from tests.fixtures.memkeyring import MemoryKeyring

    previous = keyring.get_keyring()
    backend = MemoryKeyring()
    monkeypatch.setattr(secrets, "SECURE_BACKENDS",
                        secrets.SECURE_BACKENDS | {"tests.fixtures.memkeyring.MemoryKeyring"})
    keyring.set_keyring(backend)
    yield backend
    keyring.set_keyring(previous)


@pytest.fixture(autouse=True)
def _fast_password_hashing(monkeypatch):
    """argon2 at production cost takes ~50 ms a hash; tests use a cheap one.
    test_production_hash_parameters checks the real settings."""
    from argon2 import PasswordHasher

    from getmeds_desktop.services import staff

    cheap = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    monkeypatch.setattr(staff, "_hasher", cheap)
    monkeypatch.setattr(staff, "_DUMMY_HASH", cheap.hash("not-a-real-password-0000"))


_VERIFIERS: dict[str, str] = {}


@pytest.fixture(autouse=True)
def _one_verifier_per_password(monkeypatch):
    """The SCRAM verifier of a new login (PBKDF2, 4096 rounds) is made once per
    password in a test run: a verifier does not depend on the login's name, and
    tests make thousands of logins with the same password. The salt is then the
    same for all of them, which only a test may do."""
    from getmeds_desktop.services import staff

    real = staff._verifier

    def cached(s, login: str, password: str) -> str:
        if password not in _VERIFIERS:
            _VERIFIERS[password] = real(s, login, password)
        return _VERIFIERS[password]

    monkeypatch.setattr(staff, "_verifier", cached)


@pytest.fixture(autouse=True)
def _forget_unknown_sign_ins():
    """Failed sign-ins of unknown usernames are counted in memory, per engine."""
    yield
    from getmeds_desktop.services import staff

    staff.unknown_names.clear()
