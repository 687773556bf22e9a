"""Administration > Audit: who changed what and when, filtered, in words, with
PDF and CSV exports (services.audit reads it; the database's triggers wrote it)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from PySide6.QtWidgets import (
    QComboBox,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ...errors import DomainError
from ...services import audit, clock, listing, prescriptions, staff
from ..tablemodels.models import local_time
from ..tablemodels.paged import Column, ListTableModel
from ..tasks import TaskState
from ..widgets.common import DateField, Picker
from ..widgets.forms import MessageLabel
from ..workspace import Workspace
from .base import make_table

AUDIT_COLUMNS: list[Column[audit.AuditRow]] = [
    Column("when", "When", lambda r: local_time(r.occurred_at), width=140),
    Column("who", "Who", lambda r: r.who if r.who == r.db_user else f"{r.who} ({r.db_user})",
           width=150),
    Column("action", "Action", lambda r: r.action, width=80),
    Column("what", "What", lambda r: r.what, width=260),
    Column("changes", "Changes", lambda r: r.changes_text, width=520),
]
PAGE = 500


class AuditPage(QWidget):
    def __init__(self, ws: Workspace, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ws = ws
        self.setObjectName("auditPage")
        sf, actor = ws.sf, ws.actor
        root = QVBoxLayout(self)
        filters = QGridLayout()
        filters.setColumnStretch(1, 1)
        filters.setColumnStretch(3, 1)
        period = QHBoxLayout()
        today = clock.today()
        self.start = DateField(today - dt.timedelta(days=7))
        self.start.setObjectName("auditFrom")
        self.end = DateField(today)
        self.end.setObjectName("auditTo")
        period.addWidget(self.start)
        period.addWidget(self.end)
        period.addStretch(1)
        self._place(filters, 0, 0, "Period (from, to):", period)
        self.staff = QComboBox()
        self.staff.setObjectName("auditStaff")
        self.staff.addItem("Everybody", None)
        self._place(filters, 0, 1, "Staff member:", self.staff)
        self.patient = Picker(ws, lambda t: listing.pick_patients(sf, actor, t),
                              "Any patient (type a name to choose one)")
        self._place(filters, 1, 0, "Patient:", self.patient)
        self.rx_number = QLineEdit()
        self.rx_number.setObjectName("auditRx")
        self.rx_number.setPlaceholderText("Any prescription (type its Rx number)")
        self._place(filters, 1, 1, "Prescription:", self.rx_number)
        self.product = Picker(ws, lambda t: listing.pick_products(sf, actor, t),
                              "Any product (type a name or NDC)")
        self._place(filters, 2, 0, "Product:", self.product)
        self.table_choice = QComboBox()
        self.table_choice.setObjectName("auditTable")
        self.table_choice.addItem("Every kind of record", None)
        for key, label in sorted(audit.TABLES.items(), key=lambda kv: kv[1]):
            self.table_choice.addItem(label, key)
        self._place(filters, 2, 1, "Record:", self.table_choice)
        root.addLayout(filters)
        buttons = QHBoxLayout()
        self.show_button = QPushButton("Show changes")
        self.show_button.setObjectName("auditShow")
        self.show_button.setDefault(True)
        self.show_button.clicked.connect(self.load)
        self.pdf_button = QPushButton("Export PDF…")
        self.pdf_button.setObjectName("auditPdf")
        self.pdf_button.clicked.connect(self.export_pdf)
        self.csv_button = QPushButton("Export CSV…")
        self.csv_button.setObjectName("auditCsv")
        self.csv_button.clicked.connect(self.export_csv)
        self.open_button = QPushButton("Open the PDF")
        self.open_button.setObjectName("auditOpenPdf")
        self.open_button.setEnabled(False)
        self.open_button.clicked.connect(self._open_pdf)
        self.last_pdf: Any = None
        for b in (self.show_button, self.pdf_button, self.open_button, self.csv_button):
            buttons.addWidget(b)
        buttons.addStretch(1)
        root.addLayout(buttons)
        self.message = MessageLabel("auditMessage")
        root.addWidget(self.message)
        self.model = ListTableModel(AUDIT_COLUMNS, self)
        self.table = make_table("auditTable")
        self.table.setModel(self.model)
        for i, c in enumerate(AUDIT_COLUMNS):
            self.table.setColumnWidth(i, c.width)
        self.table.horizontalHeader().setSectionResizeMode(
            len(AUDIT_COLUMNS) - 1, QHeaderView.ResizeMode.Stretch)
        self.table.setWordWrap(False)
        root.addWidget(self.table, 1)
        self._loaded_staff = False

    @staticmethod
    def _place(grid: QGridLayout, row: int, col: int, label: str, item: Any) -> None:
        from PySide6.QtCore import Qt
        from PySide6.QtWidgets import QLabel

        text = QLabel(label)
        text.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignTop)
        grid.addWidget(text, row, 2 * col)
        if isinstance(item, QWidget):
            grid.addWidget(item, row, 2 * col + 1, Qt.AlignmentFlag.AlignTop)
        else:
            grid.addLayout(item, row, 2 * col + 1, Qt.AlignmentFlag.AlignTop)

    # ---------------------------------------------------------------- filters

    def showEvent(self, event: Any) -> None:  # noqa: N802 - Qt's name
        super().showEvent(event)
        if not self._loaded_staff:
            self._loaded_staff = True
            sf, actor = self.ws.sf, self.ws.actor
            self.ws.run(lambda: staff.list_staff(sf, actor), self._staff_loaded,
                        lambda exc: self.message.show_error(str(exc)), parent=self)

    def _staff_loaded(self, rows: list[staff.StaffInfo]) -> None:
        for r in rows:
            self.staff.addItem(f"{r.full_name} ({r.username})", r.username)

    def _filter(self) -> audit.AuditFilter:
        """The filter as typed (GUI thread); the prescription number is looked
        up by the task (worker thread)."""
        return audit.AuditFilter(
            start=self.start.value(), end=self.end.value(), staff=self.staff.currentData(),
            patient_id=self.patient.choice.id if self.patient.choice else None,
            product_id=self.product.choice.id if self.product.choice else None,
            table=self.table_choice.currentData())

    def _rx_text(self) -> str:
        return self.rx_number.text().strip().removeprefix("Rx").strip()

    def _resolved(self, f: audit.AuditFilter, rx_text: str) -> audit.AuditFilter:
        """Worker thread: the Rx number typed, as the prescription's id."""
        if not rx_text:
            return f
        if not rx_text.isdigit():
            raise DomainError(f"'{rx_text}' is not an Rx number.", field="prescription")
        info = prescriptions.find_by_rx_number(self.ws.sf, self.ws.actor, int(rx_text))
        return dataclasses.replace(f, prescription_id=info.id)

    # ------------------------------------------------------------------ show

    def load(self) -> None:
        try:
            f, rx_text = self._filter(), self._rx_text()
        except DomainError as exc:
            self.message.show_error(str(exc))
            return
        sf, actor = self.ws.sf, self.ws.actor
        self.message.show_info("Reading the audit trail…")
        self.ws.run(lambda: audit.audit_page(sf, actor, self._resolved(f, rx_text), PAGE),
                    self._shown, self._failed, parent=self)

    def _shown(self, page: audit.AuditPage) -> None:
        self.model.set_rows(page.rows)
        if not page.total:
            self.message.show_info("No changes match.")
        elif page.total > len(page.rows):
            self.message.show_info(
                f"{page.total:,} changes match; the newest {len(page.rows):,} are shown. "
                "Narrow the filters, or export them all.")
        else:
            self.message.show_info(f"{page.total:,} change{'s' if page.total != 1 else ''} "
                                   "match.")

    def _failed(self, exc: BaseException) -> None:
        self.message.show_error(str(exc))

    # ---------------------------------------------------------------- export

    def export_csv(self) -> None:
        from PySide6.QtWidgets import QFileDialog

        from ..views.reports import reports_folder

        stamp = clock.local(clock.now()).strftime("%Y%m%d-%H%M%S")
        path, _ = QFileDialog.getSaveFileName(
            self, "Export the audit trail", str(reports_folder() / f"audit-{stamp}.csv"),
            "CSV files (*.csv)")
        if path:
            self.write_csv(path)

    def write_csv(self, path: str) -> None:
        from pathlib import Path

        f, rx_text = self._filter(), self._rx_text()
        sf, actor = self.ws.sf, self.ws.actor
        self.message.show_info("Writing the CSV file…")
        self.ws.run(lambda: audit.export_csv(sf, actor, self._resolved(f, rx_text), Path(path)),
                    lambda n: self.message.show_info(f"{n:,} changes written to {path}"),
                    self._failed, parent=self, lane="io")

    def export_pdf(self) -> None:
        from ...reports import ReportParams, generate
        from ..views.reports import reports_folder

        f, rx_text = self._filter(), self._rx_text()
        stamp = clock.local(clock.now()).strftime("%Y%m%d-%H%M%S")
        out = reports_folder() / f"audit-{stamp}.pdf"
        sf, actor, site = self.ws.sf, self.ws.actor, self.ws.report_site

        def work(state: TaskState) -> Any:
            g = self._resolved(f, rx_text)
            return generate(sf, actor, "audit", ReportParams(
                start=g.start, end=g.end, patient_id=g.patient_id, staff=g.staff,
                prescription_id=g.prescription_id, product_id=g.product_id, table=g.table),
                out, site=site, progress=lambda page: state.progress(f"Writing page {page}…"))

        self.message.show_info("Writing the PDF…")
        self.ws.run(work, self._pdf_done, self._failed, parent=self, lane="io")

    def _pdf_done(self, result: Any) -> None:
        self.last_pdf = result.path
        self.open_button.setEnabled(True)
        self.message.show_info(f"{result.pages} page{'s' if result.pages != 1 else ''} "
                               f"written to {result.path}")

    def _open_pdf(self) -> None:
        from ..printing import open_pdf

        if self.last_pdf is not None and not open_pdf(self.last_pdf):
            self.message.show_error(f"No PDF viewer could open {self.last_pdf}.")
