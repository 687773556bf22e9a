"""Auto-lock after idle minutes (HIPAA 164.312(a)(2)(iii)).

An application-wide event filter notes keyboard and mouse activity; when none
has happened for the configured time, ``idle`` fires once. The main window then
covers its contents and asks for the same user's password (or a change of user).
"""

from __future__ import annotations

import time

from PySide6.QtCore import QEvent, QObject, QTimer, Signal
from PySide6.QtWidgets import QApplication, QLabel, QVBoxLayout, QWidget

ACTIVITY = {
    QEvent.Type.KeyPress, QEvent.Type.MouseButtonPress, QEvent.Type.MouseMove,
    QEvent.Type.Wheel, QEvent.Type.TouchBegin,
}


class IdleMonitor(QObject):
    idle = Signal()

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
        if event.type() in ACTIVITY and not self._fired:
            self._last = time.monotonic()
        return False

    def _check(self) -> None:
        if not self._fired and (time.monotonic() - self._last) * 1000 >= self.timeout_ms:
            self._fired = True
            self.idle.emit()


class LockOverlay(QWidget):
    """Covers the window's contents while locked (no patient data on screen)."""

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self.setObjectName("lockOverlay")
        self.setAutoFillBackground(True)
        lay = QVBoxLayout(self)
        label = QLabel("Locked. Sign in to continue.")
        label.setStyleSheet("color: white; font-size: 16pt;")
        lay.addStretch(1)
        lay.addWidget(label, 0, alignment=__import__("PySide6.QtCore", fromlist=["Qt"]).Qt
                      .AlignmentFlag.AlignCenter)
        lay.addStretch(1)
        self.hide()

    def cover(self) -> None:
        parent = self.parentWidget()
        if parent is not None:
            self.setGeometry(parent.rect())
        self.raise_()
        self.show()
