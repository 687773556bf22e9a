"""Administration: staff accounts, pharmacy settings, the audit trail and backups."""

from __future__ import annotations

from typing import Any, TypeVar

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QGroupBox,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from ...enums import PaperSize, Role
from ...services import listing, settings, staff
from ...services.errors import ValidationError
from ...services.rxstate import CONTROLLED_MONTHS_MAX
from ..tablemodels.paged import Column, ListTableModel
from ..widgets.common import FormDialog, Picker
from ..widgets.forms import MessageLabel, form_layout, mark_invalid, unit_suffix
from ..workspace import Workspace
from .base import Area, make_table

W = TypeVar("W", bound=QWidget)

STAFF_COLUMNS: list[Column[staff.StaffInfo]] = [
    Column("username", "Username", lambda r: r.username, width=130),
    Column("name", "Full name", lambda r: r.full_name, width=200),
    Column("role", "Role", lambda r: r.role_label, width=150),
    Column("licence", "License", lambda r: r.licence_number, width=120),
    Column("dea", "DEA number", lambda r: r.dea_number, width=110),
    Column("active", "Active", lambda r: "yes" if r.active else "no (disabled)", width=110),
    Column("password", "Password", lambda r: "must change" if r.must_change_password
           else ("set" if r.has_password else "not set"), width=110),
]


class StaffEditor(FormDialog):
    def __init__(self, ws: Workspace, parent: QWidget | None = None) -> None:
        super().__init__(ws, "Add staff member", "staffEditor", parent, save_text="Add")
        self.username = self.add_field("username", "&Username:", QLineEdit(), required=True)
        self.full_name = self.add_field("full_name", "&Full name:", QLineEdit(),
                                        required=True)
        self.role = QComboBox()
        for r in Role:
            self.role.addItem(r.label, r)
        self.role.setCurrentIndex(self.role.findData(Role.PHARMACIST))
        self.add_field("role", "&Role:", self.role)
        self.practice = QComboBox()
        self.practice.addItem("Manages the pharmacy only", None)
        for r in staff.PRACTICE_ROLES:
            self.practice.addItem(f"Also works as a {r.label.lower()}", r.value)
        self.practice.setToolTip("An administrator fills, verifies or hands out prescriptions "
                                 "only with a practice role of their own.")
        self.add_field("practice_role", "&Also works as:", self.practice)
        self.role.currentIndexChanged.connect(lambda _i: self._role_changed())
        self._role_changed()
        self.licence = self.add_field("licence_number", "&License number:", QLineEdit())
        self.dea = self.add_field("dea_number", "&DEA number:", QLineEdit())
        self.prescriber = Picker(ws, lambda t: listing.pick_prescribers(ws.sf, ws.actor, t),
                                 "For a doctor: their prescriber record")
        self.add_field("prescriber_id", "&Prescriber:", self.prescriber)
        self.password = QLineEdit()
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        self.add_field("password", "Pass&word:", self.password,
                       "At least 12 characters, not containing the username. They change "
                       "it at their first sign-in.", required=True)
        self.repeat = QLineEdit()
        self.repeat.setEchoMode(QLineEdit.EchoMode.Password)
        self.add_field("repeat", "R&epeat:", self.repeat, required=True)

    def _role_changed(self) -> None:
        admin = Role(self.role.currentData()) is Role.ADMIN
        self.practice.setEnabled(admin)
        if not admin:
            self.practice.setCurrentIndex(0)

    def collect(self) -> dict[str, Any]:
        if self.password.text() != self.repeat.text():
            raise ValidationError("The two passwords differ.", field="repeat")
        return dict(username=self.username.text(), full_name=self.full_name.text(),
                    role=self.role.currentData(), practice_role=self.practice.currentData(),
                    licence_number=self.licence.text(),
                    dea_number=self.dea.text(), password=self.password.text(),
                    prescriber_id=self.prescriber.choice.id if self.prescriber.choice else None)

    def saved_text(self, result: staff.StaffInfo) -> str:
        return (f"Added staff member {result.full_name} ({result.username}, "
                f"{result.role_label})")

    def save(self, values: dict[str, Any]) -> staff.StaffInfo:
        return staff.create_staff(self.ws.sf, self.ws.actor, must_change_password=True,
                                  **values)


class AdminView(Area):
    def __init__(self, ws: Workspace, parent: QWidget | None = None) -> None:
        super().__init__(ws, "Administration",
                         "Staff accounts, pharmacy settings, the audit trail and backups.",
                         parent)
        self.tabs = QTabWidget()
        self.tabs.setObjectName("adminTabs")
        self.body.addWidget(self.tabs, 1)

        # Staff ---------------------------------------------------------------
        page = QWidget()
        lay = QVBoxLayout(page)
        row = QHBoxLayout()
        add = QPushButton("Add staff member…")
        add.setObjectName("addStaff")
        add.clicked.connect(self.add_staff)
        self.toggle = QPushButton("Disable / enable")
        self.toggle.setObjectName("toggleStaff")
        self.toggle.clicked.connect(self.toggle_active)
        reset = QPushButton("Reset password…")
        reset.setObjectName("resetPassword")
        reset.clicked.connect(self.reset_password)
        unlock = QPushButton("Unlock sign-in")
        unlock.clicked.connect(self.unlock)
        for b in (add, self.toggle, reset, unlock):
            row.addWidget(b)
        add.setToolTip("Add staff member (Ctrl+N)")
        self.add_shortcut("actionAddStaff", QKeySequence.StandardKey.New, self.add_staff,
                          text="Add staff member…")
        self.add_shortcut("actionToggleStaff", None, self.toggle_active,
                          text="Disable / enable the selected account")
        self.add_shortcut("actionResetPassword", None, self.reset_password,
                          text="Reset the selected account's password…")
        self.add_shortcut("actionUnlockStaff", None, self.unlock,
                          text="Unlock the selected account's sign-in")
        row.addStretch(1)
        lay.addLayout(row)
        self.staff_model = ListTableModel(STAFF_COLUMNS, self)
        self.staff_table = make_table("staffTable")
        self.staff_table.setModel(self.staff_model)
        for i, c in enumerate(STAFF_COLUMNS):
            self.staff_table.setColumnWidth(i, c.width)
        lay.addWidget(self.staff_table, 1)
        self.tabs.addTab(page, "Staff")

        # Settings ------------------------------------------------------------
        sp = QWidget()
        sl = QVBoxLayout(sp)
        # two columns: the pharmacy (left), the rules of its practice (right)
        pharmacy_form, practice_form = form_layout(), form_layout()
        into = [pharmacy_form]
        self.fields: dict[str, QWidget] = {}

        def field(key: str, label: str, w: W) -> W:
            w.setObjectName(f"setting_{key}")
            self.fields[key] = w
            into[0].addRow(label, w)
            return w

        self.pharmacy_name = field("pharmacy_name", "Pharmacy &name:", QLineEdit())
        self.address = field("address", "&Address:", QLineEdit())
        self.phone = field("phone", "&Phone:", QLineEdit())
        self.dea = field("dea_number", "&DEA number:", QLineEdit())
        self.npi = field("npi", "N&PI:", QLineEdit())
        self.paper = QComboBox()
        self.paper.addItem("US Letter", PaperSize.LETTER)
        self.paper.addItem("A4", PaperSize.A4)
        field("paper_size", "Paper si&ze:", self.paper)
        self.lock_minutes = QSpinBox()
        self.lock_minutes.setRange(1, 240)
        unit_suffix(self.lock_minutes, "minute")
        field("auto_lock_minutes", "Auto-&lock after:", self.lock_minutes)
        into[0] = form = practice_form
        self.controlled_months = QSpinBox()
        self.controlled_months.setRange(1, CONTROLLED_MONTHS_MAX)  # 21 CFR 1306.22(a)
        unit_suffix(self.controlled_months, "month")
        field("controlled_validity_months", "Schedule III-V valid for:", self.controlled_months)
        self.rx_months = QSpinBox()
        self.rx_months.setRange(1, 24)
        unit_suffix(self.rx_months, "month")
        field("rx_validity_months", "Other prescriptions valid for:", self.rx_months)
        self.early = QSpinBox()
        self.early.setRange(1, 100)
        self.early.setSuffix(" % of days supply")
        field("early_refill_percent", "Refill due after:", self.early)
        self.controlled_early = QSpinBox()
        self.controlled_early.setRange(1, 100)
        self.controlled_early.setSuffix(" % of days supply")
        field("controlled_early_refill_percent", "Controlled refill due after:",
              self.controlled_early)
        self.geriatric = QSpinBox()
        self.geriatric.setRange(40, 120)
        self.geriatric.setSuffix(" years")
        field("geriatric_age", "Geriatric flags from:", self.geriatric)
        self.self_verify = QCheckBox("One pharmacist may fill and verify the same fill")
        self.self_verify.setToolTip("For a pharmacy with one pharmacist on duty. Both steps "
                                    "are still recorded, with the same name.")
        field("self_verify", "Verification:", self.self_verify)
        self.return_days = QSpinBox()
        self.return_days.setRange(1, 90)
        unit_suffix(self.return_days, "day")
        field("return_after_days", "Back to stock after:", self.return_days)
        self.id_check = QCheckBox("Record the ID seen when a controlled substance is "
                                  "picked up")
        field("id_check_controlled", "Controlled pickup:", self.id_check)
        self.discard_months = QSpinBox()
        self.discard_months.setRange(1, 12)
        unit_suffix(self.discard_months, "month")
        self.discard_months.setToolTip("The label's discard-by date: this long after the fill "
                                       "at most, and never after the lot's expiry.")
        field("discard_after_months", "Discard by, on labels:", self.discard_months)
        # one row: the longest Schedule II supply, and what happens above it
        self.cii_days = QSpinBox()
        self.cii_days.setObjectName("setting_schedule_ii_max_days")
        self.cii_days.setRange(1, 365)
        unit_suffix(self.cii_days, "day")
        self.cii_over = QComboBox()
        self.cii_over.setObjectName("setting_schedule_ii_over_limit")
        self.cii_over.addItem("longer: a pharmacist reviews it", "warn")
        self.cii_over.addItem("longer: refused", "refuse")
        tip = ("Federal law sets no limit on one Schedule II prescription (several written "
               "together: 90 days, 21 CFR 1306.12(b)); set your state's limit here.")
        self.cii_days.setToolTip(tip)
        self.cii_over.setToolTip(tip)
        self.fields["schedule_ii_max_days"] = self.cii_days
        self.fields["schedule_ii_over_limit"] = self.cii_over
        cii_row = QHBoxLayout()
        cii_row.setContentsMargins(0, 0, 0, 0)
        cii_row.addWidget(self.cii_days)
        cii_row.addWidget(self.cii_over, 1)
        cii_label = QLabel("Schedule &II supply up to:")
        cii_label.setBuddy(self.cii_days)
        form.addRow(cii_label, cii_row)
        columns = QHBoxLayout()
        for title, layout in (("Pharmacy", pharmacy_form), ("Prescriptions and dispensing",
                                                            practice_form)):
            box = QGroupBox(title)
            box.setLayout(layout)
            columns.addWidget(box, 1, Qt.AlignmentFlag.AlignTop)
        sl.addLayout(columns)
        self.settings_message = MessageLabel("settingsMessage")
        sl.addWidget(self.settings_message)
        save_row = QHBoxLayout()
        save_row.addStretch(1)
        self.save_settings_button = QPushButton("Save settings")
        self.save_settings_button.setObjectName("saveSettings")
        self.save_settings_button.clicked.connect(self.save_app_settings)
        save_row.addWidget(self.save_settings_button)
        sl.addLayout(save_row)
        sl.addStretch(1)
        scroll = QScrollArea()  # a small screen scrolls the settings, never grows the window
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        scroll.setWidget(sp)
        self.tabs.addTab(scroll, "Settings")

        # Backups -------------------------------------------------------------
        from ...services.context import Perm
        from .backups import BackupsPage

        self.audit: QWidget | None = None
        if ws.can(Perm.READ_AUDIT):
            from .audit import AuditPage

            self.audit = AuditPage(ws)
            self.tabs.addTab(self.audit, "Audit")
        self.backups: BackupsPage | None = None
        if ws.can(Perm.BACKUPS):
            self.backups = BackupsPage(ws)
            self.tabs.addTab(self.backups, "Backups")
            self.tabs.currentChanged.connect(self._tab_changed)
        self.current: settings.Settings | None = None
        self._site_fields: dict[str, str] = {}
        for key, value in ws.config.pharmacy.items():  # the site file's [pharmacy]
            name = {"name": "pharmacy_name"}.get(key, key)
            if name in self.fields and value:
                self._site_fields[name] = str(value)
        locked = set(ws.config.locked) | set(self._site_fields)
        if "pharmacy" in ws.config.locked:
            locked |= {"pharmacy_name", "address", "phone", "dea_number", "npi"}
        if ws.config.paper_size:
            locked.add("paper_size")
        for key in locked:
            w = self.fields.get(key)
            if w is not None:
                w.setEnabled(False)
                w.setToolTip("Set by your IT department (site configuration).")

    def activate(self) -> None:
        self.load()

    def _tab_changed(self, index: int) -> None:
        if self.backups is not None and self.tabs.widget(index) is self.backups \
                and not self.backups.loaded:
            self.backups.refresh()

    def load(self) -> None:
        self.ws.run(lambda: (staff.list_staff(self.ws.sf, self.ws.actor),
                             settings.get_settings(self.ws.sf)), self._loaded, self.show_error)

    def _loaded(self, data: tuple[list[staff.StaffInfo], settings.Settings]) -> None:
        people, s = data
        self.staff_model.set_rows(people)
        self.current = s
        self.pharmacy_name.setText(s.pharmacy_name)
        self.address.setText(s.address or "")
        self.phone.setText(s.phone or "")
        self.dea.setText(s.dea_number or "")
        self.npi.setText(s.npi or "")
        self.paper.setCurrentIndex(self.paper.findData(s.paper_size))
        self.lock_minutes.setValue(s.auto_lock_minutes)
        self.controlled_months.setValue(s.controlled_validity_months)
        self.rx_months.setValue(s.rx_validity_months)
        self.early.setValue(s.early_refill_percent)
        self.controlled_early.setValue(s.controlled_early_refill_percent)
        self.geriatric.setValue(s.geriatric_age)
        self.self_verify.setChecked(s.self_verify)
        self.return_days.setValue(s.return_after_days)
        self.id_check.setChecked(s.id_check_controlled)
        self.discard_months.setValue(s.discard_after_months)
        self.cii_days.setValue(s.schedule_ii_max_days)
        self.cii_over.setCurrentIndex(max(self.cii_over.findData(s.schedule_ii_over_limit), 0))
        # what the site file presets is what this workstation's reports show
        for key, value in self._site_fields.items():
            w = self.fields[key]
            if isinstance(w, QLineEdit):
                w.setText(value)
        if self.ws.config.paper_size:
            i = self.paper.findData(PaperSize(str(self.ws.config.paper_size).lower())) \
                if str(self.ws.config.paper_size).lower() in ("letter", "a4") else -1
            if i >= 0:
                self.paper.setCurrentIndex(i)

    def _selected(self) -> staff.StaffInfo | None:
        rows = self.staff_table.selectionModel().selectedRows()
        return self.staff_model.row_at(rows[0].row()) if rows else None

    def add_staff(self) -> None:
        dlg = StaffEditor(self.ws, self)
        dlg.saved.connect(lambda _s: self.load())
        dlg.open()

    def toggle_active(self) -> None:
        who = self._selected()
        if who is None:
            return
        def done(s: staff.StaffInfo) -> None:
            self.load()
            self.ws.tell(f"{'Enabled' if s.active else 'Disabled'} the account of "
                         f"{s.full_name} ({s.username})")

        self.ws.run(lambda: staff.set_active(self.ws.sf, self.ws.actor, who.id, not who.active,
                                             expected_version=who.version),
                    done, self.show_error)

    def reset_password(self) -> None:
        who = self._selected()
        if who is None:
            return
        pw, ok = QInputDialog.getText(self, "Reset password",
                                      f"New temporary password for {who.username} (they "
                                      "must change it at sign-in):", QLineEdit.EchoMode.Password)
        if not ok:
            return
        def done(_result: object) -> None:
            self.load()
            QMessageBox.information(self, "GetMeds", f"Password of {who.username} reset.")

        self.ws.run(lambda: staff.reset_password(self.ws.sf, self.ws.actor, who.id, pw),
                    done, self.show_error)

    def unlock(self) -> None:
        who = self._selected()
        if who is None:
            return
        self.ws.run(lambda: staff.unlock(self.ws.sf, self.ws.actor, who.username),
                    lambda _r: QMessageBox.information(
                        self, "GetMeds", f"{who.username} can sign in again."),
                    self.show_error)

    def save_app_settings(self) -> None:
        if self.current is None:
            return
        changes = dict(
            pharmacy_name=self.pharmacy_name.text(), address=self.address.text(),
            phone=self.phone.text(), dea_number=self.dea.text(), npi=self.npi.text(),
            paper_size=self.paper.currentData(), auto_lock_minutes=self.lock_minutes.value(),
            controlled_validity_months=self.controlled_months.value(),
            rx_validity_months=self.rx_months.value(),
            early_refill_percent=self.early.value(),
            controlled_early_refill_percent=self.controlled_early.value(),
            geriatric_age=self.geriatric.value(), self_verify=self.self_verify.isChecked(),
            return_after_days=self.return_days.value(),
            id_check_controlled=self.id_check.isChecked(),
            discard_after_months=self.discard_months.value(),
            schedule_ii_max_days=self.cii_days.value(),
            schedule_ii_over_limit=self.cii_over.currentData())
        # what IT's site file sets is not written into the shared database
        site = set(self._site_fields) | ({"paper_size"} if self.ws.config.paper_size else set())
        changes = {k: v for k, v in changes.items()
                   if k not in self.ws.config.locked and k not in site}
        version = self.current.version
        for w in self.fields.values():
            mark_invalid(w, False)
        self.ws.run(lambda: settings.update_settings(self.ws.sf, self.ws.actor, changes,
                                                     expected_version=version,
                                                     locked=self.ws.config.locked),
                    self._saved, self._failed)

    def _saved(self, s: settings.Settings) -> None:
        self.current = s
        self.settings_message.show_info("Settings saved.")
        self.ws.tell("Saved the pharmacy settings")
        self.ws.settings_changed.emit(s)

    def _failed(self, exc: BaseException) -> None:
        w = self.fields.get(getattr(exc, "field", None) or "")
        if w is not None:
            mark_invalid(w, True)
        self.settings_message.show_error(str(exc))
