"""Prescriptions by status, and the dispensing queue."""

from __future__ import annotations

import uuid

from PySide6.QtCore import QSettings
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QComboBox, QMessageBox, QWidget

from ...enums import RxStatus
from ...services import clock, listing, prescriptions
from ...services.context import Perm
from ...services.dashboard import WAITING
from ...services.dispensing import DispenseResult
from ...services.prescriptions import RxAction
from ...services.rxstate import FILLABLE
from ..tablemodels.models import prescription_model
from ..workspace import Workspace
from .base import SearchBox, TableArea

STATUS_FILTERS: list[tuple[str, tuple[RxStatus, ...]]] = [
    ("Waiting (not yet dispensed)", WAITING),
    *[(s.label, (s,)) for s in RxStatus],
    ("All", ()),
]


class PrescriptionsView(TableArea):
    settings_key = "prescriptions"

    def __init__(self, ws: Workspace, parent: QWidget | None = None, *,
                 queue: bool = False) -> None:
        title = "Dispensing queue" if queue else "Prescriptions"
        subtitle = ("Prescriptions waiting to be filled, oldest first. Select one and press "
                    "Dispense (Ctrl+D)." if queue else
                    "Enter, edit, hold and cancel prescriptions; search by Rx number, patient "
                    "or product.")
        # the queue: oldest written first (then first received); the list: newest first
        model = (prescription_model(ws, default_sort="date_written", descending=False)
                 if queue else prescription_model(ws, default_sort="created_at"))
        super().__init__(ws, title, subtitle, model,
                         "queueTable" if queue else "prescriptionTable", parent,
                         # not "queue": saved with the list's sort (newest first) by
                         # mistake before
                         settings_key="dispensingQueue" if queue else "prescriptions")
        self.queue = queue
        self.search = SearchBox("Rx number, patient or product  (Ctrl+F)")
        self.search.setObjectName("queueSearch" if queue else "prescriptionSearch")
        self.search.search.connect(lambda _t: self.reload())
        self.filters.addWidget(self.search, 3)
        self.status_filter = QComboBox()
        self.status_filter.setObjectName("statusFilter")
        if queue:
            self.status_filter.addItem("Ready to fill", tuple(
                s for s in FILLABLE if s is not RxStatus.DISPENSED))
            self.status_filter.addItem("Refills (dispensed, refills left)",
                                       (RxStatus.DISPENSED,))
        else:
            for label, statuses in STATUS_FILTERS:
                self.status_filter.addItem(label, statuses)
            saved = QSettings().value(f"{self.settings_key}/status")
            if saved is not None:
                self.status_filter.setCurrentIndex(max(int(saved), 0))
        self.status_filter.currentIndexChanged.connect(lambda _i: self.reload())
        self.filters.addWidget(self.status_filter)
        self.filters.addStretch(1)

        can_create = ws.can(Perm.CREATE_PRESCRIPTIONS)
        can_edit = ws.can(Perm.EDIT_PRESCRIPTIONS)
        if not queue:
            self.act_new = self.add_action("actionNewRx", "New prescription", "add",
                                           self.new_rx, QKeySequence.StandardKey.New,
                                           enabled=can_create, perm=Perm.CREATE_PRESCRIPTIONS)
            self.act_edit = self.add_action("actionEditRx", "Edit", "edit", self.edit_rx,
                                            "Ctrl+E", enabled=False,
                                            perm=Perm.EDIT_PRESCRIPTIONS,
                                            needs="a new prescription (not yet filled)")
            self.act_hold = self.add_action("actionHoldRx", "Hold", "hold",
                                            lambda: self.change(RxAction.HOLD), enabled=False,
                                            perm=Perm.EDIT_PRESCRIPTIONS,
                                            needs="a prescription not on hold or cancelled")
            self.act_release = self.add_action("actionReleaseRx", "Release", "refresh",
                                               lambda: self.change(RxAction.RELEASE),
                                               enabled=False, perm=Perm.EDIT_PRESCRIPTIONS,
                                               needs="a prescription on hold")
            self.act_cancel = self.add_action("actionCancelRx", "Cancel Rx", "cancel",
                                              lambda: self.change(RxAction.CANCEL),
                                              enabled=False, perm=Perm.EDIT_PRESCRIPTIONS,
                                              needs="a prescription not cancelled")
            # to and from other pharmacies (21 CFR 1306.25, 1306.08(e)): pharmacists only
            self.act_transfer_out = self.add_action(
                "actionTransferOut", "Transfer out…", "export", self.transfer_out,
                "Ctrl+Shift+O", enabled=False, perm=Perm.TRANSFER,
                tip="Transfer the prescription to another pharmacy",
                needs="a prescription not cancelled or transferred", button=False)
            self.act_transfer_in = self.add_action(
                "actionTransferIn", "Transfer in…", "import", self.transfer_in,
                "Ctrl+Shift+I", perm=Perm.TRANSFER,
                tip="Enter a prescription transferred from another pharmacy", button=False)
            self.add_action_menu("transfer", "Transfer", "export",
                                 [self.act_transfer_out, self.act_transfer_in])
        self.act_view = self.add_action("actionViewRx", "Open", "edit", self.view_rx, "Ctrl+O",
                                        enabled=False, perm=Perm.READ_PRESCRIPTIONS,
                                        needs="a prescription")
        self.act_dispense = self.add_action("actionDispense", "Dispense", "dispensing",
                                            self.dispense, "Ctrl+D", enabled=False,
                                            perm=Perm.DISPENSE,
                                            needs="a prescription ready to fill")
        self.add_export_action()
        self.add_action("actionRefreshRx", "Refresh", "refresh", self.reload, "F5")
        self.add_shortcut("actionFindRx", QKeySequence.StandardKey.Find,
                          self.search.select_for_typing, text="Find")
        self.row_activated.connect(self._activated)
        self._can_edit = can_edit
        ws.data_changed.connect(self._data_changed)

    def current_query(self) -> listing.PrescriptionFilter:
        return listing.PrescriptionFilter(statuses=self.status_filter.currentData() or (),
                                          search=self.search.text())

    def apply_status(self, statuses: tuple[RxStatus, ...]) -> None:
        for i in range(self.status_filter.count()):
            if self.status_filter.itemData(i) == statuses:
                self.status_filter.setCurrentIndex(i)
                break
        self._loaded_once = True
        self.reload()

    def save_settings(self) -> None:
        super().save_settings()
        if not self.queue:
            QSettings().setValue(f"{self.settings_key}/status", self.status_filter.currentIndex())

    def _activated(self, _row: object) -> None:
        """Enter or a double click: dispense when it can be filled here, edit a
        new prescription one may edit, otherwise open it to read."""
        if self.act_dispense.isEnabled():
            self.dispense()
        elif not self.queue and self.act_edit.isEnabled():
            self.edit_rx()
        else:
            self.view_rx()

    def selection_changed(self) -> None:
        row: listing.PrescriptionRow | None = self.selected_row()
        self.act_view.setEnabled(row is not None)
        can_dispense = self.ws.can(Perm.DISPENSE)
        self.act_dispense.setEnabled(row is not None and can_dispense
                                     and row.status in FILLABLE and not (
                                         row.status is RxStatus.DISPENSED
                                         and row.refills_left <= 0))
        if self.queue:
            return
        status = row.status if row is not None and self._can_edit else None  # None: no edits
        self.act_edit.setEnabled(status is RxStatus.NEW)
        self.act_hold.setEnabled(status is not None and status not in (
            RxStatus.ON_HOLD, RxStatus.CANCELLED, RxStatus.TRANSFERRED))
        self.act_release.setEnabled(status is RxStatus.ON_HOLD)
        self.act_cancel.setEnabled(status is not None and status not in (RxStatus.CANCELLED,
                                                                         RxStatus.TRANSFERRED))
        self.act_transfer_out.setEnabled(
            row is not None and self.ws.can(Perm.TRANSFER)
            and row.status not in (RxStatus.CANCELLED, RxStatus.TRANSFERRED))

    def _data_changed(self, table: str, ids: set) -> None:
        if table == "prescriptions":
            self.model.refresh_rows(list(ids) if ids else None)

    # ------------------------------------------------------------- actions

    def new_rx(self, patient: listing.Choice | None = None) -> None:
        from ..dialogs.prescriptions import PrescriptionEditor

        dlg = PrescriptionEditor(self.ws, patient=patient, parent=self)
        dlg.saved.connect(self._created)
        dlg.open()

    def _created(self, rx: prescriptions.PrescriptionInfo) -> None:
        self.search.setText(str(rx.rx_number))
        self.search.flush()

    def edit_rx(self) -> None:
        from ..dialogs.prescriptions import PrescriptionEditor

        row = self.selected_row()
        if row is None or not self._can_edit:
            return

        def show(rx: prescriptions.PrescriptionInfo) -> None:
            dlg = PrescriptionEditor(self.ws, rx, parent=self)
            dlg.open()

        self.ws.run(lambda: prescriptions.get_prescription(self.ws.sf, self.ws.actor, row.id),
                    show, self.show_error)

    def view_rx(self) -> None:
        """The prescription, to read (every role that may see it)."""
        from ..dialogs.prescriptions import PrescriptionViewer

        row = self.selected_row()
        if row is None:
            return
        sf, actor = self.ws.sf, self.ws.actor
        self.ws.run(lambda: prescriptions.get_prescription(sf, actor, row.id),
                    lambda rx: PrescriptionViewer(rx, parent=self).open(), self.show_error)

    def change(self, action: str) -> None:
        from ..dialogs.prescriptions import ask_reason

        row = self.selected_row()
        if row is None:
            return
        reason: str | None = None
        if action in (RxAction.HOLD, RxAction.CANCEL):
            verb = "hold" if action == RxAction.HOLD else "cancel"
            reason = ask_reason(self, f"{verb.capitalize()} Rx {row.rx_number}",
                                f"Why {verb} Rx {row.rx_number}?")
            if reason is None:
                return
        version, request_id = row.version, uuid.uuid4()  # one change, even if retried
        done = {RxAction.HOLD: "put on hold", RxAction.RELEASE: "released",
                RxAction.CANCEL: "cancelled"}.get(action, "changed")
        self.ws.run(lambda: prescriptions.change_status(self.ws.sf, self.ws.actor, row.id,
                                                        action, reason=reason,
                                                        expected_version=version,
                                                        request_id=request_id),
                    lambda _rx: self.ws.tell(f"Rx {row.rx_number} ({row.patient_name}) {done}"),
                    self.show_error)

    def transfer_out(self) -> None:
        """Transfer the selected prescription to another pharmacy: refused at once,
        with the rule, when it may not go."""
        from ..dialogs.transfers import TransferOutDialog

        row = self.selected_row()
        if row is None or not self.ws.can(Perm.TRANSFER):
            return
        sf, actor = self.ws.sf, self.ws.actor

        def show(rx: prescriptions.PrescriptionInfo) -> None:
            problem = rx.state.transfer_problem(clock.today())
            if problem:
                QMessageBox.warning(self, "Transfer out", problem)
                return
            dlg = TransferOutDialog(self.ws, rx, parent=self)
            dlg.open()

        self.ws.run(lambda: prescriptions.get_prescription(sf, actor, row.id), show,
                    self.show_error)

    def transfer_in(self) -> None:
        from ..dialogs.transfers import TransferInDialog

        if not self.ws.can(Perm.TRANSFER):
            return
        dlg = TransferInDialog(self.ws, parent=self)
        dlg.saved.connect(self._created)
        dlg.open()

    def dispense(self) -> None:
        from ..dialogs.prescriptions import DispenseDialog

        row = self.selected_row()
        if row is None or not self.ws.can(Perm.DISPENSE):
            return
        dlg = DispenseDialog(self.ws, row.id, self)
        dlg.dispensed.connect(lambda result: self._dispensed(result, row))
        dlg.open()

    def _dispensed(self, result: DispenseResult,
                   row: listing.PrescriptionRow | None = None) -> None:
        what = f" x {row.product}" if row is not None else ""
        who = f" for {row.patient_name}" if row is not None else ""
        self.ws.tell(f"Filled {result.quantity:,}{what} on Rx {result.rx_number}{who}"
                     + (f", {result.owed_after:,} owed" if result.owed_after else "")
                     + ": waiting for a pharmacist's verification (Verify and pick up, Ctrl+8)")
        if self.queue:
            self.reload()
        answer = QMessageBox.question(
            self, "Filled",
            f"Rx {result.rx_number}: {result.quantity} filled"
            + (f", {result.owed_after} owed" if result.owed_after else "")
            + ". A pharmacist verifies it before it is handed out (Verify and pick up, Ctrl+8).\n\n"
            "Print the label now?",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.Yes)
        if answer == QMessageBox.StandardButton.Yes:
            self.print_label(result)

    def print_label(self, result: DispenseResult) -> None:
        from .reports import print_label

        print_label(self.ws, result.dispense_id, self)

