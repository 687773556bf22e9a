"""The offline replica (sync/replica.py) of the seeded pharmacy.

``replica_first_sync_s`` / ``replica_first_sync_mb``: a fresh workstation's
first sync (everything, and the patients of the two-year window) and the size
of the replica file after it. ``replica_feed_lag_p95_ms``: a receipt is
committed on the server, and the replica pulls (as it does on the change
notification); the time from the commit's return to the pull's return with the
new lot in the replica. ``replica_pull_idle_ms``: a pull with nothing to move
(the timer's). ``replay_500_s``: 500 fills made offline on the replica (the
outbox), then sent to the server in order, each checked to be there once. Runs
as the database owner through the bench's URL (through the
delay proxy with ``--rtt-ms``). Not among the default groups (its first sync
copies the whole seeded pharmacy): ``python -m benchmarks ... --only replica``.
"""

from __future__ import annotations

import datetime as dt
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa

from .common import BenchDatabase, median, percentile

PROBES = 40
REPLAYED = 500  # fills made offline, then sent to the server


def _size_mb(folder: Path) -> float:
    return round(sum(p.stat().st_size for p in folder.iterdir() if p.is_file()) / 1e6, 1)


def run(bench: BenchDatabase, log: Callable[[str], None]) -> dict[str, float]:
    from getmeds_desktop import db
    from getmeds_desktop.services import catalog, inventory, staff
    from getmeds_desktop.sync.replica import Replica

    server_engine = db.make_engine(bench.url, pool_size=2)
    server = db.session_factory(server_engine)
    direct = db.session_factory(bench.engine)
    folder = Path(tempfile.mkdtemp(prefix="getmeds-replica-bench-"))
    rep = Replica.open(folder / "replica" / "replica.sqlite3")
    out: dict[str, float] = {}
    try:
        started = time.perf_counter()
        result = rep.first_sync(server)
        out["replica_first_sync_s"] = round(time.perf_counter() - started, 2)
        with rep.engine.connect() as c:
            c.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        out["replica_first_sync_mb"] = _size_mb(rep.path.parent)
        out["replica_rows"] = sum(result.rows.values())
        out["replica_patients"] = result.patients
        log(f"replica: first sync {out['replica_first_sync_s']} s, "
            f"{out['replica_first_sync_mb']} MB, {out['replica_rows']} rows")

        actor = staff.actor_for_username(direct, "pharmacist")
        supplier = next(x.id for x in catalog.list_suppliers(direct) if x.dea_number)
        with bench.engine.connect() as c:
            products = list(c.execute(sa.text(
                "SELECT id FROM products WHERE schedule = 'none' AND active LIMIT 200")).scalars())
        idle = []
        for _ in range(10):
            t = time.perf_counter()
            rep.pull(server)
            idle.append((time.perf_counter() - t) * 1000)
        lags = []
        for i in range(PROBES):
            moved = inventory.receive_stock(direct, actor, inventory.ReceiptRequest(
                product_id=products[i % len(products)], lot_number=f"RB-{uuid.uuid4().hex[:8]}",
                expiry_date=dt.date.today() + dt.timedelta(days=400), quantity=5,
                unit_cost="1.00", supplier_id=supplier, invoice_ref="BENCH"))
            t = time.perf_counter()
            pulled = rep.pull(server)
            lags.append((time.perf_counter() - t) * 1000)
            if moved.lot_id not in pulled.changed.get("stock_lots", frozenset()):
                raise AssertionError("the pull after the commit did not bring its lot")
        out["replica_pull_idle_ms"] = round(median(idle), 1)
        out["replica_feed_lag_p95_ms"] = round(percentile(lags, 95), 1)
        log(f"replica: pull idle {out['replica_pull_idle_ms']} ms, feed lag p95 "
            f"{out['replica_feed_lag_p95_ms']} ms")
        out.update(_replay(bench, rep, server, direct, actor, log))
    finally:
        rep.close()
        server_engine.dispose()
        __import__("shutil").rmtree(folder, ignore_errors=True)
    return out


def _replay(bench: BenchDatabase, rep, server, direct, actor, log: Callable[[str], None]
            ) -> dict[str, float]:
    """``replay_500_s``: 500 fills made on the replica while offline (the outbox),
    then sent to the server in order when the link is back, each exactly once."""
    import random

    from getmeds_desktop.models import Dispense
    from getmeds_desktop.services import staff
    from getmeds_desktop.services.dispensing import DispenseRequest
    from getmeds_desktop.sync.outbox import Kind, Outbox, server_actors

    from . import bench_dispense

    doctor = staff.actor_for_username(direct, "doctor")
    products = bench_dispense._stocked_products(bench, 200, 300, random.Random(5))
    rxs = bench_dispense._prescriptions(direct, actor, doctor.prescriber_id, products,
                                        REPLAYED, 5)
    rep.pull(server)  # the offline copy has them, as after their notifications
    box = Outbox(rep.engine)
    started = time.perf_counter()
    requests = []
    for rx in rxs:
        req = DispenseRequest(rx, uuid.uuid4(), no_scan_reason=bench_dispense.NO_SCAN)
        box.run(Kind.DISPENSE, actor, req)
        requests.append(req.request_id)
    queued = time.perf_counter() - started
    started = time.perf_counter()
    result = box.replay(server, server_actors(server))
    took = time.perf_counter() - started
    with bench.engine.connect() as c:
        on_server = c.execute(sa.select(sa.func.count()).select_from(Dispense).where(
            Dispense.request_id.in_(requests))).scalar_one()
    if result.sent != REPLAYED or on_server != REPLAYED:
        raise AssertionError(f"replayed {result.sent}, on the server {on_server}, "
                             f"needing attention {result.attention}")
    log(f"replica: {REPLAYED} fills made offline in {queued:.1f} s, replayed in {took:.1f} s")
    return {"replay_500_s": round(took, 1), "offline_500_fills_s": round(queued, 1)}
