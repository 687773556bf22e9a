"""DEA inventories (21 CFR 1304.11): exact counts for Schedule II, estimates only
for opened Schedule III-V containers of at most 1,000 units, every count in the
register (a matching one too), and a product moved into a schedule opens its
register with its newly-controlled inventory."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from getmeds_desktop import db
from getmeds_desktop.enums import Role
from getmeds_desktop.models import (
    ControlledRegisterEntry,
    DeaInventoryLine,
    MovementKind,
    Schedule,
    StockMovement,
    StocktakeScope,
)
from getmeds_desktop.services import catalog, dea_inventory, inventory, ledger, staff, stocktake
from getmeds_desktop.services.context import SYSTEM
from getmeds_desktop.services.dea_inventory import Business, Count, InventoryKind
from getmeds_desktop.services.errors import (
    InvalidState,
    PermissionDenied,
    ValidationError,
)
from tests.fixtures.data import PASSWORD


def _register(sf, product_id):
    with db.read_session(sf) as s:
        return [(e.kind, e.quantity, e.balance_after, e.register) for e in s.scalars(
            sa.select(ControlledRegisterEntry).where(
                ControlledRegisterEntry.product_id == product_id)
            .order_by(ControlledRegisterEntry.id))]


def _counts(sheet, **override):
    return [Count(ln.lot_id, override.get(ln.lot_number, ln.on_hand), expected=ln.on_hand)
            for ln in sheet if ln.lot_id is not None]


def _owner(world):
    """An administrator who is also a pharmacist (who may change a schedule)."""
    info = staff.create_staff(world.sf, SYSTEM, username=f"own{world.admin.username[-6:]}",
                              full_name="Olive Owner", role=Role.ADMIN, password=PASSWORD,
                              practice_role=Role.PHARMACIST)
    return staff.actor_for_username(world.sf, info.username)


def test_biennial_inventory_counts_every_controlled_lot_and_records_matching_counts(world):
    c2 = world.product("Oxycodone", schedule=Schedule.II)
    c4 = world.product("Alprazolam", schedule=Schedule.IV)
    plain = world.product("Loratadine")
    world.receive(c2.id, 100, lot="OX1")
    world.receive(c4.id, 500, lot="AL1")
    world.receive(plain.id, 30, lot="LO1")
    sheet = dea_inventory.count_sheet(world.sf, world.pharmacist)
    assert {ln.lot_number for ln in sheet} == {"OX1", "AL1"}
    assert {ln.lot_number: ln.register_balance for ln in sheet} == {"OX1": 100, "AL1": 500}
    counts = [Count(ln.lot_id, ln.on_hand, expected=ln.on_hand) if ln.lot_number == "OX1"
              else Count(ln.lot_id, 480, exact=False, reason="Opened bottle, estimated")
              for ln in sheet]
    inv = dea_inventory.take_inventory(world.sf, world.pharmacist, "biennial", "close", counts)
    assert (inv.kind, inv.business) == (InventoryKind.BIENNIAL, Business.CLOSE)
    assert inv.taken_by == "Test Pharmacist"
    assert [(ln.lot_number, ln.quantity, ln.exact) for ln in inv.schedule_ii] == [
        ("OX1", 100, True)]
    assert [(ln.lot_number, ln.quantity, ln.exact, ln.container_units)
            for ln in inv.schedule_iii_v] == [("AL1", 480, False, 1)]
    # the matching count is in the register too (a count of 0), the estimate its variance
    assert _register(world.sf, c2.id)[-1] == (MovementKind.COUNT, 0, 100, "II")
    assert _register(world.sf, c4.id)[-1] == (MovementKind.COUNT, -20, 480, "III-V")
    assert inventory.on_hand(world.sf, c4.id) == 480
    assert ledger.verify(world.sf).ok
    again = dea_inventory.get_inventory(world.sf, world.pharmacist, inv.id)
    assert again == inv
    assert [i.id for i in dea_inventory.list_inventories(world.sf, world.pharmacist)] == [inv.id]


def test_schedule_ii_is_counted_exactly_and_big_containers_too(world):
    c2 = world.product("Hydromorphone", schedule=Schedule.II)
    c3 = world.product("Testosterone", schedule=Schedule.III)
    world.receive(c2.id, 50, lot="HM1")
    world.receive(c3.id, 20, lot="TE1")
    sheet = dea_inventory.count_sheet(world.sf, world.pharmacist)
    by = {ln.lot_number: ln for ln in sheet}
    with pytest.raises(ValidationError, match=r"Schedule II: count it exactly.*1304\.11\(e\)"):
        dea_inventory.take_inventory(world.sf, world.pharmacist, "initial", "opening", [
            Count(by["HM1"].lot_id, 50, exact=False), Count(by["TE1"].lot_id, 20)])
    with pytest.raises(ValidationError, match="more than 1,000"):
        dea_inventory.take_inventory(world.sf, world.pharmacist, "initial", "opening", [
            Count(by["HM1"].lot_id, 50),
            Count(by["TE1"].lot_id, 20, exact=False, container_units=5000)])
    # nothing was written
    with db.read_session(world.sf) as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(DeaInventoryLine)) == 0
    ok = dea_inventory.take_inventory(world.sf, world.pharmacist, "initial", "opening", [
        Count(by["HM1"].lot_id, 50),
        Count(by["TE1"].lot_id, 19, exact=False, container_units=1000, reason="Opened vial")])
    assert [ln.container_units for ln in ok.schedule_iii_v] == [1000]


def test_every_lot_is_counted_a_variance_has_a_reason_and_a_changed_lot_is_recounted(world):
    c2 = world.product("Methadone", schedule=Schedule.II)
    world.receive(c2.id, 40, lot="ME1")
    world.receive(c2.id, 10, lot="ME2")
    sheet = dea_inventory.count_sheet(world.sf, world.pharmacist)
    with pytest.raises(InvalidState, match="1 lot"):
        dea_inventory.take_inventory(world.sf, world.pharmacist, "biennial", "opening",
                                     _counts(sheet)[:1])
    with pytest.raises(ValidationError, match="Give a reason"):
        dea_inventory.take_inventory(world.sf, world.pharmacist, "biennial", "opening",
                                     _counts(sheet, ME1=39))
    inventory.adjust_stock(world.sf, world.pharmacist, sheet[0].lot_id, -1, "Damaged")
    with pytest.raises(InvalidState, match="changed since the count sheet"):
        dea_inventory.take_inventory(world.sf, world.pharmacist, "biennial", "opening",
                                     _counts(sheet))
    with pytest.raises(ValidationError, match="opening or the close"):
        dea_inventory.take_inventory(world.sf, world.pharmacist, "biennial", "noon", [])
    with pytest.raises(ValidationError, match="Change schedule"):
        dea_inventory.take_inventory(world.sf, world.pharmacist, "newly_controlled",
                                     "opening", [])


def test_only_a_pharmacist_takes_an_inventory(world):
    for who in (world.admin, world.technician, world.clerk, world.doctor):
        with pytest.raises(PermissionDenied, match="only a pharmacist"):
            dea_inventory.take_inventory(world.sf, who, "initial", "opening", [])
    # with no controlled stock at all, the inventory records that nothing is on hand
    # (21 CFR 1304.11(b))
    empty = dea_inventory.take_inventory(world.sf, _owner(world), "initial", "opening", [])
    assert empty.lines == ()


def test_a_matching_stocktake_count_of_a_controlled_lot_is_in_the_register(world):
    c4 = world.product("Zolpidem", schedule=Schedule.IV)
    plain = world.product("Cetirizine")
    world.receive(c4.id, 30, lot="ZO1")
    world.receive(plain.id, 30, lot="CE1")
    st = stocktake.start_stocktake(world.sf, world.pharmacist, StocktakeScope.ALL)
    for ln in stocktake.count_lines(world.sf, world.pharmacist, st.id):
        stocktake.enter_count(world.sf, world.pharmacist, ln.line_id, ln.expected)
    stocktake.post_stocktake(world.sf, world.pharmacist, st.id)
    assert _register(world.sf, c4.id)[-1] == (MovementKind.COUNT, 0, 30, "III-V")
    with db.read_session(world.sf) as s:  # the ordinary product's count leaves no movement
        assert s.scalar(sa.select(sa.func.count()).select_from(StockMovement).where(
            StockMovement.stocktake_id == st.id)) == 1
    assert ledger.verify(world.sf).ok


def test_moving_a_product_into_a_schedule_opens_its_register_with_the_count(world):
    owner = _owner(world)
    p = world.product("Gabapentin")
    world.receive(p.id, 300, lot="GA1")
    world.receive(p.id, 90, lot="GA2")
    p = catalog.get_product(world.sf, p.id)
    # the product editor cannot do it alone
    with pytest.raises(InvalidState, match="Change schedule"):
        catalog.update_product(world.sf, world.admin, p.id, p.draft().__class__(
            **{**p.draft().__dict__, "schedule": Schedule.V}), expected_version=p.version)
    # an administrator who is no pharmacist cannot take the inventory it needs
    with pytest.raises(PermissionDenied, match="only a pharmacist"):
        dea_inventory.change_schedule(world.sf, world.admin, p.id, "V",
                                      expected_version=p.version)
    sheet = dea_inventory.count_sheet(world.sf, owner, product_id=p.id)
    assert [(ln.lot_number, ln.on_hand, ln.register_balance) for ln in sheet] == [
        ("GA1", 300, None), ("GA2", 90, None)]
    with pytest.raises(InvalidState, match="no count"):
        dea_inventory.change_schedule(world.sf, owner, p.id, "V", expected_version=p.version)
    done = dea_inventory.change_schedule(
        world.sf, owner, p.id, "V", expected_version=p.version, business="opening",
        counts=[Count(sheet[0].lot_id, 298, exact=False, reason="Opened bottle, estimated"),
                Count(sheet[1].lot_id, 90)])
    assert done.old_schedule is Schedule.NONE and done.product.schedule is Schedule.V
    assert done.inventory is not None and done.inventory.kind is InventoryKind.NEWLY_CONTROLLED
    entries = _register(world.sf, p.id)  # one count per lot, the register opened at 388
    assert sorted((k, q, r) for k, q, _b, r in entries) == [
        (MovementKind.COUNT, -2, "III-V"), (MovementKind.COUNT, 0, "III-V")]
    assert entries[-1][2] == 388
    assert ledger.verify(world.sf).ok
    # III-V -> II: a new register, opened the same way
    p = done.product
    sheet = dea_inventory.count_sheet(world.sf, owner, product_id=p.id)
    with pytest.raises(ValidationError, match="Schedule II"):
        dea_inventory.change_schedule(world.sf, owner, p.id, "II", expected_version=p.version,
                                      counts=[Count(ln.lot_id, ln.on_hand, exact=False)
                                              for ln in sheet])
    moved = dea_inventory.change_schedule(world.sf, owner, p.id, "II",
                                          expected_version=p.version, counts=_counts(sheet))
    assert _register(world.sf, p.id)[-2:] == [(MovementKind.COUNT, 0, 388, "II")] * 2
    # within III-V no inventory; out of the schedules the register keeps its entries
    p = moved.product
    out = dea_inventory.change_schedule(world.sf, owner, p.id, "none",
                                        expected_version=p.version)
    assert out.inventory is None and out.product.schedule is Schedule.NONE
    world.receive(p.id, 10, lot="GA3")
    assert len(_register(world.sf, p.id)) == 4  # nothing more is registered
    assert ledger.verify(world.sf).ok


def test_a_product_with_nothing_on_hand_opens_its_register_at_zero(world):
    owner = _owner(world)
    p = world.product("Pregabalin")
    world.receive(p.id, 10, lot="PR1")
    lot = dea_inventory.count_sheet(world.sf, owner, product_id=p.id)[0].lot_id
    inventory.adjust_stock(world.sf, world.pharmacist, lot, -10, "Returned to the wholesaler")
    never = world.product("Lacosamide")
    p = catalog.get_product(world.sf, p.id)
    done = dea_inventory.change_schedule(world.sf, owner, p.id, "V", expected_version=p.version)
    assert _register(world.sf, p.id) == [(MovementKind.COUNT, 0, 0, "III-V")]
    assert [(ln.lot_number, ln.quantity) for ln in done.inventory.lines] == [("PR1", 0)]
    done = dea_inventory.change_schedule(world.sf, owner, never.id, "V",
                                         expected_version=never.version)
    assert [(ln.lot_id, ln.quantity) for ln in done.inventory.lines] == [(None, 0)]
    world.receive(never.id, 5, lot="LC1")
    assert _register(world.sf, never.id) == [(MovementKind.RECEIPT, 5, 5, "III-V")]
    assert ledger.verify(world.sf).ok


def test_the_ledger_check_finds_a_schedule_changed_without_its_inventory(world):
    """What 21 CFR 1304.11(d) prevents: stock on hand, no register balance."""
    p = world.product("Tramadol")
    world.receive(p.id, 25, lot="TR1")
    with db.write_transaction(world.sf, "system") as s:
        s.execute(sa.text("UPDATE products SET schedule = 'IV' WHERE id = :id"),
                  {"id": p.id.hex if world.sf.kw["bind"].dialect.name == "sqlite" else p.id})
    assert not ledger.verify(world.sf).ok


def test_the_dea_inventory_report_lists_schedule_ii_apart_and_is_signed(world, tmp_path):
    from getmeds_desktop.reports import ReportParams, generate
    from tests.unit.test_reports import text_of

    c2 = world.product("Reportfent", strength="25 mcg/h", schedule=Schedule.II)
    c4 = world.product("Reportdiaz", strength="5 mg", schedule=Schedule.IV)
    world.receive(c2.id, 10, lot="RF-1")
    world.receive(c4.id, 200, lot="RD-1")
    sheet = dea_inventory.count_sheet(world.sf, world.pharmacist)
    inv = dea_inventory.take_inventory(world.sf, world.pharmacist, "biennial", "close", [
        Count(ln.lot_id, ln.on_hand) if ln.schedule is Schedule.II else
        Count(ln.lot_id, 195, exact=False, container_units=500, reason="Opened bottle")
        for ln in sheet], note="Biennial count")
    out = tmp_path / "inv.pdf"
    generate(world.sf, world.pharmacist, "dea-inventory", ReportParams(), out)  # the latest
    text = text_of(out)
    assert "Biennial inventory" in text and "close of business" in text
    ii, iii_v = text.index("Schedule II inventory"), text.index("Schedules III-V inventory")
    assert ii < text.index("Reportfent") < iii_v < text.index("Reportdiaz")
    assert "Exact count" in text and "Estimate (opened container of 500)" in text
    assert text.count("Signature") == 2 and "Test Pharmacist" in text
    generate(world.sf, world.pharmacist, "dea-inventory", ReportParams(inventory_id=inv.id),
             out)
    with pytest.raises(Exception, match="does not exist"):
        generate(world.sf, world.pharmacist, "dea-inventory",
                 ReportParams(inventory_id=c2.id), out)
