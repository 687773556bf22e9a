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
* ``refresh_rows(ids)`` re-reads some rows in place (selection and scroll stay).
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Sequence
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


Fetch = Callable[[Any, str, bool, After | None, int], Page[Any]]
Refetch = Callable[[Sequence[uuid.UUID]], list[Any]]


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
        self.endResetModel()
        self._started = True
        self.query_started.emit(self._generation)
        self._load_page(None)
        return self._generation

    def _load_page(self, after: After | None) -> None:
        self._loading = True
        generation = self._generation
        query, sort, desc, size = self._query, self._sort, self._descending, self.page_size
        self.tasks.run(
            lambda: self._fetch(query, sort, desc, after, size),
            lambda page, g=generation: self._on_page(g, page),
            lambda exc, g=generation: self._on_error(g, exc),
        )

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
        if not 0 <= column < len(self.columns) or self.columns[column].sort is None:
            return
        key = self.columns[column].sort
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

    def refresh_rows(self, ids: Sequence[uuid.UUID]) -> None:
        """Re-read rows already shown (after a local or remote change)."""
        wanted = [i for i in ids if i in self._index]
        if not wanted or self._refetch is None:
            return
        generation = self._generation
        self.tasks.run(lambda: self._refetch(wanted),
                       lambda rows, g=generation: self._on_refreshed(g, wanted, rows))

    def _on_refreshed(self, generation: int, wanted: list[uuid.UUID], rows: list[Any]) -> None:
        if generation != self._generation:
            return
        fresh = {r.id: r for r in rows}
        for rid in wanted:
            row = self._index.get(rid)
            if row is None:
                continue
            new = fresh.get(rid)
            if new is None:
                continue  # deleted or filtered out: leave it until the next reload
            old = self._rows[row]
            self._rows[row] = dataclasses.replace(new, sort_key=old.sort_key)
            self.dataChanged.emit(self.index(row, 0), self.index(row, len(self.columns) - 1))

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
