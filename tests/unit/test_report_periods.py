"""Report periods are local calendar days: each boundary is converted to UTC by
the zone rules of its own date, so a July report made in December keeps July's
daylight saving time (the dispensing log, the controlled-substance register and
the audit report all take their period from ``clock.day_range``)."""

from __future__ import annotations

import datetime as dt
import os
import time
import uuid
from collections.abc import Iterator
from zoneinfo import ZoneInfo

import pytest
from pypdf import PdfReader

from getmeds_desktop.reports import ReportParams, generate
from getmeds_desktop.reports.catalog import utc_range
from getmeds_desktop.services import clock, dispensing
from getmeds_desktop.services.dispensing import DispenseRequest
from tests.fixtures.data import NO_SCAN

ZONES = ("America/Los_Angeles", "Australia/Sydney")
# 2026: Los Angeles springs forward on Mar 8 and falls back on Nov 1;
# Sydney falls back on Apr 5 and springs forward on Oct 4.
DST_DAYS = {"America/Los_Angeles": (dt.date(2026, 3, 8), dt.date(2026, 11, 1)),
            "Australia/Sydney": (dt.date(2026, 4, 5), dt.date(2026, 10, 4))}


@pytest.fixture
def zone(request) -> Iterator[ZoneInfo]:
    """The workstation's time zone for the test (TZ, as the operating system sees it)."""
    old = os.environ.get("TZ")
    os.environ["TZ"] = request.param
    time.tzset()
    yield ZoneInfo(request.param)
    if old is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = old
    time.tzset()


def midnight(day: dt.date, tz: ZoneInfo) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(0), tzinfo=tz).astimezone(dt.UTC)


@pytest.mark.parametrize("zone", ZONES, indirect=True)
def test_each_boundary_keeps_the_zone_rules_of_its_own_date(zone):
    spring, autumn = sorted(DST_DAYS[zone.key])
    days = [d + dt.timedelta(days=k) for d in (spring, autumn) for k in (-1, 0, 1, 2)]
    for made_on in (dt.date(2026, 1, 15), dt.date(2026, 7, 15), dt.date(2026, 12, 15)):
        with clock.travel(midnight(made_on, zone) + dt.timedelta(hours=12)):
            for first in days:
                for last in days:
                    if last < first:
                        continue
                    lo, hi = utc_range(ReportParams(start=first, end=last))
                    assert lo == midnight(first, zone), (zone.key, made_on, first)
                    assert hi == midnight(last + dt.timedelta(days=1), zone), (zone.key, last)


def test_a_period_from_year_1_to_9999_is_everything():
    lo, hi = utc_range(ReportParams(start=dt.date(1, 1, 1), end=dt.date(9999, 12, 31)))
    assert lo.year == 1899 or lo.year == 1900
    assert hi.year >= 9000 and lo < hi


CASES = {
    # (zone, period, made on, dispense times (local), which are inside)
    "America/Los_Angeles": ((dt.date(2026, 7, 1), dt.date(2026, 7, 31)), dt.date(2026, 12, 10),
                            [(dt.datetime(2026, 6, 30, 23, 30), False),
                             (dt.datetime(2026, 7, 1, 0, 30), True),
                             (dt.datetime(2026, 7, 31, 23, 30), True),
                             (dt.datetime(2026, 8, 1, 0, 30), False)]),
    "Australia/Sydney": ((dt.date(2026, 4, 1), dt.date(2026, 4, 30)), dt.date(2026, 12, 10),
                         [(dt.datetime(2026, 3, 31, 23, 30), False),
                          (dt.datetime(2026, 4, 1, 0, 30), True),
                          (dt.datetime(2026, 4, 30, 23, 30), True),
                          (dt.datetime(2026, 5, 1, 0, 30), False)]),
}


@pytest.mark.parametrize("zone", ZONES, indirect=True)
def test_the_dispensing_log_of_a_summer_month_made_in_winter(zone, world, tmp_path):
    (first, last), made_on, fills = CASES[zone.key]
    start = dt.datetime.combine(first - dt.timedelta(days=20), dt.time(12), tzinfo=zone)
    with clock.travel(start.astimezone(dt.UTC)):
        product = world.product("Periodol")
        world.receive(product.id, 100, days=500)
        rxs = [world.rx(world.patient(f"Pia{i}", "Period").id, product.id, quantity=5)
               for i in range(len(fills))]
    for rx, (local, _inside) in zip(rxs, fills, strict=True):
        with clock.travel(local.replace(tzinfo=zone).astimezone(dt.UTC)):
            dispensing.dispense(world.sf, world.pharmacist, DispenseRequest(rx.id, uuid.uuid4(),
                                                                            no_scan_reason=NO_SCAN))
    with clock.travel(midnight(made_on, zone) + dt.timedelta(hours=12)):
        out = tmp_path / "log.pdf"
        generate(world.sf, world.admin, "dispensing-log", ReportParams(start=first, end=last),
                 out)
    text = "\n".join(p.extract_text() for p in PdfReader(str(out)).pages)
    for rx, (local, inside) in zip(rxs, fills, strict=True):
        assert (f"{local:%Y-%m-%d %H:%M}" in text) is inside, (zone.key, local)
        assert (str(rx.rx_number) in text) is inside, (zone.key, local)
    assert "Dispenses: 2" in text.replace("\n", " ") or "2 dispenses" in text
