"""Dispensing: single-dispense latency, and throughput with 8 concurrent workstations
(separate processes, half of them on the same few products)."""

from __future__ import annotations

import datetime as _dt
import random
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


# Lots that outlast a 30-day supply: a fill of a shorter-dated lot raises a
# beyond-use warning the pharmacist must acknowledge (not what is measured).
_LONG_DATED = _dt.date.today() + _dt.timedelta(days=60)


def _stocked_products(bench: BenchDatabase, n: int, min_on_hand: int, rng: random.Random
                      ) -> list[uuid.UUID]:
    with bench.engine.connect() as c:
        ids = list(c.scalars(
            sa.select(Product.id).join(ProductStock, ProductStock.product_id == Product.id)
            .where(ProductStock.on_hand >= min_on_hand, Product.schedule == "none",
                   ProductStock.nearest_expiry > _LONG_DATED)
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
                 date_of_birth=dt.date(1970, 1, 1), allergy_status="no_known_allergies",
                 created_at=now, updated_at=now, version=1)
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


def _own_login(bench: BenchDatabase) -> tuple[Actor, Callable[[str], str]]:
    """A pharmacist with their own database login and password (as at a
    workstation on a server: the staff triggers and policies apply, unlike for
    the database owner), and a function that signs a URL in as them."""
    import secrets

    from getmeds_desktop.models import Role
    from getmeds_desktop.services import staff
    from getmeds_desktop.services.context import SYSTEM

    login = f"benchrx{secrets.token_hex(3)}"
    password = secrets.token_urlsafe(18)
    sf = db.session_factory(bench.engine)
    staff.create_staff(sf, SYSTEM, username=login, full_name="Benchmark Dispenser",
                       role=Role.PHARMACIST, password=password)
    if bench.engine.dialect.name != "postgresql":
        return staff.actor_for_username(sf, login), lambda url: url

    def signed_in(url: str) -> str:
        return sa.engine.make_url(url).set(username=login, password=password).render_as_string(
            hide_password=False)
    return staff.actor_for_username(sf, login), signed_in


def run(bench: BenchDatabase, owner: Actor, prescriber_id: uuid.UUID,
        log: Callable[[str], None]) -> dict[str, float]:
    rng = random.Random(11)
    sf = db.session_factory(bench.engine)  # set-up, direct
    actor, as_pharmacist = _own_login(bench)
    del owner  # the set-up's pharmacist: the fills are the login's own
    measured = db.make_engine(as_pharmacist(bench.url), pool_size=2)
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
        counting = db.make_engine(as_pharmacist(bench.counting_url), pool_size=1)
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

    # -- throughput: 8 workstations (processes) at once ----------------------
    results.update(_concurrent(bench, sf, actor, prescriber_id, rng, log,
                               as_pharmacist(bench.url)))
    return results


def _popular_products(bench: BenchDatabase, sf, actor: Actor, units: int
                      ) -> list[uuid.UUID]:
    """The few products half of the workstations fill at once: the two most
    stocked plain products and, when the catalogue has one, a Schedule IV
    product (its fills go into the controlled-substance register too). Each
    gets a delivery of ``units`` first, so the measurement is of contention
    on one product's rows, not of stock running out."""
    import datetime as dt

    from getmeds_desktop.services import catalog, inventory

    with bench.engine.connect() as c:
        def most_stocked(schedules: tuple[str, ...], n: int) -> list[uuid.UUID]:
            return list(c.scalars(
                sa.select(Product.id).join(ProductStock, ProductStock.product_id == Product.id)
                .where(Product.schedule.in_(schedules), Product.active.is_(True),
                       ProductStock.nearest_expiry > _LONG_DATED)
                .order_by(ProductStock.on_hand.desc(), Product.id).limit(n)))

        popular = most_stocked(("none",), 2) + most_stocked(("IV",), 1)
    # the Schedule IV delivery comes from a DEA registrant (21 CFR 1304.22(c))
    supplier = next(x.id for x in catalog.list_suppliers(sf) if x.dea_number)
    for pid in popular:
        inventory.receive_stock(sf, actor, inventory.ReceiptRequest(
            product_id=pid, lot_number=f"BENCH-{uuid.uuid4().hex[:8]}",
            expiry_date=dt.date.today() + dt.timedelta(days=400), quantity=units,
            unit_cost="1.00", supplier_id=supplier))
    return popular


def _stock_of(bench: BenchDatabase, products: list[uuid.UUID]) -> dict[uuid.UUID, int]:
    with bench.engine.connect() as c:
        return {pid: int(q) for pid, q in c.execute(
            sa.select(ProductStock.product_id, ProductStock.on_hand)
            .where(ProductStock.product_id.in_(products)))}


def _workstation(url: str, actor: Actor, rxs: list[uuid.UUID], start, out) -> None:
    """One workstation in its own process: its own engine and connection, its
    prescriptions filled one after the other as fast as it can."""
    engine = db.make_engine(url, pool_size=1)
    wsf = db.session_factory(engine)
    done = refused = 0
    times: list[float] = []
    try:
        with engine.connect() as c:  # connected before the clock starts
            c.execute(sa.text("SELECT 1"))
        start.wait()
        for rx in rxs:
            t0 = time.perf_counter()
            try:
                dispensing.dispense(wsf, actor, DispenseRequest(
                    rx, uuid.uuid4(), allow_partial=True, no_scan_reason=NO_SCAN))
                done += 1
            except InsufficientStock:
                refused += 1
            times.append((time.perf_counter() - t0) * 1000)
        out.put(("ok", done, refused, times, time.perf_counter()))
    except BaseException as exc:  # reported to the parent, which fails the benchmark
        out.put(("error", repr(exc), 0, [], 0.0))
    finally:
        engine.dispose()


def _concurrent(bench: BenchDatabase, sf, actor: Actor, prescriber_id: uuid.UUID,
                rng: random.Random, log: Callable[[str], None], url: str
                ) -> dict[str, float]:
    """8 workstations, each a separate process with its own engine; half of them
    fill prescriptions of the same few popular products, the other half are
    spread over 400 products. Afterwards the ledger is checked: no lot below
    zero, no product dispensed beyond what it had (oversell), every balance
    equal to its ledger sum, the controlled register equal to its movements,
    no request filled twice."""
    import multiprocessing

    per_worker = CONCURRENT_DISPENSES // WORKERS if bench.rtt_ms < 10 else 40
    hot_workers = WORKERS // 2
    popular = _popular_products(bench, sf, actor, units=hot_workers * per_worker * 5 + 500)
    spread = _stocked_products(bench, 400, 300, rng)
    log(f"concurrent dispenses: preparing {WORKERS * per_worker} prescriptions, "
        f"{hot_workers} workstations on {len(popular)} popular products")
    hot_rxs = _prescriptions(sf, actor, prescriber_id, popular, hot_workers * per_worker, 5)
    cold_rxs = _prescriptions(sf, actor, prescriber_id, spread,
                              (WORKERS - hot_workers) * per_worker, 5)
    rng.shuffle(hot_rxs)
    rng.shuffle(cold_rxs)
    chunks = ([hot_rxs[w::hot_workers] for w in range(hot_workers)]
              + [cold_rxs[w::WORKERS - hot_workers] for w in range(WORKERS - hot_workers)])
    before = _stock_of(bench, popular + spread)
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(WORKERS + 1)
    out = ctx.Queue()
    procs = [ctx.Process(target=_workstation, args=(url, actor, chunk, start, out))
             for chunk in chunks]
    for p in procs:
        p.start()
    start.wait(timeout=300)
    began = time.perf_counter()
    reports = [out.get(timeout=1800) for _ in procs]
    for p in procs:
        p.join(60)
    failed = [r[1] for r in reports if r[0] != "ok"]
    if failed:
        raise RuntimeError(f"a workstation failed: {failed[0]}")
    elapsed = max(r[4] for r in reports) - began
    done = sum(r[1] for r in reports)
    refused = sum(r[2] for r in reports)
    times = [t for r in reports for t in r[3]]
    hot_times = [t for r in reports[:hot_workers] for t in r[3]]

    # anomalies, checked after
    check = ledger.verify(sf)
    after = _stock_of(bench, popular + spread)
    from getmeds_desktop.models import Dispense, Prescription

    with bench.engine.connect() as c:
        dispensed = {pid: int(q) for pid, q in c.execute(
            sa.select(Prescription.product_id, sa.func.sum(Dispense.quantity))
            .join(Prescription, Prescription.id == Dispense.prescription_id)
            .where(Prescription.id.in_(hot_rxs + cold_rxs))
            .group_by(Prescription.product_id))}
    oversold = sum(1 for pid, q in dispensed.items() if q > before.get(pid, 0))
    unbalanced = sum(1 for pid in before
                     if after.get(pid, 0) != before[pid] - dispensed.get(pid, 0))
    anomalies = {"oversell": oversold, "negative balance": check.negative_lots,
                 "register mismatch": check.register_mismatches,
                 "balance mismatch": check.lot_mismatches + check.product_mismatches
                 + unbalanced,
                 "filled twice": check.duplicate_request_ids}
    out_figures = {
        "concurrent_dispenses_per_s": round(done / elapsed, 1),
        "concurrent_dispense_p95_ms": round(percentile(times, 95), 1),
        "concurrent_popular_dispense_p95_ms": round(percentile(hot_times, 95), 1),
        "concurrent_anomalies": float(sum(anomalies.values())),
    }
    log(f"concurrent dispenses: {done} in {elapsed:.1f} s by {WORKERS} processes "
        f"({refused} refused for stock), {out_figures['concurrent_dispenses_per_s']}/s, "
        f"p95 {out_figures['concurrent_dispense_p95_ms']} ms (popular products "
        f"{out_figures['concurrent_popular_dispense_p95_ms']} ms); anomalies {anomalies}")
    return out_figures
