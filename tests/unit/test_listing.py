"""Keyset pagination, sorting and filtering in SQL for the big lists."""

from __future__ import annotations

import datetime as dt

import pytest

from getmeds_desktop.models import RxStatus, Schedule, StorageCondition
from getmeds_desktop.services import catalog, clock, listing
from getmeds_desktop.services.listing import ProductFilter
from tests.fixtures.data import NO_SCAN


def all_pages(fetch, limit=7):
    rows, after = [], None
    while True:
        page = fetch(after, limit)
        rows.extend(page.rows)
        if not page.has_more:
            return rows
        last = page.rows[-1]
        after = listing.After(last.sort_key, last.id)


@pytest.mark.parametrize("sort", sorted(listing.PRODUCT_SORTS))
@pytest.mark.parametrize("descending", [False, True])
def test_product_pages_join_up_in_sql_order(world, sort, descending):
    tag = "Pagetest"
    cat = catalog.create_category(world.sf, world.admin, "Paging")
    for i in range(23):
        p = world.product(f"{tag} {i % 5}", strength=f"{i} mg",
                          schedule=Schedule.IV if i % 4 == 0 else Schedule.NONE,
                          category_id=cat.id if i % 2 else None, reorder_level=i % 6)
        if i % 3:
            world.receive(p.id, i, days=10 + i)
    f = ProductFilter(search=tag)
    rows = all_pages(lambda after, n: listing.list_products(
        world.sf, world.pharmacist, f, sort=sort, descending=descending, after=after, limit=n))
    assert len(rows) == 23 and len({r.id for r in rows}) == 23
    keys = [(r.sort_key, str(r.id)) for r in rows]
    # same order as sorting everything at once (within the database's own collation)
    everything = listing.list_products(world.sf, world.pharmacist, f, sort=sort,
                                       descending=descending, limit=100).rows
    assert [r.id for r in rows] == [r.id for r in everything]
    assert len(keys) == 23


def test_product_filters(world):
    cat = catalog.create_category(world.sf, world.admin, "Filters")
    fridge = world.product("Filtertest Insulin", storage=StorageCondition.REFRIGERATED,
                           category_id=cat.id, reorder_level=50)
    c2 = world.product("Filtertest Morphine", schedule=Schedule.II)
    soon = world.product("Filtertest Soon")
    world.receive(fridge.id, 10, days=400)
    world.receive(c2.id, 100, days=400)
    world.receive(soon.id, 100, days=12)

    def names(**kw) -> set[str]:
        page = listing.list_products(world.sf, world.pharmacist,
                                     ProductFilter(search="filtertest", **kw), limit=50)
        return {r.name for r in page.rows}

    assert names() == {"Filtertest Insulin", "Filtertest Morphine", "Filtertest Soon"}
    assert names(category_id=cat.id) == {"Filtertest Insulin"}
    assert names(storage=StorageCondition.REFRIGERATED) == {"Filtertest Insulin"}
    assert names(schedule=Schedule.II) == {"Filtertest Morphine"}
    assert names(controlled_only=True) == {"Filtertest Morphine"}
    assert names(low_stock=True) == {"Filtertest Insulin"}
    assert names(expiring_within_days=30) == {"Filtertest Soon"}
    assert names(expired=True) == set()
    with clock.travel(clock.now() + dt.timedelta(days=20)):
        assert names(expired=True) == {"Filtertest Soon"}
    ndc = listing.list_products(world.sf, world.pharmacist, ProductFilter(search=c2.ndc[:7]))
    assert c2.id in {r.id for r in ndc.rows}


def test_patient_search_by_name_birth_date_and_phone(world):
    a = world.patient("Johanna", "Searchova", phone="(217) 555-0199",
                      date_of_birth=dt.date(1944, 2, 29))
    b = world.patient("Peter", "Searchova", phone="217-555-7788")
    world.patient("Searchova", "Other")

    def ids(text: str) -> set:
        return {r.id for r in listing.list_patients(world.sf, world.clerk, text).rows}

    assert {a.id, b.id} <= ids("searchova")
    assert ids("searchova jo") == {a.id}
    assert ids("jo searchova") == {a.id}
    assert ids("Searchova, Pe") == {b.id}
    assert ids("1944-02-29") == {a.id}
    assert ids("02/29/1944") == {a.id}
    assert ids("0199") == {a.id}
    assert b.id in ids("555-7788")
    assert ids("%") == set()  # LIKE wildcards are taken literally


def test_patient_pages(world):
    for i in range(15):
        world.patient(f"P{i:02d}", "Pagerson")
    rows = all_pages(lambda after, n: listing.list_patients(
        world.sf, world.clerk, "pagerson", after=after, limit=n), limit=4)
    assert [r.first_name for r in rows] == [f"P{i:02d}" for i in range(15)]


def test_prescription_filters_and_refills_left(world):
    pat = world.patient("Rxlist", "Person")
    p = world.product("Listdrug")
    world.receive(p.id, 100)
    a = world.rx(pat.id, p.id, refills=2)
    world.rx(pat.id, world.product("Otherdrug").id)
    import uuid

    from getmeds_desktop.services import dispensing
    from getmeds_desktop.services.dispensing import DispenseRequest

    dispensing.dispense(world.sf, world.pharmacist, DispenseRequest(a.id, uuid.uuid4(),
                                                                    no_scan_reason=NO_SCAN))
    page = listing.list_prescriptions(world.sf, world.pharmacist, listing.PrescriptionFilter(
        patient_id=pat.id))
    assert len(page.rows) == 2
    done = listing.list_prescriptions(world.sf, world.pharmacist, listing.PrescriptionFilter(
        statuses=(RxStatus.DISPENSED,), patient_id=pat.id)).rows
    assert [(r.rx_number, r.refills_left) for r in done] == [(a.rx_number, 2)]
    by_number = listing.list_prescriptions(world.sf, world.pharmacist, listing.PrescriptionFilter(
        search=str(a.rx_number))).rows
    assert [r.id for r in by_number] == [a.id]
    assert listing.pick_products(world.sf, world.pharmacist, "listdr")[0].id == p.id
    assert listing.pick_patients(world.sf, world.pharmacist, "rxlist")[0].id == pat.id


@pytest.mark.parametrize("descending", [False, True])
def test_prescriptions_by_date_written_then_received_page_by_page(world, descending):
    """The dispensing queue: oldest written first, the same day by when it came in;
    pages join up on the two-part sort key."""
    pat = world.patient("Queue", "Order")
    p = world.product("Orderdrug")
    today = clock.today()
    written = [today - dt.timedelta(days=d) for d in (1, 5, 1, 3, 5, 1)]
    made = [world.rx(pat.id, p.id, written=w) for w in written]
    f = listing.PrescriptionFilter(patient_id=pat.id)
    rows = all_pages(lambda after, n: listing.list_prescriptions(
        world.sf, world.pharmacist, f, sort="date_written", descending=descending,
        after=after, limit=n), limit=2)
    one_page = listing.list_prescriptions(world.sf, world.pharmacist, f, sort="date_written",
                                          descending=descending).rows
    assert [r.id for r in rows] == [r.id for r in one_page]
    assert sorted(r.id for r in rows) == sorted(rx.id for rx in made)
    keys = [(r.date_written, r.created_at, r.id) for r in rows]
    assert keys == sorted(keys, reverse=descending)
    assert all(r.sort_key == (r.date_written, r.created_at) for r in rows)
    # a refreshed row carries the same two-part key as its page
    again = listing.prescription_rows(world.sf, world.pharmacist, [rows[0].id], f,
                                      sort="date_written")
    assert again[0].sort_key == rows[0].sort_key
