"""Inventory: the product list with search and filters, and the stock actions."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QSettings
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QCheckBox, QComboBox, QSpinBox, QWidget

from ...enums import Schedule, StorageCondition
from ...services import catalog, inventory, listing
from ...services.catalog import ReferenceLists
from ...services.context import Perm
from ...services.listing import ProductFilter
from ..tablemodels.models import STORAGE_LABELS, product_model
from ..widgets.forms import unit_suffix
from ..workspace import Workspace
from .base import SearchBox, TableArea


class InventoryView(TableArea):
    settings_key = "inventory"

    def __init__(self, ws: Workspace, parent: QWidget | None = None) -> None:
        super().__init__(ws, "Inventory", "Products, lots and stock on hand.",
                         product_model(ws), "productTable", parent)
        self.categories: list[catalog.CategoryInfo] = []
        self.suppliers: list[catalog.SupplierInfo] = []

        self.search = SearchBox("Search by name or NDC  (Ctrl+F)")
        self.search.setObjectName("productSearch")
        self.search.search.connect(lambda _t: self.reload())
        self.filters.addWidget(self.search, 3)
        self.category = QComboBox()
        self.category.setObjectName("filterCategory")
        self.category.addItem("All categories", None)
        self.category.currentIndexChanged.connect(lambda _i: self.reload())
        self.filters.addWidget(self.category, 1)
        self.storage = QComboBox()
        self.storage.setObjectName("filterStorage")
        self.storage.addItem("Any storage", None)
        for cond in StorageCondition:
            self.storage.addItem(STORAGE_LABELS[cond], cond)
        self.storage.currentIndexChanged.connect(lambda _i: self.reload())
        self.filters.addWidget(self.storage)
        self.schedule = QComboBox()
        self.schedule.setObjectName("filterSchedule")
        self.schedule.addItem("Any schedule", None)
        self.schedule.addItem("Controlled (II-V)", "controlled")
        for s in Schedule:
            if s is not Schedule.NONE:
                self.schedule.addItem(f"Schedule {s.value}", s)
        self.schedule.currentIndexChanged.connect(lambda _i: self.reload())
        self.filters.addWidget(self.schedule)
        self.low = QCheckBox("Low stock")
        self.low.setObjectName("filterLow")
        self.expiring = QCheckBox("Expiring within")
        self.expiring.setObjectName("filterExpiring")
        self.expiring_days = QSpinBox()
        self.expiring_days.setObjectName("filterExpiringDays")
        self.expiring_days.setRange(1, 730)
        self.expiring_days.setValue(30)
        unit_suffix(self.expiring_days, "day")
        self.expired = QCheckBox("Expired on hand")
        self.expired.setObjectName("filterExpired")
        for w in (self.low, self.expiring, self.expired):
            w.toggled.connect(lambda _v: self.reload())
        self.expiring_days.valueChanged.connect(
            lambda _v: self.reload() if self.expiring.isChecked() else None)
        for widget in (self.low, self.expiring, self.expiring_days, self.expired):
            self.filters.addWidget(widget)

        can_write = ws.can(Perm.WRITE_CATALOG)
        self.act_new = self.add_action("actionNewProduct", "New product", "add",
                                       self.new_product, QKeySequence.StandardKey.New,
                                       enabled=can_write, perm=Perm.WRITE_CATALOG)
        self.act_edit = self.add_action("actionEditProduct", "Edit", "edit", self.edit_product,
                                        "Ctrl+E", enabled=False, perm=Perm.WRITE_CATALOG,
                                        needs="a product")
        self.act_receive = self.add_action("actionReceive", "Receive", "receive",
                                           self.receive, "Ctrl+R", perm=Perm.RECEIVE)
        self.act_adjust = self.add_action("actionAdjust", "Adjust", "adjust", self.adjust,
                                          "Ctrl+J", enabled=False, perm=Perm.ADJUST,
                                          needs="a product")
        self.act_status = self.add_action("actionLotStatus", "Quarantine / recall",
                                          "quarantine", self.lot_status, enabled=False,
                                          perm=Perm.LOT_STATUS, needs="a product")
        self.act_lots = self.add_action("actionLots", "Lots && history", "history", self.lots,
                                        "Ctrl+H", enabled=False, needs="a product")
        self.add_action("actionStocktake", "Stocktake", "stocktake", self.stocktake,
                        perm=Perm.STOCKTAKE)
        self.add_action("actionDeaInventory", "DEA inventory…", "stocktake",
                        self.dea_inventory, "Ctrl+Shift+I", perm=Perm.DEA_INVENTORY,
                        tip="Take an initial or biennial DEA inventory of the controlled "
                            "substances (21 CFR 1304.11)")
        can_catalog = ws.can(Perm.WRITE_CATALOG)
        self.import_button = self.add_menu_button("importProducts", "Import", "import", [
            ("actionImportNdc", "FDA NDC Directory…", self.import_ndc, can_catalog),
            ("actionImportProductsCsv", "Products from CSV…",
             lambda: self.import_csv("products"), can_catalog),
        ])
        self.import_button.setEnabled(can_catalog)
        self.add_export_action()
        self.add_action("actionRefreshInventory", "Refresh", "refresh", self.reload, "F5")
        self.add_shortcut("actionFindProduct", QKeySequence.StandardKey.Find,
                          self.search.select_for_typing, text="Find")
        self.row_activated.connect(lambda _r: self.lots())
        self._restore_filters()
        ws.data_changed.connect(self._data_changed)
        ws.reference_lists(self._reference_loaded)

    # ------------------------------------------------------------- filters

    def _reference_loaded(self, lists: ReferenceLists) -> None:
        self.categories, self.suppliers = lists.categories, lists.suppliers
        wanted = QSettings().value(f"{self.settings_key}/category")
        self.category.blockSignals(True)
        for c in self.categories:
            self.category.addItem(c.name, c.id)
            if str(c.id) == wanted:
                self.category.setCurrentIndex(self.category.count() - 1)
        self.category.blockSignals(False)
        if wanted and self.category.currentIndex() > 0 and self._loaded_once:
            self.reload()

    def current_query(self) -> ProductFilter:
        sched = self.schedule.currentData()
        return ProductFilter(
            search=self.search.text(),
            category_id=self.category.currentData(),
            storage=self.storage.currentData(),
            schedule=sched if isinstance(sched, Schedule) else None,
            controlled_only=sched == "controlled",
            low_stock=self.low.isChecked(),
            expiring_within_days=self.expiring_days.value() if self.expiring.isChecked()
            else None,
            expired=self.expired.isChecked(),
        )

    def apply_filter(self, **kw: Any) -> None:
        """Open with a filter (used by the dashboard's counts)."""
        for w in (self.low, self.expiring, self.expired, self.search, self.category,
                  self.storage, self.schedule):
            w.blockSignals(True)
        self.search.clear()
        self.category.setCurrentIndex(0)
        self.storage.setCurrentIndex(0)
        self.schedule.setCurrentIndex(0)
        self.low.setChecked(bool(kw.get("low_stock")))
        days = kw.get("expiring_within_days")
        self.expiring.setChecked(days is not None)
        if days is not None:
            self.expiring_days.setValue(days)
        self.expired.setChecked(bool(kw.get("expired")))
        for w in (self.low, self.expiring, self.expired, self.search, self.category,
                  self.storage, self.schedule):
            w.blockSignals(False)
        self._loaded_once = True
        self.reload()

    def _restore_filters(self) -> None:
        s = QSettings()
        key = self.settings_key
        for w in (self.low, self.expiring, self.expired, self.storage, self.schedule):
            w.blockSignals(True)
        self.low.setChecked(s.value(f"{key}/low") == "true")
        self.expiring.setChecked(s.value(f"{key}/expiring") == "true")
        self.expired.setChecked(s.value(f"{key}/expired") == "true")
        self.expiring_days.setValue(_int_setting(s, f"{key}/expiring_days", 30))
        self.storage.setCurrentIndex(max(_int_setting(s, f"{key}/storage", 0), 0))
        self.schedule.setCurrentIndex(max(_int_setting(s, f"{key}/schedule", 0), 0))
        for w in (self.low, self.expiring, self.expired, self.storage, self.schedule):
            w.blockSignals(False)

    def save_settings(self) -> None:
        super().save_settings()
        s = QSettings()
        key = self.settings_key
        s.setValue(f"{key}/low", "true" if self.low.isChecked() else "false")
        s.setValue(f"{key}/expiring", "true" if self.expiring.isChecked() else "false")
        s.setValue(f"{key}/expired", "true" if self.expired.isChecked() else "false")
        s.setValue(f"{key}/expiring_days", self.expiring_days.value())
        s.setValue(f"{key}/storage", self.storage.currentIndex())
        s.setValue(f"{key}/schedule", self.schedule.currentIndex())
        cat = self.category.currentData()
        s.setValue(f"{key}/category", str(cat) if cat else "")

    # ------------------------------------------------------------- actions

    def selection_changed(self) -> None:
        has = self.selected_row() is not None
        self.act_edit.setEnabled(has and self.ws.can(Perm.WRITE_CATALOG))
        self.act_adjust.setEnabled(has and self.ws.can(Perm.ADJUST))
        self.act_status.setEnabled(has and self.ws.can(Perm.LOT_STATUS))
        self.act_lots.setEnabled(has)

    def _data_changed(self, table: str, ids: set) -> None:
        # products: on hand, expiry and catalogue changes (ids are product ids)
        if table == "products":
            self.model.refresh_rows(list(ids) if ids else None)

    def _with_product(self, then: Any) -> None:
        row = self.selected_row()
        if row is None:
            return
        self.ws.run(lambda: catalog.get_product(self.ws.sf, row.id), then, self.show_error)

    def import_ndc(self) -> None:
        from ..dialogs.data_io import NdcImportDialog

        dlg = NdcImportDialog(self.ws, self)
        dlg.imported.connect(lambda _r: self.reload())
        dlg.open()

    def import_csv(self, kind: str) -> None:
        from ..dialogs.data_io import CsvImportDialog

        dlg = CsvImportDialog(self.ws, kind, self)
        dlg.imported.connect(lambda _r: self.reload())
        dlg.open()

    def new_product(self) -> None:
        from ..dialogs.inventory import ProductEditor

        dlg = ProductEditor(self.ws, self.categories, parent=self)
        dlg.saved.connect(lambda p: self._product_saved(p, new=True))
        dlg.open()

    def edit_product(self) -> None:
        from ..dialogs.inventory import ProductEditor

        def show(p: catalog.ProductInfo) -> None:
            dlg = ProductEditor(self.ws, self.categories, p, parent=self)
            dlg.saved.connect(lambda saved: self._product_saved(saved, new=False))
            dlg.open()

        self._with_product(show)

    def _product_saved(self, p: catalog.ProductInfo, *, new: bool) -> None:
        if new:
            self.search.setText(p.name)
            self.search.flush()
        else:
            self.model.refresh_rows([p.id])

    def receive(self) -> None:
        from ..dialogs.inventory import ReceiveDialog

        row = self.selected_row()
        choice = None
        if row is not None:
            choice = listing.Choice(row.id, " ".join(
                x for x in (row.name, row.strength, row.dosage_form) if x))
        dlg = ReceiveDialog(self.ws, self.suppliers, choice, parent=self)
        dlg.open()

    def adjust(self) -> None:
        from ..dialogs.inventory import AdjustDialog

        def show(data: tuple[catalog.ProductInfo, list[inventory.LotInfo]]) -> None:
            p, lots = data
            dlg = AdjustDialog(self.ws, p, lots, parent=self)
            dlg.open()

        self._with_lots(show, with_empty=True)

    def lot_status(self) -> None:
        from ..dialogs.inventory import LotStatusDialog

        def show(data: tuple[catalog.ProductInfo, list[inventory.LotInfo]]) -> None:
            p, lots = data
            dlg = LotStatusDialog(self.ws, p, lots, parent=self)
            dlg.open()

        self._with_lots(show, with_empty=False)

    def _with_lots(self, then: Any, *, with_empty: bool) -> None:
        row = self.selected_row()
        if row is None:
            return
        sf = self.ws.sf
        self.ws.run(lambda: (catalog.get_product(sf, row.id),
                             inventory.lots_of_product(sf, row.id, with_empty=with_empty)),
                    then, self.show_error)

    def lots(self) -> None:
        from ..dialogs.inventory import LotsDialog

        self._with_product(lambda p: LotsDialog(self.ws, p, self).open())

    def stocktake(self) -> None:
        from ..dialogs.stocktake import StocktakeDialog

        StocktakeDialog(self.ws, self.categories, self).open()

    def dea_inventory(self) -> None:
        from ..dialogs.dea_inventory import DeaInventoryDialog

        DeaInventoryDialog(self.ws, self).open()


def _int_setting(settings: QSettings, key: str, default: int) -> int:
    """A whole number kept in the settings; ``default`` when it is missing or
    unreadable (a hand-edited or damaged settings file)."""
    value = settings.value(key, default)
    if isinstance(value, int | str) and value != "":
        try:
            return int(value)
        except ValueError:
            pass
    return default
