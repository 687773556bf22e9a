"""Building blocks of the list screens: a titled area with actions, filters,
a lazily paged table and a status line."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import Any

from PySide6.QtCore import QByteArray, QEvent, QObject, QSettings, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QKeyEvent, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMenu,
    QMessageBox,
    QStyle,
    QTableView,
    QToolBar,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ...errors import GetMedsError
from ...services.context import Perm
from ..icons import icon
from ..tablemodels.paged import Column, PagedTableModel
from ..widgets.forms import MessageLabel
from ..workspace import Workspace

SEARCH_DEBOUNCE_MS = 250


OFFLINE_COPY_TEXT = (
    "Offline: the server cannot be reached, so this screen shows this workstation's "
    "offline copy. What the pharmacy allows offline (fills, receipts, patients, new "
    "prescriptions) is saved here and sent to the server when it answers; anything "
    "else waits until the status bar shows Connected.")


class SearchBox(QLineEdit):
    """Emits ``search(text)`` once typing pauses (single-shot debounce)."""

    search = Signal(str)

    def __init__(self, placeholder: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setPlaceholderText(placeholder)
        self.setClearButtonEnabled(True)
        self.addAction(icon("search"), QLineEdit.ActionPosition.LeadingPosition)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(SEARCH_DEBOUNCE_MS)
        self._timer.timeout.connect(lambda: self.search.emit(self.text().strip()))
        self.textChanged.connect(lambda _t: self._timer.start())
        self.returnPressed.connect(self.flush)
        self.results: QTableView | None = None  # Down goes there (TableArea sets it)

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 - Qt API
        table = self.results
        if event.key() == Qt.Key.Key_Down and table is not None \
                and table.model() is not None and table.model().rowCount() > 0:
            event.accept()
            table.setFocus(Qt.FocusReason.OtherFocusReason)
            if not table.selectionModel().hasSelection():
                table.selectRow(0)
            return
        super().keyPressEvent(event)

    def select_for_typing(self) -> None:
        """Focus the box with its text selected (Ctrl+F): typing replaces it."""
        self.setFocus()
        self.selectAll()

    def flush(self) -> None:
        """Search now (Enter), without waiting for the debounce."""
        if self._timer.isActive():
            self._timer.stop()
        self.search.emit(self.text().strip())


def make_table(object_name: str) -> QTableView:
    view = QTableView()
    view.setObjectName(object_name)
    view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    view.setAlternatingRowColors(True)
    view.setWordWrap(False)
    # a long value shows its beginning ("Konstantinopoulos-Testp…"), not its end
    view.setTextElideMode(Qt.TextElideMode.ElideRight)
    view.setSortingEnabled(False)
    view.verticalHeader().setVisible(False)
    view.verticalHeader().setDefaultSectionSize(26)
    view.horizontalHeader().setHighlightSections(False)
    view.horizontalHeader().setStretchLastSection(True)
    view.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
    view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    return view


def fit_columns(table: QTableView, columns: Sequence[Column[Any]]) -> None:
    """Column widths: never narrower than the header's title with its sort arrow
    (no "uantity", "Refills lef"); a ``stretch`` column takes the room the
    others leave, so the table fills its width without a horizontal scrollbar."""
    header = table.horizontalHeader()
    titles = title_widths(header, columns)
    stretch = False
    for i, col in enumerate(columns):
        table.setColumnWidth(i, max(col.width, titles[i]))
        if col.stretch:
            header.setSectionResizeMode(i, QHeaderView.ResizeMode.Stretch)
            stretch = True
    if stretch:
        header.setStretchLastSection(False)


def title_widths(header: QHeaderView, columns: Sequence[Column[Any]]) -> list[int]:
    """The width each column's title needs: with room for the sort arrow where
    the column can be sorted, without where it never shows one."""
    header.setSortIndicatorShown(False)
    plain = [header.sectionSizeHint(i) for i in range(len(columns))]
    header.setSortIndicatorShown(True)
    return [header.sectionSizeHint(i) if col.sort else plain[i]
            for i, col in enumerate(columns)]


class Area(QWidget):
    """A screen of the main window: title row, action buttons, content."""

    def __init__(self, ws: Workspace, title: str, subtitle: str = "",
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ws = ws
        root = QVBoxLayout(self)
        root.setContentsMargins(18, 14, 18, 10)
        root.setSpacing(10)
        head = QHBoxLayout()
        titles = QVBoxLayout()
        titles.setSpacing(0)
        self.title = QLabel(title)
        self.title.setObjectName("viewTitle")
        titles.addWidget(self.title)
        if subtitle:
            sub = QLabel(subtitle)
            sub.setObjectName("viewSubtitle")
            titles.addWidget(sub)
        head.addLayout(titles)
        head.addStretch(1)
        root.addLayout(head)
        # The actions sit on their own row under the title, so a screen stays
        # narrow enough for 1280-pixel displays at 100% and 1920 at 150%; in a
        # tool bar, so that buttons which do not fit go behind its » button
        # instead of making the window wider than the screen.
        self.actions_row = QToolBar()
        self.actions_row.setObjectName("areaActions")
        self.actions_row.setMovable(False)
        self.actions_row.setFloatable(False)
        self.actions_row.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        small = self.style().pixelMetric(QStyle.PixelMetric.PM_SmallIconSize)
        self.actions_row.setIconSize(QSize(small, small))  # as a button outside a bar
        bar_layout = self.actions_row.layout()
        if bar_layout is not None:
            bar_layout.setSpacing(6)
            bar_layout.setContentsMargins(0, 0, 0, 0)
        self.actions_row.hide()  # until the screen has a button
        root.addWidget(self.actions_row)
        self.offline = MessageLabel("areaOffline")
        root.addWidget(self.offline)
        self.body = root
        self._actions: list[QAction] = []
        # what the main window's Actions menu lists while this screen is shown
        self._menu_entries: list[QAction | QMenu] = []
        self._enabled_when_online: dict[QAction, bool] = {}
        ws.connection_state_changed.connect(self._connection_changed)

    # ------------------------------------------------------------- offline

    @property
    def is_offline(self) -> bool:
        return not self.ws.online and not self.ws.working_offline

    def _connection_changed(self, state: str) -> None:
        """Offline: every action needs the database, so all wait; what is
        loaded can still be browsed. With an offline copy the screen works on it
        (each form says whether what it saves may be saved offline)."""
        if state == "connected" or self.ws.working_offline:
            if state == "connected":
                self.offline.clear_message()
            else:
                self.offline.show_warning(OFFLINE_COPY_TEXT)
            for act, enabled in self._enabled_when_online.items():
                act.setEnabled(enabled)
            self._enabled_when_online.clear()
            self.update_actions()
        else:
            self.offline.show_warning(
                "Offline: reconnecting to the database. You can keep browsing what is "
                "shown; actions come back when the status bar shows Connected.")
            self._disable_actions()

    def _disable_actions(self) -> None:
        for act in self._actions:
            if act not in self._enabled_when_online:
                self._enabled_when_online[act] = act.isEnabled()
            act.setEnabled(False)

    def update_actions(self) -> None:
        """Recompute which actions apply (TableArea: to the selected row)."""

    def menu_entries(self) -> list[QAction | QMenu]:
        """The screen's actions, in button order, for the main window's Actions menu."""
        return list(self._menu_entries)

    def add_action(self, name: str, text: str, icon_name: str, slot: Callable[[], Any],
                   shortcut: str | QKeySequence.StandardKey | None = None, *,
                   tip: str = "", enabled: bool = True, perm: Perm | None = None,
                   needs: str = "", button: bool = True) -> QAction:
        """A button and a window-wide shortcut. ``perm``: the permission it needs
        (without it the action stays disabled); ``needs``: what must be selected
        for it. A disabled action says why in its tooltip ("Clerks cannot
        dispense", "Dispense: select a prescription ready to fill").
        ``button=False``: no button of its own (it goes in a menu button:
        :meth:`add_action_menu`)."""
        act = QAction(icon(icon_name), text, self)
        act.setObjectName(name)
        if shortcut is not None:
            _window_shortcut(act, shortcut)
        label = act.shortcut().toString(QKeySequence.SequenceFormat.NativeText)
        normal = f"{tip or text}" + (f" ({label})" if label else "")
        act.setToolTip(normal)
        act.triggered.connect(lambda _=False: slot())
        allowed = perm is None or self.ws.can(perm)
        act.setEnabled(enabled and allowed)
        if not allowed and perm is not None:
            role = self.ws.actor.role.label
            act.setToolTip(f"{role}s cannot {perm.value}.")
        elif needs:
            act.changed.connect(lambda: act.setToolTip(
                normal if act.isEnabled() or self.is_offline
                else f"{text.replace('&&', '&')}: select {needs}."))
            act.setToolTip(normal if act.isEnabled() else
                           f"{text.replace('&&', '&')}: select {needs}.")
        self.addAction(act)
        self._actions.append(act)
        self._menu_entries.append(act)
        if not button:
            return act
        btn = QToolButton()
        btn.setObjectName(f"button_{name}")
        btn.setDefaultAction(act)
        btn.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.actions_row.addWidget(btn)
        self.actions_row.setVisible(True)
        return act

    def add_menu_button(self, name: str, text: str, icon_name: str,
                        items: list[tuple[str, str, Callable[[], Any], bool]]) -> QToolButton:
        """One button that opens a menu of related actions (name, text, slot, enabled)."""
        btn, menu = self._menu_button(name, text, icon_name)
        for act_name, act_text, slot, enabled in items:
            act = menu.addAction(act_text)
            act.setObjectName(act_name)
            act.setEnabled(enabled)
            act.triggered.connect(lambda _=False, f=slot: f())
            self._actions.append(act)
        self._menu_entries.append(menu)
        return btn

    def add_action_menu(self, name: str, text: str, icon_name: str,
                        actions: list[QAction]) -> QToolButton:
        """One button that opens a menu of actions made with ``button=False``
        (each keeps its shortcut, tooltip and enabled state)."""
        btn, menu = self._menu_button(name, text, icon_name)
        menu.setToolTipsVisible(True)
        for act in actions:
            menu.addAction(act)
        btn.setToolTip(" / ".join(a.toolTip() for a in actions))
        return btn

    def _menu_button(self, name: str, text: str, icon_name: str) -> tuple[QToolButton, QMenu]:
        """A button of the actions row that opens its (empty) menu."""
        btn = QToolButton()
        btn.setObjectName(f"button_{name}")
        btn.setText(text)
        btn.setIcon(icon(icon_name))
        btn.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        btn.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QMenu(text, btn)
        btn.setMenu(menu)
        self.actions_row.addWidget(btn)
        self.actions_row.setVisible(True)
        return btn, menu

    def add_shortcut(self, name: str, shortcut: str | QKeySequence.StandardKey | None,
                     slot: Callable[[], Any], text: str = "") -> QAction:
        """A keyboard action without a button of its own (e.g. Ctrl+F to the search
        box); with ``text`` it is listed in the Actions menu too."""
        act = QAction(text, self)
        act.setObjectName(name)
        if shortcut is not None:
            _window_shortcut(act, shortcut)
        act.triggered.connect(lambda _=False: slot())
        self.addAction(act)
        if text:
            self._menu_entries.append(act)
        return act

    def show_error(self, exc: BaseException) -> None:
        if isinstance(exc, GetMedsError):
            QMessageBox.warning(self, "GetMeds", str(exc))
        else:
            raise exc


def _window_shortcut(act: QAction, shortcut: str | QKeySequence.StandardKey) -> None:
    """A screen's shortcut works wherever the focus is in the main window (right
    after sign-in, or after Ctrl+1..7, focus is in the navigation, not in the
    screen). Screens other than the shown one are hidden in the window's stack,
    so only the shown screen's shortcuts are live and none are ambiguous."""
    act.setShortcut(QKeySequence(shortcut))
    act.setShortcutContext(Qt.ShortcutContext.WindowShortcut)


class TableArea(Area):
    """An area around one lazily paged table."""

    settings_key = "area"
    row_activated = Signal(object)  # row dataclass

    def __init__(self, ws: Workspace, title: str, subtitle: str, model: PagedTableModel,
                 table_name: str, parent: QWidget | None = None, *,
                 settings_key: str | None = None) -> None:
        super().__init__(ws, title, subtitle, parent)
        if settings_key is not None:  # before the header and sort are restored
            self.settings_key = settings_key
        self.model = model
        self.filters = QHBoxLayout()
        self.filters.setSpacing(8)
        self.body.addLayout(self.filters)
        self.table = make_table(table_name)
        self.table.setModel(model)
        header = self.table.horizontalHeader()
        header.setSortIndicatorShown(True)
        fit_columns(self.table, model.columns)
        header.setSectionsClickable(True)
        header.sortIndicatorChanged.connect(self._sort_clicked)
        # a double click, or Enter on the selected row, opens its main action (not
        # "activated": with single-click desktops that would open it on a click)
        self.table.doubleClicked.connect(self._activated)
        self.table.installEventFilter(self)
        self.body.addWidget(self.table, 1)
        self.status = QLabel("")
        self.status.setObjectName("listStatus")
        self.body.addWidget(self.status)
        model.page_loaded.connect(self._page_loaded)
        model.query_started.connect(lambda _g: self.status.setText("Loading…"))
        model.load_failed.connect(self._load_failed)
        self.table.selectionModel().selectionChanged.connect(self._selection_moved)
        # a selected row whose page was released is back: its actions apply again
        model.page_refilled.connect(lambda _n: self.update_actions())
        # rows that come in or leave above the visible ones (a change on another
        # workstation) must not shift what the user is looking at
        model.rowsInserted.connect(lambda _p, first, last: self._keep_scroll(first, last, +1))
        model.rowsAboutToBeRemoved.connect(
            lambda _p, first, last: self._keep_scroll(first, last, -1))
        self._restore_header()
        self._loaded_once = False
        self.last_export: tuple[int, str] | None = None

    # ------------------------------------------------------------ settings

    def add_export_action(self) -> QAction:
        return self.add_action(f"actionExport_{self.settings_key}", "Export", "export",
                               self.export_csv,
                               tip="Export every row of this list (with its search, filters "
                                   "and sort) to a CSV file")

    def export_csv(self, path: str | None = None) -> None:
        from ..dialogs.data_io import export_view

        export_view(self, self, path)

    def export_done(self, rows: int, path: str) -> None:
        self.last_export = (rows, path)
        self.status.setText(f"Exported {rows:,} rows to {path}")

    def _restore_header(self) -> None:
        s = QSettings()
        # "columns", not the "header" saved before the columns were fitted to
        # their titles: an old state would bring back the cut titles
        state = s.value(f"{self.settings_key}/columns")
        if isinstance(state, QByteArray) and not state.isEmpty():
            self.table.horizontalHeader().restoreState(state)
        sort = s.value(f"{self.settings_key}/sort")
        desc = s.value(f"{self.settings_key}/descending")
        if isinstance(sort, str) and any(c.sort == sort for c in self.model.columns):
            self.model.set_sort(sort, str(desc).lower() == "true")
        col = self.model.sort_column()
        header = self.table.horizontalHeader()
        header.blockSignals(True)
        header.setSortIndicator(col, Qt.SortOrder.DescendingOrder if self.model.sort_key[1]
                                else Qt.SortOrder.AscendingOrder)
        header.blockSignals(False)

    def save_settings(self) -> None:
        s = QSettings()
        s.setValue(f"{self.settings_key}/columns", self.table.horizontalHeader().saveState())
        sort, desc = self.model.sort_key
        s.setValue(f"{self.settings_key}/sort", sort)
        s.setValue(f"{self.settings_key}/descending", "true" if desc else "false")

    # ------------------------------------------------------------ behaviour

    def activate(self) -> None:
        """Called when the area becomes visible: load on first show."""
        for box in self.findChildren(SearchBox):
            box.results = self.table  # Down from the search moves into the results
        if not self._loaded_once:
            self._loaded_once = True
            self.reload()

    def reload(self) -> None:
        self.model.set_query(self.current_query())

    def current_query(self) -> Any:
        return None

    def _sort_clicked(self, column: int, order: Qt.SortOrder) -> None:
        if self.model.columns[column].sort is None:
            # not sortable: put the indicator back where the data is sorted
            header = self.table.horizontalHeader()
            header.blockSignals(True)
            header.setSortIndicator(self.model.sort_column(),
                                    Qt.SortOrder.DescendingOrder if self.model.sort_key[1]
                                    else Qt.SortOrder.AscendingOrder)
            header.blockSignals(False)
            return
        self.model.sort(column, order)

    def _page_loaded(self, _generation: int, rows: int) -> None:
        more = " (scroll for more)" if self.model.canFetchMore() else ""
        self.status.setText(f"{rows:,} shown{more}" if rows else "Nothing matches.")

    def _load_failed(self, exc: BaseException) -> None:
        self.status.setText(f"Could not load: {exc}")

    def _selection_moved(self) -> None:
        # the pages of the selected rows stay held while the view scrolls away
        self.model.keep_rows(i.row() for i in self.table.selectionModel().selectedRows())
        self.update_actions()

    def _activated(self, index: Any) -> None:
        if index.isValid():
            row = self.model.row_at(index.row())
            if row is not None:  # None: its page is being fetched again
                self.row_activated.emit(row)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt API
        if (watched is self.table and event.type() == QEvent.Type.KeyPress
                and isinstance(event, QKeyEvent)
                and event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter)
                and not event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier):
            rows = self.table.selectionModel().selectedRows()
            if rows:
                self._activated(rows[0])
                return True
        return super().eventFilter(watched, event)

    def selected_row(self) -> Any | None:
        rows = self.table.selectionModel().selectedRows()
        if not rows:
            return None
        return self.model.row_at(rows[0].row())  # None while its page is fetched again

    def selected_id(self) -> uuid.UUID | None:
        row = self.selected_row()
        return row.id if row is not None else None

    def update_actions(self) -> None:
        self.selection_changed()
        if self.is_offline:
            self._disable_actions()

    def _keep_scroll(self, first: int, last: int, sign: int) -> None:
        bar = self.table.verticalScrollBar()
        top = self.table.rowAt(0)
        if top < 0 or first > top or bar.value() == 0:
            return  # below the first visible row, or at the very top: nothing to keep
        # per-pixel or per-item scrolling: one row's height or one step per row
        step = (self.table.verticalHeader().defaultSectionSize()
                if self.table.verticalScrollMode()
                == QAbstractItemView.ScrollMode.ScrollPerPixel else 1)
        count = last - first + 1
        QTimer.singleShot(0, lambda: bar.setValue(bar.value() + sign * count * step))

    def selection_changed(self) -> None:
        """Override to enable actions for the selected row."""
