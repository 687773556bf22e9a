"""The Reports screen and label printing."""

from __future__ import annotations

import re
import uuid

from pypdf import PdfReader
from PySide6.QtCore import Qt

from getmeds_desktop.services import dispensing
from getmeds_desktop.services.dispensing import DispenseRequest
from getmeds_desktop.ui.main_window import MainWindow
from getmeds_desktop.ui.workspace import Workspace
from tests.fixtures.data import NO_SCAN


def test_generate_a_report_from_the_screen(qtbot, gui_world, connector, empty_config, tmp_path,
                                           monkeypatch):
    target, world = gui_world
    from getmeds_desktop.ui.views import reports as reports_view

    monkeypatch.setattr(reports_view, "reports_folder", lambda: tmp_path)
    p = world.product("Screenreport")
    world.receive(p.id, 10, cost="3.00")
    ws = Workspace(connector.open(target), world.pharmacist, empty_config)
    win = MainWindow(ws)
    qtbot.addWidget(win)
    view = win.show_area("reports")
    names = [s.name for s in view.specs]
    assert "audit" not in names and "inventory" in names  # a pharmacist has no audit report
    view.choose("controlled-register")
    assert view.schedule.isVisibleTo(view) and view.start.isVisibleTo(view)
    assert not view.patient.isVisibleTo(view)
    view.choose("inventory")
    qtbot.mouseClick(view.generate_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: view.last is not None, timeout=20000)
    message = view.message.text()  # "1 page" or "3 pages", never "page(s)"
    assert re.match(r"[\d,]+ pages? written to", message) and view.print_button.isEnabled()
    text = PdfReader(str(view.last)).pages[0].extract_text()
    assert "Inventory valuation" in text and "Screenreport" in text
    # another report: the last one's result is gone, not offered for it
    view.choose("expiry")
    assert view.last is None and not view.open_button.isEnabled()
    assert not view.print_button.isEnabled() and view.message.text() == ""
    ws.tasks.shutdown()


def test_label_prints_on_a_label_page(qtbot, gui_world, tmp_path):
    from getmeds_desktop.reports import ReportParams, generate
    from getmeds_desktop.ui.printing import print_pdf

    target, world = gui_world
    p = world.product("Labelprint")
    world.receive(p.id, 50)
    rx = world.rx(world.patient().id, p.id)
    d = dispensing.dispense(world.sf, world.pharmacist, DispenseRequest(rx.id, uuid.uuid4(),
                                                                        no_scan_reason=NO_SCAN))
    label = tmp_path / "label.pdf"
    generate(world.sf, world.pharmacist, "label", ReportParams(dispense_id=d.dispense_id), label)
    printed = tmp_path / "printed.pdf"
    assert print_pdf(label, None, label_inches=(4.0, 2.5), ask=False, output=printed)
    page = PdfReader(str(printed)).pages
    assert len(page) == 1
    box = page[0].mediabox
    assert (round(float(box.width)), round(float(box.height))) == (288, 180)


def test_a_page_load_does_not_wait_for_a_report(qtbot, gui_world, connector, empty_config,
                                                 tmp_path, monkeypatch):
    """Reports render on the io lane: while one is being written, the screens'
    database work (here the Inventory list) goes on."""
    import threading

    from getmeds_desktop.ui.views import reports as reports_view

    target, world = gui_world
    world.product("Lanetest")
    monkeypatch.setattr(reports_view, "reports_folder", lambda: tmp_path)
    release = threading.Event()
    started = threading.Event()
    import getmeds_desktop.reports as reports_pkg

    real = reports_pkg.generate

    def slow_generate(*args, **kwargs):
        started.set()
        release.wait(20)
        return real(*args, **kwargs)

    monkeypatch.setattr(reports_pkg, "generate", slow_generate)
    ws = Workspace(connector.open(target), world.pharmacist, empty_config)
    win = MainWindow(ws)
    qtbot.addWidget(win)
    try:
        view = win.show_area("reports")
        view.choose("inventory")
        qtbot.mouseClick(view.generate_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(started.is_set, timeout=10000)
        inventory = win.show_area("inventory")
        inventory.search.setText("Lanetest")
        inventory.search.flush()
        qtbot.waitUntil(lambda: inventory.model.rowCount() == 1 and not inventory.model.loading,
                        timeout=10000)
        assert view.last is None  # the report is still being written
    finally:
        release.set()
    qtbot.waitUntil(lambda: view.last is not None, timeout=20000)
    ws.tasks.shutdown()
