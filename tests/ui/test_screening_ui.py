"""Clinical screening in the windows: the patient record's allergy status and
pregnancy fields, the prescription form's checks as it is written."""

from __future__ import annotations

import datetime as dt

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel

from getmeds_desktop.enums import AllergyStatus
from getmeds_desktop.services import patients
from tests.ui.test_workflows import app_for, pick  # noqa: F401  (app_for is a fixture)


def test_no_known_allergies_and_pregnancy_are_recorded(qtbot, app_for):
    win, ws = app_for("clerk")
    view = win.show_area("patients")
    view.act_new.trigger()
    from getmeds_desktop.ui.dialogs.patients import PatientEditor

    dlg = win.findChild(PatientEditor)
    assert "not asked" in dlg.allergy_status.text()
    dlg.first.setText("Nora")
    dlg.last.setText("Kaye")
    dlg.dob.set_date(dt.date(1991, 6, 1))
    # an allergy row and "no known allergies" exclude each other
    dlg.allergies.add_row()
    assert not dlg.no_known.isEnabled()
    dlg.allergies.clear()
    assert dlg.no_known.isEnabled()
    dlg.no_known.setChecked(True)
    dlg.pregnant.setChecked(True)
    with qtbot.waitSignal(dlg.saved, timeout=15000) as sig:
        qtbot.mouseClick(dlg.ok_button, Qt.MouseButton.LeftButton)
    saved: patients.PatientInfo = sig.args[0]
    assert saved.allergy_status is AllergyStatus.NO_KNOWN_ALLERGIES
    assert saved.allergy_status_by == ws.actor.username and saved.allergy_status_at
    assert saved.pregnant and not saved.breastfeeding

    edit = PatientEditor(ws, saved, parent=win)
    qtbot.addWidget(edit)
    assert edit.no_known.isChecked() and edit.pregnant.isChecked()
    assert ws.actor.username in edit.allergy_status.text()
    # a male patient is not recorded as pregnant
    edit.sex.setCurrentIndex(edit.sex.findData(patients.Sex.MALE))
    assert not edit.pregnant.isChecked() and not edit.pregnant.isEnabled()


def test_prescription_form_shows_allergies_and_warnings_as_it_is_written(
        qtbot, app_for):
    win, ws = app_for("pharmacist")
    world = app_for.world
    world.patient("Penny", "Allergic", allergies=("PCN",))
    world.product("Amoxicillin", classes=("Penicillin-class Antibacterial [EPC]",))
    world.product("Lisinopril")
    view = win.show_area("prescriptions")
    view.act_new.trigger()
    from getmeds_desktop.ui.dialogs.prescriptions import PrescriptionEditor

    dlg = win.findChild(PrescriptionEditor)
    pick(qtbot, dlg.patient, "Allergic")
    pick(qtbot, dlg.product, "Amoxic")
    qtbot.waitUntil(lambda: "STOP" in dlg.screening.text(), timeout=15000)
    text = dlg.screening.text()
    assert text.startswith("Allergies: PCN") and "penicillins" in text.lower()
    assert dlg.screening_area.isVisible()
    # another product: the warning goes away
    dlg.product.edit.clear()
    qtbot.keyClicks(dlg.product.edit, "Lisino")
    qtbot.waitUntil(lambda: any("Lisinopril" in c.label for c in dlg.product.results()),
                    timeout=15000)
    dlg.product.set_choice(dlg.product.results()[0])
    qtbot.waitUntil(lambda: "No screening warnings" in dlg.screening.text(), timeout=15000)


def _answer_duplicate(qtbot, choice: str) -> list[str]:
    """When the 'Already registered?' box opens, read it and press ``choice``."""
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication, QMessageBox

    seen: list[str] = []

    def press() -> None:
        box = QApplication.activeModalWidget()
        if not isinstance(box, QMessageBox):
            QTimer.singleShot(20, press)
            return
        seen.append(box.informativeText())
        next(b for b in box.buttons() if b.text().startswith(choice)).click()

    QTimer.singleShot(0, press)
    return seen


def test_a_look_alike_patient_asks_before_a_second_record(qtbot, app_for):
    win, ws = app_for("clerk")
    world = app_for.world
    first = patients.create_patient(world.sf, world.clerk, patients.PatientDraft(
        first_name="Greta", last_name="Twinn", date_of_birth=dt.date(1955, 3, 14),
        allergies=[patients.AllergyDraft("Penicillin")]))
    view = win.show_area("patients")
    from getmeds_desktop.ui.dialogs.patients import PatientEditor

    def fill() -> PatientEditor:
        view.act_new.trigger()
        dlg = win.findChildren(PatientEditor)[-1]
        dlg.first.setText("Greta")
        dlg.last.setText("Twin")
        dlg.dob.set_date(dt.date(1955, 3, 14))
        dlg.no_known.setChecked(True)
        return dlg

    dlg = fill()
    seen = _answer_duplicate(qtbot, "Go back")
    qtbot.mouseClick(dlg.ok_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: bool(seen) and "Not saved" in dlg.message.text(), timeout=15000)
    assert "Greta Twinn, born 03/14/1955" in seen[0] and "1 allergy on record" in seen[0]
    assert dlg.isVisible()  # nothing typed is lost
    # another person after all: registered
    seen = _answer_duplicate(qtbot, "Another person")
    with qtbot.waitSignal(dlg.saved, timeout=15000) as sig:
        qtbot.mouseClick(dlg.ok_button, Qt.MouseButton.LeftButton)
    assert sig.args[0].id != first.id and seen


def test_the_audit_viewer_shows_changes_in_words_and_exports(qtbot, app_for, tmp_path,
                                                              monkeypatch):
    win, ws = app_for("admin")
    world = app_for.world
    pat = world.patient("Audrey", "Viewer")
    view = win.show_area("admin")
    from getmeds_desktop.ui.views.audit import AuditPage

    page = view.findChild(AuditPage)
    view.tabs.setCurrentWidget(page)
    qtbot.waitUntil(lambda: page.staff.count() > 1, timeout=15000)  # staff listed
    page.patient.set_choice(__import__("getmeds_desktop.services.listing", fromlist=["x"])
                            .Choice(pat.id, "Viewer, Audrey"))
    qtbot.mouseClick(page.show_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: page.model.rowCount() > 0, timeout=15000)
    first = page.model.row_at(page.model.rowCount() - 1)
    assert first.what == "Patient Audrey Viewer" and first.action == "Created"
    assert "match" in page.message.text()
    out = tmp_path / "audit.csv"
    page.write_csv(str(out))
    qtbot.waitUntil(lambda: out.exists() and "written to" in page.message.text(),
                    timeout=15000)
    assert "Audrey Viewer" in out.read_text(encoding="utf-8")
    monkeypatch.setattr("getmeds_desktop.ui.views.reports.reports_folder", lambda: tmp_path)
    qtbot.mouseClick(page.pdf_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: page.open_button.isEnabled(), timeout=30000)
    assert page.last_pdf.exists() and page.last_pdf.parent == tmp_path
    # a prescription number that does not exist is a sentence
    page.rx_number.setText("Rx 999999")
    qtbot.mouseClick(page.show_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "no prescription with Rx number 999999" in page.message.text(),
                    timeout=15000)


def test_a_clerk_opens_a_prescription_to_read(qtbot, app_for):
    win, ws = app_for("clerk")
    world = app_for.world
    p = world.product("Readonlydrug")
    rx = world.rx(world.patient("Rhea", "Reader").id, p.id, quantity=14, days_supply=7)
    view = win.show_area("prescriptions")
    view.search.setText(str(rx.rx_number))
    view.search.flush()
    qtbot.waitUntil(lambda: not view.model.loading and view.model.rowCount() == 1,
                    timeout=15000)
    view.table.selectRow(0)
    assert view.act_view.isEnabled() and not view.act_edit.isEnabled()
    view.row_activated.emit(0)  # Enter or a double click
    from getmeds_desktop.ui.dialogs.prescriptions import PrescriptionViewer

    qtbot.waitUntil(lambda: view.findChild(PrescriptionViewer) is not None, timeout=15000)
    viewer = view.findChild(PrescriptionViewer)
    texts = " ".join(w.text() for w in viewer.findChildren(QLabel))
    assert "Rhea Reader" in texts and "14 for 7 days" in texts and "Readonlydrug" in texts
    from getmeds_desktop.ui.dialogs.prescriptions import PrescriptionEditor

    assert view.findChild(PrescriptionEditor) is None  # nothing to change


def test_another_package_of_the_same_drug_when_the_prescribed_one_is_out(qtbot, app_for,
                                                                          monkeypatch):
    from PySide6.QtWidgets import QMessageBox

    from getmeds_desktop.models import Dispense
    from tests.ui.test_workflows import search_and_select

    # "Print the label?" after the fill: not now
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.No)
    win, ws = app_for("pharmacist")
    world = app_for.world
    prescribed = world.product("Subtab", strength="10 mg", dosage_form="tablet",
                               ndc="55555-0001-01")
    other = world.product("Subtab", strength="10 mg", dosage_form="tablet", ndc="55555-0002-02")
    world.receive(other.id, 40, lot="SUB-1")
    rx = world.rx(world.patient().id, prescribed.id, quantity=20)
    queue = win.show_area("dispensing")
    search_and_select(qtbot, queue, str(rx.rx_number))
    qtbot.waitUntil(lambda: queue.act_dispense.isEnabled(), timeout=5000)
    queue.act_dispense.trigger()
    from getmeds_desktop.ui.dialogs.prescriptions import DispenseDialog

    dlg = win.findChild(DispenseDialog)
    qtbot.waitUntil(lambda: dlg.preview is not None and dlg.substitute.count() == 2,
                    timeout=15000)
    assert dlg.substitute.isVisible() and "55555-0002-02" in dlg.substitute.itemText(1)
    dlg.substitute.setCurrentIndex(1)
    dlg.substitute.activated.emit(1)
    qtbot.waitUntil(lambda: dlg.preview.substitute is not None, timeout=15000)
    assert "another package of the same drug" in dlg.stock_line.text()
    qtbot.keyClicks(dlg.scan, other.ndc_display)
    qtbot.keyClick(dlg.scan, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: "is the prescribed product" in dlg.scan_result.text(),
                    timeout=15000)
    qtbot.waitUntil(dlg.confirm.isEnabled, timeout=5000)
    with qtbot.waitSignal(dlg.dispensed, timeout=15000) as sig:
        qtbot.mouseClick(dlg.confirm, Qt.MouseButton.LeftButton)
    with ws.sf() as s:
        assert s.get(Dispense, sig.args[0].dispense_id).dispensed_product_id == other.id


def test_enter_in_the_other_dialogs_presses_only_their_safe_button(qtbot, app_for):
    """Stocktake: Enter records the line's count, never posts or cancels the
    count; CSV import: Enter checks (writes nothing); the NDC import, a lot's
    dialog and the patient profile: Enter presses nothing."""
    from PySide6.QtWidgets import QPushButton

    from getmeds_desktop.services import catalog, stocktake
    from getmeds_desktop.ui.dialogs.data_io import CsvImportDialog, NdcImportDialog
    from getmeds_desktop.ui.dialogs.inventory import LotsDialog
    from getmeds_desktop.ui.dialogs.patients import PatientProfile
    from getmeds_desktop.ui.dialogs.stocktake import StocktakeDialog

    win, ws = app_for("pharmacist")
    world = app_for.world
    p = world.product("Countdrug")
    world.receive(p.id, 10, lot="CNT-1")
    dlg = StocktakeDialog(ws, [], parent=win)
    qtbot.addWidget(dlg)
    dlg.show()
    dlg.scope.setCurrentIndex(dlg.scope.findData(stocktake.StocktakeScope.ALL))
    qtbot.mouseClick(dlg.start_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dlg.current is not None and dlg.model.rowCount() > 0,
                    timeout=15000)
    dlg.table.selectRow(0)
    dlg.counted.setValue(9)
    dlg.reason.setText("One broken")
    qtbot.keyClick(dlg.counted, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: dlg.model.row_at(0).counted == 9, timeout=15000)
    mine = [x for x in stocktake.list_stocktakes(ws.sf, ws.actor) if x.id == dlg.current.id]
    assert mine and mine[0].status.value == "open"  # not posted by Enter
    defaults = {type(d).__name__: [b.objectName() or b.text() for b in d.findChildren(QPushButton)
                                   if b.isDefault() or b.autoDefault()]
                for d in (CsvImportDialog(ws, "patients", parent=win),
                          NdcImportDialog(ws, parent=win),
                          LotsDialog(ws, catalog.get_product(ws.sf, p.id), parent=win),
                          PatientProfile(ws, world.patient("Prof", "Ile"), parent=win))}
    assert defaults == {"CsvImportDialog": ["csvCheckButton"], "NdcImportDialog": [],
                        "LotsDialog": [], "PatientProfile": []}


def test_a_label_is_reprinted_from_the_fill_history_with_its_reason(qtbot, app_for, tmp_path,
                                                                     monkeypatch):
    import uuid as _uuid

    import sqlalchemy as sa

    from getmeds_desktop.models import LabelPrint
    from getmeds_desktop.services import dispensing
    from getmeds_desktop.ui.dialogs.patients import PatientProfile
    from tests.fixtures.data import NO_SCAN

    win, ws = app_for("pharmacist")
    world = app_for.world
    p = world.product("Reprintdrug")
    world.receive(p.id, 50)
    pat = world.patient("Rita", "Reprint")
    rx = world.rx(pat.id, p.id)
    d = dispensing.dispense(world.sf, world.pharmacist, dispensing.DispenseRequest(
        rx.id, _uuid.uuid4(), no_scan_reason=NO_SCAN))
    printed: list[object] = []
    monkeypatch.setattr("getmeds_desktop.ui.views.reports.reports_folder", lambda: tmp_path)
    monkeypatch.setattr("getmeds_desktop.ui.printing.print_pdf",
                        lambda path, *a, **k: printed.append(path) or True)
    monkeypatch.setattr("getmeds_desktop.ui.dialogs.prescriptions.ask_reason",
                        lambda *a: "Label smudged at the counter")
    profile = PatientProfile(ws, pat, parent=win)
    qtbot.addWidget(profile)
    profile.show()
    qtbot.waitUntil(lambda: profile.disp_model.rowCount() == 1, timeout=15000)
    profile.disp_table.selectRow(0)
    qtbot.mouseClick(profile.reprint_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: bool(printed), timeout=20000)
    with ws.sf() as s:
        row = s.scalars(sa.select(LabelPrint).where(LabelPrint.dispense_id == d.dispense_id)).one()
        assert row.reprint and row.reason == "Label smudged at the counter"


def test_the_administrator_sets_the_longest_schedule_ii_supply(qtbot, app_for, tmp_path):
    from getmeds_desktop.services import settings as app_settings

    win, ws = app_for("admin")
    win.resize(1280, 800)
    view = win.show_area("admin")
    qtbot.waitUntil(lambda: view.current is not None, timeout=15000)
    view.tabs.setCurrentIndex(next(i for i in range(view.tabs.count())
                                   if view.tabs.tabText(i).replace("&", "") == "Settings"))
    assert view.cii_days.value() == 90 and view.cii_over.currentData() == "warn"
    view.cii_days.setValue(30)
    view.cii_over.setCurrentIndex(view.cii_over.findData("refuse"))
    old = view.current.version
    qtbot.mouseClick(view.save_settings_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: view.current.version > old, timeout=15000)
    saved = app_settings.get_settings(app_for.world.sf)
    assert (saved.schedule_ii_max_days, saved.schedule_ii_over_limit) == (30, "refuse")
    assert win.grab().save(str(tmp_path / "settings-1280x800.png"))
