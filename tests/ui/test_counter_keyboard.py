"""The counter from the keyboard: every screen's shortcuts work wherever the focus
is in the main window (right after sign-in, after Ctrl+1..7), and the Actions
menu lists the shown screen's actions with their shortcuts."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QApplication, QMenu
from shiboken6 import isValid

from getmeds_desktop.ui.controller import AppController
from tests.fixtures.data import PASSWORD
from tests.ui.helpers import close, opened, press, visible_dialog, window_maker

pytestmark = pytest.mark.parametrize("backend_name", ["sqlite"], indirect=True)


@pytest.fixture
def signed_in(qtbot, gui_world, empty_config, tmp_path) -> Iterator[tuple]:
    """Sign in through the sign-in dialog, as at the counter."""
    target, world = gui_world
    ctrl = AppController(QApplication.instance(), empty_config, [target], tmp_path / "log.txt")
    try:
        login = ctrl.show_login(world.pharmacist.username)
        qtbot.addWidget(login)
        login.password.setText(PASSWORD)
        with qtbot.waitSignal(login.signed_in, timeout=20000):
            qtbot.mouseClick(login.sign_in_button, Qt.MouseButton.LeftButton)
        win = ctrl.window
        qtbot.waitUntil(lambda: ctrl.idle is not None and not ctrl.workspace.tasks.busy,
                        timeout=15000)
        ctrl.idle.set_timeout_ms(600_000)
        yield ctrl, win, world
    finally:
        ctrl.shutdown()
        if ctrl.window is not None and isValid(ctrl.window):
            ctrl.window.close()
            ctrl.window.deleteLater()


@pytest.fixture
def window(qtbot, gui_world, connector, empty_config) -> Iterator:
    yield from window_maker(qtbot, gui_world, connector, empty_config)


def test_screen_shortcuts_work_right_after_sign_in(qtbot, signed_in):
    from getmeds_desktop.ui.dialogs.patients import PatientEditor
    from getmeds_desktop.ui.dialogs.prescriptions import DispenseDialog, PrescriptionEditor

    ctrl, win, world = signed_in
    product = world.product("Keydrug")
    world.receive(product.id, 40)
    rx = world.rx(world.patient("Kay", "Keyboard").id, product.id, quantity=10)
    # nobody clicked anything: the window has the keyboard, no screen has the focus
    qtbot.waitUntil(win.isActiveWindow, timeout=5000)
    views = win.views

    press(qtbot, win, Qt.Key.Key_3)
    patients = views["patients"]
    assert win.stack.currentWidget() is patients
    assert not patients.isAncestorOf(QApplication.focusWidget())
    press(qtbot, win, Qt.Key.Key_F)
    qtbot.waitUntil(patients.search.hasFocus, timeout=5000)
    win.nav.setFocus()  # back out of the screen
    press(qtbot, win, Qt.Key.Key_N)
    close(qtbot, win, opened(qtbot, patients, PatientEditor))  # nothing typed: no question

    press(qtbot, win, Qt.Key.Key_4)
    rxs = views["prescriptions"]
    assert win.stack.currentWidget() is rxs
    press(qtbot, win, Qt.Key.Key_F)
    qtbot.waitUntil(rxs.search.hasFocus, timeout=5000)
    win.nav.setFocus()
    press(qtbot, win, Qt.Key.Key_N)
    close(qtbot, win, opened(qtbot, rxs, PrescriptionEditor))

    press(qtbot, win, Qt.Key.Key_5)
    queue = views["dispensing"]
    assert win.stack.currentWidget() is queue
    press(qtbot, win, Qt.Key.Key_F)
    qtbot.waitUntil(queue.search.hasFocus, timeout=5000)
    qtbot.keyClicks(queue.search, str(rx.rx_number))
    queue.search.flush()
    qtbot.waitUntil(lambda: not queue.model.loading and queue.model.rowCount() == 1,
                    timeout=15000)
    queue.table.selectRow(0)
    qtbot.waitUntil(queue.act_dispense.isEnabled, timeout=5000)
    win.nav.setFocus()
    press(qtbot, win, Qt.Key.Key_D)
    dispense = opened(qtbot, queue, DispenseDialog)
    qtbot.waitUntil(lambda: dispense.preview is not None, timeout=15000)
    close(qtbot, win, dispense)


def _menu_entries(menu: QMenu) -> dict[str, str]:
    """Text -> shortcut of what the menu lists (submenus by their title)."""
    return {a.text(): a.shortcut().toString(QKeySequence.SequenceFormat.PortableText)
            for a in menu.actions() if not a.isSeparator()}


def test_actions_menu_lists_the_shown_screen(qtbot, window):
    win = window("pharmacist")
    assert [m.title() for m in win.menuBar().findChildren(QMenu)
            if m.parent() is win.menuBar()][:3] == ["&File", "&Go", "&Actions"]
    press(qtbot, win, Qt.Key.Key_2)
    entries = _menu_entries(win.actions_menu)
    assert entries["New product"] == "Ctrl+N"
    assert entries["Receive"] == "Ctrl+R"
    assert entries["Find"] == "Ctrl+F"
    assert entries["Refresh"] == "F5"
    assert "Import" in entries  # the import choices, as a submenu
    press(qtbot, win, Qt.Key.Key_3)
    entries = _menu_entries(win.actions_menu)
    assert entries["New patient"] == "Ctrl+N" and entries["Profile"] == "Ctrl+O"
    assert "New product" not in entries
    press(qtbot, win, Qt.Key.Key_5)
    entries = _menu_entries(win.actions_menu)
    assert entries["Dispense"] == "Ctrl+D" and "New prescription" not in entries
    # a menu entry is the screen's own action: disabled until a row is selected
    dispense = next(a for a in win.actions_menu.actions() if a.text() == "Dispense")
    assert dispense is win.views["dispensing"].act_dispense and not dispense.isEnabled()
    press(qtbot, win, Qt.Key.Key_6)
    assert _menu_entries(win.actions_menu)["Generate PDF"] == "Ctrl+G"


def test_only_the_shown_screens_shortcuts_are_live(qtbot, window):
    """Ctrl+N on Patients opens New patient, not the Inventory's New product
    (both screens exist, one is hidden)."""
    from getmeds_desktop.ui.dialogs.inventory import ProductEditor
    from getmeds_desktop.ui.dialogs.patients import PatientEditor

    win = window("admin")
    press(qtbot, win, Qt.Key.Key_2)
    press(qtbot, win, Qt.Key.Key_3)
    press(qtbot, win, Qt.Key.Key_N)
    opened(qtbot, win.views["patients"], PatientEditor)
    assert visible_dialog(win.views["inventory"], ProductEditor) is None


def test_from_the_search_down_into_the_results_and_enter_opens_the_row(qtbot, window):
    from PySide6.QtWidgets import QApplication

    from getmeds_desktop.ui.dialogs.patients import PatientProfile

    win = window("pharmacist")
    window.world.patient("Dora", "Downarrow")
    press(qtbot, win, Qt.Key.Key_3)
    patients = win.views["patients"]
    press(qtbot, win, Qt.Key.Key_F)
    qtbot.waitUntil(patients.search.hasFocus, timeout=5000)
    qtbot.keyClicks(patients.search, "Downarrow")
    qtbot.keyClick(patients.search, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: not patients.model.loading and patients.model.rowCount() == 1,
                    timeout=15000)
    qtbot.keyClick(patients.search, Qt.Key.Key_Down)
    assert QApplication.focusWidget() is patients.table
    assert patients.selected_row().last_name == "Downarrow"
    qtbot.keyClick(patients.table, Qt.Key.Key_Return)  # the row's main action: Profile
    qtbot.waitUntil(lambda: visible_dialog(patients, PatientProfile) is not None,
                    timeout=15000)


def test_a_disabled_action_says_why(qtbot, window):
    clerk = window("clerk")
    rxs = clerk.show_area("prescriptions")
    assert not rxs.act_dispense.isEnabled()
    assert rxs.act_dispense.toolTip() == "Clerks cannot dispense."
    assert clerk.show_area("inventory").act_adjust.toolTip() == "Clerks cannot adjust stock."

    win = window("pharmacist")
    world = window.world
    product = world.product("Tipdrug")
    rx = world.rx(world.patient().id, product.id)
    rxs = win.show_area("prescriptions")
    assert rxs.act_dispense.toolTip() == "Dispense: select a prescription ready to fill."
    assert rxs.act_new.toolTip() == "New prescription (Ctrl+N)"
    rxs.search.setText(str(rx.rx_number))
    rxs.search.flush()
    qtbot.waitUntil(lambda: not rxs.model.loading and rxs.model.rowCount() == 1,
                    timeout=15000)
    rxs.table.selectRow(0)
    qtbot.waitUntil(rxs.act_dispense.isEnabled, timeout=5000)
    assert rxs.act_dispense.toolTip() == "Dispense (Ctrl+D)"


def test_a_table_with_the_focus_shows_it(qtbot, window):
    from PySide6.QtGui import QColor

    from getmeds_desktop.ui.style import ACCENT

    win = window("pharmacist")
    press(qtbot, win, Qt.Key.Key_3)
    table = win.views["patients"].table
    win.nav.setFocus()
    qtbot.waitUntil(lambda: not table.hasFocus(), timeout=5000)
    without = table.grab().toImage().pixelColor(0, table.height() // 2)
    table.setFocus()
    qtbot.waitUntil(table.hasFocus, timeout=5000)
    with_focus = table.grab().toImage().pixelColor(0, table.height() // 2)
    assert with_focus == QColor(ACCENT) and without != with_focus
