"""Locked means nothing of the window's content can be seen or reached.

Each test signs in as a pharmacist, puts a patient with an unmistakable name on
screen, locks (Ctrl+L or idle) and then tries what a passer-by at the counter
or a screen reader would: look at the window, type shortcuts, click where the
list was, walk the accessibility tree, look at the dialogs that were open.

Set GETMEDS_TEST_SCREENSHOTS to a folder to keep the lock screen's pictures at
1280x800 and 1920x1080.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import QModelIndex, Qt
from PySide6.QtGui import QAccessible, QImage, QPainter
from PySide6.QtWidgets import QAbstractItemView, QApplication, QMessageBox, QWidget
from shiboken6 import isValid

from getmeds_desktop.ui.controller import AppController
from tests.fixtures.data import PASSWORD

pytestmark = pytest.mark.parametrize("backend_name", ["sqlite"], indirect=True)
SECRET = "Quixotenberg"  # the patient's last name: must never be on a locked screen


@pytest.fixture
def signed_in(qtbot, gui_world, empty_config, tmp_path) -> Iterator[tuple]:
    target, world = gui_world
    world.patient("Zelda", SECRET)
    ctrl = AppController(QApplication.instance(), empty_config, [target], tmp_path / "log.txt")
    try:
        login = ctrl.show_login(world.pharmacist.username)
        qtbot.addWidget(login)
        login.password.setText(PASSWORD)
        with qtbot.waitSignal(login.signed_in, timeout=20000):
            qtbot.mouseClick(login.sign_in_button, Qt.MouseButton.LeftButton)
        win = ctrl.window  # closed below: test_shutdown_stops_every_timer deletes it itself
        win.resize(1280, 800)
        win.activateWindow()
        qtbot.waitUntil(lambda: ctrl.idle is not None and not ctrl.workspace.tasks.busy,
                        timeout=15000)
        ctrl.idle.set_timeout_ms(600_000)
        view = win.show_area("patients")
        view.search.setText(SECRET)
        view.search.flush()
        qtbot.waitUntil(lambda: not view.model.loading and view.model.rowCount() == 1,
                        timeout=15000)
        view.table.selectRow(0)
        view.table.setFocus()
        qtbot.waitUntil(lambda: SECRET in _painted_text(win), timeout=5000)
        yield ctrl, win, view, world
    finally:
        ctrl.shutdown()
        if ctrl.window is not None and isValid(ctrl.window):
            ctrl.window.close()
            ctrl.window.deleteLater()


def _texts(widget: QWidget) -> list[str]:
    """Every string a widget of the window holds (labels, buttons, table cells)."""
    out: list[str] = []
    for w in [widget, *widget.findChildren(QWidget)]:
        for getter in ("text", "windowTitle", "toolTip", "accessibleName",
                       "accessibleDescription", "placeholderText"):
            fn = getattr(w, getter, None)
            if callable(fn):
                try:
                    value = fn()
                except TypeError:
                    continue
                if isinstance(value, str) and value:
                    out.append(value)
        if isinstance(w, QAbstractItemView) and w.model() is not None:
            out += _model_texts(w.model())
    return out


def _model_texts(m) -> list[str]:
    root = QModelIndex()
    try:
        columns = m.columnCount(root)
    except TypeError:  # a list model (the navigation): one column
        columns = 1
    return [str(m.data(m.index(r, c))) for r in range(min(m.rowCount(root), 50))
            for c in range(columns)]


def _painted_text(win: QWidget) -> str:
    """What the visible widgets of the window would paint."""
    return " ".join(t for w in [win, *win.findChildren(QWidget)] if w.isVisible()
                    for t in _texts_of_one(w))


def _texts_of_one(w: QWidget) -> list[str]:
    out = []
    fn = getattr(w, "text", None)
    if callable(fn):
        try:
            v = fn()
            if isinstance(v, str):
                out.append(v)
        except TypeError:
            pass
    if isinstance(w, QAbstractItemView) and w.model() is not None:
        out += _model_texts(w.model())
    return out


def _accessible_text(win: QWidget) -> str:
    """Everything a screen reader could read from the window, hidden nodes included."""
    found: list[str] = []
    seen = 0

    def walk(iface, depth: int = 0) -> None:
        nonlocal seen
        if iface is None or not iface.isValid() or depth > 60 or seen > 20000:
            return
        seen += 1
        for kind in (QAccessible.Text.Name, QAccessible.Text.Value,
                     QAccessible.Text.Description, QAccessible.Text.Help):
            text = iface.text(kind)
            if text:
                found.append(text)
        for i in range(iface.childCount()):
            walk(iface.child(i), depth + 1)

    walk(QAccessible.queryAccessibleInterface(win))
    return " ".join(found)


def _inside(outer: QWidget, w: QWidget | None) -> bool:
    while w is not None:
        if w is outer:
            return True
        w = w.parentWidget()
    return False


def _lock(qtbot, ctrl, win) -> None:
    qtbot.keyClick(win, Qt.Key.Key_L, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: win.locked and ctrl.unlock_dialog is not None
                    and ctrl.unlock_dialog.isVisible(), timeout=5000)


def _type_password(qtbot, ctrl, password: str) -> None:
    dlg = ctrl.unlock_dialog
    dlg.password.setText(password)
    qtbot.mouseClick(dlg.sign_in_button, Qt.MouseButton.LeftButton)


def _unlock(qtbot, ctrl, win) -> None:
    _type_password(qtbot, ctrl, PASSWORD)
    qtbot.waitUntil(lambda: not win.locked, timeout=15000)


def _lock_from(qtbot, ctrl, win, widget: QWidget) -> None:
    """Ctrl+L typed in another window of the app (a dialog in front of the main one)."""
    qtbot.keyClick(widget, Qt.Key.Key_L, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: win.locked and ctrl.unlock_dialog is not None, timeout=5000)


def test_locked_window_shows_only_the_lock_page(qtbot, signed_in):
    ctrl, win, view, world = signed_in
    assert SECRET in _accessible_text(win)  # (the probe finds the name when unlocked)
    _lock(qtbot, ctrl, win)

    # nothing that shows data is in the window any more, or visible anywhere
    assert not view.table.isVisible() and not win.content.isVisible()
    assert not win.isAncestorOf(win.content)
    unlock = ctrl.unlock_dialog
    left = [v for v in win.findChildren(QAbstractItemView) if not _inside(unlock, v)]
    assert left == [], [(v.objectName(), v.parent(), v.parent().parent()) for v in left]
    assert not win.menuBar().isVisible() and not win.statusBar().isVisible()
    assert win.root.currentWidget() is win.lock_page and win.lock_page.isVisible()
    assert SECRET not in " ".join(_texts(win))
    assert SECRET not in _painted_text(win)
    # the picture of the window is the picture of the lock page
    assert win.centralWidget().geometry() == win.rect()
    rgb = QImage.Format.Format_RGB32
    assert win.grab().toImage().convertToFormat(rgb) == \
        win.lock_page.grab().toImage().convertToFormat(rgb)
    # a screen reader finds the lock page and the unlock dialog, nothing else
    spoken = _accessible_text(win)
    assert SECRET not in spoken and "GetMeds is locked" in spoken
    assert world.pharmacist.username in spoken  # whose password it wants


def test_a_manual_lock_says_who_locked_it(qtbot, signed_in):
    ctrl, win, _view, world = signed_in
    _lock(qtbot, ctrl, win)
    who = f"Locked by {world.pharmacist.full_name} ({world.pharmacist.username})"
    assert who in win.lock_page.detail.text()
    assert who in ctrl.unlock_dialog.findChild(QWidget, "loginSubtitle").text()
    assert "without activity" not in win.lock_page.detail.text()


def test_an_idle_lock_says_so(qtbot, signed_in):
    ctrl, win, view, _world = signed_in
    ctrl.idle.set_timeout_ms(300)
    qtbot.waitUntil(lambda: win.locked and ctrl.unlock_dialog is not None, timeout=10000)
    assert "without activity" in win.lock_page.detail.text()
    assert "Locked by" not in win.lock_page.detail.text()
    assert not view.table.isVisible()
    ctrl.idle.set_timeout_ms(600_000)


def test_keyboard_and_mouse_reach_nothing_behind_the_lock(qtbot, signed_in):
    ctrl, win, view, _world = signed_in
    where = view.table.viewport().mapTo(win, view.table.visualRect(
        view.model.index(0, 0)).center())
    _lock(qtbot, ctrl, win)
    row_before = win.nav.currentRow()
    for n in range(1, 8):   # Ctrl+1..7 switch areas when unlocked
        qtbot.keyClick(win, Qt.Key(Qt.Key.Key_0 + n), Qt.KeyboardModifier.ControlModifier)
    qtbot.keyClick(win, Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)
    qtbot.keyClick(win, Qt.Key.Key_O, Qt.KeyboardModifier.ControlModifier)  # profile
    qtbot.keyClick(win, Qt.Key.Key_L, Qt.KeyboardModifier.ControlModifier)  # lock again
    assert win.nav.currentRow() == row_before
    assert not any(w.isVisible() for w in QApplication.topLevelWidgets()
                   if w.objectName() == "patientProfile")
    # where the patient's row was there is only the lock page
    hit = win.childAt(where)
    assert hit is None or hit is win.lock_page or win.lock_page.isAncestorOf(hit)
    qtbot.mouseDClick(win, Qt.MouseButton.LeftButton, pos=where)
    # Tab never leaves the unlock dialog for the content
    dlg = ctrl.unlock_dialog
    for _ in range(12):
        qtbot.keyClick(QApplication.focusWidget() or dlg, Qt.Key.Key_Tab)
        focus = QApplication.focusWidget()
        assert focus is None or focus is dlg or dlg.isAncestorOf(focus) \
            or focus is win.lock_page
    every_action = [a for a in win.findChildren(__import__(
        "PySide6.QtGui", fromlist=["QAction"]).QAction)]
    assert every_action and not any(a.isEnabled() for a in every_action)


def test_unlock_brings_everything_back(qtbot, signed_in):
    ctrl, win, view, _world = signed_in
    _lock(qtbot, ctrl, win)
    _type_password(qtbot, ctrl, "not the password!")  # refused: still locked
    qtbot.waitUntil(lambda: "Wrong username or password" in ctrl.unlock_dialog.message.text(),
                    timeout=15000)
    assert win.locked and not view.table.isVisible()
    _unlock(qtbot, ctrl, win)
    assert view.table.isVisible() and win.menuBar().isVisible() and win.statusBar().isVisible()
    assert win.isAncestorOf(view.table)
    assert SECRET in _painted_text(win)
    assert win.focusWidget() is view.table  # where it was before the lock
    qtbot.waitUntil(win.isActiveWindow, timeout=5000)
    qtbot.keyClick(win, Qt.Key.Key_1, Qt.KeyboardModifier.ControlModifier)
    assert win.stack.currentWidget() is win.views["dashboard"]


def test_open_dialogs_are_hidden_while_locked_and_come_back(qtbot, signed_in):
    ctrl, win, view, _world = signed_in
    view.profile()
    from getmeds_desktop.ui.dialogs.patients import PatientProfile

    qtbot.waitUntil(lambda: any(isinstance(w, PatientProfile) and w.isVisible()
                                for w in QApplication.topLevelWidgets()), timeout=15000)
    profile = next(w for w in QApplication.topLevelWidgets() if isinstance(w, PatientProfile))
    assert SECRET in " ".join(_texts(profile))
    _lock_from(qtbot, ctrl, win, profile)
    assert not profile.isVisible()
    visible = [w for w in QApplication.topLevelWidgets() if w.isVisible()]
    assert set(visible) <= {win, ctrl.unlock_dialog}
    _unlock(qtbot, ctrl, win)
    qtbot.waitUntil(profile.isVisible, timeout=5000)
    profile.close()


def test_a_window_that_opens_while_locked_stays_hidden_until_unlock(qtbot, signed_in):
    ctrl, win, view, _world = signed_in
    _lock(qtbot, ctrl, win)
    box = QMessageBox(QMessageBox.Icon.Warning, "GetMeds", f"{SECRET} was changed", parent=view)
    box.open()   # e.g. a background task's message arriving while locked
    qtbot.waitUntil(lambda: not box.isVisible(), timeout=5000)
    assert box.testAttribute(Qt.WidgetAttribute.WA_DontShowOnScreen) is False
    _unlock(qtbot, ctrl, win)
    qtbot.waitUntil(box.isVisible, timeout=5000)
    box.close()


def test_a_window_closed_while_locked_does_not_come_back(qtbot, signed_in):
    ctrl, win, view, _world = signed_in
    box = QMessageBox(QMessageBox.Icon.Information, "GetMeds", "Saved.", parent=view)
    box.open()
    qtbot.waitUntil(box.isVisible, timeout=5000)
    _lock_from(qtbot, ctrl, win, box)
    box.done(0)   # finished by its own code while hidden
    _unlock(qtbot, ctrl, win)
    assert not box.isVisible()


def test_signing_in_as_someone_else_never_shows_the_last_users_windows(qtbot, signed_in):
    ctrl, win, view, _world = signed_in
    view.profile()
    from getmeds_desktop.ui.dialogs.patients import PatientProfile

    qtbot.waitUntil(lambda: any(isinstance(w, PatientProfile) and w.isVisible()
                                for w in QApplication.topLevelWidgets()), timeout=15000)
    profile = next(w for w in QApplication.topLevelWidgets() if isinstance(w, PatientProfile))
    shown: list[bool] = []
    profile.installEventFilter(filt := _ShowSpy(shown))
    _lock_from(qtbot, ctrl, win, profile)
    qtbot.mouseClick(ctrl.unlock_dialog.findChild(QWidget, "loginSwitchUser"),
                     Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: ctrl.login is not None and ctrl.login.isVisible(), timeout=5000)
    assert shown == []
    assert not isValid(profile) or not profile.isVisible()
    # and the last user's screens are gone for good, not parked somewhere
    qtbot.waitUntil(lambda: not isValid(profile) and not isValid(view), timeout=5000)
    del filt
    ctrl.login.close()


class _ShowSpy(__import__("PySide6.QtCore", fromlist=["QObject"]).QObject):
    def __init__(self, shown: list) -> None:
        super().__init__()
        self.shown = shown

    def eventFilter(self, obj, event) -> bool:
        from PySide6.QtCore import QEvent

        if event.type() == QEvent.Type.Show:
            self.shown.append(True)
        return False


def test_a_question_waiting_for_an_answer_is_closed_as_cancelled(qtbot, signed_in):
    """A confirmation running its own event loop (QMessageBox.question) when the
    idle lock fires: it disappears and counts as No, nothing is done."""
    from PySide6.QtCore import QTimer

    ctrl, win, view, _world = signed_in
    QTimer.singleShot(0, ctrl.lock_when_idle)   # fires inside the question's loop
    answer = QMessageBox.question(view, "GetMeds", f"Delete {SECRET}?")
    assert answer != QMessageBox.StandardButton.Yes
    assert win.locked
    assert not any(isinstance(w, QMessageBox) and w.isVisible()
                   for w in QApplication.topLevelWidgets())
    _unlock(qtbot, ctrl, win)
    assert not any(isinstance(w, QMessageBox) and w.isVisible()
                   for w in QApplication.topLevelWidgets())


def test_shutdown_stops_every_timer(qtbot, signed_in):
    """The idle monitor's timer used to outlive the window and lock a deleted one."""
    from PySide6.QtCore import QTimer

    ctrl, win, _view, _world = signed_in
    monitor = ctrl.idle
    monitor.set_timeout_ms(50)
    ctrl.shutdown()
    assert ctrl.idle is None
    assert not isValid(monitor) or not monitor._timer.isActive()
    assert not any(t.isActive() for t in win.findChildren(QTimer))
    win.close()
    win.deleteLater()
    qtbot.waitUntil(lambda: not isValid(win), timeout=5000)
    ctrl.lock()   # a late call is harmless
    ctrl.lock_when_idle()


def test_lock_screen_pictures(qtbot, signed_in, tmp_path):
    ctrl, win, _view, _world = signed_in
    _lock(qtbot, ctrl, win)
    folder = Path(os.environ.get("GETMEDS_TEST_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    dlg = ctrl.unlock_dialog
    for w, h in ((1280, 800), (1920, 1080)):
        win.resize(w, h)
        qtbot.waitUntil(lambda w=w, h=h: win.size().width() == w and win.size().height() == h,
                        timeout=5000)
        win.layout().activate()
        shot = win.grab()
        assert (shot.width(), shot.height()) == (w, h)
        assert shot.save(str(folder / f"lock-window-{w}x{h}.png"))
        # what a person sees: the unlock dialog in the middle of the locked window
        seen = shot.copy()
        painter = QPainter(seen)
        painter.drawPixmap((w - dlg.width()) // 2, (h - dlg.height()) // 2, dlg.grab())
        painter.end()
        assert seen.save(str(folder / f"lock-{w}x{h}.png"))
        assert SECRET not in _painted_text(win)
