"""Several workstations on one PostgreSQL database: what one does, the others
see; a dropped connection costs and doubles nothing.

The GUI runs on its own engine and listener; "the other workstation" writes
through a second engine, as another copy of the app would."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator

import psycopg
import pytest
import sqlalchemy as sa
from PySide6.QtCore import Qt

from getmeds_desktop import db
from getmeds_desktop.config import DatabaseTarget
from getmeds_desktop.models import Dispense, RxStatus
from getmeds_desktop.services import dispensing, listing, patients
from getmeds_desktop.services.dispensing import DispenseRequest
from getmeds_desktop.startup import Connector
from getmeds_desktop.ui.main_window import MainWindow
from getmeds_desktop.ui.workspace import Workspace
from tests.fixtures.data import NO_SCAN, World, build_world

HELPER = "getmeds-test-helper"


def _conninfo(url: str) -> str:
    u = sa.engine.make_url(url)
    return (f"host={u.host} port={u.port or 5432} dbname={u.database} user={u.username}"
            + (f" password={u.password}" if u.password else "")
            + f" application_name={HELPER}")


def terminate_app_connections(url: str) -> int:
    """pg_terminate_backend on every connection of the GUI (pool and listener)."""
    with psycopg.connect(_conninfo(url), autocommit=True) as c:
        return len(c.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND application_name LIKE 'GetMeds Desktop%'").fetchall())


class Station:
    def __init__(self, url: str, world: World, win: MainWindow, ws: Workspace) -> None:
        self.url, self.world, self.win, self.ws = url, world, win, ws
        self.states: list[str] = []
        ws.connection_state_changed.connect(self.states.append)


@pytest.fixture
def station(qtbot, pg_fresh_db, empty_config) -> Iterator[Station]:
    # the other workstation: its link stays up when this one's connections are cut
    other = db.make_engine(pg_fresh_db,
                           connect_args={"application_name": "getmeds-test-other-workstation"})
    world = build_world(db.session_factory(other))
    connector = Connector()
    opened = connector.open(DatabaseTarget(pg_fresh_db, "test", "Pharmacy server"))
    ws = Workspace(opened, world.pharmacist, empty_config)
    win = MainWindow(ws)
    qtbot.addWidget(win)
    win.resize(1300, 800)
    win.show()
    ws.start_live_sync(first_backoff=0.1, max_backoff=0.5, probe_seconds=0.5)
    qtbot.waitUntil(lambda: ws.live.listener.state == "connected", timeout=10000)
    yield Station(pg_fresh_db, world, win, ws)
    ws.close()
    connector.close_all()
    other.dispose()


def _dispenses(url: str, rx_id: uuid.UUID) -> int:
    engine = db.make_engine(url, poolclass=sa.NullPool)
    try:
        with engine.connect() as c:
            return c.execute(sa.select(sa.func.count()).select_from(Dispense)
                             .where(Dispense.prescription_id == rx_id)).scalar_one()
    finally:
        engine.dispose()


def test_another_workstations_work_shows_up_within_a_second(qtbot, station):
    world, win = station.world, station.win
    product = world.product("Livesyncol")
    world.receive(product.id, 100, lot="LIVE-1")
    people = [world.patient(f"Lia{i}", "Live") for i in range(5)]
    rxs = [world.rx(people[i].id, product.id, quantity=10) for i in range(4)]

    inventory = win.show_area("inventory")
    inventory.search.setText("Livesyncol")
    inventory.search.flush()
    qtbot.waitUntil(lambda: inventory.model.rowCount() == 1 and not inventory.model.loading,
                    timeout=10000)
    inventory.table.selectRow(0)
    queue = win.show_area("dispensing")
    qtbot.waitUntil(lambda: queue.model.rowCount() == 4 and not queue.model.loading,
                    timeout=10000)
    # the queue is first come, first served: select the third row (Rx 3)
    assert [queue.model.row_at(i).id for i in range(4)] == [r.id for r in rxs]
    keep = queue.model.row_at(2).id
    queue.table.selectRow(2)
    assert queue.selected_id() == keep

    # another workstation dispenses the first prescription: it leaves the queue,
    # the rows below move up and the selection moves with its row
    target = rxs[0]
    dispensing.dispense(world.sf, world.pharmacist,
                        DispenseRequest(prescription_id=target.id, request_id=uuid.uuid4(),
                                        no_scan_reason=NO_SCAN))
    qtbot.waitUntil(lambda: queue.model.row_of(target.id) < 0, timeout=1000)  # done: it left
    qtbot.waitUntil(lambda: inventory.model.row_at(0).on_hand == 90, timeout=1000)
    assert queue.selected_id() == keep
    assert inventory.selected_id() == product.id

    # ... and a new prescription is entered elsewhere: it joins the end of the queue
    new = world.rx(people[4].id, product.id, quantity=5, actor=world.pharmacist)
    qtbot.waitUntil(lambda: queue.model.row_of(new.id) == 3, timeout=1000)
    assert queue.selected_id() == keep
    assert queue.model.row_at(3).status is RxStatus.NEW
    assert station.states == []  # never left "connected"


def test_connections_cut_in_the_middle_of_a_dispense(qtbot, station):
    """pg_terminate_backend on the GUI's connections while its dispense waits
    for a row lock: the app reconnects by itself and the dispense exists once."""
    world, win, ws = station.world, station.win, station.ws
    product = world.product("Cutmidway")
    world.receive(product.id, 50, lot="CUT-1")
    patient = world.patient("Cora", "Cut")
    rx = world.rx(patient.id, product.id, quantity=10)
    from getmeds_desktop.ui.dialogs.prescriptions import DispenseDialog

    dlg = DispenseDialog(ws, rx.id, win)
    qtbot.addWidget(dlg)
    dlg.show()
    qtbot.waitUntil(lambda: dlg.preview is not None, timeout=10000)
    dlg.scan.setText(product.ndc_display)
    qtbot.keyClick(dlg.scan, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: "is the prescribed product" in dlg.scan_result.text(),
                    timeout=10000)
    qtbot.waitUntil(dlg.confirm.isEnabled, timeout=5000)
    assert not dlg._dispensing  # the scanner's Enter never confirms by itself

    blocker = psycopg.connect(_conninfo(station.url))
    blocker.execute("SELECT 1 FROM prescriptions WHERE id = %s FOR UPDATE", (rx.id,))
    with qtbot.waitSignal(dlg.dispensed, timeout=30000) as done:
        qtbot.mouseClick(dlg.confirm, Qt.MouseButton.LeftButton)
        with psycopg.connect(_conninfo(station.url), autocommit=True) as probe:
            qtbot.waitUntil(lambda: probe.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock'").fetchone()[0] > 0, timeout=10000)
        assert terminate_app_connections(station.url) >= 2  # the dispense and the listener
        blocker.rollback()
        blocker.close()
    assert done.args[0].prescription_id == rx.id
    assert _dispenses(station.url, rx.id) == 1
    qtbot.waitUntil(lambda: ws.connection_state == "connected", timeout=10000)
    assert "reconnecting" in station.states


def test_all_connections_dropped_while_idle(qtbot, station):
    world, win, ws = station.world, station.win, station.ws
    patient = world.patient("Ida", "Idle")
    view = win.show_area("patients")
    view.search.setText("Idle")
    view.search.flush()
    qtbot.waitUntil(lambda: view.model.rowCount() == 1, timeout=10000)

    assert terminate_app_connections(station.url) >= 1
    qtbot.waitUntil(lambda: "reconnecting" in station.states, timeout=10000)
    qtbot.waitUntil(lambda: ws.connection_state == "connected", timeout=10000)
    assert win.conn_label.text().endswith("Connected")

    # the next action works: a change elsewhere still arrives, an edit here saves
    info = patients.get_patient(world.sf, world.pharmacist, patient.id)
    patients.update_patient(world.sf, world.admin, patient.id, patients.PatientDraft(
        first_name="Ida", last_name="Idle", date_of_birth=info.date_of_birth,
        phone="555-0101"), expected_version=info.version)
    qtbot.waitUntil(lambda: view.model.row_at(0).phone == "555-0101", timeout=5000)
    saved: list = []
    ws.run(lambda: patients.create_patient(ws.sf, ws.actor, patients.PatientDraft(
        first_name="Ned", last_name="Next", date_of_birth=dt.date(1970, 1, 1))), saved.append)
    qtbot.waitUntil(lambda: bool(saved), timeout=10000)
    assert listing.patient_rows(world.sf, world.pharmacist, [saved[0].id])


def test_offline_disables_writes_and_keeps_what_was_typed(qtbot, station):
    world, win, ws = station.world, station.win, station.ws
    patient = world.patient("Otto", "Offline")
    view = win.show_area("patients")
    view.search.setText("Offline")
    view.search.flush()
    qtbot.waitUntil(lambda: view.model.rowCount() == 1, timeout=10000)
    view.table.selectRow(0)
    assert view.act_edit.isEnabled()
    from getmeds_desktop.ui.dialogs.patients import PatientEditor

    info = patients.get_patient(world.sf, world.pharmacist, patient.id)
    dlg = PatientEditor(ws, info, win)
    qtbot.addWidget(dlg)
    dlg.show()
    dlg.phone.setText("555-0199")

    ws.set_connection_state("reconnecting")
    assert not view.act_edit.isEnabled() and not view.act_new.isEnabled()
    assert "Offline" in view.offline.text() and view.offline.isVisible()
    assert not dlg.ok_button.isEnabled() and dlg.offline.isVisible()
    view.table.selectRow(0)  # browsing continues; selecting does not re-enable writes
    assert not view.act_edit.isEnabled()
    assert win.conn_label.text().endswith("Reconnecting…")

    ws.set_connection_state("connected")
    assert view.act_edit.isEnabled() and view.act_new.isEnabled()
    assert dlg.ok_button.isEnabled() and not dlg.offline.isVisible()
    assert dlg.phone.text() == "555-0199"
    with qtbot.waitSignal(dlg.saved, timeout=10000):
        qtbot.mouseClick(dlg.ok_button, Qt.MouseButton.LeftButton)
    assert patients.get_patient(world.sf, world.pharmacist, patient.id).phone == "555-0199"


def test_a_form_whose_record_changed_elsewhere_offers_to_reload(qtbot, station):
    world, win, ws = station.world, station.win, station.ws
    patient = world.patient("Rhea", "Reload")
    from getmeds_desktop.ui.dialogs.patients import PatientEditor

    info = patients.get_patient(world.sf, world.pharmacist, patient.id)
    dlg = PatientEditor(ws, info, win)
    qtbot.addWidget(dlg)
    dlg.show()
    dlg.notes.setPlainText("typed here")
    assert not dlg.changed_bar.isVisible()

    patients.update_patient(world.sf, world.admin, patient.id, patients.PatientDraft(
        first_name="Rhea", last_name="Reload-Smith", date_of_birth=info.date_of_birth),
        expected_version=info.version)
    qtbot.waitUntil(dlg.changed_bar.isVisible, timeout=3000)
    assert f"Changed by {world.admin.username}" in dlg.changed_text.text()
    assert dlg.notes.toPlainText() == "typed here"  # nothing replaced without asking

    qtbot.mouseClick(dlg.ok_button, Qt.MouseButton.LeftButton)  # saving the old version
    qtbot.waitUntil(dlg.message.isVisible, timeout=5000)
    assert dlg.isVisible()

    qtbot.mouseClick(dlg.reload_button, Qt.MouseButton.LeftButton)
    assert dlg.last.text() == "Reload-Smith" and not dlg.changed_bar.isVisible()
    with qtbot.waitSignal(dlg.saved, timeout=10000):
        qtbot.mouseClick(dlg.ok_button, Qt.MouseButton.LeftButton)


ROUNDS = 4  # cuts in a row; round 4 cuts the first patient's refresh a second time


def test_connections_terminated_during_refreshes_leave_the_list_current(qtbot, station):
    """pg_terminate_backend while a list re-reads changed rows, again and again:
    each refresh is tried again after the reconnect, nobody sees a crash dialog,
    and the list shows every change in the end."""
    world, win, ws = station.world, station.win, station.ws
    people = [world.patient(f"Ria{i}", "Refreshcut") for i in range(4)]
    view = win.show_area("patients")
    view.search.setText("Refreshcut")
    view.search.flush()
    qtbot.waitUntil(lambda: view.model.rowCount() == 4 and not view.model.loading,
                    timeout=10000)
    bugs: list[str] = []
    ws.tasks.unexpected_error.connect(lambda exc, _tb: bugs.append(repr(exc)))
    # each re-read first waits on the server, so that the cut lands inside it
    real_refetch = view.model._refetch

    def slow_refetch(*args):
        with ws.sf() as s:
            s.execute(sa.text("SELECT pg_sleep(0.3) /* refresh under test */"))
        return real_refetch(*args)

    view.model._refetch = slow_refetch
    probe = psycopg.connect(_conninfo(station.url), autocommit=True)

    def refresh_running() -> bool:
        return probe.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND query LIKE '%refresh under test%' AND pid <> pg_backend_pid()"
        ).fetchone()[0] > 0

    try:
        for round_ in range(ROUNDS):
            p = people[round_ % 4]
            info = patients.get_patient(world.sf, world.pharmacist, p.id)
            patients.update_patient(world.sf, world.admin, p.id, patients.PatientDraft(
                first_name=info.first_name, last_name="Refreshcut",
                date_of_birth=info.date_of_birth, phone=f"555-01{round_:02d}"),
                expected_version=info.version)
            qtbot.waitUntil(refresh_running, timeout=10000)
            assert terminate_app_connections(station.url) >= 1
    finally:
        probe.close()
    expected = {}
    for round_ in range(ROUNDS):
        expected[people[round_ % 4].id] = f"555-01{round_:02d}"
    qtbot.waitUntil(lambda: all(
        view.model.row_at(view.model.row_of(pid)).phone == phone
        for pid, phone in expected.items()), timeout=30000)
    qtbot.waitUntil(lambda: not view.model._refreshing, timeout=10000)
    assert bugs == []
    # ... and the list still follows later changes
    info = patients.get_patient(world.sf, world.pharmacist, people[0].id)
    patients.update_patient(world.sf, world.admin, people[0].id, patients.PatientDraft(
        first_name=info.first_name, last_name="Refreshcut", date_of_birth=info.date_of_birth,
        phone="555-0999"), expected_version=info.version)
    qtbot.waitUntil(lambda: view.model.row_at(view.model.row_of(people[0].id)).phone
                    == "555-0999", timeout=10000)
