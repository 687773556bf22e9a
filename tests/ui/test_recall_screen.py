"""A recalled lot's patients, from Inventory > Lots: the list, a notice recorded
from the keyboard, and what is still to do (issue: recalls traced to patients)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from PySide6.QtCore import Qt

from getmeds_desktop.enums import LotStatus
from getmeds_desktop.services import dispensing, fills, inventory, recalls
from getmeds_desktop.ui.dialogs.recalls import RecallDialog
from tests.fixtures.data import NO_SCAN
from tests.ui.helpers import window_maker

pytestmark = pytest.mark.parametrize("backend_name", ["sqlite"], indirect=True)


@pytest.fixture
def window(qtbot, gui_world, connector, empty_config) -> Iterator:
    yield from window_maker(qtbot, gui_world, connector, empty_config)


def test_the_patients_of_a_recalled_lot_and_a_notice(qtbot, window):
    world = window.world
    p = world.product("Recallscreen")
    lot = world.receive(p.id, 30, lot="RS-1").lot_id
    pat = world.patient("Rae", "Recall", phone="518-555-0142")
    d = dispensing.dispense(world.sf, world.technician, dispensing.DispenseRequest(
        world.rx(pat.id, p.id, quantity=6).id, uuid.uuid4(), no_scan_reason=NO_SCAN))
    fills.verify(world.sf, world.pharmacist, d.dispense_id)
    fills.release(world.sf, world.clerk, d.dispense_id, counseling="declined")
    win = window("pharmacist")
    dlg = RecallDialog(win.workspace, lot, win)
    qtbot.addWidget(dlg)
    dlg.show()
    qtbot.waitUntil(lambda: dlg.model.rowCount() == 1, timeout=15000)
    assert "Recall, Rae" in dlg.model.row_at(0).patient
    # not recalled yet: nothing to record
    dlg.table.selectRow(0)
    qtbot.keyClicks(dlg.outcome, "Told to stop taking it")
    assert not dlg.record.isEnabled()
    inventory.set_lot_status(world.sf, world.pharmacist, lot, LotStatus.RECALLED, "Class II")
    dlg.reload()
    qtbot.waitUntil(lambda: dlg.data is not None and dlg.data.status is LotStatus.RECALLED,
                    timeout=15000)
    assert "1 not yet told" in dlg.header.text()
    assert dlg.record.isEnabled()
    qtbot.keyClick(dlg.record, Qt.Key.Key_Space)
    qtbot.waitUntil(lambda: dlg.data is not None and dlg.data.outstanding == 0, timeout=15000)
    assert "0 not yet told" in dlg.header.text()
    got = recalls.recipients(world.sf, world.pharmacist, lot).rows[0].notices
    assert [(n.method, n.outcome, n.by) for n in got] == [
        ("phone", "Told to stop taking it", "Test Pharmacist")]
