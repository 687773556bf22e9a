"""A table model that loads pages lazily from the database, in the background.

* ``canFetchMore``/``fetchMore`` ask for the next keyset page when the view
  scrolls near the end; the page is fetched by the DB worker and inserted when
  it arrives.
* Sorting is done by the database (``sort()`` starts a new query); so is
  filtering (``set_query()``).
* Every new query bumps a generation counter; a page that arrives for an older
  generation is dropped.
* The loading flag is cleared *before* ``endInsertRows()``, so a view that
  asks for more while rows are inserted gets exactly one next page.
* ``refresh_rows(ids)`` re-reads some rows in place (selection and scroll stay),
  drops rows that no longer match and takes in new ones that do.
* A bounded window of rows: the row count covers every page loaded so far (the
  scrollbar and row numbers stay), but row objects are held for at most
  ``max_pages`` pages, the ones shown most recently (and those of the selected
  rows). A released page keeps only its keyset position (``after``, ``end``);
  ``data()`` of one of its rows gives a placeholder and fetches the page again
  in the background (``dataChanged`` when it is back). Scrolling a million
  patients no longer keeps a million row objects.
"""

from __future__ import annotations

import bisect
import dataclasses
import logging
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Generic, TypeVar

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QPersistentModelIndex,
    Qt,
    QTimer,
    Signal,
    Slot,
)
from PySide6.QtGui import QBrush, QColor, QFont

from ...services.listing import After, Page
from ..tasks import TaskManager

log = logging.getLogger(__name__)

R = TypeVar("R")
Index = QModelIndex | QPersistentModelIndex

ALIGN_LEFT = int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
ALIGN_RIGHT = int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
ALIGN_CENTER = int(Qt.AlignmentFlag.AlignCenter)


@dataclasses.dataclass(frozen=True)
class Column(Generic[R]):
    key: str
    title: str
    value: Callable[[R], Any]
    sort: str | None = None  # the service's sort name; None: not sortable
    align: int = ALIGN_LEFT
    width: int = 120
    tooltip: Callable[[R], str | None] | None = None
    foreground: Callable[[R], QColor | None] | None = None
    background: Callable[[R], QColor | None] | None = None
    bold: Callable[[R], bool] | None = None
    stretch: bool = False  # gets the room the other columns leave


Fetch = Callable[[Any, str, bool, After | None, int], Page[Any]]
# (query, sort, descending, ids) -> those rows that match the query, with sort keys
Refetch = Callable[[Any, str, bool, Sequence[uuid.UUID]], list[Any]]


MAX_PAGES = 40  # pages whose row objects are held at most (the rest: their keyset position)
MAX_REFILLS = 2  # released pages being fetched again at the same time
PLACEHOLDER = "…"  # what a released row shows until its page is back
PENDING_MARK = "⏳ "  # a row changed offline, not yet confirmed by the server
PENDING_TIP = ("Changed on this workstation while offline: waiting for the server to "
               "confirm it (see the status bar).")
# The roles a cell answers (see _cell); a view asks each visible cell for about
# a dozen, and answering the rest at once is a third of a repaint's Python time.
_ROLES = frozenset(int(r) for r in (
    Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.TextAlignmentRole,
    Qt.ItemDataRole.ToolTipRole, Qt.ItemDataRole.ForegroundRole,
    Qt.ItemDataRole.BackgroundRole, Qt.ItemDataRole.FontRole, Qt.ItemDataRole.UserRole))


@dataclasses.dataclass(eq=False, slots=True)
class _Page:
    """One keyset page: the position it was fetched after (None: the list's
    start), its last row's position ``end`` (the next page's ``after``; None
    only for a first page whose rows all left), how many rows of the model it
    fills, and its rows while held (None once released)."""

    after: After | None
    end: After | None
    size: int
    rows: list[Any] | None


class PagedTableModel(QAbstractTableModel):
    """Rows are frozen dataclasses with ``id`` and ``sort_key``."""

    page_loaded = Signal(int, int)  # generation, rows now in the model
    page_refilled = Signal(int)  # page number: a released page is back
    load_failed = Signal(object)
    query_started = Signal(int)  # generation

    def __init__(self, tasks: TaskManager, columns: Sequence[Column[Any]], fetch: Fetch,
                 refetch: Refetch | None = None, *, page_size: int = 200,
                 default_sort: str = "name", default_descending: bool = False,
                 max_pages: int = MAX_PAGES, parent: Any = None) -> None:
        super().__init__(parent)
        self.tasks = tasks
        # the ids of rows changed offline and not yet confirmed by the server
        # (set_pending): their first cell says so
        self._pending: frozenset[Any] = frozenset()
        self.pending_source: Callable[[], frozenset[Any]] | None = None
        self.columns = list(columns)
        self._fetch = fetch
        self._refetch = refetch
        self.page_size = page_size
        self.max_pages = max_pages
        self._pages: list[_Page] = []
        self._starts: list[int] = []  # the first row of each page
        self._count = 0  # rows of every page loaded so far, held or not
        self._tail: After | None = None  # where the next page starts
        # held pages with rows, least recently shown first
        self._held: OrderedDict[int, None] = OrderedDict()
        self._index: dict[uuid.UUID, int] = {}  # id -> row, of the held rows only
        self._pinned: set[int] = set()  # pages of the selected rows: never released
        self._wanted: OrderedDict[int, None] = OrderedDict()  # released pages shown
        self._refilling: set[int] = set()
        self._failed: set[int] = set()  # refills that failed: not asked again until reset
        self._refill_timer = QTimer(self)
        self._refill_timer.setSingleShot(True)
        self._refill_timer.setInterval(0)
        self._refill_timer.timeout.connect(self._start_refills)
        self._query: Any = None
        self._sort = default_sort
        self._descending = default_descending
        self._generation = 0
        self._loading = False
        self._has_more = False
        self._started = False
        self._refreshing = False
        self._refresh_pending: set[uuid.UUID] = set()
        self._load_token = 0

    # ------------------------------------------------------------- querying

    @property
    def generation(self) -> int:
        return self._generation

    @property
    def loading(self) -> bool:
        return self._loading

    @property
    def query(self) -> Any:
        return self._query

    @property
    def sort_key(self) -> tuple[str, bool]:
        return self._sort, self._descending

    @property
    def held_rows(self) -> int:
        """How many row objects the model holds now (bounded by ``max_pages``)."""
        return sum(len(p.rows) for p in self._pages if p.rows is not None)

    def all_rows(self, page_size: int = 2000) -> Callable[[], Iterator[Any]]:
        """Every row the current query and sort match, not only the loaded ones:
        a generator to run in the worker (it captures the query now)."""
        fetch, query, sort, desc = self._fetch, self._query, self._sort, self._descending

        def rows() -> Iterator[Any]:
            after = None
            while True:
                page = fetch(query, sort, desc, after, page_size)
                yield from page.rows
                if not page.has_more or not page.rows:
                    return
                after = After(page.rows[-1].sort_key, page.rows[-1].id)

        return rows

    def set_query(self, query: Any) -> int:
        """Start over with a new filter; returns the new generation."""
        self._query = query
        return self._restart()

    def reload(self) -> int:
        return self._restart()

    def _restart(self) -> int:
        self._generation += 1
        self.beginResetModel()
        self._pages, self._starts, self._count, self._tail = [], [], 0, None
        self._held.clear()
        self._index = {}
        self._pinned.clear()
        self._wanted.clear()
        self._refilling.clear()
        self._failed.clear()
        self._refill_timer.stop()
        self._has_more = False
        self._loading = False
        self._refresh_pending.clear()
        self.endResetModel()
        self._started = True
        self.query_started.emit(self._generation)
        self._load_page(None)
        return self._generation

    def _load_page(self, after: After | None) -> None:
        self._loading = True
        self._load_token += 1
        generation, token = self._generation, self._load_token
        query, sort, desc, size = self._query, self._sort, self._descending, self.page_size
        self.tasks.run(
            lambda: self._fetch(query, sort, desc, after, size),
            lambda page: self._on_page(generation, after, page),
            lambda exc: self._on_error(generation, exc),
            always=lambda: self._load_settled(token),
        )

    def _load_settled(self, token: int) -> None:
        """After the page task ended in any way (page, error, bug, cancel): a
        load that delivered no page must not leave the list "loading" for good."""
        if token == self._load_token:
            self._loading = False

    def _on_page(self, generation: int, after: After | None, page: Page[Any]) -> None:
        if generation != self._generation:
            return  # a newer query started meanwhile: this page is stale
        self._loading = False  # before endInsertRows: see the module docstring
        self._has_more = page.has_more
        if page.rows:
            last = page.rows[-1]
            end = After(last.sort_key, last.id)
            self._tail = end
            new = [r for r in page.rows if r.id not in self._index]
            first = self._count
            if new:
                self.beginInsertRows(QModelIndex(), first, first + len(new) - 1)
            # a page even when all its rows were shown already (a refresh took
            # them in): the pages' positions stay a chain, after -> end -> after
            self._pages.append(_Page(after, end, len(new), new))
            self._starts.append(first)
            self._count += len(new)
            if new:
                number = len(self._pages) - 1
                for i, r in enumerate(new):
                    self._index[r.id] = first + i
                self._held[number] = None
                self._trim(number)  # before the view hears of the rows: never over the cap
                self.endInsertRows()
        self.page_loaded.emit(generation, self._count)

    def _on_error(self, generation: int, exc: BaseException) -> None:
        if generation == self._generation:
            self._loading = False
            self._has_more = False
            self.load_failed.emit(exc)

    def canFetchMore(self, parent: Index = QModelIndex()) -> bool:  # noqa: N802, B008
        return (not parent.isValid() and self._started and self._has_more
                and not self._loading)

    def fetchMore(self, parent: Index = QModelIndex()) -> None:  # noqa: N802, B008
        if not self.canFetchMore(parent) or self._tail is None:
            return
        self._load_page(self._tail)

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        if not 0 <= column < len(self.columns):
            return
        key = self.columns[column].sort
        if key is None:
            return  # not a sortable column
        desc = order == Qt.SortOrder.DescendingOrder
        if (key, desc) == (self._sort, self._descending) and self._started:
            return
        self._sort, self._descending = key, desc
        if self._started:
            self._restart()

    def set_sort(self, key: str, descending: bool) -> None:
        """Choose the sort before the first query (e.g. restored settings)."""
        self._sort, self._descending = key, descending

    def sort_column(self) -> int:
        for i, c in enumerate(self.columns):
            if c.sort == self._sort:
                return i
        return -1

    # ------------------------------------------------- the window of rows

    def _page_of(self, row: int) -> int:
        return bisect.bisect_right(self._starts, row) - 1

    def _trim(self, keep: int) -> None:
        """Release the least recently shown pages beyond ``max_pages`` (never
        ``keep``, the page just used, nor a page of a selected row)."""
        extra = len(self._held) - max(self.max_pages, 1)
        if extra <= 0:
            return
        victims = []
        for number in self._held:
            if extra == 0:
                break
            if number != keep and number not in self._pinned:
                victims.append(number)
                extra -= 1
        for number in victims:
            self._release(number)

    def _release(self, number: int) -> None:
        page = self._pages[number]
        del self._held[number]
        if page.rows is None:
            return
        first = self._starts[number]
        for i, r in enumerate(page.rows):
            if self._index.get(r.id) == first + i:
                del self._index[r.id]
        page.rows = None

    def _reindex(self) -> None:
        self._index = {}
        for number in self._held:
            rows = self._pages[number].rows
            if rows is not None:
                first = self._starts[number]
                for i, r in enumerate(rows):
                    self._index[r.id] = first + i

    def _shift(self, number: int, delta: int) -> None:
        """Page ``number`` grew (or shrank) by ``delta`` rows."""
        self._pages[number].size += delta
        self._count += delta
        for i in range(number + 1, len(self._starts)):
            self._starts[i] += delta

    def keep_rows(self, rows: Iterable[int]) -> None:
        """The view's selected rows: their pages stay held (a few at most), and
        a selected row whose page was released is fetched again."""
        pinned: set[int] = set()
        for row in rows:
            if 0 <= row < self._count:
                pinned.add(self._page_of(row))
            if len(pinned) >= 4:
                break
        self._pinned = pinned
        for number in pinned:
            if self._pages[number].rows is None:
                self._want(number)

    def _want(self, number: int) -> None:
        if number in self._refilling or number in self._failed:
            return
        self._wanted[number] = None
        self._wanted.move_to_end(number)
        while len(self._wanted) > 8:  # what scrolled past long ago is not shown now
            self._wanted.popitem(last=False)
        if not self._refill_timer.isActive():
            self._refill_timer.start()  # not from inside data(): after the paint

    def _start_refills(self) -> None:
        while self._wanted and len(self._refilling) < MAX_REFILLS:
            number, _ = self._wanted.popitem(last=True)  # the latest shown first
            if number < len(self._pages) and self._pages[number].rows is None:
                self._refill(number)

    def _refill(self, number: int) -> None:
        """Fetch a released page again from its keyset position, with room for
        rows that came in meanwhile."""
        page = self._pages[number]
        self._refilling.add(number)
        generation = self._generation
        query, sort, desc = self._query, self._sort, self._descending
        after, size = page.after, page.size + max(20, page.size // 4)
        self.tasks.run(
            lambda: self._fetch(query, sort, desc, after, size),
            lambda got: self._on_refill(generation, number, got),
            lambda exc: self._on_refill_error(generation, number, exc),
            always=lambda: self._refill_settled(generation, number),
        )

    def _refill_settled(self, generation: int, number: int) -> None:
        if generation == self._generation:
            self._refilling.discard(number)
            if self._wanted and not self._refill_timer.isActive():
                self._refill_timer.start()

    def _on_refill_error(self, generation: int, number: int, exc: BaseException) -> None:
        if generation == self._generation:
            self._failed.add(number)  # shown as placeholders until the next query
            self.load_failed.emit(exc)

    def _cut(self, page: _Page, got: Page[Any]) -> int | None:
        """How many of the fetched rows lie in the page's range (after, end];
        None when that cannot be told."""
        end = page.end
        if end is None:
            return None
        for i, r in enumerate(got.rows):
            if r.id == end.id and r.sort_key == end.key:
                return i + 1
        # the row that ended the page is gone, or its key changed: compare keys
        # (as SQL orders them: the keys of the lists' sorts compare alike in Python)
        try:
            inside = [not self._comes_after((r.sort_key, r.id), (end.key, end.id))
                      for r in got.rows]
        except TypeError:
            return None
        n = sum(inside)
        if any(inside[n:]) or not all(inside[:n]):
            return None  # Python's order is not SQL's here
        if n == len(got.rows) and got.has_more:
            return None  # more rows came in than the fetch had room for
        return n

    def _on_refill(self, generation: int, number: int, got: Page[Any]) -> None:
        if generation != self._generation:
            return  # a newer query started meanwhile
        page = self._pages[number]
        if page.rows is not None:
            return
        n = self._cut(page, got)
        if n is None:
            # Which rows now lie between this page's ends cannot be told (rows
            # changed around its last one on another workstation): the simplest
            # correct thing is to start the query over (the list goes back to
            # its top). Rare: the page's last row must have changed meanwhile.
            log.info("a released page could not be placed again; the list starts over")
            self._restart()
            return
        # rows shown in another page already stay there (as when the page
        # was first loaded)
        rows = [r for r in got.rows[:n] if r.id not in self._index]
        first, old = self._starts[number], page.size
        # the page fills its slots again; rows that came in or left meanwhile
        # make it longer or shorter at its end
        grow = len(rows) - old
        if grow > 0:
            self.beginInsertRows(QModelIndex(), first + old, first + len(rows) - 1)
        elif grow < 0:
            self.beginRemoveRows(QModelIndex(), first + len(rows), first + old - 1)
        page.rows = rows
        if grow:
            self._shift(number, grow)
        if rows:
            self._held[number] = None
            self._held.move_to_end(number)
        self._trim(number)
        if grow:
            self._reindex()  # the rows after this page moved
        else:
            self._index.update((r.id, first + i) for i, r in enumerate(rows))
        if grow > 0:
            self.endInsertRows()
        elif grow < 0:
            self.endRemoveRows()
        if rows:
            self.dataChanged.emit(self.index(first, 0),
                                  self.index(first + len(rows) - 1, len(self.columns) - 1))
        self.page_refilled.emit(number)

    # -------------------------------------------------------- live refresh

    def refresh_rows(self, ids: Sequence[uuid.UUID] | None = None) -> None:
        """Re-read rows after a change here or on another workstation.

        ``ids`` None means every held row (a released page is read again
        anyway when it is shown again). A shown row that changed is updated
        where it is; one that no longer matches the filter leaves; a row that
        now matches comes in at its place if that place is in a held page
        (otherwise paging, or the page's refill, brings it). Selection and
        scroll stay with the rows. Refreshes that arrive while one runs are
        merged into the next.
        """
        if self._refetch is None or not self._started:
            return
        wanted = list(self._index) if ids is None else list(ids)
        if not wanted:
            return
        if self._refreshing:
            self._refresh_pending.update(wanted)
            return
        self._refreshing = True
        generation = self._generation
        query, sort, desc = self._query, self._sort, self._descending
        refetch = self._refetch

        def read() -> list[Any]:
            rows: list[Any] = []
            for i in range(0, len(wanted), 500):
                rows.extend(refetch(query, sort, desc, wanted[i:i + 500]))
            return rows

        self.tasks.run(read, lambda rows: self._on_refreshed(generation, wanted, rows),
                       self.load_failed.emit, always=self._refresh_done)

    def _refresh_done(self) -> None:
        """After the refresh task ended in any way: the next change is applied."""
        self._refreshing = False
        if self._refresh_pending and self._started:
            more, self._refresh_pending = list(self._refresh_pending), set()
            self.refresh_rows(more)

    def _on_refreshed(self, generation: int, wanted: list[uuid.UUID], rows: list[Any]) -> None:
        if generation == self._generation:
            self._apply_refresh(wanted, rows)

    def _apply_refresh(self, wanted: list[uuid.UUID], rows: list[Any]) -> None:
        fresh = {r.id: r for r in rows}
        gone: list[int] = []
        last = len(self.columns) - 1
        for rid in dict.fromkeys(wanted):
            row = self._index.get(rid)
            if row is None:
                continue  # not held: its page is read again when it is shown
            new = fresh.pop(rid, None)
            if new is None:
                gone.append(row)  # deleted, or no longer matches the filter
                continue
            number = self._page_of(row)
            held = self._pages[number].rows
            assert held is not None
            old = held[row - self._starts[number]]
            # keep the key it was loaded with: the list stays in paging order
            new = dataclasses.replace(new, sort_key=old.sort_key)
            if new != old:
                held[row - self._starts[number]] = new
                self.dataChanged.emit(self.index(row, 0), self.index(row, last))
        for row in sorted(gone, reverse=True):
            self._remove_row(row)
        inserted = False
        for new in fresh.values():  # rows not shown before that match now
            place = self._place_of(new)
            if place is None:
                continue
            self._insert_row(*place, new)
            inserted = True
        if gone or inserted:
            self._reindex()

    def _remove_row(self, row: int) -> None:
        number = self._page_of(row)
        page = self._pages[number]
        assert page.rows is not None
        self.beginRemoveRows(QModelIndex(), row, row)
        removed = page.rows.pop(row - self._starts[number])
        self._shift(number, -1)
        if page.end is not None and (removed.id, removed.sort_key) == (page.end.id,
                                                                       page.end.key):
            # the page's last row left: the boundary moves back to the row
            # before it, so the page's refill can find its end again
            prev = page.rows[-1] if page.rows else None
            end = After(prev.sort_key, prev.id) if prev is not None else page.after
            page.end = end
            if number + 1 < len(self._pages):
                self._pages[number + 1].after = end
            else:
                self._tail = end
        if not page.rows:
            self._held.pop(number, None)  # an empty page is never released nor refilled
            page.rows = []
        self.endRemoveRows()

    def _insert_row(self, number: int, offset: int, new: Any) -> None:
        page = self._pages[number]
        assert page.rows is not None
        first = self._starts[number]
        self.beginInsertRows(QModelIndex(), first + offset, first + offset)
        page.rows.insert(offset, new)
        self._shift(number, +1)
        key = (new.sort_key, new.id)
        if page.end is None or self._comes_after(key, (page.end.key, page.end.id)):
            # after the last row of the whole list (no more pages): the end moves
            page.end = After(new.sort_key, new.id)
            self._tail = page.end
        self._held[number] = None
        self.endInsertRows()

    def _comes_after(self, a: tuple[Any, Any], b: tuple[Any, Any]) -> bool:
        return a < b if self._descending else a > b

    def _place_of(self, new: Any) -> tuple[int, int] | None:
        """Where a new row belongs (page, offset in it); None if its page is
        released (the refill brings it) or after the loaded pages while more
        remain (paging will bring it)."""
        key = (new.sort_key, new.id)
        pages = self._pages
        try:
            # the first page whose end is at or after the row: its range holds it
            lo, hi = 0, len(pages)
            while lo < hi:
                mid = (lo + hi) // 2
                end = pages[mid].end
                if end is not None and not self._comes_after(key, (end.key, end.id)):
                    hi = mid
                else:
                    lo = mid + 1
            if lo == len(pages):
                if self._has_more:
                    return None
                if not pages:  # the list was empty: the row starts it
                    self._pages.append(_Page(None, None, 0, []))
                    self._starts.append(0)
                lo = len(pages) - 1
            rows = pages[lo].rows
            if rows is None:
                return None
            a, b = 0, len(rows)
            while a < b:
                mid = (a + b) // 2
                if self._comes_after((rows[mid].sort_key, rows[mid].id), key):
                    b = mid
                else:
                    a = mid + 1
        except TypeError:
            return None
        return lo, a

    # ----------------------------------------------------------- Qt model

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: N802, B008
        return 0 if parent.isValid() else self._count

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: N802, B008
        return 0 if parent.isValid() else len(self.columns)

    def row_at(self, row: int) -> Any:
        """The row object, or None while its page is released (it is fetched
        again when shown)."""
        if not 0 <= row < self._count:
            raise IndexError(row)
        number = self._page_of(row)
        rows = self._pages[number].rows
        return None if rows is None else rows[row - self._starts[number]]

    def row_of(self, row_id: uuid.UUID) -> int:
        """The row of an id among the held rows; -1 if not held."""
        return self._index.get(row_id, -1)

    def rows(self) -> list[Any]:
        """The held rows, in order."""
        return [r for p in self._pages if p.rows is not None for r in p.rows]

    def _row(self, row: int) -> Any:
        number = self._page_of(row)
        page = self._pages[number]
        if number in self._held:
            self._held.move_to_end(number)  # shown now: the last to be released
        if page.rows is None:
            self._want(number)
            return None
        return page.rows[row - self._starts[number]]

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if role not in _ROLES or not index.isValid() or index.row() >= self._count:
            return None
        row = self._row(index.row())
        col = self.columns[index.column()]
        if row is None:  # released: fetched again, shown when it is back
            if role == Qt.ItemDataRole.DisplayRole:
                return PLACEHOLDER
            return col.align if role == Qt.ItemDataRole.TextAlignmentRole else None
        if self._pending and index.column() == 0 and row.id in self._pending:
            if role == Qt.ItemDataRole.DisplayRole:
                return PENDING_MARK + str(_cell(col, row, role))
            if role == Qt.ItemDataRole.ToolTipRole:
                return PENDING_TIP
        return _cell(col, row, role)

    @Slot()
    def refresh_pending(self) -> None:
        if self.pending_source is not None:
            self.set_pending(self.pending_source())

    def set_pending(self, ids: frozenset[Any]) -> None:
        """Mark the rows changed offline that the server has not confirmed."""
        if ids == self._pending:
            return
        self._pending = ids
        if self._count:
            self.dataChanged.emit(self.index(0, 0), self.index(self._count - 1, 0))

    def headerData(self, section: int, orientation: Qt.Orientation,  # noqa: N802
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation != Qt.Orientation.Horizontal or not 0 <= section < len(self.columns):
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return self.columns[section].title
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return self.columns[section].align
        return None

    def flags(self, index: Index) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable


def _cell(col: Column[Any], row: Any, role: int) -> Any:
    if role == Qt.ItemDataRole.DisplayRole:
        value = col.value(row)
        return "" if value is None else str(value)
    if role == Qt.ItemDataRole.TextAlignmentRole:
        return col.align
    if role == Qt.ItemDataRole.ToolTipRole and col.tooltip is not None:
        return col.tooltip(row)
    if role == Qt.ItemDataRole.ForegroundRole and col.foreground is not None:
        color = col.foreground(row)
        return QBrush(color) if color is not None else None
    if role == Qt.ItemDataRole.BackgroundRole and col.background is not None:
        color = col.background(row)
        return QBrush(color) if color is not None else None
    if role == Qt.ItemDataRole.FontRole and col.bold is not None and col.bold(row):
        f = QFont()
        f.setBold(True)
        return f
    if role == Qt.ItemDataRole.UserRole:
        return getattr(row, "id", None)
    return None


class ListTableModel(QAbstractTableModel):
    """A small, fully loaded list (lots of one product, staff, count lines...)."""

    def __init__(self, columns: Sequence[Column[Any]], parent: Any = None) -> None:
        super().__init__(parent)
        self.columns = list(columns)
        self._rows: list[Any] = []

    def set_rows(self, rows: Sequence[Any]) -> None:
        self.beginResetModel()
        self._rows = list(rows)
        self.endResetModel()

    def rows(self) -> list[Any]:
        return list(self._rows)

    def row_at(self, row: int) -> Any:
        return self._rows[row]

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: N802, B008
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: N802, B008
        return 0 if parent.isValid() else len(self.columns)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if role not in _ROLES or not index.isValid() or index.row() >= len(self._rows):
            return None
        return _cell(self.columns[index.column()], self._rows[index.row()], role)

    headerData = PagedTableModel.headerData  # noqa: N815
    flags = PagedTableModel.flags
