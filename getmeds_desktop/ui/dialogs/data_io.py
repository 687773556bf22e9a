"""Data in and out: the FDA NDC Directory, CSV import with a column mapping and
a dry run, and CSV export of what a table shows (its filters and sort)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ...services import csv_io
from ...services.ndc_import import import_directory
from ..widgets.forms import MessageLabel, only_default
from ..workspace import Workspace

MAX_LISTED = 500


def _listing(problems: Any) -> str:
    lines = [str(p) for p in problems[:MAX_LISTED]]
    if len(problems) > MAX_LISTED:
        lines.append(f"… and {len(problems) - MAX_LISTED:,} more")
    return "\n".join(lines)


def _file_row(edit: QLineEdit, caption: str, filt: str, parent: QWidget) -> QWidget:
    box = QWidget()
    lay = QHBoxLayout(box)
    lay.setContentsMargins(0, 0, 0, 0)
    lay.addWidget(edit, 1)
    browse = QPushButton("Browse…")

    def pick() -> None:
        path, _ = QFileDialog.getOpenFileName(parent, caption, edit.text() or str(Path.home()),
                                              filt)
        if path:
            edit.setText(path)

    browse.clicked.connect(pick)
    lay.addWidget(browse)
    return box


class NdcImportDialog(QDialog):
    """Inventory > Import > FDA NDC Directory."""

    imported = Signal(object)  # ImportResult (not a dry run)

    def __init__(self, ws: Workspace, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ws = ws
        self.setObjectName("ndcImportDialog")
        self.setWindowTitle("Import the FDA NDC Directory")
        self.resize(640, 460)
        root = QVBoxLayout(self)
        intro = MessageLabel("ndcIntro")
        intro.show_info("The FDA publishes the directory as product.txt and package.txt "
                        "(unzip ndctext.zip). Each package becomes a product; importing again "
                        "updates them and never duplicates one.")
        root.addWidget(intro)
        form = QFormLayout()
        self.product_txt = QLineEdit()
        self.product_txt.setObjectName("ndcProductFile")
        self.package_txt = QLineEdit()
        self.package_txt.setObjectName("ndcPackageFile")
        form.addRow("&product.txt:", _file_row(self.product_txt, "product.txt",
                                               "Text files (*.txt);;All files (*)", self))
        form.addRow("p&ackage.txt:", _file_row(self.package_txt, "package.txt",
                                               "Text files (*.txt);;All files (*)", self))
        self.product_txt.textChanged.connect(self._guess_package)
        self.dry_run = QCheckBox("&Check only (dry run): count and list problems, write nothing")
        form.addRow("", self.dry_run)
        root.addLayout(form)
        self.message = MessageLabel("ndcMessage")
        root.addWidget(self.message)
        self.problems = QPlainTextEdit()
        self.problems.setObjectName("ndcProblems")
        self.problems.setReadOnly(True)
        self.problems.setPlaceholderText("Rows that cannot be used are listed here with their "
                                         "file and line.")
        root.addWidget(self.problems, 1)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.import_button = buttons.addButton("&Import",
                                               QDialogButtonBox.ButtonRole.ActionRole)
        self.import_button.setObjectName("ndcImportButton")
        self.import_button.clicked.connect(self.start)
        buttons.rejected.connect(self.reject)
        root.addWidget(buttons)
        only_default(self, None)  # an import starts by its button, never by Enter
        self.result: Any = None

    def _guess_package(self, text: str) -> None:
        p = Path(text)
        if p.name.lower() == "product.txt" and not self.package_txt.text():
            sibling = p.with_name("package.txt")
            if sibling.is_file():
                self.package_txt.setText(str(sibling))

    def start(self) -> None:
        prod, pack = self.product_txt.text().strip(), self.package_txt.text().strip()
        if not prod or not pack:
            self.message.show_error("Choose both files: product.txt and package.txt.")
            return
        self.import_button.setEnabled(False)
        self.problems.clear()
        dry = self.dry_run.isChecked()
        sf, actor = self.ws.sf, self.ws.actor
        self.message.show_info("Checking…" if dry else "Importing…")

        def work(state: Any) -> Any:
            return import_directory(sf, actor, Path(prod), Path(pack), dry_run=dry,
                                    progress=state.progress)

        self.ws.run(work, self._done, self._failed,
                    label="Checking the NDC Directory…" if dry else
                    "Importing the NDC Directory…", parent=self, lane="io")

    def _done(self, r: Any) -> None:
        self.result = r
        self.import_button.setEnabled(True)
        verb = "would be" if r.dry_run else "were"
        text = (f"{r.created:,} new and {r.updated:,} existing products {verb} imported "
                f"({r.seconds:.0f} s).")
        if r.problems:
            text += f" {len(r.problems):,} rows were skipped (listed below)."
        self.message.show_info(text)
        self.problems.setPlainText(_listing(r.problems))
        if not r.dry_run:
            self.imported.emit(r)

    def _failed(self, exc: BaseException) -> None:
        self.import_button.setEnabled(True)
        self.message.show_error(str(exc))


class CsvImportDialog(QDialog):
    """Import patients or products from CSV: choose the file, check the column
    for each field, check (dry run), import."""

    imported = Signal(object)  # CsvImportResult (written)

    def __init__(self, ws: Workspace, kind: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ws = ws
        self.kind = kind
        self.data: csv_io.CsvFile | None = None
        self.setObjectName("csvImportDialog")
        self.setWindowTitle(f"Import {kind} from CSV")
        self.resize(760, 760)
        root = QVBoxLayout(self)
        top = QFormLayout()
        self.file = QLineEdit()
        self.file.setObjectName("csvFile")
        self.file.editingFinished.connect(self.load)
        row = _file_row(self.file, "CSV file", "CSV files (*.csv *.txt);;All files (*)", self)
        top.addRow("&File:", row)
        root.addLayout(top)
        self.preview = QTableWidget(0, 0)
        self.preview.setObjectName("csvPreview")
        self.preview.setMaximumHeight(130)
        self.preview.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        root.addWidget(self.preview)
        box = QGroupBox("Columns: which column of the file holds each field")
        self.mapping_form = QFormLayout(box)
        self.combos: dict[str, QComboBox] = {}
        for f in csv_io.FIELDS[kind]:
            combo = QComboBox()
            combo.setObjectName(f"map_{f.key}")
            combo.addItem("(not in the file)", None)
            self.combos[f.key] = combo
            self.mapping_form.addRow(f"{f.label}{' *' if f.required else ''}:", combo)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(box)
        root.addWidget(scroll, 1)
        self.message = MessageLabel("csvMessage")
        root.addWidget(self.message)
        self.problems = QPlainTextEdit()
        self.problems.setObjectName("csvProblems")
        self.problems.setReadOnly(True)
        self.problems.setMaximumHeight(110)
        self.problems.setPlaceholderText("Check lists every row with an error and its line, "
                                         "before anything is written.")
        root.addWidget(self.problems)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.check_button = buttons.addButton("&Check", QDialogButtonBox.ButtonRole.ActionRole)
        self.check_button.setObjectName("csvCheckButton")
        self.import_button = buttons.addButton("&Import",
                                               QDialogButtonBox.ButtonRole.ActionRole)
        self.import_button.setObjectName("csvImportButton")
        self.check_button.clicked.connect(lambda: self.start(dry_run=True))
        self.import_button.clicked.connect(lambda: self.start(dry_run=False))
        buttons.rejected.connect(self.reject)
        root.addWidget(buttons)
        only_default(self, self.check_button)  # Enter checks (writes nothing)
        self.file.textChanged.connect(lambda _t: self._enable(False))
        self._enable(False)
        self.result: Any = None

    def _enable(self, ready: bool) -> None:
        self.check_button.setEnabled(ready)
        self.import_button.setEnabled(ready)

    def load(self) -> None:
        path = self.file.text().strip()
        if not path:
            return
        self.ws.run(lambda: csv_io.read_csv(Path(path)), self._loaded, self._failed,
                    parent=self, lane="io")

    def _loaded(self, data: csv_io.CsvFile) -> None:
        self.data = data
        self.preview.clear()
        self.preview.setColumnCount(len(data.headers))
        self.preview.setHorizontalHeaderLabels(list(data.headers))
        rows = data.preview
        self.preview.setRowCount(len(rows))
        for r, (_line, values) in enumerate(rows):
            for c, value in enumerate(values[:len(data.headers)]):
                self.preview.setItem(r, c, QTableWidgetItem(value))
        guess = csv_io.guess_mapping(data.headers, self.kind)
        for key, combo in self.combos.items():
            combo.clear()
            combo.addItem("(not in the file)", None)
            for h in data.headers:
                combo.addItem(h, h)
            combo.setCurrentIndex(max(combo.findData(guess.get(key)), 0))
        self.message.show_info(f"{data.row_count:,} rows in {data.path.name}. Check the "
                               "columns, then Check (nothing is written) or Import.")
        self.problems.clear()
        self._enable(True)

    def mapping(self) -> dict[str, str | None]:
        return {key: combo.currentData() for key, combo in self.combos.items()}

    def start(self, *, dry_run: bool) -> None:
        if self.data is None:
            return
        data, mapping, kind = self.data, self.mapping(), self.kind
        sf, actor = self.ws.sf, self.ws.actor
        self._enable(False)

        def work(state: Any) -> Any:
            return csv_io.import_csv(sf, actor, kind, data, mapping, dry_run=dry_run,
                                     progress=state.progress)

        self.ws.run(work, self._done, self._failed,
                    label="Checking…" if dry_run else f"Importing {kind}…", parent=self,
                    lane="io")

    def _done(self, r: csv_io.CsvImportResult) -> None:
        self.result = r
        self._enable(True)
        if r.problems:
            n = len(r.problems)
            self.message.show_error(f"{n:,} {'row has' if n == 1 else 'rows have'} errors; "
                                    "nothing was written. Correct the file (or the columns) "
                                    "and try again.")
            self.problems.setPlainText(_listing(r.problems))
            return
        self.problems.clear()
        verb = "would be" if r.dry_run else "were"
        self.message.show_info(f"{r.created:,} new and {r.updated:,} existing {self.kind} "
                               f"{verb} imported." + (" Press Import to write them."
                                                      if r.dry_run else ""))
        if not r.dry_run:
            self.imported.emit(r)

    def _failed(self, exc: BaseException) -> None:
        self._enable(self.data is not None)
        self.message.show_error(str(exc))


def export_view(area: Any, parent: QWidget | None = None, path: str | None = None) -> None:
    """Write every row the table's query matches (not only the loaded ones), with
    the columns it shows, to a CSV file the user chooses."""
    model = area.model
    if path is None:
        default = str(Path.home() / f"{area.settings_key}.csv")
        path, _ = QFileDialog.getSaveFileName(parent or area, "Export to CSV", default,
                                              "CSV files (*.csv)")
        if not path:
            return
    if not path.lower().endswith(".csv"):
        path += ".csv"
    rows, columns = model.all_rows(), list(model.columns)

    def work(state: Any) -> int:
        def values() -> Any:
            for n, r in enumerate(rows(), start=1):
                if n % 2000 == 0:
                    state.progress(f"{n:,} rows written…")
                yield [c.value(r) for c in columns]

        return csv_io.write_csv(Path(path), [c.title for c in columns], values())

    area.ws.run(work, lambda n: area.export_done(n, path), area.show_error,
                label="Exporting…", parent=area, lane="io")


__all__ = ["CsvImportDialog", "NdcImportDialog", "export_view"]
