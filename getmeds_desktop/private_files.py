"""The embedded database's files belong to the operating-system account that
runs GetMeds, and to nobody else on the machine.

On Linux and macOS: GetMeds' own folders (the data folder, ``backups/``, a
folder it creates for a database) are 0700, and the database, SQLite's
``-wal``/``-shm``/``-journal`` files, the before-upgrade and before-restore
copies and the daily copies are 0600. Files are created with those modes
(never created readable and narrowed afterwards), and files left by an older
version are narrowed at every start. A folder the user chose that GetMeds
did not create (``--database sqlite:////srv/x.sqlite3``) keeps its mode; the
files in it are still 0600.

On Windows the data folder is under ``%LOCALAPPDATA%``, whose access list
already admits only that user (and the machine's administrators); GetMeds
changes nothing there.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger(__name__)

POSIX = os.name == "posix"
FOLDER_MODE = 0o700
FILE_MODE = 0o600
SQLITE_SIDECARS = ("-wal", "-shm", "-journal")


def _chmod(path: Path, mode: int) -> None:
    """Set ``mode`` on a real file or folder (a symbolic link is left alone:
    what it points to may not be ours)."""
    if not POSIX:
        return
    try:
        st = path.lstat()
    except FileNotFoundError:
        return
    if stat.S_ISLNK(st.st_mode):
        log.warning("%s is a symbolic link; its permissions were not changed", path)
        return
    if stat.S_IMODE(st.st_mode) != mode:
        try:
            os.chmod(path, mode)
        except OSError as exc:
            log.warning("could not make %s private: %s", path, exc.strerror)


def private_folder(path: Path, *, ours: bool = False) -> None:
    """Create ``path`` (0700). An existing folder is narrowed to 0700 only when
    it is ``ours`` (GetMeds' own data or backups folder)."""
    existed = path.is_dir()
    path.mkdir(parents=True, exist_ok=True)
    if ours or not existed:
        _chmod(path, FOLDER_MODE)


def private_file(path: Path) -> None:
    """Create an empty ``path`` readable by its owner only, or narrow an existing one."""
    if POSIX and not path.exists():
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, FILE_MODE)
            os.close(fd)
        except FileExistsError:
            pass
    _chmod(path, FILE_MODE)


def narrow(path: Path) -> None:
    """0600 for an existing file (nothing happens when it does not exist)."""
    _chmod(path, FILE_MODE)


def database_files(database: Path) -> list[Path]:
    """The database, its SQLite side files and the copies GetMeds keeps of it."""
    folder = database.parent
    found = [database, *(database.with_name(database.name + s) for s in SQLITE_SIDECARS)]
    if folder.is_dir():
        prefix = f"{database.stem}.before-"
        for p in folder.iterdir():
            if p.name.startswith(prefix):
                found.append(p)
    backups = folder / "backups"
    if backups.is_dir():
        found.extend(p for p in backups.iterdir() if not p.is_dir())
    return found


def secure_database(database: Path, *, own_folder: bool) -> None:
    """At every start: the folder (when GetMeds owns it), ``backups/`` and
    every file of the embedded database made private again."""
    if not POSIX:
        return
    if own_folder:
        _chmod(database.parent, FOLDER_MODE)
    backups = database.parent / "backups"
    if backups.is_dir():
        _chmod(backups, FOLDER_MODE)
    for p in database_files(database):
        narrow(p)
