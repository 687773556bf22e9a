"""Change notifications reveal nothing a login could not read itself, and a
forged one makes no workstation show wrong data.

Any login may LISTEN on the channel, and anyone may pg_notify on it: the
payload names only the changed row (table, id, operation), and a workstation
looks up the rest under its own login, where row-level security applies.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator

import psycopg
import pytest
import sqlalchemy as sa

from getmeds_desktop import db
from getmeds_desktop.config import AppConfig, DatabaseTarget
from getmeds_desktop.services import dispensing, patients
from getmeds_desktop.services.dispensing import DispenseRequest
from getmeds_desktop.sync import Change, ChangeListener, group, parse_payload
from getmeds_desktop.sync.listener import CHANNEL, readable_lookups, resolve
from tests.fixtures.data import NO_SCAN, PASSWORD

from .conftest import Pharmacy


def _payloads(conn: psycopg.Connection, seconds: float = 0.6) -> list[str]:
    return [n.payload for n in conn.notifies(timeout=seconds)]


class Recorder:
    def __init__(self) -> None:
        self.changes: list[Change] = []
        self.lock = threading.Lock()

    def on_changes(self, batch: list[Change]) -> None:
        with self.lock:
            self.changes.extend(batch)

    def wait_for(self, predicate, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if any(predicate(c) for c in self.changes):
                    return
            time.sleep(0.02)
        raise AssertionError(f"timed out; got {self.changes}")


def _listener(ph: Pharmacy, who) -> tuple[sa.Engine, ChangeListener, Recorder]:
    engine = db.make_engine(ph.url, username=who.username, password=PASSWORD,
                            poolclass=sa.NullPool)
    rec = Recorder()
    listener = ChangeListener(engine, rec.on_changes, lambda _s: None, first_backoff=0.1)
    listener.start()
    deadline = time.monotonic() + 10
    while listener.state != "connected" and time.monotonic() < deadline:
        time.sleep(0.02)
    assert listener.state == "connected"
    return engine, listener, rec


def test_a_doctor_listening_learns_nothing_of_another_doctors_patients(pharmacy: Pharmacy):
    w, other = pharmacy.world, pharmacy.doctor2
    product, _ = pharmacy.stocked("Notedrug", 40)
    patient = w.patient("Priscilla", "Private")
    rx = pharmacy.rx(product.id, quantity=10, prescriber_id=other.prescriber_id, actor=other,
                     patient_id=patient.id)
    seen = w.patient("Open", "Record")  # a change this doctor may see, to know we are done
    engine, listener, rec = _listener(pharmacy, w.doctor)
    try:
        with pharmacy.login(w.doctor, autocommit=True) as doctor:
            doctor.execute(f"LISTEN {CHANNEL}")
            done = dispensing.dispense(w.sf, w.pharmacist, DispenseRequest(rx.id, uuid.uuid4(),
                                                                           no_scan_reason=NO_SCAN))
            got = _payloads(doctor)
            info = patients.get_patient(w.sf, w.pharmacist, seen.id)
            patients.update_patient(w.sf, w.pharmacist, seen.id, patients.PatientDraft(
                first_name="Open", last_name="Record", date_of_birth=info.date_of_birth,
                phone="555-0111"), expected_version=info.version)
            rec.wait_for(lambda c: c.table == "patients" and c.id == seen.id)
            # the payloads name rows only
            parsed = [json.loads(p) for p in got]
            assert parsed and all(set(n) == {"t", "id", "op"} for n in parsed), parsed
            assert {n["t"] for n in parsed} == {"dispenses", "stock_movements", "prescriptions"}
            secret = {str(patient.id), str(product.id), patient.last_name, "Notedrug"}
            assert not [p for p in got if any(s in p for s in secret)]
            # and none of those rows is one this doctor may read
            assert doctor.execute("SELECT count(*) FROM dispenses WHERE id = %s",
                                  (done.dispense_id,)).fetchone()[0] == 0
            assert doctor.execute("SELECT count(*) FROM prescriptions WHERE id = %s",
                                  (rx.id,)).fetchone()[0] == 0
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                doctor.execute("SELECT lot_id FROM stock_movements LIMIT 1")
            # looked up as the doctor, they resolve to nothing of that patient's
            changes = [c for c in map(parse_payload, got) if c is not None]
            resolved = resolve(doctor, changes, readable_lookups(doctor))
            assert not [c for c in resolved if c.table == "dispenses"]
            assert not [c for c in resolved if {c.patient, c.product, c.rx} - {None}]
    finally:
        listener.stop()
        engine.dispose()
    # what the doctor's workstation was handed holds nothing of them either
    with rec.lock:
        handed = list(rec.changes)
    assert not [c for c in handed if c.table == "dispenses"]
    assert not [c for c in handed if patient.id in (c.patient, c.id)
                or product.id in (c.product, c.id) or c.rx is not None]
    # (what the movements took it may not look up: it re-reads its product list)
    assert group(handed)["products"] is None


def _forge(ph: Pharmacy, payloads: list[str]) -> None:
    """A clerk, in psql: SELECT pg_notify('getmeds_changes', ...)."""
    with ph.login(ph.world.clerk, autocommit=True) as c:
        for p in payloads:
            c.execute("SELECT pg_notify(%s, %s)", (CHANNEL, p))


def test_forged_notifications_carry_no_data_to_a_workstation(pharmacy: Pharmacy):
    w = pharmacy.world
    product, _ = pharmacy.stocked("Forgedrug", 40)
    decoy, _ = pharmacy.stocked("Forgedecoy", 40)
    patient = w.patient("Fred", "Forged")
    rx = pharmacy.rx(product.id, quantity=10, patient_id=patient.id)
    done = dispensing.dispense(w.sf, w.pharmacist, DispenseRequest(rx.id, uuid.uuid4(),
                                                                   no_scan_reason=NO_SCAN))
    engine, listener, rec = _listener(pharmacy, w.pharmacist)
    stranger = uuid.uuid4()
    try:
        _forge(pharmacy, [
            json.dumps({"t": "dispenses", "id": str(done.dispense_id), "op": "insert",
                        "product": str(decoy.id), "patient": str(stranger),
                        "rx": str(stranger), "by": w.admin.username}),
            json.dumps({"t": "dispenses", "id": str(stranger), "op": "insert",
                        "product": str(decoy.id)}),
            json.dumps({"t": "stock_movements", "id": str(stranger), "lot": str(stranger)}),
            json.dumps({"t": "patients", "id": str(patient.id), "op": "delete",
                        "first_name": "Hacked"}),
            json.dumps({"t": "audit_log", "id": str(stranger)}),
            json.dumps({"t": "products", "id": "not-a-uuid"}),
            json.dumps({"t": "products", "all": True, "op": "drop"}),
            "not json at all", "[]", "{}",
        ])
        rec.wait_for(lambda c: c.table == "products" and c.id is None)
    finally:
        listener.stop()
        engine.dispose()
    with rec.lock:
        got = list(rec.changes)
    # the real dispense, described by the database; the made-up ones are gone
    assert [c for c in got if c.table == "dispenses"] == [
        Change("dispenses", done.dispense_id, "insert", product=product.id,
               patient=patient.id, rx=rx.id)]
    assert not [c for c in got if c.table == "stock_movements"]
    # what is left asks for re-reads only (a patient, the product list)
    assert Change("patients", patient.id, "delete") in got
    assert Change("products", None, "") in got
    assert {c.table for c in got} == {"dispenses", "patients", "products"}
    assert all(not hasattr(c, "by") for c in got)


# ------------------------------------------------------------- a workstation


@pytest.fixture
def workstation(qtbot, pharmacy: Pharmacy) -> Iterator[tuple]:
    """A pharmacist signed in with their own login, live sync on."""
    from PySide6.QtCore import QCoreApplication, QSettings

    from getmeds_desktop.startup import Connector
    from getmeds_desktop.ui.main_window import MainWindow
    from getmeds_desktop.ui.style import apply_style
    from getmeds_desktop.ui.workspace import Workspace

    QCoreApplication.setOrganizationName("GetMeds")
    QCoreApplication.setApplicationName("GetMeds Desktop Tests")
    QSettings().clear()
    apply_style(QCoreApplication.instance())
    connector = Connector()
    target = DatabaseTarget(pharmacy.url.render_as_string(hide_password=False), "test",
                            "Pharmacy server")
    opened, actor = connector.sign_in(target, pharmacy.world.pharmacist.username, PASSWORD)
    config = AppConfig(profiles={}, default_profile=None, auto_lock_minutes=None,
                       paper_size=None, pharmacy={}, locked=frozenset(), files=())
    ws = Workspace(opened, actor, config)
    win = MainWindow(ws)
    qtbot.addWidget(win)
    win.resize(1300, 800)
    win.show()
    ws.start_live_sync(first_backoff=0.1, max_backoff=0.5, probe_seconds=0.5)
    qtbot.waitUntil(lambda: ws.live.listener.state == "connected", timeout=10000)
    yield win, ws
    ws.close()
    connector.close_all()


def test_forged_notifications_make_a_workstation_show_nothing_wrong(qtbot, pharmacy: Pharmacy,
                                                                    workstation):
    win, _ws = workstation
    w = pharmacy.world
    product, _ = pharmacy.stocked("Forgescreen", 40)
    patient = w.patient("Gina", "Genuine")
    view = win.show_area("patients")
    view.search.setText("Genuine")
    view.search.flush()
    qtbot.waitUntil(lambda: view.model.rowCount() == 1 and not view.model.loading,
                    timeout=10000)
    inventory = win.show_area("inventory")
    inventory.search.setText("Forgescreen")
    inventory.search.flush()
    qtbot.waitUntil(lambda: inventory.model.rowCount() == 1 and not inventory.model.loading,
                    timeout=10000)
    _forge(pharmacy, [
        json.dumps({"t": "patients", "id": str(patient.id), "op": "delete",
                    "last_name": "Hacked", "by": w.admin.username}),
        json.dumps({"t": "stock_movements", "id": str(uuid.uuid4()),
                    "product": str(product.id), "on_hand": 0}),
        json.dumps({"t": "dispenses", "id": str(uuid.uuid4()), "product": str(product.id)}),
        json.dumps({"t": "products", "id": str(product.id), "op": "delete"}),
    ])
    # then a real change, so that we know the forged ones went through first
    info = patients.get_patient(w.sf, w.pharmacist, patient.id)
    patients.update_patient(w.sf, w.admin, patient.id, patients.PatientDraft(
        first_name="Gina", last_name="Genuine", date_of_birth=info.date_of_birth,
        phone="555-0177"), expected_version=info.version)
    qtbot.waitUntil(lambda: view.model.row_at(0).phone == "555-0177", timeout=5000)
    qtbot.waitUntil(lambda: not view.model.loading and not inventory.model.loading,
                    timeout=5000)
    row = view.model.row_at(0)
    assert (view.model.rowCount(), row.id, row.last_name) == (1, patient.id, "Genuine")
    item = inventory.model.row_at(0)
    assert (inventory.model.rowCount(), item.id, item.on_hand) == (1, product.id, 40)
