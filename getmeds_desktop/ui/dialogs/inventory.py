"""Inventory forms: product editor, receive stock, adjust, lot status, lots and
history of a product."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Sequence

from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QGroupBox,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ...enums import LotStatus, MovementKind, Schedule, StorageCondition
from ...services import barcodes, catalog, clock, inventory, listing
from ...services.catalog import IngredientDraft, ProductDraft
from ...services.context import Perm
from ...services.errors import ValidationError
from ...services.inventory import ReceiptRequest
from ...sync.outbox import Kind
from ..style import EXPIRED_BG, EXPIRED_FG, SOON_BG
from ..tablemodels.models import STORAGE_LABELS, day, local_time
from ..tablemodels.paged import ALIGN_RIGHT, Column, ListTableModel
from ..views.base import make_table
from ..widgets.common import DateField, FormDialog, MoneyField, Picker, ScanField
from ..widgets.forms import mark_invalid, only_default
from ..workspace import Workspace

# -------------------------------------------------------------- product editor


def _parse_ingredients(text: str) -> list[IngredientDraft]:
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        name, _, strength = line.partition(",")
        out.append(IngredientDraft(name.strip(), strength.strip() or None))
    return out


class ProductEditor(FormDialog):
    """New product, or edit one (with the version it was opened at)."""

    def __init__(self, ws: Workspace, categories: list[catalog.CategoryInfo],
                 product: catalog.ProductInfo | None = None, parent: QWidget | None = None
                 ) -> None:
        super().__init__(ws, "Edit product" if product else "New product", "productEditor",
                         parent)
        self.product = product
        self.name = self.add_field("name", "&Name:", QLineEdit(), required=True)
        self.strength = self.add_field("strength", "S&trength:", QLineEdit())
        self.form_ = self.add_field("dosage_form", "&Dosage form:", QLineEdit())
        self.route = self.add_field("route", "&Route:", QLineEdit())
        self.ndc = self.add_field("ndc", "N&DC:", QLineEdit(),
                                  "As printed on the package (4-4-2, 5-3-2, 5-4-1 or 5-4-2).")
        self.gtin = self.add_field("gtin", "&GTIN:", QLineEdit())
        self.manufacturer = self.add_field("manufacturer", "&Manufacturer:", QLineEdit())
        self.category = QComboBox()
        self.category.addItem("(none)", None)
        for c in categories:
            self.category.addItem(c.name, c.id)
        self.add_field("category_id", "&Category:", self.category)
        self.storage = QComboBox()
        for cond in StorageCondition:
            self.storage.addItem(STORAGE_LABELS[cond], cond)
        self.add_field("storage", "&Storage:", self.storage)
        self.schedule = QComboBox()
        for s in Schedule:
            self.schedule.addItem("Not controlled" if s is Schedule.NONE else
                                  f"Schedule {s.value}", s)
        self.add_field("schedule", "Sc&hedule:", self.schedule)
        if product is not None:
            self._schedule_change_button()
        self.unit = self.add_field("unit", "&Unit:", QLineEdit("each"))
        self.pack = QSpinBox()
        self.pack.setRange(1, 100000)
        self.add_field("pack_size", "&Pack size:", self.pack)
        self.reorder_level = QSpinBox()
        self.reorder_level.setRange(0, 1000000)
        self.add_field("reorder_level", "Reorder &level:", self.reorder_level)
        self.reorder_qty = QSpinBox()
        self.reorder_qty.setRange(0, 1000000)
        self.add_field("reorder_quantity", "Reorder &quantity:", self.reorder_qty)
        self.price = self.add_field("unit_price", "Unit &price:", MoneyField())
        self.max_per_day = QSpinBox()
        self.max_per_day.setRange(0, 100000)
        self.max_per_day.setSpecialValueText("no maximum")
        self.add_field("max_units_per_day", "Most units a &day:", self.max_per_day,
                       "Screening warns when a prescription works out at more a day.")
        self.ingredients = QPlainTextEdit()
        self.ingredients.setFixedHeight(60)
        self.add_field("ingredients", "&Ingredients:", self.ingredients,
                       "One per line: name, strength (used by the allergy check).")
        self.classes = QPlainTextEdit()
        self.classes.setFixedHeight(48)
        self.add_field("drug_classes", "Drug c&lasses:", self.classes, "One per line.")
        self.active = QCheckBox("Active (can be prescribed and received)")
        self.active.setChecked(True)
        self.add_field("active", "", self.active)
        if product is not None:
            self._fill(product)
            pid, sf = product.id, ws.sf
            self.watch_record("products", pid, product.version,
                              lambda: catalog.get_product(sf, pid))

    def reload_record(self, info: catalog.ProductInfo) -> None:
        self.product = info
        self._fill(info)

    # A product's schedule changes with Change schedule (dialogs/dea_inventory.py):
    # into a register it takes the newly-controlled inventory (21 CFR 1304.11(d)).
    def _schedule_change_button(self) -> None:
        self.schedule.setEnabled(False)
        self.schedule.setToolTip("Change schedule… moves the product (with its "
                                 "newly-controlled inventory when it needs one).")
        button = QPushButton("Change schedule…")
        button.setObjectName("changeSchedule")
        button.setAutoDefault(False)
        button.clicked.connect(self.change_schedule)
        self.form.addRow("", button)

    def change_schedule(self) -> None:
        from .dea_inventory import DeaInventoryDialog, ScheduleChoiceDialog

        if self.product is None:
            return
        choice = ScheduleChoiceDialog(self.product, self)
        if choice.exec() != QDialog.DialogCode.Accepted:
            return
        dlg = DeaInventoryDialog(self.ws, self, product=self.product, to=choice.chosen())
        dlg.finished.connect(lambda _r: self._schedule_changed(dlg.result_info))
        dlg.open()

    def _schedule_changed(self, result: object) -> None:
        from ...services.dea_inventory import ScheduleChange

        if not isinstance(result, ScheduleChange):
            return
        clean = self._baseline == self._snapshot()
        self.product = result.product
        if self._watch is not None:
            table, record_id, _version, load = self._watch
            self._watch = (table, record_id, result.product.version, load)
        self.schedule.setCurrentIndex(self.schedule.findData(result.product.schedule))
        if clean:
            self._baseline = self._snapshot()

    def _fill(self, p: catalog.ProductInfo) -> None:
        self.name.setText(p.name)
        self.strength.setText(p.strength or "")
        self.form_.setText(p.dosage_form or "")
        self.route.setText(p.route or "")
        self.ndc.setText(p.ndc_display)
        self.gtin.setText(p.gtin or "")
        self.manufacturer.setText(p.manufacturer or "")
        self.category.setCurrentIndex(max(self.category.findData(p.category_id), 0))
        self.storage.setCurrentIndex(self.storage.findData(p.storage))
        self.schedule.setCurrentIndex(self.schedule.findData(p.schedule))
        self.unit.setText(p.unit)
        self.pack.setValue(p.pack_size)
        self.reorder_level.setValue(p.reorder_level)
        self.reorder_qty.setValue(p.reorder_quantity)
        self.price.setText(f"{p.unit_price:.2f}")
        self.max_per_day.setValue(p.max_units_per_day or 0)
        self.ingredients.setPlainText("\n".join(
            f"{i.name}, {i.strength}" if i.strength else i.name for i in p.ingredients))
        self.classes.setPlainText("\n".join(p.drug_classes))
        self.active.setChecked(p.active)

    def collect(self) -> ProductDraft:
        return ProductDraft(
            name=self.name.text(), strength=self.strength.text(),
            dosage_form=self.form_.text(), route=self.route.text(), ndc=self.ndc.text(),
            gtin=self.gtin.text(), manufacturer=self.manufacturer.text(),
            category_id=self.category.currentData(), storage=self.storage.currentData(),
            schedule=self.schedule.currentData(), unit=self.unit.text(),
            pack_size=self.pack.value(), reorder_level=self.reorder_level.value(),
            reorder_quantity=self.reorder_qty.value(), unit_price=self.price.text(),
            max_units_per_day=self.max_per_day.value() or None,
            active=self.active.isChecked(),
            ingredients=_parse_ingredients(self.ingredients.toPlainText()),
            drug_classes=[x.strip() for x in self.classes.toPlainText().splitlines()
                          if x.strip()],
        )

    def saved_text(self, result: catalog.ProductInfo) -> str:
        return f"Saved product {result.display_name}"

    def save(self, draft: ProductDraft) -> catalog.ProductInfo:
        if self.product is None:
            return catalog.create_product(self.ws.sf, self.ws.actor, draft,
                                          product_id=self.new_id)
        return catalog.update_product(self.ws.sf, self.ws.actor, self.product.id, draft,
                                      expected_version=self.product.version,
                                      request_id=self.request_id)


# --------------------------------------------------------------------- receive


class ReceiveDialog(FormDialog):
    offline_kind = Kind.RECEIVE  # a delivery may be received offline

    def __init__(self, ws: Workspace, suppliers: list[catalog.SupplierInfo],
                 product: listing.Choice | None = None, parent: QWidget | None = None) -> None:
        super().__init__(ws, "Receive stock", "receiveDialog", parent, save_text="Receive",
                         intro="Record a delivery. A new lot number creates the lot; a known "
                               "lot number must have the same expiry.")
        self.request_id = uuid.uuid4()  # one receipt, however often Save is pressed
        self.scan = ScanField("Scan the package (GS1 or NDC barcode) to fill in the rest")
        self.scan.setObjectName("receiveScan")
        self.scan.scanned.connect(self._scanned)
        self.add_field("scan", "Sc&an:", self.scan)
        self.product = Picker(ws, lambda t: listing.pick_products(ws.sf, ws.actor, t),
                              "Type a product name or NDC")
        self.add_field("product_id", "&Product:", self.product, required=True)
        if product is not None:
            self.product.set_choice(product)
        self.lot = self.add_field("lot_number", "&Lot number:", QLineEdit(), required=True)
        # no default: an expiry nobody typed or scanned would be a wrong one
        self.expiry = DateField(what="expiry date")
        self.add_field("expiry_date", "&Expiry date:", self.expiry, required=True)
        self.quantity = QSpinBox()
        self.quantity.setRange(0, 1000000)
        self.add_field("quantity", "&Quantity:", self.quantity, required=True)
        self.cost = self.add_field("unit_cost", "Unit &cost:", MoneyField())
        self.supplier = QComboBox()
        self.supplier.addItem("(not recorded)", None)
        self.supplier_dea = {sup.id: sup.dea_number for sup in suppliers}
        for sup in suppliers:
            self.supplier.addItem(sup.name, sup.id)
        self.add_field("supplier_id", "&Supplier:", self.supplier)
        # 21 CFR 1304.22(c): a controlled receipt records the supplier's DEA number
        self.dea_note = QLabel()
        self.dea_note.setObjectName("supplierDea")
        self.dea_note.setWordWrap(True)
        self.form.addRow("", self.dea_note)
        self.supplier.currentIndexChanged.connect(lambda _i: self._show_supplier_dea())
        self._show_supplier_dea()
        self.order_form = self.add_field(
            "order_form", "&Order form:", QLineEdit(),
            "Schedule II: the DEA Form 222 serial number or the CSOS order number "
            "(21 CFR 1305).")
        self.order_form.setPlaceholderText("DEA Form 222 or CSOS order number")
        self.order_form.setMaxLength(40)
        self.invoice = self.add_field("invoice_ref", "&Invoice:", QLineEdit())
        (self.lot if product is not None else self.scan).setFocus()

    def _show_supplier_dea(self) -> None:
        sid = self.supplier.currentData()
        if sid is None:
            self.dea_note.setText("A controlled substance is received from a supplier with "
                                  "a DEA number.")
        elif self.supplier_dea.get(sid):
            self.dea_note.setText(f"Supplier's DEA number: <b>{self.supplier_dea[sid]}</b>")
        else:
            self.dea_note.setText("This supplier has no DEA number on file: no controlled "
                                  "substance can be received from it.")

    def _scanned(self, text: str) -> None:
        """One scan fills in the product, and the lot and expiry a GS1 code carries."""
        try:
            scan = barcodes.parse_scan(text)
        except ValidationError as exc:
            self._failed(exc)
            self.scan.selectAll()
            return

        # what the barcode says of the lot is kept, whatever the product turns out to be
        filled = []
        if scan.lot:
            self.lot.setText(scan.lot)
            filled.append("lot")
        if scan.expiry:
            self.expiry.set_date(scan.expiry)
            filled.append("expiry")

        def use(p: catalog.ProductInfo, how: str) -> None:
            self.product.set_choice(listing.Choice(p.id, p.display_name))
            mark_invalid(self.scan, False)
            self.message.show_info(f"Scanned {scan.description}: {p.display_name}{how}. "
                                   "Check the filled-in " + ", ".join(["product", *filled])
                                   + " and enter the quantity.")
            self.scan.clear()
            (self.lot if not scan.lot else self.quantity).setFocus()

        def matched(m: catalog.ScanMatch) -> None:
            if m.exact is not None:
                use(m.exact, "")
            elif m.candidates:
                self._choose_package(scan, m.candidates, use)
            else:
                self._unknown_package(scan)

        def failed(exc: BaseException) -> None:
            self._failed(exc)
            self.scan.selectAll()

        self.ws.run(lambda: catalog.match_scan(self.ws.sf, scan), matched, failed)

    def _choose_package(self, scan: barcodes.Scan, candidates: Sequence[catalog.ProductInfo],
                        use: Callable[[catalog.ProductInfo, str], None]) -> None:
        """The scanned package is not in the catalogue itself: offer the packages
        of the same NDC product (another package size) to pick from."""
        labels = [f"{p.display_name} · NDC {p.ndc_display} · pack of {p.pack_size}"
                  for p in candidates]
        choice, ok = QInputDialog.getItem(
            self, "Which package?",
            f"{scan.description} is not in the catalogue as such. Packages of the same "
            "product are; which one was delivered?", labels, 0, False)
        if ok and choice in labels:
            use(candidates[labels.index(choice)], " (chosen from the same product's packages)")
        else:
            self.message.show_warning("Choose the product received by name, or scan again.")
            self.scan.selectAll()

    def _product_added(self, p: catalog.ProductInfo) -> None:
        self.product.set_choice(listing.Choice(p.id, p.display_name))
        mark_invalid(self.scan, False)
        self.message.show_info(f"Added {p.display_name}; enter the quantity.")
        self.quantity.setFocus()

    def _unknown_package(self, scan: barcodes.Scan) -> None:
        """Nothing in the catalogue: what this role may do about it."""
        mark_invalid(self.scan, True)
        self.scan.selectAll()
        if not self.ws.can(Perm.WRITE_CATALOG):
            self.message.show_warning(
                f"No product has {scan.description}. Ask an administrator (who keeps the "
                "catalogue) to add it, or import the FDA NDC Directory; then scan again. The "
                "lot and expiry stay filled in.")
            return
        self.message.show_warning(f"No product has {scan.description}.")
        answer = QMessageBox.question(
            self, "New product?",
            f"No product has {scan.description}.\n\nAdd it as a new product now (the NDC or "
            "GTIN filled in)?")
        if answer != QMessageBox.StandardButton.Yes:
            return
        ndc = scan.ndc_candidates[0] if len(scan.ndc_candidates) == 1 else None

        def open_editor(lists: catalog.ReferenceLists) -> None:
            dlg = ProductEditor(self.ws, list(lists.categories), parent=self)
            if ndc:
                dlg.ndc.setText(ndc)
            if scan.gtin:
                dlg.gtin.setText(scan.gtin.zfill(14))
            dlg.saved.connect(self._product_added)
            dlg.show()

        self.ws.reference_lists(open_editor)

    def collect(self) -> ReceiptRequest:
        if self.product.choice is None:
            raise ValidationError("Choose the product received.", field="product_id")
        return ReceiptRequest(
            product_id=self.product.choice.id, lot_number=self.lot.text(),
            expiry_date=self.expiry.value_or_none(), quantity=self.quantity.value(),
            unit_cost=self.cost.text() or "0", supplier_id=self.supplier.currentData(),
            invoice_ref=self.invoice.text(), request_id=self.request_id,
            order_form=self.order_form.text() or None)

    def saved_text(self, result: inventory.MovementInfo) -> str:
        product = self.product.choice.label if self.product.choice else "stock"
        return f"Received {result.quantity:,} x {product}, lot {result.lot_number}"

    def save(self, req: ReceiptRequest) -> inventory.MovementInfo:
        # on the server, or offline on the offline copy and queued for it
        result: inventory.MovementInfo = self.ws.perform(Kind.RECEIVE, req)
        return result


# ---------------------------------------------------------------------- adjust


def lot_label(lot: inventory.LotInfo) -> str:
    flags = []
    if lot.expired:
        flags.append("expired")
    if lot.status is not LotStatus.AVAILABLE:
        flags.append(lot.status.value)
    extra = f" [{', '.join(flags)}]" if flags else ""
    return f"{lot.lot_number} · exp {day(lot.expiry_date)} · {lot.on_hand} on hand{extra}"


class AdjustDialog(FormDialog):
    def __init__(self, ws: Workspace, product: catalog.ProductInfo,
                 lots: list[inventory.LotInfo], parent: QWidget | None = None) -> None:
        super().__init__(ws, "Adjust stock", "adjustDialog", parent, save_text="Adjust",
                         intro=f"{product.display_name}: correct the quantity of a lot. The "
                               "ledger keeps the adjustment with its reason.")
        self.request_id = uuid.uuid4()
        self.product_name = product.display_name
        self.lot = QComboBox()
        for lot in lots:
            self.lot.addItem(lot_label(lot), lot.id)
        self.add_field("lot", "&Lot:", self.lot)
        self.change = QSpinBox()
        self.change.setRange(-1000000, 1000000)
        self.add_field("quantity", "&Change:", self.change,
                       "Negative to remove (damage, loss), positive to add (found stock).")
        self.reason_kind = QComboBox()
        self.reason_kind.addItems(inventory.ADJUSTMENT_REASONS)
        self.add_field("reason_kind", "&Reason:", self.reason_kind)
        self.reason = self.add_field("reason", "&Details:", QLineEdit())

    def collect(self) -> tuple[uuid.UUID, int, str]:
        lot_id = self.lot.currentData()
        if lot_id is None:
            raise ValidationError("This product has no lot to adjust.", field="lot")
        details = self.reason.text().strip()
        kind = self.reason_kind.currentText()
        if kind == "Other" and not details:
            raise ValidationError("Describe the reason for the adjustment.", field="reason")
        return lot_id, self.change.value(), f"{kind}: {details}" if details else kind

    def saved_text(self, result: inventory.MovementInfo) -> str:
        return (f"Adjusted lot {result.lot_number} of {self.product_name} by "
                f"{result.quantity:+,}")

    def save(self, values: tuple[uuid.UUID, int, str]) -> inventory.MovementInfo:
        lot_id, change, reason = values
        return inventory.adjust_stock(self.ws.sf, self.ws.actor, lot_id, change, reason,
                                      request_id=self.request_id)


class LotStatusDialog(FormDialog):
    def __init__(self, ws: Workspace, product: catalog.ProductInfo,
                 lots: list[inventory.LotInfo], parent: QWidget | None = None) -> None:
        super().__init__(ws, "Quarantine, recall or release a lot", "lotStatusDialog", parent,
                         save_text="Apply",
                         intro=f"{product.display_name}: lots that are quarantined or recalled "
                               "are never dispensed.")
        self.lots = {lot.id: lot for lot in lots}
        self.product_name = product.display_name
        self.lot = QComboBox()
        for lot in lots:
            self.lot.addItem(lot_label(lot), lot.id)
        self.add_field("lot", "&Lot:", self.lot)
        self.status = QComboBox()
        self.status.addItem("Quarantine (hold, may be released)", LotStatus.QUARANTINED)
        self.status.addItem("Recall (never released)", LotStatus.RECALLED)
        self.status.addItem("Release (available again)", LotStatus.AVAILABLE)
        self.add_field("status", "&Action:", self.status)
        self.reason = self.add_field("reason", "&Reason:", QLineEdit())

    def collect(self) -> tuple[uuid.UUID, LotStatus, str, int]:
        lot_id = self.lot.currentData()
        if lot_id is None:
            raise ValidationError("This product has no lot.", field="lot")
        return lot_id, self.status.currentData(), self.reason.text(), self.lots[lot_id].version

    def saved_text(self, result: inventory.LotInfo) -> str:
        state = {LotStatus.QUARANTINED: "quarantined", LotStatus.RECALLED: "recalled",
                 LotStatus.AVAILABLE: "released"}.get(result.status, result.status.value)
        return f"Lot {result.lot_number} of {self.product_name} {state}"

    def save(self, values: tuple[uuid.UUID, LotStatus, str, int]) -> inventory.LotInfo:
        lot_id, status, reason, version = values
        return inventory.set_lot_status(self.ws.sf, self.ws.actor, lot_id, status, reason,
                                        expected_version=version, request_id=self.request_id)


# ------------------------------------------------------------ lots & history


LOT_COLUMNS: list[Column[inventory.LotInfo]] = [
    Column("lot", "Lot", lambda r: r.lot_number, width=110),
    Column("expiry", "Expiry", lambda r: day(r.expiry_date) + ("  expired" if r.expired else ""),
           width=140, background=lambda r: EXPIRED_BG if r.expired else (
               SOON_BG if r.expiry_date <= clock.today() + dt.timedelta(days=30) else None),
           foreground=lambda r: EXPIRED_FG if r.expired else None),
    Column("status", "Status", lambda r: r.status.value.capitalize(), width=100,
           foreground=lambda r: EXPIRED_FG if r.status is not LotStatus.AVAILABLE else None),
    Column("on_hand", "On hand", lambda r: f"{r.on_hand:,}", align=ALIGN_RIGHT, width=80),
    Column("cost", "Unit cost", lambda r: f"{r.unit_cost:.2f}", align=ALIGN_RIGHT, width=80),
    Column("supplier", "Supplier", lambda r: r.supplier_name, width=160),
    Column("received", "Received", lambda r: local_time(r.received_at), width=130),
]

KIND_LABELS = {k: k.label for k in MovementKind}

MOVEMENT_COLUMNS: list[Column[inventory.MovementInfo]] = [
    Column("when", "When", lambda r: local_time(r.created_at), width=130),
    Column("kind", "Kind", lambda r: KIND_LABELS[r.kind], width=90),
    Column("lot", "Lot", lambda r: r.lot_number, width=100),
    Column("qty", "Quantity", lambda r: f"{r.quantity:+,}", align=ALIGN_RIGHT, width=80),
    Column("balance", "Lot balance", lambda r: r.lot_balance_after, align=ALIGN_RIGHT,
           width=90),
    Column("detail", "Reason / reference", lambda r: r.reason or r.reference, width=220),
    Column("by", "By", lambda r: r.staff_username, width=100),
]


class LotsDialog(QDialog):
    """Lots of a product with their movement history; write-off and return."""

    def __init__(self, ws: Workspace, product: catalog.ProductInfo,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ws = ws
        self.product = product
        self.setObjectName("lotsDialog")
        self.setWindowTitle(f"Lots and history: {product.display_name}")
        self.resize(1000, 640)
        root = QVBoxLayout(self)
        head = QLabel(
            f"<b>{product.display_name}</b> · NDC {product.ndc_display or '—'} · "
            f"{'Schedule ' + product.schedule.value if product.controlled else 'not controlled'}"
            f" · on hand <b>{product.on_hand:,}</b> {product.unit}")
        root.addWidget(head)
        lots_box = QGroupBox("Lots")
        lay = QVBoxLayout(lots_box)
        self.lots_model = ListTableModel(LOT_COLUMNS, self)
        self.lots = make_table("lotsTable")
        self.lots.setModel(self.lots_model)
        for i, c in enumerate(LOT_COLUMNS):
            self.lots.setColumnWidth(i, c.width)
        lay.addWidget(self.lots)
        row = QHBoxLayout()
        self.show_empty = QCheckBox("Show empty lots")
        self.show_empty.toggled.connect(lambda _v: self.reload())
        row.addWidget(self.show_empty)
        row.addStretch(1)
        self.write_off = QPushButton("Write off lot…")
        self.write_off.setObjectName("writeOffLot")
        self.write_off.clicked.connect(self._write_off)
        self.return_ = QPushButton("Return to supplier…")
        self.return_.setObjectName("returnLot")
        self.return_.clicked.connect(self._return)
        for b in (self.write_off, self.return_):
            b.setEnabled(ws.can(Perm.ADJUST))
            row.addWidget(b)
        self.recall_patients = QPushButton("Patients who received it…")
        self.recall_patients.setObjectName("recallPatients")
        self.recall_patients.setToolTip("Every patient who was dispensed the selected lot, "
                                        "and the worklist of telling them of a recall")
        self.recall_patients.setEnabled(ws.can(Perm.READ_DISPENSES)
                                        and ws.can(Perm.READ_PATIENTS))
        self.recall_patients.clicked.connect(self._recall_patients)
        row.addWidget(self.recall_patients)
        lay.addLayout(row)
        self._add_dea_buttons(lay)
        root.addWidget(lots_box, 2)
        hist_box = QGroupBox("Movements (newest first)")
        hl = QVBoxLayout(hist_box)
        self.moves_model = ListTableModel(MOVEMENT_COLUMNS, self)
        self.moves = make_table("movementsTable")
        self.moves.setModel(self.moves_model)
        for i, col in enumerate(MOVEMENT_COLUMNS):
            self.moves.setColumnWidth(i, col.width)
        hl.addWidget(self.moves)
        root.addWidget(hist_box, 3)
        close = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        close.rejected.connect(self.reject)
        root.addWidget(close)
        only_default(self, None)  # Enter never writes a lot off or changes its status
        self.lots.selectionModel().selectionChanged.connect(lambda *_: self._lot_selected())
        self.reload()

    def reload(self) -> None:
        pid, empty = self.product.id, self.show_empty.isChecked()
        self.ws.run(lambda: (inventory.lots_of_product(self.ws.sf, pid, with_empty=empty),
                             inventory.movement_history(self.ws.sf, product_id=pid)),
                    self._loaded)

    def _loaded(self, result: tuple[list[inventory.LotInfo], list[inventory.MovementInfo]]
                ) -> None:
        lots, moves = result
        self.lots_model.set_rows(lots)
        self.moves_model.set_rows(moves)

    def _selected_lot(self) -> inventory.LotInfo | None:
        rows = self.lots.selectionModel().selectedRows()
        return self.lots_model.row_at(rows[0].row()) if rows else None

    def _lot_selected(self) -> None:
        lot = self._selected_lot()
        if lot is None:
            return
        self.ws.run(lambda: inventory.movement_history(self.ws.sf, lot_id=lot.id),
                    self.moves_model.set_rows)

    def _recall_patients(self) -> None:
        lot = self._selected_lot()
        if lot is None:
            QMessageBox.information(self, "GetMeds", "Select the lot.")
            return
        from .recalls import RecallDialog

        RecallDialog(self.ws, lot.id, self).open()

    # ------------------------------------------------ DEA Forms 41 and 106

    def _add_dea_buttons(self, lay: QVBoxLayout) -> None:
        """Record destruction (DEA 41) and Report theft or loss (DEA 106): a
        pharmacist, for a controlled substance (services.deaforms); a row of
        their own, under the lot actions."""
        row = QHBoxLayout()
        row.addStretch(1)
        lay.addLayout(row)
        self.destroy_ = QPushButton("Record destruction (DEA 41)…")
        self.destroy_.setObjectName("recordDestruction")
        self.destroy_.clicked.connect(self.record_destruction)
        self.loss = QPushButton("Report theft or loss (DEA 106)…")
        self.loss.setObjectName("reportTheftLoss")
        self.loss.clicked.connect(self.report_theft_loss)
        self.worksheets = QPushButton("DEA worksheet…")
        self.worksheets.setObjectName("deaWorksheet")
        self.worksheets.clicked.connect(self.dea_worksheet)
        for button, keys in ((self.destroy_, "Ctrl+Shift+D"), (self.loss, "Ctrl+Shift+L"),
                             (self.worksheets, "Ctrl+Shift+W")):
            button.setShortcut(QKeySequence(keys))
            text = button.text().removesuffix("…")
            if not self.product.controlled:
                button.setEnabled(False)
                button.setToolTip(f"{text}: for controlled substances only.")
            elif button is self.worksheets and not self.ws.can(Perm.REPORTS):
                button.setEnabled(False)
                button.setToolTip(f"{self.ws.actor.role.label}s cannot {Perm.REPORTS.value}.")
            elif button is not self.worksheets and not self.ws.can(Perm.DEA_FORMS):
                button.setEnabled(False)
                button.setToolTip(f"{self.ws.actor.role.label}s cannot "
                                  f"{Perm.DEA_FORMS.value}: a pharmacist does.")
            else:
                button.setToolTip(f"{text} ({keys})")
            row.addWidget(button)

    def _dea_lots(self, then: Callable[[list[inventory.LotInfo]], None]) -> None:
        pid = self.product.id
        self.ws.run(lambda: inventory.lots_of_product(self.ws.sf, pid), then, self._error)

    def record_destruction(self) -> None:
        from ...services import deaforms
        from .deaforms import DestructionDialog

        chosen = self._selected_lot()
        sf, actor, pid = self.ws.sf, self.ws.actor, self.product.id

        def show(data: tuple[list[inventory.LotInfo], list[deaforms.Witness]]) -> None:
            lots, people = data
            if not lots:
                QMessageBox.information(self, "GetMeds", "This product has no stock on hand.")
                return
            dlg = DestructionDialog(self.ws, self.product, lots, people, chosen, self)
            dlg.saved.connect(lambda _f: self.reload())
            dlg.open()

        self.ws.run(lambda: (inventory.lots_of_product(sf, pid), deaforms.witnesses(sf, actor)),
                    show, self._error)

    def report_theft_loss(self) -> None:
        from .deaforms import TheftLossDialog

        chosen = self._selected_lot()

        def show(lots: list[inventory.LotInfo]) -> None:
            if not lots:
                QMessageBox.information(self, "GetMeds", "This product has no stock on hand.")
                return
            dlg = TheftLossDialog(self.ws, self.product, lots, chosen, self)
            dlg.saved.connect(lambda _f: self.reload())
            dlg.open()

        self._dea_lots(show)

    def dea_worksheet(self) -> None:
        """The worksheet PDF of a DEA form record that took stock from the lot
        (Form 106 is filed online within 45 days of discovery)."""
        from ...services import deaforms
        from .deaforms import make_worksheet

        lot = self._selected_lot()
        if lot is None:
            QMessageBox.information(self, "GetMeds", "Select the lot.")
            return
        sf, actor = self.ws.sf, self.ws.actor

        def choose(records: list[deaforms.DeaFormInfo]) -> None:
            if not records:
                QMessageBox.information(self, "GetMeds", f"No DEA Form 41 or 106 record took "
                                        f"stock from lot {lot.lot_number}.")
                return
            labels = [f"{r.title} · {local_time(r.filed_at)} · {r.filed_by} · "
                      f"{r.total_units:,} units" for r in records]
            choice, ok = QInputDialog.getItem(self, "DEA worksheet", "Which record?",
                                              labels, 0, False)
            if ok and choice in labels:
                make_worksheet(self.ws, records[labels.index(choice)])

        self.ws.run(lambda: deaforms.forms_of_lot(sf, actor, lot.id), choose, self._error)

    def _write_off(self) -> None:
        lot = self._selected_lot()
        if lot is None:
            QMessageBox.information(self, "GetMeds", "Select the lot to write off.")
            return
        if self.product.controlled:
            QMessageBox.information(
                self, "GetMeds", f"{self.product.display_name} is a controlled substance: "
                "its destruction is recorded on a DEA Form 41 with two witnesses, which "
                "writes it off. Use Record destruction (DEA 41) (Ctrl+Shift+D).")
            return
        reason, ok = QInputDialog.getText(
            self, "Write off lot",
            f"Write off all {lot.on_hand} of lot {lot.lot_number}? Reason (optional):")
        if not ok:
            return
        self.ws.run(lambda: inventory.write_off_lot(self.ws.sf, self.ws.actor, lot.id, reason),
                    lambda m: self._changed(f"Wrote off {abs(m.quantity):,} of lot "
                                            f"{m.lot_number}"), self._error)

    def _return(self) -> None:
        lot = self._selected_lot()
        if lot is None:
            QMessageBox.information(self, "GetMeds", "Select the lot to return.")
            return
        qty, ok = QInputDialog.getInt(self, "Return to supplier",
                                      f"Quantity of lot {lot.lot_number} to return:",
                                      lot.on_hand, 1, max(lot.on_hand, 1))
        if not ok:
            return
        reason, ok = QInputDialog.getText(self, "Return to supplier", "Reason:")
        if not ok:
            return
        self.ws.run(lambda: inventory.return_to_supplier(self.ws.sf, self.ws.actor, lot.id,
                                                         qty, reason),
                    lambda m: self._changed(f"Returned {abs(m.quantity):,} of lot "
                                            f"{m.lot_number} to the supplier"), self._error)

    def _changed(self, done: str) -> None:
        self.ws.tell(f"{done} ({self.product.display_name})")
        self.reload()

    def _error(self, exc: BaseException) -> None:
        QMessageBox.warning(self, "GetMeds", str(exc))


__all__ = [
    "AdjustDialog",
    "LotStatusDialog",
    "LotsDialog",
    "ProductEditor",
    "ReceiveDialog",
]
