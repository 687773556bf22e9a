"""Logging to a rotating file in the user log folder. Never logs a password."""

from __future__ import annotations

import logging
import logging.handlers
import sys
from pathlib import Path

from . import config

LOG_FILE_NAME = "getmeds.log"


def log_file() -> Path:
    return config.log_dir() / LOG_FILE_NAME


def setup(level: int = logging.INFO, *, console: bool = False) -> Path:
    """Send log records to the rotating file (and optionally stderr). Returns the path."""
    path = log_file()
    root = logging.getLogger()
    if any(getattr(h, "_getmeds", False) for h in root.handlers):
        return path
    try:
        # error messages can quote patient data: the log folder is the user's alone
        from .private_files import private_folder

        private_folder(path.parent, ours=True)
        handler: logging.Handler = logging.handlers.RotatingFileHandler(
            path, maxBytes=2_000_000, backupCount=5, encoding="utf-8")
    except OSError:
        handler = logging.StreamHandler(sys.stderr)  # read-only home: still log somewhere
    handler.setFormatter(logging.Formatter(
        "%(asctime)s %(levelname)s %(name)s [%(threadName)s] %(message)s"))
    handler._getmeds = True  # type: ignore[attr-defined]  # our mark: set up once
    root.addHandler(handler)
    root.setLevel(level)
    if console:
        h2 = logging.StreamHandler(sys.stderr)
        h2.setLevel(logging.WARNING)
        h2.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
        h2._getmeds = True  # type: ignore[attr-defined]  # our mark: set up once
        root.addHandler(h2)
    logging.getLogger("sqlalchemy").setLevel(logging.WARNING)
    return path
