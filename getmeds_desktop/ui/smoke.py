"""``getmeds --smoke-test``: prove that this build works, without a display.

Offscreen, in a temporary folder: create an embedded database and migrate it,
seed a small pharmacy, sign in, open every main screen and wait for its data,
write a PDF report and read it back, check the database drivers, Qt's chart
and PDF modules and the keyring. Prints one line per step; exits 0 when all
is well, otherwise 1 with the reason on standard error. IT runs it after
installing a build; packaging/build.py runs it on every build.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

log = logging.getLogger(__name__)

# Qt messages that the offscreen platform prints for things a real display does.
HARMLESS_QT = ("This plugin does not support",)


class SmokeFailure(Exception):
    pass


def _say(text: str) -> None:
    print(f"smoke test: {text}", flush=True)


def run_smoke_test() -> int:
    os.environ["QT_QPA_PLATFORM"] = "offscreen"
    folder = Path(tempfile.mkdtemp(prefix="getmeds-smoke-"))
    started = time.perf_counter()
    try:
        _run(folder)
    except Exception as exc:
        log.error("smoke test failed:\n%s", traceback.format_exc())
        print(f"smoke test: FAILED: {exc if isinstance(exc, SmokeFailure) else repr(exc)}",
              file=sys.stderr, flush=True)
        return 1
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    _say(f"OK in {time.perf_counter() - started:.1f} s")
    return 0


def _run(folder: Path) -> None:
    from PySide6.QtCore import (
        QCoreApplication,
        QEventLoop,
        QTimer,
        QtMsgType,
        qInstallMessageHandler,
    )
    from PySide6.QtWidgets import QApplication

    from .. import __version__

    _say(f"GetMeds Desktop {__version__}, Python {sys.version.split()[0]}, "
         f"{'frozen build' if getattr(sys, 'frozen', False) else 'source'}")
    qt_problems: list[str] = []

    def on_qt_message(kind: QtMsgType, _context: object, message: str) -> None:
        if any(message.startswith(h) for h in HARMLESS_QT):
            log.debug("qt: %s", message)
        elif kind in (QtMsgType.QtCriticalMsg, QtMsgType.QtFatalMsg):
            qt_problems.append(message)
        else:
            log.info("qt: %s", message)

    qInstallMessageHandler(on_qt_message)
    QCoreApplication.setOrganizationName("GetMeds")
    QCoreApplication.setApplicationName("GetMeds Smoke Test")
    app = QApplication.instance() or QApplication(sys.argv[:1])
    assert isinstance(app, QApplication), "a QCoreApplication without widgets already exists"
    from .gc_guard import GuiThreadCollector

    GuiThreadCollector(app)

    # -- drivers and Qt modules a build must carry
    import psycopg
    from PySide6 import QtCharts, QtPdf  # noqa: F401 - charts and printing

    _say(f"PostgreSQL driver psycopg {psycopg.__version__} (libpq "
         f"{psycopg.pq.version() // 10000}, {psycopg.pq.__impl__})")
    try:  # ReportLab's C accelerator: reports are much slower without it
        import _rl_accel  # noqa: F401
    except ImportError:
        raise SmokeFailure("ReportLab's accelerator (_rl_accel) is missing") from None
    _say("ReportLab accelerator present")
    from ..screening import default_knowledge  # package data read via importlib.resources

    knowledge = default_knowledge()
    _say(f"screening data loaded ({len(knowledge.interactions)} interactions, "
         f"{', '.join(f'{f} {v}' for f, v in knowledge.versions)})")

    # -- database: create, migrate, seed
    from .. import db
    from ..config import DatabaseTarget, load_config
    from ..services.demo import DEMO_PASSWORD
    from ..startup import Connector

    target = DatabaseTarget(f"sqlite:///{folder / 'smoke.sqlite3'}", "demo", "Smoke test")
    connector = Connector(demo_size={"products": 60, "patients": 30, "prescriptions": 40})
    opened = connector.open(target)
    current, head, state = db.schema_state(opened.engine)
    if state != "current":
        raise SmokeFailure(f"the database schema is {current}, expected {head}")
    _say(f"embedded database created and migrated to {head}; {opened.staff_count} staff")

    # -- sign in
    opened, actor = connector.sign_in(target, "admin", DEMO_PASSWORD)
    _say(f"signed in as {actor.username} ({actor.role.label})")

    # -- every main screen, with its data
    from .main_window import MainWindow
    from .style import apply_style
    from .workspace import Workspace

    apply_style(app)
    ws = Workspace(opened, actor, load_config([], folder / "no-config.toml"))
    errors: list[str] = []
    ws.tasks.unexpected_error.connect(lambda exc, _tb: errors.append(repr(exc)))
    win = MainWindow(ws)
    win.resize(1280, 800)
    win.show()

    def settle(timeout: float = 30.0) -> None:
        end = time.perf_counter() + timeout
        while True:
            loop = QEventLoop()
            QTimer.singleShot(50, loop.quit)
            loop.exec()
            if not ws.tasks.busy:
                return
            if time.perf_counter() > end:
                raise SmokeFailure("a screen did not finish loading in time")

    for key in win.area_keys():
        view = win.show_area(key)
        failed: list[str] = []
        model = getattr(view, "model", None)
        if model is not None and hasattr(model, "load_failed"):
            model.load_failed.connect(lambda exc, f=failed: f.append(str(exc)))
        settle()
        if failed or errors:
            raise SmokeFailure(f"the {key} screen failed: {(failed or errors)[0]}")
        rows = model.rowCount() if model is not None else None
        _say(f"opened {key}" + (f" ({rows} rows)" if rows is not None else ""))
    win.close()

    # -- a PDF report, read back
    from pypdf import PdfReader

    from ..reports import ReportParams, generate

    result = generate(opened.sf, actor, "inventory", ReportParams(), folder / "inventory.pdf")
    text = PdfReader(str(result.path)).pages[0].extract_text()
    if "Inventory" not in text:
        raise SmokeFailure("the inventory report does not say what it is")
    _say(f"wrote the inventory report ({result.pages} pages) and read it back")

    # -- keyring (a missing one is reported, not a failure: passwords are then
    #    simply not remembered)
    from .. import secrets

    problem = secrets.backend_problem()
    _say(f"keyring: {problem}" if problem else f"keyring: {secrets.backend_name()}")

    # -- the offline replica's encryption at rest (SQLCipher inside the build)
    import os as _os

    from .. import db

    cipher = db.make_encrypted_engine(folder / "replica" / "replica.sqlite3", _os.urandom(32))
    with cipher.connect() as c:
        version = c.exec_driver_sql("PRAGMA cipher_version").scalar()
    cipher.dispose()
    if not version:
        raise SmokeFailure("the offline copy's database is not encrypted (no SQLCipher)")
    _say(f"encryption at rest: SQLCipher {version}")

    # -- the update check's signatures (a build without release keys says so)
    from .. import updates
    from ..errors import GetMedsError

    try:
        _say(updates.self_check())
    except GetMedsError as exc:
        raise SmokeFailure(str(exc)) from None

    ws.close()
    connector.close_all()
    if qt_problems:
        raise SmokeFailure(f"Qt reported: {qt_problems[0]}")
