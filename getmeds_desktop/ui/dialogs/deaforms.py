"""DEA Form 41 (destruction) and Form 106 (theft or loss) records, from
Inventory > Lots (services.deaforms). Saving files the record and posts its
write-off or adjustment; the worksheet PDF for the filing can be made at once."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtWidgets import QCheckBox, QComboBox, QLineEdit, QMessageBox, QSpinBox, QWidget

from ...enums import LossType
from ...services import catalog, clock, deaforms, inventory
from ...services.deaforms import DeaFormInfo, DestructionRequest, FormLine, TheftLossRequest
from ...services.errors import ValidationError
from ..widgets.common import DateField, FormDialog
from ..workspace import Workspace
from .inventory import lot_label


def index_of(box: QComboBox, value: object) -> int:
    """The row whose data is ``value`` (a UUID: findData compares the wrappers,
    not the values), or -1."""
    return next((i for i in range(box.count()) if box.itemData(i) == value), -1)


def _lot_box(lots: Sequence[inventory.LotInfo], selected: inventory.LotInfo | None
             ) -> QComboBox:
    box = QComboBox()
    for lot in lots:
        if lot.on_hand > 0:
            box.addItem(lot_label(lot), lot.id)
    if selected is not None:
        at = index_of(box, selected.id)
        if at >= 0:
            box.setCurrentIndex(at)
    return box


def _quantity() -> QSpinBox:
    box = QSpinBox()
    box.setRange(0, 1_000_000)
    return box


def _chosen_lot(form: FormDialog, box: QComboBox, qty: QSpinBox) -> list[FormLine]:
    lot_id = box.currentData()
    if lot_id is None:
        raise ValidationError("This product has no stock to take away.", field="lines")
    if qty.value() < 1:
        raise ValidationError("Enter how many units.", field="quantity")
    return [FormLine(lot_id, qty.value())]


def offer_worksheet(form: FormDialog, info: DeaFormInfo) -> None:
    """Offer the worksheet PDF for the filing (reports: dea-41, dea-106)."""
    answer = QMessageBox.question(
        form.parentWidget() or form, "DEA worksheet",
        f"{info.title} record saved. Make its worksheet PDF now? The official filing is on "
        "DEA's online form; the worksheet carries its fields.")
    if answer == QMessageBox.StandardButton.Yes:
        make_worksheet(form.ws, info)


def make_worksheet(ws: Workspace, info: DeaFormInfo) -> None:
    """Make a record's worksheet PDF in the background and open it."""
    from ...reports import ReportParams, ReportResult, generate
    from ..printing import open_pdf
    from ..views.reports import reports_folder

    stamp = clock.now().astimezone().strftime("%Y%m%d-%H%M%S")
    name = f"dea-{info.form.value}"
    out = reports_folder() / f"{name}-{stamp}.pdf"
    sf, actor, site, fid = ws.sf, ws.actor, ws.report_site, info.id

    def done(result: ReportResult) -> None:
        ws.tell(f"The {info.title} worksheet is in {result.path}")
        if not open_pdf(result.path):
            ws.tell(f"No PDF viewer could open {result.path}.")

    ws.run(lambda: generate(sf, actor, name, ReportParams(form_id=fid), out, site=site),
           done, lambda exc: ws.tell(str(exc)), label="Preparing the worksheet…", lane="io")


class DestructionDialog(FormDialog):
    """DEA Form 41: controlled stock destroyed on site, two employees witnessing
    (21 CFR 1304.21(e), 1317.95(d))."""

    def __init__(self, ws: Workspace, product: catalog.ProductInfo,
                 lots: Sequence[inventory.LotInfo], witnesses: Sequence[deaforms.Witness],
                 selected: inventory.LotInfo | None = None, parent: QWidget | None = None
                 ) -> None:
        super().__init__(
            ws, "Record destruction (DEA Form 41)", "destructionDialog", parent,
            save_text="Record and write off",
            intro=f"{product.display_name}: what was destroyed, how, when and where, and the "
                  "two employees who watched it until it could not be retrieved. Saving "
                  "writes the quantity off the lot.")
        self.product_name = product.display_name
        self.lot = self.add_field("lines", "&Lot:", _lot_box(lots, selected), required=True)
        self.quantity = self.add_field("quantity", "&Quantity destroyed:", _quantity(),
                                       required=True)
        if selected is not None:
            self.quantity.setValue(selected.on_hand)
        self.when = DateField(clock.today(), what="date of the destruction")
        self.add_field("destroyed_on", "&Date destroyed:", self.when, required=True)
        self.method = self.add_field(
            "method", "&Method:", QLineEdit(), "How it was made non-retrievable (e.g. a "
            "chemical denaturing kit, incineration).", required=True)
        self.place = self.add_field("place", "&Place:", QLineEdit(),
                                    "Location or business name and address.", required=True)
        self.witness1 = QComboBox()
        self.witness2 = QComboBox()
        for box in (self.witness1, self.witness2):
            box.addItem("(choose)", None)
            for w in witnesses:
                box.addItem(f"{w.name} ({w.role.label})", w.id)
        me = index_of(self.witness1, ws.actor.staff_id)
        if me >= 0:
            self.witness1.setCurrentIndex(me)
        self.add_field("witnesses", "&First witness:", self.witness1, required=True)
        self.add_field("witness2", "&Second witness:", self.witness2,
                       "Two different employees (21 CFR 1317.95(d)).", required=True)
        self.worksheet = QCheckBox("Offer the worksheet PDF after saving")
        self.worksheet.setChecked(True)
        self.add_field("worksheet", "", self.worksheet)
        self.saved.connect(self._offer)

    def collect(self) -> DestructionRequest:
        lines = _chosen_lot(self, self.lot, self.quantity)
        first, second = self.witness1.currentData(), self.witness2.currentData()
        if first is None or second is None:
            raise ValidationError("Choose both witnesses: a destruction has two (21 CFR "
                                  "1317.95(d)).", field="witnesses" if first is None
                                  else "witness2")
        if first == second:
            raise ValidationError("The two witnesses must be two different people.",
                                  field="witness2")
        return DestructionRequest(
            lines=lines, destroyed_on=self.when.value_or_none(), method=self.method.text(),
            place=self.place.text(), witness1_id=first, witness2_id=second,
            request_id=self.request_id)

    def save(self, req: DestructionRequest) -> DeaFormInfo:
        return deaforms.record_destruction(self.ws.sf, self.ws.actor, req)

    def saved_text(self, result: DeaFormInfo) -> str:
        return (f"Recorded the destruction of {result.total_units:,} x {self.product_name} "
                "(DEA Form 41) and wrote it off")

    def _offer(self, info: DeaFormInfo) -> None:
        if self.worksheet.isChecked():
            offer_worksheet(self, info)


LOSS_LABELS = {t: t.label for t in LossType}


class TheftLossDialog(FormDialog):
    """DEA Form 106: a theft or significant loss (21 CFR 1301.76(b))."""

    def __init__(self, ws: Workspace, product: catalog.ProductInfo,
                 lots: Sequence[inventory.LotInfo], selected: inventory.LotInfo | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(
            ws, "Report theft or loss (DEA Form 106)", "theftLossDialog", parent,
            save_text="Record and adjust",
            intro=f"{product.display_name}: tell the DEA Field Division Office in writing "
                  "within one business day of discovery, and file Form 106 online within 45 "
                  "days. Saving records it and takes the quantity off the lot. A minor count "
                  "difference is an adjustment, not a Form 106.")
        self.product_name = product.display_name
        self.lot = self.add_field("lines", "&Lot:", _lot_box(lots, selected), required=True)
        self.quantity = self.add_field("quantity", "&Quantity stolen or lost:", _quantity(),
                                       required=True)
        self.discovered = DateField(clock.today(), what="date of discovery")
        self.add_field("discovered_on", "Date &discovered:", self.discovered, required=True)
        self.happened = DateField(what="date of the theft or loss")
        self.add_field("occurred_on", "Date it &happened:", self.happened,
                       "Leave empty when not known.")
        self.kind = QComboBox()
        self.kind.addItem("(choose)", None)
        for t in LossType:
            self.kind.addItem(LOSS_LABELS[t], t)
        self.add_field("loss_type", "&Type:", self.kind, required=True)
        self.detail = self.add_field("loss_detail", "Wh&at happened:", QLineEdit(),
                                     "Needed for Other.")
        self.carrier = self.add_field("carrier", "Common &carrier:", QLineEdit(),
                                      "Lost in transit: the carrier's name.")
        self.police = QCheckBox("Reported to the police")
        self.add_field("police_notified", "", self.police)
        self.department = self.add_field("police_department", "Police de&partment:",
                                         QLineEdit(), "Name and telephone number.")
        self.measures = self.add_field("security_measures", "&Security measures:",
                                       QLineEdit(), "What was done to prevent another.")
        self.worksheet = QCheckBox("Offer the worksheet PDF after saving")
        self.worksheet.setChecked(True)
        self.add_field("worksheet", "", self.worksheet)
        self.police.toggled.connect(self.department.setEnabled)
        self.department.setEnabled(False)
        self.saved.connect(self._offer)

    def collect(self) -> TheftLossRequest:
        lines = _chosen_lot(self, self.lot, self.quantity)
        return TheftLossRequest(
            lines=lines, discovered_on=self.discovered.value_or_none(),
            occurred_on=self.happened.value_or_none(), loss_type=self.kind.currentData(),
            police_notified=self.police.isChecked(),
            police_department=self.department.text() if self.police.isChecked() else None,
            loss_detail=self.detail.text() or None, carrier=self.carrier.text() or None,
            security_measures=self.measures.text() or None, request_id=self.request_id)

    def save(self, req: TheftLossRequest) -> DeaFormInfo:
        return deaforms.report_theft_or_loss(self.ws.sf, self.ws.actor, req)

    def saved_text(self, result: DeaFormInfo) -> str:
        return (f"Recorded the theft or loss of {result.total_units:,} x {self.product_name} "
                "(DEA Form 106) and adjusted the stock")

    def _offer(self, info: DeaFormInfo) -> None:
        if self.worksheet.isChecked():
            offer_worksheet(self, info)


__all__ = [
    "DestructionDialog",
    "TheftLossDialog",
    "index_of",
    "make_worksheet",
    "offer_worksheet",
]
