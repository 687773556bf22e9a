"""PostgreSQL: change notifications, the listener's reconnects, and retried
writes that happen exactly once."""

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
from getmeds_desktop.errors import DatabaseUnavailable
from getmeds_desktop.models import Dispense
from getmeds_desktop.services import dispensing, fills, inventory, patients
from getmeds_desktop.services.dispensing import DispenseRequest
from getmeds_desktop.sync import (
    EVERYTHING,
    Change,
    ChangeListener,
    call_with_reconnect,
    group,
    is_disconnect,
    parse_payload,
)
from getmeds_desktop.sync.listener import CHANNEL, resolve
from getmeds_desktop.sync.listener import readable_lookups as resolve_lookups
from tests.fixtures.data import NO_SCAN, World, build_world


@pytest.fixture
def pg(pg_fresh_db) -> Iterator[tuple[str, sa.Engine, World]]:
    engine = db.make_engine(pg_fresh_db, pool_size=4)
    world = build_world(db.session_factory(engine))
    yield pg_fresh_db, engine, world
    engine.dispose()


def _conninfo(url: str) -> str:
    u = sa.engine.make_url(url)
    return (f"host={u.host} port={u.port or 5432} dbname={u.database} user={u.username}"
            + (f" password={u.password}" if u.password else "")
            + " application_name=getmeds-test-helper")


@pytest.fixture
def listening(pg) -> Iterator[psycopg.Connection]:
    url, _engine, _world = pg
    conn = psycopg.connect(_conninfo(url), autocommit=True)
    conn.execute(f"LISTEN {CHANNEL}")
    yield conn
    conn.close()


def _drain(conn: psycopg.Connection, seconds: float = 0.5) -> list[dict]:
    return [json.loads(n.payload) for n in conn.notifies(timeout=seconds)]


def _terminate(url: str, *, except_apps: tuple[str, ...] = ("getmeds-test-helper",),
               only_app: str | None = None) -> int:
    """pg_terminate_backend on this database's connections (not ours)."""
    with psycopg.connect(_conninfo(url), autocommit=True) as c:
        rows = c.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND NOT (application_name = ANY(%s)) "
            "AND (%s::text IS NULL OR application_name LIKE %s)",
            (list(except_apps), only_app, only_app)).fetchall()
    return len(rows)


# ------------------------------------------------------------------ payloads


def test_a_dispense_announces_what_changed(pg, listening):
    _url, _engine, world = pg
    product = world.product("Syncamox")
    world.receive(product.id, 40, lot="SYNC-1")
    patient = world.patient("Sia", "Sync")
    rx = world.rx(patient.id, product.id, quantity=10)
    _drain(listening, 0.3)
    result = dispensing.dispense(world.sf, world.pharmacist,
                                 DispenseRequest(prescription_id=rx.id, request_id=uuid.uuid4(),
                                                 no_scan_reason=NO_SCAN))
    got = _drain(listening)
    by_table: dict[str, list[dict]] = {}
    for n in got:
        by_table.setdefault(n["t"], []).append(n)
    assert {"dispenses", "stock_movements", "prescriptions"} <= set(by_table)
    # the lot's on hand changed, but the movement (which names the lot) says so
    assert "stock_lots" not in by_table
    # a notification names the changed row only: table, id and operation
    assert all(set(n) == {"t", "id", "op"} for n in got)
    d = by_table["dispenses"][0]
    assert d["id"] == str(result.dispense_id)
    lot = inventory.lots_of_product(world.sf, product.id)[0]
    inventory.set_lot_status(world.sf, world.pharmacist, lot.id, "quarantined", "damp box")
    lots = [n for n in _drain(listening) if n["t"] == "stock_lots"]
    assert [n["id"] for n in lots] == [str(lot.id)]
    assert by_table["prescriptions"][0]["id"] == str(rx.id)
    # the client looks up what the dispense and its movements refer to, in one query
    changes = [parse_payload(json.dumps(n)) for n in got + lots]
    readable = resolve_lookups(listening)
    resolved = resolve(listening, changes, readable)
    dispense = next(c for c in resolved if c.table == "dispenses")
    assert dispense == Change("dispenses", result.dispense_id, "insert", product=product.id,
                              patient=patient.id, rx=rx.id)
    moves = [c for c in resolved if c.table == "stock_movements"]
    assert moves and {(c.product, c.lot) for c in moves} == {(product.id, lot.id)}
    assert group(resolved)["products"] == {product.id}


def test_each_step_of_a_fill_is_announced(pg, listening):
    """Verify and release on one workstation refresh the other's queue."""
    _url, _engine, world = pg
    product = world.product("Syncstep")
    world.receive(product.id, 20, lot="STEP-1")
    rx = world.rx(world.patient("Stu", "Step").id, product.id, quantity=5)
    d = dispensing.dispense(world.sf, world.technician, DispenseRequest(
        prescription_id=rx.id, request_id=uuid.uuid4(), no_scan_reason=NO_SCAN))
    _drain(listening, 0.3)
    fills.verify(world.sf, world.pharmacist, d.dispense_id)
    got = [n for n in _drain(listening) if n["t"] == "dispenses"]
    assert got == [{"t": "dispenses", "id": str(d.dispense_id), "op": "update"}]
    fills.release(world.sf, world.clerk, d.dispense_id, counseling="declined")
    assert [n["op"] for n in _drain(listening) if n["t"] == "dispenses"] == ["update"]


def test_allergy_edits_announce_the_patient_and_rollbacks_announce_nothing(pg, listening):
    url, engine, world = pg
    patient = world.patient("Ali", "Allergy")
    _drain(listening, 0.3)
    info = patients.get_patient(world.sf, world.pharmacist, patient.id)
    draft = patients.PatientDraft(first_name=info.first_name, last_name=info.last_name,
                                  date_of_birth=info.date_of_birth, sex=info.sex,
                                  allergies=[patients.AllergyDraft("Penicillin", "rash")])
    patients.update_patient(world.sf, world.pharmacist, patient.id, draft,
                            expected_version=info.version)
    got = _drain(listening)
    assert got and {n["t"] for n in got} == {"patients"}
    assert {n["id"] for n in got} == {str(patient.id)}

    with engine.connect() as conn:
        conn.exec_driver_sql("UPDATE patients SET notes = 'draft' WHERE id = %(id)s",
                             {"id": patient.id})
        conn.rollback()
    assert _drain(listening) == []


def test_a_big_statement_sends_one_notification(pg, listening):
    _url, engine, world = pg
    for i in range(120):
        world.patient(f"Bulk{i}", "Many")
    _drain(listening, 0.5)
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE patients SET notes = 'recall letter sent'")
    got = _drain(listening)
    assert len(got) == 1 and got[0]["t"] == "patients" and got[0]["all"] is True
    assert parse_payload(json.dumps(got[0])).id is None


def test_changes_group_into_what_screens_refresh():
    p, lot, rx, d = (uuid.uuid4() for _ in range(4))
    grouped = group([
        Change("stock_movements", uuid.uuid4(), product=p, lot=lot),
        Change("dispenses", d, rx=rx, product=p),
        Change("patients", None),  # many patients
    ])
    assert grouped["products"] == {p}
    assert grouped["stock_lots"] == {lot}
    assert grouped["prescriptions"] == {rx}
    assert grouped["dispenses"] == {d}
    assert grouped["patients"] is None
    assert group([Change(EVERYTHING)]) == {EVERYTHING: None}
    assert parse_payload("not json") is None


# ------------------------------------------------------------------ listener


class Recorder:
    def __init__(self) -> None:
        self.changes: list[Change] = []
        self.states: list[str] = []
        self.lock = threading.Lock()

    def on_changes(self, batch: list[Change]) -> None:
        with self.lock:
            self.changes.extend(batch)

    def on_state(self, state: str) -> None:
        with self.lock:
            self.states.append(state)

    def wait(self, predicate, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if predicate(self):
                    return
            time.sleep(0.02)
        raise AssertionError(f"timed out; states {self.states}, changes {self.changes}")


def test_listener_delivers_changes_and_reconnects_after_termination(pg):
    url, engine, world = pg
    rec = Recorder()
    listener = ChangeListener(engine, rec.on_changes, rec.on_state, first_backoff=0.1,
                              probe_seconds=0.5)
    listener.start()
    try:
        rec.wait(lambda r: r.states == ["connected"])
        patient = world.patient("Lena", "Listen")
        started = time.monotonic()
        rec.wait(lambda r: any(c.id == patient.id for c in r.changes))
        assert time.monotonic() - started < 1.0

        assert _terminate(url, only_app="GetMeds Desktop (listener)") == 1
        rec.wait(lambda r: r.states[-2:] == ["reconnecting", "connected"])
        rec.wait(lambda r: any(c.everything for c in r.changes))  # read everything again
        later = world.patient("Lars", "Later")
        rec.wait(lambda r: any(c.id == later.id for c in r.changes))
    finally:
        listener.stop()
    assert listener._thread is None


def test_listener_goes_offline_when_the_server_cannot_be_reached():
    engine = db.make_engine("postgresql://nobody@127.0.0.1:1/getmeds")
    rec = Recorder()
    listener = ChangeListener(engine, rec.on_changes, rec.on_state, first_backoff=0.05,
                              max_backoff=0.1, offline_after=0.3)
    listener.start()
    try:
        rec.wait(lambda r: "offline" in r.states, timeout=10)
        assert rec.states[0] == "reconnecting" and "connected" not in rec.states
    finally:
        listener.stop()
        engine.dispose()


# ------------------------------------------------------------------- retries


def test_disconnects_are_told_apart_from_refusals(pg):
    url, engine, _world = pg
    with pytest.raises(sa.exc.DBAPIError) as refused, engine.connect() as conn:
        conn.exec_driver_sql("SELECT 1/0")
    assert not is_disconnect(refused.value)

    conn = engine.connect()
    conn.exec_driver_sql("SELECT 1")
    _terminate(url)
    with pytest.raises(sa.exc.DBAPIError) as dropped:
        conn.exec_driver_sql("SELECT 1")
    conn.close()
    assert is_disconnect(dropped.value)

    down = db.make_engine("postgresql://nobody@127.0.0.1:1/getmeds", connect_timeout=2)
    with pytest.raises(sa.exc.DBAPIError) as unreachable, down.connect():
        pass
    assert is_disconnect(unreachable.value)
    down.dispose()


def _ready_rx(world: World, name: str):
    product = world.product(name)
    world.receive(product.id, 50, lot=f"{name[:4].upper()}-1")
    patient = world.patient("Rita", name)
    return world.rx(patient.id, product.id, quantity=10)


def _dispenses_of(engine: sa.Engine, rx_id: uuid.UUID) -> int:
    with engine.connect() as c:
        return c.execute(sa.select(sa.func.count()).select_from(Dispense)
                         .where(Dispense.prescription_id == rx_id)).scalar_one()


def test_a_dispense_cut_off_mid_transaction_is_retried_and_happens_once(pg):
    """The dispensing backend is terminated while it waits for a row lock; the
    retry (same request id) dispenses exactly once."""
    url, engine, world = pg
    rx = _ready_rx(world, "Cutoff")
    req = DispenseRequest(prescription_id=rx.id, request_id=uuid.uuid4(), no_scan_reason=NO_SCAN)
    lost: list[int] = []
    blocker = psycopg.connect(_conninfo(url))
    blocker.execute("SELECT 1 FROM prescriptions WHERE id = %s FOR UPDATE", (rx.id,))
    outcome: dict = {}

    def work() -> None:
        try:
            outcome["result"] = call_with_reconnect(
                lambda: dispensing.dispense(world.sf, world.pharmacist, req),
                on_lost=lambda: lost.append(1), delays=(0.2, 0.5, 1.0))
        except BaseException as exc:
            outcome["error"] = exc

    t = threading.Thread(target=work)
    t.start()
    deadline = time.monotonic() + 10
    with psycopg.connect(_conninfo(url), autocommit=True) as probe:
        while time.monotonic() < deadline:
            waiting = probe.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock'").fetchone()[0]
            if waiting:
                break
            time.sleep(0.02)
        else:
            raise AssertionError("the dispense never waited for the lock")
    assert _terminate(url) >= 1
    blocker.rollback()
    blocker.close()
    t.join(20)
    assert "error" not in outcome, outcome.get("error")
    assert lost, "the retry was not needed: the test did not cut the connection"
    assert _dispenses_of(engine, rx.id) == 1
    assert outcome["result"].prescription_id == rx.id


def test_a_lost_commit_acknowledgement_is_not_dispensed_twice(pg):
    """The first attempt commits and then loses its connection before the app
    hears back; the retry finds the committed dispense by its request id."""
    url, engine, world = pg
    rx = _ready_rx(world, "Lostack")
    req = DispenseRequest(prescription_id=rx.id, request_id=uuid.uuid4(), no_scan_reason=NO_SCAN)
    attempts: list[int] = []

    def attempt() -> dispensing.DispenseResult:
        with engine.connect() as held:  # a connection already checked out
            held.exec_driver_sql("SELECT 1")
            result = dispensing.dispense(world.sf, world.pharmacist, req)
            attempts.append(1)
            if len(attempts) == 1:  # committed; now the connection dies before the reply
                _terminate(url)
                held.exec_driver_sql("SELECT 1")
        return result

    result = call_with_reconnect(attempt, delays=(0.1, 0.2))
    assert len(attempts) == 2 and result.replayed
    assert _dispenses_of(engine, rx.id) == 1


def test_giving_up_is_a_clear_message():
    engine = db.make_engine("postgresql://nobody@127.0.0.1:1/getmeds", connect_timeout=2)
    sleeps: list[float] = []

    def read() -> None:
        with engine.connect():
            pass

    with pytest.raises(DatabaseUnavailable, match="Nothing was saved twice"):
        call_with_reconnect(read, delays=(0.1, 0.2), sleep=sleeps.append)
    assert sleeps == [0.1, 0.2]
    engine.dispose()
