"""Auto-lock after idle minutes (HIPAA 164.312(a)(2)(iii)).

An application-wide event filter notes keyboard and mouse activity; when none
has happened for the configured time, ``idle`` fires once. The main window then
locks (also on Ctrl+L): its contents leave the window for a lock page (so no
patient data is painted, focusable, clickable or in the accessibility tree),
menus, status bar and shortcuts go, every other window of the app is hidden,
and it asks for the same user's password (or a change of user).
"""

from __future__ import annotations

import time

from PySide6.QtCore import QEvent, QObject, Qt, QTimer, Signal
from PySide6.QtGui import QKeyEvent, QKeySequence
from PySide6.QtWidgets import QApplication, QDialog, QLabel, QVBoxLayout, QWidget
from shiboken6 import isValid

from .icons import icon

ACTIVITY = {
    QEvent.Type.KeyPress, QEvent.Type.MouseButtonPress, QEvent.Type.MouseMove,
    QEvent.Type.Wheel, QEvent.Type.TouchBegin,
}


LOCK_KEYS = "Ctrl+L"


class IdleMonitor(QObject):
    """``idle`` after the configured time without keyboard or mouse activity;
    ``lock_keys`` when Ctrl+L is pressed in any window of the app (the main
    window's menu has the shortcut too, but a dialog in front of it would
    block that one)."""

    idle = Signal()
    lock_keys = Signal()

    def __init__(self, timeout_ms: int, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.timeout_ms = timeout_ms
        self._last = time.monotonic()
        self._fired = False
        self._timer = QTimer(self)
        self._timer.setInterval(1000)
        self._timer.timeout.connect(self._check)
        app = QApplication.instance()
        if app is not None:
            app.installEventFilter(self)
        self._timer.start()

    def set_timeout_ms(self, ms: int) -> None:
        self.timeout_ms = ms
        self._timer.setInterval(max(min(1000, ms // 4), 50))

    def reset(self) -> None:
        self._last = time.monotonic()
        self._fired = False

    def stop(self) -> None:
        self._timer.stop()
        app = QApplication.instance()
        if app is not None:
            app.removeEventFilter(self)

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt API
        kind = event.type()
        if kind in ACTIVITY and not self._fired:
            self._last = time.monotonic()
        if kind == QEvent.Type.KeyPress and isinstance(event, QKeyEvent) and \
                QKeySequence(event.keyCombination()) == QKeySequence(LOCK_KEYS):
            self.lock_keys.emit()
            return True
        return False

    def _check(self) -> None:
        if not self._fired and (time.monotonic() - self._last) * 1000 >= self.timeout_ms:
            self._fired = True
            self.idle.emit()


class LockPage(QWidget):
    """What the main window shows while locked: that it is locked, by whom or
    after how long, and nothing else. No patient data, nothing to click."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("lockPage")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        outer = QVBoxLayout(self)
        # in the upper part: the unlock dialog opens over the middle of the window
        outer.addStretch(1)
        box = QWidget()
        box.setObjectName("lockBox")
        box.setFixedWidth(620)  # a known width, so the wrapped text gets its full height
        lay = QVBoxLayout(box)
        lay.setSpacing(14)
        self.icon = QLabel()
        self.icon.setObjectName("lockIcon")
        self.icon.setPixmap(icon("lock", "#eceff1").pixmap(64, 64))
        self.title = QLabel("GetMeds is locked")
        self.title.setObjectName("lockTitle")
        self.detail = QLabel()
        self.detail.setObjectName("lockDetail")
        self.detail.setWordWrap(True)
        for w in (self.icon, self.title, self.detail):
            w.setAlignment(Qt.AlignmentFlag.AlignCenter)
            lay.addWidget(w)
        outer.addWidget(box, 0, Qt.AlignmentFlag.AlignHCenter)
        outer.addStretch(9)
        self.setAccessibleName("GetMeds is locked")

    def set_reason(self, text: str) -> None:
        self.detail.setText(text)
        self.setAccessibleDescription(text)


class HiddenWindows(QObject):
    """The application's other windows while the main window is locked.

    Every visible window except the main window and the unlock dialog is hidden
    (dialogs with a patient open, message boxes, progress, popups), and so is
    any window that appears while locked; at unlock the ones still wanted come
    back. A window that was closed, finished or deleted meanwhile stays away,
    and so do popups and dialogs that were running their own event loop
    (``exec()``: hiding ends it, as Cancel would).
    """

    def __init__(self, main: QWidget) -> None:
        super().__init__(main)
        self.main = main
        self.allowed: list[QWidget] = []
        self._hidden: list[QWidget] = []
        self._gone: set[int] = set()
        self._active = False

    # -------------------------------------------------------------- lock

    def start(self) -> None:
        self._active = True
        app = QApplication.instance()
        if app is not None:
            app.installEventFilter(self)
            popup = QApplication.activePopupWidget()
            while popup is not None:
                popup.close()
                nxt = QApplication.activePopupWidget()
                popup = None if nxt is popup else nxt
            for w in QApplication.topLevelWidgets():
                if w.isVisible() and self._concealed(w):
                    self._hide(w)

    def allow(self, widget: QWidget) -> None:
        """The unlock dialog (and what it opens) may show while locked."""
        self.allowed.append(widget)

    def stop(self) -> None:
        """Unlock: show again what the lock hid, if it is still wanted."""
        self._active = False
        app = QApplication.instance()
        if app is not None:
            app.removeEventFilter(self)
        hidden, self._hidden = self._hidden, []
        for w in hidden:
            if not isValid(w):
                continue
            w.removeEventFilter(self)
            if id(w) in self._gone:
                continue
            w.setAttribute(Qt.WidgetAttribute.WA_DontShowOnScreen, False)
            w.show()
        self._gone.clear()
        self.allowed.clear()

    def discard(self) -> None:
        """The window is going away while locked (another user signs in, the
        app quits): what the lock hid stays hidden and goes with it."""
        self._active = False
        app = QApplication.instance()
        if app is not None:
            app.removeEventFilter(self)
        for w in self._hidden:
            if isValid(w):
                w.removeEventFilter(self)
        self._hidden = []
        self._gone.clear()
        self.allowed.clear()

    # ---------------------------------------------------------- internals

    def _is_allowed(self, w: QWidget) -> bool:
        node: QWidget | None = w
        while node is not None:
            if node is self.main and w is self.main:
                return True
            if any(isValid(a) and node is a for a in self.allowed):
                return True
            node = node.parentWidget()
        return False

    def _concealed(self, w: QWidget) -> bool:
        return w.isWindow() and not self._is_allowed(w) and \
            w.windowType() != Qt.WindowType.ToolTip

    def _hide(self, w: QWidget) -> None:
        if w in self._hidden:
            return
        kind = w.windowType()
        in_own_loop = isinstance(w, QDialog) and \
            w.windowModality() == Qt.WindowModality.ApplicationModal
        if kind == Qt.WindowType.Popup or in_own_loop:
            self._gone.add(id(w))  # not shown again: its own loop is over
        else:
            key = id(w)
            w.destroyed.connect(lambda _=None, i=key: self._gone.add(i))
            if isinstance(w, QDialog):
                w.finished.connect(lambda _=0, i=key: self._gone.add(i))
        w.installEventFilter(self)
        self._hidden.append(w)
        w.hide()
        w.setAttribute(Qt.WidgetAttribute.WA_DontShowOnScreen, False)

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt API
        kind = event.type()
        if kind == QEvent.Type.Close and obj in self._hidden:
            self._gone.add(id(obj))
        elif (kind == QEvent.Type.Show and self._active and isinstance(obj, QWidget)
              and self._concealed(obj)):
            # a window that appears while locked (a message, a crash report):
            # never on screen, hidden as soon as Qt allows, shown at unlock
            obj.setAttribute(Qt.WidgetAttribute.WA_DontShowOnScreen, True)
            QTimer.singleShot(0, self, lambda w=obj: self._late_hide(w))
        return False

    def _late_hide(self, w: QWidget) -> None:
        if isValid(w) and self._active and w.isVisible():
            self._hide(w)
        elif isValid(w):
            w.setAttribute(Qt.WidgetAttribute.WA_DontShowOnScreen, False)
