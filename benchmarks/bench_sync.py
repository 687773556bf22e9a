"""Live sync under load: ten workstations writing, one watching.

``notify_refresh_p95_ms``: a workstation receives stock of a product that
another workstation's Inventory model shows; the time from that commit to the
moment the row in the watching model has the new on-hand figure. Nine more
workstations write at the same time (receipts of products on screen and off
it, patient edits), each in its own process with its own connection, as
separate copies of the app would.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import random
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable

from .common import BenchDatabase, percentile

BACKGROUND_WRITERS = 9
PROBES = 80
PROBE_GAP_S = 0.2


def _wait(app, cond: Callable[[], bool], timeout: float = 30.0) -> None:
    end = time.perf_counter() + timeout
    while not cond():
        app.processEvents()
        if time.perf_counter() > end:
            raise TimeoutError("timed out")
        time.sleep(0.0005)


def writer(url: str, seconds: float, seed: int, product_ids: list[str],
           patient_ids: list[str]) -> None:
    """One background workstation (run in its own process)."""
    from getmeds_desktop import db
    from getmeds_desktop.services import catalog, inventory, patients, staff
    from getmeds_desktop.services.errors import StaleEdit

    engine = db.make_engine(url, pool_size=1)
    sf = db.session_factory(engine)
    actor = staff.actor_for_username(sf, "pharmacist")
    # a DEA registrant: a controlled product is received only from one (21 CFR 1304.22(c))
    supplier = next(x.id for x in catalog.list_suppliers(sf) if x.dea_number)
    rnd = random.Random(seed)
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end:
        n += 1
        if rnd.random() < 0.8:
            inventory.receive_stock(sf, actor, inventory.ReceiptRequest(
                product_id=uuid.UUID(rnd.choice(product_ids)),
                lot_number=f"BW{seed}-{n}", expiry_date=dt.date.today() + dt.timedelta(days=400),
                quantity=rnd.randint(1, 20), unit_cost="1.00", supplier_id=supplier,
                invoice_ref=f"BW{seed}", order_form=f"CSOS-BW{seed}"))
        else:
            pid = uuid.UUID(rnd.choice(patient_ids))
            p = patients.get_patient(sf, actor, pid)
            with contextlib.suppress(StaleEdit):  # two workstations, one patient: fine
                patients.update_patient(sf, actor, pid, patients.PatientDraft(
                    first_name=p.first_name, last_name=p.last_name,
                    date_of_birth=p.date_of_birth, sex=p.sex, phone=p.phone, email=p.email,
                    address_line=p.address_line, city=p.city, state=p.state,
                    postal_code=p.postal_code,
                    notes=f"called {n}", allergies=[
                        patients.AllergyDraft(a.allergen, a.reaction, a.severity)
                        for a in p.allergies]),
                    expected_version=p.version)
        time.sleep(rnd.uniform(0.02, 0.08))
    print(n, flush=True)
    engine.dispose()


def run(bench: BenchDatabase, log: Callable[[str], None]) -> dict[str, float]:
    if bench.engine.dialect.name != "postgresql":
        log("sync: PostgreSQL only, skipped")
        return {}
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QCoreApplication
    from PySide6.QtWidgets import QApplication

    QCoreApplication.setOrganizationName("GetMeds")
    QCoreApplication.setApplicationName("GetMeds Benchmark")
    app = QApplication.instance() or QApplication(sys.argv[:1])
    import sqlalchemy as sa

    from getmeds_desktop import db
    from getmeds_desktop.config import DatabaseTarget, load_config
    from getmeds_desktop.services import catalog, inventory, staff
    from getmeds_desktop.services.listing import ProductFilter
    from getmeds_desktop.startup import Connector
    from getmeds_desktop.ui.tablemodels.models import product_model
    from getmeds_desktop.ui.workspace import Workspace

    connector = Connector()
    opened = connector.open(DatabaseTarget(bench.url, "bench", "bench"))
    actor = staff.actor_for_username(opened.sf, "pharmacist")
    ws = Workspace(opened, actor, load_config([], __import__("pathlib").Path("/nonexistent")))
    model = product_model(ws)
    model.set_query(ProductFilter())
    _wait(app, lambda: model.rowCount() > 0 and not model.loading)
    ws.data_changed.connect(lambda table, ids: model.refresh_rows(list(ids) or None)
                            if table == "products" else None)
    ws.start_live_sync()
    _wait(app, lambda: ws.live.listener.state == "connected")

    shown = [model.row_at(i).id for i in range(model.rowCount())]
    watched = shown[len(shown) // 2]
    with bench.engine.connect() as c:
        others = [str(r) for r in c.execute(sa.text(
            "SELECT id FROM products ORDER BY random() LIMIT 400")).scalars()]
        people = [str(r) for r in c.execute(sa.text(
            "SELECT id FROM patients ORDER BY random() LIMIT 400")).scalars()]
    targets = [str(i) for i in shown if i != watched] + others
    duration = PROBES * PROBE_GAP_S + 6
    procs = [subprocess.Popen(
        [sys.executable, "-c",
         "import sys, json; from benchmarks.bench_sync import writer; "
         "a = json.loads(sys.argv[1]); writer(*a)",
         __import__("json").dumps([bench.url, duration, 100 + k, targets, people])],
        stdout=subprocess.PIPE, text=True, cwd=os.path.dirname(os.path.dirname(__file__)))
        for k in range(BACKGROUND_WRITERS)]
    time.sleep(2.0)  # let the writers get going

    probe_engine = db.make_engine(bench.url, pool_size=1)
    probe_sf = db.session_factory(probe_engine)
    supplier = next(x.id for x in catalog.list_suppliers(probe_sf) if x.dea_number)
    row = model.row_of(watched)
    base = model.row_at(row).on_hand
    sent: set[int] = set()
    committed: dict[int, float] = {}
    seen: dict[int, float] = {}

    def on_changed(*_a: object) -> None:
        r = model.row_of(watched)
        if r >= 0:
            n = model.row_at(r).on_hand - base
            if n in sent and n not in seen:
                seen[n] = time.perf_counter()

    model.dataChanged.connect(on_changed)

    def probe() -> None:
        for n in range(1, PROBES + 1):
            sent.add(n)
            inventory.receive_stock(probe_sf, actor, inventory.ReceiptRequest(
                product_id=watched, lot_number=f"PROBE-{n}",
                expiry_date=dt.date.today() + dt.timedelta(days=400), quantity=1,
                unit_cost="1.00", supplier_id=supplier, invoice_ref="PROBE",
                order_form="CSOS-PROBE"))
            committed[n] = time.perf_counter()
            time.sleep(PROBE_GAP_S)

    t = threading.Thread(target=probe)
    t.start()
    _wait(app, lambda: not t.is_alive(), timeout=duration + 60)
    t.join()
    settle_until = time.perf_counter() + 5
    _wait(app, lambda: len(seen) >= len(committed) or time.perf_counter() > settle_until)
    writes = sum(int((p.communicate(timeout=60)[0] or "0").split()[-1]) for p in procs)
    # (a refresh can land before the probe thread has noted its commit: 0 ms)
    latencies = [max(seen[n] - committed[n], 0.0) * 1000 for n in committed if n in seen]
    missed = len(committed) - len(latencies)
    p95 = percentile(latencies, 95)
    log(f"sync: {len(latencies)} probes, commit to refreshed row p50 "
        f"{percentile(latencies, 50):.0f} ms, p95 {p95:.0f} ms, with {BACKGROUND_WRITERS} more "
        f"workstations making {writes} writes; {missed} never refreshed")
    ws.close()
    probe_engine.dispose()
    connector.close_all()
    return {"notify_refresh_p95_ms": round(p95, 1) if not missed else float("inf"),
            "notify_background_writes_per_s": round(writes / duration, 1)}
