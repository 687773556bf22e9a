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
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Generic, TypeVar

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QFont

from ...services.listing import After, Page
from ..tasks import TaskManager

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


class PagedTableModel(QAbstractTableModel):
    """Rows are frozen dataclasses with ``id`` and ``sort_key``."""

    page_loaded = Signal(int, int)  # generation, rows now in the model
    load_failed = Signal(object)
    query_started = Signal(int)  # generation

    def __init__(self, tasks: TaskManager, columns: Sequence[Column[Any]], fetch: Fetch,
                 refetch: Refetch | None = None, *, page_size: int = 200,
                 default_sort: str = "name", default_descending: bool = False,
                 parent: Any = None) -> None:
        super().__init__(parent)
        self.tasks = tasks
        self.columns = list(columns)
        self._fetch = fetch
        self._refetch = refetch
        self.page_size = page_size
        self._rows: list[Any] = []
        self._index: dict[uuid.UUID, int] = {}
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
        self._rows = []
        self._index = {}
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
            lambda page: self._on_page(generation, page),
            lambda exc: self._on_error(generation, exc),
            always=lambda: self._load_settled(token),
        )

    def _load_settled(self, token: int) -> None:
        """After the page task ended in any way (page, error, bug, cancel): a
        load that delivered no page must not leave the list "loading" for good."""
        if token == self._load_token:
            self._loading = False

    def _on_page(self, generation: int, page: Page[Any]) -> None:
        if generation != self._generation:
            return  # a newer query started meanwhile: this page is stale
        new = [r for r in page.rows if r.id not in self._index]
        first = len(self._rows)
        self._loading = False  # before endInsertRows: see the module docstring
        self._has_more = page.has_more
        if new:
            self.beginInsertRows(QModelIndex(), first, first + len(new) - 1)
            for r in new:
                self._index[r.id] = len(self._rows)
                self._rows.append(r)
            self.endInsertRows()
        self.page_loaded.emit(generation, len(self._rows))

    def _on_error(self, generation: int, exc: BaseException) -> None:
        if generation == self._generation:
            self._loading = False
            self._has_more = False
            self.load_failed.emit(exc)

    def canFetchMore(self, parent: Index = QModelIndex()) -> bool:  # noqa: N802, B008
        return (not parent.isValid() and self._started and self._has_more
                and not self._loading)

    def fetchMore(self, parent: Index = QModelIndex()) -> None:  # noqa: N802, B008
        if not self.canFetchMore(parent) or not self._rows:
            return
        last = self._rows[-1]
        self._load_page(After(last.sort_key, last.id))

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

    # -------------------------------------------------------- live refresh

    def refresh_rows(self, ids: Sequence[uuid.UUID] | None = None) -> None:
        """Re-read rows after a change here or on another workstation.

        ``ids`` None means every loaded row. A shown row that changed is updated
        where it is; one that no longer matches the filter leaves; a row that
        now matches comes in at its place if that place is among the loaded
        rows (otherwise paging brings it). Selection and scroll stay with the
        rows. Refreshes that arrive while one runs are merged into the next.
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
                continue
            new = fresh.pop(rid, None)
            if new is None:
                gone.append(row)  # deleted, or no longer matches the filter
                continue
            old = self._rows[row]
            # keep the key it was loaded with: the list stays in paging order
            new = dataclasses.replace(new, sort_key=old.sort_key)
            if new != old:
                self._rows[row] = new
                self.dataChanged.emit(self.index(row, 0), self.index(row, last))
        for row in sorted(gone, reverse=True):
            self.beginRemoveRows(QModelIndex(), row, row)
            del self._rows[row]
            self.endRemoveRows()
        inserted = False
        for new in fresh.values():  # rows not shown before that match now
            place = self._place_of(new)
            if place is None:
                continue
            self.beginInsertRows(QModelIndex(), place, place)
            self._rows.insert(place, new)
            self.endInsertRows()
            inserted = True
        if gone or inserted:
            self._index = {r.id: i for i, r in enumerate(self._rows)}

    def _place_of(self, new: Any) -> int | None:
        """Where a new row belongs among the loaded ones; None if after them
        while more pages remain (paging will bring it)."""
        desc = self._descending
        key = (new.sort_key, new.id)
        lo, hi = 0, len(self._rows)
        try:
            while lo < hi:
                mid = (lo + hi) // 2
                other = (self._rows[mid].sort_key, self._rows[mid].id)
                if (other < key) if desc else (other > key):
                    hi = mid
                else:
                    lo = mid + 1
        except TypeError:
            return None
        if lo == len(self._rows) and self._has_more:
            return None
        return lo

    # ----------------------------------------------------------- Qt model

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: N802, B008
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: N802, B008
        return 0 if parent.isValid() else len(self.columns)

    def row_at(self, row: int) -> Any:
        return self._rows[row]

    def row_of(self, row_id: uuid.UUID) -> int:
        return self._index.get(row_id, -1)

    def rows(self) -> list[Any]:
        return list(self._rows)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or index.row() >= len(self._rows):
            return None
        row = self._rows[index.row()]
        col = self.columns[index.column()]
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

    data = PagedTableModel.data
    headerData = PagedTableModel.headerData  # noqa: N815
    flags = PagedTableModel.flags
