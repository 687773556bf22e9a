"""Every save says in the status bar what it saved."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

from getmeds_desktop.services import clock
from tests.ui.helpers import opened, window_maker

pytestmark = pytest.mark.parametrize("backend_name", ["sqlite"], indirect=True)


@pytest.fixture
def window(qtbot, gui_world, connector, empty_config) -> Iterator:
    yield from window_maker(qtbot, gui_world, connector, empty_config)


def status(win) -> str:
    return win.statusBar().currentMessage()


def search_and_select(qtbot, view, text: str) -> None:
    view.search.setText(text)
    view.search.flush()
    qtbot.waitUntil(lambda: not view.model.loading and view.model.rowCount() > 0,
                    timeout=15000)
    view.table.selectRow(0)


def test_a_receipt_says_what_was_received(qtbot, window):
    from getmeds_desktop.ui.dialogs.inventory import ReceiveDialog

    win = window("pharmacist")
    window.world.product("Ibuprofen", strength="400 mg", dosage_form="tablet")
    view = win.show_area("inventory")
    search_and_select(qtbot, view, "Ibuprofen")
    view.act_receive.trigger()
    dlg = opened(qtbot, view, ReceiveDialog)
    dlg.lot.setText("LOT42")
    dlg.expiry.set_date(clock.today() + dt.timedelta(days=400))
    dlg.quantity.setValue(100)
    with qtbot.waitSignal(dlg.saved, timeout=15000):
        qtbot.mouseClick(dlg.ok_button, Qt.MouseButton.LeftButton)
    assert status(win) == "Received 100 x Ibuprofen 400 mg tablet, lot LOT42"


def test_a_new_patient_says_who_was_saved(qtbot, window):
    from getmeds_desktop.ui.dialogs.patients import PatientEditor

    win = window("clerk")
    view = win.show_area("patients")
    view.act_new.trigger()
    dlg = opened(qtbot, view, PatientEditor)
    qtbot.keyClicks(dlg.first, "Jane")
    qtbot.keyClicks(dlg.last, "Doe")
    dlg.dob.set_date(dt.date(1985, 3, 14))
    with qtbot.waitSignal(dlg.saved, timeout=15000):
        qtbot.keyClick(dlg.last, Qt.Key.Key_Return)
    assert status(win) == "Saved patient Jane Doe"


def test_a_dispense_and_a_hold_say_what_happened(qtbot, window, monkeypatch):
    from getmeds_desktop.ui.dialogs import prescriptions as rx_dialogs
    from getmeds_desktop.ui.dialogs.prescriptions import DispenseDialog

    win = window("pharmacist")
    world = window.world
    product = world.product("Statusdrug", strength="20 mg")
    world.receive(product.id, 50)
    rx = world.rx(world.patient("Stan", "Status").id, product.id, quantity=20)
    monkeypatch.setattr(QMessageBox, "question",
                        lambda *a, **k: QMessageBox.StandardButton.No)  # no label
    queue = win.show_area("dispensing")
    search_and_select(qtbot, queue, str(rx.rx_number))
    qtbot.waitUntil(queue.act_dispense.isEnabled, timeout=5000)
    queue.act_dispense.trigger()
    dlg = opened(qtbot, queue, DispenseDialog)
    qtbot.waitUntil(lambda: dlg.preview is not None, timeout=15000)
    qtbot.keyClicks(dlg.scan, product.ndc_display)
    qtbot.keyClick(dlg.scan, Qt.Key.Key_Return)
    qtbot.waitUntil(dlg.confirm.isEnabled, timeout=15000)
    with qtbot.waitSignal(dlg.dispensed, timeout=15000):
        qtbot.mouseClick(dlg.confirm, Qt.MouseButton.LeftButton)
    assert status(win) == (f"Filled 20 x Statusdrug 20 mg on Rx {rx.rx_number} "
                           "for Status, Stan: waiting for a pharmacist's verification "
                           "(Verify and pick up, Ctrl+8)")

    other = world.rx(world.patient("Hal", "Hold").id, product.id, quantity=5)
    view = win.show_area("prescriptions")
    search_and_select(qtbot, view, str(other.rx_number))
    qtbot.waitUntil(view.act_hold.isEnabled, timeout=5000)
    monkeypatch.setattr(rx_dialogs, "ask_reason", lambda *a: "Patient asked to wait")
    view.act_hold.trigger()
    qtbot.waitUntil(lambda: status(win) == f"Rx {other.rx_number} (Hold, Hal) put on hold",
                    timeout=15000)


def test_a_confirmation_is_gone_when_the_workstation_locks(qtbot, window):
    win = window("clerk")
    win.show_status("Saved patient Jane Doe")
    assert status(win) == "Saved patient Jane Doe"
    win.lock(by_user=True)
    assert status(win) == ""
    win.unlock()
    assert status(win) == ""
