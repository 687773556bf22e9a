"""Offline writes: the outbox on the replica (SQLite) and its exactly-once
replay on the server (real PostgreSQL), with the link cut at random moments,
two workstations offline at once, and refusals in Needs attention."""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import os
import random
import subprocess
import sys
import threading
import time
import uuid

import psycopg
import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks.netdelay import DelayProxy, through
from getmeds_desktop import db
from getmeds_desktop.enums import PartialReason
from getmeds_desktop.models import (
    ControlledRegisterEntry,
    Dispense,
    OverrideReason,
    Patient,
    Prescription,
    RequestLog,
    Schedule,
    Severity,
    Sex,
    StockLot,
    StockMovement,
)
from getmeds_desktop.services import (
    clock,
    dispensing,
    inventory,
    ledger,
    patients,
    prescriptions,
    uow,
)
from getmeds_desktop.services.clinical import Override
from getmeds_desktop.services.dispensing import DispenseRequest
from getmeds_desktop.services.errors import (
    DomainError,
    InsufficientStock,
    ValidationError,
    WarningsNeedAcknowledgement,
)
from getmeds_desktop.services.patients import AllergyDraft, ConditionDraft, PatientDraft
from getmeds_desktop.services.prescriptions import PrescriptionDraft, RxAction
from getmeds_desktop.sync import outbox as ob
from getmeds_desktop.sync.outbox import Kind, OfflinePolicy, OfflineRefused, Outbox
from tests.fixtures.data import NO_SCAN, PASSWORD, World, build_world
from tests.unit.replica_helpers import copy_to_replica

pytestmark = pytest.mark.slow


# ------------------------------------------------------------------ serialization

_uuids = st.uuids()
_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)
_overrides = st.builds(Override, st.sampled_from(list(OverrideReason)) | _text, _text)
_dispense_requests = st.builds(
    DispenseRequest, prescription_id=_uuids, request_id=_uuids,
    quantity=st.none() | st.integers(1, 10**6), allow_partial=st.booleans(),
    acknowledgements=st.dictionaries(_text, _overrides | _text, max_size=3),
    expected_version=st.none() | st.integers(1, 100), notes=st.none() | _text,
    scan=st.none() | _text, no_scan_reason=st.none() | _text,
    substitute_product_id=st.none() | _uuids,
    partial_reason=st.none() | st.sampled_from(list(PartialReason)))
_dates = st.dates(dt.date(1900, 1, 1), dt.date(2100, 1, 1))
_receipts = st.builds(
    inventory.ReceiptRequest, product_id=_uuids, lot_number=_text,
    expiry_date=st.none() | _dates, quantity=st.integers(-5, 10**6),
    unit_cost=st.decimals(allow_nan=False, allow_infinity=False, places=4)
    | st.integers(0, 1000) | _text,
    supplier_id=st.none() | _uuids, invoice_ref=st.none() | _text, request_id=_uuids,
    order_form=st.none() | _text)
_drafts = st.builds(
    PatientDraft, first_name=_text, last_name=_text, date_of_birth=st.none() | _dates,
    sex=st.sampled_from(list(Sex)), phone=st.none() | _text,
    allergies=st.lists(st.builds(AllergyDraft, _text, st.none() | _text,
                                 st.sampled_from(list(Severity)), st.booleans()), max_size=3)
    .map(tuple),
    conditions=st.lists(st.builds(ConditionDraft, _text, st.none() | _text), max_size=2)
    .map(tuple), no_known_allergies=st.booleans(), pregnant=st.booleans())
_requests = st.one_of(
    _dispense_requests, _receipts,
    st.builds(ob.PatientCreate, _drafts, _uuids, st.booleans()),
    st.builds(ob.PatientUpdate, _uuids, _drafts, st.integers(1, 50), _uuids),
    st.builds(ob.PrescriptionCreate, st.builds(
        PrescriptionDraft, patient_id=st.none() | _uuids, prescriber_id=st.none() | _uuids,
        product_id=st.none() | _uuids, sig=_text, quantity=st.integers(), days_supply=st.integers(),
        date_written=st.none() | _dates, not_before=st.none() | _dates, daw_code=st.none()
        | st.integers(0, 9)), _uuids),
    st.builds(ob.LabelPrintRequest, _uuids, st.booleans(), st.none() | _text, _uuids))


@settings(max_examples=200, deadline=None)
@given(_requests)
def test_every_request_survives_the_outbox_unchanged(request):
    text = ob.encode(request)
    back = ob.decode(text)
    assert back == request
    assert type(back) is type(request)
    acks = getattr(request, "acknowledgements", {})
    assert list(acks) == list(getattr(back, "acknowledgements", {}))  # in their order
    for key, a in acks.items():
        b = back.acknowledgements[key]
        assert type(a) is type(b)  # an Override stays one, and text stays text
        if isinstance(a, Override):
            assert type(a.reason) is type(b.reason)


def test_an_unknown_type_is_neither_queued_nor_rebuilt():
    with pytest.raises(TypeError):
        ob.encode(dt.timedelta(1))
    with pytest.raises(ValueError):
        ob.decode('{"$dc":"os.system","fields":{}}')
    with pytest.raises(ValueError):
        ob.decode('{"$enum":"subprocess.Popen","value":"x"}')
    assert ob.decode(ob.encode(decimal.Decimal("1.10"))) == decimal.Decimal("1.10")
    moment = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    assert ob.decode(ob.encode(moment)) == moment


# ------------------------------------------------------------------ the setting


def test_the_offline_setting_comes_from_the_site_file_and_it_can_be_locked(tmp_path):
    from getmeds_desktop import config
    from getmeds_desktop.errors import ConfigError

    site = tmp_path / "site" / "getmeds.toml"
    site.parent.mkdir()
    site.write_text('locked = ["offline"]\n[offline]\nkinds = ["dispense", "receive"]\n',
                    encoding="utf-8")
    user = tmp_path / "user.toml"
    user.write_text("[offline]\ncontrolled_dispense = true\n", encoding="utf-8")
    policy = OfflinePolicy.from_setting(config.load_config([site], user).offline)
    assert policy == OfflinePolicy(frozenset({Kind.DISPENSE, Kind.RECEIVE}), False)
    # without a site file the defaults hold, and a user may only say what they are
    assert OfflinePolicy.from_setting(config.load_config([], tmp_path / "none").offline) \
        == OfflinePolicy()
    assert OfflinePolicy().kinds == frozenset(Kind) and not OfflinePolicy().controlled_dispense
    for bad, words in (({"kinds": ["dispense", "refund"]}, "unknown kind"),
                       ({"kinds": "dispense"}, "must be a list"),
                       ({"controlled_dispense": "yes"}, "true or false"),
                       ({"controled_dispense": True}, "no setting controled_dispense")):
        with pytest.raises(ConfigError, match=words):
            OfflinePolicy.from_setting(bad)


# ------------------------------------------------------------------ set-up


@pytest.fixture
def pharmacy(pg_fresh_db, _backends):
    """The server (PostgreSQL) with a world in it, and a function that makes a
    workstation's replica (SQLite) of what the server holds now."""
    server = db.make_engine(pg_fresh_db, pool_size=2)
    world = build_world(db.session_factory(server))
    made = []

    def replica() -> Outbox:
        engine = copy_to_replica(server, _backends["sqlite"].new_database())
        made.append(engine)
        return Outbox(engine)

    yield world, server, replica
    for engine in made:
        engine.dispose()
    server.dispose()


def _req(rx_id, **kw) -> DispenseRequest:
    kw.setdefault("no_scan_reason", NO_SCAN)
    return DispenseRequest(rx_id, uuid.uuid4(), **kw)


def _stock(engine, product_id) -> int:
    return inventory.on_hand(db.session_factory(engine), product_id)


def _actor_for(world: World):
    people = {a.staff_id: a for a in (world.pharmacist, world.pharmacist2, world.clerk,
                                      world.technician, world.doctor, world.admin)}
    return people.get


def _count(engine, model, column, value) -> int:
    with engine.connect() as conn:
        return conn.scalar(sa.select(sa.func.count()).select_from(model).where(column == value))


# ------------------------------------------------------------------ offline writes


def test_an_offline_fill_runs_the_screening_and_stock_rules_on_the_replica(pharmacy):
    world, server, replica = pharmacy
    p = world.product("Amoxicillin", classes=("Penicillin-class Antibacterial [EPC]",))
    world.receive(p.id, 40)
    allergic = world.patient(allergies=("Penicillin",))
    rx = world.rx(allergic.id, p.id, quantity=30)
    big = world.rx(world.patient().id, p.id, quantity=50)
    box = replica()
    local = db.session_factory(box.engine)
    with pytest.raises(WarningsNeedAcknowledgement, match="allergy to Penicillin"):
        box.run(Kind.DISPENSE, world.pharmacist, _req(rx.id))
    with pytest.raises(InsufficientStock):
        box.run(Kind.DISPENSE, world.pharmacist, _req(big.id))
    assert box.state().waiting == 0  # a refused write is never queued
    key = dispensing.preview_dispense(local, world.pharmacist, rx.id).warnings[0].key
    request = _req(rx.id, acknowledgements={key: Override(
        OverrideReason.PRESCRIBER_CONSULTED, "Prescriber confirmed: rash only, tolerated")})
    before = clock.now()
    queued = box.run(Kind.DISPENSE, world.pharmacist, request)
    assert queued.result.acknowledged == (key,) and queued.result.quantity == 30
    assert _stock(box.engine, p.id) == 10  # the replica's ledger took it
    assert _stock(server, p.id) == 40  # the server knows nothing yet
    state = box.state()
    assert state.waiting == 1 and state.needs_attention == 0
    assert before <= state.oldest_waiting <= clock.now()
    (entry,) = box.entries()
    assert entry.request_id == request.request_id and entry.local_id == queued.result.dispense_id
    # queued as handed out: exactly that quantity, never a partial fill of it,
    # and when it was handed out
    note = ob.offline_note(queued.result.dispensed_at)
    assert ob.decode(entry.request) == dataclasses.replace(
        request, quantity=30, notes=note, handed_out_at=queued.result.dispensed_at)
    # the offline fill's rows: the replica replaces them by the server's later
    local_rows = ob._changes_of(entry.local_rows)
    assert queued.result.dispense_id in local_rows["dispenses"]
    assert rx.id in local_rows["prescriptions"]
    assert queued.changes.tables["dispenses"] == {queued.result.dispense_id}

    result = box.replay(db.session_factory(server), _actor_for(world))
    assert (result.sent, result.attention, result.waiting) == (1, 0, 0)
    assert _stock(server, p.id) == 10
    assert _count(server, Dispense, Dispense.request_id, request.request_id) == 1
    with server.connect() as conn:
        assert conn.scalar(sa.select(Dispense.notes).where(
            Dispense.request_id == request.request_id)) == note
        # recorded as of when it was handed out, not when it reached the server
        recorded = conn.scalar(sa.select(Dispense.dispensed_at).where(
            Dispense.request_id == request.request_id))
    assert abs(recorded - queued.result.dispensed_at) < dt.timedelta(seconds=1)
    assert queued.result.dispense_id in result.refetch["dispenses"]  # the local row
    (server_dispense,) = result.refetch["dispenses"] - {queued.result.dispense_id}
    assert box.entries()[0].server_id == server_dispense


def test_what_the_settings_do_not_allow_offline_is_refused_and_never_queued(pharmacy):
    world, server, replica = pharmacy
    ordinary = world.product("Lisinopril")
    controlled = world.product("Hydrocodone", schedule=Schedule.II)
    for p in (ordinary, controlled):
        world.receive(p.id, 50)
    pat = world.patient()
    rx_ordinary = world.rx(pat.id, ordinary.id, quantity=10)
    rx_controlled = world.rx(pat.id, controlled.id, quantity=10)
    box = replica()
    with pytest.raises(OfflineRefused, match="controlled substance offline"):
        box.run(Kind.DISPENSE, world.pharmacist, _req(rx_controlled.id))
    box.policy = OfflinePolicy.from_setting({"kinds": ["dispense"]})
    receipt = inventory.ReceiptRequest(ordinary.id, "L-OFF", clock.today() + dt.timedelta(200),
                                       10, "2.50")
    with pytest.raises(OfflineRefused, match="receiving stock while offline"):
        box.run(Kind.RECEIVE, world.pharmacist, receipt)
    assert box.entries() == []
    assert _stock(box.engine, ordinary.id) == 50  # nothing was written either
    box.run(Kind.DISPENSE, world.pharmacist, _req(rx_ordinary.id))
    # the separate setting lets a controlled substance be dispensed offline
    box.policy = OfflinePolicy.from_setting({"controlled_dispense": True})
    fill = box.run(Kind.DISPENSE, world.pharmacist, _req(rx_controlled.id))
    assert [e.kind for e in box.entries()] == ["dispense", "dispense"]
    # replayed, the controlled fill is in the server's Schedule II register
    assert box.replay(db.session_factory(server), _actor_for(world)).sent == 2
    with server.connect() as conn:
        entry = conn.execute(sa.select(ControlledRegisterEntry.register,
                                       ControlledRegisterEntry.quantity,
                                       ControlledRegisterEntry.balance_after)
                             .join(StockMovement,
                                   StockMovement.id == ControlledRegisterEntry.movement_id)
                             .join(Dispense, Dispense.id == StockMovement.dispense_id)
                             .where(Dispense.request_id == fill.request_id)).one()
    assert tuple(entry) == ("II", -10, 40)
    assert ledger.verify(db.session_factory(server)).ok
    assert OfflinePolicy.from_setting(OfflinePolicy().to_setting()) == OfflinePolicy()


# ------------------------------------------------------------------ replay


def _busy_offline_day(world: World):
    """What the server holds before the link drops: a product in stock, a
    patient and a prescription with refills."""
    p = world.product("Metformin")
    world.receive(p.id, 100)
    known = world.patient("Known")
    rx_known = world.rx(known.id, p.id, quantity=20, refills=3)
    return p, known, rx_known


def _offline_writes(world: World, box: Outbox, p, known, rx_known):
    local = db.session_factory(box.engine)
    reqs: list[tuple[Kind, object]] = []

    def run(kind, actor, request):
        reqs.append((kind, request))
        return box.run(kind, actor, request).result

    run(Kind.RECEIVE, world.clerk, inventory.ReceiptRequest(
        p.id, "OFF-1", clock.today() + dt.timedelta(300), 60, decimal.Decimal("0.35"),
        supplier_id=world.supplier_id))
    new = run(Kind.PATIENT_CREATE, world.clerk, ob.PatientCreate(PatientDraft(
        "Olive", "Offline", dt.date(1971, 3, 4), no_known_allergies=True), another_person=True))
    current = patients.get_patient(local, world.clerk, known.id)
    run(Kind.PATIENT_UPDATE, world.clerk, ob.PatientUpdate(known.id, PatientDraft(
        current.first_name, current.last_name, current.date_of_birth, phone="555-0100",
        no_known_allergies=True), expected_version=current.version))
    rx_new = run(Kind.PRESCRIPTION_CREATE, world.pharmacist, ob.PrescriptionCreate(
        PrescriptionDraft(new.id, world.prescriber_id, p.id, "Take 1 daily", 30, 30,
                          date_written=clock.today())))
    run(Kind.DISPENSE, world.pharmacist, _req(rx_known.id))
    run(Kind.DISPENSE, world.technician, _req(rx_new.id))
    return reqs


def _exactly_once_on(server, world: World, reqs) -> None:
    for kind, r in reqs:
        if kind is Kind.DISPENSE:
            assert _count(server, Dispense, Dispense.request_id, r.request_id) == 1, r
        elif kind is Kind.RECEIVE:
            assert _count(server, StockMovement, StockMovement.request_id, r.request_id) == 1
        elif kind is Kind.PATIENT_CREATE:
            assert _count(server, Patient, Patient.id, r.patient_id) == 1
        elif kind is Kind.PATIENT_UPDATE:
            assert _count(server, RequestLog, RequestLog.request_id, r.request_id) == 1
        else:
            assert _count(server, Prescription, Prescription.request_id, r.request_id) == 1
    check = ledger.verify(db.session_factory(server))
    assert check.ok, check


def test_replay_puts_every_offline_write_on_the_server_exactly_once(pharmacy):
    world, server, replica = pharmacy
    p, known, rx_known = _busy_offline_day(world)
    box = replica()
    reqs = _offline_writes(world, box, p, known, rx_known)
    progress: list[tuple[int, int]] = []
    refetched: list[dict] = []
    result = box.replay(db.session_factory(server), _actor_for(world),
                        lambda done, total: progress.append((done, total)),
                        refetch=refetched.append)
    assert (result.sent, result.attention, result.waiting, result.stopped) == (6, 0, 0, None)
    assert progress == [(i, 6) for i in range(7)]
    assert len(refetched) == 6
    _exactly_once_on(server, world, reqs)
    assert _stock(server, p.id) == 100 + 60 - 20 - 30
    # the fill of the prescription entered offline went to the server's prescription
    rx_entry = next(e for e in box.entries() if e.kind == Kind.PRESCRIPTION_CREATE.value)
    assert rx_entry.server_id != rx_entry.local_id
    with server.connect() as conn:
        assert conn.scalar(sa.select(Dispense.prescription_id).where(
            Dispense.request_id == reqs[-1][1].request_id)) == rx_entry.server_id
        assert conn.scalar(sa.select(Patient.phone).where(Patient.id == known.id)) == "555-0100"
    assert box.state().waiting == 0
    # A workstation that died after the server answered and before it marked the
    # entries done sends them all again: the server answers with the first results.
    with box.engine.begin() as conn:
        conn.execute(sa.update(ob.outbox_entries).values(status="waiting"))
    again = box.replay(db.session_factory(server), _actor_for(world))
    assert (again.sent, again.attention) == (6, 0)
    _exactly_once_on(server, world, reqs)
    assert _stock(server, p.id) == 110


class _Cutter:
    """Terminates the replay's server connection (pg_terminate_backend from
    another connection) just before its ``at``-th statement, or just after it
    (``only``: counting only the statements that start so)."""

    def __init__(self, engine, url: str, at: int, after: bool, only: str = "") -> None:
        self.engine, self.at, self.after, self.seen, self.cuts = engine, at, after, 0, 0
        self.only = only
        u = sa.engine.make_url(url)
        self.conninfo = dict(host=u.host, port=u.port or 5432, user=u.username,
                             dbname=u.database, autocommit=True)
        sa.event.listen(engine, "before_cursor_execute", self._before)
        sa.event.listen(engine, "after_cursor_execute", self._after)

    def _cut(self, conn) -> None:
        pid = conn.connection.dbapi_connection.info.backend_pid
        with psycopg.connect(**self.conninfo) as c:
            c.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,))
        self.cuts += 1

    def _before(self, conn, _cursor, stmt, *_a) -> None:
        if not stmt.startswith(self.only):
            return
        self.seen += 1
        if self.seen == self.at and not self.after:
            self._cut(conn)

    def _after(self, conn, _cursor, stmt, *_a) -> None:
        if stmt.startswith(self.only) and self.seen == self.at and self.after:
            self._cut(conn)

    def remove(self) -> None:
        sa.event.remove(self.engine, "before_cursor_execute", self._before)
        sa.event.remove(self.engine, "after_cursor_execute", self._after)


@pytest.mark.parametrize("seed", range(6))
def test_the_link_cut_mid_replay_at_random_moments_still_gives_exactly_once(
        pharmacy, pg_fresh_db, seed):
    world, server, replica = pharmacy
    p, known, rx_known = _busy_offline_day(world)
    box = replica()
    reqs = _offline_writes(world, box, p, known, rx_known)
    rng = random.Random(seed)
    link = db.make_engine(pg_fresh_db, pool_size=1)  # the workstation's link to the server
    link_sf = db.session_factory(link)
    rounds = cuts = 0
    try:
        while box.state().waiting and rounds < 30:
            rounds += 1
            # cut somewhere in the next ~40 statements, before or after one runs
            cutter = _Cutter(link, pg_fresh_db, rng.randint(1, 40), rng.random() < 0.5)
            try:
                result = box.replay(link_sf, _actor_for(world))
            finally:
                cutter.remove()
            cuts += cutter.cuts
            assert result.attention == 0, box.needs_attention()
            if cutter.cuts:
                assert result.lost_connection or result.waiting == 0
            assert not result.stopped or result.lost_connection, result.stopped
    finally:
        link.dispose()
    assert box.state().waiting == 0 and cuts >= 1
    _exactly_once_on(server, world, reqs)
    assert _stock(server, p.id) == 110
    assert sum(e.attempts for e in box.entries()) > len(reqs)  # something was sent again


@pytest.mark.parametrize("seed", range(3))
def test_the_cable_pulled_mid_replay_then_plugged_back_still_gives_exactly_once(
        pharmacy, pg_fresh_db, seed):
    """The link goes through a proxy with 20 ms round trips; the proxy is shut
    (every connection dropped, as a pulled cable or a router restart) at a
    random moment of the replay, then started again on the same address."""
    world, server, replica = pharmacy
    p, known, rx_known = _busy_offline_day(world)
    box = replica()
    reqs = _offline_writes(world, box, p, known, rx_known)
    rng = random.Random(seed)
    u = sa.engine.make_url(pg_fresh_db)
    port = 0
    rounds = pulls = 0
    link = None
    try:
        while box.state().waiting and rounds < 20:
            rounds += 1
            proxy = DelayProxy(u.host or "127.0.0.1", u.port or 5432, rtt_ms=20, port=port)
            proxy.__enter__()
            port = proxy.port
            if link is None:
                link = db.make_engine(through(pg_fresh_db, proxy), pool_size=1)
            shut = threading.Lock()

            def pull(proxy=proxy, shut=shut) -> None:
                if shut.acquire(blocking=False):  # the proxy is shut once
                    proxy.__exit__(None, None, None)

            # pulled in the first rounds only, so that the run always ends
            timer = threading.Timer(rng.uniform(0.05, 0.8) if rounds <= 4 else 3600, pull)
            timer.start()
            try:
                result = box.replay(db.session_factory(link), _actor_for(world))
            finally:
                timer.cancel()
                timer.join()
                pull()
            pulls += result.lost_connection
            assert result.attention == 0, box.needs_attention()
            assert not result.stopped or result.lost_connection, result.stopped
    finally:
        if link is not None:
            link.dispose()
    assert box.state().waiting == 0 and pulls >= 1
    _exactly_once_on(server, world, reqs)
    assert _stock(server, p.id) == 110


_CHILD = """
import sys
from getmeds_desktop import db
from getmeds_desktop.sync import outbox
server = db.session_factory(db.make_engine(sys.argv[2]))
box = outbox.Outbox(db.make_engine(sys.argv[1]))
box.replay(server, outbox.server_actors(server),
           lambda done, total: print(done, flush=True))
"""


@pytest.mark.parametrize("seed", range(4))
def test_a_workstation_killed_mid_replay_leaves_nothing_doubled(
        pharmacy, pg_fresh_db, seed, tmp_path):
    """The replay runs in another process, killed (SIGKILL: no clean-up at
    all) at a random moment; this process then replays what is left."""
    world, server, replica = pharmacy
    p, known, rx_known = _busy_offline_day(world)
    box = replica()
    reqs = _offline_writes(world, box, p, known, rx_known)
    replica_url = box.engine.url.render_as_string(hide_password=False)
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    child = subprocess.Popen([sys.executable, "-c", _CHILD, replica_url, pg_fresh_db],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    assert child.stdout is not None
    rng = random.Random(seed)
    at = rng.randint(0, len(reqs) - 1)
    while child.stdout.readline().strip() != str(at):  # entry ``at`` is being sent
        pass
    time.sleep(rng.uniform(0.0, 0.012))
    child.kill()
    child.wait(10)
    child.stdout.close()
    child.stderr.close()
    left = box.state().waiting
    result = box.replay(db.session_factory(server), ob.server_actors(world.sf))
    assert (result.sent, result.attention, result.waiting) == (left, 0, 0)
    _exactly_once_on(server, world, reqs)
    assert _stock(server, p.id) == 110


def test_the_link_cut_right_after_a_fill_s_commit_was_sent_gives_exactly_once(
        pharmacy, pg_fresh_db):
    """The link is cut right after a fill's COMMIT went out (the first
    pipelined COMMIT: entry 5). In pipeline mode the server may or may not
    have run it before its backend is terminated: either way the workstation
    never hears the answer, the entry stays waiting, and the next replay makes
    it exist once (answered by its request id when the server has it).
    The committed-then-lost case of every kind of write: test_any_write_committed_..."""
    world, server, replica = pharmacy
    p, known, rx_known = _busy_offline_day(world)
    box = replica()
    reqs = _offline_writes(world, box, p, known, rx_known)
    link = db.make_engine(pg_fresh_db, pool_size=1)
    cutter = _Cutter(link, pg_fresh_db, 1, True, only="COMMIT")
    try:
        first = box.replay(db.session_factory(link), _actor_for(world))
    finally:
        cutter.remove()
    assert cutter.cuts == 1 and first.lost_connection and first.sent == 4
    assert first.waiting == 2
    kind, fill = reqs[4]
    assert kind is Kind.DISPENSE
    assert _count(server, Dispense, Dispense.request_id, fill.request_id) in (0, 1)
    assert box.entries(["waiting"])[0].request_id == fill.request_id
    try:
        second = box.replay(db.session_factory(link), _actor_for(world))
    finally:
        link.dispose()
    assert (second.sent, second.waiting) == (2, 0)
    _exactly_once_on(server, world, reqs)
    assert _stock(server, p.id) == 110


def test_an_offline_partial_fill_is_repeated_as_handed_out_or_not_at_all(pharmacy):
    """20 of 30 were handed out offline (a partial fill). The server repeats
    exactly 20, owing 10 as the replica does; with less than 20 left on the
    server it refuses, rather than record a smaller fill than the patient has."""
    world, server, replica = pharmacy
    p = world.product("Gabapentin")
    world.receive(p.id, 40)
    rx = world.rx(world.patient("Pia").id, p.id, quantity=30)
    rx2 = world.rx(world.patient("Rob").id, p.id, quantity=30)
    rx_other = world.rx(world.patient("Sam").id, p.id, quantity=25)
    counter = replica()
    # the replica has 20 left (a fill written straight into it: only its stock matters)
    dispensing.dispense(db.session_factory(counter.engine), world.pharmacist,
                        _req(rx_other.id, quantity=20))
    first = counter.run(Kind.DISPENSE, world.pharmacist, _req(rx.id, allow_partial=True))
    assert (first.result.quantity, first.result.owed_after) == (20, 10)
    result = counter.replay(db.session_factory(server), _actor_for(world))
    assert result.sent == 1
    with server.connect() as conn:
        assert conn.execute(sa.select(Dispense.quantity, Dispense.owed_after).where(
            Dispense.request_id == first.request_id)).one() == (20, 10)
    assert _stock(server, p.id) == 20
    # another workstation takes 15 on the server; this one hands out 20 offline
    other = replica()
    dispensing.dispense(db.session_factory(server), world.pharmacist,
                        _req(rx_other.id, quantity=15))
    second = other.run(Kind.DISPENSE, world.pharmacist, _req(rx2.id, allow_partial=True))
    assert second.result.quantity == 20
    refused = other.replay(db.session_factory(server), _actor_for(world))
    assert (refused.sent, refused.attention) == (0, 1)
    assert other.needs_attention()[0].error == "InsufficientStock"
    assert _count(server, Dispense, Dispense.request_id, second.request_id) == 0
    assert _stock(server, p.id) == 5 and ledger.verify(db.session_factory(server)).ok


@pytest.mark.parametrize("position", range(6))
def test_any_write_committed_on_the_server_whose_answer_was_lost_is_answered_again(
        pharmacy, monkeypatch, position):
    """Every kind of write (receipt, new patient, patient edit, new prescription,
    fills): the server commits it, then the connection is lost before the
    workstation hears the answer (raised where the unit of work hands on what
    it committed). The entry waits; the next replay is answered by its request
    id."""
    world, server, replica = pharmacy
    p, known, rx_known = _busy_offline_day(world)
    box = replica()
    reqs = _offline_writes(world, box, p, known, rx_known)
    calls = [0]
    real = uow._publish

    def lost_after_commit(changes):
        calls[0] += 1
        if calls[0] == position + 1:
            raise sa.exc.OperationalError("COMMIT", {}, Exception("server closed the "
                                          "connection unexpectedly"),
                                          connection_invalidated=True)
        real(changes)

    monkeypatch.setattr(uow, "_publish", lost_after_commit)
    first = box.replay(db.session_factory(server), _actor_for(world))
    monkeypatch.undo()
    assert first.lost_connection and first.sent == position
    kind, request = reqs[position]
    assert _on_server(server, kind, request) == 1  # committed, though the answer was lost
    assert box.entries(["waiting"])[0].request_id == request.request_id
    second = box.replay(db.session_factory(server), _actor_for(world))
    assert (second.sent, second.attention, second.waiting) == (len(reqs) - position, 0, 0)
    _exactly_once_on(server, world, reqs)
    assert _stock(server, p.id) == 110


def test_two_workstations_offline_at_once_sell_the_last_units_once(pharmacy):
    world, server, replica = pharmacy
    p = world.product("Atorvastatin")
    world.receive(p.id, 30)
    rx_a = world.rx(world.patient("Amy").id, p.id, quantity=30)
    rx_b = world.rx(world.patient("Ben").id, p.id, quantity=30)
    counter_a, counter_b = replica(), replica()
    fill_a = counter_a.run(Kind.DISPENSE, world.pharmacist, _req(rx_a.id))
    fill_b = counter_b.run(Kind.DISPENSE, world.pharmacist2, _req(rx_b.id))
    assert fill_a.result.quantity == fill_b.result.quantity == 30  # both worked locally
    assert _stock(counter_a.engine, p.id) == _stock(counter_b.engine, p.id) == 0
    done_a = counter_a.replay(db.session_factory(server), _actor_for(world))
    done_b = counter_b.replay(db.session_factory(server), _actor_for(world))
    assert (done_a.sent, done_a.attention) == (1, 0)
    assert (done_b.sent, done_b.attention, done_b.waiting) == (0, 1, 0)
    (item,) = counter_b.needs_attention()
    assert item.entry_id == fill_b.entry_id and item.error == "InsufficientStock"
    assert "Stock discrepancy" in item.reason
    assert item.actions[0].code == "count_shelf"
    assert item.request == ob.decode(counter_b.entries()[0].request)  # nothing lost
    assert counter_b.state().needs_attention == 1
    # the refused fill's local rows go back to the server's (where it does not exist)
    assert fill_b.result.dispense_id in done_b.refetch["dispenses"]
    with server.connect() as conn:
        assert conn.scalar(sa.select(sa.func.min(StockLot.on_hand)).where(
            StockLot.product_id == p.id)) == 0
    assert _stock(server, p.id) == 0
    assert ledger.verify(db.session_factory(server)).ok
    # the shelf is counted and the delivery received: sent again, it is filled once
    world.receive(p.id, 30)
    counter_b.resolve(item.entry_id, "retry", world.pharmacist2)
    assert counter_b.state().waiting == 1 and counter_b.needs_attention() == []
    again = counter_b.replay(db.session_factory(server), _actor_for(world))
    assert (again.sent, again.attention) == (1, 0)
    assert _count(server, Dispense, Dispense.request_id, fill_b.request_id) == 1
    assert ledger.verify(db.session_factory(server)).ok


def test_two_workstations_replaying_at_the_same_moment_still_sell_the_last_units_once(
        pharmacy, pg_fresh_db):
    world, server, replica = pharmacy
    p = world.product("Rosuvastatin")
    world.receive(p.id, 20)
    rxs = [world.rx(world.patient().id, p.id, quantity=10) for _ in range(3)]
    counters = [replica(), replica()]
    # each workstation fills two of the three prescriptions (20 units each)
    plan = [(counters[0], rxs[0]), (counters[0], rxs[1]), (counters[1], rxs[2]),
            (counters[1], rxs[0])]
    fills = [box.run(Kind.DISPENSE, world.pharmacist, _req(rx.id)) for box, rx in plan]
    engines = [db.make_engine(pg_fresh_db, pool_size=1) for _ in counters]
    start = threading.Barrier(2)
    results: dict[int, ob.ReplayResult] = {}

    def replay(i: int) -> None:
        start.wait()
        results[i] = counters[i].replay(db.session_factory(engines[i]), _actor_for(world))

    threads = [threading.Thread(target=replay, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for engine in engines:
        engine.dispose()
    said = (results, [(i.error, i.reason) for box in counters for i in box.needs_attention()])
    assert sum(r.sent for r in results.values()) + sum(
        r.attention for r in results.values()) == 4, said
    assert all(r.waiting == 0 and r.stopped is None for r in results.values()), said
    on_server = [_count(server, Dispense, Dispense.request_id, f.request_id) for f in fills]
    assert sum(on_server) == sum(r.sent for r in results.values()) == 2  # 20 units: two fills
    assert _stock(server, p.id) == 0
    with server.connect() as conn:
        assert conn.scalar(sa.select(sa.func.min(StockLot.on_hand)).where(
            StockLot.product_id == p.id)) == 0
        # rxs[0] was filled offline twice, on two workstations: once at most on the server
        assert conn.scalar(sa.select(sa.func.count()).select_from(Dispense).where(
            Dispense.prescription_id == rxs[0].id)) <= 1
    refused = [i for box in counters for i in box.needs_attention()]
    assert len(refused) == 2
    assert {i.error for i in refused} <= {"InsufficientStock", "InvalidState"}, said
    assert ledger.verify(db.session_factory(server)).ok


def test_a_prescription_cancelled_on_the_server_meanwhile_needs_attention(pharmacy):
    world, server, replica = pharmacy
    p = world.product("Sertraline")
    world.receive(p.id, 100)
    rx = world.rx(world.patient().id, p.id, quantity=30)
    other = world.rx(world.patient().id, p.id, quantity=10)
    box = replica()
    cancelled = box.run(Kind.DISPENSE, world.pharmacist, _req(rx.id))
    fine = box.run(Kind.DISPENSE, world.pharmacist, _req(other.id))
    prescriptions.change_status(db.session_factory(server), world.pharmacist, rx.id,
                                RxAction.CANCEL, reason="prescriber stopped it")
    result = box.replay(db.session_factory(server), _actor_for(world))
    assert (result.sent, result.attention, result.waiting) == (1, 1, 0)  # the rest went on
    (item,) = box.needs_attention()
    assert item.entry_id == cancelled.entry_id and item.kind is Kind.DISPENSE
    assert "cancelled" in item.reason.lower()
    assert "contact_prescriber" in [a.code for a in item.actions]
    assert _count(server, Dispense, Dispense.request_id, cancelled.request_id) == 0
    assert _count(server, Dispense, Dispense.request_id, fine.request_id) == 1
    box.resolve(item.entry_id, "dismiss", world.pharmacist)
    assert box.state().needs_attention == 0 and box.state().waiting == 0
    assert [e.status for e in box.entries()] == ["dismissed", "done"]


def _gs1(lot: str) -> str:
    """A GS1 DataMatrix of NDC 12345-678-90 (as tests/unit/test_scan_at_fill.py)."""
    body = "0" + "03" + "1234567890"
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(body))
    return "01" + body + str((10 - total % 10) % 10) + f"10{lot}\x1d" + "21SERIAL42"


def test_a_scanned_lot_is_the_one_the_server_records_and_a_recall_meanwhile_is_flagged(
        pharmacy):
    world, server, replica = pharmacy
    p = world.product("Scanolol", ndc="12345-678-90")
    soon = world.receive(p.id, 10, lot="SOON", days=60)
    world.receive(p.id, 10, lot="LATER", days=300)
    rx_later = world.rx(world.patient().id, p.id, quantity=5)
    rx_soon = world.rx(world.patient().id, p.id, quantity=5)
    box = replica()
    later = box.run(Kind.DISPENSE, world.pharmacist, DispenseRequest(
        rx_later.id, uuid.uuid4(), scan=_gs1("LATER")))  # not the first to expire
    recalled = box.run(Kind.DISPENSE, world.pharmacist, DispenseRequest(
        rx_soon.id, uuid.uuid4(), scan=_gs1("SOON")))
    inventory.set_lot_status(world.sf, world.pharmacist, soon.lot_id, "recalled",
                             "Manufacturer recall 2026-17")
    result = box.replay(db.session_factory(server), _actor_for(world))
    assert (result.sent, result.attention) == (1, 1)
    with server.connect() as conn:
        assert conn.scalar(sa.select(StockLot.lot_number).join(
            StockMovement, StockMovement.lot_id == StockLot.id).join(
            Dispense, Dispense.id == StockMovement.dispense_id).where(
            Dispense.request_id == later.request_id)) == "LATER"
    (item,) = box.needs_attention()
    assert item.entry_id == recalled.entry_id and "recalled" in item.reason
    assert item.actions[0].code == "recalled_lot"


def test_a_later_fill_of_a_prescription_waits_behind_a_refused_one(pharmacy):
    """Fill 1 (a recalled lot) is refused; fill 2 of the same prescription would
    go through, but would become fill 1 on the server: it waits, saying why,
    and both go through in their order once the first is resolved."""
    world, server, replica = pharmacy
    p = world.product("Scanolol", ndc="12345-678-90")
    soon = world.receive(p.id, 10, lot="SOON", days=60)
    world.receive(p.id, 20, lot="LATER", days=300)
    rx = world.rx(world.patient().id, p.id, quantity=5, refills=2, days_supply=1)
    other = world.rx(world.patient().id, p.id, quantity=5)
    box = replica()
    local = db.session_factory(box.engine)
    first = box.run(Kind.DISPENSE, world.pharmacist, DispenseRequest(
        rx.id, uuid.uuid4(), scan=_gs1("SOON")))
    acks = {w.key: "prescriber_consulted: vacation supply agreed with the prescriber"
            for w in dispensing.preview_dispense(local, world.pharmacist, rx.id).warnings}
    second = box.run(Kind.DISPENSE, world.pharmacist, _req(rx.id, acknowledgements=acks))
    unrelated = box.run(Kind.DISPENSE, world.pharmacist, _req(other.id))
    inventory.set_lot_status(world.sf, world.pharmacist, soon.lot_id, "recalled",
                             "Manufacturer recall 2026-18")
    result = box.replay(db.session_factory(server), _actor_for(world))
    assert (result.sent, result.attention) == (1, 2)  # the unrelated fill went on
    refused, waits = box.needs_attention()
    assert (refused.entry_id, waits.entry_id) == (first.entry_id, second.entry_id)
    assert f"outbox entry {refused.seq}" in waits.reason
    assert _count(server, Dispense, Dispense.request_id, second.request_id) == 0
    assert _count(server, Dispense, Dispense.request_id, unrelated.request_id) == 1
    # the patient keeps the package (the recall says so); the fill is recorded
    # from a lot the server may dispense, and the second follows it
    box.resolve(refused.entry_id, "retry", world.pharmacist, request=dataclasses.replace(
        refused.request, scan=_gs1("LATER")))
    box.resolve(waits.entry_id, "retry", world.pharmacist)
    again = box.replay(db.session_factory(server), _actor_for(world))
    assert (again.sent, again.attention) == (2, 0)
    with server.connect() as conn:
        fills = conn.execute(sa.select(Dispense.request_id, Dispense.fill_number).where(
            Dispense.prescription_id == rx.id).order_by(Dispense.fill_number)).all()
    assert [tuple(f) for f in fills] == [(first.request_id, 0), (second.request_id, 1)]


def test_a_bug_stops_the_replay_with_the_entry_still_waiting(pharmacy, monkeypatch, caplog):
    world, server, replica = pharmacy
    p = world.product("Omeprazole")
    world.receive(p.id, 100)
    rx = world.rx(world.patient().id, p.id, quantity=10)
    rx2 = world.rx(world.patient().id, p.id, quantity=5)
    box = replica()
    box.run(Kind.DISPENSE, world.pharmacist, _req(rx.id))
    box.run(Kind.DISPENSE, world.pharmacist, _req(rx2.id))

    def broken(*_a, **_k):
        raise KeyError("a bug")

    monkeypatch.setattr(dispensing, "dispense", broken)
    result = box.replay(db.session_factory(server), _actor_for(world))
    assert (result.sent, result.attention, result.waiting) == (0, 0, 2)
    assert result.stopped and "error" in result.stopped
    assert "a bug stopped the replay" in caplog.text
    monkeypatch.undo()
    assert box.replay(db.session_factory(server), _actor_for(world)).sent == 2


def test_an_entry_whose_maker_is_not_signed_in_waits_in_its_place(pharmacy):
    world, server, replica = pharmacy
    p = world.product("Losartan")
    world.receive(p.id, 100)
    rx = world.rx(world.patient().id, p.id, quantity=10)
    box = replica()
    box.run(Kind.DISPENSE, world.technician, _req(rx.id))
    people = _actor_for(world)
    result = box.replay(db.session_factory(server),
                        lambda sid: None if sid == world.technician.staff_id else people(sid))
    assert result.sent == 0 and result.waiting == 1
    assert result.stopped and world.technician.username in result.stopped


def test_the_offline_write_and_its_entry_are_one_replica_transaction(pharmacy, monkeypatch):
    """A failure after the service wrote and before the entry is stored (a crash
    of the workstation) leaves neither: no fill on the replica the server would
    never hear of."""
    world, _server, replica = pharmacy
    p = world.product("Amlodipine")
    world.receive(p.id, 50)
    rx = world.rx(world.patient().id, p.id, quantity=20)
    box = replica()

    def crash(*_a, **_k):
        raise RuntimeError("power cut")

    monkeypatch.setattr(ob, "_summary", crash)  # runs after the service, before the entry
    with pytest.raises(RuntimeError):
        box.run(Kind.DISPENSE, world.pharmacist, _req(rx.id))
    assert _stock(box.engine, p.id) == 50
    assert _count(box.engine, Dispense, Dispense.prescription_id, rx.id) == 0
    assert box.entries() == []
    monkeypatch.undo()
    box.run(Kind.DISPENSE, world.pharmacist, _req(rx.id))
    assert _stock(box.engine, p.id) == 30 and len(box.entries()) == 1


def test_an_unreachable_server_leaves_everything_waiting(pharmacy):
    world, _server, replica = pharmacy
    p = world.product("Cetirizine")
    world.receive(p.id, 50)
    rx = world.rx(world.patient().id, p.id, quantity=20)
    box = replica()
    box.run(Kind.DISPENSE, world.pharmacist, _req(rx.id))
    nowhere = db.make_engine("postgresql://postgres@127.0.0.1:1/getmeds", connect_timeout=2)
    try:
        result = box.replay(db.session_factory(nowhere), _actor_for(world))
        # the staff members are looked up on the server too: not reachable either
        looked_up = box.replay(db.session_factory(nowhere),
                               ob.server_actors(db.session_factory(nowhere)))
    finally:
        nowhere.dispose()
    assert result.lost_connection and (result.sent, result.attention, result.waiting) == (0, 0, 1)
    assert box.state().waiting == 1 and box.entries()[0].attempts == 1
    assert looked_up.lost_connection and looked_up.waiting == 1


def test_refusals_say_why_and_what_resolves_them(pharmacy):
    """A patient edited on the server meanwhile (a stale edit: merge it), and
    an allergy recorded on the server after the offline fill (the server's
    screening finds it: a pharmacist reviews it)."""
    world, server, replica = pharmacy
    p = world.product("Amoxicillin", classes=("Penicillin-class Antibacterial [EPC]",))
    world.receive(p.id, 100)
    pat = world.patient("Paula")
    rx = world.rx(pat.id, p.id, quantity=30)
    box = replica()
    local = db.session_factory(box.engine)
    current = patients.get_patient(local, world.clerk, pat.id)
    box.run(Kind.PATIENT_UPDATE, world.clerk, ob.PatientUpdate(pat.id, PatientDraft(
        current.first_name, current.last_name, current.date_of_birth, phone="555-0199",
        no_known_allergies=True), expected_version=current.version))
    box.run(Kind.DISPENSE, world.pharmacist, _req(rx.id))
    on_server = patients.get_patient(db.session_factory(server), world.clerk, pat.id)
    patients.update_patient(db.session_factory(server), world.pharmacist, pat.id, PatientDraft(
        on_server.first_name, on_server.last_name, on_server.date_of_birth,
        allergies=[AllergyDraft("Penicillin", "hives", Severity.SEVERE)]),
        expected_version=on_server.version)
    result = box.replay(db.session_factory(server), _actor_for(world))
    assert (result.sent, result.attention) == (0, 2)
    edit, fill = box.needs_attention()
    assert edit.error == "StaleEdit" and "changed by" in edit.reason
    assert edit.actions[0].code == "merge_edit"
    assert fill.error == "WarningsNeedAcknowledgement" and "Penicillin" in fill.reason
    assert fill.actions[0].code == "review_warnings"
    # the replica takes the server's rows back, the offline fill's included
    assert pat.id in result.refetch["patients"] and rx.id in result.refetch["prescriptions"]
    with server.connect() as conn:
        assert conn.scalar(sa.select(Patient.phone).where(Patient.id == pat.id)) is None


def test_each_entry_is_replayed_over_its_makers_own_login(pharmacy, pg_fresh_db):
    """On PostgreSQL the database records who dispensed from the session's
    login: the replay sends each entry over its maker's login."""
    world, server, replica = pharmacy
    p = world.product("Levothyroxine")
    world.receive(p.id, 100)
    rx_a = world.rx(world.patient().id, p.id, quantity=10)
    rx_b = world.rx(world.patient().id, p.id, quantity=10)
    box = replica()
    a = box.run(Kind.DISPENSE, world.pharmacist, _req(rx_a.id))
    b = box.run(Kind.DISPENSE, world.technician, _req(rx_b.id))
    engines = {}

    def login(actor):
        if actor.username not in engines:
            engines[actor.username] = db.make_engine(pg_fresh_db, username=actor.username,
                                                     password=PASSWORD,
                                                     pool_size=1)
        return db.session_factory(engines[actor.username])

    try:
        result = box.replay(login, _actor_for(world))
    finally:
        for engine in engines.values():
            engine.dispose()
    assert result.sent == 2 and sorted(engines) == sorted(
        [world.pharmacist.username, world.technician.username])
    with server.connect() as conn:
        by = dict(conn.execute(sa.select(Dispense.request_id, Dispense.pharmacist_id).where(
            Dispense.request_id.in_([a.request_id, b.request_id]))).all())
    assert by == {a.request_id: world.pharmacist.staff_id,
                  b.request_id: world.technician.staff_id}


def test_refetch_rows_keep_any_row_of_a_table():
    rows: dict[str, set[uuid.UUID]] = {}
    one, two = uuid.uuid4(), uuid.uuid4()
    ob._merge(rows, {"patients": {one}, "settings": set()})
    ob._merge(rows, {"patients": {two}, "settings": {one}})
    assert rows == {"patients": {one, two}, "settings": set()}


def test_a_refused_chain_waits_for_its_first_link_and_an_amended_retry_goes_through(pharmacy):
    """A patient registered offline looks like one the server has (registered
    meanwhile at another workstation): refused. The prescription for them and
    its fill are refused too, saying why; once the pharmacist confirms another
    person (an amended retry, same request id), all three go through."""
    world, server, replica = pharmacy
    p = world.product("Prednisone")
    world.receive(p.id, 100)
    box = replica()
    draft = PatientDraft("Gina", "Twin", dt.date(1980, 1, 2), no_known_allergies=True)
    create = ob.PatientCreate(draft)
    box.run(Kind.PATIENT_CREATE, world.clerk, create)
    rx = box.run(Kind.PRESCRIPTION_CREATE, world.pharmacist, ob.PrescriptionCreate(
        PrescriptionDraft(create.patient_id, world.prescriber_id, p.id, "Take 1 daily", 10, 10,
                          date_written=clock.today()))).result
    fill = box.run(Kind.DISPENSE, world.pharmacist, _req(rx.id))
    patients.create_patient(world.sf, world.clerk, draft)  # the same name and birthday
    first = box.replay(db.session_factory(server), _actor_for(world))
    assert (first.sent, first.attention, first.waiting) == (0, 3, 0)
    person, script, filled = box.needs_attention()
    assert person.error == "PossibleDuplicate" and person.actions[0].code == "merge_patients"
    assert script.error == "InvalidState"
    assert f"patient entered offline (outbox entry {person.seq})" in script.reason
    assert filled.error == "InvalidState" and "prescription entered offline" in filled.reason
    with pytest.raises(ValidationError, match="same request id"):
        box.resolve(person.entry_id, "retry", world.clerk,
                    request=dataclasses.replace(create, patient_id=uuid.uuid4()))
    with pytest.raises(ValidationError, match="quantity that was handed out"):
        box.resolve(filled.entry_id, "retry", world.pharmacist,
                    request=dataclasses.replace(filled.request, quantity=1))
    box.resolve(person.entry_id, "retry", world.clerk,
                request=dataclasses.replace(create, another_person=True))
    box.resolve(script.entry_id, "retry", world.pharmacist)
    box.resolve(filled.entry_id, "retry", world.pharmacist)
    again = box.replay(db.session_factory(server), _actor_for(world))
    assert (again.sent, again.attention, again.waiting) == (3, 0, 0)
    assert _count(server, Patient, Patient.id, create.patient_id) == 1
    assert _count(server, Dispense, Dispense.request_id, fill.request_id) == 1
    assert ledger.verify(db.session_factory(server)).ok


def _on_server(server, kind: Kind, request) -> int:
    if kind is Kind.DISPENSE:
        return _count(server, Dispense, Dispense.request_id, request.request_id)
    if kind is Kind.RECEIVE:
        return _count(server, StockMovement, StockMovement.request_id, request.request_id)
    if kind is Kind.PATIENT_CREATE:
        return _count(server, Patient, Patient.id, request.patient_id)
    if kind is Kind.PATIENT_UPDATE:
        return _count(server, RequestLog, RequestLog.request_id, request.request_id)
    return _count(server, Prescription, Prescription.request_id, request.request_id)


@pytest.mark.parametrize("seed", range(4))
def test_a_random_day_offline_on_two_workstations_ends_with_each_write_once_or_listed(
        pharmacy, pg_fresh_db, seed):
    """Random offline work on two workstations (fills, partial fills, receipts,
    patient edits, new prescriptions and their fills), random work on the
    server meanwhile (fills, a cancellation), then both replay, the link cut at
    random moments. At the end every queued write is on the server exactly
    once or in Needs attention and not on the server at all; nothing waits,
    nothing is lost, the ledger and register verify and no lot is below zero."""
    world, server, replica = pharmacy
    rng = random.Random(seed)
    products = [world.product("Alphamab"), world.product("Betacillin")]
    for p in products:
        world.receive(p.id, rng.choice((15, 30)))
    people = [world.patient(f"P{i}") for i in range(3)]
    rxs = [world.rx(person.id, p.id, quantity=5, refills=6, days_supply=1)
           for person in people for p in products]
    boxes = [replica(), replica()]
    queued: list[tuple[Outbox, Kind, object, ob.Queued]] = []
    for _ in range(14):
        box = rng.choice(boxes)
        local = db.session_factory(box.engine)
        choice = rng.random()
        actor = rng.choice((world.pharmacist, world.pharmacist2))
        try:
            if choice < 0.5:
                kind, req = Kind.DISPENSE, _req(rng.choice(rxs).id,
                                               allow_partial=rng.random() < 0.3)
            elif choice < 0.65:
                kind, req = Kind.RECEIVE, inventory.ReceiptRequest(
                    rng.choice(products).id, f"R{rng.randint(1, 3)}",
                    clock.today() + dt.timedelta(400), rng.randint(1, 10), "1.00")
            elif choice < 0.8:
                pid = rng.choice(people).id
                cur = patients.get_patient(local, world.clerk, pid)
                kind, req = Kind.PATIENT_UPDATE, ob.PatientUpdate(pid, PatientDraft(
                    cur.first_name, cur.last_name, cur.date_of_birth,
                    phone=f"555-01{rng.randint(10, 99)}", no_known_allergies=True),
                    expected_version=cur.version)
            else:
                kind, req = Kind.PRESCRIPTION_CREATE, ob.PrescriptionCreate(PrescriptionDraft(
                    rng.choice(people).id, world.prescriber_id, rng.choice(products).id,
                    "Take 1 daily", 5, 1, refills_authorized=2, date_written=clock.today()))
            done = box.run(kind, actor, req)
        except DomainError:
            continue  # refused on the replica: never queued
        queued.append((box, kind, box.entries()[-1], done))
        if kind is Kind.PRESCRIPTION_CREATE and rng.random() < 0.7:
            fill = _req(done.result.id)
            try:
                queued.append((box, Kind.DISPENSE, None,
                               box.run(Kind.DISPENSE, actor, fill)))
            except DomainError:
                pass
    # the server's own day meanwhile
    for rx in rng.sample(rxs, 2):
        try:
            dispensing.dispense(world.sf, world.pharmacist, _req(rx.id))
        except DomainError:
            pass
    prescriptions.change_status(world.sf, world.pharmacist, rng.choice(rxs).id,
                                RxAction.CANCEL, reason="stopped by the prescriber")
    link = db.make_engine(pg_fresh_db, pool_size=1)
    try:
        for _round in range(40):
            waiting = [b for b in boxes if b.state().waiting]
            if not waiting:
                break
            box = rng.choice(waiting)
            cutter = _Cutter(link, pg_fresh_db, rng.randint(1, 60), rng.random() < 0.5)
            try:
                result = box.replay(db.session_factory(link), _actor_for(world))
            finally:
                cutter.remove()
            assert not result.stopped or result.lost_connection, result.stopped
    finally:
        link.dispose()
    assert all(b.state().waiting == 0 for b in boxes)
    assert queued
    for box in boxes:
        listed = {i.entry_id: i for i in box.needs_attention()}
        for entry in box.entries():
            kind = Kind(entry.kind)
            request = ob.decode(entry.request)
            here = _on_server(server, kind, request)
            if entry.status == "done":
                assert here == 1, (kind, request)
            else:
                assert entry.status == "attention" and entry.id in listed
                assert listed[entry.id].reason and listed[entry.id].actions
                assert here == 0, (kind, request, listed[entry.id].reason)
    check = ledger.verify(db.session_factory(server))
    assert check.ok, check
    with server.connect() as conn:
        assert conn.scalar(sa.select(sa.func.min(StockLot.on_hand))) >= 0


def test_a_fill_is_queued_with_its_quantity_and_time_the_pharmacist_s_notes_first():
    at = dt.datetime(2026, 3, 4, 15, 30, tzinfo=dt.UTC)
    done = dispensing.DispenseResult(
        dispense_id=uuid.uuid4(), prescription_id=uuid.uuid4(), rx_number=7, fill_number=0,
        part=1, quantity=20, owed_after=10, allocations=(), acknowledged=(), dispensed_at=at,
        pharmacist="x", partial_reason="shortage")
    asked = DispenseRequest(done.prescription_id, uuid.uuid4(), allow_partial=True,
                            notes="  counselled  ")
    queued = ob._as_handed_out(asked, done)
    assert (queued.quantity, queued.allow_partial) == (20, False)
    assert queued.partial_reason is PartialReason.SHORTAGE
    assert queued.notes == f"counselled ({ob.offline_note(at)})"
    assert queued.handed_out_at == at
    long = dataclasses.replace(asked, notes="n" * 990)
    assert ob._as_handed_out(long, done).notes == "n" * 990  # never cut
