"""Verify and pick up, driven by keyboard as each role: a technician's fill is
verified by a pharmacist (who sees the scan, the lots, the label and the
overrides), released at the counter with the offer to counsel, or returned to
stock; the dashboard counts follow."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from PySide6.QtCore import Qt

from getmeds_desktop.enums import FillStatus
from getmeds_desktop.models import Schedule
from getmeds_desktop.services import dashboard, dispensing, fills
from getmeds_desktop.ui.dialogs.fills import ReleaseDialog, ReturnDialog, VerifyDialog
from tests.fixtures.data import NO_SCAN
from tests.ui.helpers import CTRL, close, opened, press, window_maker

pytestmark = pytest.mark.parametrize("backend_name", ["sqlite"], indirect=True)
SHIFT_CTRL = CTRL | Qt.KeyboardModifier.ShiftModifier


@pytest.fixture
def window(qtbot, gui_world, connector, empty_config) -> Iterator:
    yield from window_maker(qtbot, gui_world, connector, empty_config)


def _filled(world, name="Verifydrug", schedule=Schedule.NONE):
    p = world.product(name, schedule=schedule)
    world.receive(p.id, 40, lot=f"{name[:4].upper()}-7")
    rx = world.rx(world.patient("Vera", "Verify").id, p.id, quantity=12)
    return dispensing.dispense(world.sf, world.technician, dispensing.DispenseRequest(
        rx.id, uuid.uuid4(), no_scan_reason="barcode torn"))


def _queue(qtbot, win, state: FillStatus):
    view = win.show_area("fills")
    view.show_state(state)
    qtbot.waitUntil(lambda: view.model.rowCount() > 0
                    and view.model.row_at(0).status is state, timeout=15000)
    view.table.setFocus()
    view.table.selectRow(0)
    return view


def test_a_pharmacist_verifies_with_the_keyboard_and_the_clerk_releases(qtbot, window):
    world = window.world
    d = _filled(world)
    assert dashboard.dashboard(world.sf, world.pharmacist).to_verify == 1
    win = window("pharmacist")
    view = _queue(qtbot, win, FillStatus.FILLED)
    assert view.state.currentText() == "To verify (1)"
    press(qtbot, win, Qt.Key.Key_V, SHIFT_CTRL)
    dlg = opened(qtbot, view, VerifyDialog)
    qtbot.waitUntil(dlg.verify_button.isEnabled, timeout=15000)
    shown = " ".join(label.text() for label in dlg.sections.findChildren(
        type(dlg.header)))
    assert "Not scanned." in shown and "barcode torn" in shown  # the scan result
    assert "VERI-7" in shown  # the lot taken
    assert "No label printed yet." in shown
    assert "Filled by Test Technician" in dlg.header.text()
    # refusing needs what is wrong; Enter in the note never verifies
    assert not dlg.refuse_button.isEnabled()
    qtbot.keyClicks(dlg.refuse_note, "wrong")
    qtbot.keyClick(dlg.refuse_note, Qt.Key.Key_Return)
    assert dlg.isVisible() and fills.fill_detail(
        world.sf, world.pharmacist, d.dispense_id).row.status is FillStatus.FILLED
    dlg.refuse_note.clear()
    with qtbot.waitSignal(dlg.step_done, timeout=15000):
        qtbot.keyClick(dlg.verify_button, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: view.model.rowCount() == 0, timeout=15000)
    assert "verified: ready for pickup" in win.statusBar().currentMessage()

    counter = window("clerk")
    pickup = _queue(qtbot, counter, FillStatus.VERIFIED)
    assert not pickup.act_return.isEnabled()  # a clerk does not return stock
    press(qtbot, counter, Qt.Key.Key_R, SHIFT_CTRL)
    rel = opened(qtbot, pickup, ReleaseDialog)
    qtbot.waitUntil(lambda: rel.detail is not None, timeout=15000)
    assert not rel.release_button.isEnabled()  # the offer to counsel comes first
    assert not rel.id_seen.isVisible()  # not a controlled substance
    rel.counsel_buttons[fills.Counseling.DECLINED].click()
    with qtbot.waitSignal(rel.step_done, timeout=15000):
        qtbot.mouseClick(rel.release_button, Qt.MouseButton.LeftButton)
    detail = fills.fill_detail(world.sf, world.pharmacist, d.dispense_id)
    assert (detail.row.status, detail.released_by, detail.counseling) == (
        FillStatus.RELEASED, "Test Clerk", fills.Counseling.DECLINED)


def test_the_filler_cannot_verify_and_a_refusal_goes_back_to_stock(qtbot, window):
    world = window.world
    p = world.product("Ownfill")
    world.receive(p.id, 40)
    rx = world.rx(world.patient("Owen", "Fill").id, p.id, quantity=10)
    own = dispensing.dispense(world.sf, world.pharmacist, dispensing.DispenseRequest(
        rx.id, uuid.uuid4(), no_scan_reason=NO_SCAN))
    win = window("pharmacist")
    view = _queue(qtbot, win, FillStatus.FILLED)
    press(qtbot, win, Qt.Key.Key_V, SHIFT_CTRL)
    dlg = opened(qtbot, view, VerifyDialog)
    qtbot.waitUntil(lambda: dlg.detail is not None, timeout=15000)
    assert not dlg.verify_button.isEnabled()
    assert "another pharmacist verifies it" in dlg.message.text()
    dlg.reject()
    other = window("pharmacist2")
    view2 = _queue(qtbot, other, FillStatus.FILLED)
    press(qtbot, other, Qt.Key.Key_V, SHIFT_CTRL)
    dlg2 = opened(qtbot, view2, VerifyDialog)
    qtbot.waitUntil(dlg2.verify_button.isEnabled, timeout=15000)
    qtbot.keyClicks(dlg2.refuse_note, "wrong strength picked")
    assert dlg2.refuse_button.isEnabled()
    with qtbot.waitSignal(dlg2.step_done, timeout=15000):
        qtbot.mouseClick(dlg2.refuse_button, Qt.MouseButton.LeftButton)
    assert fills.fill_detail(world.sf, world.pharmacist, own.dispense_id).row.status is \
        FillStatus.RETURNED


def test_a_controlled_pickup_needs_the_id_and_a_technician_returns_only_ordinary_stock(
        qtbot, window):
    world = window.world
    cii = _filled(world, "Pickupcii", Schedule.II)
    fills.verify(world.sf, world.pharmacist, cii.dispense_id)
    win = window("technician")
    view = _queue(qtbot, win, FillStatus.VERIFIED)
    press(qtbot, win, Qt.Key.Key_R, SHIFT_CTRL)
    rel = opened(qtbot, view, ReleaseDialog)
    qtbot.waitUntil(lambda: rel.detail is not None, timeout=15000)
    assert rel.id_seen.isVisible()
    rel.counsel_buttons[fills.Counseling.ACCEPTED].click()
    assert not rel.release_button.isEnabled()  # the ID seen first
    qtbot.keyClicks(rel.id_seen, "State ID ...0042")
    assert rel.release_button.isEnabled()
    close(qtbot, win, rel)
    press(qtbot, win, Qt.Key.Key_T, SHIFT_CTRL)
    ret = opened(qtbot, view, ReturnDialog)
    qtbot.waitUntil(lambda: ret.detail is not None, timeout=15000)
    assert not ret.return_button.isEnabled()
    assert "a pharmacist returns it" in ret.message.text()
