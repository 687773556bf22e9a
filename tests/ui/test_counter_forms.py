"""Forms at the counter: Enter saves (never a secondary button), typed work is
never thrown away without asking, and every save says what it saved."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QMessageBox, QPushButton

from getmeds_desktop.services.errors import ValidationError
from getmeds_desktop.ui.widgets.common import FormDialog
from tests.ui.helpers import opened, press, window_maker

pytestmark = pytest.mark.parametrize("backend_name", ["sqlite"], indirect=True)


@pytest.fixture
def window(qtbot, gui_world, connector, empty_config) -> Iterator:
    yield from window_maker(qtbot, gui_world, connector, empty_config)


def enter(qtbot, dlg) -> None:
    """Enter where the focus is, as a user presses it."""
    qtbot.keyClick(QApplication.focusWidget() or dlg, Qt.Key.Key_Return)


def pick(qtbot, picker, text: str) -> None:
    qtbot.keyClicks(picker.edit, text)
    qtbot.waitUntil(lambda: len(picker.results()) > 0, timeout=15000)
    picker.set_choice(picker.results()[0])


def new_patient(qtbot, win):
    from getmeds_desktop.ui.dialogs.patients import PatientEditor

    view = win.show_area("patients")
    view.act_new.trigger()
    return opened(qtbot, view, PatientEditor)


def only_save_is_default(dlg: FormDialog) -> None:
    for button in dlg.findChildren(QPushButton):
        assert not button.autoDefault(), button.text()
        assert button.isDefault() == (button is dlg.ok_button), button.text()


def test_enter_in_new_patient_saves_and_adds_no_allergy_row(qtbot, window):
    win = window("clerk")
    dlg = new_patient(qtbot, win)
    only_save_is_default(dlg)
    qtbot.keyClicks(dlg.first, "Enid")
    qtbot.keyClicks(dlg.last, "Enterpress")
    dlg.dob.set_date(dt.date(1971, 6, 2))
    # the focus passes over "Add allergy" (Tab through the form) and back
    add_allergy = dlg.findChild(QPushButton, "addAllergy")
    add_allergy.setFocus()
    dlg.phone.setFocus()
    only_save_is_default(dlg)
    qtbot.keyClicks(dlg.phone, "217 555 0199")
    with qtbot.waitSignal(dlg.saved, timeout=15000) as sig:
        enter(qtbot, dlg)
    assert sig.args[0].last_name == "Enterpress" and sig.args[0].allergies == ()
    assert dlg.allergies.table.rowCount() == 0
    qtbot.waitUntil(lambda: not dlg.isVisible(), timeout=5000)


def test_enter_in_an_allergy_cell_keeps_the_allergy_and_saves(qtbot, window):
    win = window("clerk")
    dlg = new_patient(qtbot, win)
    qtbot.keyClicks(dlg.first, "Alma")
    qtbot.keyClicks(dlg.last, "Allergycell")
    dlg.dob.set_date(dt.date(1980, 1, 30))
    qtbot.mouseClick(dlg.findChild(QPushButton, "addAllergy"), Qt.MouseButton.LeftButton)
    editor = QApplication.focusWidget()
    assert dlg.allergies.table.isAncestorOf(editor)  # typing goes into the new cell
    qtbot.keyClicks(editor, "Sulfa")
    with qtbot.waitSignal(dlg.saved, timeout=15000) as sig:
        enter(qtbot, dlg)
    assert [a.allergen for a in sig.args[0].allergies] == ["Sulfa"]
    assert dlg.allergies.table.rowCount() == 1


def test_enter_after_a_refused_save_saves_instead_of_closing(qtbot, window, monkeypatch):
    """Save pressed with the mouse is disabled while saving, so the focus moves on
    to Cancel; a refusal that names no field leaves it there. Enter then must
    save again, not press Cancel and throw the prescription away."""
    from getmeds_desktop.ui.dialogs.prescriptions import PrescriptionEditor

    win = window("pharmacist")
    world = window.world
    world.patient("Rena", "Refused")
    world.product("Refusedrug")
    view = win.show_area("prescriptions")
    view.act_new.trigger()
    dlg = opened(qtbot, view, PrescriptionEditor)
    only_save_is_default(dlg)
    pick(qtbot, dlg.patient, "Refused")
    pick(qtbot, dlg.prescriber, "Outside")
    pick(qtbot, dlg.product, "Refusedr")
    qtbot.keyClicks(dlg.sig, "Take 1 tablet daily")
    dlg.quantity.setValue(30)
    real_save = dlg.save
    refusals = iter([ValidationError("The prescriber's licence could not be checked.")])

    def save_once_refused(draft):
        for exc in refusals:
            raise exc
        return real_save(draft)

    monkeypatch.setattr(dlg, "save", save_once_refused)
    qtbot.mouseClick(dlg.ok_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "could not be checked" in dlg.message.text(), timeout=15000)
    assert dlg.isVisible() and dlg.ok_button.isEnabled()
    only_save_is_default(dlg)
    with qtbot.waitSignal(dlg.saved, timeout=15000) as sig:
        enter(qtbot, dlg)
    assert sig.args[0].sig == "Take 1 tablet daily"


def _answer_discard(qtbot, dlg, button_name: str) -> None:
    qtbot.waitUntil(lambda: dlg.discard_box is not None and dlg.discard_box.isVisible(),
                    timeout=5000)
    box = dlg.discard_box
    assert box.windowTitle() == "Discard changes?"
    qtbot.mouseClick(box.findChild(QPushButton, button_name), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dlg.discard_box is None, timeout=5000)


def test_escape_with_typed_data_asks_before_discarding(qtbot, window):
    win = window("clerk")
    dlg = new_patient(qtbot, win)
    qtbot.keyClicks(dlg.first, "Kept")
    qtbot.keyClick(dlg.first, Qt.Key.Key_Escape)
    _answer_discard(qtbot, dlg, "discardChangesNo")  # Keep editing
    assert dlg.isVisible() and dlg.first.text() == "Kept"
    qtbot.keyClick(dlg.first, Qt.Key.Key_Escape)
    _answer_discard(qtbot, dlg, "discardChangesYes")  # Discard changes
    qtbot.waitUntil(lambda: not dlg.isVisible(), timeout=5000)


def test_cancel_and_close_with_typed_data_ask_too(qtbot, window):
    from getmeds_desktop.ui.dialogs.inventory import ProductEditor

    win = window("admin")
    view = win.show_area("inventory")
    press(qtbot, win, Qt.Key.Key_N)
    dlg = opened(qtbot, view, ProductEditor)
    only_save_is_default(dlg)
    qtbot.keyClicks(dlg.name, "Halfdone")
    qtbot.mouseClick(dlg.cancel_button, Qt.MouseButton.LeftButton)
    _answer_discard(qtbot, dlg, "discardChangesNo")
    assert dlg.isVisible() and dlg.name.text() == "Halfdone"
    dlg.close()  # the window's close button
    _answer_discard(qtbot, dlg, "discardChangesNo")
    assert dlg.isVisible()
    qtbot.mouseClick(dlg.cancel_button, Qt.MouseButton.LeftButton)
    _answer_discard(qtbot, dlg, "discardChangesYes")
    qtbot.waitUntil(lambda: not dlg.isVisible(), timeout=5000)


def test_untouched_or_retyped_form_closes_without_asking(qtbot, window):
    win = window("clerk")
    dlg = new_patient(qtbot, win)
    qtbot.keyClicks(dlg.first, "X")
    qtbot.keyClick(dlg.first, Qt.Key.Key_Backspace)  # typed, then taken back
    qtbot.keyClick(dlg.first, Qt.Key.Key_Escape)
    qtbot.waitUntil(lambda: not dlg.isVisible(), timeout=5000)
    assert dlg.discard_box is None and not dlg.findChildren(QMessageBox)


def test_a_doctors_own_prescriber_is_not_a_change(qtbot, window):
    from getmeds_desktop.ui.dialogs.prescriptions import PrescriptionEditor

    win = window("doctor")
    view = win.show_area("prescriptions")
    view.act_new.trigger()
    dlg = opened(qtbot, view, PrescriptionEditor)
    qtbot.waitUntil(lambda: dlg.prescriber.choice is not None, timeout=15000)
    assert not dlg.has_changes()
    qtbot.keyClick(QApplication.focusWidget(), Qt.Key.Key_Escape)
    qtbot.waitUntil(lambda: not dlg.isVisible(), timeout=5000)
