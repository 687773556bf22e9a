"""A recalled lot's patients and the worklist of telling them (services.recalls)."""

from __future__ import annotations

import uuid

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ...errors import GetMedsError
from ...services import clock, recalls
from ...services.context import Perm
from ...services.recalls import RecallList, RecallRecipient
from ..style import EXPIRED_FG
from ..tablemodels.models import day, local_time
from ..tablemodels.paged import ALIGN_RIGHT, Column, ListTableModel
from ..views.base import fit_columns, make_table
from ..widgets.forms import MessageLabel
from ..workspace import Workspace


def _state(r: RecallRecipient) -> str:
    if r.returned:
        return "Returned to stock (not received)"
    if r.not_handed_out:
        return "In the pharmacy: pull it"
    if r.notices:
        last = r.notices[-1]
        return f"Told {day(clock.local(last.at).date())} ({recalls.METHODS[last.method]})"
    if r.patient_told:
        return "Told (for another fill)"
    return "To contact"


COLUMNS: list[Column[RecallRecipient]] = [
    Column("patient", "Patient", lambda r: r.patient, width=170),
    Column("born", "Born", lambda r: day(r.born), width=95),
    Column("phone", "Phone", lambda r: r.phone or "none on file", width=120),
    Column("address", "Address", lambda r: r.address or "none on file", width=220,
           stretch=True),
    Column("rx", "Rx #", lambda r: r.rx_number, align=ALIGN_RIGHT, width=75),
    Column("fill", "Fill", lambda r: r.fill_label, width=80),
    Column("when", "Dispensed", lambda r: local_time(r.dispensed_at), width=135),
    Column("qty", "Qty", lambda r: f"{r.quantity:,}", align=ALIGN_RIGHT, width=55),
    Column("state", "Notice", _state, width=190,
           foreground=lambda r: EXPIRED_FG if r.to_contact or r.not_handed_out else None,
           tooltip=lambda r: "\n".join(f"{local_time(n.at)} {n.by} ({recalls.METHODS[n.method]})"
                                       f": {n.outcome}" for n in r.notices) or None),
]


class RecallDialog(QDialog):
    """Every patient who received the lot; record each notice; print the list."""

    def __init__(self, ws: Workspace, lot_id: uuid.UUID, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ws = ws
        self.lot_id = lot_id
        self.data: RecallList | None = None
        self.setObjectName("recallDialog")
        self.setWindowTitle("Patients who received the lot")
        self.resize(1180, 560)
        root = QVBoxLayout(self)
        self.header = QLabel("Loading…")
        self.header.setObjectName("recallHeader")
        self.header.setTextFormat(Qt.TextFormat.RichText)
        self.header.setWordWrap(True)
        root.addWidget(self.header)
        self.model = ListTableModel(COLUMNS, self)
        self.table = make_table("recallTable")
        self.table.setModel(self.model)
        fit_columns(self.table, COLUMNS)
        self.table.horizontalHeader().setSortIndicatorShown(False)  # not sortable
        root.addWidget(self.table, 1)
        self.table.selectionModel().selectionChanged.connect(lambda *_: self._update())
        form = QFormLayout()
        row = QWidget()
        lay = QHBoxLayout(row)
        lay.setContentsMargins(0, 0, 0, 0)
        self.method = QComboBox()
        self.method.setObjectName("noticeMethod")
        for key, label in recalls.METHODS.items():
            self.method.addItem(label, key)
        lay.addWidget(self.method)
        self.outcome = QLineEdit()
        self.outcome.setObjectName("noticeOutcome")
        self.outcome.setMaxLength(300)
        self.outcome.setPlaceholderText("What was said or agreed (e.g. told to stop, "
                                        "replacement ready Friday)")
        self.outcome.textChanged.connect(lambda _t: self._update())
        lay.addWidget(self.outcome, 1)
        self.record = QPushButton("&Record notice")
        self.record.setObjectName("recordNotice")
        self.record.clicked.connect(self.record_notice)
        lay.addWidget(self.record)
        form.addRow("Told the selected patient:", row)
        root.addLayout(form)
        self.message = MessageLabel("recallMessage")
        root.addWidget(self.message)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.print_button = buttons.addButton("&Print worklist…",
                                              QDialogButtonBox.ButtonRole.ActionRole)
        self.print_button.setObjectName("printRecall")
        self.print_button.clicked.connect(self.print_list)
        buttons.rejected.connect(self.reject)
        root.addWidget(buttons)
        self._busy = False
        self._update()
        self.reload()

    def reload(self) -> None:
        self.ws.run(lambda: recalls.recipients(self.ws.sf, self.ws.actor, self.lot_id),
                    self._loaded, self._failed, parent=self)

    def _loaded(self, data: RecallList) -> None:
        self.data = data
        selected = self.selected()
        self.model.set_rows(data.rows)
        pull = sum(r.not_handed_out for r in data.rows)
        self.header.setText(
            f"<b>{data.product}</b> · lot <b>{data.lot_number}</b> · expires "
            f"{day(data.expiry_date)} · {data.status.value.capitalize()}"
            + (f" ({data.reason})" if data.reason else "")
            + f"<br>{data.patients:,} patient{'s' if data.patients != 1 else ''} received it · "
            f"<b>{data.outstanding:,} not yet told</b>"
            + (f" · <b>{pull:,} fill(s) still in the pharmacy: pull them</b>" if pull else ""))
        again = next((i for i, r in enumerate(data.rows)
                      if selected is not None and r.dispense_id == selected.dispense_id), None)
        if again is not None:
            self.table.selectRow(again)
        else:
            first = next((i for i, r in enumerate(data.rows) if r.to_contact), None)
            if first is not None:
                self.table.selectRow(first)
        self._update()

    def selected(self) -> RecallRecipient | None:
        rows = self.table.selectionModel().selectedRows()
        return self.model.row_at(rows[0].row()) if rows else None

    def _update(self) -> None:
        r = self.selected()
        recalled = self.data is not None and self.data.status.value == "recalled"
        ok = (r is not None and not r.returned and recalled and not self._busy
              and self.ws.can(Perm.WRITE_PATIENTS) and bool(self.outcome.text().strip()))
        self.record.setEnabled(ok)
        self.record.setToolTip("" if ok else (
            "Recall the lot first (Quarantine or recall)." if not recalled else
            "Select a patient and say what was said or agreed."))

    def record_notice(self) -> None:
        r = self.selected()
        if r is None or not self.record.isEnabled():
            return
        self._busy = True
        self._update()
        sf, actor, lot, did = self.ws.sf, self.ws.actor, self.lot_id, r.dispense_id
        method, outcome = self.method.currentData(), self.outcome.text()

        def done(_info: recalls.RecallNoticeInfo) -> None:
            self._busy = False
            self.outcome.clear()
            self.ws.tell(f"Recall notice recorded for {r.patient}")
            self.reload()

        self.ws.run(lambda: recalls.record_notice(sf, actor, lot, did, method, outcome), done,
                    self._failed, parent=self)

    def _failed(self, exc: BaseException) -> None:
        self._busy = False
        if not isinstance(exc, GetMedsError):
            raise exc
        self.message.show_error(str(exc))
        self._update()

    def print_list(self) -> None:
        from ...reports import ReportParams, ReportResult, generate
        from ..printing import open_pdf
        from ..views.reports import reports_folder

        stamp = clock.local(clock.now()).strftime("%Y%m%d-%H%M%S")
        out = reports_folder() / f"recall-{stamp}.pdf"
        sf, actor, site, lot = self.ws.sf, self.ws.actor, self.ws.report_site, self.lot_id
        def done(result: ReportResult) -> None:
            self.message.show_info(f"The worklist is in {result.path}")
            if not open_pdf(result.path):
                self.message.show_error(f"No PDF viewer could open {result.path}.")

        self.ws.run(lambda: generate(sf, actor, "recall", ReportParams(lot_id=lot), out,
                                     site=site),
                    done, self._failed, label="Preparing the worklist…", parent=self,
                    lane="io")


__all__ = ["RecallDialog"]
