"""Separate processes for figures that must not include the benchmark's own memory
or warm imports: cold start to the login dialog, RSS with Inventory open, and
RSS after scrolling the Patients list through every patient.

    python -m benchmarks.probes startup SPAWN_TIME URL
    python -m benchmarks.probes rss URL
    python -m benchmarks.probes scroll URL
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any


def _rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def startup(spawned: float, url: str) -> None:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from getmeds_desktop.ui.dialogs import login

    original = login.LoginDialog.showEvent

    def shown(self, event):
        original(self, event)
        print(f"{time.time() - spawned:.3f}", flush=True)
        os._exit(0)

    login.LoginDialog.showEvent = shown  # type: ignore[method-assign]
    from getmeds_desktop.app import main

    main(["--database", url])


def _signed_in_window(url: str) -> tuple[Any, Any, Any]:
    """A fresh QApplication and the main window of a pharmacist signed in to
    ``url`` (1300 x 800, shown, offscreen): (app, workspace, window)."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QCoreApplication
    from PySide6.QtWidgets import QApplication

    QCoreApplication.setOrganizationName("GetMeds")
    QCoreApplication.setApplicationName("GetMeds Benchmark")
    app = QApplication(sys.argv[:1])
    from getmeds_desktop.config import DatabaseTarget, load_config
    from getmeds_desktop.services import staff
    from getmeds_desktop.startup import Connector
    from getmeds_desktop.ui.main_window import MainWindow
    from getmeds_desktop.ui.workspace import Workspace

    opened = Connector().open(DatabaseTarget(url, "bench", "bench"))
    ws = Workspace(opened, staff.actor_for_username(opened.sf, "pharmacist"),
                   load_config([], __import__("pathlib").Path("/nonexistent")))
    win = MainWindow(ws)
    win.resize(1300, 800)
    win.show()
    return app, ws, win


def rss(url: str) -> None:
    from PySide6.QtCore import QEventLoop, QTimer

    app, ws, win = _signed_in_window(url)
    view = win.show_area("inventory")
    loop = QEventLoop()
    view.model.page_loaded.connect(lambda *_: loop.quit())
    QTimer.singleShot(30000, loop.quit)
    loop.exec()
    for _ in range(20):
        app.processEvents()
    print(f"{_rss_mb():.1f}", flush=True)
    ws.tasks.shutdown()



def scroll(url: str) -> None:
    """The Patients list opened in the main window and scrolled to its end, a
    page at a time as a view asks for them (scrolled to the bottom, then
    ``fetchMore``), until no page is left; then the process's RSS. Prints
    "RSS_MB PATIENTS ROWS_HELD SECONDS"."""
    app, ws, win = _signed_in_window(url)
    view = win.show_area("patients")
    model, table = view.model, view.table

    def settle(limit: float = 60.0) -> None:
        end = time.perf_counter() + limit
        while model.loading or not model.rowCount():
            app.processEvents()
            if time.perf_counter() > end:
                raise TimeoutError("the patients list did not load in time")
            time.sleep(0.0002)

    started = time.perf_counter()
    settle()
    while model.canFetchMore():
        table.scrollToBottom()
        app.processEvents()  # the view paints the last rows (and may ask for more itself)
        if model.canFetchMore():
            model.fetchMore()
        settle()
    table.scrollToBottom()
    for _ in range(20):
        app.processEvents()
    seconds = time.perf_counter() - started
    held = getattr(model, "held_rows", model.rowCount())
    print(f"{_rss_mb():.1f} {model.rowCount()} {held} {seconds:.1f}", flush=True)
    ws.tasks.shutdown()


def report(name: str, url: str, start: str, end: str) -> None:
    """Seconds and peak RSS growth (MB) of one report, in a fresh process.

    RSS is sampled every 10 ms while the report is made; the growth is the
    highest sample minus the RSS just before (imports, fonts and the
    connection pool are warmed up by a small report first)."""
    import datetime as dt
    import tempfile
    import threading
    from pathlib import Path

    from getmeds_desktop import db
    from getmeds_desktop.reports import ReportParams, generate
    from getmeds_desktop.services import staff

    engine = db.make_engine(url)
    sf = db.session_factory(engine)
    admin = staff.actor_for_username(sf, "admin")
    out = Path(tempfile.mkdtemp()) / f"{name}.pdf"
    generate(sf, admin, "staff", ReportParams(), out)
    base = _rss_mb()
    peak = [base]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.01):
            peak[0] = max(peak[0], _rss_mb())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    result = generate(sf, admin, name, ReportParams(start=dt.date.fromisoformat(start),
                                                    end=dt.date.fromisoformat(end)), out)
    seconds = time.perf_counter() - started
    done.set()
    sampler.join()
    peak[0] = max(peak[0], _rss_mb())
    print(f"{seconds:.2f} {peak[0] - base:.1f} {result.pages}", flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "startup":
        startup(float(sys.argv[2]), sys.argv[3])
    elif sys.argv[1] == "report":
        report(*sys.argv[2:6])
    elif sys.argv[1] == "scroll":
        scroll(sys.argv[2])
    else:
        rss(sys.argv[2])
