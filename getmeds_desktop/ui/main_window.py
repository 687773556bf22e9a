"""The main window: navigation by area, a status bar, shortcuts, saved geometry."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from PySide6.QtCore import QByteArray, QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QMenu,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QStackedWidget,
    QWidget,
)
from shiboken6 import isValid

from .. import __version__
from ..services import clock
from ..services.context import Perm
from .icons import icon
from .tasks import TaskState
from .workspace import Workspace


@dataclasses.dataclass(frozen=True)
class Area:
    key: str
    title: str
    shortcut: str
    icon: str
    perm: Perm | None
    factory: Callable[[Workspace], QWidget]


def default_areas() -> list[Area]:
    from .views import build

    return [
        Area("dashboard", "Dashboard", "Ctrl+1", "dashboard", None, build.dashboard),
        Area("inventory", "Inventory", "Ctrl+2", "inventory", Perm.READ_STOCK, build.inventory),
        Area("patients", "Patients", "Ctrl+3", "patients", Perm.READ_PATIENTS, build.patients),
        Area("prescriptions", "Prescriptions", "Ctrl+4", "prescriptions",
             Perm.READ_PRESCRIPTIONS, build.prescriptions),
        Area("dispensing", "Dispensing queue", "Ctrl+5", "dispensing", Perm.DISPENSE,
             build.dispensing),
        Area("reports", "Reports", "Ctrl+6", "reports", Perm.REPORTS, build.reports),
        Area("admin", "Administration", "Ctrl+7", "admin", Perm.MANAGE_STAFF, build.admin),
        # after the seven of earlier versions, so their shortcuts stay
        Area("fills", "Verify and pick up", "Ctrl+8", "check", Perm.RELEASE, build.fills),
    ]


class MainWindow(QMainWindow):
    sign_out_requested = Signal()
    lock_requested = Signal()

    def __init__(self, workspace: Workspace, areas: list[Area] | None = None) -> None:
        super().__init__()
        self.setObjectName("mainWindow")
        self.workspace = workspace
        self.setWindowTitle(f"GetMeds: {workspace.database.target.label}")
        self.areas = [a for a in (areas or default_areas())
                      if a.perm is None or workspace.can(a.perm)]
        self.views: dict[str, QWidget] = {}

        # The window's one central widget is a stack of two pages: the content
        # (navigation and areas) and the lock page. While locked the content is
        # not even in the window (see lock()).
        self.root = QStackedWidget()
        self.root.setObjectName("rootStack")
        central = QWidget()
        central.setObjectName("content")
        self.content = central
        layout = QHBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        self.nav = QListWidget()
        self.nav.setObjectName("navigation")
        self.nav.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.nav.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.nav.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.stack = QStackedWidget()
        self.stack.setObjectName("areaStack")
        layout.addWidget(self.nav)
        layout.addWidget(self.stack, 1)
        self.root.addWidget(central)
        self.setCentralWidget(self.root)

        for area in self.areas:
            item = QListWidgetItem(icon(area.icon), area.title)
            item.setData(Qt.ItemDataRole.UserRole, area.key)
            item.setToolTip(f"{area.title} ({area.shortcut})")
            self.nav.addItem(item)
        self.nav.currentRowChanged.connect(self._show_row)
        self._build_menus()
        self._build_status_bar()
        workspace.connection_state_changed.connect(self._on_connection_state)
        workspace.navigate.connect(self.open_filtered)
        workspace.status_message.connect(self.show_status)
        workspace.tasks.busy_changed.connect(self._on_busy)
        self._restore_geometry()
        from .lock import HiddenWindows, LockPage

        self.lock_page = LockPage()
        self.root.addWidget(self.lock_page)
        self.hidden_windows = HiddenWindows(self)
        self._vault = QWidget()  # never shown: holds the content while locked
        self._vault.setObjectName("lockedContent")
        self.destroyed.connect(self._vault.deleteLater)  # and goes with the window
        self._menu_actions: list[QAction] = []
        self._focus_before_lock: QWidget | None = None
        self.locked = False
        self.lock_reason = ""
        self.nav.setCurrentRow(0)

    # ------------------------------------------------------------ building

    def _build_menus(self) -> None:
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        lock = QAction("&Lock workstation", self)
        lock.setObjectName("actionLock")
        lock.setShortcut(QKeySequence("Ctrl+L"))
        lock.triggered.connect(self.lock_requested)
        file_menu.addAction(lock)
        sign_out = QAction("Sign &out", self)
        sign_out.setObjectName("actionSignOut")
        sign_out.setShortcut(QKeySequence("Ctrl+Shift+Q"))
        sign_out.triggered.connect(self.sign_out_requested)
        file_menu.addAction(sign_out)
        file_menu.addSeparator()
        quit_ = QAction("&Quit", self)
        quit_.setShortcut(QKeySequence.StandardKey.Quit)
        quit_.triggered.connect(self.close)
        file_menu.addAction(quit_)

        go = bar.addMenu("&Go")
        for row, area in enumerate(self.areas):
            act = QAction(icon(area.icon), area.title, self)
            act.setObjectName(f"goto_{area.key}")
            act.setShortcut(QKeySequence(area.shortcut))
            act.triggered.connect(lambda _=False, r=row: self.nav.setCurrentRow(r))
            go.addAction(act)

        # the shown screen's actions with their shortcuts (filled by _show_row)
        self.actions_menu = bar.addMenu("&Actions")
        self.actions_menu.setObjectName("actionsMenu")

        help_menu = bar.addMenu("&Help")
        about = QAction("&About GetMeds", self)
        about.setObjectName("actionAbout")
        about.triggered.connect(self._about)
        help_menu.addAction(about)
        self.update_action = QAction("Check for &updates", self)
        self.update_action.setObjectName("actionCheckUpdates")
        self.update_action.triggered.connect(lambda: self.check_for_updates(asked=True))
        help_menu.addAction(self.update_action)

    def _build_status_bar(self) -> None:
        sb = self.statusBar()
        sb.setObjectName("statusBar")
        a = self.workspace.actor
        self.user_label = QLabel(f"{a.full_name} ({a.username})")
        self.user_label.setObjectName("statusUser")
        self.role_label = QLabel(a.role.label + (f" and {a.practice_role.label.lower()}"
                                                 if a.practice_role is not None else ""))
        self.role_label.setObjectName("statusRole")
        db = self.workspace.database
        self.db_label = QLabel(f"{db.kind_label}: {db.target.label}")
        self.db_label.setObjectName("statusDatabase")
        self.conn_label = QLabel()
        self.conn_label.setObjectName("statusConnection")
        # offline writes the server refused: shown only when there are some
        self.attention_button = QPushButton("")
        self.attention_button.setObjectName("statusNeedsAttention")
        self.attention_button.setFlat(True)
        self.attention_button.hide()
        self.attention_button.clicked.connect(self.show_needs_attention)
        # making the offline copy, or sending what was done offline
        self.sync_bar = QProgressBar()
        self.sync_bar.setObjectName("statusSyncProgress")
        self.sync_bar.setMaximumWidth(140)
        self.sync_bar.setMaximumHeight(14)
        self.sync_bar.setTextVisible(False)
        self.sync_bar.hide()
        self.busy_label = QLabel("")
        self.busy_label.setObjectName("statusBusy")
        # a new version ready, or one refused: shown only when there is news
        self.update_label = QLabel("")
        self.update_label.setObjectName("statusUpdate")
        self.update_label.hide()
        for w in (self.update_label, self.busy_label, self.user_label, self.role_label,
                  self.db_label, self.attention_button, self.sync_bar, self.conn_label):
            sb.addPermanentWidget(w)
        self.workspace.offline_changed.connect(
            lambda: self._on_connection_state(self.workspace.connection_state))
        self._on_connection_state(self.workspace.connection_state)
        self._set_up_update_check()

    # ---------------------------------------------------------------- updates

    def _set_up_update_check(self) -> None:
        """The site file's [updates]: checked once at start in the background
        (the io lane; never the GUI thread), and from Help > Check for updates."""
        from ..updates import UpdateSettings

        self.update_settings = UpdateSettings.from_config(self.workspace.config.updates)
        self.update_status: object | None = None
        self.update_action.setEnabled(self.update_settings.active)
        if not self.update_settings.enabled:
            self.update_action.setToolTip("Turned off by your IT department")
        elif not self.update_settings.manifest_url:
            self.update_action.setToolTip("Not set up (updates.manifest_url in the site file)")
        if self.update_settings.active and self.update_settings.check_at_start:
            QTimer.singleShot(0, self.check_for_updates)

    def check_for_updates(self, asked: bool = False) -> None:
        from .. import config, updates

        settings = self.update_settings
        folder = config.updates_dir()

        def work(state: TaskState) -> updates.UpdateStatus:
            from .. import db

            # the database's schema is this version's (the app refuses any other);
            # closing the window stops a download between two chunks
            return updates.check_for_update(settings, current_version=__version__,
                                            download_dir=folder,
                                            database_schema=db.head_revision(),
                                            cancelled=lambda: state.cancelled)

        self.update_action.setEnabled(False)
        self.workspace.tasks.run(work, lambda st: self._on_update_status(st, asked),
                                 lane="io", retry=False, always=self._update_check_done)

    def _update_check_done(self) -> None:
        if isValid(self):
            self.update_action.setEnabled(self.update_settings.active)

    def _on_update_status(self, status: object, asked: bool) -> None:
        from ..updates import UpdateStatus

        if not isValid(self) or not isinstance(status, UpdateStatus):
            return
        self.update_status = status
        label = {"ready": f"⬆ GetMeds {status.version} is ready",
                 "refused": "⚠ Update refused"}.get(status.state)
        if label:
            self.update_label.setText(label)
            self.update_label.setToolTip(status.message)
            self.update_label.show()
        else:
            self.update_label.hide()
        if label or asked:
            self.show_status(status.message)

    # ------------------------------------------------------------- behaviour

    def _show_row(self, row: int) -> None:
        if row < 0:
            return
        area = self.areas[row]
        view = self.views.get(area.key)
        if view is None:
            view = area.factory(self.workspace)
            view.setObjectName(f"view_{area.key}")
            self.views[area.key] = view
            self.stack.addWidget(view)
        self.stack.setCurrentWidget(view)
        self._fill_actions_menu(view)
        activate = getattr(view, "activate", None)
        if callable(activate):
            activate()

    def _fill_actions_menu(self, view: QWidget) -> None:
        """The Actions menu lists what the shown screen offers (the same QActions
        as its buttons, so enabled states and shortcuts are the same)."""
        menu = self.actions_menu
        menu.clear()
        entries = getattr(view, "menu_entries", None)
        for entry in entries() if callable(entries) else []:
            if isinstance(entry, QMenu):
                menu.addMenu(entry)
            else:
                menu.addAction(entry)
        if menu.isEmpty():
            none = menu.addAction("(nothing on this screen)")
            none.setEnabled(False)

    def show_area(self, key: str) -> QWidget:
        for row, area in enumerate(self.areas):
            if area.key == key:
                self.nav.setCurrentRow(row)
                return self.views[key]
        raise KeyError(key)

    def open_filtered(self, key: str, filt: dict) -> None:
        """Show an area with a filter (the dashboard's counts open these)."""
        if key not in self.area_keys():
            return
        view = self.show_area(key)
        if "statuses" in filt and hasattr(view, "apply_status"):
            view.apply_status(filt["statuses"])
        elif hasattr(view, "apply_filter"):
            view.apply_filter(**filt)

    STATUS_MS = 10_000

    def show_status(self, text: str) -> None:
        self.statusBar().showMessage(text, self.STATUS_MS)

    def area_keys(self) -> list[str]:
        return [a.key for a in self.areas]

    def _on_connection_state(self, state: str) -> None:
        ws = self.workspace
        text = {"connected": "● Connected", "reconnecting": "● Reconnecting…",
                "offline": "● Offline"}.get(state, state)
        tip = ""
        work = ws.offline
        waiting, attention = ws.offline_waiting, ws.offline_attention
        if state == "offline" and work is not None:
            since = ws.offline_since.astimezone().strftime("%H:%M") if ws.offline_since else ""
            text = f"● Offline since {since}" if since else "● Offline"
            text += (f" · {waiting} write{'s' if waiting != 1 else ''} waiting" if waiting
                     else " · working on the offline copy")
            tip = ("The server cannot be reached. The screens show this workstation's "
                   "offline copy; what is done now is sent to the server when it answers.")
        elif state == "offline" and ws.offline_problem:
            tip = ws.offline_problem
        elif state == "connected" and ws.sync_progress is not None:
            done, total = ws.sync_progress
            text = f"● Syncing {min(done + 1, total)} of {total}"
            tip = "The writes made offline are being sent to the server."
        elif state == "connected" and work is not None and waiting:
            text += f" · {waiting} offline write{'s' if waiting != 1 else ''} to send"
        elif state == "connected" and ws.copy_progress is not None:
            text += " · making the offline copy"
            tip = ("A copy of the pharmacy's records is being made on this workstation, "
                   "so that it can keep working if the server cannot be reached.")
        shown = ws.sync_progress if state == "connected" else None
        shown = shown or (ws.copy_progress if state == "connected" else None)
        if shown is not None and shown[1] > 0:
            self.sync_bar.setRange(0, shown[1])
            self.sync_bar.setValue(min(shown[0], shown[1]))
        self.sync_bar.setVisible(shown is not None and shown[1] > 0)
        self.conn_label.setText(text)
        self.conn_label.setToolTip(tip)
        self.attention_button.setText(f"⚠ {attention} need{'s' if attention == 1 else ''} "
                                      "attention")
        self.attention_button.setVisible(attention > 0)
        self.conn_label.setProperty("state", state)
        self.conn_label.style().unpolish(self.conn_label)
        self.conn_label.style().polish(self.conn_label)

    def show_needs_attention(self) -> None:
        """The offline writes the server refused, with what resolves each."""
        from .dialogs.offline import NeedsAttentionDialog

        if self.workspace.offline is None:
            return
        dlg = NeedsAttentionDialog(self.workspace, self)
        dlg.open()

    def _on_busy(self, busy: bool) -> None:
        self.busy_label.setText("Working…" if busy else "")

    def _about(self) -> None:
        QMessageBox.about(
            self, "About GetMeds",
            f"<h3>GetMeds Desktop {__version__}</h3>"
            "<p>Pharmacy management for the workstations of a pharmacy.</p>"
            f"<p>Database: {self.workspace.database.target.label}</p>")

    # ------------------------------------------------------------------ lock

    def lock(self, *, by_user: bool = False, idle_minutes: int | None = None) -> None:
        """Nothing of the window's content stays visible or reachable by keyboard,
        mouse or screen reader: the content leaves the window for a widget that
        is never shown, the lock page takes its place, the menu bar (and with it
        every shortcut), the status bar and every other window of the app are
        hidden until unlock()."""
        if self.locked:
            return
        self.locked = True
        at = clock.local(clock.now()).strftime("%H:%M")
        who = self.workspace.actor
        if by_user:
            self.lock_reason = f"Locked by {who.full_name} ({who.username}) at {at}."
        elif idle_minutes:
            unit = "minute" if idle_minutes == 1 else "minutes"
            self.lock_reason = (f"Locked at {at} after {idle_minutes} {unit} without "
                                "activity.")
        else:
            self.lock_reason = f"Locked at {at} after a period without activity."
        self.lock_page.set_reason(f"{self.lock_reason}\nThe password of {who.username} "
                                  "unlocks it.")
        focus = QApplication.focusWidget()
        self._focus_before_lock = focus if focus is not None and \
            self.content.isAncestorOf(focus) else None
        self.hidden_windows.start()
        self.root.setCurrentWidget(self.lock_page)
        self.root.removeWidget(self.content)
        self.content.setParent(self._vault)
        self._menu_actions = [a for a in self.findChildren(QAction) if a.isEnabled()]
        for action in self._menu_actions:
            action.setEnabled(False)
        self.menuBar().setEnabled(False)
        self.menuBar().hide()
        self.statusBar().clearMessage()  # "Saved patient …" names a patient
        self.statusBar().hide()
        self._lay_out_now()  # the lock page fills the window at once
        self.lock_page.setFocus()

    def _lay_out_now(self) -> None:
        layout = self.layout()  # a QMainWindow always has its own layout
        if layout is not None:
            layout.activate()

    def allow_while_locked(self, widget: QWidget) -> None:
        self.hidden_windows.allow(widget)

    def unlock(self) -> None:
        if not self.locked:
            return
        self.locked = False
        self.root.insertWidget(0, self.content)
        self.root.setCurrentWidget(self.content)
        self.menuBar().show()
        self.menuBar().setEnabled(True)
        for action in self._menu_actions:
            if isValid(action):
                action.setEnabled(True)
        self._menu_actions = []
        self.statusBar().show()
        self._lay_out_now()
        self.hidden_windows.stop()
        focus = self._focus_before_lock
        self._focus_before_lock = None
        self.activateWindow()
        if focus is not None and isValid(focus) and focus.isVisible():
            focus.setFocus()

    def shutdown(self) -> None:
        """Stop every timer of the window and its views (the app is quitting or
        the window is going away): nothing may fire into a deleted widget."""
        for timer in self.findChildren(QTimer):
            timer.stop()
        for timer in self.content.findChildren(QTimer):
            timer.stop()
        if self.locked:
            # never shown again: they go with this window, still hidden
            self.hidden_windows.discard()

    # -------------------------------------------------------------- settings

    def _restore_geometry(self) -> None:
        s = QSettings()
        geo = s.value("mainWindow/geometry")
        if isinstance(geo, QByteArray) and not geo.isEmpty():
            self.restoreGeometry(geo)
        else:
            self.resize(1280, 800)
        state = s.value("mainWindow/state")
        if isinstance(state, QByteArray) and not state.isEmpty():
            self.restoreState(state)

    def save_settings(self) -> None:
        s = QSettings()
        s.setValue("mainWindow/geometry", self.saveGeometry())
        s.setValue("mainWindow/state", self.saveState())
        for view in self.views.values():
            save = getattr(view, "save_settings", None)
            if callable(save):
                save()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt API
        self.save_settings()
        super().closeEvent(event)
