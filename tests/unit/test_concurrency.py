"""PostgreSQL: workstations racing for the last boxes never oversell."""

from __future__ import annotations

import random
import threading
import uuid
from collections import Counter

import sqlalchemy as sa

from getmeds_desktop import db
from getmeds_desktop.models import Dispense, Prescription, StockLot
from getmeds_desktop.services import dispensing, inventory, ledger
from getmeds_desktop.services.dispensing import DispenseRequest
from getmeds_desktop.services.errors import InsufficientStock
from tests.fixtures.data import NO_SCAN, build_world

THREADS = 8
ATTEMPTS = 10


def test_eight_workstations_dispense_exactly_the_stock(pg_fresh_db):
    setup = db.make_engine(pg_fresh_db)
    world = build_world(db.session_factory(setup))
    product = world.product("Hydrocodone", schedule="II")
    world.receive(product.id, 20, lot="H-A", days=30)
    world.receive(product.id, 28, lot="H-B", days=60)
    start = inventory.on_hand(world.sf, product.id)
    assert start == 48
    rng = random.Random(7)
    jobs = []
    for t in range(THREADS):
        for _ in range(ATTEMPTS):
            patient = world.patient()
            rx = world.rx(patient.id, product.id, quantity=rng.randint(1, 5))
            jobs.append((t, rx.id, uuid.uuid4()))
    # Half of the requests are also sent by a second workstation (a retry racing
    # its original): the request id must still yield one dispense.
    shared = [(t, rx_id, rid) for (t, rx_id, rid) in jobs[::2]]

    outcomes: list[tuple[str, uuid.UUID]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    barrier = threading.Barrier(THREADS)

    def worker(n: int) -> None:
        engine = db.make_engine(pg_fresh_db, pool_size=1)
        sf = db.session_factory(engine)
        mine = [j for j in jobs if j[0] == n] + [j for j in shared if (j[0] + 1) % THREADS == n]
        barrier.wait()
        try:
            for _, rx_id, rid in mine:
                try:
                    r = dispensing.dispense(sf, world.pharmacist, DispenseRequest(
                        rx_id, rid, allow_partial=True, no_scan_reason=NO_SCAN))
                    with lock:
                        outcomes.append(("replayed" if r.replayed else "dispensed", rid))
                except InsufficientStock:
                    with lock:
                        outcomes.append(("refused", rid))
        except BaseException as exc:
            errors.append(exc)
        finally:
            engine.dispose()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    assert len(outcomes) == len(jobs) + len(shared)

    with db.read_session(world.sf) as s:
        dispensed = s.scalar(
            sa.select(sa.func.sum(Dispense.quantity))
            .join(Prescription, Prescription.id == Dispense.prescription_id)
            .where(Prescription.product_id == product.id))
        per_request = Counter(s.scalars(sa.select(Dispense.request_id)))
        negative = s.scalar(sa.select(sa.func.count()).select_from(StockLot).where(
            StockLot.on_hand < 0))
    assert dispensed == start
    assert inventory.on_hand(world.sf, product.id) == 0
    assert negative == 0
    assert max(per_request.values()) == 1
    kinds = Counter(k for k, _ in outcomes)
    assert kinds["dispensed"] == len(per_request)
    assert kinds["refused"] > 0
    assert ledger.verify(world.sf).ok
    setup.dispose()


def test_the_dispense_time_is_taken_once_the_stock_is_locked(pg_fresh_db):
    """A dispense that waits for another workstation's hold on the lots is timed
    when it takes the stock, not when it started waiting."""
    import datetime as dt

    import psycopg

    from getmeds_desktop.services import clock

    engine = db.make_engine(pg_fresh_db)
    world = build_world(db.session_factory(engine))
    product = world.product("Waitforlockol")
    lot = world.receive(product.id, 10, lot="W-1").lot_id
    rx = world.rx(world.patient().id, product.id, quantity=2)
    url = sa.engine.make_url(pg_fresh_db)
    blocker = psycopg.connect(host=url.host, port=url.port or 5432, dbname=url.database,
                              user=url.username, password=url.password)
    blocker.execute("SELECT 1 FROM stock_lots WHERE id = %s FOR UPDATE", (lot,))
    results: list[dispensing.DispenseResult] = []
    t = threading.Thread(target=lambda: results.append(dispensing.dispense(
        world.sf, world.pharmacist, DispenseRequest(rx.id, uuid.uuid4(), no_scan_reason=NO_SCAN))))
    t.start()
    with psycopg.connect(host=url.host, port=url.port or 5432, dbname=url.database,
                         user=url.username, password=url.password, autocommit=True) as probe:
        for _ in range(500):
            waiting = probe.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock'").fetchone()[0]
            if waiting:
                break
            threading.Event().wait(0.02)
        assert waiting, "the dispense never waited for the lot"
    released = clock.now()
    blocker.rollback()
    blocker.close()
    t.join(30)
    engine.dispose()
    assert results and results[0].dispensed_at >= released - dt.timedelta(milliseconds=1)
