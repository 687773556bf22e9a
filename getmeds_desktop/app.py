"""The ``getmeds`` command: the desktop application."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="getmeds", description="GetMeds Desktop")
    p.add_argument("--version", action="store_true", help="print the version and exit")
    p.add_argument("--demo", action="store_true",
                   help="open a throwaway demo pharmacy (a fresh, seeded database)")
    p.add_argument("--database", metavar="URL", help="SQLAlchemy URL of the database")
    p.add_argument("--profile", help="connection profile from the configuration file")
    p.add_argument("--smoke-test", action="store_true",
                   help="start offscreen, exercise every screen, exit 0 if all is well")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.version:
        from . import __version__

        print(f"GetMeds Desktop {__version__}")
        return 0
    from . import logs

    log_path = logs.setup()
    if args.smoke_test:
        from .ui.smoke import run_smoke_test

        return run_smoke_test()
    return run_gui(args, log_path)


def run_gui(args: argparse.Namespace, log_path: Path) -> int:
    import tempfile
    from pathlib import Path

    from PySide6.QtCore import QCoreApplication
    from PySide6.QtWidgets import QApplication, QMessageBox

    from . import config
    from .errors import ConfigError

    QCoreApplication.setOrganizationName("GetMeds")
    QCoreApplication.setApplicationName("GetMeds Desktop")
    app = QApplication.instance() or QApplication(sys.argv[:1])
    assert isinstance(app, QApplication), "a QCoreApplication without widgets already exists"
    from .ui.gc_guard import GuiThreadCollector
    from .ui.style import apply_style

    apply_style(app)
    GuiThreadCollector(app)  # widgets are freed on the GUI thread only (ui/gc_guard.py)
    try:
        cfg = config.load_config()
        demo_folder = None
        default_index = 0
        if args.demo:
            from .startup import demo_target

            demo_folder = Path(tempfile.mkdtemp(prefix="getmeds-demo-"))
            targets = [demo_target(demo_folder)]
        elif args.database or args.profile or __import__("os").environ.get(
                "GETMEDS_DATABASE_URL"):
            targets = [config.resolve_database(args.database, args.profile, cfg)]
        else:
            targets = [config.resolve_database(None, config.EMBEDDED_PROFILE, cfg)]
            for name, prof in sorted(cfg.profiles.items()):
                targets.append(config.DatabaseTarget(prof.to_url(), name, prof.describe()))
            if cfg.default_profile and cfg.default_profile in cfg.profiles:
                default_index = [t.profile for t in targets].index(cfg.default_profile)
    except ConfigError as exc:
        QMessageBox.critical(None, "GetMeds: configuration problem", str(exc))
        return 2
    if args.database and not confirm_new_database(targets[0].url):
        return 0
    from .ui.controller import AppController

    controller = AppController(app, cfg, targets, log_path, demo_folder=demo_folder,
                               default_index=default_index)
    controller.start()
    return app.exec()


def missing_database_file(url: str) -> Path | None:
    """The file an embedded database URL names when nothing is there yet."""
    from pathlib import Path

    from . import db

    try:
        u = db.normalize_url(url)
    except Exception:  # an unusable URL is reported when it is opened
        return None
    if u.get_backend_name() != "sqlite" or not u.database or u.database == ":memory:":
        return None
    path = Path(u.database)
    return None if path.exists() else path


def confirm_new_database(url: str) -> bool:
    """A --database path with no file there may be a typo: ask before making a
    new, empty pharmacy database (the default embedded database is made on
    first start without asking)."""
    from PySide6.QtWidgets import QMessageBox

    path = missing_database_file(url)
    if path is None:
        return True
    answer = QMessageBox.question(
        None, "GetMeds: no database there",
        f"There is no database at {path}.\n\nCreate a new, empty pharmacy database there?",
        QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
        QMessageBox.StandardButton.No)
    return answer == QMessageBox.StandardButton.Yes


if __name__ == "__main__":
    sys.exit(main())
