"""Transfers at the counter: Prescriptions > Transfer out… (Ctrl+Shift+O) and
Transfer in… (Ctrl+Shift+I), for pharmacists only; a prescription that may not
go is refused with the rule before any form opens; the transfer shows in the
prescription's details (21 CFR 1306.25, 1306.08(e))."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QMessageBox

from getmeds_desktop.enums import RxStatus, Schedule
from getmeds_desktop.services import clock, prescriptions
from getmeds_desktop.services.prescriptions import PrescriptionDraft
from tests.fixtures.data import valid_dea
from tests.ui.helpers import CTRL, opened, press, window_maker

pytestmark = pytest.mark.parametrize("backend_name", ["sqlite"], indirect=True)
SHIFT = Qt.KeyboardModifier.ShiftModifier
SHOTS = os.environ.get("GETMEDS_SCREENSHOTS")  # a folder: save what the tests show


@pytest.fixture
def window(qtbot, gui_world, connector, empty_config) -> Iterator:
    yield from window_maker(qtbot, gui_world, connector, empty_config)


def _shot(widget, name: str) -> None:
    if SHOTS:
        widget.grab().save(os.path.join(SHOTS, f"transfers-{name}.png"))


def _select(qtbot, view, text: str) -> None:
    view.search.setText(text)
    view.search.flush()
    qtbot.waitUntil(lambda: not view.model.loading and view.model.rowCount() > 0,
                    timeout=15000)
    view.table.selectRow(0)


def _pick(qtbot, picker, text: str) -> None:
    qtbot.keyClicks(picker.edit, text)
    qtbot.waitUntil(lambda: len(picker.results()) > 0, timeout=15000)
    picker.set_choice(picker.results()[0])


def test_a_pharmacist_transfers_a_prescription_out(qtbot, window, monkeypatch):
    from getmeds_desktop.ui.dialogs.prescriptions import PrescriptionViewer
    from getmeds_desktop.ui.dialogs.transfers import TransferOutDialog

    monkeypatch.setattr(QMessageBox, "question",
                        lambda *a, **k: QMessageBox.StandardButton.Yes)
    win = window("pharmacist")
    world = window.world
    product = world.product("Xferclonazepam", schedule=Schedule.IV, strength="0.5 mg",
                            dosage_form="tablet")
    rx = world.rx(world.patient("Tess", "Mover").id, product.id, refills=2)
    view = win.show_area("prescriptions")
    _select(qtbot, view, str(rx.rx_number))
    qtbot.waitUntil(view.act_transfer_out.isEnabled, timeout=5000)
    assert view.act_transfer_out.toolTip() == (
        "Transfer the prescription to another pharmacy (Ctrl+Shift+O)")
    press(qtbot, win, Qt.Key.Key_O, CTRL | SHIFT)
    dlg = opened(qtbot, view, TransferOutDialog)
    _shot(win, "out-dialog-window")
    _shot(dlg, "out-dialog")
    # a bad DEA number: said next to the field, nothing is lost
    qtbot.keyClicks(dlg.pharmacy, "Elm Street Pharmacy")
    qtbot.keyClicks(dlg.address, "4 Elm Street, Springfield")
    qtbot.keyClicks(dlg.dea, "BE1234567")
    qtbot.keyClicks(dlg.pharmacist, "Jo Park, RPh")
    qtbot.mouseClick(dlg.ok_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "check digit" in dlg.message.text(), timeout=5000)
    _shot(dlg, "out-bad-dea")
    assert dlg.isVisible() and dlg.pharmacy.text() == "Elm Street Pharmacy"
    dlg.dea.setText(valid_dea("B", 777))
    with qtbot.waitSignal(dlg.saved, timeout=15000) as sig:
        qtbot.mouseClick(dlg.ok_button, Qt.MouseButton.LeftButton)
    done = sig.args[0]
    assert done.status is RxStatus.TRANSFERRED
    assert win.statusBar().currentMessage() == (
        f"Rx {rx.rx_number} transferred to Elm Street Pharmacy: closed here")
    # the details show where it went; it cannot be dispensed or transferred again
    info = prescriptions.get_prescription(world.sf, world.pharmacist, rx.id)
    shown = PrescriptionViewer(info, win)
    qtbot.addWidget(shown)
    shown.show()
    _shot(shown, "details-out")
    texts = " ".join(label.text() for label in shown.findChildren(QLabel))
    assert "Transferred to Elm Street Pharmacy (4 Elm Street, Springfield, DEA" in texts
    assert "received there by Jo Park, RPh" in texts
    view.status_filter.setCurrentIndex(view.status_filter.findText("Transferred"))
    _select(qtbot, view, str(rx.rx_number))
    qtbot.waitUntil(lambda: view.act_view.isEnabled(), timeout=5000)
    _shot(win, "list-transferred")
    assert not view.act_transfer_out.isEnabled() and not view.act_dispense.isEnabled()
    assert not view.act_hold.isEnabled() and not view.act_cancel.isEnabled()


def test_a_prescription_that_may_not_go_is_refused_with_the_rule(qtbot, window, monkeypatch):
    said: list[str] = []
    monkeypatch.setattr(QMessageBox, "warning", lambda _p, _t, text, *a: said.append(text))
    win = window("pharmacist")
    world = window.world
    product = world.product("Xferoxycodone", schedule=Schedule.II)
    paper = prescriptions.create_prescription(world.sf, world.pharmacist, PrescriptionDraft(
        patient_id=world.patient("Pam", "Paper").id, prescriber_id=world.prescriber_id,
        product_id=product.id, sig="Take 1", quantity=10, days_supply=5,
        date_written=clock.today(), electronic=False))
    view = win.show_area("prescriptions")
    _select(qtbot, view, str(paper.rx_number))
    qtbot.waitUntil(view.act_transfer_out.isEnabled, timeout=5000)
    view.act_transfer_out.trigger()
    qtbot.waitUntil(lambda: bool(said), timeout=15000)
    assert "not an electronic prescription" in said[0] and "1306.08(e)" in said[0]


@pytest.mark.parametrize("role", ["technician", "clerk", "doctor", "admin"])
def test_only_pharmacists_have_the_transfer_actions(qtbot, window, role):
    win = window(role)
    view = win.show_area("prescriptions")
    for act in (view.act_transfer_out, view.act_transfer_in):
        assert not act.isEnabled()
        assert act.toolTip() == (f"{role.capitalize()}s cannot transfer prescriptions to and "
                                 "from other pharmacies.")


def test_a_pharmacist_enters_a_prescription_transferred_in(qtbot, window):
    from getmeds_desktop.ui.dialogs.prescriptions import PrescriptionViewer
    from getmeds_desktop.ui.dialogs.transfers import TransferInDialog

    win = window("pharmacist")
    world = window.world
    world.patient("Ivo", "Arrival")
    world.product("Xferzolpidem", schedule=Schedule.IV, strength="10 mg", dosage_form="tablet")
    view = win.show_area("prescriptions")
    press(qtbot, win, Qt.Key.Key_I, CTRL | SHIFT)
    dlg = opened(qtbot, view, TransferInDialog)
    _pick(qtbot, dlg.patient, "Arrival")
    _pick(qtbot, dlg.prescriber, "Outside")
    _pick(qtbot, dlg.product, "Xferzolp")
    qtbot.keyClicks(dlg.sig, "Take 1 tablet at bedtime")
    dlg.quantity.setValue(30)
    written = clock.today() - dt.timedelta(days=40)
    dlg.written.set_date(written)
    qtbot.keyClicks(dlg.pharmacy, "Oak Pharmacy")
    qtbot.keyClicks(dlg.address, "9 Oak Road, Springfield")
    qtbot.keyClicks(dlg.dea, valid_dea("F", 31))
    qtbot.keyClicks(dlg.pharmacist, "Lee Wong, RPh")
    qtbot.keyClicks(dlg.original_rx, "OAK-5521")
    dlg.dispensed.set_date(written)
    dlg.authorized.setValue(3)
    dlg.remaining.setValue(2)
    _shot(dlg, "in-dialog")
    # a refill was used: its date and place are asked for
    qtbot.mouseClick(dlg.ok_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "previous refills" in dlg.message.text(), timeout=15000)
    _shot(dlg, "in-refused")
    qtbot.keyClicks(dlg.previous, f"{written + dt.timedelta(days=30)} at Oak Pharmacy")
    with qtbot.waitSignal(dlg.saved, timeout=15000) as sig:
        qtbot.mouseClick(dlg.ok_button, Qt.MouseButton.LeftButton)
    rx = sig.args[0]
    assert (rx.date_written, rx.refills_authorized) == (written, 1)
    info = prescriptions.get_prescription(world.sf, world.pharmacist, rx.id)
    shown = PrescriptionViewer(info, win)
    qtbot.addWidget(shown)
    shown.show()
    _shot(shown, "details-in")
    texts = " ".join(label.text() for label in shown.findChildren(QLabel))
    assert "Transferred in from Oak Pharmacy" in texts and "their Rx OAK-5521" in texts
    assert "2 of 3 refills remaining" in texts
