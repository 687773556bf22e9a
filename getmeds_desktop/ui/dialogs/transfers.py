"""Transfer a prescription out to another pharmacy, or enter one transferred in
(21 CFR 1306.25, 1306.08(e)-(i); services/transfers.py)."""

from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import (
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ...services import transfers
from ...services.identifiers import clean_dea
from ...services.prescriptions import PrescriptionInfo
from ...services.transfers import OtherPharmacy, TransferIn
from ..tablemodels.models import day, schedule_label
from ..widgets.common import DateField, FormDialog
from ..workspace import Workspace
from .prescriptions import PrescriptionEditor

OUT_INTRO = ("The transfer is communicated directly between you and the receiving "
             "pharmacist. Once recorded, this prescription is closed here: it cannot be "
             "filled here again. Schedule II: only an electronic prescription never filled, "
             "once (21 CFR 1306.08(e)). Schedule III-V: once only (21 CFR 1306.25(a)).")
IN_INTRO = ("Enter the prescription as the transferring pharmacist gives it: the date "
            "written is the original's (its validity counts from it), and it has only the "
            "refills remaining. Leave the date of original dispensing empty for a "
            "prescription never dispensed (an electronic controlled prescription transferred "
            "for its initial filling, 21 CFR 1306.08(e)).")


def _line(placeholder: str, max_len: int) -> QLineEdit:
    edit = QLineEdit()
    edit.setPlaceholderText(placeholder)
    edit.setMaxLength(max_len)
    return edit


class TransferOutDialog(FormDialog):
    """Where the prescription goes: the receiving pharmacy and pharmacist."""

    def __init__(self, ws: Workspace, rx: PrescriptionInfo,
                 parent: QWidget | None = None) -> None:
        super().__init__(ws, f"Transfer Rx {rx.rx_number} out", "transferOutDialog", parent,
                         save_text="Transfer out", intro=OUT_INTRO)
        self.rx = rx
        sched = schedule_label(rx.schedule)
        left = rx.refills_left
        what = QLabel(f"Rx {rx.rx_number}: {rx.product_name}" + (f" ({sched})" if sched else "")
                      + f"\nfor {rx.patient_name}, written {day(rx.date_written)}; "
                      + f"{left} refill{'s' if left != 1 else ''} left, "
                      + ("electronic" if rx.electronic else "not electronic"))
        what.setObjectName("transferOutRx")
        self.form.addRow("Prescription:", what)
        self.pharmacy = self.add_field("pharmacy_name", "Receiving &pharmacy:",
                                       _line("Name of the pharmacy", 200), required=True)
        self.address = self.add_field("pharmacy_address", "&Address:",
                                      _line("Street, city, state", 300), required=True)
        controlled = rx.schedule.controlled
        self.dea = self.add_field(
            "pharmacy_dea", "Its &DEA number:",
            _line("Two letters, seven digits" + ("" if controlled else " (optional)"), 20),
            required=controlled)
        self.pharmacist = self.add_field("other_pharmacist", "Receiving p&harmacist:",
                                         _line("Full name", 200), required=True)
        self.setMinimumWidth(600)
        self.pharmacy.setFocus()

    def collect(self) -> OtherPharmacy:
        dea = clean_dea(self.dea.text(), field="pharmacy_dea")  # checked here first
        return OtherPharmacy(name=self.pharmacy.text(), address=self.address.text(),
                             dea_number=dea, pharmacist=self.pharmacist.text())

    def submit(self) -> None:
        if self._saving or not self.ws.online:
            return
        answer = QMessageBox.question(
            self, "Transfer out",
            f"Transfer Rx {self.rx.rx_number} to {self.pharmacy.text().strip() or 'the pharmacy'}?"
            "\n\nIt is closed here and cannot be filled here again.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.No)
        if answer == QMessageBox.StandardButton.Yes:
            super().submit()

    def save(self, values: OtherPharmacy) -> PrescriptionInfo:
        return transfers.transfer_out(self.ws.sf, self.ws.actor, self.rx.id, values,
                                      expected_version=self.rx.version,
                                      request_id=self.request_id)

    def saved_text(self, result: PrescriptionInfo) -> str:
        return (f"Rx {result.rx_number} transferred to {result.state.transferred_to}: closed "
                "here")


class TransferInDialog(PrescriptionEditor):
    """A new prescription from another pharmacy's, with the original's details."""

    def __init__(self, ws: Workspace, parent: QWidget | None = None) -> None:
        super().__init__(ws, None, parent=parent)
        self.setObjectName("transferInDialog")
        self.setWindowTitle("Transfer in")
        self.ok_button.setText("Transfer in")
        self.ok_button.setObjectName("transferInDialogSave")
        intro = QLabel(IN_INTRO)
        intro.setObjectName("hint")
        intro.setWordWrap(True)
        self.root.insertWidget(0, intro)
        # the prescription's own refills are set from those remaining
        box = self.refills.parentWidget()
        if box is not None:
            self.form.setRowVisible(box, False)
        label = self.form.labelForField(self.written)
        if isinstance(label, QLabel):
            label.setText("Date &written (original)*:")
        # the prescription on the left, the other pharmacy and the original on the right
        index = self.root.indexOf(self.form)
        self.root.removeItem(self.form)
        columns = QHBoxLayout()
        columns.setSpacing(16)
        columns.addLayout(self.form, 5)
        right = QVBoxLayout()
        columns.addLayout(right, 4)
        self.root.insertLayout(index, columns)
        group = QGroupBox("From the transferring pharmacy")
        group.setObjectName("transferFrom")
        self.side = QFormLayout(group)
        self.side.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        right.addWidget(group)
        original = QGroupBox("The original prescription")
        original.setObjectName("transferOriginal")
        self.orig = QFormLayout(original)
        self.orig.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        right.addWidget(original)
        right.addStretch(1)
        self.pharmacy = self._side("pharmacy_name", "Pharmacy*:", _line("Name", 200))
        self.address = self._side("pharmacy_address", "Address*:",
                                  _line("Street, city, state", 300))
        self.dea = self._side("pharmacy_dea", "DEA number:",
                              _line("Required for a controlled substance", 20))
        self.pharmacist = self._side("other_pharmacist", "Pharmacist*:",
                                     _line("Who transferred it", 200))
        self.original_rx = self._side("original_rx_number", "Their Rx number*:",
                                      _line("As on their record", 40), self.orig)
        self.dispensed = DateField(None, what="date of original dispensing")
        self._side("original_dispensed_on", "First dispensed:", self.dispensed, self.orig)
        self.authorized = QSpinBox()
        self.authorized.setRange(0, 99)
        self._side("refills_authorized_original", "Refills authorized:", self.authorized,
                   self.orig)
        self.remaining = QSpinBox()
        self.remaining.setRange(0, 99)
        self._side("refills_remaining", "Refills remaining:", self.remaining, self.orig)
        self.previous = self._side("previous_refills", "Previous refills:",
                                   _line("Dates and where they were filled", 1000), self.orig)
        self.first_at = self._side("original_pharmacy", "First filled at:",
                                   _line("Only if not the transferring pharmacy", 500),
                                   self.orig)
        self.setMinimumWidth(1100)

    def _side(self, key: str, label: str, widget: Any, form: QFormLayout | None = None) -> Any:
        widget.setObjectName(f"field_{key}")
        (form or self.side).addRow(label, widget)
        self.fields[key] = widget
        return widget

    def collect(self) -> TransferIn:  # type: ignore[override]
        draft = super().collect()
        dea = clean_dea(self.dea.text(), field="pharmacy_dea")
        return TransferIn(
            draft=draft,
            pharmacy=OtherPharmacy(name=self.pharmacy.text(), address=self.address.text(),
                                   dea_number=dea, pharmacist=self.pharmacist.text()),
            original_rx_number=self.original_rx.text(),
            refills_authorized_original=self.authorized.value(),
            refills_remaining=self.remaining.value(),
            original_dispensed_on=self.dispensed.value_or_none(),
            previous_refills=self.previous.text(), original_pharmacy=self.first_at.text())

    def save(self, values: TransferIn) -> PrescriptionInfo:  # type: ignore[override]
        return transfers.transfer_in(self.ws.sf, self.ws.actor, values,
                                     request_id=self.request_id)

    def saved_text(self, result: PrescriptionInfo) -> str:
        return (f"Rx {result.rx_number} transferred in: {result.quantity} x "
                f"{result.product_name} for {result.patient_name}, {result.refills_left} "
                "refill(s) here")


__all__ = ["TransferInDialog", "TransferOutDialog"]
