"""Reports at full scale: the inventory of every product, a year of dispensing."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from collections.abc import Callable

import sqlalchemy as sa

from .common import BenchDatabase


def _probe(bench: BenchDatabase, name: str, start: dt.date, end: dt.date) -> tuple[float, float,
                                                                                   int]:
    out = subprocess.run([sys.executable, "-m", "benchmarks.probes", "report", name, bench.url,
                          start.isoformat(), end.isoformat()], capture_output=True, text=True,
                         timeout=900)
    if out.returncode != 0:
        raise RuntimeError(f"report probe failed: {out.stderr.strip().splitlines()[-1:]}")
    seconds, rss, pages = out.stdout.split()
    return float(seconds), float(rss), int(pages)


def run(bench: BenchDatabase, log: Callable[[str], None]) -> dict[str, float]:
    today = dt.date.today()
    year_ago = today - dt.timedelta(days=364)
    with bench.engine.connect() as c:
        products = c.scalar(sa.text("SELECT count(*) FROM products"))
        dispenses = c.scalar(sa.text("SELECT count(*) FROM dispenses WHERE dispensed_at >= "
                                     ":d"), {"d": dt.datetime.combine(year_ago, dt.time(0),
                                                                      tzinfo=dt.UTC)})
    results: dict[str, float] = {}
    s, rss, pages = _probe(bench, "inventory", today, today)
    results["report_inventory_s"] = round(s, 2)
    results["report_inventory_rss_growth_mb"] = round(rss, 1)
    log(f"reports: inventory of {products:,} products, {pages:,} pages in {s:.1f} s, "
        f"peak RSS growth {rss:.0f} MB")
    s, rss, pages = _probe(bench, "dispensing-log", year_ago, today)
    results["report_dispensing_year_s"] = round(s, 2)
    results["report_dispensing_year_rss_growth_mb"] = round(rss, 1)
    results["report_dispensing_year_dispenses"] = dispenses
    log(f"reports: dispensing log of {dispenses:,} dispenses, {pages:,} pages in {s:.1f} s, "
        f"peak RSS growth {rss:.0f} MB")
    return results
