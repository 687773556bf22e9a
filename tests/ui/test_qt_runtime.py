"""Guards against Qt binding bugs that would crash a long session."""

from __future__ import annotations

import sys

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QCheckBox


class _Emitter(QObject):
    flag = Signal(bool)


def test_bool_signals_keep_the_refcount_of_true_and_false(qtbot):
    # PySide6 6.12.0 decremented True/False on each bool emission; after a few
    # thousand clicks the process aborted. See the pin in pyproject.toml.
    e = _Emitter()
    e.flag.connect(lambda _v: None)
    box = QCheckBox()
    qtbot.addWidget(box)
    box.toggled.connect(lambda _v: None)
    before = sys.getrefcount(True), sys.getrefcount(False)
    for _ in range(200):
        e.flag.emit(True)
        e.flag.emit(False)
        box.setChecked(not box.isChecked())
    after = sys.getrefcount(True), sys.getrefcount(False)
    assert after[0] >= before[0] - 5 and after[1] >= before[1] - 5
