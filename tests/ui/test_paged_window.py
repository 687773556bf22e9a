"""The paged model keeps a bounded window of rows: pages far from what is shown
are released (their keyset position stays) and fetched again when shown."""

from __future__ import annotations

import bisect
import dataclasses
import uuid

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QTableView

from getmeds_desktop.services.listing import After, Page
from getmeds_desktop.ui.tablemodels.paged import PLACEHOLDER, Column, PagedTableModel
from getmeds_desktop.ui.views.patients import PatientsView
from getmeds_desktop.ui.workspace import Workspace


@dataclasses.dataclass(frozen=True)
class Row:
    id: uuid.UUID
    sort_key: str
    name: str


def make_row(i: int, name: str | None = None) -> Row:
    return Row(uuid.UUID(int=i + 1), f"k{i:07d}", name or f"name {i}")


class FakeList:
    """A sorted list served by keyset pages, as the listing service does."""

    def __init__(self, n: int) -> None:
        self.rows = [make_row(i) for i in range(n)]
        self.fetches: list[After | None] = []

    def keys(self) -> list[tuple[str, uuid.UUID]]:
        return [(r.sort_key, r.id) for r in self.rows]

    def fetch(self, _query, _sort, _desc, after: After | None, size: int) -> Page[Row]:
        self.fetches.append(after)
        start = 0 if after is None else bisect.bisect_right(self.keys(), (after.key, after.id))
        got = self.rows[start:start + size]
        return Page(tuple(got), start + size < len(self.rows))

    def refetch(self, _query, _sort, _desc, ids) -> list[Row]:
        wanted = set(ids)
        return [r for r in self.rows if r.id in wanted]

    def rename(self, i: int, name: str) -> Row:
        self.rows[i] = dataclasses.replace(self.rows[i], name=name)
        return self.rows[i]

    def add(self, row: Row) -> None:
        bisect.insort(self.rows, row, key=lambda r: (r.sort_key, r.id))


COLUMNS = [Column("key", "Key", lambda r: r.sort_key, sort="key"),
           Column("name", "Name", lambda r: r.name, sort="key")]


def make_model(tasks, data: FakeList, page_size: int, max_pages: int) -> PagedTableModel:
    return PagedTableModel(tasks, COLUMNS, data.fetch, data.refetch, page_size=page_size,
                           default_sort="key", max_pages=max_pages)


def name_at(model: PagedTableModel, row: int) -> str:
    return model.data(model.index(row, 1))


def load_all(qtbot, model: PagedTableModel) -> None:
    """Every page, as a view scrolled to the end asks for them."""
    qtbot.waitUntil(lambda: not model.loading, timeout=10000)
    while model.canFetchMore():
        model.fetchMore()
        qtbot.waitUntil(lambda: not model.loading, timeout=10000)
        assert model.held_rows <= model.max_pages * model.page_size


def refilled(qtbot, model: PagedTableModel, row: int) -> None:
    """data() of a released row: the placeholder, then its page comes back."""
    assert model.row_at(row) is None
    with qtbot.waitSignal(model.page_refilled, timeout=10000):
        assert name_at(model, row) == PLACEHOLDER
    assert model.row_at(row) is not None


def test_scrolling_a_long_list_to_the_end_and_back_holds_a_bounded_window(qtbot, tasks):
    data = FakeList(50_000)
    model = make_model(tasks, data, page_size=500, max_pages=8)
    view = QTableView()
    qtbot.addWidget(view)
    view.setModel(model)
    view.resize(600, 300)
    view.show()
    most = [0]
    model.rowsInserted.connect(lambda *_: most.__setitem__(0, max(most[0], model.held_rows)))
    model.dataChanged.connect(lambda *_: most.__setitem__(0, max(most[0], model.held_rows)))
    model.set_query(None)
    qtbot.waitUntil(lambda: model.rowCount() == 500 and not model.loading, timeout=10000)
    while model.canFetchMore() or model.loading:
        shown = model.rowCount()
        view.scrollToBottom()
        qtbot.waitUntil(lambda s=shown: model.rowCount() > s or not model.canFetchMore(),
                        timeout=10000)
        qtbot.waitUntil(lambda: not model.loading, timeout=10000)
        assert model.held_rows <= 8 * 500
    assert model.rowCount() == 50_000 and most[0] <= 8 * 500
    bottom = view.rowAt(view.viewport().height() - 2)
    qtbot.waitUntil(lambda: name_at(model, bottom) == f"name {bottom}", timeout=10000)
    # the first rows were released long ago: a placeholder until fetched again
    assert model.row_at(0) is None and model.row_of(data.rows[0].id) == -1
    assert model.data(model.index(0, 1)) == PLACEHOLDER
    view.scrollToTop()
    qtbot.waitUntil(lambda: name_at(model, 0) == "name 0", timeout=10000)
    assert model.data(model.index(0, 1), Qt.ItemDataRole.UserRole) == data.rows[0].id
    assert model.row_of(data.rows[0].id) == 0
    assert model.rowCount() == 50_000 and most[0] <= 8 * 500
    # shown elsewhere: the far end is released again
    for row in range(5_000, 50_000, 5_000):
        view.scrollTo(model.index(row, 0))
        qtbot.waitUntil(lambda r=row: name_at(model, r) == f"name {r}", timeout=10000)
        assert model.held_rows <= 8 * 500
    view.scrollToTop()
    qtbot.waitUntil(lambda: name_at(model, 0) == "name 0", timeout=10000)
    assert model.row_at(49_999) is None


def test_a_model_with_released_pages_follows_the_qt_model_rules(qtbot, qtmodeltester, tasks):
    data = FakeList(2_000)
    model = make_model(tasks, data, page_size=50, max_pages=3)
    model.set_query(None)
    load_all(qtbot, model)
    assert model.rowCount() == 2_000 and model.held_rows == 150
    qtmodeltester.check(model)
    # the check asked for released rows: their pages come back (and others leave)
    qtbot.waitUntil(lambda: not model._refilling and not model._wanted, timeout=10000)
    assert model.held_rows <= 150
    qtmodeltester.check(model)


def test_a_released_page_comes_back_with_what_changed_meanwhile(qtbot, tasks):
    data = FakeList(1_000)
    model = make_model(tasks, data, page_size=100, max_pages=3)
    model.set_query(None)
    load_all(qtbot, model)
    # page 1 (rows 100-199) was released: one row renamed, one added, one deleted
    data.rename(150, "renamed elsewhere")
    del data.rows[130]
    data.add(Row(uuid.uuid4(), "k0000120x", "added elsewhere"))
    refilled(qtbot, model, 150)
    assert model.rowCount() == 1_000  # one in, one out: the page fills its slots
    names = [model.row_at(i).name for i in range(100, 200)]
    assert "renamed elsewhere" in names and "added elsewhere" in names
    assert "name 130" not in names
    assert names[-1] == "name 199"  # the page still ends where it ended

    # page 2 gets two more rows: the page comes back longer, the rows after it move
    data.add(Row(uuid.uuid4(), "k0000250a", "one more"))
    data.add(Row(uuid.uuid4(), "k0000250b", "and another"))
    refilled(qtbot, model, 250)
    assert model.rowCount() == 1_002
    assert [model.row_at(i).sort_key for i in range(200, 302)] == [
        r.sort_key for r in data.rows[200:302]]

    # page 3's last row was deleted: its end is found by comparing keys
    gone = next(i for i, r in enumerate(data.rows) if r.sort_key == "k0000399")
    del data.rows[gone]
    start = model._starts[3]
    refilled(qtbot, model, start)
    assert model.rowCount() == 1_001
    assert model.row_at(start + 98).sort_key == "k0000398"
    refilled(qtbot, model, start + 99)  # page 4 follows
    assert model.row_at(start + 99).sort_key == "k0000400"
    assert all(model.row_at(model.row_of(r.id)) is r for r in model.rows())


def test_a_page_that_cannot_be_placed_again_starts_the_query_over(qtbot, tasks):
    data = FakeList(600)
    model = make_model(tasks, data, page_size=100, max_pages=2)
    model.set_query(None)
    load_all(qtbot, model)
    generation = model.generation
    # more rows came into page 0 than its refill has room for
    for i in range(200):
        data.add(Row(uuid.uuid4(), f"k0000050_{i:03d}", f"burst {i}"))
    with qtbot.waitSignal(model.query_started, timeout=10000):
        assert name_at(model, 10) == PLACEHOLDER
    assert model.generation == generation + 1
    qtbot.waitUntil(lambda: not model.loading and model.rowCount() == 100, timeout=10000)
    assert name_at(model, 10) == data.rows[10].name


def test_refresh_rows_updates_a_shown_row_and_a_released_one_when_it_is_back(qtbot, tasks):
    data = FakeList(3_000)
    model = make_model(tasks, data, page_size=200, max_pages=4)
    model.set_query(None)
    load_all(qtbot, model)
    shown, released = 2_950, 10
    data.rename(shown, "shown and renamed")
    data.rename(released, "released and renamed")
    with qtbot.waitSignal(model.dataChanged, timeout=10000):
        model.refresh_rows([data.rows[shown].id, data.rows[released].id])
    assert name_at(model, shown) == "shown and renamed"
    refilled(qtbot, model, released)
    assert name_at(model, released) == "released and renamed"
    # every held row (None): the released ones are not asked for
    model.refresh_rows(None)
    qtbot.waitUntil(lambda: not model._refreshing, timeout=10000)
    assert model.rowCount() == 3_000


def test_the_selected_rows_page_stays_while_the_view_scrolls_away(qtbot, tasks):
    data = FakeList(5_000)
    model = make_model(tasks, data, page_size=100, max_pages=3)
    model.set_query(None)
    qtbot.waitUntil(lambda: not model.loading and model.rowCount() == 100, timeout=10000)
    wanted = data.rows[42].id
    model.keep_rows([model.row_of(wanted)])
    load_all(qtbot, model)
    assert model.row_of(wanted) == 42 and model.row_at(42).id == wanted
    assert model.row_at(142) is None  # its neighbour page was released
    assert model.held_rows <= 4 * 100  # the cap, and the one kept page


@pytest.fixture
def patients_ws(gui_world, connector, empty_config):
    target, world = gui_world
    for i in range(60):
        world.patient(f"Win{i:02d}", f"Windowson{i:02d}")
    ws = Workspace(connector.open(target), world.pharmacist, empty_config)
    yield ws, world
    ws.tasks.shutdown()


def test_the_patients_list_scrolls_with_a_bounded_window(qtbot, patients_ws):
    ws, world = patients_ws
    view = PatientsView(ws)
    qtbot.addWidget(view)
    view.model.page_size = 5
    view.model.max_pages = 3
    view.resize(1000, 300)
    view.show()
    view.search.setText("windowson")
    view.search.flush()  # no search waiting on the typing timer
    view.activate()
    model = view.model
    qtbot.waitUntil(lambda: not model.loading and model.rowCount() == 5, timeout=10000)
    view.table.selectRow(2)
    chosen = view.selected_row()
    assert model._pinned == {0}, model._pinned
    assert chosen is not None and chosen.last_name == "Windowson02"
    while model.canFetchMore() or model.loading:
        shown = model.rowCount()
        view.table.scrollToBottom()
        qtbot.waitUntil(lambda s=shown: model.rowCount() > s or not model.canFetchMore(),
                        timeout=10000)
        qtbot.waitUntil(lambda: not model.loading, timeout=10000)
        assert model.held_rows <= 4 * 5  # three pages and the selected row's
    assert model.rowCount() == 60
    # the selected patient's page stayed: its actions still apply
    assert view.selected_id() == chosen.id and view.act_profile.isEnabled()
    assert model.row_at(7) is None  # a page between was released
    # a row of a released page shown again: fetched by its keyset position
    view.table.scrollTo(model.index(7, 0))
    qtbot.waitUntil(lambda: model.row_at(7) is not None, timeout=10000)
    assert model.row_at(7).last_name == "Windowson07"


def test_a_refill_that_arrives_after_a_new_query_is_dropped(qtbot, tasks):
    import threading

    data = FakeList(1_000)
    model = make_model(tasks, data, page_size=100, max_pages=2)
    model.set_query(None)
    load_all(qtbot, model)
    gate, started = threading.Event(), threading.Event()
    real = data.fetch

    def slow_refill(query, sort, desc, after, size):
        if after is not None and after.key == "k0000099":  # page 1's refill
            started.set()
            gate.wait(10)
        return real(query, sort, desc, after, size)

    model._fetch = slow_refill
    assert name_at(model, 150) == PLACEHOLDER
    qtbot.waitUntil(started.is_set, timeout=10000)
    generation = model.set_query("another")  # the refill is still in the worker
    gate.set()
    qtbot.waitUntil(lambda: not model.loading and model.rowCount() == 100, timeout=10000)
    tasks.wait_idle()
    qtbot.waitUntil(lambda: not model._refilling, timeout=10000)
    assert model.generation == generation and model.rowCount() == 100
    assert [model.row_at(i).name for i in range(100)] == [f"name {i}" for i in range(100)]
