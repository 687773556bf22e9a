"""The DEA prescription fields at the counter: the DAW code with its meaning,
the "do not fill before" date and whether the prescription arrived
electronically in the prescription form and its view; the reason of a
Schedule II partial fill and the prescriber notice of a void remainder in the
dispense dialog (21 CFR 1306.12(b), 1306.13)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from PySide6.QtCore import Qt

from getmeds_desktop import db
from getmeds_desktop.enums import PartialReason, Schedule
from getmeds_desktop.models import Dispense
from getmeds_desktop.services import clock, dispensing, prescriptions
from getmeds_desktop.services.dispensing import DispenseRequest
from getmeds_desktop.services.prescriptions import PrescriptionDraft
from tests.fixtures.data import NO_SCAN
from tests.ui.helpers import opened, window_maker

pytestmark = pytest.mark.parametrize("backend_name", ["sqlite"], indirect=True)


@pytest.fixture
def window(qtbot, gui_world, connector, empty_config) -> Iterator:
    yield from window_maker(qtbot, gui_world, connector, empty_config)


def _pick(qtbot, picker, text: str) -> None:
    qtbot.keyClicks(picker.edit, text)
    qtbot.waitUntil(lambda: len(picker.results()) > 0, timeout=15000)
    picker.set_choice(picker.results()[0])


def _dispense_dialog(qtbot, win, rx_id: uuid.UUID):
    from getmeds_desktop.ui.dialogs.prescriptions import DispenseDialog

    dlg = DispenseDialog(win.workspace, rx_id, win)
    qtbot.addWidget(dlg)
    dlg.show()
    qtbot.waitUntil(lambda: dlg.preview is not None, timeout=15000)
    return dlg


def test_the_form_records_the_daw_code_the_earliest_fill_date_and_paper(qtbot, window):
    from getmeds_desktop.ui.dialogs.prescriptions import PrescriptionEditor, PrescriptionViewer

    win = window("pharmacist")
    world = window.world
    world.patient("Dawn", "Codes")
    world.product("Dawformdrug", schedule=Schedule.II)
    view = win.show_area("prescriptions")
    view.act_new.trigger()
    dlg = opened(qtbot, view, PrescriptionEditor)
    assert dlg.daw.count() == 10
    assert dlg.daw.currentText() == "0 - No product selection indicated"
    assert dlg.electronic.isChecked()  # new prescriptions arrive electronically
    _pick(qtbot, dlg.patient, "Codes")
    _pick(qtbot, dlg.prescriber, "Outside")
    _pick(qtbot, dlg.product, "Dawformd")
    qtbot.keyClicks(dlg.sig, "Take 1 tablet daily")
    dlg.quantity.setValue(30)
    dlg.daw.setCurrentIndex(dlg.daw.findData(7))
    later = clock.today() + dt.timedelta(days=28)
    qtbot.keyClicks(dlg.not_before, later.isoformat())
    dlg.electronic.setChecked(False)
    with qtbot.waitSignal(dlg.saved, timeout=15000) as sig:
        qtbot.mouseClick(dlg.ok_button, Qt.MouseButton.LeftButton)
    rx = sig.args[0]
    assert (rx.daw_code, rx.daw, rx.not_before, rx.electronic) == (7, True, later, False)
    shown = PrescriptionViewer(rx, win)
    qtbot.addWidget(shown)
    texts = [label.text() for label in shown.findChildren(type(dlg.screening))]
    assert "7 - Substitution not allowed - brand drug mandated by law" in texts
    assert later.isoformat() in texts
    assert any(t.endswith(", not electronic") for t in texts)
    # and the dispense dialog says why it cannot be filled yet
    dispense = _dispense_dialog(qtbot, win, rx.id)
    assert "may not be filled before" in dispense.problem.text()
    assert not dispense.confirm.isEnabled()


def test_a_schedule_ii_partial_fill_gives_its_reason_and_the_rest_can_be_declared_void(
        qtbot, window, monkeypatch):
    from getmeds_desktop.ui.dialogs import prescriptions as rx_dialogs

    win = window("pharmacist")
    world = window.world
    product = world.product("Partreason", schedule=Schedule.II)
    world.receive(product.id, 12)
    rx = prescriptions.create_prescription(world.sf, world.pharmacist, PrescriptionDraft(
        patient_id=world.patient().id, prescriber_id=world.prescriber_id,
        product_id=product.id, sig="Take 1 daily", quantity=30, days_supply=30,
        date_written=clock.today()))
    dlg = _dispense_dialog(qtbot, win, rx.id)
    assert not dlg.partial.isHidden() and not dlg.partial_reason.isHidden()
    assert dlg.void_rest.isHidden()  # nothing owed yet
    assert dlg.partial_reason.currentData() == PartialReason.SHORTAGE.value
    dlg.partial.setChecked(True)
    dlg.partial_reason.setCurrentIndex(dlg.partial_reason.findData(
        PartialReason.LONG_TERM_CARE.value))
    dlg.no_scan.setChecked(True)
    qtbot.keyClicks(dlg.no_scan_reason, NO_SCAN)
    qtbot.waitUntil(dlg.confirm.isEnabled, timeout=5000)
    with qtbot.waitSignal(dlg.dispensed, timeout=15000) as done:
        qtbot.mouseClick(dlg.confirm, Qt.MouseButton.LeftButton)
    result = done.args[0]
    assert (result.quantity, result.owed_after, result.partial_reason, result.days_supply) == (
        12, 18, "long_term_care", 12)

    # the rest: the pharmacist records that it cannot be filled and how the
    # prescriber was told
    rest = _dispense_dialog(qtbot, win, rx.id)
    assert not rest.void_rest.isHidden()
    asked = []
    monkeypatch.setattr(rx_dialogs, "ask_reason",
                        lambda _p, title, prompt: asked.append((title, prompt))
                        or "Phoned Dr Lee's office at 3 pm")
    qtbot.mouseClick(rest.void_rest, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "declared void" in rest.problem.text(), timeout=15000)
    assert "The remaining 18 will not be dispensed" in asked[0][1]
    assert "prescriber notice is recorded" in rest.message.text()
    assert rest.void_rest.isHidden() and not rest.confirm.isEnabled()
    info = prescriptions.get_prescription(world.sf, world.pharmacist, rx.id)
    assert info.prescriber_notice == "Phoned Dr Lee's office at 3 pm"
    with db.read_session(world.sf) as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(Dispense).where(
            Dispense.prescription_id == rx.id)) == 1
    with pytest.raises(dispensing.InvalidState):
        dispensing.dispense(world.sf, world.pharmacist, DispenseRequest(
            rx.id, uuid.uuid4(), no_scan_reason=NO_SCAN))


def test_a_smaller_fill_at_the_patients_request(qtbot, window):
    win = window("pharmacist")
    world = window.world
    product = world.product("Askedfewer", schedule=Schedule.II)
    world.receive(product.id, 100)
    rx = prescriptions.create_prescription(world.sf, world.pharmacist, PrescriptionDraft(
        patient_id=world.patient().id, prescriber_id=world.prescriber_id,
        product_id=product.id, sig="Take 1 daily", quantity=30, days_supply=30,
        date_written=clock.today()))
    dlg = _dispense_dialog(qtbot, win, rx.id)
    assert dlg.fill_quantity.value() == 30 and dlg.fill_quantity.maximum() == 30
    assert dlg.partial_reason.isHidden()  # all of it: not a partial fill
    dlg.no_scan.setChecked(True)
    qtbot.keyClicks(dlg.no_scan_reason, NO_SCAN)
    qtbot.waitUntil(dlg.confirm.isEnabled, timeout=5000)
    dlg.fill_quantity.setValue(10)
    assert not dlg.confirm.isEnabled()  # until the preview of 10 is back
    qtbot.waitUntil(lambda: dlg.preview.quantity == 10 and dlg.confirm.isEnabled(),
                    timeout=15000)
    assert not dlg.partial_reason.isHidden()
    # a smaller fill with stock on the shelf is the patient's (or prescriber's) request
    assert dlg.partial_reason.currentData() == PartialReason.PATIENT_REQUEST.value
    assert "Quantity <b>10</b> of 30 · 10 days" in dlg.details.text()
    with qtbot.waitSignal(dlg.dispensed, timeout=15000) as done:
        qtbot.mouseClick(dlg.confirm, Qt.MouseButton.LeftButton)
    result = done.args[0]
    assert (result.quantity, result.owed_after, result.partial_reason, result.days_supply) == (
        10, 20, "patient_request", 10)
    rest = _dispense_dialog(qtbot, win, rx.id)
    assert rest.fill_quantity.value() == 20 and rest.fill_quantity.maximum() == 20
