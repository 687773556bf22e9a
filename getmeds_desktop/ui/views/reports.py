"""Reports (completed with the PDF reports): the parameters of each report,
background generation, open or print."""

from __future__ import annotations

import uuid

from PySide6.QtWidgets import QLabel, QMessageBox, QWidget

from ..workspace import Workspace
from .base import Area


class ReportsView(Area):
    def __init__(self, ws: Workspace, parent: QWidget | None = None) -> None:
        super().__init__(ws, "Reports", "PDF reports for managers.", parent)
        self.body.addWidget(QLabel("Reports are not available in this build."))
        self.body.addStretch(1)


def print_label(ws: Workspace, dispense_id: uuid.UUID, parent: QWidget) -> None:
    QMessageBox.information(parent, "GetMeds", "Label printing is not available in this build.")
