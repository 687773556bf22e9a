"""The main screens driven like a user would, against a real database."""

from __future__ import annotations

import datetime as dt

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QMessageBox

from getmeds_desktop.models import Dispense, Schedule
from getmeds_desktop.services import clock, inventory, listing, patients, prescriptions
from getmeds_desktop.ui.main_window import MainWindow
from getmeds_desktop.ui.workspace import Workspace


@pytest.fixture
def app_for(qtbot, gui_world, connector, empty_config):
    target, world = gui_world
    opened = connector.open(target)
    made: list[Workspace] = []

    def make(role: str = "pharmacist") -> tuple[MainWindow, Workspace]:
        ws = Workspace(opened, getattr(world, role), empty_config)
        win = MainWindow(ws)
        qtbot.addWidget(win)
        win.resize(1300, 800)
        win.show()
        made.append(ws)
        return win, ws

    make.world = world  # type: ignore[attr-defined]
    yield make
    for ws in made:
        ws.tasks.shutdown()


def idle(qtbot, ws) -> None:
    qtbot.waitUntil(lambda: not ws.tasks.busy, timeout=15000)


def search_and_select(qtbot, view, text: str) -> None:
    view.search.setText(text)
    view.search.flush()
    qtbot.waitUntil(lambda: not view.model.loading and view.model.rowCount() > 0,
                    timeout=15000)
    view.table.selectRow(0)


def pick(qtbot, picker, text: str) -> None:
    qtbot.keyClicks(picker.edit, text)
    qtbot.waitUntil(lambda: len(picker.results()) > 0, timeout=15000)
    picker.set_choice(picker.results()[0])


def test_keyboard_shortcuts_switch_areas(qtbot, app_for):
    win, _ = app_for("admin")
    win.activateWindow()
    qtbot.waitUntil(win.isActiveWindow, timeout=5000)
    for area in win.areas:  # each area keeps its own Ctrl+digit, whoever signs in
        digit = int(area.shortcut.removeprefix("Ctrl+"))
        qtbot.keyClick(win, Qt.Key(Qt.Key.Key_0 + digit), Qt.KeyboardModifier.ControlModifier)
        assert win.stack.currentWidget() is win.views[area.key]


def test_receive_stock_from_inventory(qtbot, app_for):
    win, ws = app_for("pharmacist")
    world = app_for.world
    p = world.product("Guireceive", reorder_level=50)
    view = win.show_area("inventory")
    search_and_select(qtbot, view, "Guireceive")
    assert view.model.row_at(0).on_hand == 0 and view.model.row_at(0).low
    view.act_receive.trigger()
    dlg = win.findChild(__import__("getmeds_desktop.ui.dialogs.inventory",
                                   fromlist=["ReceiveDialog"]).ReceiveDialog)
    assert dlg.product.choice.id == p.id
    dlg.lot.setText("GUI-1")
    dlg.expiry.set_date(clock.today() + dt.timedelta(days=400))
    dlg.quantity.setValue(120)
    dlg.cost.setText("0.25")
    dlg.supplier.setCurrentIndex(1)
    with qtbot.waitSignal(dlg.saved, timeout=15000):
        qtbot.mouseClick(dlg.ok_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: view.model.row_at(0).on_hand == 120, timeout=15000)
    assert not view.model.row_at(0).low
    assert inventory.lots_of_product(ws.sf, p.id)[0].lot_number == "GUI-1"


def test_one_scan_fills_in_a_receipt(qtbot, app_for):
    """A keyboard-wedge scanner types a raw GS1 string (with group separators)
    and Enter: product, lot and expiry are filled in; Enter does not save."""
    from getmeds_desktop.services.barcodes import GS
    from getmeds_desktop.ui.dialogs.inventory import ReceiveDialog

    win, ws = app_for("pharmacist")
    world = app_for.world
    p = world.product("Guiscan", ndc="0093-4150-01")
    view = win.show_area("inventory")
    view.act_receive.trigger()
    dlg = win.findChild(ReceiveDialog)
    assert dlg.scan.hasFocus() or dlg.focusWidget() is dlg.scan
    qtbot.keyClicks(dlg.scan, "0781-1506-10")  # a product the pharmacy does not stock
    qtbot.keyClick(dlg.scan, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: "No product has NDC 00781-1506-10" in dlg.message.text(),
                    timeout=15000)
    assert dlg.isVisible() and dlg.product.choice is None
    dlg.scan.clear()
    # (QTest cannot type ASCII 29; the scanner's key event is sent as the scanner sends it)
    from PySide6.QtCore import QEvent
    from PySide6.QtGui import QKeyEvent
    from PySide6.QtWidgets import QApplication

    qtbot.keyClicks(dlg.scan, "01003009341500181727123110ABC123")
    for kind in (QEvent.Type.KeyPress, QEvent.Type.KeyRelease):
        QApplication.sendEvent(dlg.scan, QKeyEvent(kind, Qt.Key.Key_BracketRight,
                                                   Qt.KeyboardModifier.ControlModifier, GS))
    qtbot.keyClicks(dlg.scan, "21SN1")
    assert dlg.scan.text() == "01003009341500181727123110ABC123" + GS + "21SN1"
    qtbot.keyClick(dlg.scan, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: dlg.product.choice is not None, timeout=15000)
    assert dlg.product.choice.id == p.id and dlg.isVisible()
    assert dlg.lot.text() == "ABC123" and dlg.expiry.value() == dt.date(2027, 12, 31)
    assert "Scanned NDC" in dlg.message.text()
    dlg.quantity.setValue(24)
    with qtbot.waitSignal(dlg.saved, timeout=15000):
        qtbot.mouseClick(dlg.ok_button, Qt.MouseButton.LeftButton)
    lot = inventory.lots_of_product(ws.sf, p.id)[0]
    assert (lot.lot_number, lot.expiry_date, lot.on_hand) == ("ABC123", dt.date(2027, 12, 31),
                                                              24)


def test_receive_refusal_is_shown_next_to_the_field(qtbot, app_for):
    win, _ = app_for("pharmacist")
    world = app_for.world
    world.product("Guirefuse")
    view = win.show_area("inventory")
    search_and_select(qtbot, view, "Guirefuse")
    view.act_receive.trigger()
    from getmeds_desktop.ui.dialogs.inventory import ReceiveDialog

    dlg = win.findChild(ReceiveDialog)
    dlg.lot.setText("X")
    dlg.quantity.setValue(0)
    qtbot.mouseClick(dlg.ok_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "more than zero" in dlg.message.text(), timeout=15000)
    assert dlg.quantity.property("invalid") is True
    assert dlg.isVisible()


def test_create_patient_with_an_allergy(qtbot, app_for):
    win, ws = app_for("clerk")
    view = win.show_area("patients")
    view.act_new.trigger()
    from getmeds_desktop.ui.dialogs.patients import PatientEditor

    dlg = win.findChild(PatientEditor)
    dlg.first.setText("Greta")
    dlg.last.setText("Guitest")
    dlg.dob.set_date(dt.date(1955, 3, 14))
    dlg.phone.setText("(217) 555-0101")
    dlg.allergies.add_row()
    dlg.allergies.table.item(0, 0).setText("Penicillin")
    dlg.allergies.table.item(0, 1).setText("Hives")
    with qtbot.waitSignal(dlg.saved, timeout=15000) as sig:
        qtbot.mouseClick(dlg.ok_button, Qt.MouseButton.LeftButton)
    created: patients.PatientInfo = sig.args[0]
    assert [a.allergen for a in created.allergies] == ["Penicillin"]
    qtbot.waitUntil(lambda: view.model.rowCount() == 1 and
                    view.model.row_at(0).last_name == "Guitest", timeout=15000)
    assert view.model.row_at(0).allergy_count == 1


def test_create_prescription_with_type_ahead_pickers(qtbot, app_for):
    win, ws = app_for("pharmacist")
    world = app_for.world
    world.patient("Pia", "Pickerton")
    world.product("Pickerdrug")
    view = win.show_area("prescriptions")
    view.act_new.trigger()
    from getmeds_desktop.ui.dialogs.prescriptions import PrescriptionEditor

    dlg = win.findChild(PrescriptionEditor)
    pick(qtbot, dlg.patient, "Pickerton")
    pick(qtbot, dlg.prescriber, "Outside")
    pick(qtbot, dlg.product, "Pickerdr")
    dlg.sig.setPlainText("Take 1 tablet by mouth daily")
    dlg.quantity.setValue(30)
    dlg.days.setValue(30)
    dlg.refills.setValue(2)
    with qtbot.waitSignal(dlg.saved, timeout=15000) as sig:
        qtbot.mouseClick(dlg.ok_button, Qt.MouseButton.LeftButton)
    rx = sig.args[0]
    assert rx.patient_name == "Pia Pickerton" and rx.refills_authorized == 2
    qtbot.waitUntil(lambda: view.model.rowCount() == 1 and
                    view.model.row_at(0).rx_number == rx.rx_number, timeout=15000)


def test_dispense_with_allergy_warning_and_barcode_check(qtbot, app_for, monkeypatch):
    win, ws = app_for("pharmacist")
    world = app_for.world
    product = world.product("Guicillin", classes=("Penicillin-class Antibacterial [EPC]",))
    other = world.product("Otherdrug")
    world.receive(product.id, 100, lot="AMX1")
    pat = world.patient("Al", "Lergic", allergies=("Penicillin",))
    rx = world.rx(pat.id, product.id, quantity=20)
    asked: list[str] = []
    monkeypatch.setattr(QMessageBox, "question",
                        lambda *a, **k: asked.append(a[2]) or QMessageBox.StandardButton.No)

    queue = win.show_area("dispensing")
    search_and_select(qtbot, queue, str(rx.rx_number))
    qtbot.waitUntil(lambda: queue.act_dispense.isEnabled(), timeout=5000)
    queue.act_dispense.trigger()
    from getmeds_desktop.ui.dialogs.prescriptions import DispenseDialog

    dlg = win.findChild(DispenseDialog)
    qtbot.waitUntil(lambda: dlg.preview is not None, timeout=15000)
    assert "Penicillin" in dlg.allergies.text()
    assert len(dlg.reason_edits) == 1 and not dlg.confirm.isEnabled()

    # the wrong package is refused, and says what was scanned
    qtbot.keyClicks(dlg.scan, other.ndc)
    qtbot.keyClick(dlg.scan, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: "Wrong product" in dlg.scan_result.text(), timeout=10000)
    assert not dlg.confirm.isEnabled()
    # the right package
    dlg.scan.clear()
    qtbot.keyClicks(dlg.scan, product.ndc_display)
    qtbot.keyClick(dlg.scan, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: "is the prescribed product" in dlg.scan_result.text(),
                    timeout=10000)
    assert not dlg.confirm.isEnabled()  # the allergy still needs a reason
    key = next(iter(dlg.reason_edits))
    warning_text = dlg.findChild(QLabel, "warningText_0").text()
    assert warning_text.startswith("⚠ STOP (severe)") and "Penicillin" in warning_text
    code, note = dlg.reason_codes[key], dlg.reason_edits[key]
    code.setCurrentIndex(code.findData("prescriber_consulted"))
    # a severe allergy: a one-word note is not enough, and the dialog says why
    qtbot.keyClicks(note, "x")
    # (not findChild: the labels of the warnings shown before the scan may still
    # be waiting for their deletion, and one of them would be found first)
    problem = dlg.reason_problems[key]
    assert not dlg.confirm.isEnabled() and "at least 3 words" in problem.text()
    assert problem.isVisible()
    note.clear()
    qtbot.keyClicks(note, "Prescriber confirmed tolerance")
    assert dlg.confirm.isEnabled() and not problem.isVisible()
    with qtbot.waitSignal(dlg.dispensed, timeout=15000) as sig:
        qtbot.mouseClick(dlg.confirm, Qt.MouseButton.LeftButton)
    result = sig.args[0]
    assert result.quantity == 20 and result.acknowledged == (key,)
    with ws.sf() as s:  # the service checked the scan and keeps it with the fill
        assert s.get(Dispense, result.dispense_id).scan_ndc == product.ndc
    qtbot.waitUntil(lambda: bool(asked), timeout=5000)
    assert "Print the label" in asked[0]
    assert prescriptions.get_prescription(ws.sf, ws.actor, rx.id).status.value == "dispensed"
    assert inventory.on_hand(ws.sf, product.id) == 80


def test_dashboard_counts_change_and_open_the_list(qtbot, app_for):
    win, ws = app_for("admin")
    world = app_for.world
    dash = win.views["dashboard"]
    idle(qtbot, ws)
    qtbot.waitUntil(lambda: dash.data is not None, timeout=15000)
    before_low = dash.data.low_stock
    before_new = dash.data.waiting.get(__import__("getmeds_desktop.models", fromlist=[
        "RxStatus"]).RxStatus.NEW, 0)
    p = world.product("Dashlow", reorder_level=10)
    world.rx(world.patient().id, p.id)
    dash.refresh()
    qtbot.waitUntil(lambda: dash.data.low_stock == before_low + 1, timeout=15000)
    from getmeds_desktop.models import RxStatus

    assert dash.data.waiting.get(RxStatus.NEW, 0) == before_new + 1
    assert dash.cards["low"].value.text() == f"{before_low + 1:,}"
    qtbot.mouseClick(dash.cards["low"], Qt.MouseButton.LeftButton)
    inv = win.views["inventory"]
    assert win.stack.currentWidget() is inv and inv.low.isChecked()
    qtbot.waitUntil(lambda: not inv.model.loading and inv.model.rowCount() > 0, timeout=15000)
    assert all(inv.model.row_at(i).low for i in range(inv.model.rowCount()))


def test_stale_product_edit_is_refused(qtbot, app_for):
    from getmeds_desktop.services import catalog

    win, ws = app_for("admin")
    world = app_for.world
    p = world.product("Staleprod")
    view = win.show_area("inventory")
    search_and_select(qtbot, view, "Staleprod")
    view.act_edit.trigger()
    from getmeds_desktop.ui.dialogs.inventory import ProductEditor

    qtbot.waitUntil(lambda: win.findChild(ProductEditor) is not None, timeout=15000)
    dlg = win.findChild(ProductEditor)
    # somebody else saves first
    catalog.update_product(ws.sf, world.admin, p.id, p.draft().__class__(
        **{**p.draft().__dict__, "reorder_level": 77}), expected_version=p.version)
    dlg.reorder_level.setValue(5)
    qtbot.mouseClick(dlg.ok_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "was changed by" in dlg.message.text(), timeout=15000)
    assert catalog.get_product(ws.sf, p.id).reorder_level == 77


def test_controlled_products_stand_out(qtbot, app_for):
    win, _ = app_for("pharmacist")
    world = app_for.world
    world.product("Standout", schedule=Schedule.II)
    view = win.show_area("inventory")
    search_and_select(qtbot, view, "Standout")
    col = [c.key for c in view.model.columns].index("schedule")
    idx = view.model.index(0, col)
    assert view.model.data(idx) == "C-II"
    assert view.model.data(idx, Qt.ItemDataRole.ForegroundRole) is not None
    assert "Controlled" in view.model.data(idx, Qt.ItemDataRole.ToolTipRole)


def test_auto_lock_and_unlock(qtbot, gui_world, empty_config, tmp_path, password_checks):
    from PySide6.QtWidgets import QApplication

    from getmeds_desktop.ui.controller import AppController
    from tests.fixtures.data import PASSWORD

    target, world = gui_world
    app = QApplication.instance()
    ctrl = AppController(app, empty_config, [target], tmp_path / "log.txt")
    try:
        login = ctrl.show_login(world.clerk.username)
        qtbot.addWidget(login)
        login.password.setText(PASSWORD)
        with qtbot.waitSignal(login.signed_in, timeout=20000):
            qtbot.mouseClick(login.sign_in_button, Qt.MouseButton.LeftButton)
        win = ctrl.window
        qtbot.addWidget(win)
        qtbot.waitUntil(lambda: ctrl.idle is not None and not ctrl.workspace.tasks.busy,
                        timeout=10000)
        ctrl.idle.set_timeout_ms(300)
        qtbot.waitUntil(lambda: win.locked, timeout=10000)
        assert win.lock_page.isVisible() and not win.content.isVisible()
        assert "without activity" in win.lock_page.detail.text()
        unlock = ctrl.unlock_dialog
        assert unlock.username.text() == world.clerk.username and unlock.username.isReadOnly()
        unlock.password.setText("wrong password!")
        qtbot.mouseClick(unlock.sign_in_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: "Wrong username or password" in unlock.message.text(),
                        timeout=15000)
        assert win.locked
        ctrl.idle.set_timeout_ms(60_000)
        unlock.password.setText(PASSWORD)
        qtbot.mouseClick(unlock.sign_in_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: not win.locked, timeout=15000)
        assert not win.lock_page.isVisible() and win.content.isVisible()
    finally:
        ctrl.shutdown()


def test_listing_reflects_dispensing_in_the_queue(qtbot, app_for):
    win, ws = app_for("pharmacist")
    world = app_for.world
    p = world.product("Queuedrug")
    world.receive(p.id, 50)
    rx = world.rx(world.patient().id, p.id, quantity=10)
    queue = win.show_area("dispensing")
    search_and_select(qtbot, queue, str(rx.rx_number))
    page = listing.list_prescriptions(ws.sf, ws.actor, queue.current_query())
    assert [r.id for r in page.rows] == [rx.id]
