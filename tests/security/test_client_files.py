"""The embedded database's files can be read by their owner only.

Another account on the same computer (a second clerk's login, a guest) must
not read the database, its SQLite -wal/-shm files, the daily copies or the
before-upgrade/before-restore copies: folders 0700, files 0600, from the
moment they are created (even with a careless umask), and files an older
version left 0644 in 0755 folders are narrowed at the next start.
"""

from __future__ import annotations

import datetime as dt
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from getmeds_desktop import config, db, logs
from getmeds_desktop.backup import local
from getmeds_desktop.startup import Connector

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX permissions "
                                "(Windows relies on the per-user profile folder)")
UTC = dt.UTC


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def others_can_reach(path: Path) -> bool:
    return bool(mode(path) & (stat.S_IRWXG | stat.S_IRWXO))


@pytest.fixture
def careless_umask() -> Iterator[None]:
    """umask 000: whatever is created without an explicit mode is world-readable."""
    old = os.umask(0)
    yield
    os.umask(old)


@pytest.fixture
def data_folder() -> Iterator[Path]:
    folder = config.data_dir()
    yield folder
    import shutil

    shutil.rmtree(folder, ignore_errors=True)


def _embedded_target() -> config.DatabaseTarget:
    empty = config.AppConfig(profiles={}, default_profile=None, auto_lock_minutes=None,
                             paper_size=None, pharmacy={}, locked=frozenset(), files=())
    return config.resolve_database(config=empty)


def _all_private(folder: Path) -> list[str]:
    """Everything under ``folder`` that another account could reach."""
    bad = []
    for p in [folder, *folder.rglob("*")]:
        if others_can_reach(p):
            bad.append(f"{p.relative_to(folder.parent)} {oct(mode(p))}")
    return bad


def test_a_new_embedded_database_is_private_from_the_start(data_folder, careless_umask):
    connector = Connector()
    try:
        opened = connector.open(_embedded_target())
        with opened.engine.begin() as conn:  # a write: the -wal and -shm files exist now
            conn.execute(sa.text("CREATE TABLE scratch (x integer)"))
        path = config.embedded_database_path()
        assert path.with_name(path.name + "-wal").exists()
        assert path.with_name(path.name + "-shm").exists()
        assert opened.daily_copy is not None and opened.daily_copy.parent.name == "backups"
        assert mode(data_folder) == 0o700 and mode(opened.daily_copy.parent) == 0o700
        assert _all_private(data_folder) == []
    finally:
        connector.close_all()


def test_files_left_readable_by_an_older_version_are_narrowed_at_start(data_folder):
    path = config.embedded_database_path()
    engine, _ = db.prepare_embedded(path)
    local.backup_now(engine, path, now=dt.datetime(2026, 11, 1, 8, tzinfo=UTC))
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE scratch (x integer)"))
    engine.dispose()
    old_copy = path.with_name("getmeds.before-upgrade-20260101T000000Z.sqlite3")
    old_copy.write_bytes(path.read_bytes())
    # what an older version left behind
    for p in [data_folder, *data_folder.rglob("*")]:
        os.chmod(p, 0o755 if p.is_dir() else 0o644)
    assert _all_private(data_folder) != []

    connector = Connector()
    try:
        connector.open(_embedded_target())
        assert _all_private(data_folder) == []
        assert mode(old_copy) == 0o600
    finally:
        connector.close_all()


def test_the_before_upgrade_copy_is_private(tmp_path, careless_umask):
    folder = tmp_path / "data"
    path = folder / "getmeds.sqlite3"
    engine = db.make_engine(f"sqlite:///{path}")
    db.upgrade(engine, "0005")
    engine.dispose()
    engine, backup = db.prepare_embedded(path)
    engine.dispose()
    assert backup is not None and backup.name.startswith("getmeds.before-upgrade-")
    assert mode(backup) == 0o600 and mode(path) == 0o600 and mode(folder) == 0o700
    assert not list(folder.glob("*.part"))


def test_daily_copies_and_restores_are_private(tmp_path, careless_umask):
    path = tmp_path / "data" / "getmeds.sqlite3"
    engine, _ = db.prepare_embedded(path)
    copy = local.daily_backup(engine, path, now=dt.datetime(2026, 11, 1, 8, tzinfo=UTC))
    assert copy is not None
    assert mode(copy.path) == 0o600 and mode(copy.path.parent) == 0o700
    aside = local.restore_local(engine, path, copy.path,
                                now=dt.datetime(2026, 11, 2, 8, tzinfo=UTC))
    assert mode(aside) == 0o600 and mode(path) == 0o600
    engine.dispose()
    assert _all_private(path.parent) == []


def test_a_folder_the_user_chose_keeps_its_mode_but_the_files_do_not(tmp_path):
    """--database sqlite:////srv/shared/x.sqlite3: GetMeds does not chmod a folder
    it did not make (it could be /tmp), but the database in it is still 0600."""
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o755)
    path = shared / "pharmacy.sqlite3"
    engine, _ = db.prepare_embedded(path)
    engine.dispose()
    assert mode(shared) == 0o755
    assert mode(path) == 0o600


def test_a_symbolic_link_is_not_followed(tmp_path):
    """A copy that is a link to somebody else's file: its target is not chmod-ed."""
    folder = tmp_path / "data"
    path = folder / "getmeds.sqlite3"
    engine, _ = db.prepare_embedded(path)
    engine.dispose()
    elsewhere = tmp_path / "elsewhere.txt"
    elsewhere.write_text("not ours")
    os.chmod(elsewhere, 0o644)
    link = path.with_name("getmeds.before-upgrade-20260101T000000Z.sqlite3")
    link.symlink_to(elsewhere)
    engine, _ = db.prepare_embedded(path)
    engine.dispose()
    assert mode(elsewhere) == 0o644


def test_the_log_folder_is_private(monkeypatch, tmp_path):
    import logging

    monkeypatch.setattr(config, "log_dir", lambda: tmp_path / "state" / "log")
    root = logging.getLogger()
    before = list(root.handlers)
    monkeypatch.setattr(root, "handlers", [h for h in before
                                           if not getattr(h, "_getmeds", False)])
    path = logs.setup()
    try:
        assert mode(path.parent) == 0o700
    finally:
        for h in root.handlers:
            if getattr(h, "_getmeds", False):
                h.close()
