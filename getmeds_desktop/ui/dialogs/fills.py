"""The steps of a fill after it is filled: the pharmacist's verification, the
release to the patient, and the return to stock (services.fills)."""

from __future__ import annotations

import uuid
from typing import Any

from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import (
    QButtonGroup,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QRadioButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from ...enums import Counseling, ReturnReason, Role
from ...errors import GetMedsError
from ...services import fills, rxstate
from ...services.fills import FillDetail
from ...services.identifiers import format_ndc
from ..tablemodels.models import day, local_time
from ..widgets.forms import MessageLabel
from ..workspace import Workspace

_SEVERITY = {"severe": "Severe (stop)", "moderate": "Moderate", "mild": "Mild",
             "unknown": "Severity not known"}
_REASONS = {"prescriber_consulted": "Prescriber consulted",
            "patient_tolerated_before": "Patient tolerated it before",
            "benefit_outweighs_risk": "Benefit outweighs the risk",
            "allergy_record_outdated": "Allergy record outdated", "other": "Other"}


def _esc(text: object) -> str:
    return (str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"))


def _section(title: str, html: str, name: str) -> QGroupBox:
    box = QGroupBox(title)
    box.setObjectName(name)
    lay = QVBoxLayout(box)
    label = QLabel(html)
    label.setObjectName(f"{name}Text")
    label.setWordWrap(True)
    label.setTextFormat(Qt.TextFormat.RichText)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    lay.addWidget(label)
    return box


class _StepDialog(QDialog):
    """Loads the fill's detail in the background, then shows it."""

    step_done = Signal(object)  # fills.StepResult

    def __init__(self, ws: Workspace, dispense_id: uuid.UUID, title: str, name: str,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ws = ws
        self.dispense_id = dispense_id
        self.detail: FillDetail | None = None
        self._busy = False
        self.setObjectName(name)
        self.setWindowTitle(title)
        self.setModal(True)
        self.root = QVBoxLayout(self)
        self.header = QLabel("Loading the fill…")
        self.header.setObjectName(f"{name}Header")
        self.header.setWordWrap(True)
        self.header.setTextFormat(Qt.TextFormat.RichText)
        self.root.addWidget(self.header)
        self.message = MessageLabel(f"{name}Message")

    def load(self) -> None:
        self.ws.run(lambda: fills.fill_detail(self.ws.sf, self.ws.actor, self.dispense_id),
                    self._loaded, self._failed, parent=self)

    def _loaded(self, detail: FillDetail) -> None:
        self.detail = detail
        r = detail.row
        schedule = f" · <b>C-{r.schedule.value}</b>" if r.schedule.controlled else ""
        self.header.setText(
            f"<h3 style='margin:0'>Rx {r.rx_number} · {_esc(r.patient)}</h3>"
            f"{_esc(r.product)} · {r.quantity:,} {_esc(r.unit)} · {r.fill_label}{schedule}"
            f"<br>Filled by {_esc(r.filled_by)} at {local_time(r.filled_at)}"
            + (f" · verified by {_esc(r.verified_by)} at {local_time(r.verified_at)}"
               if r.verified_by else ""))
        self.show_detail(detail)

    def show_detail(self, detail: FillDetail) -> None:
        raise NotImplementedError

    def _failed(self, exc: BaseException) -> None:
        self._busy = False
        self.update_buttons()
        if not isinstance(exc, GetMedsError):
            self.message.show_error("This step could not be recorded; nothing was changed. "
                                    "The details are in the log.")
            raise exc  # a bug: the crash dialog, with the log's path
        self.message.show_error(str(exc))

    def update_buttons(self) -> None:
        pass

    def _run_step(self, fn: Any, label: str) -> None:
        if self._busy:
            return
        self._busy = True
        self.message.show_info(label)
        self.update_buttons()
        self.ws.run(fn, self._stepped, self._failed, label=label, parent=self)

    def _stepped(self, result: fills.StepResult) -> None:
        self._busy = False
        self.step_done.emit(result)
        self.accept()


class VerifyDialog(_StepDialog):
    """The pharmacist's final check: what was scanned, the lots taken, the
    label, the warnings and why they were overridden; then Verify (Enter) or
    Refuse (the fill goes back to stock)."""

    def __init__(self, ws: Workspace, dispense_id: uuid.UUID,
                 parent: QWidget | None = None) -> None:
        super().__init__(ws, dispense_id, "Verify fill", "verifyDialog", parent)
        self.resize(760, 700)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setObjectName("verifyScroll")
        self.sections = QWidget()
        self.sections_layout = QVBoxLayout(self.sections)
        self.sections_layout.setContentsMargins(0, 0, 0, 0)
        scroll.setWidget(self.sections)
        self.root.addWidget(scroll, 1)
        refuse_row = QHBoxLayout()
        self.refuse_note = QLineEdit()
        self.refuse_note.setObjectName("refuseNote")
        self.refuse_note.setPlaceholderText("To refuse: what is wrong (for example \"wrong "
                                            "strength picked\")")
        self.refuse_note.textChanged.connect(lambda _t: self.update_buttons())
        # Enter in the note refuses (when the note says enough), never verifies
        self.refuse_note.installEventFilter(self)
        refuse_row.addWidget(self.refuse_note, 1)
        self.refuse_button = QPushButton("&Refuse and return to stock")
        self.refuse_button.setObjectName("refuseFill")
        self.refuse_button.setAutoDefault(False)
        self.refuse_button.clicked.connect(self.refuse)
        refuse_row.addWidget(self.refuse_button)
        self.root.addLayout(refuse_row)
        self.root.addWidget(self.message)
        buttons = QDialogButtonBox()
        self.verify_button = buttons.addButton("&Verify", QDialogButtonBox.ButtonRole.AcceptRole)
        self.verify_button.setObjectName("verifyFill")
        self.verify_button.setDefault(True)
        self.verify_button.setEnabled(False)
        buttons.addButton(QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.verify)
        buttons.rejected.connect(self.reject)
        self.root.addWidget(buttons)
        self.update_buttons()
        self.load()

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt API
        if obj is self.refuse_note and event.type() == QEvent.Type.KeyPress \
                and isinstance(event, QKeyEvent) \
                and event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            if self.refuse_button.isEnabled():
                self.refuse()
            return True  # consumed: the dialog's default button (Verify) never sees it
        return super().eventFilter(obj, event)

    def show_detail(self, detail: FillDetail) -> None:
        lay = self.sections_layout
        while lay.count():
            item = lay.takeAt(0)
            old = item.widget() if item is not None else None
            if old is not None:
                old.deleteLater()
        r = detail.row
        prescribed = (f"Prescribed: <b>{_esc(detail.prescribed_product)}</b> · quantity "
                      f"{detail.prescribed_quantity:,} · DAW "
                      f"{_esc(rxstate.daw_label(detail.daw_code))}")
        if detail.substituted:
            prescribed += (f"<br><span style='color:#9a3412'><b>Dispensed instead:</b> "
                           f"{_esc(r.product)} (the same drug, another package)</span>")
        if detail.owed_after:
            prescribed += (f"<br><b>Partial fill:</b> {detail.owed_after:,} owed"
                           + (f" ({_esc(detail.partial_reason.replace('_', ' '))})"
                              if detail.partial_reason else ""))
        lay.addWidget(_section("Prescription", (
            f"<b>{_esc(detail.sig)}</b><br>{prescribed}<br>Prescriber: "
            f"{_esc(detail.prescriber)} · days supply of this fill {detail.days_supply} · "
            f"patient born {day(detail.born)}"), "verifyPrescription"))
        if detail.scan_text:
            scan = (f"Scanned: <b>{_esc(detail.scan_text)}</b>"
                    + (f" · lot {_esc(detail.scan_lot)}" if detail.scan_lot else "")
                    + (f" · expiry {day(detail.scan_expiry)}" if detail.scan_expiry else ""))
        else:
            scan = ("<span style='color:#9a3412'><b>Not scanned.</b></span> Reason given: "
                    f"{_esc(detail.no_scan_reason or 'none')}")
        lots = "<br>".join(f"Lot <b>{_esc(x.lot_number)}</b> · expires "
                           f"{day(x.expiry_date)} · {x.quantity:,}" for x in detail.lots)
        lay.addWidget(_section(
            "Package and lots",
            f"{scan}<br>NDC on file: {format_ndc(detail.ndc) or 'none'}<br>{lots}",
            "verifyScan"))
        label = (f"{_esc(r.patient)}<br>{_esc(detail.sig)}<br><b>{_esc(r.product)}</b> · "
                 f"Qty {r.quantity:,} ({_esc(r.unit)})<br>Prescriber: "
                 f"{_esc(detail.prescriber)}<br>"
                 + (f"Printed {detail.labels_printed} time"
                    f"{'s' if detail.labels_printed != 1 else ''}" if detail.labels_printed
                    else "<span style='color:#9a3412'><b>No label printed yet.</b></span>"))
        lay.addWidget(_section("Label", label, "verifyLabel"))
        if detail.overrides:
            def said(o: fills.StoredOverride) -> str:
                kind = o.kind.replace("_", " ").capitalize()
                text = o.detail.removeprefix(f"{kind}: ")  # the kind is said already
                return (f"<b>{_esc(_SEVERITY.get(o.severity, o.severity))} · {_esc(kind)}</b>:"
                        f" {_esc(text)}")

            rows = "".join(
                f"<p style='margin:4px 0'>{said(o)}<br>"
                f"Went ahead: {_esc(_REASONS.get(o.reason_code or '', o.reason_code or ''))}"
                f" — \"{_esc(o.reason)}\" ({_esc(o.by)})</p>" for o in detail.overrides)
        else:
            rows = "Screening raised no warning at the fill."
        lay.addWidget(_section("Warnings and overrides", rows, "verifyWarnings"))
        lay.addStretch(1)
        self.message.clear_message()
        if self.ws.actor.practice is not Role.PHARMACIST:
            self.message.show_warning("Only a pharmacist verifies a fill.")
        elif detail.filled_by_id == self.ws.actor.staff_id and not detail.self_verify_allowed:
            self.message.show_warning(
                "You filled this prescription: another pharmacist verifies it (Settings can "
                "allow one pharmacist to do both).")
        self.update_buttons()

    def _may(self) -> bool:
        d = self.detail
        return (d is not None and not self._busy and self.ws.actor.practice is Role.PHARMACIST
                and (d.filled_by_id != self.ws.actor.staff_id or d.self_verify_allowed))

    def update_buttons(self) -> None:
        ok = self._may()
        self.verify_button.setEnabled(ok)
        self.refuse_button.setEnabled(ok and len(self.refuse_note.text().split()) >= 2)
        self.refuse_button.setToolTip("" if self.refuse_button.isEnabled() else
                                      "Say what is wrong first (at least two words).")

    def verify(self) -> None:
        if not self._may():
            return
        sf, actor, did = self.ws.sf, self.ws.actor, self.dispense_id
        self._run_step(lambda: fills.verify(sf, actor, did), "Verifying…")

    def refuse(self) -> None:
        if not self._may():
            return
        sf, actor, did, note = self.ws.sf, self.ws.actor, self.dispense_id, \
            self.refuse_note.text()
        self._run_step(lambda: fills.refuse(sf, actor, did, note),
                       "Returning the fill to stock…")


class ReleaseDialog(_StepDialog):
    """Hand the verified fill to the patient: the offer to counsel, and for a
    controlled substance the ID seen."""

    def __init__(self, ws: Workspace, dispense_id: uuid.UUID,
                 parent: QWidget | None = None) -> None:
        super().__init__(ws, dispense_id, "Release to the patient", "releaseDialog", parent)
        self.resize(640, 360)
        form = QFormLayout()
        offer = QWidget()
        row = QHBoxLayout(offer)
        row.setContentsMargins(0, 0, 0, 0)
        self.counseling = QButtonGroup(self)
        self.counsel_buttons: dict[Counseling, QRadioButton] = {}
        for c, text in ((Counseling.ACCEPTED, "&Accepted (counselled)"),
                        (Counseling.DECLINED, "&Declined"),
                        (Counseling.OFFERED, "&Offered, no answer")):
            b = QRadioButton(text)
            b.setObjectName(f"counsel_{c.value}")
            self.counseling.addButton(b)
            self.counsel_buttons[c] = b
            row.addWidget(b)
            b.toggled.connect(lambda _on: self.update_buttons())
        form.addRow("Offer to counsel:", offer)
        self.id_seen = QLineEdit()
        self.id_seen.setObjectName("idSeen")
        self.id_seen.setPlaceholderText("ID type and last 4 digits, e.g. Driver licence ...4821")
        self.id_seen.setMaxLength(100)
        self.id_seen.textChanged.connect(lambda _t: self.update_buttons())
        self.id_label = QLabel("ID &seen:")
        self.id_label.setBuddy(self.id_seen)
        form.addRow(self.id_label, self.id_seen)
        self.root.addLayout(form)
        self.hint = QLabel("The patient (or their caregiver) may decline counselling; the "
                           "offer is recorded either way.")
        self.hint.setObjectName("releaseHint")
        self.hint.setWordWrap(True)
        self.root.addWidget(self.hint)
        self.root.addStretch(1)
        self.root.addWidget(self.message)
        buttons = QDialogButtonBox()
        self.release_button = buttons.addButton("&Release",
                                                QDialogButtonBox.ButtonRole.AcceptRole)
        self.release_button.setObjectName("releaseFill")
        self.release_button.setDefault(True)
        buttons.addButton(QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.release)
        buttons.rejected.connect(self.reject)
        self.root.addWidget(buttons)
        self.update_buttons()
        self.load()

    def _needs_id(self) -> bool:
        d = self.detail
        return d is not None and d.controlled and d.id_check_controlled

    def show_detail(self, detail: FillDetail) -> None:
        self.id_seen.setVisible(self._needs_id())
        self.id_label.setVisible(self._needs_id())
        self.message.clear_message()
        if self._needs_id():
            self.message.show_info(f"A controlled substance (Schedule "
                                   f"{detail.row.schedule.value}): check the ID of the person "
                                   "picking it up.")
        self.counsel_buttons[Counseling.ACCEPTED].setFocus()
        self.update_buttons()

    def _choice(self) -> Counseling | None:
        return next((c for c, b in self.counsel_buttons.items() if b.isChecked()), None)

    def update_buttons(self) -> None:
        ok = (self.detail is not None and not self._busy and self._choice() is not None
              and (not self._needs_id() or bool(self.id_seen.text().strip())))
        self.release_button.setEnabled(ok)
        self.release_button.setToolTip("" if ok else "Choose the answer to the offer to "
                                       "counsel" + (" and record the ID seen"
                                                    if self._needs_id() else "") + ".")

    def release(self) -> None:
        choice = self._choice()
        if choice is None or self._busy:
            return
        sf, actor, did = self.ws.sf, self.ws.actor, self.dispense_id
        seen = self.id_seen.text() if self._needs_id() else None
        self._run_step(lambda: fills.release(sf, actor, did, counseling=choice,
                                             id_checked=seen), "Releasing…")


class ReturnDialog(_StepDialog):
    """A verified fill that did not reach the patient goes back to its lots."""

    def __init__(self, ws: Workspace, dispense_id: uuid.UUID,
                 parent: QWidget | None = None) -> None:
        super().__init__(ws, dispense_id, "Return to stock", "returnDialog", parent)
        self.resize(560, 320)
        form = QFormLayout()
        self.reason = QComboBox()
        self.reason.setObjectName("returnReason")
        for r in (ReturnReason.NOT_PICKED_UP, ReturnReason.PATIENT_DECLINED,
                  ReturnReason.OTHER):
            self.reason.addItem(r.label, r.value)
        self.reason.currentIndexChanged.connect(lambda _i: self.update_buttons())
        form.addRow("&Reason:", self.reason)
        self.note = QLineEdit()
        self.note.setObjectName("returnNote")
        self.note.setMaxLength(300)
        self.note.setPlaceholderText("Optional; required for Other")
        self.note.textChanged.connect(lambda _t: self.update_buttons())
        form.addRow("&Note:", self.note)
        self.root.addLayout(form)
        self.hint = QLabel("The packages go back to the lots they came from; the fill no "
                           "longer counts, so the prescription can be filled again.")
        self.hint.setWordWrap(True)
        self.root.addWidget(self.hint)
        self.root.addStretch(1)
        self.root.addWidget(self.message)
        buttons = QDialogButtonBox()
        self.return_button = buttons.addButton("Return to &stock",
                                               QDialogButtonBox.ButtonRole.AcceptRole)
        self.return_button.setObjectName("returnFill")
        self.return_button.setDefault(True)
        buttons.addButton(QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.send_back)
        buttons.rejected.connect(self.reject)
        self.root.addWidget(buttons)
        self.update_buttons()
        self.load()

    def show_detail(self, detail: FillDetail) -> None:
        self.message.clear_message()
        if detail.controlled and self.ws.actor.practice is not Role.PHARMACIST:
            self.message.show_warning("A controlled substance: a pharmacist returns it to "
                                      "stock.")
        self.update_buttons()

    def update_buttons(self) -> None:
        d = self.detail
        other = ReturnReason(self.reason.currentData()) is ReturnReason.OTHER
        ok = (d is not None and not self._busy
              and (not d.controlled or self.ws.actor.practice is Role.PHARMACIST)
              and (not other or bool(self.note.text().strip())))
        self.return_button.setEnabled(ok)

    def send_back(self) -> None:
        if not self.return_button.isEnabled():
            return
        sf, actor, did = self.ws.sf, self.ws.actor, self.dispense_id
        reason, note = ReturnReason(self.reason.currentData()), self.note.text() or None
        self._run_step(lambda: fills.return_to_stock(sf, actor, did, reason, note),
                       "Returning to stock…")


__all__ = ["ReleaseDialog", "ReturnDialog", "VerifyDialog"]
