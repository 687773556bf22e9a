"""The screens as they are seen: the dispensing queue fits a 1280x800 window
without a horizontal scrollbar, no header is cut, the product column takes the
spare room, and the queue is oldest first by date written with the sort shown.

Set GETMEDS_TEST_SCREENSHOTS to a folder to keep the pictures at 1280x800 and
1920x1080."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHeaderView

from getmeds_desktop.services import clock
from getmeds_desktop.ui.views.base import title_widths
from tests.ui.helpers import opened, window_maker

pytestmark = pytest.mark.parametrize("backend_name", ["sqlite"], indirect=True)
SIZES = ((1280, 800), (1920, 1080))


@pytest.fixture
def window(qtbot, gui_world, connector, empty_config) -> Iterator:
    yield from window_maker(qtbot, gui_world, connector, empty_config)


def shots_folder(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("GETMEDS_TEST_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def resize(qtbot, win, w: int, h: int) -> None:
    win.resize(w, h)
    qtbot.waitUntil(lambda: (win.width(), win.height()) == (w, h), timeout=5000)
    win.layout().activate()


def loaded(qtbot, view) -> None:
    qtbot.waitUntil(lambda: view.model.rowCount() > 0 and not view.model.loading,
                    timeout=15000)


def test_the_queue_fits_and_is_oldest_written_first(qtbot, window, tmp_path):
    win = window("pharmacist")
    world = window.world
    long_product = world.product("Amoxicillin and clavulanate potassium",
                                 strength="875 mg / 125 mg", dosage_form="tablet")
    short = world.product("Ibuprofen", strength="400 mg")
    today = clock.today()
    made = []
    for days, product, last in ((2, short, "Newer"), (9, long_product,
                                                       "Konstantinopoulou-Papadimitriou"),
                                (5, short, "Middle"), (9, short, "Oldest-second")):
        pat = world.patient("Alexandra", last, date_of_birth=dt.date(1950, 1, 2))
        made.append(world.rx(pat.id, product.id, written=today - dt.timedelta(days=days)))
    queue = win.show_area("dispensing")
    loaded(qtbot, queue)
    rows = [queue.model.row_at(i) for i in range(queue.model.rowCount())]
    assert [r.date_written for r in rows] == sorted(r.date_written for r in rows)
    nine = [r.rx_number for r in rows if r.date_written == today - dt.timedelta(days=9)]
    assert nine == [made[1].rx_number, made[3].rx_number]  # the same day: first received
    header = queue.table.horizontalHeader()
    columns = queue.model.columns
    written = next(i for i, c in enumerate(columns) if c.key == "written")
    assert header.isSortIndicatorShown() and header.sortIndicatorSection() == written
    assert header.sortIndicatorOrder() == Qt.SortOrder.AscendingOrder
    product = next(i for i, c in enumerate(columns) if c.key == "product")
    assert header.sectionResizeMode(product) == QHeaderView.ResizeMode.Stretch

    folder = shots_folder(tmp_path)
    for w, h in SIZES:
        resize(qtbot, win, w, h)
        need = title_widths(header, columns)
        for i in range(len(columns)):
            assert header.sectionSize(i) >= need[i], columns[i].title  # no title is cut
        assert header.length() <= queue.table.viewport().width()
        assert not queue.table.horizontalScrollBar().isVisible()
        spare = queue.table.viewport().width() - sum(
            header.sectionSize(i) for i in range(len(columns)) if i != product)
        assert header.sectionSize(product) == spare  # all the room the others leave
        assert win.grab().save(str(folder / f"queue-{w}x{h}.png"))
def test_the_forms_as_seen(qtbot, window, tmp_path):
    """Pictures of the new patient and receive forms with a refusal shown."""
    from getmeds_desktop.ui.dialogs.inventory import ReceiveDialog
    from getmeds_desktop.ui.dialogs.patients import PatientEditor

    win = window("pharmacist")
    folder = shots_folder(tmp_path)
    view = win.show_area("patients")
    view.act_new.trigger()
    dlg = opened(qtbot, view, PatientEditor)
    qtbot.keyClicks(dlg.first, "Jane")
    qtbot.keyClicks(dlg.last, "Doe")
    qtbot.mouseClick(dlg.ok_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "Date of birth is required" in dlg.message.text(), timeout=15000)
    dlg.layout().activate()
    assert dlg.grab().save(str(folder / "patient-editor.png"))
    dlg.done(0)
    from getmeds_desktop.ui.dialogs.prescriptions import PrescriptionEditor

    rxs = win.show_area("prescriptions")
    rxs.act_new.trigger()
    rx = opened(qtbot, rxs, PrescriptionEditor)
    rx.layout().activate()
    assert rx.grab().save(str(folder / "prescription-editor.png"))
    rx.done(0)
    inv = win.show_area("inventory")
    inv.act_receive.trigger()
    rec = opened(qtbot, inv, ReceiveDialog)
    rec.layout().activate()
    assert rec.grab().save(str(folder / "receive.png"))
    rec.done(0)
    for w, h in SIZES:
        resize(qtbot, win, w, h)
        win.show_area("inventory")
        assert win.grab().save(str(folder / f"inventory-{w}x{h}.png"))


def test_every_screen_fits_the_default_window(qtbot, window, tmp_path):
    """No screen makes the 1280x800 window wider: actions that do not fit go
    behind the tool bar's extension button (the inventory's ten used to make the
    window 1474 pixels wide)."""
    win = window("admin")
    folder = shots_folder(tmp_path)
    for key in win.area_keys():
        view = win.show_area(key)
        win.layout().activate()
        assert win.minimumSizeHint().width() <= 1280, key
        assert win.width() == 1280, key
        assert win.grab().save(str(folder / f"{key}-1280x800.png"))
        assert view.isVisible()


@pytest.mark.parametrize(("role", "charts"), [
    ("clerk", False), ("doctor", False), ("pharmacist", True), ("admin", True)])
def test_the_dashboard_shows_only_charts_with_data(qtbot, window, tmp_path, role, charts):
    """A clerk's or a doctor's dashboard has no empty charts ("Jan 1, Jan 1")."""
    world = window.world
    world.receive(world.product("Chartdrug").id, 10, cost="12.50")
    win = window(role)
    dash = win.show_area("dashboard")
    qtbot.waitUntil(lambda: dash.data is not None, timeout=15000)
    assert dash.dispense_chart.isVisible() is charts
    assert dash.value_chart.isVisible() is bool(dash.data.value_by_category)
    if not charts:
        assert not dash.value_chart.isVisible()
    assert win.grab().save(str(shots_folder(tmp_path) / f"dashboard-{role}-1280x800.png"))


def test_settings_saved_before_do_not_turn_the_queue_around(qtbot, window):
    """Before, the queue was restored with the prescriptions list's sort (newest
    first), and that was saved as the queue's own; old column states brought the
    cut titles back."""
    from PySide6.QtCore import QSettings

    s = QSettings()
    for key in ("queue", "prescriptions"):
        s.setValue(f"{key}/sort", "created_at")
        s.setValue(f"{key}/descending", "true")
    win = window("pharmacist")
    world = window.world
    product = world.product("Oldsettings")
    pat = world.patient()
    for days in (1, 7, 3):
        world.rx(pat.id, product.id, written=clock.today() - dt.timedelta(days=days))
    queue = win.show_area("dispensing")
    loaded(qtbot, queue)
    assert queue.model.sort_key == ("date_written", False)
    rows = [queue.model.row_at(i) for i in range(queue.model.rowCount())]
    assert [r.date_written for r in rows] == sorted(r.date_written for r in rows)
