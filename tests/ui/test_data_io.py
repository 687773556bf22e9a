"""Data in and out from the screens: NDC Directory import, CSV import with its
column mapping and dry run, and CSV export of a filtered list."""

from __future__ import annotations

import csv

from PySide6.QtCore import Qt

from getmeds_desktop.services import catalog, listing
from getmeds_desktop.ui.dialogs.data_io import CsvImportDialog, NdcImportDialog
from tests.ui.test_workflows import app_for, idle  # noqa: F401 - the fixture
from tests.unit.test_ndc_import import write as write_ndc


def test_ndc_directory_import_from_inventory(qtbot, app_for, tmp_path):
    win, ws = app_for("admin")
    view = win.show_area("inventory")
    prod, pack = write_ndc(tmp_path)
    win.findChild(type(view.act_new), "actionImportNdc").trigger()
    dlg = win.findChild(NdcImportDialog)
    assert dlg is not None and dlg.isVisible()
    dlg.product_txt.setText(str(prod))
    assert dlg.package_txt.text() == str(pack)  # found next to product.txt
    dlg.dry_run.setChecked(True)
    qtbot.mouseClick(dlg.import_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dlg.result is not None, timeout=20000)
    assert dlg.result.dry_run and "would be imported" in dlg.message.text()
    assert catalog.find_product_by_ndc(ws.sf, "12345-678-90") is None
    dlg.dry_run.setChecked(False)
    with qtbot.waitSignal(dlg.imported, timeout=30000):
        qtbot.mouseClick(dlg.import_button, Qt.MouseButton.LeftButton)
    assert "were imported" in dlg.message.text() and "4 rows were skipped" in dlg.message.text()
    assert "package.txt, line 9" in dlg.problems.toPlainText()
    assert catalog.find_product_by_ndc(ws.sf, "12345-678-90").name == "Percoxy"


def test_clerk_cannot_import_products(qtbot, app_for):
    win, _ = app_for("clerk")
    view = win.show_area("inventory")
    assert not view.import_button.isEnabled()


def test_csv_import_of_patients_with_mapping_and_dry_run(qtbot, app_for, tmp_path):
    win, ws = app_for("clerk")
    view = win.show_area("patients")
    path = tmp_path / "patients.csv"
    path.write_text("Given,Family,Born,Phone\nZelda,Csvimport,1955-03-04,555-201-9988\n"
                    "Bad,Csvimport,not a date,\n", encoding="utf-8")
    view.act_import.trigger()
    dlg = win.findChild(CsvImportDialog)
    dlg.file.setText(str(path))
    dlg.load()
    qtbot.waitUntil(lambda: dlg.data is not None, timeout=15000)
    assert dlg.preview.columnCount() == 4 and dlg.preview.rowCount() == 2
    # "Given" and "Family" are not names the mapping guesses: the user picks them
    assert dlg.combos["first_name"].currentData() is None
    dlg.combos["first_name"].setCurrentIndex(dlg.combos["first_name"].findData("Given"))
    dlg.combos["last_name"].setCurrentIndex(dlg.combos["last_name"].findData("Family"))
    dlg.combos["date_of_birth"].setCurrentIndex(dlg.combos["date_of_birth"].findData("Born"))
    assert dlg.combos["phone"].currentData() == "Phone"
    qtbot.mouseClick(dlg.check_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dlg.result is not None, timeout=15000)
    assert "line 3" in dlg.problems.toPlainText() and "nothing was written" in \
        dlg.message.text()
    path.write_text("Given,Family,Born,Phone\nZelda,Csvimport,1955-03-04,555-201-9988\n",
                    encoding="utf-8")
    dlg.load()
    qtbot.waitUntil(lambda: dlg.data is not None and dlg.data.row_count == 1, timeout=15000)
    for key, col in (("first_name", "Given"), ("last_name", "Family"),
                     ("date_of_birth", "Born")):
        dlg.combos[key].setCurrentIndex(dlg.combos[key].findData(col))
    with qtbot.waitSignal(dlg.imported, timeout=15000):
        qtbot.mouseClick(dlg.import_button, Qt.MouseButton.LeftButton)
    assert "1 new and 0 existing patients were imported" in dlg.message.text()
    rows = listing.list_patients(ws.sf, ws.actor, "csvimport").rows
    assert [r.first_name for r in rows] == ["Zelda"] and "9988" in (rows[0].phone or "")


def test_export_writes_every_row_of_the_filtered_list(qtbot, app_for, tmp_path):
    win, ws = app_for("pharmacist")
    world = app_for.world
    for i in range(7):
        world.product(f"Exportable{i}")
    world.product("Notexported")
    view = win.show_area("inventory")
    view.model.page_size = 3  # the table has loaded fewer rows than the export writes
    view.search.setText("Exportable")
    view.search.flush()
    qtbot.waitUntil(lambda: not view.model.loading and view.model.rowCount() > 0,
                    timeout=15000)
    out = tmp_path / "inventory.csv"
    view.export_csv(str(out))
    qtbot.waitUntil(lambda: view.last_export is not None, timeout=15000)
    with open(out, encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0][0] == view.model.columns[0].title
    names = [r[0] for r in rows[1:]]
    assert len(names) == 7 and all(n.startswith("Exportable") for n in names)
    assert view.last_export == (7, str(out))


def test_patient_profile_shows_records_from_the_web_app(qtbot, app_for, tmp_path):
    from PySide6.QtWidgets import QTabWidget

    from getmeds_desktop.services import patients, web_import
    from getmeds_desktop.ui.dialogs.patients import PatientProfile
    from tests.fixtures.web_app import sqlite_source as make_web_db

    win, ws = app_for("clerk")
    web_import.import_web(ws.sf, make_web_db(tmp_path / "web.sqlite3"))
    mary = patients.get_patient(ws.sf, ws.actor, web_import._key("pharmacy_patients", 1))
    dlg = PatientProfile(ws, mary, win)
    qtbot.addWidget(dlg)
    dlg.show()
    tabs = dlg.findChild(QTabWidget, "profileTabs")
    qtbot.waitUntil(lambda: any(tabs.tabText(i).startswith("Earlier records")
                                for i in range(tabs.count())), timeout=15000)
    rows = dlg.earlier_model.rows()
    assert [(r.kind, r.what) for r in rows][:1] == [("Prescribed", "Paracetamol")]
    assert ("Dispensed", "Amoxicillin 500mg") in [(r.kind, r.what) for r in rows]
    assert len(rows) == 3  # two prescriptions and one dispense of Mary's

    # a patient without earlier records gets no such tab
    other = app_for.world.patient("Noearlier")
    dlg2 = PatientProfile(ws, patients.get_patient(ws.sf, ws.actor, other.id), win)
    qtbot.addWidget(dlg2)
    dlg2.show()
    qtbot.waitUntil(lambda: not ws.tasks.busy, timeout=15000)
    tabs2 = dlg2.findChild(QTabWidget, "profileTabs")
    assert tabs2.count() == 3
    assert not any(tabs2.tabText(i).startswith("Earlier") for i in range(tabs2.count()))
