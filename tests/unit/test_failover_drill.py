"""The failover drill, against the local PostgreSQL: four workstations dispense
and receive stock while every backend of the database is terminated and the
address they connect to goes away and comes back (what an RDS Multi-AZ
failover does: the old primary's connections die, the endpoint answers again a
moment later from the standby). Every request is carried out exactly once:
nothing is lost and nothing is doubled (request ids), the ledger balances, and
sending every request again changes nothing.

The interruptions happen at points of progress (a number of requests done),
never after a sleep, so the test does not depend on the machine's speed.
"""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import psycopg
import pytest
import sqlalchemy as sa

from benchmarks.netdelay import DelayProxy, through
from getmeds_desktop import db
from getmeds_desktop.models import Dispense, StockMovement
from getmeds_desktop.services import dispensing, inventory
from getmeds_desktop.services.dispensing import DispenseRequest
from getmeds_desktop.services.inventory import ReceiptRequest
from getmeds_desktop.sync import call_with_reconnect
from tests.fixtures.data import NO_SCAN, World, build_world

WORKSTATIONS = 4
DISPENSES_EACH = 6
RECEIPTS_EACH = 3
# short pauses (the drill's server comes back at once); about 25 s in all
DELAYS = (0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 12.8)
HELPER = "getmeds-failover-drill"
EXPIRY = dt.date(2030, 6, 30)


@dataclass
class Station:
    name: str
    work: list[Callable[[], object]]
    done: int = 0
    lost: int = 0
    errors: list[BaseException] = field(default_factory=list)


def _conninfo(url: str) -> str:
    u = sa.engine.make_url(url)
    return (f"host={u.host} port={u.port or 5432} dbname={u.database} user={u.username}"
            + (f" password={u.password}" if u.password else "")
            + f" application_name={HELPER}")


def _terminate_all(url: str) -> int:
    """pg_terminate_backend on every backend of this database but the drill's own."""
    with psycopg.connect(_conninfo(url), autocommit=True) as c:
        rows = c.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND application_name <> %s", (HELPER,)).fetchall()
    return len(rows)


@pytest.fixture
def drill(pg_fresh_db) -> Iterator[tuple[str, World]]:
    direct = db.make_engine(pg_fresh_db, pool_size=2)
    world = build_world(db.session_factory(direct))
    yield pg_fresh_db, world
    direct.dispose()


def test_a_failover_while_workstations_are_busy_loses_and_doubles_nothing(drill):
    url, world = drill
    products = [world.product(f"Drillamox {i}") for i in range(WORKSTATIONS)]
    for p in products:
        world.receive(p.id, 500, lot=f"DRILL-{p.id.hex[:6]}")
    # a patient per prescription: nothing for the screening to warn about
    rxs = {p.id: [world.rx(world.patient("Dora", f"Drill {p.id.hex[:4]} {k}").id, p.id,
                           quantity=5) for k in range(DISPENSES_EACH)] for p in products}

    target = sa.engine.make_url(url)
    first = DelayProxy(target.host, target.port or 5432).__enter__()
    port = first.port
    app_engine = db.make_engine(through(url, first), pool_size=WORKSTATIONS)
    sf = db.session_factory(app_engine)

    dispense_requests: list[DispenseRequest] = []
    receipt_requests: list[ReceiptRequest] = []
    stations: list[Station] = []
    for i, p in enumerate(products):
        work: list[Callable[[], object]] = []
        for k, rx in enumerate(rxs[p.id]):
            req = DispenseRequest(prescription_id=rx.id, request_id=uuid.uuid4(),
                                  no_scan_reason=NO_SCAN)
            dispense_requests.append(req)
            work.append(lambda req=req: dispensing.dispense(sf, world.pharmacist, req))
            if k < RECEIPTS_EACH:
                rec = ReceiptRequest(product_id=p.id, lot_number=f"DRILL-{i}-{k}",
                                     expiry_date=EXPIRY, quantity=10, unit_cost="2.00",
                                     request_id=uuid.uuid4())
                receipt_requests.append(rec)
                work.append(lambda rec=rec: inventory.receive_stock(sf, world.pharmacist, rec))
        stations.append(Station(f"station {i + 1}", work))
    total = sum(len(s.work) for s in stations)

    progress = threading.Condition()
    lost = threading.Event()

    def run(station: Station) -> None:
        def on_lost() -> None:
            with progress:
                station.lost += 1
                lost.set()
                progress.notify_all()

        for job in station.work:
            try:
                call_with_reconnect(job, on_lost=on_lost, delays=DELAYS)
            except BaseException as exc:
                station.errors.append(exc)
            with progress:
                station.done += 1
                progress.notify_all()

    def wait_done(n: int) -> None:
        with progress:
            assert progress.wait_for(lambda: sum(s.done for s in stations) >= n, timeout=120), \
                "the workstations stopped making progress"

    threads = [threading.Thread(target=run, args=(s,), name=s.name) for s in stations]
    second: DelayProxy | None = None
    try:
        for t in threads:
            t.start()
        # 1. a third of the way: every backend terminated (the server restarts)
        wait_done(total // 3)
        assert _terminate_all(url) >= 1
        # 2. two thirds of the way: the primary is gone for good, its address does
        #    not answer until the standby takes it over (a new proxy on the same port)
        wait_done(2 * total // 3)
        lost.clear()
        first.__exit__(None, None, None)  # every connection through it dropped
        _terminate_all(url)
        with progress:  # a workstation tried while nothing answered (or all are done)
            assert progress.wait_for(
                lambda: lost.is_set() or all(s.done == len(s.work) for s in stations),
                timeout=60), "no workstation noticed the failover"
        second = DelayProxy(target.host, target.port or 5432, port=port).__enter__()
        for t in threads:
            t.join(120)
        assert not any(t.is_alive() for t in threads)
    finally:
        for t in threads:
            t.join(5)
        app_engine.dispose()
        if second is not None:
            second.__exit__(None, None, None)
        else:
            first.__exit__(None, None, None)

    errors = [e for s in stations for e in s.errors]
    assert not errors, errors
    assert sum(s.lost for s in stations) >= 1, "the drill interrupted nothing"

    # exactly once: one dispense per request, one receipt movement per receipt
    check = db.make_engine(url)  # (the drill terminated the fixture's connections too)
    csf = db.session_factory(check)
    try:
        with check.connect() as c:
            got = c.execute(sa.select(Dispense.request_id)).scalars().all()
            assert sorted(got) == sorted(r.request_id for r in dispense_requests)
            receipts = c.execute(
                sa.select(StockMovement.request_id).where(
                    StockMovement.request_id.in_([r.request_id for r in receipt_requests]))
            ).scalars().all()
            assert sorted(receipts) == sorted(r.request_id for r in receipt_requests)
        # the ledger balances: what came in less what went out, per product
        for p in products:
            expected = 500 + 10 * RECEIPTS_EACH - 5 * DISPENSES_EACH
            assert inventory.on_hand(csf, p.id) == expected
        # and sending every request again (a workstation that never heard back) is a replay
        for req in dispense_requests:
            assert dispensing.dispense(csf, world.pharmacist, req).replayed
        for rec in receipt_requests:
            inventory.receive_stock(csf, world.pharmacist, rec)
        with check.connect() as c:
            assert c.execute(sa.select(sa.func.count()).select_from(Dispense)).scalar_one() \
                == len(dispense_requests)
        for p in products:
            assert inventory.on_hand(csf, p.id) == 500 + 10 * RECEIPTS_EACH \
                - 5 * DISPENSES_EACH
    finally:
        check.dispose()
