"""The DEA inventory at the counter (21 CFR 1304.11): Inventory > DEA inventory…
(Ctrl+Shift+I) for a pharmacist, refused for the others; the count sheet
prefilled with the register, exact or estimate per lot; the product editor's
Change schedule with its newly-controlled inventory."""

from __future__ import annotations

import os

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox, QLabel, QMessageBox, QPushButton, QSpinBox

from getmeds_desktop.enums import Role
from getmeds_desktop.models import Schedule
from getmeds_desktop.services import catalog, dea_inventory, staff
from getmeds_desktop.services.context import SYSTEM, Perm
from getmeds_desktop.ui.dialogs.dea_inventory import DeaInventoryDialog, ScheduleChoiceDialog
from getmeds_desktop.ui.main_window import MainWindow
from getmeds_desktop.ui.workspace import Workspace
from tests.fixtures.data import PASSWORD

from .helpers import opened, press, window_maker

window = pytest.fixture(window_maker)

SHOTS = os.environ.get("GETMEDS_SHOTS")  # a folder: the dialogs are saved there to look at


def _shot(widget, name: str) -> None:
    if SHOTS:
        widget.grab().save(os.path.join(SHOTS, f"inventory1304-{name}.png"))


def test_a_pharmacist_takes_the_dea_inventory_from_the_inventory_screen(qtbot, window):
    world = window.world
    c2 = world.product("Uioxy", strength="5 mg", schedule=Schedule.II)
    c4 = world.product("Uialpra", strength="0.5 mg", schedule=Schedule.IV)
    world.receive(c2.id, 100, lot="UO-1")
    world.receive(c4.id, 500, lot="UA-1")
    win = window("pharmacist")
    view = win.show_area("inventory")
    act = view.findChild(type(view.act_new), "actionDeaInventory")
    assert act.isEnabled() and act.shortcut().toString() == "Ctrl+Shift+I"
    press(qtbot, win, Qt.Key.Key_I, Qt.KeyboardModifier.ControlModifier
          | Qt.KeyboardModifier.ShiftModifier)
    dlg = opened(qtbot, win, DeaInventoryDialog)
    qtbot.waitUntil(lambda: dlg.table.rowCount() == 2 and dlg.ok_button.isEnabled(),
                    timeout=15000)
    rows = {dlg.table.item(r, 2).text(): r for r in range(2)}
    assert dlg.table.item(rows["UO-1"], 4).text() == "100"  # the register, prefilled
    exact_ii = dlg.table.cellWidget(rows["UO-1"], 6)
    assert isinstance(exact_ii, QComboBox) and not exact_ii.isEnabled()  # II: exact only
    r = rows["UA-1"]
    dlg.table.cellWidget(r, 5).setValue(480)
    dlg.table.cellWidget(r, 6).setCurrentIndex(1)  # an estimate of the opened bottle
    container = dlg.table.cellWidget(r, 7)
    assert isinstance(container, QSpinBox) and container.isEnabled()
    container.setValue(5000)
    dlg.business.setCurrentIndex(dlg.business.findData(dea_inventory.Business.CLOSE))
    _shot(dlg, "dea-inventory")
    qtbot.mouseClick(dlg.ok_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "more than 1,000" in dlg.message.text(), timeout=15000)
    assert dlg.isVisible()  # nothing lost: fix it and record again
    container.setValue(500)
    qtbot.mouseClick(dlg.ok_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "difference" in dlg.message.text(), timeout=15000)
    dlg.table.cellWidget(r, 8).setText("Opened bottle, estimated")
    qtbot.mouseClick(dlg.ok_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not dlg.isVisible(), timeout=15000)
    done = dea_inventory.list_inventories(world.sf, world.pharmacist)
    assert len(done) == 1 and done[0].business is dea_inventory.Business.CLOSE
    inv = dea_inventory.get_inventory(world.sf, world.pharmacist, done[0].id)
    assert [(ln.lot_number, ln.quantity, ln.exact) for ln in inv.lines] == [
        ("UO-1", 100, True), ("UA-1", 480, False)]


@pytest.mark.parametrize("role", ["technician", "clerk", "admin"])
def test_the_others_cannot_take_a_dea_inventory(qtbot, window, role):
    win = window(role)
    view = win.show_area("inventory")
    act = view.findChild(type(view.act_new), "actionDeaInventory")
    assert not act.isEnabled()
    assert Perm.DEA_INVENTORY.value in act.toolTip()


def test_escape_with_counts_typed_asks_before_discarding(qtbot, window, monkeypatch):
    world = window.world
    p = world.product("Uimeth", schedule=Schedule.II)
    world.receive(p.id, 10, lot="UM-1")
    win = window("pharmacist")
    dlg = DeaInventoryDialog(win.workspace, win)
    qtbot.addWidget(dlg)
    dlg.show()
    qtbot.waitUntil(lambda: dlg.table.rowCount() == 1, timeout=15000)
    dlg.table.cellWidget(0, 5).setValue(9)
    asked = []
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: asked.append(a) or
                        QMessageBox.StandardButton.No)
    qtbot.keyClick(dlg, Qt.Key.Key_Escape)
    assert asked and dlg.isVisible()


def test_the_product_editor_moves_a_product_into_a_schedule_with_its_count(
        qtbot, window, monkeypatch):
    from getmeds_desktop.ui.dialogs.inventory import ProductEditor

    world = window.world
    p = world.product("Uigaba", strength="300 mg")
    world.receive(p.id, 300, lot="UG-1")
    info = staff.create_staff(world.sf, SYSTEM, username="uiowner1304", full_name="Olive Owner",
                              role=Role.ADMIN, password=PASSWORD, practice_role=Role.PHARMACIST)
    owner = staff.actor_for_username(world.sf, info.username)
    win = window("admin")
    # the owner (an administrator who is also a pharmacist) edits the product
    own_ws = Workspace(win.workspace.database, owner, win.workspace.config)
    own_win = MainWindow(own_ws)
    qtbot.addWidget(own_win)
    own_win.resize(1280, 800)
    own_win.show()
    try:
        product = catalog.get_product(world.sf, p.id)
        editor = ProductEditor(own_ws, [], product, own_win)
        qtbot.addWidget(editor)
        editor.show()
        assert not editor.schedule.isEnabled()
        button = editor.findChild(QPushButton, "changeSchedule")
        monkeypatch.setattr(ScheduleChoiceDialog, "exec", lambda self: (
            self.choice.setCurrentIndex(self.choice.findData(Schedule.V)), 1)[1])
        qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
        dlg = opened(qtbot, editor, DeaInventoryDialog)
        qtbot.waitUntil(lambda: dlg.table.rowCount() == 1 and dlg.ok_button.isEnabled(),
                        timeout=15000)
        move = dlg.findChild(QLabel, "scheduleChange")
        assert "newly-controlled inventory" in move.text() and "Schedule V" in move.text()
        assert dlg.table.item(0, 4).text() == "—"  # no register yet
        _shot(dlg, "newly-controlled")
        qtbot.mouseClick(dlg.ok_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: not dlg.isVisible(), timeout=15000)
        qtbot.waitUntil(lambda: editor.schedule.currentData() == Schedule.V, timeout=15000)
        assert catalog.get_product(world.sf, p.id).schedule is Schedule.V
        assert editor.product.schedule is Schedule.V
        _shot(editor, "product-editor")
        # saving the editor afterwards keeps the new schedule (its version is the new one)
        editor.reorder_level.setValue(7)
        qtbot.mouseClick(editor.ok_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: catalog.get_product(world.sf, p.id).reorder_level == 7,
                        timeout=15000)
        assert catalog.get_product(world.sf, p.id).schedule is Schedule.V
    finally:
        own_ws.tasks.shutdown()


def test_an_administrator_who_is_no_pharmacist_is_told_why(qtbot, window, monkeypatch):
    from getmeds_desktop.ui.dialogs.inventory import ProductEditor

    world = window.world
    p = world.product("Uipregab")
    world.receive(p.id, 20, lot="UP-1")
    win = window("admin")
    editor = ProductEditor(win.workspace, [], catalog.get_product(world.sf, p.id), win)
    qtbot.addWidget(editor)
    editor.show()
    monkeypatch.setattr(ScheduleChoiceDialog, "exec", lambda self: (
        self.choice.setCurrentIndex(self.choice.findData(Schedule.V)), 1)[1])
    qtbot.mouseClick(editor.findChild(QPushButton, "changeSchedule"), Qt.MouseButton.LeftButton)
    dlg = opened(qtbot, editor, DeaInventoryDialog)
    qtbot.waitUntil(lambda: dlg.ok_button.isEnabled(), timeout=15000)
    qtbot.mouseClick(dlg.ok_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "only a pharmacist" in dlg.message.text(), timeout=15000)
    assert dlg.isVisible() and dlg.ok_button.isEnabled()  # nothing lost
    assert catalog.get_product(world.sf, p.id).schedule is Schedule.NONE
