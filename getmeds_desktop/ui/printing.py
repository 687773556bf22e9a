"""Printing a PDF we made (reports, labels) with QtPdf + QPrinter, and opening it
in the system viewer."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QMarginsF, QRectF, QSizeF, QUrl
from PySide6.QtGui import QDesktopServices, QPageLayout, QPageSize, QPainter
from PySide6.QtPdf import QPdfDocument
from PySide6.QtPrintSupport import QPrintDialog, QPrinter
from PySide6.QtWidgets import QDialog, QMessageBox, QWidget


def open_pdf(path: Path) -> bool:
    return QDesktopServices.openUrl(QUrl.fromLocalFile(str(path)))


def print_pdf(path: Path, parent: QWidget | None, *, label_inches: tuple[float, float] | None
              = None, ask: bool = True, output: Path | None = None) -> bool:
    """Print every page of ``path``; a label gets its own page size. ``output``
    prints to a PDF file instead of a printer. Returns whether anything printed."""
    # The document lives for this call only: no parent (a parent would keep every
    # printed document alive as its child). Qt takes a null parent; PySide6's
    # stub wants a QObject.
    doc = QPdfDocument(None)  # type: ignore[call-overload]
    if doc.load(str(path)) != QPdfDocument.Error.None_:
        QMessageBox.warning(parent, "GetMeds", f"The PDF {path} cannot be read for printing.")
        return False
    printer = QPrinter(QPrinter.PrinterMode.HighResolution)
    printer.setDocName(path.stem)
    if output is not None:
        printer.setOutputFormat(QPrinter.OutputFormat.PdfFormat)
        printer.setOutputFileName(str(output))
    if label_inches is not None:
        w, h = label_inches
        printer.setPageLayout(QPageLayout(
            QPageSize(QSizeF(w, h), QPageSize.Unit.Inch, "Label"),
            QPageLayout.Orientation.Portrait, QMarginsF(0, 0, 0, 0)))
    if ask:
        dialog = QPrintDialog(printer, parent)
        dialog.setWindowTitle("Print label" if label_inches else "Print report")
        if dialog.exec() != QDialog.DialogCode.Accepted:
            return False
    painter = QPainter()
    if not painter.begin(printer):
        QMessageBox.warning(parent, "GetMeds", "The printer could not be started.")
        return False
    try:
        dpi = printer.resolution()
        for page in range(doc.pageCount()):
            if page:
                printer.newPage()
            size_pt = doc.pagePointSize(page)
            target = printer.pageLayout().paintRectPixels(dpi)
            scale = min(target.width() / size_pt.width(), target.height() / size_pt.height())
            image = doc.render(page, (size_pt * scale).toSize())
            painter.drawImage(QRectF(0, 0, image.width(), image.height()), image)
    finally:
        painter.end()
        doc.close()
    return True
