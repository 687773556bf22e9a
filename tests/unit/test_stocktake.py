"""Stocktakes: snapshot, counts, variances with reasons, posting as count movements."""

from __future__ import annotations

import pytest

from getmeds_desktop.models import MovementKind, Schedule, StocktakeScope, StocktakeStatus
from getmeds_desktop.services import catalog, inventory, ledger, stocktake
from getmeds_desktop.services.errors import InvalidState, PermissionDenied, ValidationError


def test_controlled_count_snapshots_and_posts_variances(world):
    c2 = world.product("Morphine", schedule=Schedule.II)
    c4 = world.product("Diazepam", schedule=Schedule.IV)
    plain = world.product("Cetirizine")
    world.receive(c2.id, 100, lot="M1")
    world.receive(c4.id, 60, lot="D1")
    world.receive(plain.id, 10, lot="P1")
    st = stocktake.start_stocktake(world.sf, world.pharmacist, StocktakeScope.CONTROLLED)
    lines = {ln.lot_number: ln for ln in stocktake.count_lines(world.sf, world.pharmacist, st.id)}
    assert set(lines) >= {"M1", "D1"} and "P1" not in lines
    assert lines["M1"].expected == 100

    # stock moves after the snapshot: the variance is against the snapshot
    lot_m1 = lines["M1"].lot_id
    inventory.adjust_stock(world.sf, world.pharmacist, lot_m1, -5, "Damaged")

    stocktake.enter_count(world.sf, world.pharmacist, lines["M1"].line_id, 98,
                          "Two tablets missing")
    stocktake.enter_count(world.sf, world.pharmacist, lines["D1"].line_id, 60)
    for ln in lines.values():
        if ln.lot_number not in ("M1", "D1"):
            stocktake.enter_count(world.sf, world.pharmacist, ln.line_id, ln.expected)
    variances = stocktake.count_lines(world.sf, world.pharmacist, st.id, only_variances=True)
    assert [(v.lot_number, v.variance) for v in variances] == [("M1", -2)]

    posted = stocktake.post_stocktake(world.sf, world.pharmacist, st.id)
    assert posted.status is StocktakeStatus.POSTED
    assert inventory.on_hand(world.sf, c2.id) == 93  # 100 - 5 - 2
    hist = inventory.movement_history(world.sf, lot_id=lot_m1)
    assert (hist[0].kind, hist[0].quantity, hist[0].reason) == (
        MovementKind.COUNT, -2, "Two tablets missing")
    assert ledger.verify(world.sf).ok
    with pytest.raises(InvalidState, match="posted"):
        stocktake.enter_count(world.sf, world.pharmacist, lines["D1"].line_id, 1)


def test_posting_needs_every_count_and_a_reason_per_variance(world):
    cat = catalog.create_category(world.sf, world.admin, "Count test")
    p = world.product("Loratadine", category_id=cat.id)
    world.receive(p.id, 10, lot="L1")
    world.receive(p.id, 5, lot="L2")
    st = stocktake.start_stocktake(world.sf, world.pharmacist, StocktakeScope.CATEGORY,
                                   category_id=cat.id)
    lines = stocktake.count_lines(world.sf, world.pharmacist, st.id)
    assert [ln.lot_number for ln in lines] == ["L1", "L2"]
    stocktake.enter_count(world.sf, world.pharmacist, lines[0].line_id, 12)
    with pytest.raises(InvalidState, match="1 lot"):
        stocktake.post_stocktake(world.sf, world.pharmacist, st.id)
    stocktake.enter_count(world.sf, world.pharmacist, lines[1].line_id, 5)
    with pytest.raises(ValidationError, match="no reason"):
        stocktake.post_stocktake(world.sf, world.pharmacist, st.id)
    assert inventory.on_hand(world.sf, p.id) == 15
    stocktake.enter_count(world.sf, world.pharmacist, lines[0].line_id, 12, "Found behind shelf")
    stocktake.post_stocktake(world.sf, world.pharmacist, st.id)
    assert inventory.on_hand(world.sf, p.id) == 17


def test_stocktake_permissions_and_scope_rules(world):
    with pytest.raises(PermissionDenied):
        stocktake.start_stocktake(world.sf, world.clerk, StocktakeScope.ALL)
    with pytest.raises(ValidationError, match="category"):
        stocktake.start_stocktake(world.sf, world.pharmacist, StocktakeScope.CATEGORY)
    st = stocktake.start_stocktake(world.sf, world.pharmacist, "all")
    assert stocktake.cancel_stocktake(world.sf, world.pharmacist, st.id).status is (
        StocktakeStatus.CANCELLED)
