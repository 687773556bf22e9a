"""Date fields take a typed date as it is written (1985-03-14, 03/14/1985), never
change a part of it, and have no default where a wrong default is dangerous;
required fields are marked; long values show their beginning."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFormLayout, QLabel

from getmeds_desktop.services.errors import ValidationError
from getmeds_desktop.ui.widgets.common import DateField, parse_date
from tests.ui.helpers import opened, window_maker

sqlite = pytest.mark.parametrize("backend_name", ["sqlite"], indirect=True)


@pytest.fixture
def window(qtbot, gui_world, connector, empty_config) -> Iterator:
    yield from window_maker(qtbot, gui_world, connector, empty_config)


@pytest.mark.parametrize("text", ["1985-03-14", "1985/3/14", "03/14/1985", "3/14/1985",
                                  "03-14-1985", "19850314", " 1985-03-14 "])
def test_typed_dates_with_separators(text):
    assert parse_date(text) == dt.date(1985, 3, 14)


@pytest.mark.parametrize(("text", "says"), [
    ("1985", "not a date: type it as 1985-03-14 or 03/14/1985"),
    ("03/14/85", "the year with four digits"),
    ("14.03.1985", "not a date"),
    ("1985-13-01", "there is no month 13"),
    ("02/30/1985", "February has no day 30"),
    ("1985-02-29", "1985 is not a leap year"),
])
def test_what_is_not_a_date_is_refused_never_changed(text, says):
    with pytest.raises(ValidationError, match=says):
        parse_date(text)


def new_patient(qtbot, win):
    from getmeds_desktop.ui.dialogs.patients import PatientEditor

    view = win.show_area("patients")
    view.act_new.trigger()
    return opened(qtbot, view, PatientEditor)


def label_of(dlg, widget) -> str:
    label = dlg.form.labelForField(widget)
    if label is None:  # a field with a hint sits in a box
        label = dlg.form.labelForField(widget.parentWidget())
    assert isinstance(label, QLabel)
    return label.text()


@sqlite
def test_typing_a_date_of_birth(qtbot, window):
    win = window("clerk")
    dlg = new_patient(qtbot, win)
    assert dlg.dob.text() == "" and dlg.dob.value_or_none() is None  # no default
    dlg.dob.setFocus()
    qtbot.waitUntil(dlg.dob.hasFocus, timeout=5000)
    qtbot.keyClicks(dlg.dob, "03/14/1985")
    qtbot.keyClick(dlg.dob, Qt.Key.Key_Tab)
    assert dlg.dob.text() == "1985-03-14" and dlg.dob.value() == dt.date(1985, 3, 14)
    assert dlg.dob.property("invalid") is False


@sqlite
def test_a_part_typed_alone_is_never_turned_into_another_date(qtbot, window):
    """The old date box turned "1985 Tab 03 Tab 14" into 1985-03-03."""
    win = window("clerk")
    dlg = new_patient(qtbot, win)
    qtbot.keyClicks(dlg.first, "Parta")
    qtbot.keyClicks(dlg.last, "Typed")
    dlg.dob.setFocus()
    qtbot.waitUntil(dlg.dob.hasFocus, timeout=5000)
    qtbot.keyClicks(dlg.dob, "1985")
    qtbot.keyClick(dlg.dob, Qt.Key.Key_Tab)
    assert dlg.dob.text() == "1985" and dlg.dob.property("invalid") is True
    assert "not a date" in dlg.dob.toolTip()
    qtbot.mouseClick(dlg.ok_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "not a date" in dlg.message.text(), timeout=5000)
    assert dlg.isVisible() and dlg.dob.hasFocus()


@sqlite
def test_an_untouched_date_of_birth_is_refused(qtbot, window):
    win = window("clerk")
    dlg = new_patient(qtbot, win)
    qtbot.keyClicks(dlg.first, "Nodate")
    qtbot.keyClicks(dlg.last, "Given")
    qtbot.mouseClick(dlg.ok_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "Date of birth is required" in dlg.message.text(), timeout=15000)
    assert dlg.isVisible() and dlg.dob.property("invalid") is True


@sqlite
def test_required_fields_are_marked(qtbot, window):
    win = window("clerk")
    dlg = new_patient(qtbot, win)
    assert label_of(dlg, dlg.first) == "&First name*:"
    assert label_of(dlg, dlg.dob) == "&Date of birth*:"
    assert label_of(dlg, dlg.phone) == "&Phone:"
    assert dlg.required_note.isVisible() and dlg.required_note.text() == "* required"
    assert dlg.form.rowCount() > 0 and isinstance(dlg.form, QFormLayout)


@sqlite
def test_a_receipt_has_no_default_expiry(qtbot, window):
    from getmeds_desktop.ui.dialogs.inventory import ReceiveDialog

    win = window("pharmacist")
    view = win.show_area("inventory")
    view.act_receive.trigger()
    dlg = opened(qtbot, view, ReceiveDialog)
    assert dlg.expiry.text() == "" and label_of(dlg, dlg.expiry) == "&Expiry date*:"


def test_a_date_picked_from_the_calendar(qtbot):
    field = DateField(what="expiry date")
    qtbot.addWidget(field)
    field.show()
    field.calendar_action.trigger()
    cal = field._calendar
    assert cal is not None and cal.isVisible()
    from PySide6.QtCore import QDate

    cal.setSelectedDate(QDate(2027, 5, 31))
    cal.clicked.emit(QDate(2027, 5, 31))
    assert field.value() == dt.date(2027, 5, 31) and field.text() == "2027-05-31"


@sqlite
def test_long_values_show_their_beginning(qtbot, window):
    from getmeds_desktop.services import listing
    from getmeds_desktop.ui.dialogs.prescriptions import PrescriptionEditor

    win = window("pharmacist")
    view = win.show_area("prescriptions")
    assert view.table.textElideMode() == Qt.TextElideMode.ElideRight
    long_name = "Konstantinopoulou-Papadimitriou, Alexandra-Katerina"
    view.act_new.trigger()
    dlg = opened(qtbot, view, PrescriptionEditor)
    dlg.patient.set_choice(listing.Choice(dlg.new_id, long_name))
    assert dlg.patient.edit.cursorPosition() == 0
    assert not dlg.patient.edit.hasSelectedText()
