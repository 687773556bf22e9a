"""The screens at full scale, through the real table models, offscreen."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
import uuid
from collections.abc import Callable

import sqlalchemy as sa

from .common import BenchDatabase, median, percentile


def fresh_searches(bench: BenchDatabase, n: int, rng: random.Random) -> list[str]:
    """``n`` different searches of the kinds a pharmacy types, drawn from the
    seeded patients themselves: a last name's first letters or all of it,
    "last, f", a first name, a date of birth, a phone number's last four digits."""
    import sqlalchemy as sa

    with bench.engine.connect() as c:
        total = c.scalar(sa.text("SELECT count(*) FROM patients")) or 0
        take = 20 * n  # patients in random id order from a random place
        rows = c.execute(sa.text(
            "SELECT first_name, last_name, date_of_birth, phone FROM patients "
            "ORDER BY id LIMIT :n OFFSET :skip"),
            {"n": take, "skip": rng.randint(0, max(total - take, 0))}).all()
    rng.shuffle(rows)
    kinds = ["prefix", "last", "last_first", "first", "dob", "phone"]
    terms: list[str] = []
    for i, (first, last, dob, phone) in enumerate(rows):
        kind = kinds[i % len(kinds)]
        last, first = (last or "").lower(), (first or "").lower()
        digits = "".join(ch for ch in (phone or "") if ch.isdigit())
        term = {"prefix": last[:rng.randint(3, 5)], "last": last,
                "last_first": f"{last}, {first[:1]}", "first": first,
                "dob": dob.isoformat() if dob else "",
                "phone": digits[-4:] if len(digits) >= 4 else ""}[kind]
        if len(term) >= 3 and term not in terms:
            terms.append(term)
        if len(terms) == n:
            break
    return terms


def patient_searches(app, ws, bench: BenchDatabase, n: int = 60) -> dict[str, float]:
    """Fresh searches drawn from the seeded patients (names, dates of birth,
    phone numbers), each from the query to the results painted in a shown
    table: "cold" is a term's first search, "warm" the same again."""
    from PySide6.QtWidgets import QTableView

    from getmeds_desktop.ui.tablemodels.models import patient_model

    pmodel = patient_model(ws)
    table = QTableView()
    table.setModel(pmodel)
    table.resize(1000, 700)
    painted = _Painted(table.viewport())
    table.show()
    terms = fresh_searches(bench, n, random.Random(3))

    def search(text: str) -> float:
        shown = pmodel.rowCount()
        start = time.perf_counter()
        gen = pmodel.set_query(text)
        _wait(app, lambda g=gen: not pmodel.loading and pmodel.generation == g)
        arrived = time.perf_counter()
        if shown == 0 and pmodel.rowCount() == 0:
            return (arrived - start) * 1000  # nothing to paint: an empty table stays so
        _wait(app, lambda t=arrived: painted.at > t)
        return (painted.at - start) * 1000

    search("a")  # the connection and the table's first paint, not measured
    cold, warm = [], []
    for text in terms:
        cold.append(search(text))
        warm.append(search(text))
    table.hide()
    table.deleteLater()
    return {"patient_search_p95_ms": round(percentile(cold, 95), 1),
            "patient_search_cold_p50_ms": round(percentile(cold, 50), 1),
            "patient_search_warm_p95_ms": round(percentile(warm, 95), 1),
            "patient_search_searches": float(len(cold))}


def fillable_prescriptions(bench: BenchDatabase, n: int, rng: random.Random) -> list[uuid.UUID]:
    """Prescriptions of the seeded pharmacy that can be filled now from stock."""
    with bench.engine.connect() as c:
        ids = [r[0] for r in c.execute(sa.text(
            "SELECT r.id FROM prescriptions AS r JOIN product_stock AS ps "
            "ON ps.product_id = r.product_id WHERE r.status = 'new' AND ps.on_hand >= r.quantity "
            "ORDER BY r.id LIMIT 5000"))]
    return rng.sample(ids, min(n, len(ids)))


def dispense_dialogs(app, ws, bench: BenchDatabase, n: int = 30) -> dict[str, float]:
    """Opening the dispense dialog on a prescription, until its preview (the
    allocation and the whole clinical screening) is painted: a different
    prescription each time, as at the counter."""
    from getmeds_desktop.ui.dialogs.prescriptions import DispenseDialog

    times = []
    for i, rx in enumerate(fillable_prescriptions(bench, n + 2, random.Random(3))):
        start = time.perf_counter()
        dlg = DispenseDialog(ws, rx)
        painted = _Painted(dlg.header)
        dlg.show()
        _wait(app, lambda d=dlg: d.preview is not None)
        arrived = time.perf_counter()
        _wait(app, lambda p=painted, t=arrived: p.at > t)
        if i >= 2:  # the first two warm the process (imports, the knowledge base)
            times.append((painted.at - start) * 1000)
        dlg.reject()
        dlg.deleteLater()
        app.processEvents()
    return {"dispense_dialog_p50_ms": round(percentile(times, 50), 1),
            "dispense_dialog_p95_ms": round(percentile(times, 95), 1)}


def _wait(app, cond: Callable[[], bool], timeout: float = 30.0) -> None:
    end = time.perf_counter() + timeout
    while not cond():
        app.processEvents()
        if time.perf_counter() > end:
            raise TimeoutError("the model did not load in time")
        time.sleep(0.0005)


def run(bench: BenchDatabase, log: Callable[[str], None]) -> dict[str, float]:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QCoreApplication, Qt
    from PySide6.QtWidgets import QApplication

    QCoreApplication.setOrganizationName("GetMeds")
    QCoreApplication.setApplicationName("GetMeds Benchmark")
    app = QApplication.instance() or QApplication(sys.argv[:1])
    from getmeds_desktop.config import DatabaseTarget, load_config
    from getmeds_desktop.services import staff
    from getmeds_desktop.startup import Connector
    from getmeds_desktop.ui.views.inventory import InventoryView
    from getmeds_desktop.ui.workspace import Workspace

    results: dict[str, float] = {}
    connector = Connector()
    opened = connector.open(DatabaseTarget(bench.url, "bench", "bench"))
    actor = staff.actor_for_username(opened.sf, "pharmacist")
    ws = Workspace(opened, actor, load_config([], __import__("pathlib").Path("/nonexistent")))

    # inventory_first_rows_ms: a new Inventory screen, shown, until its first page
    # is painted in the table (the paint after the rows arrived)
    times = []
    for i in range(6):
        start = time.perf_counter()
        view = InventoryView(ws)
        view.resize(1300, 800)
        painted = _Painted(view.table.viewport())
        view.show()
        view.activate()
        _wait(app, lambda v=view: v.model.rowCount() > 0)
        arrived = time.perf_counter()
        _wait(app, lambda p=painted, t=arrived: p.at > t)
        if i:
            times.append((painted.at - start) * 1000)
        view.hide()
        view.deleteLater()
        app.processEvents()
    results["inventory_first_rows_ms"] = round(median(times), 1)

    # inventory_sort_ms: re-sort by on hand (both directions), until the new
    # first page is painted
    view = InventoryView(ws)
    view.resize(1300, 800)
    painted = _Painted(view.table.viewport())
    view.show()
    view.activate()
    model = view.model
    _wait(app, lambda: model.rowCount() > 0 and not model.loading)
    col = [c.key for c in model.columns].index("on_hand")
    times = []
    for i in range(8):
        order = Qt.SortOrder.DescendingOrder if i % 2 == 0 else Qt.SortOrder.AscendingOrder
        start = time.perf_counter()
        gen = model.generation + 1
        model.sort(col, order)
        _wait(app, lambda g=gen: model.generation >= g and model.rowCount() > 0
              and not model.loading)
        arrived = time.perf_counter()
        _wait(app, lambda t=arrived: painted.at > t)
        times.append((painted.at - start) * 1000)
    results["inventory_sort_ms"] = round(median(times), 1)
    view.hide()
    view.deleteLater()
    app.processEvents()

    results.update(patient_searches(app, ws, bench))
    results.update(dispense_dialogs(app, ws, bench))
    log(f"ui: dispense dialog with its preview painted p95 "
        f"{results['dispense_dialog_p95_ms']} ms")
    log(f"ui: first rows painted {results['inventory_first_rows_ms']} ms, sort "
        f"{results['inventory_sort_ms']} ms, patient search p95 "
        f"{results['patient_search_p95_ms']} ms cold, "
        f"{results['patient_search_warm_p95_ms']} ms warm")
    ws.tasks.shutdown()
    connector.close_all()
    if bench.counting_url is not None:
        results.update(_round_trips(app, bench, _wait))
        results.update(_sign_in(app, bench, log))

    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    starts = []
    for _ in range(5):
        spawned = time.time()
        out = subprocess.run([sys.executable, "-m", "benchmarks.probes", "startup",
                              str(spawned), bench.url], capture_output=True, text=True,
                             env=env, timeout=120)
        starts.append(float(out.stdout.strip().splitlines()[-1]))
    results["startup_to_login_s"] = round(median(starts), 2)
    out = subprocess.run([sys.executable, "-m", "benchmarks.probes", "rss", bench.url],
                         capture_output=True, text=True, env=env, timeout=300)
    results["rss_mb_inventory_open"] = round(float(out.stdout.strip().splitlines()[-1]), 1)
    log(f"ui: startup to login {results['startup_to_login_s']} s, RSS with Inventory open "
        f"{results['rss_mb_inventory_open']} MB")
    # the Patients list scrolled through every patient, in a fresh process: the
    # list keeps a bounded window of rows (issue 18), so this stays flat
    out = subprocess.run([sys.executable, "-m", "benchmarks.probes", "scroll", bench.url],
                         capture_output=True, text=True, env=env, timeout=3600)
    rss, patients, held, seconds = out.stdout.strip().splitlines()[-1].split()
    results["rss_mb_after_scrolling_all_patients"] = round(float(rss), 1)
    results["patients_scrolled"] = float(patients)
    results["patients_scrolled_rows_held"] = float(held)
    log(f"ui: RSS after scrolling all {int(patients):,} patients {float(rss):.1f} MB "
        f"({int(held):,} rows held, {float(seconds):.0f} s)")
    return results


def _round_trips(app, bench: BenchDatabase, wait) -> dict[str, float]:
    """The round trips of each screen action, counted by the proxy on a warm
    workspace (the connection is open, the reference data loaded)."""
    from PySide6.QtCore import Qt

    from getmeds_desktop.config import DatabaseTarget, load_config
    from getmeds_desktop.services import staff
    from getmeds_desktop.startup import Connector
    from getmeds_desktop.ui.tablemodels.models import patient_model
    from getmeds_desktop.ui.views.inventory import InventoryView
    from getmeds_desktop.ui.workspace import Workspace

    assert bench.counting_url is not None
    connector = Connector()
    opened = connector.open(DatabaseTarget(bench.counting_url, "bench", "bench"))
    actor = staff.actor_for_username(opened.sf, "pharmacist")
    ws = Workspace(opened, actor, load_config([], __import__("pathlib").Path("/nonexistent")))
    out: dict[str, float] = {}

    def count(action, done) -> int:
        before = bench.round_trips()
        action()
        wait(app, done)
        for _ in range(5):
            app.processEvents()
        return bench.round_trips() - before

    first = []
    for i in range(3):
        view = InventoryView(ws)
        first.append(count(view.activate, lambda v=view: v.model.rowCount() > 0
                           and not v.model.loading))
        if i < 2:
            view.deleteLater()
            app.processEvents()
    out["inventory_first_rows_round_trips"] = float(first[-1])
    col = [c.key for c in view.model.columns].index("on_hand")
    out["inventory_sort_round_trips"] = float(count(
        lambda: view.model.sort(col, Qt.SortOrder.DescendingOrder),
        lambda: view.model.rowCount() > 0 and not view.model.loading))
    pmodel = patient_model(ws)
    trips = []
    for text in fresh_searches(bench, 8, random.Random(5)):
        gen: list[int] = []

        def search(t: str = text, g: list[int] = gen) -> None:
            g.append(pmodel.set_query(t))

        def found(g: list[int] = gen) -> bool:
            return not pmodel.loading and bool(g) and pmodel.generation == g[0]

        trips.append(count(search, found))
    out["patient_search_round_trips"] = float(percentile([float(t) for t in trips[2:]], 50))
    from getmeds_desktop.ui.dialogs.prescriptions import DispenseDialog

    trips = []
    for rx in fillable_prescriptions(bench, 6, random.Random(4)):
        box: list[DispenseDialog] = []

        def opened(r: uuid.UUID = rx, b: list[DispenseDialog] = box) -> None:
            b.append(DispenseDialog(ws, r))

        trips.append(count(opened, lambda b=box: b[0].preview is not None))
        box[0].reject()
        box[0].deleteLater()
        app.processEvents()
    out["dispense_dialog_round_trips"] = float(percentile([float(t) for t in trips[2:]], 50))
    ws.tasks.shutdown()
    connector.close_all()
    return out


class _Painted:
    """Records when a widget was last painted (an event filter on it)."""

    def __init__(self, widget) -> None:
        from PySide6.QtCore import QEvent, QObject

        paint = QEvent.Type.Paint
        box = self

        class Filter(QObject):
            def eventFilter(self, obj, event):  # noqa: N802 - Qt API
                if event.type() == paint:
                    box.at = time.perf_counter()
                return False

        self.at = 0.0
        self.filter = Filter()
        widget.installEventFilter(self.filter)


def _sign_in(app, bench: BenchDatabase, log: Callable[[str], None]) -> dict[str, float]:
    """A staff member signs in with their own database login (as on a server)
    until the dashboard of the seeded pharmacy is painted with its figures: the
    sign-in on the worker, the main window, the dashboard's query, the paint.
    Each sign-in is a new engine and a new connection, as in the app."""
    import secrets

    import sqlalchemy as sa

    from getmeds_desktop import db
    from getmeds_desktop.config import DatabaseTarget, load_config
    from getmeds_desktop.models import Role
    from getmeds_desktop.services import dashboard, staff
    from getmeds_desktop.services.context import SYSTEM
    from getmeds_desktop.startup import Connector
    from getmeds_desktop.ui.controller import AppController

    assert bench.counting_url is not None
    login = f"bench{secrets.token_hex(4)}"
    password = secrets.token_urlsafe(18)
    sf = db.session_factory(bench.engine)
    staff.create_staff(sf, SYSTEM, username=login, full_name="Benchmark Pharmacist",
                       role=Role.PHARMACIST, password=password)
    with bench.engine.connect() as c:
        # a server that trusts loopback logins still checks the passwords of
        # this group's members (see .ci/run): the SCRAM exchange is measured
        checked = c.scalar(sa.text("SELECT count(*) FROM pg_roles WHERE rolname = "
                                   "'getmeds_test_password'"))
        if checked:
            c.exec_driver_sql(f'GRANT getmeds_test_password TO "{login}"')
            c.commit()
    out: dict[str, float] = {"sign_in_password_checked": float(bool(checked))}
    config = load_config([], __import__("pathlib").Path("/nonexistent"))
    try:
        # round trips: the sign-in itself, then the dashboard's figures
        connector = Connector()
        target = DatabaseTarget(bench.counting_url, "bench", "bench")
        before = bench.round_trips()
        opened, actor = connector.sign_in(target, login, password)
        out["sign_in_round_trips"] = float(bench.round_trips() - before)
        before = bench.round_trips()
        dashboard.dashboard(opened.sf, actor)
        out["dashboard_round_trips"] = float(bench.round_trips() - before)
        connector.close_all()

        # sign_in_to_dashboard_s: pressing Sign in until the figures are painted
        target = DatabaseTarget(bench.url, "bench", "bench")
        times = []
        for _ in range(6):
            controller = AppController(app, config, [target], __import__("pathlib").Path(
                "/nonexistent.log"))
            start = time.perf_counter()
            done: list = []
            connector = controller.connector
            controller.tasks.run(lambda c=connector: c.sign_in(target, login, password),
                                 done.append, done.append)
            _wait(app, lambda d=done: bool(d))
            if isinstance(done[0], BaseException):
                raise done[0]
            controller._signed_in(*done[0])
            window = controller.window
            assert window is not None
            view = window.views["dashboard"]
            painted = _Painted(view.cards["patients"])
            _wait(app, lambda v=view: v.data is not None)
            arrived = time.perf_counter()
            _wait(app, lambda p=painted, t=arrived: p.at > t)
            times.append(painted.at - start)
            window.shutdown()
            window.hide()
            window.deleteLater()
            assert controller.workspace is not None
            controller.workspace.close()
            controller._stop_idle_monitor()
            controller.tasks.shutdown()
            controller.connector.close_all()
            sys.excepthook = controller._previous_hook
            controller.deleteLater()
            app.processEvents()
        out["sign_in_to_dashboard_s"] = round(median(times[1:]), 3)
        log(f"ui: sign-in to the dashboard {out['sign_in_to_dashboard_s']} s "
            f"({out['sign_in_round_trips']:.0f} + {out['dashboard_round_trips']:.0f} round "
            "trips)")
    finally:
        with bench.engine.connect() as c:
            c.exec_driver_sql(f'DROP ROLE IF EXISTS "{login}"')
            c.commit()
    return out
