"""Patients: search by name, date of birth or phone; editor; profile."""

from __future__ import annotations

from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QLabel, QWidget

from ...services import patients
from ...services.context import Perm
from ..tablemodels.models import patient_model
from ..workspace import Workspace
from .base import SearchBox, TableArea


class PatientsView(TableArea):
    settings_key = "patients"

    def __init__(self, ws: Workspace, parent: QWidget | None = None) -> None:
        super().__init__(ws, "Patients", "Search by name (\"smith jo\"), date of birth "
                         "(1960-05-17) or phone digits.", patient_model(ws), "patientTable",
                         parent)
        self.search = SearchBox("Name, date of birth or phone  (Ctrl+F)")
        self.search.setObjectName("patientSearch")
        self.search.search.connect(lambda _t: self.reload())
        self.filters.addWidget(self.search, 1)
        hint = QLabel("")
        self.filters.addWidget(hint)
        can_write = ws.can(Perm.WRITE_PATIENTS)
        self.act_new = self.add_action("actionNewPatient", "New patient", "add",
                                       self.new_patient, QKeySequence.StandardKey.New,
                                       enabled=can_write, perm=Perm.WRITE_PATIENTS)
        self.act_edit = self.add_action("actionEditPatient", "Edit", "edit", self.edit_patient,
                                        "Ctrl+E", enabled=False, perm=Perm.WRITE_PATIENTS,
                                        needs="a patient")
        self.act_profile = self.add_action("actionPatientProfile", "Profile", "patients",
                                           self.profile, "Ctrl+O", enabled=False,
                                           needs="a patient")
        self.act_import = self.add_action("actionImportPatientsCsv", "Import", "import",
                                          self.import_csv, perm=Perm.WRITE_PATIENTS,
                                          tip="Import patients from a CSV file")
        self.add_export_action()
        self.add_action("actionRefreshPatients", "Refresh", "refresh", self.reload, "F5")
        self.add_shortcut("actionFindPatient", QKeySequence.StandardKey.Find,
                          self.search.select_for_typing, text="Find")
        self.row_activated.connect(lambda _r: self.profile())
        ws.data_changed.connect(self._data_changed)

    def import_csv(self) -> None:
        from ..dialogs.data_io import CsvImportDialog

        dlg = CsvImportDialog(self.ws, "patients", self)
        dlg.imported.connect(lambda _r: self.reload())
        dlg.open()

    def current_query(self) -> str:
        return self.search.text()

    def selection_changed(self) -> None:
        has = self.selected_row() is not None
        self.act_edit.setEnabled(has and self.ws.can(Perm.WRITE_PATIENTS))
        self.act_profile.setEnabled(has)

    def _data_changed(self, table: str, ids: set) -> None:
        if table == "patients":
            self.model.refresh_rows(list(ids) if ids else None)

    def new_patient(self) -> None:
        from ..dialogs.patients import PatientEditor

        dlg = PatientEditor(self.ws, parent=self)
        dlg.saved.connect(self._created)
        dlg.open()

    def _created(self, p: patients.PatientInfo) -> None:
        self.search.setText(f"{p.last_name}, {p.first_name}")
        self.search.flush()

    def edit_patient(self) -> None:
        from ..dialogs.patients import PatientEditor

        row = self.selected_row()
        if row is None:
            return

        def show(p: patients.PatientInfo) -> None:
            dlg = PatientEditor(self.ws, p, parent=self)
            dlg.open()

        self.ws.run(lambda: patients.get_patient(self.ws.sf, self.ws.actor, row.id), show,
                    self.show_error)

    def profile(self) -> None:
        from ..dialogs.patients import PatientProfile

        row = self.selected_row()
        if row is None:
            return
        self.ws.run(lambda: patients.get_patient(self.ws.sf, self.ws.actor, row.id),
                    lambda p: PatientProfile(self.ws, p, self).open(), self.show_error)
