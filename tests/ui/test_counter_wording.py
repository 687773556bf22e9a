"""US English on screen: "License", and counts that agree with their number."""

from __future__ import annotations

from PySide6.QtWidgets import QSpinBox

from getmeds_desktop.ui.views.admin import STAFF_COLUMNS
from getmeds_desktop.ui.widgets.forms import plural, unit_suffix


def test_plurals():
    assert plural(1, "minute") == "1 minute"
    assert plural(5, "minute") == "5 minutes"
    assert plural(0, "variance") == "0 variances"
    assert plural(1200, "lot") == "1,200 lots"
    assert plural(2, "entry", "entries") == "2 entries"


def test_a_spin_box_unit_agrees_with_its_number(qtbot):
    spin = QSpinBox()
    qtbot.addWidget(spin)
    spin.setRange(1, 240)
    unit_suffix(spin, "minute")
    spin.setValue(1)
    assert spin.text() == "1 minute"
    spin.setValue(15)
    assert spin.text() == "15 minutes"


def test_license_is_spelled_the_us_way():
    assert [c.title for c in STAFF_COLUMNS if c.key == "licence"] == ["License"]
