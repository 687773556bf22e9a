"""DEA inventories and schedule changes (migration 0021), whatever a staff member
types into psql: only a pharmacist takes an inventory, in their own name and at
the server's time; its rows never change; a product's schedule moves into a
register only together with its newly-controlled inventory, which opens the
register with the stock on hand (21 CFR 1304.11(d)), and out of the schedules
only by a pharmacist."""

from __future__ import annotations

import uuid

import psycopg
import pytest
import sqlalchemy as sa

from getmeds_desktop import db
from getmeds_desktop.enums import Role
from getmeds_desktop.models import Schedule
from getmeds_desktop.services import dea_inventory, staff
from getmeds_desktop.services.context import SYSTEM
from getmeds_desktop.services.dea_inventory import Count
from tests.fixtures.data import PASSWORD

from .conftest import Pharmacy, refused, refused_at_commit

STOCKTAKE = ("INSERT INTO stocktakes (id, scope, status, started_by, posted_by, posted_at, "
             "created_at, updated_at, version) VALUES (%(st)s, 'controlled', 'posted', %(by)s, "
             "%(by)s, now(), now(), now(), 1)")
INVENTORY = ("INSERT INTO dea_inventories (id, kind, business, taken_on, taken_by, taken_at, "
             "stocktake_id) VALUES (%(inv)s, %(kind)s, 'opening', '2000-01-01', %(by)s, "
             "'2000-01-01', %(st)s)")
LINE = ("INSERT INTO dea_inventory_lines (id, inventory_id, product_id, schedule, product_name, "
        "quantity, exact, container_units) VALUES (gen_random_uuid(), %(inv)s, %(p)s, "
        "%(sched)s, 'Anything', %(q)s, %(exact)s, %(units)s)")


def _owner(ph: Pharmacy):
    """An administrator who is also a pharmacist."""
    info = staff.create_staff(ph.sf, SYSTEM, username=f"deaown{uuid.uuid4().hex[:6]}",
                              full_name="Olive Owner", role=Role.ADMIN, password=PASSWORD,
                              practice_role=Role.PHARMACIST)
    return staff.actor_for_username(ph.sf, info.username)


def _session(ph: Pharmacy, who):
    engine = db.make_engine(ph.url, username=who.username, password=PASSWORD,
                            poolclass=sa.NullPool)
    sf = db.session_factory(engine)
    return engine, sf, staff.actor_from_session(sf)


def test_the_inventories_work_as_the_staff_logins(pharmacy: Pharmacy):
    w = pharmacy.world
    owner = _owner(pharmacy)
    product, _lot = pharmacy.stocked("Deagaba", 120)
    c2, _ = pharmacy.stocked("Deaoxy", 40, Schedule.II)
    for who in (owner, w.pharmacist):
        engine, sf, actor = _session(pharmacy, who)
        try:
            if who is owner:
                p = dea_inventory.count_sheet(sf, actor, product_id=product.id)
                version = pharmacy.one("SELECT version FROM products WHERE id = %s",
                                       (product.id,))
                done = dea_inventory.change_schedule(
                    sf, actor, product.id, "V", expected_version=int(version),
                    counts=[Count(ln.lot_id, ln.on_hand) for ln in p])
                assert done.inventory is not None
                assert done.inventory.taken_by == "Olive Owner"
            else:
                sheet = dea_inventory.count_sheet(sf, actor)
                inv = dea_inventory.take_inventory(
                    sf, actor, "biennial", "close",
                    [Count(ln.lot_id, ln.on_hand) for ln in sheet])
                assert {ln.lot_number for ln in inv.lines} >= {"DEAOXY-1", "DEAGAB-1"}
        finally:
            engine.dispose()
    # nothing on hand: the register opens at 0; out of the schedules again by the owner
    empty = w.product("Deaempty")
    engine, sf, actor = _session(pharmacy, owner)
    try:
        done = dea_inventory.change_schedule(sf, actor, empty.id, "IV",
                                             expected_version=empty.version)
        assert [(ln.lot_id, ln.quantity) for ln in done.inventory.lines] == [(None, 0)]
        out = dea_inventory.change_schedule(sf, actor, empty.id, "none",
                                            expected_version=done.product.version)
        assert out.product.schedule is Schedule.NONE
    finally:
        engine.dispose()
    # the server's time and date, the login's own identity
    rows = pharmacy.q("SELECT taken_by, taken_at > now() - interval '1 hour', txn IS NOT NULL "
                      "FROM dea_inventories ORDER BY taken_at")
    assert [r[1:] for r in rows] == [(True, True)] * 3
    assert {r[0] for r in rows} == {owner.staff_id, w.pharmacist.staff_id}
    assert pharmacy.one("SELECT register FROM controlled_register WHERE product_id = %s "
                        "ORDER BY id DESC LIMIT 1", (product.id,)) == "III-V"
    assert c2 is not None


def test_only_a_pharmacist_writes_an_inventory_in_their_own_name(pharmacy: Pharmacy):
    w = pharmacy.world
    for who, match in ((w.admin, "only a pharmacist takes a DEA inventory"),
                       (w.technician, "permission denied"), (w.clerk, "permission denied"),
                       (w.doctor, "permission denied")):
        with pharmacy.login(who) as c:
            refused(c, INVENTORY, {"inv": uuid.uuid4(), "kind": "initial",
                                   "by": who.staff_id, "st": uuid.uuid4()}, match=match)
    with pharmacy.login(w.pharmacist) as c:
        st = uuid.uuid4()
        c.execute(STOCKTAKE, {"st": st, "by": w.pharmacist.staff_id})
        refused(c, INVENTORY, {"inv": uuid.uuid4(), "kind": "biennial",
                               "by": w.pharmacist2.staff_id, "st": st},
                match="signed-in staff member")
        # the time and date are the server's, whatever the client sends
        inv = uuid.uuid4()
        c.execute(INVENTORY, {"inv": inv, "kind": "biennial", "by": w.pharmacist.staff_id,
                              "st": st})
        c.commit()
    assert pharmacy.one("SELECT taken_on > '2000-01-01' AND taken_at > '2000-01-01' FROM "
                        "dea_inventories WHERE id = %s", (inv,)) is True
    c2, _lot = pharmacy.stocked("Deamorph", 10, Schedule.II)
    with pharmacy.login(w.pharmacist) as c:
        # never changed, never removed, no line added afterwards
        refused(c, "UPDATE dea_inventories SET business = 'close' WHERE id = %s", (inv,))
        refused(c, "DELETE FROM dea_inventories WHERE id = %s", (inv,))
    with pytest.raises(psycopg.errors.IntegrityConstraintViolation, match="permanent records"):
        pharmacy.q("UPDATE dea_inventories SET business = 'close' WHERE id = %s", (inv,))
        refused(c, LINE, {"inv": inv, "p": c2.id, "sched": "II", "q": 0, "exact": True,
                          "units": None}, match="written with it, never added afterwards")
    # another pharmacist's stocktake is not theirs to record
    with pharmacy.login(w.pharmacist2) as c:
        other = uuid.uuid4()
        with pharmacy.login(w.pharmacist) as mine:
            mine.execute(STOCKTAKE, {"st": other, "by": w.pharmacist.staff_id})
            mine.commit()
        refused(c, INVENTORY, {"inv": uuid.uuid4(), "kind": "initial",
                               "by": w.pharmacist2.staff_id, "st": other},
                match="posted controlled count its pharmacist took")


def test_a_line_names_the_product_as_it_is_and_the_ledger_count(pharmacy: Pharmacy):
    w = pharmacy.world
    c2 = w.product("Deafent", schedule=Schedule.II)  # nothing on hand
    c4, lot4 = pharmacy.stocked("Deadiaz", 30, Schedule.IV)
    c5 = w.product("Deadiaz0", schedule=Schedule.IV)
    plain, _ = pharmacy.stocked("Deacetir", 30)
    with pharmacy.login(w.pharmacist) as c:
        st, inv = uuid.uuid4(), uuid.uuid4()
        c.execute(STOCKTAKE, {"st": st, "by": w.pharmacist.staff_id})
        c.execute(INVENTORY, {"inv": inv, "kind": "biennial", "by": w.pharmacist.staff_id,
                              "st": st})
        base = {"inv": inv, "exact": True, "units": None}
        # an estimate of Schedule II, or of a container of more than 1,000
        refused(c, LINE, {**base, "p": c2.id, "sched": "II", "q": 0, "exact": False,
                          "units": 100}, match="estimate_allowed")
        refused(c, LINE, {**base, "p": c5.id, "sched": "IV", "q": 0, "exact": False,
                          "units": 5000}, match="estimate_allowed")
        # a product at another schedule, or not controlled
        refused(c, LINE, {**base, "p": c4.id, "sched": "II", "q": 0},
                match="at its schedule")
        refused(c, LINE, {**base, "p": plain.id, "sched": "V", "q": 0},
                match="at its schedule")
        # a product with stock: counted lot by lot, with the count on the ledger
        refused(c, LINE, {**base, "p": c4.id, "sched": "IV", "q": 0},
                match="counted lot by lot")
        refused(c, LINE.replace("quantity,", "quantity, lot_id,").replace(
            "%(q)s,", "%(q)s, %(lot)s,"), {**base, "p": c4.id, "sched": "IV", "q": 999,
                                            "lot": lot4}, match="the ledger holds after it")
        c.rollback()


def test_a_schedule_changes_only_with_its_newly_controlled_inventory(pharmacy: Pharmacy):
    w = pharmacy.world
    owner = _owner(pharmacy)
    product, lot = pharmacy.stocked("Deatrama", 60)
    update = ("UPDATE products SET schedule = %(s)s, version = version + 1 WHERE id = %(p)s")
    # the schedule alone: refused at commit, for an administrator and the owner alike
    for who in (w.admin, owner):
        with pharmacy.login(who) as c:
            refused_at_commit(c, [(update, {"s": "IV", "p": product.id})],
                              match="changes only together with its newly-controlled")
    # with an inventory of the product but no count movements: the register is not
    # opened with the stock on hand
    with pharmacy.login(owner) as c:
        st, inv = uuid.uuid4(), uuid.uuid4()
        refused_at_commit(c, [
            (update, {"s": "IV", "p": product.id}),
            (STOCKTAKE, {"st": st, "by": owner.staff_id}),
            (INVENTORY, {"inv": inv, "kind": "newly_controlled", "by": owner.staff_id,
                         "st": st}),
        ], match="newly-controlled")
    assert pharmacy.one("SELECT schedule FROM products WHERE id = %s", (product.id,)) == "none"
    # within III-V: no inventory needed; out of the schedules: only a pharmacist
    c3, _ = pharmacy.stocked("Deatesto", 5, Schedule.III)
    with pharmacy.login(w.admin) as c:
        c.execute(update, {"s": "IV", "p": c3.id})
        c.commit()
        refused_at_commit(c, [(update, {"s": "none", "p": c3.id})],
                          match="only a pharmacist takes a product out of the schedules")
    with pharmacy.login(owner) as c:
        c.execute(update, {"s": "none", "p": c3.id})
        c.commit()
    assert pharmacy.one("SELECT schedule FROM products WHERE id = %s", (c3.id,)) == "none"
    assert lot is not None
