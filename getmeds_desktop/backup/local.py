"""The embedded database's daily copies: one a day in ``<data>/backups``, the
last 14 kept, restorable from the Administration screen and getmeds-admin.

Copies are made with the SQLite backup API (consistent while the app runs) and
checked with ``PRAGMA integrity_check`` before they count; a restore first
copies the current file aside, so a restore can itself be undone.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import re
import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from .. import db
from .core import BackupError

log = logging.getLogger(__name__)

KEEP = 14
_NAME = re.compile(r"^getmeds-(\d{8})T(\d{6})(?:\.(\d{6}))?Z\.sqlite3$")


@dataclasses.dataclass(frozen=True)
class LocalBackup:
    path: Path
    created_at: dt.datetime
    size: int

    @property
    def name(self) -> str:
        return self.path.name


def backup_folder(database: Path) -> Path:
    return database.parent / "backups"


def list_local(database: Path) -> list[LocalBackup]:
    """Copies of this database, newest first."""
    folder = backup_folder(database)
    out = []
    if folder.is_dir():
        for p in folder.iterdir():
            m = _NAME.match(p.name)
            if m:
                when = dt.datetime.strptime(m.group(1) + m.group(2), "%Y%m%d%H%M%S").replace(
                    microsecond=int(m.group(3) or 0), tzinfo=dt.UTC)
                out.append(LocalBackup(p, when, p.stat().st_size))
    return sorted(out, key=lambda b: b.created_at, reverse=True)


def _check(path: Path) -> None:
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            ok = con.execute("PRAGMA integrity_check").fetchone()[0]
            has_schema = con.execute(
                "SELECT count(*) FROM sqlite_master WHERE name = 'alembic_version'").fetchone()[0]
        finally:
            con.close()
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"{path.name} is not a readable database ({exc}).") from None
    if ok != "ok" or not has_schema:
        raise BackupError(f"{path.name} is damaged or is not a GetMeds database.")


def backup_now(engine: Engine, database: Path, *, now: dt.datetime | None = None,
               keep: int = KEEP) -> LocalBackup:
    """Copy the live database now, then keep only the newest ``keep`` copies."""
    when = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    target = backup_folder(database) / f"getmeds-{when:%Y%m%dT%H%M%S.%f}Z.sqlite3"
    db.sqlite_backup(engine, target)
    try:
        _check(target)
    except BackupError:
        target.unlink(missing_ok=True)
        raise
    for old in list_local(database)[keep:]:
        old.path.unlink(missing_ok=True)
        log.info("removed old backup %s", old.name)
    return LocalBackup(target, when, target.stat().st_size)


def daily_backup(engine: Engine, database: Path, *, now: dt.datetime | None = None,
                 keep: int = KEEP) -> LocalBackup | None:
    """At start-up: a copy if there is none from today (UTC) yet."""
    when = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    latest = list_local(database)
    if latest and latest[0].created_at.date() == when.date():
        return None
    return backup_now(engine, database, now=when, keep=keep)


def restore_local(engine: Engine, database: Path, backup: Path,
                  *, now: dt.datetime | None = None) -> Path:
    """Put a copy back in place of the live database. The current contents are
    first copied aside; their path is returned. All other connections must be
    closed (the app restarts its session after a restore)."""
    _check(backup)
    when = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    aside = database.with_name(f"{database.stem}.before-restore-{when:%Y%m%dT%H%M%S}Z"
                               f"{database.suffix}")
    db.sqlite_backup(engine, aside)
    source = sqlite3.connect(f"file:{backup}?mode=ro", uri=True)
    raw = engine.raw_connection()
    try:
        source.backup(db.sqlite_driver_connection(raw))
    finally:
        raw.close()
        source.close()
    engine.dispose()
    return aside


def upload(backup: LocalBackup, s3: Any, bucket: str, *, prefix: str = "backups") -> str:
    """Optionally send a local copy to S3 as well (a bucket in the settings)."""
    import hashlib

    key = f"{prefix.strip('/')}/embedded/{backup.name}"
    sha = hashlib.sha256(backup.path.read_bytes()).hexdigest()
    try:
        s3.upload_file(str(backup.path), bucket, key, ExtraArgs={
            "ServerSideEncryption": "AES256", "Metadata": {"sha256": sha},
            "ChecksumAlgorithm": "SHA256"})  # required by a bucket with S3 Object Lock
    except Exception as exc:
        from .core import _s3_error

        raise _s3_error(exc, bucket) from None
    return key
