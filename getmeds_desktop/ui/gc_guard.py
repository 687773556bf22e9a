"""Python's cycle collector runs on the GUI thread only.

A closed dialog or screen is often kept only by reference cycles (a lambda
connected to its own signal, a callback that names ``self``). Python's cycle
collector frees such garbage in whichever thread happens to allocate when a
generation's threshold is crossed, and the database and report workers
allocate a great deal. A widget freed there is destroyed in the wrong thread:
Qt prints "QBasicTimer::stop: Failed. Possibly trying to stop from a different
thread" and the process crashes. So while the application runs, automatic
collection is off and a timer on the GUI thread collects, generation by
generation, with the thresholds Python would have used.
"""

from __future__ import annotations

import gc

from PySide6.QtCore import QObject, QTimer

INTERVAL_MS = 500


def collect_due(threshold: tuple[int, int, int] | None = None) -> None:
    """Collect, in the calling thread, the generations Python would have
    collected by now (its own thresholds unless ``threshold`` is given)."""
    c0, c1, c2 = gc.get_count()
    t0, t1, t2 = threshold or gc.get_threshold()
    if c0 > t0:
        gc.collect(0)
        if c1 > t1:
            gc.collect(1)
            if c2 > t2:
                gc.collect(2)


class GuiThreadCollector(QObject):
    """Turns automatic collection off and collects from a GUI-thread timer.

    ``stop()`` turns automatic collection back on as it was.
    """

    def __init__(self, parent: QObject | None = None, interval_ms: int = INTERVAL_MS) -> None:
        super().__init__(parent)
        self._was_enabled = gc.isenabled()
        self._threshold: tuple[int, int, int] = gc.get_threshold()
        gc.disable()
        self._timer = QTimer(self)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self.check)
        self._timer.start()

    def check(self) -> None:
        collect_due(self._threshold)

    def stop(self) -> None:
        """Stop collecting; if automatic collection was on before, collect
        everything here first (on the GUI thread), then turn it back on."""
        self._timer.stop()
        if self._was_enabled:
            gc.collect()
            gc.enable()
