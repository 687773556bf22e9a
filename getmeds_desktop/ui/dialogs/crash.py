"""What the user sees when GetMeds hits a bug: a short message and the log path."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QMessageBox, QWidget


def show_crash_dialog(parent: QWidget | None, log_path: Path, summary: str) -> None:
    box = QMessageBox(parent)
    box.setObjectName("crashDialog")
    box.setIcon(QMessageBox.Icon.Warning)
    box.setWindowTitle("GetMeds: unexpected problem")
    box.setText("Something went wrong inside GetMeds. Your saved work is safe and you can "
                "keep working.")
    box.setInformativeText(
        f"The details were written to the log file:\n{log_path}\n\n"
        "If this happens again, please send that file to your IT support.")
    box.setDetailedText(summary)
    box.setStandardButtons(QMessageBox.StandardButton.Ok)
    box.open()
