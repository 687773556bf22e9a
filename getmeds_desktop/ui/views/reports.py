"""Reports: choose a report, give its parameters, generate in the background, then
open it in the system viewer or print it."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import platformdirs
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QComboBox,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ...services import clock, listing
from ...services.errors import ValidationError
from ..widgets.common import DateField, Picker
from ..widgets.forms import MessageLabel, form_layout, plural, unit_suffix
from ..workspace import Workspace
from .base import Area

if TYPE_CHECKING:
    from ...reports import ReportParams, ReportResult, ReportSpec
    from ..tasks import TaskState


def reports_folder() -> Path:
    docs = platformdirs.user_documents_dir() or str(Path.home())
    return Path(docs) / "GetMeds Reports"


class ReportsView(Area):
    def __init__(self, ws: Workspace, parent: QWidget | None = None) -> None:
        from ...reports import REPORTS

        super().__init__(ws, "Reports", "PDF reports for managers, made on this workstation.",
                         parent)
        # the label, the recall worklist and the DEA form worksheets come from their own
        # screens (a fill, a lot)
        self.specs = [s for s in REPORTS.values() if ws.can(s.perm)
                      and s.name not in ("label", "recall", "dea-41", "dea-106")]
        row = QHBoxLayout()
        self.list = QListWidget()
        self.list.setObjectName("reportList")
        self.list.setMaximumWidth(300)
        for spec in self.specs:
            item = QListWidgetItem(spec.title)
            item.setData(Qt.ItemDataRole.UserRole, spec.name)
            item.setToolTip(spec.description)
            self.list.addItem(item)
        row.addWidget(self.list)
        box = QGroupBox("Parameters")
        lay = QVBoxLayout(box)
        self.description = QLabel("")
        self.description.setWordWrap(True)
        lay.addWidget(self.description)
        form = form_layout()
        today = clock.today()
        self.start = DateField(today.replace(day=1), what="first day")
        self.start.setObjectName("reportFrom")
        self.end = DateField(today, what="last day")
        self.end.setObjectName("reportTo")
        self.days = QSpinBox()
        self.days.setObjectName("reportDays")
        self.days.setRange(1, 3650)
        self.days.setValue(90)
        unit_suffix(self.days, "day")
        self.schedule = QComboBox()
        self.schedule.setObjectName("reportSchedule")
        self.schedule.addItem("Schedule II", "II")
        self.schedule.addItem("Schedules III-V", "III-V")
        self.patient = Picker(ws, lambda t: listing.pick_patients(ws.sf, ws.actor, t),
                              "Type the patient's name")
        self.rows = {
            "period_from": ("&From:", self.start), "period_to": ("&To:", self.end),
            "days": ("Expiring &within:", self.days), "schedule": ("&Register:", self.schedule),
            "patient": ("&Patient:", self.patient),
        }
        self.labels: dict[str, QLabel] = {}
        for key, (text, w) in self.rows.items():
            label = QLabel(text)
            label.setBuddy(w)
            self.labels[key] = label
            form.addRow(label, w)
        lay.addLayout(form)
        buttons = QHBoxLayout()
        self.generate_button = QPushButton("Generate PDF")
        self.generate_button.setObjectName("generateReport")
        self.generate_button.setToolTip("Generate PDF (Ctrl+G)")
        self.generate_button.setDefault(True)
        self.generate_button.clicked.connect(self.generate)
        self.act_generate = self.add_shortcut("actionGenerateReport", "Ctrl+G",
                                              self.generate, text="Generate PDF")
        self.open_button = QPushButton("Open")
        self.open_button.setObjectName("openReport")
        self.open_button.clicked.connect(self.open_last)
        self.print_button = QPushButton("Print…")
        self.print_button.setObjectName("printReport")
        self.print_button.clicked.connect(self.print_last)
        for b in (self.generate_button, self.open_button, self.print_button):
            buttons.addWidget(b)
        self.act_open = self.add_shortcut("actionOpenReport", None, self.open_last,
                                          text="Open the last PDF")
        self.act_print = self.add_shortcut("actionPrintReport", None, self.print_last,
                                           text="Print the last PDF…")
        buttons.addStretch(1)
        lay.addLayout(buttons)
        self.message = MessageLabel("reportMessage")
        lay.addWidget(self.message)
        lay.addStretch(1)
        row.addWidget(box, 1)
        self.body.addLayout(row, 1)
        self.last: Path | None = None
        self._set_result_actions(False)
        self.list.currentRowChanged.connect(self._chosen)
        if self.specs:
            self.list.setCurrentRow(0)

    def current_spec(self) -> ReportSpec | None:
        row = self.list.currentRow()
        return self.specs[row] if 0 <= row < len(self.specs) else None

    def _chosen(self, _row: int) -> None:
        spec = self.current_spec()
        if spec is None:
            return
        # another report: the last one's result and buttons go
        self.last = None
        self._set_result_actions(False)
        self.message.clear_message()
        self.description.setText(spec.description)
        needs = spec.needs
        visible = {"period_from": "period" in needs, "period_to": "period" in needs,
                   "days": "days" in needs, "schedule": "schedule" in needs,
                   "patient": "patient" in needs}
        for key, (_t, w) in self.rows.items():
            w.setVisible(visible[key])
            self.labels[key].setVisible(visible[key])

    def choose(self, name: str) -> None:
        for i, spec in enumerate(self.specs):
            if spec.name == name:
                self.list.setCurrentRow(i)

    def params(self) -> ReportParams:
        from ...reports import ReportParams

        return ReportParams(
            start=self.start.value(), end=self.end.value(), days=self.days.value(),
            schedule=self.schedule.currentData(),
            patient_id=self.patient.choice.id if self.patient.choice else None)

    def generate(self) -> None:
        from ...reports import generate

        spec = self.current_spec()
        if spec is None or not self.generate_button.isEnabled():
            return
        stamp = clock.local(clock.now()).strftime("%Y%m%d-%H%M%S")
        out = reports_folder() / f"{spec.name}-{stamp}.pdf"
        try:
            params = self.params()
        except ValidationError as exc:  # a date that is not one
            self.message.show_error(str(exc))
            return
        self._set_generating(True)
        self.message.show_info(f"Generating the {spec.title.lower()}…")
        sf, actor, site = self.ws.report_sf, self.ws.actor, self.ws.report_site

        def work(state: TaskState) -> ReportResult:
            return generate(sf, actor, spec.name, params, out, site=site,
                            progress=lambda page: state.progress(
                                f"Writing page {page}…"))

        self.ws.run(work, lambda result: self._done(spec.name, result), self._failed,
                    label=f"Generating {spec.title}…", parent=self, lane="io")

    def _set_generating(self, busy: bool) -> None:
        self.generate_button.setEnabled(not busy)
        self.act_generate.setEnabled(not busy)

    def _set_result_actions(self, enabled: bool) -> None:
        for w in (self.open_button, self.print_button, self.act_open, self.act_print):
            w.setEnabled(enabled)

    def _done(self, name: str, result: ReportResult) -> None:
        self._set_generating(False)
        current = self.current_spec()
        if current is None or current.name != name:
            return  # the user chose another report meanwhile
        self.last = result.path
        self._set_result_actions(True)
        self.message.show_info(f"{plural(result.pages, 'page')} written to {result.path}")

    def _failed(self, exc: BaseException) -> None:
        self._set_generating(False)
        self.message.show_error(str(exc))

    def open_last(self) -> None:
        from ..printing import open_pdf

        if self.last is not None and not open_pdf(self.last):
            self.message.show_error(f"No PDF viewer could open {self.last}.")

    def print_last(self) -> None:
        from ..printing import print_pdf

        if self.last is not None:
            print_pdf(self.last, self)


def print_label(ws: Workspace, dispense_id: uuid.UUID, parent: QWidget,
                reprint_reason: str | None = None) -> None:
    """Record the print (a reprint with its reason), make the label PDF in the
    background, then print it on a 4 x 2.5 in page."""
    from ...reports import ReportParams, generate
    from ...sync.outbox import Kind, LabelPrintRequest
    from ..printing import print_pdf

    out = reports_folder() / "labels" / f"label-{dispense_id}.pdf"
    actor, site = ws.actor, ws.report_site
    request = LabelPrintRequest(dispense_id, reprint=reprint_reason is not None,
                                reason=reprint_reason)

    def work() -> Any:
        # recorded on the server, or while it cannot be reached on the offline
        # copy and queued (a fill made offline needs its label too)
        ws.perform(Kind.LABEL, request)
        return generate(ws.sf, actor, "label", ReportParams(dispense_id=dispense_id), out,
                        site=site)

    ws.run(work,
           lambda r: print_pdf(r.path, parent, label_inches=(4.0, 2.5)),
           lambda exc: __import__("PySide6.QtWidgets", fromlist=["QMessageBox"]).QMessageBox
           .warning(parent, "GetMeds", str(exc)), label="Preparing the label…", parent=parent,
           lane="io")


__all__ = ["ReportsView", "dt", "print_label", "reports_folder"]
