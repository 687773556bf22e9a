"""Backups for the Administration screen (administrators only).

Embedded database: the daily copies in the data folder (backup/local.py).
Server database: backups to S3 made with the signed-in administrator's own
database login, and restores into a new database (backup/core.py). AWS
credentials come from the workstation's AWS configuration (a profile, or the
AWS_* environment variables), never from GetMeds' own files.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy.engine import Engine

from ..backup import core, local
from ..backup.core import BackupError, BackupInfo, Progress, RestoreResult
from ..backup.local import LocalBackup
from .context import Actor, Perm, require
from .errors import DomainError

T = TypeVar("T")


class BackupFailed(DomainError):
    """A backup or restore that did not happen; the message says why."""


def _run(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    try:
        return fn(*args, **kwargs)
    except BackupError as exc:
        raise BackupFailed(str(exc)) from None


def embedded_path(engine: Engine) -> Path:
    if engine.dialect.name != "sqlite" or not engine.url.database:
        raise BackupFailed("This is a server database: its backups go to S3.")
    return Path(engine.url.database)


def local_copies(actor: Actor, engine: Engine) -> list[LocalBackup]:
    require(actor, Perm.BACKUPS)
    return local.list_local(embedded_path(engine))


def copy_now(actor: Actor, engine: Engine) -> LocalBackup:
    require(actor, Perm.BACKUPS)
    return _run(local.backup_now, engine, embedded_path(engine))


def restore_copy(actor: Actor, engine: Engine, name: str) -> Path:
    """Put a copy back; returns where the data before the restore was kept."""
    require(actor, Perm.BACKUPS)
    path = embedded_path(engine)
    chosen = local.backup_folder(path) / Path(name).name
    if not chosen.is_file():
        raise BackupFailed(f"There is no copy named {name}.")
    return _run(local.restore_local, engine, path, chosen)


def upload_copy(actor: Actor, copy: Path, s3: Any, bucket: str,
                prefix: str = "backups") -> str:
    """Send an embedded copy to S3 too (the site file's [backups] bucket).
    The automatic upload of the daily copy after sign-in acts as ``SYSTEM``
    (the site file asked for it, whoever signs in)."""
    require(actor, Perm.BACKUPS)
    import datetime as dt

    item = LocalBackup(copy, dt.datetime.now(dt.UTC), copy.stat().st_size)
    return _run(local.upload, item, s3, bucket, prefix=prefix)


def s3_client(region: str | None = None, endpoint_url: str | None = None) -> Any:
    import boto3

    try:
        return boto3.session.Session(region_name=region or None).client(
            "s3", endpoint_url=endpoint_url or None)
    except Exception as exc:
        raise BackupFailed(f"AWS is not configured on this workstation: {exc}") from None


def server_backups(actor: Actor, s3: Any, bucket: str, prefix: str = "backups"
                   ) -> list[BackupInfo]:
    require(actor, Perm.BACKUPS)
    if not bucket.strip():
        raise BackupFailed("Enter the backup bucket (IT knows its name).")
    return _run(core.list_backups, s3, bucket.strip(), prefix=prefix)


def back_up_server(actor: Actor, engine: Engine, s3: Any, bucket: str, prefix: str = "backups",
                   progress: Progress | None = None) -> BackupInfo:
    """A backup now, as the signed-in administrator's database login."""
    require(actor, Perm.BACKUPS)
    if not bucket.strip():
        raise BackupFailed("Enter the backup bucket (IT knows its name).")
    url = engine.url.render_as_string(hide_password=False)
    return _run(core.run_backup, core.params_from_url(url), s3, bucket.strip(), prefix=prefix,
                progress=progress)


def restore_server(actor: Actor, s3: Any, bucket: str, key: str, target_url: str,
                   progress: Progress | None = None) -> RestoreResult:
    require(actor, Perm.BACKUPS)
    if not target_url.strip():
        raise BackupFailed("Enter the new database to restore into.")
    try:
        params = core.params_from_url(target_url.strip())
    except BackupError as exc:
        raise BackupFailed(str(exc)) from None
    except Exception:
        raise BackupFailed("That is not a database URL (postgresql://user@host/database).") \
            from None
    return _run(core.restore_backup, s3, bucket.strip(), key, params, progress=progress)
