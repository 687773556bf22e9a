"""Property: any sequence of receipts, dispenses, adjustments, write-offs and counts
keeps every lot >= 0 and equal to its ledger sum, and the controlled register
balance equal to the ledger."""

from __future__ import annotations

import datetime as dt
import uuid

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from getmeds_desktop.models import LotStatus, Schedule, StocktakeScope
from getmeds_desktop.services import (
    clock,
    dispensing,
    inventory,
    ledger,
    stocktake,
)
from getmeds_desktop.services.dispensing import DispenseRequest
from getmeds_desktop.services.errors import DomainError
from tests.fixtures.data import NO_SCAN

ops = st.lists(
    st.one_of(
        st.tuples(st.just("receive"), st.integers(0, 2), st.integers(1, 40)),
        st.tuples(st.just("dispense"), st.integers(1, 60), st.booleans()),
        st.tuples(st.just("adjust"), st.integers(0, 2), st.integers(-30, 30)),
        st.tuples(st.just("write_off"), st.integers(0, 2), st.just(0)),
        st.tuples(st.just("recall"), st.integers(0, 2), st.just(0)),
        st.tuples(st.just("count"), st.integers(0, 2), st.integers(-5, 5)),
        st.tuples(st.just("age"), st.integers(1, 40), st.just(0)),
    ),
    min_size=1,
    max_size=25,
)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(steps=ops, schedule=st.sampled_from([Schedule.NONE, Schedule.II, Schedule.IV]))
def test_ledger_invariants_hold_for_any_sequence(world, steps, schedule):
    product = world.product(f"Prop {uuid.uuid4().hex[:6]}", schedule=schedule)
    patient = world.patient()
    lots = ["A", "B", "C"]
    expiry_days = {"A": 15, "B": 45, "C": 400}
    moment = clock.now()
    for op, a, b in steps:
        with clock.travel(moment):
            try:
                if op == "receive":
                    world.receive(product.id, b, lot=lots[a], days=expiry_days[lots[a]]
                                  - (moment - clock.now()).days)
                elif op == "dispense":
                    rx = world.rx(patient.id, product.id, quantity=a)
                    dispensing.dispense(world.sf, world.pharmacist, DispenseRequest(
                        rx.id, uuid.uuid4(), allow_partial=b,
                        acknowledgements={w.key: "checked" for w in dispensing.preview_dispense(
                            world.sf, world.pharmacist, rx.id).warnings}, no_scan_reason=NO_SCAN))
                elif op in ("adjust", "write_off", "recall", "count"):
                    found = [x for x in inventory.lots_of_product(world.sf, product.id,
                                                                  with_empty=True)
                             if x.lot_number == lots[a]]
                    if not found:
                        continue
                    lot = found[0]
                    if op == "adjust" and b:
                        inventory.adjust_stock(world.sf, world.pharmacist, lot.id, b, "Test")
                    elif op == "write_off":
                        inventory.write_off_lot(world.sf, world.pharmacist, lot.id)
                    elif op == "recall" and lot.status is LotStatus.AVAILABLE:
                        inventory.set_lot_status(world.sf, world.pharmacist, lot.id,
                                                 LotStatus.RECALLED, "Recall")
                    elif op == "count":
                        stc = stocktake.start_stocktake(world.sf, world.pharmacist,
                                                        StocktakeScope.ALL)
                        for ln in stocktake.count_lines(world.sf, world.pharmacist, stc.id):
                            delta = b if ln.lot_id == lot.id else 0
                            stocktake.enter_count(world.sf, world.pharmacist, ln.line_id,
                                                  max(ln.expected + delta, 0), "Counted")
                        stocktake.post_stocktake(world.sf, world.pharmacist, stc.id)
                elif op == "age":
                    moment = moment + dt.timedelta(days=a)
            except DomainError:
                pass  # a refusal is fine; what matters is that nothing is left broken
        check = ledger.verify(world.sf)
        assert check.ok, check
        for lot in inventory.lots_of_product(world.sf, product.id, with_empty=True):
            assert lot.on_hand >= 0
