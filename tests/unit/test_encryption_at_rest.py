"""The offline replica holds patient records, so it is encrypted at rest
(SQLCipher, AES-256, a random 32-byte key kept in the OS keyring): the file and
its write-ahead log show nothing readable, a wrong key is a clear message, the
folder is 0700 and the files 0600, and where no secure keyring exists offline
mode is unavailable with the reason."""

from __future__ import annotations

import datetime as dt
import stat
import sys
import uuid

import keyring
import pytest
import sqlalchemy as sa

from getmeds_desktop import db, secrets
from getmeds_desktop.models import Patient

NAME = "Zebulon-Quixote"


def _patient(engine: sa.Engine) -> None:
    now = dt.datetime.now(dt.UTC)
    with engine.begin() as c:
        c.execute(sa.insert(Patient), [dict(
            id=uuid.uuid4(), first_name=NAME, last_name="Encrypted-Example",
            date_of_birth=dt.date(1970, 1, 1), allergy_status="no_known_allergies",
            created_at=now, updated_at=now, version=1)])


def test_the_replica_file_and_its_log_hold_nothing_readable(tmp_path):
    path = tmp_path / "replica" / "replica.sqlite3"
    engine = db.make_encrypted_engine(path, secrets.replica_key("site"))
    db.upgrade(engine)
    _patient(engine)
    with engine.connect() as c:  # written, and read back with the key
        assert c.execute(sa.select(Patient.first_name)).scalar() == NAME
        assert c.exec_driver_sql("PRAGMA cipher_version").scalar()
        wal = path.with_name(path.name + "-wal")
        assert wal.exists()  # the log is there while the database is open, and enciphered
        for f in (path, wal):
            data = f.read_bytes()
            assert NAME.encode() not in data and NAME.encode("utf-16-le") not in data
            assert b"CREATE TABLE" not in data
        assert not path.read_bytes().startswith(b"SQLite format 3")
    engine.dispose()
    import sqlite3

    with pytest.raises(sqlite3.DatabaseError, match="not a database"):
        sqlite3.connect(path).execute("SELECT count(*) FROM sqlite_master").fetchone()


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX file modes")
def test_the_replica_folder_is_0700_and_its_files_0600(tmp_path):
    path = tmp_path / "data" / "replica" / "replica.sqlite3"
    engine = db.make_encrypted_engine(path, secrets.replica_key("site"))
    db.upgrade(engine)
    with engine.connect():
        for f in path.parent.iterdir():
            assert stat.S_IMODE(f.stat().st_mode) == 0o600, f.name
    engine.dispose()
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_a_wrong_key_is_a_clear_message_and_changes_nothing(tmp_path):
    path = tmp_path / "replica.sqlite3"
    engine = db.make_encrypted_engine(path, secrets.replica_key("site"))
    db.upgrade(engine)
    engine.dispose()
    before = path.read_bytes()
    with pytest.raises(db.WrongKey, match="cannot be opened with the key"):
        db.make_encrypted_engine(path, bytes(32))
    assert path.read_bytes() == before
    with pytest.raises(ValueError):
        db.make_encrypted_engine(path, b"short")


def test_the_key_is_made_once_per_profile_and_kept_in_the_keyring():
    first = secrets.replica_key("site")
    assert len(first) == 32
    assert secrets.replica_key("site") == first
    assert secrets.replica_key("other") != first
    secrets.forget_replica_key("site")
    with pytest.raises(secrets.NoSecureKeyring, match="no key"):
        secrets.replica_key("site", create=False)


def test_without_a_secure_keyring_offline_mode_is_unavailable_and_says_why(tmp_path):
    from keyrings.alt.file import PlaintextKeyring

    kr = PlaintextKeyring()
    kr.file_path = str(tmp_path / "plain.cfg")  # type: ignore[misc]
    previous = keyring.get_keyring()
    keyring.set_keyring(kr)
    try:
        with pytest.raises(secrets.NoSecureKeyring) as err:
            secrets.replica_key("site")
    finally:
        keyring.set_keyring(previous)
    assert "Working offline is not available" in str(err.value)
    assert "PlaintextKeyring" in str(err.value)
    assert not (tmp_path / "plain.cfg").exists()  # nothing was written to it
