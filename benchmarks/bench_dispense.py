"""Dispensing: single-dispense latency, and throughput with 8 concurrent workstations."""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Callable

import sqlalchemy as sa

from getmeds_desktop import db
from getmeds_desktop.models import Product, ProductStock
from getmeds_desktop.services import dispensing, ledger
from getmeds_desktop.services.context import Actor
from getmeds_desktop.services.dispensing import DispenseRequest
from getmeds_desktop.services.errors import InsufficientStock

from .common import BenchDatabase, Timer, percentile

NO_SCAN = "not scanned: a benchmark"

LATENCY_SAMPLES = 400
WORKERS = 8
CONCURRENT_DISPENSES = 2400


def _stocked_products(bench: BenchDatabase, n: int, min_on_hand: int, rng: random.Random
                      ) -> list[uuid.UUID]:
    with bench.engine.connect() as c:
        ids = list(c.scalars(
            sa.select(Product.id).join(ProductStock, ProductStock.product_id == Product.id)
            .where(ProductStock.on_hand >= min_on_hand, Product.schedule == "none")
            .order_by(Product.id)))
    rng.shuffle(ids)
    return ids[:n]


def _prescriptions(sf, actor: Actor, prescriber_id: uuid.UUID, products: list[uuid.UUID],
                   count: int, quantity: int) -> list[uuid.UUID]:
    """Set-up, not measured: one new patient per prescription (no allergies, no
    duplicate therapy), written in bulk."""
    import datetime as dt

    from getmeds_desktop.models import Patient, Prescription, RxStatus
    from getmeds_desktop.services.prescriptions import next_rx_number

    now = dt.datetime.now(dt.UTC)
    rx_ids = [uuid.uuid4() for _ in range(count)]
    with db.write_transaction(sf, actor.username) as s:
        patient_ids = [uuid.uuid4() for _ in range(count)]
        s.execute(sa.insert(Patient), [
            dict(id=pid, first_name="Bench", last_name=f"Patient{i:05d}",
                 date_of_birth=dt.date(1970, 1, 1), created_at=now, updated_at=now, version=1)
            for i, pid in enumerate(patient_ids)])
        first = next_rx_number(s)
        if s.get_bind().dialect.name == "postgresql":
            s.execute(sa.text("SELECT setval('rx_number_seq', :n)"), {"n": first + count})
        s.execute(sa.insert(Prescription), [
            dict(id=rid, rx_number=first + i, patient_id=patient_ids[i],
                 prescriber_id=prescriber_id, product_id=products[i % len(products)],
                 sig="Take 1 daily", quantity=quantity, days_supply=30, refills_authorized=0,
                 daw=False, date_written=dt.date.today(), status=RxStatus.NEW, owed_quantity=0,
                 created_by=actor.staff_id, created_at=now, updated_at=now, version=1)
            for i, rid in enumerate(rx_ids)])
    return rx_ids


def run(bench: BenchDatabase, actor: Actor, prescriber_id: uuid.UUID,
        log: Callable[[str], None]) -> dict[str, float]:
    rng = random.Random(11)
    sf = db.session_factory(bench.engine)  # set-up, direct
    measured = db.make_engine(bench.url, pool_size=2)
    msf = db.session_factory(measured)
    results: dict[str, float] = {}

    # -- latency: one dispense at a time ------------------------------------
    products = _stocked_products(bench, 200, 200, rng)
    log(f"dispense latency: preparing {LATENCY_SAMPLES + 20} prescriptions")
    samples = LATENCY_SAMPLES if bench.rtt_ms < 10 else LATENCY_SAMPLES // 4
    rxs = _prescriptions(sf, actor, prescriber_id, products, samples + 40, 10)
    times: list[float] = []
    for i, rx in enumerate(rxs[:samples + 20]):
        with Timer() as t:
            dispensing.dispense(msf, actor, DispenseRequest(rx, uuid.uuid4(),
                                                            no_scan_reason=NO_SCAN))
        if i >= 20:  # warm-up excluded
            times.append(t.ms)
    results["dispense_p50_ms"] = round(percentile(times, 50), 2)
    results["dispense_p95_ms"] = round(percentile(times, 95), 2)
    measured.dispose()
    if bench.counting_url is not None:  # round trips of one dispense (warm connection)
        counting = db.make_engine(bench.counting_url, pool_size=1)
        csf = db.session_factory(counting)
        trips = []
        for i, rx in enumerate(rxs[samples + 20:]):
            before = bench.round_trips()
            dispensing.dispense(csf, actor, DispenseRequest(rx, uuid.uuid4(),
                                                            no_scan_reason=NO_SCAN))
            if i >= 2:
                trips.append(bench.round_trips() - before)
        counting.dispose()
        results["dispense_round_trips"] = percentile([float(t) for t in trips], 50)
    log(f"dispense latency: p50 {results['dispense_p50_ms']} ms, "
        f"p95 {results['dispense_p95_ms']} ms, "
        f"{results.get('dispense_round_trips', '?')} round trips")

    # -- throughput: 8 workstations at once ---------------------------------
    hot = _stocked_products(bench, 400, 300, rng)
    log(f"concurrent dispenses: preparing {CONCURRENT_DISPENSES} prescriptions")
    rxs = _prescriptions(sf, actor, prescriber_id, hot, CONCURRENT_DISPENSES, 5)
    rng.shuffle(rxs)
    chunks = [rxs[w::WORKERS] for w in range(WORKERS)]
    done = [0] * WORKERS
    refused = [0] * WORKERS
    errors: list[BaseException] = []
    barrier = threading.Barrier(WORKERS + 1)

    def worker(n: int) -> None:
        engine = db.make_engine(bench.url, pool_size=1)
        wsf = db.session_factory(engine)
        try:
            barrier.wait()
            for rx in chunks[n]:
                try:
                    dispensing.dispense(wsf, actor, DispenseRequest(
                        rx, uuid.uuid4(), allow_partial=True, no_scan_reason=NO_SCAN))
                    done[n] += 1
                except InsufficientStock:
                    refused[n] += 1
        except BaseException as exc:
            errors.append(exc)
        finally:
            engine.dispose()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(WORKERS)]
    for t in threads:
        t.start()
    barrier.wait()
    start, cpu_start = time.perf_counter(), time.process_time()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    client_cpu = time.process_time() - cpu_start
    if errors:
        raise errors[0]
    check = ledger.verify(sf)
    with bench.engine.connect() as c:
        dup = c.scalar(sa.text(
            "SELECT count(*) FROM (SELECT request_id FROM dispenses GROUP BY request_id "
            "HAVING count(*) > 1) d"))
    results["concurrent_dispenses_per_s"] = round(sum(done) / elapsed, 1)
    results["concurrent_anomalies"] = check.anomalies + (dup or 0)
    log(f"concurrent dispenses: {sum(done)} in {elapsed:.1f} s with {WORKERS} workers "
        f"({sum(refused)} refused for stock), anomalies {results['concurrent_anomalies']}; "
        f"client CPU {client_cpu:.1f} s")
    return results
