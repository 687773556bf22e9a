"""PostgreSQL: a fill reads without locks and writes in one pipelined round trip
(db.together, db.pipelined_write, migration 0025). What it was decided from may
change in between; the database then refuses the writes, and the fill is read
and decided again under its locks: never from a lot that stopped being
dispensable, never more than is there, never twice."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa
import sqlalchemy.orm

from getmeds_desktop import db
from getmeds_desktop.models import Dispense, StockLot, StockMovement
from getmeds_desktop.services import dispensing, inventory, ledger, uow
from getmeds_desktop.services.dispensing import DispenseRequest
from getmeds_desktop.services.errors import InsufficientStock, InvalidState
from tests.fixtures.data import NO_SCAN, build_world

pytestmark = pytest.mark.slow


@pytest.fixture
def pharmacy(pg_fresh_db):
    """A world on a fresh database, and a second workstation (its own engine:
    the pipelined path) that fills through it."""
    setup = db.make_engine(pg_fresh_db)
    world = build_world(db.session_factory(setup))
    counter = db.make_engine(pg_fresh_db, pool_size=1)
    yield world, db.session_factory(counter)
    counter.dispose()
    setup.dispose()


def _between_reads_and_writes(monkeypatch, action):
    """Run ``action`` once, after the fill's reads and before its writes (on
    another connection: another workstation)."""
    real = dispensing.allocate_fefo
    calls = []

    def allocate(*args, **kwargs):
        if not calls:
            calls.append(1)
            action()
        return real(*args, **kwargs)
    monkeypatch.setattr(dispensing, "allocate_fefo", allocate)
    return calls


def _fill(sf, world, rx_id, **kw):
    return dispensing.dispense(sf, world.pharmacist, DispenseRequest(
        rx_id, uuid.uuid4(), no_scan_reason=NO_SCAN, **kw))


def test_the_pipelined_path_is_the_one_a_workstation_takes(pharmacy):
    world, sf = pharmacy
    assert db.pipelines(sf)
    with sf.kw["bind"].connect() as conn:  # bound to one open connection: locks first
        assert not db.pipelines(sa.orm.sessionmaker(bind=conn))


def test_a_lot_quarantined_meanwhile_is_not_dispensed(pharmacy, monkeypatch):
    world, sf = pharmacy
    p = world.product("Quarantinol")
    first = world.receive(p.id, 10, lot="Q-1", days=30).lot_id
    world.receive(p.id, 10, lot="Q-2", days=300)
    rx = world.rx(world.patient().id, p.id, quantity=5)

    def quarantine() -> None:
        with world.sf() as s, s.begin():
            s.execute(sa.update(StockLot).where(StockLot.id == first)
                      .values(status="quarantined"))
    calls = _between_reads_and_writes(monkeypatch, quarantine)
    d = _fill(sf, world, rx.id)
    assert calls  # the change came between the reads and the writes
    assert [a.lot_number for a in d.allocations] == ["Q-2"]
    with world.sf() as s:
        on_hand = dict(s.execute(sa.select(StockLot.lot_number, StockLot.on_hand)
                                 .where(StockLot.product_id == p.id)).all())
    assert on_hand == {"Q-1": 10, "Q-2": 5}
    assert ledger.verify(world.sf).ok


def test_stock_taken_meanwhile_is_never_oversold(pharmacy, monkeypatch):
    world, sf = pharmacy
    p = world.product("Lastboxol")
    world.receive(p.id, 10, lot="L-1")
    mine = world.rx(world.patient().id, p.id, quantity=6)
    theirs = world.rx(world.patient().id, p.id, quantity=6)
    _between_reads_and_writes(monkeypatch, lambda: _fill(world.sf, world, theirs.id))
    with pytest.raises(InsufficientStock) as exc:
        _fill(sf, world, mine.id)
    assert exc.value.available == 4
    assert inventory.on_hand(world.sf, p.id) == 4
    # decided again under the locks, a partial fill takes what is left
    d = _fill(sf, world, mine.id, allow_partial=True)
    assert (d.quantity, d.owed_after) == (4, 2)
    assert inventory.on_hand(world.sf, p.id) == 0
    assert ledger.verify(world.sf).ok


def test_a_prescription_filled_meanwhile_is_not_filled_twice(pharmacy, monkeypatch):
    world, sf = pharmacy
    p = world.product("Oncefillol")
    world.receive(p.id, 100)
    rx = world.rx(world.patient().id, p.id, quantity=10)
    _between_reads_and_writes(monkeypatch, lambda: _fill(world.sf, world, rx.id))
    with pytest.raises(InvalidState):
        _fill(sf, world, rx.id)
    with world.sf() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(Dispense)
                        .where(Dispense.prescription_id == rx.id)) == 1
    assert inventory.on_hand(world.sf, p.id) == 90


def test_a_refused_pipeline_leaves_nothing_and_the_connection_works(pharmacy, monkeypatch):
    """Refused writes roll back whole; the pooled connection serves the next fills
    (more of them than psycopg's threshold for preparing a statement)."""
    world, sf = pharmacy
    p = world.product("Poolkeepol")
    world.receive(p.id, 100, lot="P-1")
    with world.sf() as s:
        before = s.scalar(sa.select(sa.func.count()).select_from(StockMovement))
    for _ in range(3):
        rx = world.rx(world.patient().id, p.id, quantity=1)
        monkeypatch.setattr(dispensing, "_dispense_once", _refused_once(dispensing._dispense_once))
        _fill(sf, world, rx.id)
    monkeypatch.undo()
    for _ in range(8):
        _fill(sf, world, world.rx(world.patient().id, p.id, quantity=1).id)
    with world.sf() as s:
        after = s.scalar(sa.select(sa.func.count()).select_from(StockMovement))
    assert after - before == 11
    assert inventory.on_hand(world.sf, p.id) == 89
    assert ledger.verify(world.sf).ok


def _refused_once(real):
    """The first (pipelined) attempt is made with a stale version of the
    prescription, so the database refuses all its writes."""
    def once(sf, actor, req, notes, no_scan, *, locked):
        if not locked:
            original = dispensing._Read

            class Stale(original):  # type: ignore[misc, valid-type]
                def __init__(self, ctx, *rest):
                    super().__init__(dispensing.dataclasses.replace(ctx, version=ctx.version - 1),
                                     *rest)
            dispensing._Read = Stale  # type: ignore[misc]
            try:
                with pytest.raises(uow.Changed):
                    real(sf, actor, req, notes, no_scan, locked=False)
            finally:
                dispensing._Read = original  # type: ignore[misc]
            raise uow.Changed("stale")
        return real(sf, actor, req, notes, no_scan, locked=locked)
    return once


def test_a_connection_lost_between_reads_and_writes_is_a_disconnect(pharmacy, monkeypatch):
    """The server goes away after the fill's reads: the error is one the
    reconnect-and-retry path knows, nothing is written, and the same request
    then fills once on a new connection."""
    from getmeds_desktop.sync.retry import is_disconnect

    world, sf = pharmacy
    p = world.product("Lostlinkol")
    world.receive(p.id, 20, lot="LL-1")
    rx = world.rx(world.patient().id, p.id, quantity=5)
    engine = sf.kw["bind"]

    def cut() -> None:
        with world.sf() as s, s.begin():
            s.execute(sa.text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                "AND application_name = 'GetMeds Desktop' AND state = 'idle'"))
    _between_reads_and_writes(monkeypatch, cut)
    request = DispenseRequest(rx.id, uuid.uuid4(), no_scan_reason=NO_SCAN)
    with pytest.raises(sa.exc.DBAPIError) as exc:
        dispensing.dispense(sf, world.pharmacist, request)
    assert is_disconnect(exc.value), exc.value
    assert inventory.on_hand(world.sf, p.id) == 20
    monkeypatch.undo()
    done = dispensing.dispense(sf, world.pharmacist, request)
    assert (done.quantity, done.replayed) == (5, False)
    assert dispensing.dispense(sf, world.pharmacist, request).replayed
    assert inventory.on_hand(world.sf, p.id) == 15
    assert engine.pool.checkedout() == 0
