"""Helpers of the counter tests: a signed-in main window, keys typed where the
focus is, dialogs that a shortcut or a button opened."""

from __future__ import annotations

from collections.abc import Iterator

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QWidget

from getmeds_desktop.ui.main_window import MainWindow
from getmeds_desktop.ui.workspace import Workspace

CTRL = Qt.KeyboardModifier.ControlModifier


def window_maker(qtbot, gui_world, connector, empty_config) -> Iterator:
    """``make(role)`` -> a shown, active main window at 1280x800."""
    target, world = gui_world
    opened_db = connector.open(target)
    made: list[Workspace] = []

    def make(role: str = "pharmacist") -> MainWindow:
        ws = Workspace(opened_db, getattr(world, role), empty_config)
        win = MainWindow(ws)
        qtbot.addWidget(win)
        win.resize(1280, 800)
        win.show()
        win.activateWindow()
        qtbot.waitUntil(win.isActiveWindow, timeout=5000)
        made.append(ws)
        return win

    make.world = world  # type: ignore[attr-defined]
    yield make
    for ws in made:
        ws.tasks.shutdown()


def press(qtbot, win: QWidget, key: Qt.Key, modifiers=CTRL) -> None:
    """A key typed where the focus is (the window when nothing has it)."""
    target = QApplication.focusWidget() or win
    qtbot.keyClick(target, key, modifiers)


def visible_dialog(win: QWidget, kind: type) -> QWidget | None:
    return next((d for d in win.findChildren(kind) if d.isVisible()), None)


def opened(qtbot, parent: QWidget, kind: type) -> QWidget:
    """The dialog a shortcut opened, once it has the keyboard."""
    qtbot.waitUntil(lambda: visible_dialog(parent, kind) is not None, timeout=5000)
    dlg = visible_dialog(parent, kind)
    qtbot.waitUntil(dlg.isActiveWindow, timeout=5000)
    return dlg


def close(qtbot, win: QWidget, dlg: QWidget) -> None:
    """Close an untouched dialog; the main window has the keyboard again (the
    offscreen platform has no window manager to give it back by itself)."""
    dlg.reject()
    qtbot.waitUntil(lambda: not dlg.isVisible(), timeout=5000)
    win.activateWindow()
    qtbot.waitUntil(win.isActiveWindow, timeout=5000)
