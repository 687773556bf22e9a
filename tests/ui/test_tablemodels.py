"""The paged table models: Qt model rules, lazy pages, stale pages dropped, SQL sorting."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QTableView

from getmeds_desktop.services import listing
from getmeds_desktop.ui.tablemodels.models import patient_model, prescription_model, product_model
from getmeds_desktop.ui.workspace import Workspace


@pytest.fixture
def seeded_ws(gui_world, connector, empty_config, qtbot):
    target, world = gui_world
    for i in range(45):
        p = world.product(f"Modeltest {i:02d}", reorder_level=i % 7)
        if i % 2:
            world.receive(p.id, i + 1, days=20 + i)
    for i in range(30):
        world.patient(f"Pat{i:02d}", "Modelson")
    ws = Workspace(connector.open(target), world.pharmacist, empty_config)
    yield ws, world
    ws.tasks.shutdown()


def loaded(qtbot, model, n=None):
    qtbot.waitUntil(lambda: not model.loading and model.rowCount() > 0
                    and (n is None or model.rowCount() >= n), timeout=10000)


@pytest.mark.parametrize("factory", [product_model, patient_model, prescription_model])
def test_models_follow_the_qt_model_rules(qtbot, qtmodeltester, seeded_ws, factory):
    ws, world = seeded_ws
    if factory is prescription_model:
        pat = world.patient()
        for p in listing.list_products(ws.sf, ws.actor, listing.ProductFilter(
                search="Modeltest"), limit=5).rows:
            world.rx(pat.id, p.id)
    model = factory(ws)
    model.set_query(None)
    loaded(qtbot, model)
    qtmodeltester.check(model)


def test_scrolling_fetches_further_pages(qtbot, seeded_ws):
    ws, _ = seeded_ws
    model = product_model(ws)
    model.page_size = 10
    view = QTableView()
    qtbot.addWidget(view)
    view.setModel(model)
    view.resize(600, 200)
    view.show()
    model.set_query(listing.ProductFilter(search="Modeltest"))
    loaded(qtbot, model)
    assert model.rowCount() == 10 and model.canFetchMore()
    for expected in (20, 30, 40, 45):
        view.scrollToBottom()
        qtbot.waitUntil(lambda e=expected: model.rowCount() >= e and not model.loading,
                        timeout=10000)
    assert not model.canFetchMore()
    names = [model.row_at(i).name for i in range(model.rowCount())]
    assert names == sorted(names) and len(set(names)) == 45


def test_a_newer_search_drops_stale_pages(qtbot, seeded_ws):
    ws, _ = seeded_ws
    model = product_model(ws)
    inserted: list[str] = []
    model.rowsInserted.connect(lambda _p, a, b: inserted.extend(
        model.row_at(i).name for i in range(a, b + 1)))
    old = model.set_query(listing.ProductFilter(search="Modeltest 0"))
    new = model.set_query(listing.ProductFilter(search="Modeltest 1"))
    assert new == old + 1
    with qtbot.waitSignal(model.page_loaded, timeout=10000,
                          check_params_cb=lambda g, n: g == new):
        pass
    ws.tasks.wait_idle()
    qtbot.waitUntil(lambda: not model.loading)
    assert inserted and all(n.startswith("Modeltest 1") for n in inserted)
    assert model.rowCount() == 10


def test_sorting_is_done_by_the_database(qtbot, seeded_ws):
    ws, _ = seeded_ws
    model = product_model(ws)
    model.page_size = 15
    model.set_query(listing.ProductFilter(search="Modeltest"))
    loaded(qtbot, model)
    col = [c.key for c in model.columns].index("on_hand")
    model.sort(col, Qt.SortOrder.DescendingOrder)
    loaded(qtbot, model)
    # the first page already holds the biggest on-hand values of all 45 products
    top = [model.row_at(i).on_hand for i in range(model.rowCount())]
    assert top == sorted(top, reverse=True)
    assert top[0] == 44 and model.rowCount() == 15  # the most received: 43 + 1


def test_refresh_rows_keeps_position(qtbot, seeded_ws):
    ws, world = seeded_ws
    model = product_model(ws)
    model.set_query(listing.ProductFilter(search="Modeltest"))
    loaded(qtbot, model)
    target = model.row_at(3)
    world.receive(target.id, 500)
    before = [model.row_at(i).id for i in range(model.rowCount())]
    with qtbot.waitSignal(model.dataChanged, timeout=10000):
        model.refresh_rows([target.id])
    assert [model.row_at(i).id for i in range(model.rowCount())] == before
    assert model.row_at(3).on_hand == target.on_hand + 500


def test_refresh_drops_rows_that_stop_matching_and_takes_in_new_ones(qtbot, seeded_ws):
    """A low-stock list: a product that gets stock leaves, one that runs low
    comes in at its place by name, and the selected row's identity is kept."""
    ws, world = seeded_ws
    model = product_model(ws)
    model.set_query(listing.ProductFilter(search="Modeltest", low_stock=True))
    loaded(qtbot, model)
    names = [model.row_at(i).name for i in range(model.rowCount())]
    assert names == sorted(names)
    leaving = model.row_at(1)
    world.receive(leaving.id, 500)
    newcomer = world.product("Modeltest 07b", reorder_level=5)  # no stock: low
    kept = model.row_at(3).id
    with qtbot.waitSignal(model.rowsRemoved, timeout=10000):
        model.refresh_rows([leaving.id, newcomer.id])
    qtbot.waitUntil(lambda: model.row_of(newcomer.id) >= 0, timeout=10000)
    ids = [model.row_at(i).id for i in range(model.rowCount())]
    assert leaving.id not in ids and kept in ids
    after = [model.row_at(i).name for i in range(model.rowCount())]
    assert after == sorted(after)  # the newcomer sits where paging would have put it
    assert all(model.row_of(r) == i for i, r in enumerate(ids))  # the id index is right


def test_a_bug_in_a_page_or_refresh_never_leaves_the_list_stuck(qtbot, seeded_ws):
    """Whatever ends a background read (a page, an error, a bug), the list's
    loading and refreshing state is cleared and the next change is applied."""
    ws, world = seeded_ws
    model = product_model(ws)
    model.set_query(listing.ProductFilter(search="Modeltest"))
    loaded(qtbot, model)
    bugs: list[BaseException] = []
    ws.tasks.unexpected_error.connect(lambda exc, _tb: bugs.append(exc))

    real_refetch, calls = model._refetch, []

    def refetch_failing_once(*args):
        calls.append(args)
        if len(calls) == 1:
            raise RuntimeError("a bug in the refresh")
        return real_refetch(*args)

    model._refetch = refetch_failing_once
    target = model.row_at(2)
    world.receive(target.id, 7)
    model.refresh_rows([target.id])
    qtbot.waitUntil(lambda: bool(bugs), timeout=10000)
    assert not model._refreshing
    with qtbot.waitSignal(model.dataChanged, timeout=10000):
        model.refresh_rows([target.id])
    assert model.row_at(2).on_hand == target.on_hand + 7

    real_fetch = model._fetch
    model._fetch = lambda *a: (_ for _ in ()).throw(RuntimeError("a bug in paging"))
    model.set_query(listing.ProductFilter(search="Modeltest 1"))
    qtbot.waitUntil(lambda: len(bugs) == 2, timeout=10000)
    assert not model.loading
    model._fetch = real_fetch
    model.reload()
    loaded(qtbot, model, 10)
