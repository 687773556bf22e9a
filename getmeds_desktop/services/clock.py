"""The time the services see. Tests and the demo seed may move it.

* :func:`travel` stops the clock at a moment for a block of code (this thread
  and what it calls);
* :func:`pin` starts the clock of the whole process at a moment, from where it
  runs on at the real pace (tests: every test begins at the same time of day,
  so a run across midnight cannot change "today" in the middle of a test, and
  times still follow each other).
"""

from __future__ import annotations

import contextvars
import datetime as dt
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

_override: contextvars.ContextVar[dt.datetime | None] = contextvars.ContextVar(
    "getmeds_clock", default=None
)
_pinned: tuple[dt.datetime, float] | None = None  # (start, time.monotonic() then)
# The pharmacy's time zone: the shared database's (PostgreSQL, set by IT with
# ``getmeds-admin database time-zone``; its rules judge dates in it), or None:
# this workstation's own zone (the embedded database, one workstation).
_zone: dt.tzinfo | None = None


def now() -> dt.datetime:
    """Aware UTC now."""
    fixed = _override.get()
    if fixed is not None:
        return fixed
    pinned = _pinned
    if pinned is not None:
        return pinned[0] + dt.timedelta(seconds=time.monotonic() - pinned[1])
    return dt.datetime.now(dt.UTC)


def pin(start: dt.datetime | None) -> None:
    """Run the process's clock from ``start`` on (``None``: the real clock again)."""
    global _pinned
    if start is not None and start.tzinfo is None:
        raise ValueError("pin() needs an aware datetime")
    _pinned = None if start is None else (start, time.monotonic())


def set_zone(name: str | None) -> str | None:
    """Take the pharmacy's time zone (an IANA name such as "America/Chicago";
    None: this workstation's). Returns the problem when the name is not a zone
    this computer knows (the workstation's zone is used then)."""
    global _zone
    if not name:
        _zone = None
        return None
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        _zone = dt.UTC if name.upper() in ("UTC", "ETC/UTC") else ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        _zone = None
        problem = (f"the pharmacy's time zone {name!r} is not known on this computer; this "
                   f"computer's own time zone is used")
        logging.getLogger(__name__).warning("%s", problem)
        return problem
    return None


def zone() -> dt.tzinfo | None:
    """The pharmacy's time zone (None: this workstation's)."""
    return _zone


def local(when: dt.datetime) -> dt.datetime:
    """``when`` in the pharmacy's local time."""
    return when.astimezone(_zone)


def today() -> dt.date:
    """The pharmacy's calendar date (in its time zone: :func:`set_zone`)."""
    return local(now()).date()


# Days outside this range are clamped: nothing in a pharmacy's database is
# older or newer, and the conversion to UTC needs room around the date.
FIRST_DAY = dt.date(1900, 1, 1)
LAST_DAY = dt.date(9000, 12, 31)


def start_of_day(day: dt.date) -> dt.datetime:
    """The pharmacy's midnight at the start of ``day``, as aware UTC, by the zone rules of
    that date (so a July day in December keeps July's daylight saving time).

    A naive local time is converted with the operating system's own zone rules
    for that date (``datetime.astimezone``), which works the same on Windows,
    macOS and Linux without a zone database of our own. Where midnight does not
    exist (a zone that springs forward at 00:00) the day starts when the clock
    does.
    """
    day = min(max(day, FIRST_DAY), LAST_DAY)
    if _zone is not None:  # the pharmacy's zone, by its rules for that date
        return dt.datetime.combine(day, dt.time(0), tzinfo=_zone).astimezone(dt.UTC)
    return dt.datetime.combine(day, dt.time(0)).astimezone(dt.UTC)


def day_range(first: dt.date, last: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """The local calendar days ``first`` to ``last`` (inclusive) as a UTC
    ``[from, to)`` range; each end by the zone rules of its own date."""
    return start_of_day(first), start_of_day(min(last, LAST_DAY) + dt.timedelta(days=1))


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
