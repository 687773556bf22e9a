"""Scratch databases and the data each benchmark builds for itself."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import platform
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine

from getmeds_desktop import db

from .netdelay import DelayProxy, through

SCALES = {
    # products, lots per product, patients, prescriptions and the days of history;
    # full scale gives about 75,000 dispenses over the last year
    "small": dict(products=5_000, lots_per_product=3.0, patients=10_000, prescriptions=2_000,
                  history_days=365),
    "full": dict(products=100_000, lots_per_product=3.0, patients=200_000, prescriptions=66_000,
                 history_days=365),
    # the small catalogue with a million patients, for the patient search
    # (``--scale million --only ui``)
    "million": dict(products=5_000, lots_per_product=3.0, patients=1_000_000,
                    prescriptions=2_000, history_days=365),
}


@dataclasses.dataclass
class BenchDatabase:
    """``url`` is what the measured work connects to (through the delay proxy
    when a round-trip time is given); ``engine`` is a direct connection for
    seeding and set-up; ``counting_url`` always goes through the proxy, which
    counts round trips (PostgreSQL only; None on SQLite)."""

    url: str
    engine: Engine
    cleanup: list
    counting_url: str | None = None
    proxy: DelayProxy | None = None
    rtt_ms: float = 0.0

    def round_trips(self) -> int:
        return self.proxy.turns if self.proxy is not None else 0

    def dispose(self) -> None:
        self.engine.dispose()
        for fn in reversed(self.cleanup):
            fn()


@contextlib.contextmanager
def scratch_database(base_url: str, keep: bool = False, rtt_ms: float = 0.0
                     ) -> Iterator[BenchDatabase]:
    """A new, migrated database next to ``base_url`` (dropped afterwards), and on
    PostgreSQL a delay proxy in front of it (``rtt_ms`` per round trip)."""
    u = db.normalize_url(base_url)
    cleanup: list = []
    if u.get_backend_name() == "sqlite":
        folder = Path(tempfile.mkdtemp(prefix="getmeds-bench-"))
        url = f"sqlite:///{folder / 'bench.sqlite3'}"
        if not keep:
            cleanup.append(lambda: __import__("shutil").rmtree(folder, ignore_errors=True))
    else:
        name = f"getmeds_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        admin = sa.create_engine(u, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
        with admin.connect() as c:
            c.exec_driver_sql(f'CREATE DATABASE "{name}"')
        url = u.set(database=name).render_as_string(hide_password=False)

        def drop() -> None:
            with admin.connect() as c:
                c.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.dispose()

        if not keep:
            cleanup.append(drop)
    engine = db.make_engine(url, pool_size=12)
    db.upgrade(engine)
    bench = BenchDatabase(url, engine, cleanup, rtt_ms=rtt_ms)
    with contextlib.ExitStack() as stack:
        if engine.dialect.name == "postgresql":
            target = sa.engine.make_url(url)
            proxy = stack.enter_context(
                DelayProxy(target.host or "127.0.0.1", target.port or 5432, rtt_ms=rtt_ms))
            bench.proxy = proxy
            bench.counting_url = through(url, proxy)
            if rtt_ms > 0:
                bench.url = bench.counting_url
        try:
            yield bench
        finally:
            bench.dispose()


def settle(bench: BenchDatabase) -> None:
    """After the bulk seed: vacuum, analyze and checkpoint, so the measurements
    are of a database in its normal state, not of autovacuum catching up with
    a few hundred thousand fresh rows."""
    if bench.engine.dialect.name != "postgresql":
        return
    with bench.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        c.exec_driver_sql("VACUUM (ANALYZE)")
        with contextlib.suppress(sa.exc.DBAPIError):  # needs superuser or pg_checkpoint
            c.exec_driver_sql("CHECKPOINT")


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def machine() -> dict[str, str]:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = ""
    with contextlib.suppress(OSError, ValueError, IndexError):
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{kb / 1024 / 1024:.0f} GiB"
    return {"cpu": cpu, "cores": str(os.cpu_count()), "memory": mem,
            "python": platform.python_version(), "os": platform.platform()}


class Timer:
    def __enter__(self) -> Timer:
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.ms = (time.perf_counter() - self.start) * 1000


def url_label(url: str | URL) -> str:
    return db.describe_url(url)
