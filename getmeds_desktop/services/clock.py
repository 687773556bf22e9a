"""The time the services see. Tests and the demo seed may move it."""

from __future__ import annotations

import contextvars
import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager

_override: contextvars.ContextVar[dt.datetime | None] = contextvars.ContextVar(
    "getmeds_clock", default=None
)


def now() -> dt.datetime:
    """Aware UTC now."""
    fixed = _override.get()
    return fixed if fixed is not None else dt.datetime.now(dt.UTC)


def today() -> dt.date:
    """The pharmacy's calendar date (local time of this workstation)."""
    return now().astimezone().date()


@contextmanager
def travel(to: dt.datetime) -> Iterator[None]:
    """Run the block as if it were ``to`` (aware datetime)."""
    if to.tzinfo is None:
        raise ValueError("travel() needs an aware datetime")
    token = _override.set(to)
    try:
        yield
    finally:
        _override.reset(token)


def add_months(day: dt.date, months: int) -> dt.date:
    """Same day ``months`` later, clamped to the month's end (Jan 31 + 1 = Feb 28/29)."""
    import calendar

    month_index = day.month - 1 + months
    year = day.year + month_index // 12
    month = month_index % 12 + 1
    last = calendar.monthrange(year, month)[1]
    return dt.date(year, month, min(day.day, last))
