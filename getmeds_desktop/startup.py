"""Opening a database and signing in, without Qt (used by the GUI's worker
thread, the smoke test and the tests)."""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from .config import DatabaseTarget

if TYPE_CHECKING:  # SQLAlchemy loads in the background, after the window shows
    from sqlalchemy.engine import Engine
    from sqlalchemy.orm import Session, sessionmaker

    from .services.context import Actor

log = logging.getLogger(__name__)


@dataclasses.dataclass
class OpenedDatabase:
    """An open, schema-checked database."""

    target: DatabaseTarget
    engine: Engine
    sf: sessionmaker[Session]
    staff_count: int
    backup_path: Path | None = None
    daily_copy: Path | None = None  # the embedded database's copy made at this opening
    # the read replica reports read from (the profile's reporting_host), signed in
    # with the same login; None: reports read the database itself
    reporting_engine: Engine | None = None
    reporting_sf: sessionmaker[Session] | None = None

    @property
    def report_sf(self) -> sessionmaker[Session]:
        """Where reports read (never where anything is written: label prints are
        recorded through ``sf``)."""
        return self.reporting_sf or self.sf

    def dispose(self) -> None:
        self.engine.dispose()
        if self.reporting_engine is not None:
            self.reporting_engine.dispose()

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @property
    def kind_label(self) -> str:
        return "Embedded" if self.is_sqlite else "Server"


def demo_target(folder: Path) -> DatabaseTarget:
    path = folder / "demo.sqlite3"
    return DatabaseTarget(url=f"sqlite:///{path}", profile="demo", label="Demo pharmacy")


def use_zone(name: str | None) -> None:
    """Dates are the pharmacy's: the shared database's time zone (None: this
    workstation's own, as for the embedded database)."""
    from .services import clock

    clock.set_zone(name)  # an unknown zone is logged, and this workstation's is used


class Connector:
    """Opens each database once and signs staff in. Thread-safe."""

    def __init__(self, *, demo_size: dict[str, int] | None = None) -> None:
        self._lock = threading.Lock()
        self._opened: dict[str, OpenedDatabase] = {}
        self.demo_size = demo_size or {"products": 600, "patients": 400, "prescriptions": 500}

    @staticmethod
    def is_server(target: DatabaseTarget) -> bool:
        return not target.url.startswith("sqlite")

    def open(self, target: DatabaseTarget,
             progress: Callable[[str, float], None] | None = None) -> OpenedDatabase:
        """Open an embedded database (or a server URL that carries its own login,
        as IT's tools do). Staff sign in to a server with ``sign_in``."""
        from .services import staff

        with self._lock:
            opened = self._opened.get(target.url)
            if opened is not None:
                opened.staff_count = staff.count_staff(opened.sf)
                return opened
            opened = self._open(target, progress)
            self._opened[target.url] = opened
            return opened

    def _open(self, target: DatabaseTarget,
              progress: Callable[[str, float], None] | None) -> OpenedDatabase:
        from . import db
        from .services import staff

        url = db.normalize_url(target.url)
        backup = None
        daily = None
        staff_count: int | None = None
        zone: str | None = None
        if url.get_backend_name() == "sqlite":
            path = Path(url.database or "")
            engine, backup = db.prepare_embedded(path)
            if target.profile == "demo" and staff.count_staff(db.session_factory(engine)) == 0:
                from .services.demo import seed_demo

                seed_demo(engine, progress=progress, **self.demo_size)
            elif target.profile != "demo":
                daily = self._daily_copy(engine, path)
        else:
            engine = db.make_engine(url)
            try:
                # the schema check, the staff count and the time zone: one round trip
                staff_count, zone = staff.open_check(db.session_factory(engine))
            except BaseException:
                engine.dispose()
                raise
        sf = db.session_factory(engine)
        log.info("opened %s", db.describe_url(url))
        use_zone(zone if url.get_backend_name() != "sqlite" else None)
        if staff_count is None:
            staff_count = staff.count_staff(sf)
        return OpenedDatabase(target, engine, sf, staff_count, backup, daily)

    @staticmethod
    def _daily_copy(engine: Engine, path: Path) -> Path | None:
        """The embedded database's daily copy (kept 14 days). A failed copy
        does not stop the pharmacy working; it is logged and shown in
        Administration > Backups."""
        from .backup import local
        from .backup.core import BackupError

        try:
            made = local.daily_backup(engine, path)
            if made is not None:
                log.info("daily copy of the embedded database: %s", made.path)
                return made.path
        except (BackupError, OSError) as exc:
            log.warning("the daily copy of the embedded database failed: %s", exc)
        return None

    def sign_in(self, target: DatabaseTarget, username: str, password: str
                ) -> tuple[OpenedDatabase, Actor]:
        """Embedded: check the app account. Server: connect as the staff member's
        own database role; the server checks the password and the role's group
        decides what the app offers."""
        from .services import staff

        if not self.is_server(target):
            opened = self.open(target)
            actor = staff.authenticate(opened.sf, username, password)
            use_zone(None)  # one workstation: its own time zone
            return opened, actor
        login = (username or "").strip().lower()
        key = f"{target.url}#{login}"
        with self._lock:
            from . import db

            engine = db.make_engine(target.url, username=login, password=password)
            try:
                sf = db.session_factory(engine)
                # connecting proves the password; one statement checks the
                # schema, the staff row and the group role
                signed = staff.sign_in_check(sf)
            except BaseException:
                engine.dispose()
                raise
            reporting = reporting_sf = None
            if target.reporting_url:  # connects on the first report, not now
                reporting = db.make_engine(target.reporting_url, username=login,
                                           password=password)
                reporting_sf = db.session_factory(reporting)
            use_zone(signed.zone)
            old = self._opened.pop(key, None)
            if old is not None:
                old.dispose()
            opened = OpenedDatabase(target, engine, sf, signed.staff_count,
                                    reporting_engine=reporting, reporting_sf=reporting_sf)
            self._opened[key] = opened
            return opened, signed.actor

    def verify_password(self, target: DatabaseTarget, username: str, password: str) -> None:
        """Unlocking: prove the password again without touching the open session."""
        from .services import staff

        if not self.is_server(target):
            staff.authenticate(self.open(target).sf, username, password)
            return
        from . import db

        engine = db.make_engine(target.url, username=username.strip().lower(),
                                password=password, poolclass=__import__("sqlalchemy").NullPool)
        try:
            db.connect_check(engine)
        finally:
            engine.dispose()

    def close_all(self) -> None:
        with self._lock:
            for opened in self._opened.values():
                opened.dispose()
            self._opened.clear()
