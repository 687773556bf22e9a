"""The embedded database's daily copies: one a day, the last 14 kept, a
restore that keeps the data it replaces."""

from __future__ import annotations

import datetime as dt
import sqlite3

import pytest

from getmeds_desktop import db
from getmeds_desktop.backup import local
from getmeds_desktop.backup.core import BackupError
from tests.fixtures.data import build_world

UTC = dt.UTC


@pytest.fixture
def embedded(tmp_path):
    path = tmp_path / "data" / "getmeds.sqlite3"
    engine, _ = db.prepare_embedded(path)
    world = build_world(db.session_factory(engine))
    yield engine, path, world
    engine.dispose()


def test_one_copy_a_day_and_the_last_fourteen_kept(embedded):
    engine, path, _world = embedded
    start = dt.datetime(2026, 11, 1, 8, 30, tzinfo=UTC)
    assert local.daily_backup(engine, path, now=start) is not None
    assert local.daily_backup(engine, path, now=start + dt.timedelta(hours=5)) is None
    for day in range(1, 20):
        local.daily_backup(engine, path, now=start + dt.timedelta(days=day))
    copies = local.list_local(path)
    assert len(copies) == 14
    assert copies[0].created_at.date() == dt.date(2026, 11, 20)
    assert copies[-1].created_at.date() == dt.date(2026, 11, 7)
    con = sqlite3.connect(copies[0].path)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    con.close()


def test_restore_puts_the_copy_back_and_keeps_the_data_it_replaced(embedded):
    engine, path, world = embedded
    kept = world.patient("Kim", "Kept")
    copy = local.backup_now(engine, path)
    late = world.patient("Lou", "Later")
    aside = local.restore_local(engine, path, copy.path)
    sf = db.session_factory(engine)
    ids = {p.id for p in _all_patients(sf, world)}
    assert kept.id in ids and late.id not in ids
    con = sqlite3.connect(aside)  # what was replaced is still there
    assert con.execute("SELECT count(*) FROM patients WHERE id = ?",
                       (late.id.hex,)).fetchone()[0] + con.execute(
        "SELECT count(*) FROM patients WHERE id = ?", (str(late.id),)).fetchone()[0] == 1
    con.close()


def _all_patients(sf, world):
    from getmeds_desktop.services import listing

    return listing.list_patients(sf, world.pharmacist, "", limit=1000).rows


def test_a_damaged_copy_is_refused(embedded):
    engine, path, world = embedded
    copy = local.backup_now(engine, path)
    data = bytearray(copy.path.read_bytes())
    data[100:4000] = b"\x00" * 3900
    copy.path.write_bytes(bytes(data))
    world.patient("Stay", "Put")
    with pytest.raises(BackupError, match="damaged|not a readable"):
        local.restore_local(engine, path, copy.path)
    names = [p.last_name for p in _all_patients(db.session_factory(engine), world)]
    assert "Put" in names
