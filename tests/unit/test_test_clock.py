"""The test clock: a run that crosses midnight cannot fail because "today"
changed in the middle of a test."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from getmeds_desktop.services import clock
from tests.fixtures.clock import RUN_DAY, START

ROOT = Path(__file__).resolve().parents[2]
# the tests that use "today" most (prescriptions' expiry and refill dates,
# report periods, expiry windows); a run crosses midnight 2 s in
DATE_TESTS = ["tests/unit/test_prescriptions.py", "tests/unit/test_reports.py"]


def test_every_test_starts_at_noon_of_the_run_day():
    now = clock.now()
    assert now >= START and now - START < dt.timedelta(minutes=10)
    assert clock.today() == RUN_DAY
    assert START.astimezone().time() == dt.time(12)


def test_the_clock_runs_on_within_a_test():
    a = clock.now()
    b = clock.now()
    assert b >= a


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("faketime") is None,
                    reason="needs faketime (Debian package faketime; .ci/run installs it)")
def test_a_run_across_midnight_passes():
    """The date tests, in a process whose wall clock starts 20 s before midnight
    (libfaketime): the database server keeps its own, real clock."""
    env = {k: v for k, v in os.environ.items() if k not in ("FAKETIME", "LD_PRELOAD")}
    env["FAKETIME_DONT_FAKE_MONOTONIC"] = "1"
    day = dt.date.today()
    # 20 s before midnight, the wall clock running ten times as fast
    start = f"@{day:%Y-%m-%d} 23:59:40 x10"
    script = ("import datetime, sys, pytest; "
              f"code = pytest.main(['-q', '-x', '-p', 'no:randomly', *{DATE_TESTS!r}]); "
              "print('ended on', datetime.date.today()); sys.exit(code)")
    out = subprocess.run(["faketime", "-f", start, sys.executable, "-c", script], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=900)
    tail = (out.stdout + out.stderr)[-3000:]
    assert out.returncode == 0, tail
    assert "passed" in out.stdout
    assert f"ended on {day + dt.timedelta(days=1)}" in out.stdout, tail  # it did cross


# ------------------------------------------------ the pharmacy's time zone


def test_dates_are_the_pharmacys_in_its_time_zone():
    """At 11:00 UTC it is already tomorrow on Kiritimati (UTC+14) and still
    yesterday on Baker Island (UTC-12): today, midnight and local times follow
    the pharmacy's zone, not the workstation's."""
    at = dt.datetime(2026, 3, 2, 11, tzinfo=dt.UTC)
    with clock.travel(at):
        assert clock.set_zone("Pacific/Kiritimati") is None
        assert clock.today() == dt.date(2026, 3, 3)
        assert clock.local(at).hour == 1
        assert clock.start_of_day(dt.date(2026, 3, 3)) == dt.datetime(2026, 3, 2, 10,
                                                                       tzinfo=dt.UTC)
        assert clock.set_zone("Etc/GMT+12") is None
        assert clock.today() == dt.date(2026, 3, 1)
        # a zone's own rules for each date: New York in July is UTC-4, in March UTC-5
        clock.set_zone("America/New_York")
        assert clock.start_of_day(dt.date(2026, 7, 1)).hour == 4
        assert clock.start_of_day(dt.date(2026, 1, 5)).hour == 5
        assert clock.set_zone("UTC") is None and clock.today() == dt.date(2026, 3, 2)
        # a name this computer does not know: its own zone, and the reason why
        problem = clock.set_zone("Mars/Olympus_Mons")
        assert problem and "not known" in problem and clock.zone() is None
        clock.set_zone(None)
        assert clock.zone() is None
