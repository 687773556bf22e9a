"""Verify and pick up: fills waiting for a pharmacist's verification, and
verified fills waiting for the patient (services.fills)."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QShowEvent
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QWidget

from ...enums import FillStatus
from ...services import fills
from ...services.context import Perm
from ...services.fills import FillRow
from ..style import CONTROLLED_FG, EXPIRED_FG
from ..tablemodels.models import local_time
from ..tablemodels.paged import ALIGN_RIGHT, Column, ListTableModel
from ..workspace import Workspace
from .base import Area, fit_columns, make_table

COLUMNS: list[Column[FillRow]] = [
    Column("rx", "Rx #", lambda r: r.rx_number, align=ALIGN_RIGHT, width=80),
    Column("patient", "Patient", lambda r: r.patient, width=170),
    Column("product", "Product", lambda r: r.product, width=220, stretch=True,
           foreground=lambda r: CONTROLLED_FG if r.schedule.controlled else None,
           tooltip=lambda r: f"Schedule {r.schedule.value}" if r.schedule.controlled
           else None),
    Column("qty", "Quantity", lambda r: f"{r.quantity:,}", align=ALIGN_RIGHT, width=80),
    Column("fill", "Fill", lambda r: r.fill_label, width=80),
    Column("filled", "Filled", lambda r: local_time(r.filled_at), width=135),
    Column("filled_by", "Filled by", lambda r: r.filled_by, width=130),
    Column("verified_by", "Verified by", lambda r: r.verified_by or "", width=130,
           foreground=lambda r: EXPIRED_FG if r.overdue else None,
           tooltip=lambda r: (f"Verified {local_time(r.verified_at)}"
                              + ("; waiting longer than the pharmacy's pickup days: return it "
                                 "to stock (Ctrl+Shift+T)" if r.overdue else ""))
           if r.verified_at else None),
]


class FillsView(Area):
    def __init__(self, ws: Workspace, parent: QWidget | None = None) -> None:
        super().__init__(ws, "Verify and pick up",
                         "Fills waiting for a pharmacist's final check, and verified fills "
                         "waiting for the patient. Enter opens the selected fill.", parent)
        self.setObjectName("fillsView")
        row = QHBoxLayout()
        self.state = QComboBox()
        self.state.setObjectName("fillState")
        self.state.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.state.addItem("To verify", FillStatus.FILLED.value)
        self.state.addItem("Ready for pickup", FillStatus.VERIFIED.value)
        self.state.currentIndexChanged.connect(lambda _i: self.reload())
        show = QLabel("&Show:")
        show.setBuddy(self.state)
        row.addWidget(show)
        row.addWidget(self.state)
        row.addStretch(1)
        self.count = QLabel("")
        self.count.setObjectName("fillCount")
        row.addWidget(self.count)
        self.body.addLayout(row)
        self.model = ListTableModel(COLUMNS, self)
        self.table = make_table("fillTable")
        self.table.setModel(self.model)
        fit_columns(self.table, COLUMNS)
        self.table.horizontalHeader().setSortIndicatorShown(False)  # not sortable
        self.body.addWidget(self.table, 1)
        self.table.selectionModel().selectionChanged.connect(lambda *_: self.update_actions())
        self.table.activated.connect(lambda _i: self.open_selected())
        self.act_verify = self.add_action("actionVerify", "Verify…", "check", self.verify,
                                          "Ctrl+Shift+V", perm=Perm.VERIFY, enabled=False,
                                          needs="a fill to verify")
        self.act_release = self.add_action("actionReleaseFill", "Release…", "dispensing",
                                           self.release, "Ctrl+Shift+R", perm=Perm.RELEASE,
                                           enabled=False, needs="a fill ready for pickup")
        self.act_return = self.add_action("actionReturnFill", "Return to stock…", "receive",
                                          self.send_back, "Ctrl+Shift+T",
                                          perm=Perm.RETURN_TO_STOCK, enabled=False,
                                          needs="a fill ready for pickup")
        self.act_label = self.add_action("actionFillLabel", "Print label", "print",
                                         self.print_label, "Ctrl+Shift+P", perm=Perm.DISPENSE,
                                         enabled=False, needs="a fill")
        self.add_action("actionRefreshFills", "Refresh", "refresh", self.reload, "F5")
        ws.data_changed.connect(self._data_changed)
        self._generation = 0

    # ------------------------------------------------------------ loading

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802 - Qt API
        super().showEvent(event)
        self.reload()

    def _data_changed(self, table: str, _ids: Any) -> None:
        if table == "dispenses" and self.isVisible():
            self.reload()

    def apply_filter(self, fill_status: FillStatus | None = None, **_: Any) -> None:
        """The dashboard's tiles open the queue at their state."""
        if fill_status is not None:
            self.show_state(fill_status)

    def show_state(self, status: FillStatus) -> None:
        i = self.state.findData(status.value)
        if i >= 0:
            self.state.setCurrentIndex(i)

    def reload(self) -> None:
        self._generation += 1
        generation = self._generation
        status = FillStatus(self.state.currentData())
        sf, actor = self.ws.sf, self.ws.actor

        def work() -> tuple[tuple[FillRow, ...], dict[FillStatus, int]]:
            return fills.fill_queue(sf, actor, status), fills.fill_counts(sf, actor)

        self.ws.run(work, lambda r: self._loaded(generation, status, *r), self.show_error)

    def _loaded(self, generation: int, status: FillStatus, rows: tuple[FillRow, ...],
                counts: dict[FillStatus, int]) -> None:
        if generation != self._generation:
            return  # a newer load is on its way
        selected = self.selected()
        self.model.set_rows(rows)
        self.table.setColumnHidden(len(COLUMNS) - 1, status is FillStatus.FILLED)
        for i in range(self.state.count()):
            st = FillStatus(self.state.itemData(i))
            base = "To verify" if st is FillStatus.FILLED else "Ready for pickup"
            self.state.setItemText(i, f"{base} ({counts.get(st, 0):,})")
        overdue = sum(r.overdue for r in rows)
        self.count.setText(f"{len(rows):,} fill{'s' if len(rows) != 1 else ''}"
                           + (f" · {overdue:,} waiting too long: return to stock"
                              if overdue else ""))
        again = next((i for i, r in enumerate(rows)
                      if selected is not None and r.dispense_id == selected.dispense_id), None)
        if again is not None:
            self.table.selectRow(again)
        elif rows:
            self.table.selectRow(0)
        self.update_actions()

    # ------------------------------------------------------------ actions

    def selected(self) -> FillRow | None:
        rows = self.table.selectionModel().selectedRows() if self.table.model() else []
        return self.model.row_at(rows[0].row()) if rows else None

    def update_actions(self) -> None:
        super().update_actions()
        if not hasattr(self, "act_verify") or self.is_offline:
            return
        r = self.selected()
        filled = r is not None and r.status is FillStatus.FILLED
        verified = r is not None and r.status is FillStatus.VERIFIED
        self.act_verify.setEnabled(filled and self.ws.can(Perm.VERIFY))
        self.act_release.setEnabled(verified and self.ws.can(Perm.RELEASE))
        self.act_return.setEnabled(verified and self.ws.can(Perm.RETURN_TO_STOCK))
        self.act_label.setEnabled(r is not None and self.ws.can(Perm.DISPENSE))

    def open_selected(self) -> None:
        r = self.selected()
        if r is None:
            return
        if r.status is FillStatus.FILLED and self.act_verify.isEnabled():
            self.verify()
        elif r.status is FillStatus.VERIFIED and self.act_release.isEnabled():
            self.release()

    def _open(self, dialog_cls: Any, then: str) -> None:
        r = self.selected()
        if r is None:
            return
        dlg = dialog_cls(self.ws, r.dispense_id, self)
        dlg.step_done.connect(lambda result: self._stepped(result, then))
        dlg.open()

    def verify(self) -> None:
        from ..dialogs.fills import VerifyDialog

        self._open(VerifyDialog, "verified")

    def release(self) -> None:
        from ..dialogs.fills import ReleaseDialog

        self._open(ReleaseDialog, "released")

    def send_back(self) -> None:
        from ..dialogs.fills import ReturnDialog

        self._open(ReturnDialog, "returned")

    def _stepped(self, result: fills.StepResult, _what: str) -> None:
        words = {FillStatus.VERIFIED: "verified: ready for pickup",
                 FillStatus.RELEASED: "released to the patient",
                 FillStatus.RETURNED: "returned to stock"}
        self.ws.tell(f"Rx {result.rx_number}: {words.get(result.status, result.status.value)}")
        self.reload()

    def print_label(self) -> None:
        r = self.selected()
        if r is None:
            return
        from ..dialogs.prescriptions import ask_reason
        from .reports import print_label

        reason = None
        if r.labels_printed:
            reason = ask_reason(self, "Print the label again",
                                f"Rx {r.rx_number}: its label was printed already. Why is it "
                                "printed again (for example \"label smudged\")?")
            if reason is None:
                return
        print_label(self.ws, r.dispense_id, self, reprint_reason=reason)
        self.reload()


__all__ = ["COLUMNS", "FillsView", "Qt"]
