"""Round trips of the counter's actions on PostgreSQL, counted by a proxy
(client-to-server turns): a regression shows without a slow network."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa

from benchmarks.netdelay import DelayProxy, through
from getmeds_desktop import db
from getmeds_desktop.services import dispensing
from tests.fixtures.data import build_world

pytestmark = pytest.mark.slow


@pytest.fixture
def counted(pg_fresh_db):
    """A world on a fresh database, and a session factory whose every statement
    goes through the counting proxy."""
    plain = db.make_engine(pg_fresh_db)
    world = build_world(db.session_factory(plain))
    u = sa.engine.make_url(pg_fresh_db)
    with DelayProxy(u.host or "127.0.0.1", u.port or 5432) as proxy:
        engine = db.make_engine(through(pg_fresh_db, proxy), pool_size=1)
        yield world, proxy, db.session_factory(engine)
        engine.dispose()
    plain.dispose()


def _turns(proxy, fn):
    before = proxy.turns
    result = fn()
    return proxy.turns - before, result


def test_round_trips_of_the_dispense_dialog_and_the_confirm(counted):
    """Opening the dialog: the prescription, its display row, the lots and the
    whole screening, four statements sent together outside a transaction (one
    round trip). The confirm: the prescription with an earlier attempt, the lots
    and the screening sent together (one round trip, no locks); then BEGIN, the
    actor, the check under the locks (0025), the dispense, its movements, the
    prescription and COMMIT sent together (one round trip)."""
    world, proxy, sf = counted
    p = world.product("Lisinopril", strength="10 mg", dosage_form="tablet")
    world.receive(p.id, 100)
    rx = world.rx(world.patient().id, p.id)
    with sf() as s:  # warm the pooled connection
        s.execute(sa.text("SELECT 1"))
    preview, _ = _turns(proxy, lambda: dispensing.preview_dispense(sf, world.pharmacist, rx.id))
    confirm, result = _turns(proxy, lambda: dispensing.dispense(
        sf, world.pharmacist, dispensing.DispenseRequest(rx.id, uuid.uuid4(),
                                                         no_scan_reason="test")))
    assert result.quantity == 30
    assert (preview, confirm) == (1, 2)


def test_acknowledged_warnings_are_one_statement(counted):
    world, proxy, sf = counted
    warf = world.product("Warfarin", strength="5 mg", dosage_form="tablet")
    ibu = world.product("Ibuprofen", strength="400 mg", dosage_form="tablet",
                        classes=("Nonsteroidal Anti-inflammatory Drug [EPC]",))
    for p in (warf, ibu):
        world.receive(p.id, 100)
    pat = world.patient(allergies=("Aspirin",))
    dispensing.dispense(world.sf, world.pharmacist, dispensing.DispenseRequest(
        world.rx(pat.id, warf.id).id, uuid.uuid4(), no_scan_reason="test"))
    rx = world.rx(pat.id, ibu.id)
    found = dispensing.preview_dispense(sf, world.pharmacist, rx.id).warnings
    assert len(found) >= 2
    acks = {w.key: dispensing.Override("prescriber_consulted", "Dr Lee confirmed it today")
            for w in found}
    confirm, result = _turns(proxy, lambda: dispensing.dispense(
        sf, world.pharmacist, dispensing.DispenseRequest(
            rx.id, uuid.uuid4(), no_scan_reason="test", acknowledgements=acks)))
    assert len(result.acknowledged) == len(found)
    assert confirm == 2
