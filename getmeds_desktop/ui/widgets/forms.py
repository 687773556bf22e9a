"""Form helpers: aligned label/field rows and messages shown next to fields."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog, QFormLayout, QLabel, QPushButton, QSpinBox, QWidget


def only_default(dialog: QDialog, button: QPushButton | None) -> None:
    """``button`` (Save, Create) is the dialog's one default button. Any other
    push button of a dialog is "auto default": once it has had the focus (Add
    allergy; Cancel, when the focus moved on from a disabled Save), or when it
    comes first after the focus as the dialog opens, Enter presses it. Call once
    the button is in the dialog. ``None``: Enter presses no button (a dialog
    whose buttons post, import or write off: each is pressed on purpose)."""
    for b in dialog.findChildren(QPushButton):
        b.setAutoDefault(False)
        b.setDefault(False)
    if button is not None:
        button.setDefault(True)


def plural(n: int, one: str, many: str | None = None) -> str:
    """ "1 minute", "5 minutes", "1,200 lots" (US English, no "minute(s)")."""
    return f"{n:,} {one if n == 1 else (many or one + 's')}"


def unit_suffix(spin: QSpinBox, one: str, many: str | None = None) -> None:
    """A spin box's unit that agrees with its number ("1 minute", "2 minutes")."""
    def update(value: int) -> None:
        spin.setSuffix(f" {one if value == 1 else (many or one + 's')}")

    spin.valueChanged.connect(update)
    update(spin.value())


def form_layout() -> QFormLayout:
    form = QFormLayout()
    form.setLabelAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
    form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
    form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.DontWrapRows)
    form.setHorizontalSpacing(12)
    form.setVerticalSpacing(8)
    return form


OFFLINE_TEXT = ("Offline: reconnecting to the database. What you typed is kept; you can "
                "save as soon as the status bar shows Connected again.")


class MessageLabel(QLabel):
    """An error (red) or information line under a form; hidden when empty."""

    def __init__(self, object_name: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName(object_name)
        self.setWordWrap(True)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.hide()

    def show_error(self, text: str) -> None:
        self.setProperty("kind", "error")
        self._show(text)

    def show_info(self, text: str) -> None:
        self.setProperty("kind", "info")
        self._show(text)

    def show_warning(self, text: str) -> None:
        self.setProperty("kind", "warning")
        self._show(text)

    def _show(self, text: str) -> None:
        self.style().unpolish(self)
        self.style().polish(self)
        self.setText(text)
        self.setVisible(bool(text))

    def clear_message(self) -> None:
        self.setText("")
        self.hide()


def mark_invalid(widget: QWidget, invalid: bool) -> None:
    """Red border on a field with a problem (stylesheet: [invalid="true"])."""
    widget.setProperty("invalid", invalid)
    widget.style().unpolish(widget)
    widget.style().polish(widget)

