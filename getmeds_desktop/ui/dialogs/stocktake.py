"""Stocktake: start a count (all, a category, or controlled only), enter counted
quantities lot by lot, review variances, post them."""

from __future__ import annotations

import uuid

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ...enums import StocktakeScope, StocktakeStatus
from ...services import catalog, stocktake
from ..style import EXPIRED_FG, LOW_FG
from ..tablemodels.models import day, local_time, schedule_label
from ..tablemodels.paged import ALIGN_RIGHT, Column, ListTableModel
from ..views.base import make_table
from ..widgets.forms import MessageLabel, only_default, plural
from ..workspace import Workspace

COUNT_COLUMNS: list[Column[stocktake.CountLine]] = [
    Column("product", "Product", lambda r: f"{r.product_name} {r.strength or ''}".strip(),
           width=230),
    Column("schedule", "Sched.", lambda r: schedule_label(r.schedule), width=55),
    Column("lot", "Lot", lambda r: r.lot_number, width=90),
    Column("expiry", "Expiry", lambda r: day(r.expiry_date), width=90),
    Column("expected", "Expected", lambda r: r.expected, align=ALIGN_RIGHT, width=75),
    Column("counted", "Counted", lambda r: "" if r.counted is None else r.counted,
           align=ALIGN_RIGHT, width=75),
    Column("variance", "Variance", lambda r: "" if r.variance is None else f"{r.variance:+}",
           align=ALIGN_RIGHT, width=75,
           foreground=lambda r: EXPIRED_FG if (r.variance or 0) < 0 else (
               LOW_FG if (r.variance or 0) > 0 else None)),
    Column("reason", "Reason", lambda r: r.reason, width=200),
]


class StocktakeDialog(QDialog):
    def __init__(self, ws: Workspace, categories: list[catalog.CategoryInfo],
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ws = ws
        self.setObjectName("stocktakeDialog")
        self.setWindowTitle("Stocktake")
        self.resize(1000, 660)
        self.current: stocktake.StocktakeInfo | None = None
        root = QVBoxLayout(self)

        start = QHBoxLayout()
        start.addWidget(QLabel("Count:"))
        self.scope = QComboBox()
        self.scope.setObjectName("stocktakeScope")
        self.scope.addItem("Controlled substances", StocktakeScope.CONTROLLED)
        self.scope.addItem("One category", StocktakeScope.CATEGORY)
        self.scope.addItem("All products", StocktakeScope.ALL)
        start.addWidget(self.scope)
        self.category = QComboBox()
        for c in categories:
            self.category.addItem(c.name, c.id)
        self.category.setEnabled(False)
        self.scope.currentIndexChanged.connect(
            lambda _i: self.category.setEnabled(
                self.scope.currentData() is StocktakeScope.CATEGORY))
        start.addWidget(self.category)
        self.start_button = QPushButton("Start count")
        self.start_button.setObjectName("startStocktake")
        self.start_button.clicked.connect(self._start)
        start.addWidget(self.start_button)
        start.addStretch(1)
        self.open_combo = QComboBox()
        self.open_combo.setObjectName("openStocktakes")
        self.open_combo.currentIndexChanged.connect(self._open_selected)
        start.addWidget(QLabel("or continue:"))
        start.addWidget(self.open_combo)
        root.addLayout(start)

        self.info = QLabel("")
        self.info.setObjectName("viewSubtitle")
        root.addWidget(self.info)
        self.model = ListTableModel(COUNT_COLUMNS, self)
        self.table = make_table("countLines")
        self.table.setModel(self.model)
        for i, col in enumerate(COUNT_COLUMNS):
            self.table.setColumnWidth(i, col.width)
        self.table.selectionModel().selectionChanged.connect(lambda *_: self._line_selected())
        root.addWidget(self.table, 1)

        entry = QHBoxLayout()
        entry.addWidget(QLabel("&Counted:"))
        self.counted = QSpinBox()
        self.counted.setObjectName("countedQuantity")
        self.counted.setRange(0, 10000000)
        entry.addWidget(self.counted)
        entry.addWidget(QLabel("&Reason for a difference:"))
        self.reason = QLineEdit()
        self.reason.setObjectName("countReason")
        self.reason.returnPressed.connect(self._record)
        entry.addWidget(self.reason, 1)
        self.record = QPushButton("Record and next")
        self.record.setObjectName("recordCount")
        self.record.clicked.connect(self._record)
        entry.addWidget(self.record)
        root.addLayout(entry)
        self.only_variances = QCheckBox("Show only variances")
        self.only_variances.toggled.connect(lambda _v: self._load_lines())
        root.addWidget(self.only_variances)
        self.message = MessageLabel("stocktakeError")
        root.addWidget(self.message)
        buttons = QDialogButtonBox()
        self.post = buttons.addButton("Post variances", QDialogButtonBox.ButtonRole.ApplyRole)
        self.post.setObjectName("postStocktake")
        self.post.clicked.connect(self._post)
        self.cancel_count = buttons.addButton("Cancel this count",
                                              QDialogButtonBox.ButtonRole.DestructiveRole)
        self.cancel_count.clicked.connect(self._cancel)
        close = buttons.addButton(QDialogButtonBox.StandardButton.Close)
        close.clicked.connect(self.reject)
        root.addWidget(buttons)
        # Enter records the count on the line; it never posts or cancels the count
        only_default(self, self.record)
        self.counted.setFocus()
        self._set_enabled()
        self._load_list()

    def _set_enabled(self) -> None:
        live = self.current is not None and self.current.status is StocktakeStatus.OPEN
        for w in (self.counted, self.reason, self.record, self.post, self.cancel_count):
            w.setEnabled(live)

    def _load_list(self) -> None:
        self.ws.run(lambda: stocktake.list_stocktakes(self.ws.sf, self.ws.actor), self._listed)

    def _listed(self, items: list[stocktake.StocktakeInfo]) -> None:
        self.open_combo.blockSignals(True)
        self.open_combo.clear()
        self.open_combo.addItem("(choose)", None)
        for st in items:
            if st.status is StocktakeStatus.OPEN:
                what = st.category_name or st.scope.value
                self.open_combo.addItem(f"{local_time(st.started_at)} · {what} · "
                                        f"{st.counted}/{st.lines} counted", st)
        self.open_combo.blockSignals(False)

    def _open_selected(self, _i: int) -> None:
        st = self.open_combo.currentData()
        if st is not None:
            self.show_stocktake(st)

    def _start(self) -> None:
        scope = self.scope.currentData()
        cat = self.category.currentData() if scope is StocktakeScope.CATEGORY else None
        self.ws.run(lambda: stocktake.start_stocktake(self.ws.sf, self.ws.actor, scope,
                                                      category_id=cat),
                    self.show_stocktake, self._error, label="Snapshotting the ledger…",
                    parent=self)

    def show_stocktake(self, st: stocktake.StocktakeInfo) -> None:
        self.current = st
        what = st.category_name or {"controlled": "controlled substances",
                                    "all": "all products"}[st.scope.value]
        self.info.setText(f"Count of {what}, started {local_time(st.started_at)}: "
                          f"{plural(st.lines, 'lot')}. Count each shelf as it stood at the "
                          "start.")
        self._set_enabled()
        self._load_lines()

    def _load_lines(self, select: uuid.UUID | None = None) -> None:
        if self.current is None:
            return
        sid, only = self.current.id, self.only_variances.isChecked()
        self.ws.run(lambda: stocktake.count_lines(self.ws.sf, self.ws.actor, sid,
                                                  only_variances=only),
                    lambda rows: self._lines(rows, select))

    def _lines(self, rows: list[stocktake.CountLine], select: uuid.UUID | None) -> None:
        self.model.set_rows(rows)
        counted = sum(1 for r in rows if r.counted is not None)
        variances = sum(1 for r in rows if r.variance)
        self.message.show_info(f"{counted:,} of {plural(len(rows), 'lot')} counted · "
                               f"{plural(variances, 'variance')}") if rows \
            else self.message.clear_message()
        if rows:
            index = 0
            if select is not None:
                ids = [r.line_id for r in rows]
                index = min(ids.index(select) + 1, len(rows) - 1) if select in ids else 0
            self.table.selectRow(index)

    def _line_selected(self) -> None:
        rows = self.table.selectionModel().selectedRows()
        if not rows:
            return
        line = self.model.row_at(rows[0].row())
        self.counted.setValue(line.counted if line.counted is not None else line.expected)
        self.reason.setText(line.reason or "")
        self.counted.setFocus()
        self.counted.selectAll()

    def _record(self) -> None:
        rows = self.table.selectionModel().selectedRows()
        if not rows or self.current is None:
            return
        line = self.model.row_at(rows[0].row())
        value, reason = self.counted.value(), self.reason.text()
        self.ws.run(lambda: stocktake.enter_count(self.ws.sf, self.ws.actor, line.line_id,
                                                  value, reason),
                    lambda _l: self._load_lines(select=line.line_id), self._error)

    def _post(self) -> None:
        if self.current is None:
            return
        if QMessageBox.question(self, "Post stocktake",
                                "Post every variance as a count movement? This cannot be "
                                "undone.") != QMessageBox.StandardButton.Yes:
            return
        sid, version = self.current.id, self.current.version
        self.ws.run(lambda: stocktake.post_stocktake(self.ws.sf, self.ws.actor, sid,
                                                     expected_version=None),
                    self._posted, self._error, label="Posting the count…", parent=self)
        del version

    def _posted(self, st: stocktake.StocktakeInfo) -> None:
        self.current = st
        self._set_enabled()
        self.message.show_info("Posted. The variances are in the ledger (and the controlled "
                               "register for scheduled products).")
        self.ws.tell("Posted the stocktake's variances")
        self._load_list()

    def _cancel(self) -> None:
        if self.current is None:
            return
        sid = self.current.id
        self.ws.run(lambda: stocktake.cancel_stocktake(self.ws.sf, self.ws.actor, sid),
                    self._cancelled, self._error)

    def _cancelled(self, st: stocktake.StocktakeInfo) -> None:
        self.show_stocktake(st)
        self._load_list()

    def _error(self, exc: BaseException) -> None:
        self.message.show_error(str(exc))
