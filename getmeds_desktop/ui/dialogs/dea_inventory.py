"""DEA inventory (21 CFR 1304.11): the count sheet of the controlled substances
on hand, prefilled with the register's balance, an exact count or the estimate
of an opened container per lot, as of the opening or the close of business.
The same sheet counts a product moved into a schedule (its newly-controlled
inventory) from the product editor's Change schedule."""

from __future__ import annotations

import uuid

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMessageBox,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ...enums import Schedule
from ...services import catalog, dea_inventory
from ...services.dea_inventory import Business, Count, InventoryKind, SheetLine
from ..tablemodels.models import day
from ..widgets.forms import MessageLabel, plural
from ..workspace import Workspace

COLUMNS = ("Product", "Schedule", "Lot", "Expiry", "Register", "Counted", "Count",
           "Container holds", "Reason for a difference")
COL_COUNTED, COL_EXACT, COL_CONTAINER, COL_REASON = 5, 6, 7, 8
RULES = ("Count every lot on hand. Schedule II is counted exactly; an opened Schedule III-V "
         "container may be estimated unless it holds more than 1,000 tablets or capsules "
         "(21 CFR 1304.11(e)(3)). Every count goes into the controlled register, a count "
         "that matches too.")


def _schedule_words(s: Schedule) -> str:
    return "not controlled" if s is Schedule.NONE else f"Schedule {s.value}"


class DeaInventoryDialog(QDialog):
    """An initial or biennial inventory; with ``product`` and ``to``: the product's
    move into a schedule, with its newly-controlled inventory when it needs one."""

    def __init__(self, ws: Workspace, parent: QWidget | None = None, *,
                 product: catalog.ProductInfo | None = None, to: Schedule | None = None
                 ) -> None:
        super().__init__(parent)
        self.ws = ws
        self.product = product
        self.to = to
        self.result_info: dea_inventory.ScheduleChange | dea_inventory.InventoryInfo | None = None
        self.request_id = uuid.uuid4()
        self.sheet: list[SheetLine] = []
        self._dirty = False
        self.setObjectName("deaInventoryDialog")
        moving = product is not None and to is not None
        self.setWindowTitle(f"Change schedule: {product.display_name}" if moving and product
                            else "DEA inventory")
        self.resize(1180, 640)
        root = QVBoxLayout(self)
        form = QFormLayout()
        self.kind = QComboBox()
        self.kind.setObjectName("inventoryKind")
        self.kind.addItem("Biennial inventory (21 CFR 1304.11(c))", InventoryKind.BIENNIAL)
        self.kind.addItem("Initial inventory (21 CFR 1304.11(b))", InventoryKind.INITIAL)
        if moving:
            assert product is not None and to is not None
            needs = dea_inventory.needs_inventory(product.schedule, to)
            what = QLabel(f"<b>{product.display_name}</b>: {_schedule_words(product.schedule)}"
                          f" → <b>{_schedule_words(to)}</b>"
                          + (" · newly-controlled inventory (21 CFR 1304.11(d)): the count "
                             "opens the product's register" if needs else ""))
            what.setObjectName("scheduleChange")
            what.setWordWrap(True)
            form.addRow("Move:", what)
            self.needs_count = needs
        else:
            form.addRow("&Kind:", self.kind)
            self.needs_count = True
        self.business = QComboBox()
        self.business.setObjectName("inventoryBusiness")
        self.business.addItem("Opening of business", Business.OPENING)
        self.business.addItem("Close of business", Business.CLOSE)
        self.note = QLineEdit()
        self.note.setObjectName("inventoryNote")
        self.note.setMaxLength(300)
        if self.needs_count:
            form.addRow("Taken as of the:", self.business)
            form.addRow("&Note:", self.note)
        root.addLayout(form)
        intro = QLabel(RULES if self.needs_count else (
            "Nothing is counted for this move: Schedules III, IV and V share one register."
            if to is not Schedule.NONE else
            "The product leaves the schedules: its register keeps every entry it has (21 CFR "
            "1304.04(a)) and records nothing more. Only a pharmacist does this."))
        intro.setObjectName("viewSubtitle")
        intro.setWordWrap(True)
        root.addWidget(intro)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setObjectName("deaCountSheet")
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.table.verticalHeader().setVisible(False)
        header = self.table.horizontalHeader()
        for i, w in enumerate((240, 85, 90, 95, 80, 90, 165, 130)):
            self.table.setColumnWidth(i, w)
        header.setSectionResizeMode(COL_REASON, QHeaderView.ResizeMode.Stretch)
        self.table.setVisible(self.needs_count)
        root.addWidget(self.table, 1)
        self.message = MessageLabel("deaInventoryError")
        root.addWidget(self.message)
        buttons = QDialogButtonBox()
        self.ok_button = buttons.addButton(
            ("Change schedule and record the inventory" if self.needs_count else
             "Change schedule") if moving else "Record inventory",
            QDialogButtonBox.ButtonRole.AcceptRole)
        self.ok_button.setObjectName("recordInventory")
        self.ok_button.setDefault(True)
        self.ok_button.clicked.connect(self._save)
        cancel = buttons.addButton(QDialogButtonBox.StandardButton.Cancel)
        cancel.clicked.connect(self.reject)
        root.addWidget(buttons)
        if self.needs_count:
            self.ok_button.setEnabled(False)
            self.message.show_info("Reading the register…")
            pid = product.id if moving and product else None
            sf, actor = ws.sf, ws.actor
            ws.run(lambda: dea_inventory.count_sheet(sf, actor, product_id=pid), self._loaded,
                   self._error)

    # ------------------------------------------------------------- the sheet

    def _schedule_of(self, line: SheetLine) -> Schedule:
        return self.to if self.to is not None else line.schedule

    def _loaded(self, sheet: list[SheetLine]) -> None:
        self.sheet = sheet
        self.table.setRowCount(len(sheet))
        for r, ln in enumerate(sheet):
            schedule = self._schedule_of(ln)
            for c, value in enumerate((ln.display_name, schedule.value,
                                       ln.lot_number or "(no lot)", day(ln.expiry_date),
                                       "—" if ln.register_balance is None
                                       else f"{ln.register_balance:,}")):
                item = QTableWidgetItem(value)
                item.setFlags(Qt.ItemFlag.ItemIsEnabled)
                if c == 4:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight
                                          | Qt.AlignmentFlag.AlignVCenter)
                    item.setToolTip(f"Lot on hand: {ln.on_hand:,} {ln.unit}")
                self.table.setItem(r, c, item)
            counted = QSpinBox()
            counted.setObjectName(f"counted{r}")
            counted.setRange(0, 10_000_000)
            counted.setValue(ln.on_hand)
            counted.setEnabled(ln.lot_id is not None)
            counted.valueChanged.connect(self._changed)
            self.table.setCellWidget(r, COL_COUNTED, counted)
            exact = QComboBox()
            exact.setObjectName(f"exact{r}")
            exact.addItem("Exact count", True)
            exact.addItem("Estimate (opened)", False)
            if schedule is Schedule.II or ln.lot_id is None:
                exact.setEnabled(False)
                exact.setToolTip("Schedule II is counted exactly (21 CFR 1304.11(e)(3)(i)).")
            exact.currentIndexChanged.connect(self._changed)
            self.table.setCellWidget(r, COL_EXACT, exact)
            container = QSpinBox()
            container.setObjectName(f"container{r}")
            container.setRange(1, 10_000_000)
            container.setValue(ln.pack_size)
            container.setEnabled(False)
            container.setToolTip("What the opened container holds: more than 1,000 tablets or "
                                 "capsules is counted exactly (21 CFR 1304.11(e)(3)(ii)).")
            container.valueChanged.connect(self._changed)
            exact.currentIndexChanged.connect(
                lambda _i, e=exact, box=container: box.setEnabled(e.currentData() is False))
            self.table.setCellWidget(r, COL_CONTAINER, container)
            reason = QLineEdit()
            reason.setObjectName(f"reason{r}")
            reason.setMaxLength(300)
            reason.textEdited.connect(self._changed)
            self.table.setCellWidget(r, COL_REASON, reason)
        lots = sum(1 for ln in sheet if ln.lot_id is not None)
        if lots:
            self.message.show_info(f"{plural(lots, 'lot')} to count, prefilled with what the "
                                   "register holds.")
        else:
            self.message.show_info("Nothing on hand: the inventory records that (a count of 0)."
                                   if self.product is None else
                                   "Nothing on hand: the register opens at 0.")
        self.ok_button.setEnabled(True)
        first = self.table.cellWidget(0, COL_COUNTED) if sheet else None
        if first is not None and first.isEnabled():
            first.setFocus()

    def _changed(self, *_args: object) -> None:
        self._dirty = True

    def counts(self) -> list[Count]:
        out = []
        for r, ln in enumerate(self.sheet):
            if ln.lot_id is None:
                continue
            counted = self.table.cellWidget(r, COL_COUNTED)
            exact = self.table.cellWidget(r, COL_EXACT)
            container = self.table.cellWidget(r, COL_CONTAINER)
            reason = self.table.cellWidget(r, COL_REASON)
            assert isinstance(counted, QSpinBox) and isinstance(exact, QComboBox)
            assert isinstance(container, QSpinBox) and isinstance(reason, QLineEdit)
            is_exact = bool(exact.currentData())
            out.append(Count(ln.lot_id, counted.value(), exact=is_exact,
                             container_units=None if is_exact else container.value(),
                             reason=reason.text() or None, expected=ln.on_hand))
        return out

    # ------------------------------------------------------------------ save

    def _save(self) -> None:
        self.message.clear_message()
        counts = self.counts() if self.needs_count else []
        business, note = self.business.currentData(), self.note.text() or None
        sf, actor = self.ws.sf, self.ws.actor
        self.ok_button.setEnabled(False)
        if self.product is not None and self.to is not None:
            pid, version, to = self.product.id, self.product.version, self.to
            self.ws.run(lambda: dea_inventory.change_schedule(
                sf, actor, pid, to, expected_version=version, business=business,
                counts=counts, note=note, request_id=self.request_id),
                self._done, self._error, label="Recording the inventory…", parent=self,
                retry=False)
        else:
            kind, rid = self.kind.currentData(), self.request_id
            self.ws.run(lambda: dea_inventory.take_inventory(
                sf, actor, kind, business, counts, note=note, request_id=rid),
                self._done, self._error, label="Recording the inventory…", parent=self)

    def _done(self, result: dea_inventory.ScheduleChange | dea_inventory.InventoryInfo
              ) -> None:
        self.result_info = result
        if isinstance(result, dea_inventory.ScheduleChange):
            self.ws.tell(f"{result.product.display_name} is now "
                         f"{_schedule_words(result.product.schedule)}"
                         + (" (newly-controlled inventory recorded)" if result.inventory
                            else ""))
        else:
            self.ws.tell(f"Recorded the {result.kind.label.lower()} inventory "
                         f"({plural(len(result.lines), 'line')}); print it from Reports > "
                         "DEA inventory")
        self._dirty = False
        self.accept()

    def _error(self, exc: BaseException) -> None:
        self.ok_button.setEnabled(True)
        self.message.show_error(str(exc))

    def reject(self) -> None:
        if self._dirty and QMessageBox.question(
                self, "Discard the counts", "Discard the counts typed here?") \
                != QMessageBox.StandardButton.Yes:
            return
        super().reject()


class ScheduleChoiceDialog(QDialog):
    """Which schedule to move a product to (the product editor's Change schedule)."""

    def __init__(self, product: catalog.ProductInfo, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("scheduleChoiceDialog")
        self.setWindowTitle("Change schedule")
        root = QVBoxLayout(self)
        root.addWidget(QLabel(f"Move <b>{product.display_name}</b> "
                              f"({_schedule_words(product.schedule)}) to:"))
        self.choice = QComboBox()
        self.choice.setObjectName("newSchedule")
        for s in Schedule:
            if s is not product.schedule:
                self.choice.addItem("Not controlled" if s is Schedule.NONE
                                    else f"Schedule {s.value}", s)
        root.addWidget(self.choice)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                                   | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        root.addWidget(buttons)

    def chosen(self) -> Schedule:
        return Schedule(self.choice.currentData())


__all__ = ["DeaInventoryDialog", "ScheduleChoiceDialog"]
