"""Assertions shared by the service tests."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from getmeds_desktop import db

COUNTED_TABLES = (
    "stock_movements", "stock_lots", "dispenses", "dispense_warnings", "prescriptions",
    "controlled_register", "audit_log", "patients", "products", "staff", "request_log",
    "stocktake_lines",
)


def row_counts(sf: sessionmaker[Session]) -> dict[str, int]:
    with db.read_session(sf) as s:
        return {t: s.scalar(sa.text(f"SELECT count(*) FROM {t}")) for t in COUNTED_TABLES}


@contextlib.contextmanager
def nothing_written(sf: sessionmaker[Session]) -> Iterator[None]:
    """The block must leave every table as it was (used around refused requests)."""
    before = row_counts(sf)
    yield
    assert row_counts(sf) == before
