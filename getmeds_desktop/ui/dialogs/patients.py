"""Patient editor (with allergies and conditions) and the patient profile
(prescriptions, dispense history, feedback and replies)."""

from __future__ import annotations

import uuid

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QHeaderView,
    QInputDialog,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from ...enums import AllergyStatus, Severity, Sex
from ...services import dashboard, listing, patients, rxstate
from ...services.context import Perm
from ...services.errors import PossibleDuplicate
from ...services.patients import AllergyDraft, ConditionDraft, PatientDraft
from ...sync.outbox import Kind, PatientCreate, PatientUpdate
from ..style import MUTED_FG
from ..tablemodels.models import day, local_time, prescription_model
from ..tablemodels.paged import ALIGN_RIGHT, Column, ListTableModel
from ..views.base import make_table
from ..widgets.common import DateField, FormDialog
from ..widgets.forms import only_default
from ..workspace import Workspace


class AllergyTable(QWidget):
    """Allergen / reaction / severity rows with Add and Remove."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.table = QTableWidget(0, 3)
        self.table.setObjectName("allergyTable")
        self.table.setHorizontalHeaderLabels(["Allergen", "Reaction", "Severity"])
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.table.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.table.verticalHeader().setVisible(False)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setFixedHeight(120)
        lay.addWidget(self.table)
        row = QHBoxLayout()
        add = QPushButton("Add allergy")
        add.setObjectName("addAllergy")
        add.clicked.connect(lambda: self.add_row())
        remove = QPushButton("Remove")
        remove.clicked.connect(self._remove)
        row.addWidget(add)
        row.addWidget(remove)
        row.addStretch(1)
        lay.addLayout(row)

    def add_row(self, a: AllergyDraft | None = None) -> None:
        r = self.table.rowCount()
        self.table.insertRow(r)
        allergen = QTableWidgetItem(a.allergen if a else "")
        self.table.setItem(r, 0, allergen)
        self.table.setItem(r, 1, QTableWidgetItem(a.reaction or "" if a else ""))
        sev = QComboBox()
        for s in Severity:
            sev.addItem(s.value.capitalize(), s)
        if a is not None:
            sev.setCurrentIndex(sev.findData(Severity(a.severity)))
        else:
            sev.setCurrentIndex(sev.findData(Severity.UNKNOWN))
        self.table.setCellWidget(r, 2, sev)
        if a is None:
            self.table.setCurrentCell(r, 0)
            self.table.editItem(allergen)

    def _remove(self) -> None:
        r = self.table.currentRow()
        if r >= 0:
            self.table.removeRow(r)

    def clear(self) -> None:
        self.table.setRowCount(0)

    def allergies(self) -> list[AllergyDraft]:
        out = []
        for r in range(self.table.rowCount()):
            name = self._text(r, 0)
            if not name:
                continue
            reaction = self._text(r, 1)
            sev = self.table.cellWidget(r, 2)
            assert isinstance(sev, QComboBox)  # add_row puts one in every row
            out.append(AllergyDraft(name, reaction or None, sev.currentData()))
        return out

    def _text(self, row: int, column: int) -> str:
        item = self.table.item(row, column)
        return item.text().strip() if item is not None else ""


class PatientEditor(FormDialog):
    @property
    def offline_kind(self) -> Kind:
        return Kind.PATIENT_CREATE if getattr(self, "patient", None) is None \
            else Kind.PATIENT_UPDATE

    def __init__(self, ws: Workspace, patient: patients.PatientInfo | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(ws, "Edit patient" if patient else "New patient", "patientEditor",
                         parent)
        self.patient = patient
        self.patient_id = uuid.uuid4()  # client-chosen: a retried save creates one patient
        self.another_person = False  # the user said a look-alike is another person
        self.first = self.add_field("first_name", "&First name:", QLineEdit(), required=True)
        self.last = self.add_field("last_name", "&Last name:", QLineEdit(), required=True)
        self.dob = DateField(what="date of birth")  # no default: an untouched one is refused
        self.add_field("date_of_birth", "&Date of birth:", self.dob, required=True)
        self.sex = QComboBox()
        for s in Sex:
            self.sex.addItem(s.value.capitalize(), s)
        self.sex.setCurrentIndex(self.sex.findData(Sex.UNKNOWN))
        self.add_field("sex", "&Sex:", self.sex)
        self.phone = self.add_field("phone", "&Phone:", QLineEdit())
        self.email = self.add_field("email", "&E-mail:", QLineEdit())
        self.address = self.add_field("address_line", "&Address:", QLineEdit())
        self.city = self.add_field("city", "&City:", QLineEdit())
        self.state = self.add_field("state", "S&tate:", QLineEdit())
        self.postal = self.add_field("postal_code", "&ZIP code:", QLineEdit())
        self.allergies = AllergyTable()
        self.add_field("allergies", "Aller&gies:", self.allergies)
        # "No known allergies" is an answer (recorded with who and when);
        # neither it nor an allergy means nobody asked, and every fill says so
        self.no_known = QCheckBox("No known allergies (the patient was asked)")
        self.no_known.setObjectName("noKnownAllergies")
        self.allergy_status = QLabel("")
        self.allergy_status.setObjectName("allergyStatus")
        self.allergy_status.setProperty("kind", "info")
        self.allergy_status.setWordWrap(True)
        status_box = QWidget()
        status_row = QVBoxLayout(status_box)
        status_row.setContentsMargins(0, 0, 0, 0)
        status_row.setSpacing(2)
        status_row.addWidget(self.no_known)
        status_row.addWidget(self.allergy_status)
        self.add_field("no_known_allergies", "", status_box)
        self.allergies.table.model().rowsInserted.connect(self._allergy_rows_changed)
        self.allergies.table.model().rowsRemoved.connect(self._allergy_rows_changed)
        self.pregnant = QCheckBox("Pregnant")
        self.pregnant.setObjectName("pregnant")
        self.breastfeeding = QCheckBox("Breastfeeding")
        self.breastfeeding.setObjectName("breastfeeding")
        flags = QWidget()
        flags_row = QHBoxLayout(flags)
        flags_row.setContentsMargins(0, 0, 0, 0)
        flags_row.addWidget(self.pregnant)
        flags_row.addWidget(self.breastfeeding)
        flags_row.addStretch(1)
        self.add_field("pregnant", "Pregnancy:", flags,
                       "Screened against FDA labelling at prescribing and at fill.")
        self.sex.currentIndexChanged.connect(self._sex_changed)
        self._allergy_rows_changed()
        self.conditions = QPlainTextEdit()
        self.conditions.setFixedHeight(60)
        self.add_field("conditions", "C&onditions:", self.conditions, "One per line.")
        self.notes = QPlainTextEdit()
        self.notes.setFixedHeight(50)
        self.add_field("notes", "&Notes:", self.notes)
        self.setMinimumWidth(560)
        if patient is not None:
            self._fill(patient)
            pid, sf, actor = patient.id, ws.sf, ws.actor
            self.watch_record("patients", pid, patient.version,
                              lambda: patients.get_patient(sf, actor, pid))
        self.first.setFocus()

    def _allergy_rows_changed(self, *_args: object) -> None:
        has_rows = self.allergies.table.rowCount() > 0
        if has_rows:
            self.no_known.setChecked(False)
        self.no_known.setEnabled(not has_rows)
        p = self.patient
        if has_rows:
            self.allergy_status.setText("")
        elif p is not None and p.allergy_status is AllergyStatus.NO_KNOWN_ALLERGIES:
            when = local_time(p.allergy_status_at) if p.allergy_status_at else ""
            self.allergy_status.setText(
                f"recorded by {p.allergy_status_by or 'unknown'} {when}".strip())
        else:
            self.allergy_status.setText("Allergies not asked yet: ask, and record the answer.")

    def _sex_changed(self, *_args: object) -> None:
        male = self.sex.currentData() == Sex.MALE
        for box in (self.pregnant, self.breastfeeding):
            if male:
                box.setChecked(False)
            box.setEnabled(not male)

    def reload_record(self, info: patients.PatientInfo) -> None:
        self.patient = info
        self.allergies.clear()
        self._fill(info)

    def _fill(self, p: patients.PatientInfo) -> None:
        self.first.setText(p.first_name)
        self.last.setText(p.last_name)
        self.dob.set_date(p.date_of_birth)
        self.sex.setCurrentIndex(self.sex.findData(p.sex))
        self.phone.setText(p.phone or "")
        self.email.setText(p.email or "")
        self.address.setText(p.address_line or "")
        self.city.setText(p.city or "")
        self.state.setText(p.state or "")
        self.postal.setText(p.postal_code or "")
        for a in p.allergies:
            self.allergies.add_row(a)
        self.no_known.setChecked(p.allergy_status is AllergyStatus.NO_KNOWN_ALLERGIES)
        self.pregnant.setChecked(p.pregnant)
        self.breastfeeding.setChecked(p.breastfeeding)
        self._allergy_rows_changed()
        self.conditions.setPlainText("\n".join(c.name for c in p.conditions))
        self.notes.setPlainText(p.notes or "")

    def collect(self) -> PatientDraft:
        return PatientDraft(
            first_name=self.first.text(), last_name=self.last.text(),
            date_of_birth=self.dob.value_or_none(), sex=self.sex.currentData(),
            phone=self.phone.text(),
            email=self.email.text(), address_line=self.address.text(), city=self.city.text(),
            state=self.state.text(), postal_code=self.postal.text(),
            notes=self.notes.toPlainText(), allergies=self.allergies.allergies(),
            conditions=[ConditionDraft(x.strip()) for x in
                        self.conditions.toPlainText().splitlines() if x.strip()],
            no_known_allergies=self.no_known.isChecked(),
            pregnant=self.pregnant.isChecked(), breastfeeding=self.breastfeeding.isChecked(),
        )

    def saved_text(self, result: patients.PatientInfo) -> str:
        return f"Saved patient {result.full_name}"

    def save(self, draft: PatientDraft) -> patients.PatientInfo:
        # through the workspace: on the server, or while it cannot be reached on
        # the offline copy, queued for the server (sync.offline)
        if self.patient is None:
            return self.ws.perform(Kind.PATIENT_CREATE, PatientCreate(
                draft, patient_id=self.patient_id, another_person=self.another_person))
        return self.ws.perform(Kind.PATIENT_UPDATE, PatientUpdate(
            self.patient.id, draft, expected_version=self.patient.version,
            request_id=self.request_id))


    def _failed(self, exc: BaseException) -> None:
        if isinstance(exc, PossibleDuplicate) and not self.another_person:
            self._saving = False
            self._update_ok()
            self._ask_duplicate(exc)
            return
        super()._failed(exc)

    def _ask_duplicate(self, exc: PossibleDuplicate) -> None:
        """The look-alikes, and the choice: another person, or go back."""
        lines = "\n".join(
            f"• {c.full_name}, born {c.date_of_birth:%m/%d/%Y}"
            + (f", {c.phone}" if c.phone else "")
            + (f", {c.allergies} allerg{'y' if c.allergies == 1 else 'ies'} on record"
               if c.allergies else "") + f" ({c.why})" for c in exc.candidates)
        box = QMessageBox(self)
        box.setObjectName("possibleDuplicate")
        box.setIcon(QMessageBox.Icon.Warning)
        box.setWindowTitle("Already registered?")
        box.setText("This patient may already be registered:")
        box.setInformativeText(
            f"{lines}\n\nA second record splits the patient's allergies and history. Use "
            "the existing record (search for it on the Patients screen), or register a new "
            "patient only if this is another person.")
        create = box.addButton("Another person: register", QMessageBox.ButtonRole.AcceptRole)
        back = box.addButton("Go back", QMessageBox.ButtonRole.RejectRole)
        box.setDefaultButton(back)
        box.exec()
        if box.clickedButton() is create:
            self.another_person = True
            self.submit()
        else:
            self.message.show_warning("Not saved: this patient may already be registered ("
                                      + "; ".join(c.full_name for c in exc.candidates) + ").")


DISPENSE_COLUMNS: list[Column[dashboard.DispenseHistoryRow]] = [
    Column("when", "Dispensed", lambda r: local_time(r.dispensed_at), width=130),
    Column("rx", "Rx #", lambda r: r.rx_number, align=ALIGN_RIGHT, width=80),
    Column("product", "Product", lambda r: r.product, width=260),
    Column("qty", "Quantity", lambda r: r.quantity, align=ALIGN_RIGHT, width=70),
    Column("fill", "Fill", lambda r: rxstate.fill_label(r.fill_number, r.part), width=120),
    Column("by", "Filled by", lambda r: r.pharmacist, width=150),
    Column("status", "Status", lambda r: r.status.label, width=140,
           foreground=lambda r: MUTED_FG if r.returned else None,
           tooltip=lambda r: (f"Went back to stock: {r.return_note}" if r.return_note
                              else None) if r.returned else None),
    Column("days", "Days", lambda r: r.days_supply, align=ALIGN_RIGHT, width=60),
    Column("partial", "Partial fill", lambda r: (
        f"{r.owed_after} owed" + (f" ({r.partial_reason.replace('_', ' ')})"
                                  if r.partial_reason else "")) if r.owed_after else "",
           width=200),
]

EARLIER_COLUMNS: list[Column[patients.EarlierRecord]] = [
    Column("date", "Date", lambda r: day(r.date) if r.date else "unknown", width=100),
    Column("kind", "Record", lambda r: r.kind, width=90),
    Column("what", "Medicine / prescription", lambda r: r.what, width=300),
    Column("qty", "Quantity", lambda r: "" if r.quantity is None else r.quantity,
           align=ALIGN_RIGHT, width=85),
    Column("notes", "Instructions / notes", lambda r: r.notes or "", width=330),
]


class PatientProfile(QDialog):
    """Everything about one patient: details, prescriptions, dispenses, feedback."""

    def __init__(self, ws: Workspace, patient: patients.PatientInfo,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ws = ws
        self.patient = patient
        self.setObjectName("patientProfile")
        self.setWindowTitle(f"Patient: {patient.full_name}")
        self.resize(960, 620)
        root = QVBoxLayout(self)
        age = patient.age_on(__import__("datetime").date.today())
        head = QLabel(f"<h3 style='margin:0'>{patient.last_name}, {patient.first_name}</h3>"
                      f"born {day(patient.date_of_birth)} ({age} years) · "
                      f"{patient.sex.value} · {patient.phone or 'no phone'} · "
                      f"{patient.address or 'no address'}")
        root.addWidget(head)
        allergy_text = ", ".join(
            a.allergen + (f" ({a.reaction})" if a.reaction else "") for a in patient.allergies)
        if allergy_text:
            shown, kind = f"Allergies: {allergy_text}", "error"
        elif patient.allergy_status is AllergyStatus.NO_KNOWN_ALLERGIES:
            when = (local_time(patient.allergy_status_at) if patient.allergy_status_at
                    else "")
            shown = (f"No known allergies (recorded by {patient.allergy_status_by or 'unknown'}"
                     f"{' ' + when if when else ''}).")
            kind = "info"
        else:
            shown, kind = "Allergies not asked: ask the patient and record the answer.", \
                "warning"
        flags = [x for x, on in (("pregnant", patient.pregnant),
                                 ("breastfeeding", patient.breastfeeding)) if on]
        if flags:
            shown += " Patient is " + " and ".join(flags) + "."
        self.allergy_label = QLabel(shown)
        self.allergy_label.setObjectName("profileAllergies")
        self.allergy_label.setProperty("kind", kind)
        self.allergy_label.setWordWrap(True)
        root.addWidget(self.allergy_label)
        if patient.conditions:
            root.addWidget(QLabel("Conditions: " + ", ".join(c.name for c in patient.conditions)))
        tabs = QTabWidget()
        tabs.setObjectName("profileTabs")
        root.addWidget(tabs, 1)

        self.rx_model = prescription_model(ws)
        rx_table = make_table("profilePrescriptions")
        rx_table.setModel(self.rx_model)
        for i, c in enumerate(self.rx_model.columns):
            rx_table.setColumnWidth(i, c.width)
        tabs.addTab(rx_table, "Prescriptions")
        if ws.can(Perm.READ_PRESCRIPTIONS):
            self.rx_model.set_query(listing.PrescriptionFilter(patient_id=patient.id))

        self.disp_model = ListTableModel(DISPENSE_COLUMNS, self)
        disp_table = make_table("profileDispenses")
        disp_table.setModel(self.disp_model)
        for i, c in enumerate(DISPENSE_COLUMNS):
            disp_table.setColumnWidth(i, c.width)
        self.disp_table = disp_table
        history = QWidget()
        hl = QVBoxLayout(history)
        hl.setContentsMargins(0, 0, 0, 0)
        hl.addWidget(disp_table, 1)
        if ws.can(Perm.DISPENSE):
            self.reprint_button = QPushButton("Reprint label…")
            self.reprint_button.setObjectName("reprintLabel")
            self.reprint_button.clicked.connect(self.reprint_label)
            row = QHBoxLayout()
            row.addWidget(self.reprint_button)
            row.addStretch(1)
            hl.addLayout(row)
        tabs.addTab(history, "Dispense history")
        if ws.can(Perm.READ_DISPENSES):
            ws.run(lambda: dashboard.patient_dispenses(ws.sf, ws.actor, patient.id),
                   self.disp_model.set_rows)

        # History brought over from the previous system: a tab only when there is some.
        self.tabs = tabs
        self.earlier_model = ListTableModel(EARLIER_COLUMNS, self)
        ws.run(lambda: patients.earlier_records(ws.sf, ws.actor, patient.id),
               self._show_earlier)

        fb = QWidget()
        fl = QVBoxLayout(fb)
        self.feedback = QListWidget()
        self.feedback.setObjectName("feedbackList")
        self.feedback.setWordWrap(True)
        fl.addWidget(self.feedback)
        row = QHBoxLayout()
        add = QPushButton("Record feedback…")
        add.setObjectName("addFeedback")
        add.setEnabled(ws.can(Perm.FEEDBACK))
        add.clicked.connect(self._add_feedback)
        reply = QPushButton("Reply…")
        reply.setObjectName("replyFeedback")
        reply.setEnabled(ws.can(Perm.REPLY_FEEDBACK))
        reply.clicked.connect(self._reply)
        row.addWidget(add)
        row.addWidget(reply)
        row.addStretch(1)
        fl.addLayout(row)
        tabs.addTab(fb, "Feedback")
        self._load_feedback()
        close = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        close.rejected.connect(self.reject)
        root.addWidget(close)
        # Enter never records or replies to feedback by accident
        only_default(self, None)

    def reprint_label(self) -> None:
        """Print the selected fill's label again, with the reason (recorded)."""
        from ..dialogs.prescriptions import ask_reason
        from ..views.reports import print_label

        rows = self.disp_table.selectionModel().selectedRows()
        if not rows:
            QMessageBox.information(self, "Reprint label", "Choose the fill first.")
            return
        row = self.disp_model.row_at(rows[0].row())
        if row.returned:
            QMessageBox.information(self, "Reprint label", f"That fill of Rx {row.rx_number} "
                                    "went back to stock: it has no label to print.")
            return
        reason = ask_reason(self, "Reprint label",
                            f"Why is the label of Rx {row.rx_number} printed again?")
        if reason is None:
            return
        if len(reason.strip()) < 3:
            QMessageBox.warning(self, "Reprint label",
                                "Say why the label is printed again (for example \"label "
                                "smudged\"); nothing was printed.")
            return
        print_label(self.ws, row.id, self, reprint_reason=reason.strip())

    def _show_earlier(self, rows: list[patients.EarlierRecord]) -> None:
        if not rows:
            return
        self.earlier_model.set_rows(rows)
        table = make_table("profileEarlier")
        table.setModel(self.earlier_model)
        for i, c in enumerate(EARLIER_COLUMNS):
            table.setColumnWidth(i, c.width)
        self.tabs.insertTab(2, table, f"Earlier records ({len(rows)})")
        self.tabs.setTabToolTip(2, "Prescriptions and dispenses from the previous system "
                                   "(the GetMeds web app), kept as they were")

    def _load_feedback(self) -> None:
        self.ws.run(lambda: patients.list_feedback(self.ws.sf, self.ws.actor, self.patient.id),
                    self._show_feedback)

    def _show_feedback(self, items: list[patients.FeedbackInfo]) -> None:
        self.feedback.clear()
        for f in items:
            text = f"{local_time(f.received_at)}: {f.feedback}"
            if f.reply:
                text += f"\n    Reply by {f.replied_by} ({local_time(f.replied_at)}): {f.reply}"
            else:
                text += "\n    (no reply yet)"
            item = QListWidgetItem(text)
            item.setData(Qt.ItemDataRole.UserRole, f)
            self.feedback.addItem(item)

    def _add_feedback(self) -> None:
        text, ok = QInputDialog.getMultiLineText(self, "Patient feedback",
                                                 "What did the patient say?")
        if ok and text.strip():
            self.ws.run(lambda: patients.add_feedback(self.ws.sf, self.ws.actor,
                                                      self.patient.id, text),
                        lambda _f: self._load_feedback(), self._error)

    def _reply(self) -> None:
        item = self.feedback.currentItem()
        if item is None:
            QMessageBox.information(self, "GetMeds", "Select the feedback to reply to.")
            return
        f: patients.FeedbackInfo = item.data(Qt.ItemDataRole.UserRole)
        text, ok = QInputDialog.getMultiLineText(self, "Reply", "Reply to the patient:")
        if ok and text.strip():
            self.ws.run(lambda: patients.reply_feedback(self.ws.sf, self.ws.actor, f.id, text,
                                                        expected_version=f.version),
                        lambda _f: self._load_feedback(), self._error)

    def _error(self, exc: BaseException) -> None:
        QMessageBox.warning(self, "GetMeds", str(exc))
