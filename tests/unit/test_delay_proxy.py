"""The benchmarks' network: a proxy that adds a round-trip time and counts round trips."""

from __future__ import annotations

import time

import psycopg
import pytest
import sqlalchemy as sa

from benchmarks.netdelay import DelayProxy, through
from tests.fixtures.database import pg_admin_url

pytestmark = pytest.mark.slow


def _conninfo(url: str) -> str:
    u = sa.engine.make_url(url)
    return (f"host={u.host} port={u.port} user={u.username} dbname={u.database}"
            + (f" password={u.password}" if u.password else ""))


def test_round_trips_are_counted_and_each_costs_the_delay():
    admin = pg_admin_url()
    with DelayProxy(admin.host or "127.0.0.1", admin.port or 5432, rtt_ms=40) as proxy:
        url = through(admin.render_as_string(hide_password=False), proxy)
        with psycopg.connect(_conninfo(url), autocommit=True) as conn:
            with proxy.counting() as n:
                started = time.perf_counter()
                for _ in range(5):
                    conn.execute("SELECT 1").fetchone()
                took = time.perf_counter() - started
            assert n[0] == 5
            assert 0.19 < took < 1.5  # five round trips of 40 ms
            with proxy.counting() as n, conn.pipeline():  # one turn for the whole pipeline
                cur = [conn.execute("SELECT %s", (i,)) for i in range(5)]
            assert [c.fetchone()[0] for c in cur] == list(range(5))
            assert n[0] == 1


def test_no_delay_still_counts():
    admin = pg_admin_url()
    with DelayProxy(admin.host or "127.0.0.1", admin.port or 5432, rtt_ms=0) as proxy:
        url = through(admin.render_as_string(hide_password=False), proxy)
        with psycopg.connect(_conninfo(url), autocommit=True) as conn, proxy.counting() as n:
            conn.execute("SELECT 1").fetchone()
            conn.execute("SELECT 2").fetchone()
        assert n[0] == 2
