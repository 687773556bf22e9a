"""After every scan the scan field selects its text: the next scan replaces it
(a wrong scan followed by the right one used to give "has 22 digits")."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from PySide6.QtCore import Qt

from tests.ui.helpers import opened, window_maker

pytestmark = pytest.mark.parametrize("backend_name", ["sqlite"], indirect=True)


@pytest.fixture
def window(qtbot, gui_world, connector, empty_config) -> Iterator:
    yield from window_maker(qtbot, gui_world, connector, empty_config)


def scan(qtbot, field, text: str) -> None:
    """What a keyboard-wedge scanner does: types the code, then Enter."""
    qtbot.keyClicks(field, text)
    qtbot.keyClick(field, Qt.Key.Key_Return)


def test_a_second_receive_scan_replaces_the_first(qtbot, window):
    from getmeds_desktop.ui.dialogs.inventory import ReceiveDialog

    win = window("pharmacist")
    product = window.world.product("Rescan", ndc="0093-4150-01")
    view = win.show_area("inventory")
    view.act_receive.trigger()
    dlg = opened(qtbot, view, ReceiveDialog)
    scan(qtbot, dlg.scan, "0781-1506-10")  # not a product of this pharmacy
    qtbot.waitUntil(lambda: "No product has NDC" in dlg.message.text(), timeout=15000)
    assert dlg.scan.selectedText() == "0781-1506-10"
    scan(qtbot, dlg.scan, "0093-4150-01")
    qtbot.waitUntil(lambda: dlg.product.choice is not None, timeout=15000)
    assert dlg.product.choice.id == product.id


def test_a_second_dispense_scan_replaces_the_first(qtbot, window):
    from getmeds_desktop.ui.dialogs.prescriptions import DispenseDialog

    win = window("pharmacist")
    world = window.world
    product = world.product("Rightdrug")
    other = world.product("Wrongdrug")
    world.receive(product.id, 30)
    rx = world.rx(world.patient().id, product.id, quantity=10)
    queue = win.show_area("dispensing")
    queue.search.setText(str(rx.rx_number))
    queue.search.flush()
    qtbot.waitUntil(lambda: not queue.model.loading and queue.model.rowCount() == 1,
                    timeout=15000)
    queue.table.selectRow(0)
    qtbot.waitUntil(queue.act_dispense.isEnabled, timeout=5000)
    queue.act_dispense.trigger()
    dlg = opened(qtbot, queue, DispenseDialog)
    qtbot.waitUntil(lambda: dlg.preview is not None, timeout=15000)
    scan(qtbot, dlg.scan, other.ndc_display)
    qtbot.waitUntil(lambda: "Wrong product" in dlg.scan_result.text(), timeout=15000)
    assert dlg.scan.selectedText() == other.ndc_display
    scan(qtbot, dlg.scan, product.ndc_display)
    assert dlg.scan.text() == product.ndc_display
    qtbot.waitUntil(lambda: "is the prescribed product" in dlg.scan_result.text(),
                    timeout=15000)


def test_the_scan_field_selects_its_text_when_it_takes_the_focus(qtbot, window):
    from getmeds_desktop.ui.dialogs.inventory import ReceiveDialog

    win = window("pharmacist")
    view = win.show_area("inventory")
    view.act_receive.trigger()
    dlg = opened(qtbot, view, ReceiveDialog)
    qtbot.keyClicks(dlg.scan, "12345")
    dlg.lot.setFocus()
    qtbot.waitUntil(dlg.lot.hasFocus, timeout=5000)
    qtbot.mouseClick(dlg.scan, Qt.MouseButton.LeftButton)  # back to scan again
    qtbot.waitUntil(lambda: dlg.scan.hasFocus() and dlg.scan.selectedText() == "12345",
                    timeout=5000)
