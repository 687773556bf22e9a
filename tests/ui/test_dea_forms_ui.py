"""DEA Form 41 and Form 106 from Inventory > Lots, and the receive form's order
number and supplier DEA number (issue 16: DEA receipts and forms)."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

from getmeds_desktop.enums import LossType, MovementKind
from getmeds_desktop.models import Schedule
from getmeds_desktop.services import catalog, clock, deaforms, inventory, listing
from getmeds_desktop.ui.dialogs.deaforms import DestructionDialog, TheftLossDialog, index_of
from getmeds_desktop.ui.dialogs.inventory import LotsDialog, ReceiveDialog
from tests.ui.helpers import opened, window_maker

pytestmark = pytest.mark.parametrize("backend_name", ["sqlite"], indirect=True)
SHOTS = os.environ.get("GETMEDS_SCREENSHOTS")  # a folder: the dialogs are saved there


@pytest.fixture
def window(qtbot, gui_world, connector, empty_config) -> Iterator:
    yield from window_maker(qtbot, gui_world, connector, empty_config)


@pytest.fixture(autouse=True)
def _no_questions(monkeypatch):
    monkeypatch.setattr(QMessageBox, "question",
                        lambda *a, **k: QMessageBox.StandardButton.No)


def _shot(widget, name: str) -> None:
    if SHOTS:
        widget.grab().save(os.path.join(SHOTS, f"deaforms-{name}.png"))


def _lots_dialog(qtbot, win, product_id):
    ws = win.workspace
    dlg = LotsDialog(ws, catalog.get_product(ws.sf, product_id), win)
    qtbot.addWidget(dlg)
    dlg.show()
    qtbot.waitUntil(lambda: dlg.lots_model.rowCount() > 0, timeout=15000)
    dlg.lots.selectRow(0)
    return dlg


def test_a_pharmacist_records_a_destruction_with_two_witnesses(qtbot, window):
    world = window.world
    p = world.product("Morphine ER", schedule=Schedule.II, strength="15 mg")
    lot = world.receive(p.id, 40, lot="MS-OLD").lot_id
    win = window("pharmacist")
    lots = _lots_dialog(qtbot, win, p.id)
    assert lots.destroy_.isEnabled() and lots.loss.isEnabled()
    _shot(lots, "lots")
    qtbot.keyClick(lots, Qt.Key.Key_D, Qt.KeyboardModifier.ControlModifier
                   | Qt.KeyboardModifier.ShiftModifier)
    dlg = opened(qtbot, lots, DestructionDialog)
    assert dlg.quantity.value() == 40  # the selected lot's whole quantity
    dlg.quantity.setValue(15)
    # the same person twice: refused next to the field, nothing written
    dlg.witness2.setCurrentIndex(index_of(dlg.witness2, world.pharmacist.staff_id))
    qtbot.keyClicks(dlg.method, "Chemical digestion (denaturing kit)")
    qtbot.keyClicks(dlg.place, "Back room")
    dlg.submit()
    qtbot.waitUntil(lambda: "two different" in dlg.message.text(), timeout=5000)
    assert inventory.get_lot(world.sf, lot).on_hand == 40
    dlg.witness2.setCurrentIndex(index_of(dlg.witness2, world.technician.staff_id))
    dlg.resize(1280, 800)
    _shot(dlg, "form41")
    dlg.resize(dlg.sizeHint())
    qtbot.keyClick(dlg.place, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: not dlg.isVisible(), timeout=15000)
    assert inventory.get_lot(world.sf, lot).on_hand == 25
    (f,) = deaforms.forms_of_lot(world.sf, world.pharmacist, lot)
    assert (f.witness1, f.witness2, f.method, [i.quantity for i in f.items]) == (
        "Test Pharmacist", "Test Technician", "Chemical digestion (denaturing kit)", [15])
    qtbot.waitUntil(lambda: any(m.kind is MovementKind.WRITE_OFF
                                for m in lots.moves_model.rows()), timeout=15000)


def test_a_theft_or_loss_is_reported_with_its_police_department(qtbot, window):
    world = window.world
    p = world.product("Hydrocodone", schedule=Schedule.II, strength="5 mg/325 mg")
    lot = world.receive(p.id, 100, lot="HC-1").lot_id
    win = window("pharmacist")
    lots = _lots_dialog(qtbot, win, p.id)
    qtbot.keyClick(lots, Qt.Key.Key_L, Qt.KeyboardModifier.ControlModifier
                   | Qt.KeyboardModifier.ShiftModifier)
    dlg = opened(qtbot, lots, TheftLossDialog)
    dlg.quantity.setValue(12)
    dlg.kind.setCurrentIndex(index_of(dlg.kind, LossType.NIGHT_BREAK_IN))
    dlg.police.setChecked(True)
    dlg.submit()  # the police were told, but which department?
    qtbot.waitUntil(lambda: "police department" in dlg.message.text().lower(), timeout=5000)
    assert inventory.get_lot(world.sf, lot).on_hand == 100
    qtbot.keyClicks(dlg.department, "Springfield PD, (555) 010-2000")
    dlg.resize(1280, 800)
    _shot(dlg, "form106")
    dlg.submit()
    qtbot.waitUntil(lambda: not dlg.isVisible(), timeout=15000)
    assert inventory.get_lot(world.sf, lot).on_hand == 88


@pytest.mark.parametrize("role", ["technician", "clerk", "admin"])
def test_other_roles_are_told_who_files_them(qtbot, window, role):
    world = window.world
    p = world.product("Oxycodone", schedule=Schedule.II)
    world.receive(p.id, 10, lot="OX-1")
    win = window(role)
    lots = _lots_dialog(qtbot, win, p.id)
    for button in (lots.destroy_, lots.loss):
        assert not button.isEnabled()
        assert "a pharmacist does" in button.toolTip()


def test_ordinary_products_have_no_dea_form_and_controlled_have_no_plain_write_off(
        qtbot, window, monkeypatch):
    world = window.world
    plain = world.product("Cetirizine")
    world.receive(plain.id, 10, lot="CT-1")
    win = window("pharmacist")
    lots = _lots_dialog(qtbot, win, plain.id)
    assert not lots.destroy_.isEnabled()
    assert "controlled substances only" in lots.destroy_.toolTip()
    told = []
    monkeypatch.setattr(QMessageBox, "information", lambda *a, **k: told.append(a[2]))
    oxy = world.product("Oxycontrol", schedule=Schedule.II)
    world.receive(oxy.id, 10, lot="OC-1")
    controlled = _lots_dialog(qtbot, win, oxy.id)
    controlled._write_off()
    assert told and "DEA Form 41" in told[0]


def test_the_receive_form_asks_for_the_order_form_and_shows_the_supplier_dea(qtbot, window):
    world = window.world
    p = world.product("Fentanyl patch", schedule=Schedule.II, strength="25 mcg/h")
    win = window("pharmacist")
    ws = win.workspace
    dlg = ReceiveDialog(ws, catalog.list_suppliers(ws.sf), listing.Choice(p.id, p.name), win)
    qtbot.addWidget(dlg)
    dlg.show()
    dlg.supplier.setCurrentIndex(index_of(dlg.supplier, world.supplier_id))
    assert "DEA number" in dlg.dea_note.text() and "<b>A" in dlg.dea_note.text()
    qtbot.keyClicks(dlg.lot, "FP-1")
    dlg.expiry.set_date(dt.date(2030, 1, 31))
    dlg.quantity.setValue(5)
    dlg.submit()
    qtbot.waitUntil(lambda: "CSOS" in dlg.message.text(), timeout=5000)
    assert inventory.on_hand(world.sf, p.id) == 0
    qtbot.keyClicks(dlg.order_form, "CSOS-55120")
    dlg.resize(1280, 800)
    _shot(dlg, "receive")
    dlg.submit()
    qtbot.waitUntil(lambda: not dlg.isVisible(), timeout=15000)
    assert inventory.on_hand(world.sf, p.id) == 5


def test_a_records_worksheet_is_made_again_from_the_lot(qtbot, window, monkeypatch, tmp_path):
    from PySide6.QtWidgets import QInputDialog

    from getmeds_desktop.ui import printing
    from getmeds_desktop.ui.views import reports as reports_view

    world = window.world
    p = world.product("Methadone", schedule=Schedule.II, strength="10 mg")
    lot = world.receive(p.id, 50, lot="MT-1").lot_id
    deaforms.report_theft_or_loss(world.sf, world.pharmacist, deaforms.TheftLossRequest(
        lines=[deaforms.FormLine(lot, 4)], discovered_on=clock.today(),
        loss_type=LossType.CUSTOMER_THEFT, police_notified=False))
    asked = []
    monkeypatch.setattr(QInputDialog, "getItem",
                        lambda _p, _t, _l, items, *a: (asked.append(items) or items[0], True))
    opened_pdfs = []
    monkeypatch.setattr(printing, "open_pdf", lambda path: opened_pdfs.append(path) or True)
    monkeypatch.setattr(reports_view, "reports_folder", lambda: tmp_path)
    win = window("pharmacist")
    lots = _lots_dialog(qtbot, win, p.id)
    qtbot.keyClick(lots, Qt.Key.Key_W, Qt.KeyboardModifier.ControlModifier
                   | Qt.KeyboardModifier.ShiftModifier)
    qtbot.waitUntil(lambda: bool(opened_pdfs), timeout=20000)
    assert "DEA Form 106" in asked[0][0]
    assert opened_pdfs[0].name.startswith("dea-106-") and opened_pdfs[0].exists()
