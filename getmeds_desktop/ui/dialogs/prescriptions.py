"""New / edit prescription with type-ahead pickers, and the dispense dialog."""

from __future__ import annotations

import datetime as dt
import uuid

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QFrame,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ... import screening as sc
from ...enums import (
    AllergyStatus,
    OverrideReason,
    PartialReason,
    Role,
    Schedule,
    Severity,
    WarningKind,
)
from ...services import clock, dispensing, listing, prescriptions, rxstate
from ...services.context import Perm
from ...services.dispensing import (
    DispensePreview,
    DispenseRequest,
    DispenseResult,
    Override,
    SafetyWarning,
)
from ...services.errors import WarningsNeedAcknowledgement
from ...services.prescriptions import PrescriptionDraft, PrescriptionInfo
from ...sync.outbox import Kind, PrescriptionCreate
from ..tablemodels.models import day, schedule_label
from ..tablemodels.paged import ALIGN_RIGHT, Column, ListTableModel
from ..views.base import make_table
from ..widgets.common import DateField, FormDialog, Picker, ScanField
from ..widgets.forms import OFFLINE_TEXT, MessageLabel, form_layout, mark_invalid
from ..workspace import Workspace


class PrescriptionEditor(FormDialog):
    @property
    def offline_kind(self) -> Kind | None:
        """A new prescription may be entered offline; an edit waits for the server."""
        return Kind.PRESCRIPTION_CREATE if getattr(self, "rx", None) is None else None

    def __init__(self, ws: Workspace, rx: PrescriptionInfo | None = None, *,
                 patient: listing.Choice | None = None, parent: QWidget | None = None) -> None:
        super().__init__(ws, f"Edit Rx {rx.rx_number}" if rx else "New prescription",
                         "prescriptionEditor", parent)
        self.rx = rx
        self.request_id = uuid.uuid4()
        sf, actor = ws.sf, ws.actor
        self.patient = Picker(ws, lambda t: listing.pick_patients(sf, actor, t),
                              "Type the patient's name, date of birth or phone")
        self.add_field("patient_id", "&Patient:", self.patient, required=True)
        self.prescriber = Picker(ws, lambda t: listing.pick_prescribers(sf, actor, t),
                                 "Type the prescriber's name or NPI")
        self.add_field("prescriber_id", "P&rescriber:", self.prescriber, required=True)
        self.product = Picker(ws, lambda t: listing.pick_products(sf, actor, t),
                              "Type the product name or NDC")
        self.add_field("product_id", "Pro&duct:", self.product, required=True)
        # the prescribing checks as it is written: the patient's allergies and
        # what screening finds (shown, not stored; the fill screens again)
        self.screening = QLabel("")
        self.screening.setObjectName("prescribingScreening")
        self.screening.setWordWrap(True)
        self.screening.setTextFormat(Qt.TextFormat.PlainText)
        self.screening_area = QScrollArea()
        self.screening_area.setObjectName("prescribingScreeningArea")
        self.screening_area.setWidgetResizable(True)
        self.screening_area.setFrameShape(QFrame.Shape.NoFrame)
        self.screening_area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.screening_area.setWidget(self.screening)
        self.screening_area.setFixedHeight(120)
        self.screening_area.hide()
        self.form.addRow("", self.screening_area)
        self._screen_seq = 0
        self._screen_timer = QTimer(self)
        self._screen_timer.setSingleShot(True)
        self._screen_timer.setInterval(250)
        self._screen_timer.timeout.connect(self._screen)
        self.sig = QPlainTextEdit()
        self.sig.setFixedHeight(54)
        self.sig.setTabChangesFocus(True)
        self.add_field("sig", "&Directions:", self.sig, required=True)
        self.quantity = QSpinBox()
        self.quantity.setRange(0, 100000)
        self.add_field("quantity", "&Quantity:", self.quantity, required=True)
        self.days = QSpinBox()
        self.days.setRange(0, 400)
        self.days.setValue(30)
        self.add_field("days_supply", "Days &supply:", self.days)
        self.refills = QSpinBox()
        self.refills.setRange(0, 99)
        self.add_field("refills_authorized", "Re&fills:", self.refills,
                       "Schedule II: none. Schedule III-V: at most 5.")
        # the NCPDP product-selection (DAW) codes, with their meanings
        self.daw = QComboBox()
        for code, meaning in rxstate.DAW_CODES.items():
            self.daw.addItem(f"{code} - {meaning}", code)
        self.add_field("daw_code", "D&AW code:", self.daw,
                       "1, 2, 7 and 9: only the prescribed product is dispensed.")
        self.written = DateField(clock.today(), what="date written")
        self.add_field("date_written", "Date &written:", self.written, required=True)
        self.not_before = DateField(None, what="earliest fill date")
        self.add_field("not_before", "Do not fill &before:", self.not_before,
                       "Optional: the earliest fill date the prescriber wrote on it.")
        self.electronic = QCheckBox("Arrived as an electronic prescription")
        self.electronic.setChecked(True)
        self.add_field("electronic", "", self.electronic)
        self.notes = QLineEdit()
        self.add_field("notes", "&Notes:", self.notes)
        self.setMinimumWidth(560)
        if rx is not None:
            self._fill(rx)
            rid = rx.id
            self.watch_record("prescriptions", rid, rx.version,
                              lambda: prescriptions.get_prescription(sf, actor, rid))
        elif patient is not None:
            self.patient.set_choice(patient)
        if ws.actor.role is Role.DOCTOR:
            ws.run(lambda: listing.pick_prescribers(sf, actor, ""), self._own_prescriber)
        for picker in (self.patient, self.product):
            picker.chosen.connect(lambda _c: self._screen_timer.start())
        for spin in (self.quantity, self.days):
            spin.valueChanged.connect(lambda _v: self._screen_timer.start())
        self._screen_timer.start()
        self.patient.setFocus()

    def _screen(self) -> None:
        patient, product = self.patient.choice, self.product.choice
        self._screen_seq += 1
        if patient is None or product is None or not self.ws.actor.can(
                Perm.CREATE_PRESCRIPTIONS):
            self.screening_area.hide()
            return
        seq, sf, actor = self._screen_seq, self.ws.sf, self.ws.actor
        qty, days = self.quantity.value(), self.days.value()
        self.ws.run(lambda: prescriptions.screen_draft(sf, actor, patient.id, product.id, qty,
                                                       days),
                    lambda advice: self._show_advice(seq, advice),
                    lambda exc: self._advice_failed(seq, exc), parent=self)

    def _show_advice(self, seq: int, advice: prescriptions.PrescribingAdvice) -> None:
        if seq != self._screen_seq:
            return  # a later screening is on its way
        lines = []
        if advice.allergies:
            lines.append("Allergies: " + ", ".join(advice.allergies))
        elif advice.allergy_status is AllergyStatus.NO_KNOWN_ALLERGIES:
            lines.append("No known allergies.")
        for w in advice.warnings:
            level = "STOP (severe)" if w.is_stop else "Warning"
            lines.append(f"⚠ {level}: {w.message}")
        if not advice.warnings:
            lines.append("✓ No screening warnings for this prescription.")
        self.screening.setText("\n".join(lines))
        self.screening.setProperty("kind", "error" if any(w.is_stop for w in advice.warnings)
                                   else "warning" if advice.warnings else "info")
        self.screening.style().unpolish(self.screening)
        self.screening.style().polish(self.screening)
        self.screening_area.show()

    def _advice_failed(self, seq: int, exc: BaseException) -> None:
        if seq == self._screen_seq:
            self.screening.setText(f"Screening could not run: {exc}")
            self.screening.setProperty("kind", "warning")
            self.screening_area.show()

    def _fill(self, rx: PrescriptionInfo) -> None:
        self.patient.set_choice(listing.Choice(rx.patient_id, rx.patient_name))
        self.prescriber.set_choice(listing.Choice(rx.prescriber_id, rx.prescriber_name))
        self.product.set_choice(listing.Choice(rx.product_id, rx.product_name))
        self.sig.setPlainText(rx.sig)
        self.quantity.setValue(rx.quantity)
        self.days.setValue(rx.days_supply)
        self.refills.setValue(rx.refills_authorized)
        self.daw.setCurrentIndex(max(self.daw.findData(rx.daw_code), 0))
        self.written.set_date(rx.date_written)
        self.not_before.set_date(rx.not_before)
        self.electronic.setChecked(rx.electronic)
        self.notes.setText(rx.notes or "")

    def reload_record(self, info: PrescriptionInfo) -> None:
        self.rx = info
        self._fill(info)

    def _own_prescriber(self, choices: list[listing.Choice]) -> None:
        if choices:
            with self.filling():
                self.prescriber.set_choice(choices[0])
            self.prescriber.setEnabled(False)

    def collect(self) -> PrescriptionDraft:
        return PrescriptionDraft(
            patient_id=self.patient.choice.id if self.patient.choice else None,
            prescriber_id=self.prescriber.choice.id if self.prescriber.choice else None,
            product_id=self.product.choice.id if self.product.choice else None,
            sig=self.sig.toPlainText(), quantity=self.quantity.value(),
            days_supply=self.days.value(), refills_authorized=self.refills.value(),
            daw_code=int(self.daw.currentData()), date_written=self.written.value_or_none(),
            not_before=self.not_before.value_or_none(), electronic=self.electronic.isChecked(),
            notes=self.notes.text())

    def saved_text(self, result: PrescriptionInfo) -> str:
        return (f"Saved Rx {result.rx_number}: {result.quantity} x {result.product_name} "
                f"for {result.patient_name}")

    def save(self, draft: PrescriptionDraft) -> PrescriptionInfo:
        if self.rx is None:  # on the server, or offline on the offline copy, queued
            return self.ws.perform(Kind.PRESCRIPTION_CREATE,
                                   PrescriptionCreate(draft, request_id=self.request_id))
        return prescriptions.update_prescription(self.ws.sf, self.ws.actor, self.rx.id, draft,
                                                 expected_version=self.rx.version,
                                                 request_id=self.request_id)


class PrescriptionViewer(QDialog):
    """A prescription to read: for those who may not change it (a clerk), and
    for one that can no longer be changed (filled, cancelled)."""

    def __init__(self, rx: PrescriptionInfo, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("prescriptionViewer")
        self.setWindowTitle(f"Rx {rx.rx_number}")
        self.setMinimumWidth(520)
        root = QVBoxLayout(self)
        form = QFormLayout()
        sched = schedule_label(rx.schedule)
        rows = [
            ("Patient:", f"{rx.patient_name}, born {day(rx.patient_dob)}"),
            ("Prescriber:", rx.prescriber_name),
            ("Product:", rx.product_name + (f" · {sched}" if sched else "")
             + (f" · NDC {rx.ndc_display}" if rx.product_ndc else "")),
            ("Directions:", rx.sig),
            ("Quantity:", f"{rx.quantity} for {rx.days_supply} days"),
            ("Refills:", f"{rx.refills_left} left of {rx.refills_authorized}"),
            ("DAW code:", rx.daw_text),
            ("Written:", f"{day(rx.date_written)} (fillable until {day(rx.expires_on)})"
             + (", electronic" if rx.electronic else ", not electronic")),
            ("Do not fill before:", day(rx.not_before) if rx.not_before else "—"),
            ("Status:", rx.status.label + (f", {rx.owed_quantity} owed"
                                          if rx.owed_quantity else "")),
            ("Notes:", rx.notes or "—"),
            ("Entered by:", rx.created_by),
        ]
        if rx.prescriber_notice:
            rows.append(("Rest void, prescriber told:", rx.prescriber_notice))
        rows.extend(transfer_lines(rx))
        for label, value in rows:
            text = QLabel(value)
            text.setWordWrap(True)
            text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            form.addRow(label, text)
        root.addLayout(form)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        root.addWidget(buttons)


def transfer_lines(rx: PrescriptionInfo) -> list[tuple[str, str]]:
    """What the prescription's details show of its transfers."""
    out: list[tuple[str, str]] = []
    for t in rx.transfers:
        if t.direction == "out":
            out.append(("Transferred out:", t.summary))
        else:
            out.append(("Transferred in:", t.summary))
            if t.previous_refills:
                out.append(("Previous refills:", t.previous_refills))
            if t.original_pharmacy:
                out.append(("First filled at:", t.original_pharmacy))
    if not rx.transfers and rx.state.transferred:
        out.append(("Transferred out:", rx.state.transferred_text))
    return out


ALLOCATION_COLUMNS: list[Column[dispensing.Allocation]] = [
    Column("lot", "Lot", lambda a: a.lot_number, width=140),
    Column("expiry", "Expiry", lambda a: day(a.expiry_date), width=110),
    Column("qty", "Quantity", lambda a: a.quantity, align=ALIGN_RIGHT, width=90),
]


class DispenseDialog(QDialog):
    """Check, scan, acknowledge, confirm. Emits ``dispensed(DispenseResult)``."""

    dispensed = Signal(object)

    def __init__(self, ws: Workspace, prescription_id: uuid.UUID,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ws = ws
        self.prescription_id = prescription_id
        self.request_id = uuid.uuid4()  # one dispense, however often Confirm is pressed
        self.preview: DispensePreview | None = None
        self.scan_ok = False
        self._scanned_text: str | None = None
        self._dispensing = False
        self.reason_edits: dict[str, QLineEdit] = {}  # warning key -> its note
        self.reason_codes: dict[str, QComboBox] = {}  # warning key -> its coded reason
        self.reason_problems: dict[str, QLabel] = {}
        self._warnings: dict[str, SafetyWarning] = {}
        self.setObjectName("dispenseDialog")
        self.setWindowTitle("Dispense")
        self.setModal(True)
        self.resize(780, 740)
        self.root = QVBoxLayout(self)
        self.root.setSpacing(10)
        self.header = QLabel("Loading the prescription…")
        self.header.setObjectName("dispenseHeader")
        self.header.setWordWrap(True)
        self.root.addWidget(self.header)
        self.allergies = QLabel("")
        self.allergies.setObjectName("dispenseAllergies")
        self.allergies.setWordWrap(True)
        self.root.addWidget(self.allergies)
        self.details = QLabel("")
        self.details.setObjectName("dispenseDetails")
        self.details.setWordWrap(True)
        self.details.setTextFormat(Qt.TextFormat.RichText)
        self.root.addWidget(self.details)
        self.problem = MessageLabel("dispenseProblem")
        self.root.addWidget(self.problem)

        alloc = QGroupBox("Lots to pick (first expiring first)")
        al = QVBoxLayout(alloc)
        self.alloc_model = ListTableModel(ALLOCATION_COLUMNS, self)
        self.alloc_table = make_table("allocationTable")
        self.alloc_table.setModel(self.alloc_model)
        self.alloc_table.setMaximumHeight(120)
        for i, c in enumerate(ALLOCATION_COLUMNS):
            self.alloc_table.setColumnWidth(i, c.width)
        al.addWidget(self.alloc_table)
        self.stock_line = QLabel("")
        self.stock_line.setObjectName("stockLine")
        al.addWidget(self.stock_line)
        # less than is owed when the patient or the prescriber asks: the rest is owed
        self.fill_quantity = QSpinBox()
        self.fill_quantity.setObjectName("fillQuantity")
        self.fill_quantity.setRange(1, 1)
        self.fill_quantity.setToolTip("Dispense less than is owed when the patient or the "
                                      "prescriber asks; the rest is recorded as owed.")
        self.quantity_asked: int | None = None  # None: all that is owed
        self._quantity_timer = QTimer(self)
        self._quantity_timer.setSingleShot(True)
        self._quantity_timer.setInterval(300)
        self._quantity_timer.timeout.connect(self._quantity_changed)
        self.fill_quantity.valueChanged.connect(lambda _v: self._quantity_edited())
        qty_row = QHBoxLayout()
        qty_label = QLabel("Dispense &now:")
        qty_label.setBuddy(self.fill_quantity)
        qty_row.addWidget(qty_label)
        qty_row.addWidget(self.fill_quantity)
        qty_row.addStretch(1)
        al.addLayout(qty_row)
        self.partial = QCheckBox("Dispense what is available now and record the rest as owed")
        self.partial.setObjectName("partialFill")
        self.partial.hide()
        self.partial.toggled.connect(lambda _v: self._update_confirm())
        al.addWidget(self.partial)
        # Schedule II: why it is filled in part, which sets how long the rest may
        # be dispensed (21 CFR 1306.13)
        self.partial_reason = QComboBox()
        self.partial_reason.setObjectName("partialReason")
        for reason in PartialReason:
            self.partial_reason.addItem(reason.label, reason.value)
        self.partial_reason.hide()
        self.partial_reason_label = QLabel("Schedule II, filled in part because:")
        self.partial_reason_label.setBuddy(self.partial_reason)
        self.partial_reason_label.hide()
        al.addWidget(self.partial_reason_label)
        al.addWidget(self.partial_reason)
        # Schedule II: the rest that cannot be filled in time is void, and the
        # prescriber is told (21 CFR 1306.13(a))
        self.void_rest = QPushButton("The rest cannot be filled: record the prescriber "
                                     "notice…")
        self.void_rest.setObjectName("voidRemainder")
        self.void_rest.setAutoDefault(False)
        self.void_rest.hide()
        self.void_rest.clicked.connect(self._void_rest)
        al.addWidget(self.void_rest)
        # the prescribed package is short: another package of the same drug
        self.substitute = QComboBox()
        self.substitute.setObjectName("substitute")
        self.substitute.hide()
        self.substitute.activated.connect(self._substitute_chosen)
        al.addWidget(self.substitute)
        self.substitute_id: uuid.UUID | None = None
        self.root.addWidget(alloc)

        self.warnings_box = QGroupBox("Safety warnings: acknowledge each with a reason")
        self.warnings_box.setObjectName("warningsBox")
        # the warnings scroll (a patient on many medicines can have several);
        # wrapped text gets the height it needs inside the scroll area
        inner = QWidget()
        self.warnings_layout = QGridLayout(inner)
        self.warnings_layout.setContentsMargins(0, 0, 0, 0)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(inner)
        scroll.setMinimumHeight(200)
        QVBoxLayout(self.warnings_box).addWidget(scroll)
        self.warnings_box.hide()
        self.root.addWidget(self.warnings_box, 1)

        scan_box = QGroupBox("Product check")
        sl = form_layout()
        scan_box.setLayout(sl)
        self.scan = ScanField()
        self.scan.setObjectName("scanField")
        self.scan.setPlaceholderText("Scan the package barcode or type its NDC, then Enter")
        self.scan.scanned.connect(lambda _text: self._check_scan())
        sl.addRow("&Scan / NDC:", self.scan)
        self.scan_result = MessageLabel("scanResult")
        sl.addRow("", self.scan_result)
        self.no_scan = QCheckBox("This package cannot be scanned")
        self.no_scan.setObjectName("noScan")
        self.no_scan.toggled.connect(self._no_scan_toggled)
        self.no_scan_reason = QLineEdit()
        self.no_scan_reason.setObjectName("noScanReason")
        self.no_scan_reason.setPlaceholderText("Why (recorded with the fill): e.g. barcode "
                                               "damaged, checked the NDC by eye")
        self.no_scan_reason.setMaxLength(300)
        self.no_scan_reason.hide()
        self.no_scan_reason.textChanged.connect(lambda _t: self._update_confirm())
        sl.addRow("", self.no_scan)
        sl.addRow("", self.no_scan_reason)
        self.root.addWidget(scan_box)
        self.root.addStretch(1)

        self.offline = MessageLabel("dispenseOffline")
        self.root.addWidget(self.offline)
        self.message = MessageLabel("dispenseError")
        self.root.addWidget(self.message)
        self.buttons = QDialogButtonBox()
        self.confirm = self.buttons.addButton("Confirm dispense",
                                              QDialogButtonBox.ButtonRole.AcceptRole)
        self.confirm.setObjectName("confirmDispense")
        self.confirm.setEnabled(False)
        # A barcode scanner ends its scan with Enter: the scan field keeps that
        # key (ScanField), so a scan never also confirms. Ctrl+Enter does.
        self.confirm.setAutoDefault(False)
        self.confirm.setToolTip("Confirm dispense (Ctrl+Enter)")
        for keys in ("Ctrl+Return", "Ctrl+Enter"):
            QShortcut(QKeySequence(keys), self, self._confirm)
        self.buttons.addButton(QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(self._confirm)
        self.buttons.rejected.connect(self.reject)
        self.root.addWidget(self.buttons)
        self.scan.setFocus()
        ws.connection_state_changed.connect(self._connection_changed)
        self._connection_changed(ws.connection_state)
        self.load()

    def _connection_changed(self, state: str) -> None:
        if state == "connected":
            self.offline.clear_message()
        elif self.ws.writable(Kind.DISPENSE):
            self.offline.show_warning("Offline: this fill is made on this workstation's "
                                      "offline copy and sent to the server when it answers.")
        else:
            self.offline.show_warning(OFFLINE_TEXT)
        self._update_confirm()

    # --------------------------------------------------------------- loading

    def load(self, scan: str | None = None) -> None:
        """The service's preview of the fill; with ``scan``, its verdict on the
        scanned package too (the check at fill is the service's, not ours)."""
        qty = self.quantity_asked
        sf, actor, rx_id = self.ws.sf, self.ws.actor, self.prescription_id
        sub = self.substitute_id
        self.ws.run(lambda: dispensing.preview_dispense(sf, actor, rx_id, qty, scan=scan,
                                                        substitute=sub),
                    lambda p: self._show(p, scan), self._load_failed)

    def _quantity_edited(self) -> None:
        self._quantity_timer.start()  # a preview for the new quantity, once typing stops
        self._update_confirm()

    def _quantity_changed(self) -> None:
        p = self.preview
        if p is None:
            return
        value = self.fill_quantity.value()
        self.quantity_asked = None if value >= p.prescription.state.default_quantity() else value
        self.load()

    def _substitute_chosen(self, index: int) -> None:
        chosen = self.substitute.itemData(index)
        if chosen == self.substitute_id:
            return
        self.substitute_id = chosen
        self.scan_ok = False  # the package to scan is another one now
        self._scanned_text = None
        self.scan.clear()
        self.scan_result.clear_message()
        self.load()

    def _load_failed(self, exc: BaseException) -> None:
        self.header.setText("The prescription cannot be dispensed.")
        self.problem.show_error(str(exc))

    def _show(self, p: DispensePreview, scan: str | None = None) -> None:
        self.preview = p
        rx = p.prescription
        fill = ("original fill" if p.fill_number == 0 else f"refill {p.fill_number}") + (
            f", completing the owed {p.quantity}" if p.part > 1 else "")
        sched = f"  <b style='color:#6a1b9a'>{schedule_label(rx.schedule)}</b>" \
            if rx.schedule is not Schedule.NONE else ""
        self.setWindowTitle(f"Dispense Rx {rx.rx_number}")
        self.header.setText(f"<h3 style='margin:0'>Rx {rx.rx_number}: {rx.patient_name}</h3>"
                            f"born {day(rx.patient_dob)} · {fill}")
        if p.allergies:
            self.allergies.setText("Allergies: " + ", ".join(p.allergies))
            self.allergies.setProperty("kind", "error")
        elif p.allergy_status is AllergyStatus.NO_KNOWN_ALLERGIES:
            self.allergies.setText("No known allergies (the patient was asked).")
            self.allergies.setProperty("kind", "info")
        else:
            self.allergies.setText("Allergies not asked: ask the patient and record the "
                                   "answer on the patient's record.")
            self.allergies.setProperty("kind", "warning")
        self.allergies.style().unpolish(self.allergies)
        self.allergies.style().polish(self.allergies)
        self.details.setText(
            f"<b>{rx.product_name}</b>{sched} · NDC {rx.ndc_display or '—'}<br>"
            f"<i>{rx.sig}</i><br>Quantity <b>{p.quantity}</b>"
            + (f" of {rx.state.default_quantity()}"
               if p.quantity < rx.state.default_quantity() else "")
            + f" · {rxstate.proportional_days(rx.days_supply, rx.quantity, p.quantity)} days · "
            f"refills left {rx.refills_left} · {rx.prescriber_name} · written "
            f"{day(rx.date_written)} (valid to {day(rx.expires_on)})")
        if p.problem:
            self.problem.show_error(p.problem)
        elif p.refused_note:
            self.problem.show_warning(f"The last fill of this prescription was refused at "
                                      f"verification: {p.refused_note}")
        else:
            self.problem.clear_message()
        self.alloc_model.set_rows(p.allocations)
        if p.short:
            self.stock_line.setText(f"Only {p.available} available in dispensable lots: "
                                    f"{p.short} short.")
            self.stock_line.setProperty("kind", "warning")
            self.partial.setVisible(p.available > 0)
        else:
            self.partial.hide()
            self.stock_line.setText(f"{p.available} available in dispensable lots.")
            self.stock_line.setProperty("kind", "")
        if p.substitute is not None:
            self.stock_line.setText(
                f"Dispensing another package of the same drug instead: "
                f"{p.substitute.description}. Scan that package.")
            self.stock_line.setProperty("kind", "warning")
        self.stock_line.style().unpolish(self.stock_line)
        self.stock_line.style().polish(self.stock_line)
        wanted = rx.state.default_quantity()
        self.fill_quantity.blockSignals(True)
        self.fill_quantity.setRange(1, max(wanted, 1))
        self.fill_quantity.setValue(p.quantity)
        self.fill_quantity.blockSignals(False)
        schedule_ii = rx.schedule is Schedule.II
        asked_fewer = p.quantity < wanted and p.short == 0
        self.partial_reason.setVisible(schedule_ii and (not self.partial.isHidden()
                                                        or asked_fewer))
        self.partial_reason_label.setVisible(not self.partial_reason.isHidden())
        if asked_fewer and self.partial_reason.currentData() == PartialReason.SHORTAGE.value:
            self.partial_reason.setCurrentIndex(self.partial_reason.findData(
                PartialReason.PATIENT_REQUEST.value))
        self.void_rest.setVisible(schedule_ii and rx.state.completing
                                  and rx.state.remainder_void_at is None)
        self._show_substitutes(p)
        self._show_warnings(p)
        self.no_scan.setEnabled(not p.scan_required)
        self.no_scan.setToolTip("This pharmacy requires a scan for every fill."
                                if p.scan_required else "")
        if p.scan_required and self.no_scan.isChecked():
            self.no_scan.setChecked(False)
        if scan is not None:
            self._show_scan(p, scan)
        self._update_confirm()

    def _show_substitutes(self, p: DispensePreview) -> None:
        self.substitute.blockSignals(True)
        self.substitute.clear()
        if p.substitutes:
            self.substitute.addItem("As prescribed"
                                    + (f" ({p.prescription.ndc_display})"
                                       if p.prescription.ndc_display else ""), None)
            for option in p.substitutes:
                self.substitute.addItem(f"Instead: {option.description}", option.product_id)
            self.substitute.setCurrentIndex(max(self.substitute.findData(self.substitute_id),
                                                0))
        self.substitute.blockSignals(False)
        self.substitute.setVisible(bool(p.substitutes))

    def _show_warnings(self, p: DispensePreview) -> None:
        """One block per warning: what and why, a coded reason and a note. A
        severe warning (a stop) needs a pharmacist and a note of a few words;
        the rules are screening.decide_override's, checked as the user types
        and again by the service."""
        typed = {k: (self.reason_codes[k].currentData(), e.text())
                 for k, e in self.reason_edits.items() if k in self.reason_codes}
        while self.warnings_layout.count():
            item = self.warnings_layout.takeAt(0)
            widget = item.widget() if item is not None else None
            if widget is not None:
                widget.deleteLater()
        self.reason_edits.clear()
        self.reason_codes.clear()
        self.reason_problems.clear()
        self._warnings = {w.key: w for w in p.warnings}
        row = 0
        for i, w in enumerate(p.warnings):
            level = ("STOP (severe)" if w.is_stop else
                     "Warning (moderate)" if w.severity is Severity.MODERATE else "Note (mild)")
            text = QLabel(f"⚠ {level}: {w.message}")
            text.setObjectName(f"warningText_{i}")
            if w.sources:
                text.setToolTip("Source: " + "; ".join(w.sources))
            text.setWordWrap(True)
            text.setProperty("kind", "error" if w.is_stop else "warning")
            self.warnings_layout.addWidget(text, row, 0, 1, 2)
            row += 1
            if w.why:
                why = QLabel(f"Why: {w.why}")
                why.setWordWrap(True)
                why.setProperty("kind", "info")
                self.warnings_layout.addWidget(why, row, 0, 1, 2)
                row += 1
            code = QComboBox()
            code.setObjectName(f"warningCode_{i}")
            code.addItem("Choose a reason…", None)
            for reason in OverrideReason:
                if reason is OverrideReason.ALLERGY_RECORD_OUTDATED and w.kind not in (
                        WarningKind.ALLERGY, WarningKind.ALLERGIES_NOT_ASKED):
                    continue
                code.addItem(reason.label, reason.value)
            note = QLineEdit()
            note.setObjectName(f"warningReason_{i}")
            note.setMaxLength(500)
            note.setPlaceholderText(
                "Note (required): who was consulted and what they said" if w.is_stop
                else "Note (required for Other)")
            before = typed.get(w.key)
            if before is not None:
                code.setCurrentIndex(max(code.findData(before[0]), 0))
                note.setText(before[1])
            code.currentIndexChanged.connect(lambda _i: self._update_confirm())
            note.textChanged.connect(lambda _t: self._update_confirm())
            self.warnings_layout.addWidget(code, row, 0)
            self.warnings_layout.addWidget(note, row, 1)
            row += 1
            problem = QLabel("")
            problem.setObjectName(f"warningProblem_{i}")
            problem.setWordWrap(True)
            problem.setProperty("kind", "error")
            problem.hide()
            self.warnings_layout.addWidget(problem, row, 0, 1, 2)
            row += 1
            self.reason_codes[w.key] = code
            self.reason_edits[w.key] = note
            self.reason_problems[w.key] = problem
        self.warnings_layout.setColumnStretch(1, 1)
        self.warnings_box.setVisible(bool(p.warnings))

    def _ack_problem(self, key: str) -> str | None:
        """Why the acknowledgement of one warning is not (yet) accepted."""
        w = self._warnings.get(key)
        if w is None:
            return None
        code = self.reason_codes[key].currentData()
        if code is None:
            return "Choose a reason."
        decision = sc.decide_override(w.finding, self.ws.actor.role, code,
                                      self.reason_edits[key].text())
        return decision.problem

    def _acks_ok(self) -> bool:
        ok = True
        for key, label in self.reason_problems.items():
            problem = self._ack_problem(key)
            edited = (self.reason_codes[key].currentIndex() > 0
                      or bool(self.reason_edits[key].text()))
            label.setText(problem or "")
            label.setVisible(bool(problem) and edited)
            ok = ok and problem is None
        return ok

    # ---------------------------------------------------------------- checks

    def _check_scan(self) -> None:
        """The scanner's Enter: the service checks the package (right product, and
        a dispensable lot when the barcode names one)."""
        if self.preview is None:
            return
        text = self.scan.text()
        self.scan_ok = False
        self._scanned_text = None
        if not text.strip():
            return
        self.scan_result.show_info("Checking the package…")
        self._update_confirm()
        self.load(scan=text)

    def _show_scan(self, p: DispensePreview, scan: str) -> None:
        if p.scan_problem is not None:
            self.scan_ok = False
            self._scanned_text = None
            mark_invalid(self.scan, True)
            self.scan_result.show_error(p.scan_problem)
            return
        self.scan_ok = True
        self._scanned_text = scan
        mark_invalid(self.scan, False)
        self.no_scan.setChecked(False)
        self.scan_result.show_info(f"✓ {p.scanned} is the prescribed product.")
        nxt = next((self.reason_codes[k] for k in self.reason_edits
                    if self._ack_problem(k) is not None), None)
        (nxt or self.confirm).setFocus()

    def _no_scan_toggled(self, on: bool) -> None:
        self.no_scan_reason.setVisible(on)
        if on:
            self.no_scan_reason.setFocus()
        self._update_confirm()

    def _update_confirm(self) -> None:
        p = self.preview
        checked = self.scan_ok or (self.no_scan.isChecked() and p is not None
                                   and not p.scan_required
                                   and bool(self.no_scan_reason.text().strip()))
        acks_ok = self._acks_ok()  # always: it also shows each note's problem
        ok = (p is not None and p.problem is None and checked
              and self.ws.writable(Kind.DISPENSE)
              and not self._dispensing
              and acks_ok and self.fill_quantity.value() == p.quantity
              and not self._quantity_timer.isActive()
              and (p.short == 0 or (self.partial.isChecked() and p.available > 0)))
        self.confirm.setEnabled(ok)

    # --------------------------------------------------------------- confirm

    def _confirm(self) -> None:
        p = self.preview
        if p is None or not self.confirm.isEnabled():
            return
        req = DispenseRequest(
            prescription_id=self.prescription_id, request_id=self.request_id,
            quantity=self.quantity_asked, allow_partial=self.partial.isChecked(),
            acknowledgements={
                k: Override(self.reason_codes[k].currentData(), e.text())
                for k, e in self.reason_edits.items()},
            expected_version=p.prescription.version,
            scan=self._scanned_text if self.scan_ok else None,
            no_scan_reason=None if self.scan_ok else self.no_scan_reason.text(),
            substitute_product_id=self.substitute_id,
            partial_reason=(PartialReason(self.partial_reason.currentData())
                            if not self.partial_reason.isHidden() else None))
        self._dispensing = True
        self.confirm.setEnabled(False)
        self.message.show_info("Dispensing…")
        # on the server, or while it cannot be reached on the offline copy, queued
        # for the server (sync.offline; the [offline] setting decides)
        self.ws.run(lambda: self.ws.perform(Kind.DISPENSE, req), self._done,
                    self._failed, label="Dispensing…", parent=self)

    def _void_rest(self) -> None:
        p = self.preview
        if p is None:
            return
        rx = p.prescription
        notice = ask_reason(self, f"Rest of Rx {rx.rx_number} void",
                            f"The remaining {rx.owed_quantity} will not be dispensed. How and "
                            "when was the prescriber notified?")
        if notice is None:
            return
        sf, actor = self.ws.sf, self.ws.actor
        self.ws.run(lambda: prescriptions.void_remainder(sf, actor, rx.id, notice,
                                                         expected_version=rx.version),
                    self._voided, self._failed, parent=self)

    def _voided(self, info: PrescriptionInfo) -> None:
        self.message.show_info(f"Rx {info.rx_number}: the rest is void; the prescriber "
                               "notice is recorded.")
        self.load()

    def _done(self, result: DispenseResult) -> None:
        self._dispensing = False
        self.message.clear_message()
        self.dispensed.emit(result)
        self.accept()

    def _failed(self, exc: BaseException) -> None:
        self._dispensing = False
        self.message.show_error(str(exc))
        if isinstance(exc, WarningsNeedAcknowledgement):
            self.load()  # the warnings changed since the preview: show the new ones
        self._update_confirm()


def ask_reason(parent: QWidget, title: str, prompt: str) -> str | None:
    from PySide6.QtWidgets import QInputDialog

    text, ok = QInputDialog.getText(parent, title, prompt)
    return text if ok else None


__all__ = [
    "DispenseDialog",
    "PrescriptionEditor",
    "QFormLayout",
    "QMessageBox",
    "ask_reason",
    "dt",
]
