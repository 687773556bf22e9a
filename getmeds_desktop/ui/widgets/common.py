"""Widgets shared by the forms: a form dialog that saves in the background, a
type-ahead picker, date and money fields."""

from __future__ import annotations

import contextlib
import datetime as dt
import decimal
import re
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from PySide6.QtCore import QDate, QEvent, QObject, QStringListModel, Qt, QTimer, Signal
from PySide6.QtGui import QFocusEvent, QKeyEvent, QKeySequence, QShortcut, QShowEvent
from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractItemView,
    QApplication,
    QCalendarWidget,
    QComboBox,
    QCompleter,
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QTableWidget,
    QVBoxLayout,
    QWidget,
)

from ...errors import GetMedsError
from ...services import barcodes
from ...services.errors import DomainError, StaleEdit, ValidationError
from ...services.listing import Choice
from ..icons import icon
from ..workspace import Workspace
from .forms import OFFLINE_TEXT, MessageLabel, form_layout, mark_invalid, only_default

W = TypeVar("W", bound=QWidget)


class FormDialog(QDialog):
    """Collects values, saves them through a service in the worker thread, and
    shows a refusal next to the field it concerns.

    Enter saves, wherever the focus is (a text box that takes several lines keeps
    its Enter; Ctrl+Enter saves there): no other button of the form is ever the
    default button. Escape, Cancel or closing the window with changes asks
    "Discard changes?" first."""

    saved = Signal(object)

    def __init__(self, ws: Workspace, title: str, object_name: str,
                 parent: QWidget | None = None, *, save_text: str = "Save",
                 intro: str = "") -> None:
        super().__init__(parent)
        self.ws = ws
        self.setObjectName(object_name)
        self.setWindowTitle(title)
        self.setModal(True)
        # one save, however often Save is pressed or a dropped connection retried
        self.request_id = uuid.uuid4()
        self.new_id = uuid.uuid4()  # the id of a record this form creates
        self.fields: dict[str, QWidget] = {}
        self.root = QVBoxLayout(self)
        self.root.setContentsMargins(20, 16, 20, 16)
        self.root.setSpacing(10)
        if intro:
            label = QLabel(intro)
            label.setWordWrap(True)
            label.setObjectName("hint")
            self.root.addWidget(label)
        # "changed by someone else while you were editing", with Reload
        self.changed_bar = QWidget()
        self.changed_bar.setObjectName("changedBar")
        bar = QHBoxLayout(self.changed_bar)
        bar.setContentsMargins(0, 0, 0, 0)
        self.changed_text = MessageLabel("changedNotice")
        bar.addWidget(self.changed_text, 1)
        self.reload_button = QPushButton("Reload")
        self.reload_button.setObjectName("reloadRecord")
        self.reload_button.setAutoDefault(False)
        self.reload_button.clicked.connect(self._reload_clicked)
        bar.addWidget(self.reload_button)
        self.changed_bar.hide()
        self.root.addWidget(self.changed_bar)
        self.form = form_layout()
        self.root.addLayout(self.form)
        self.required_note = QLabel("* required")
        self.required_note.setObjectName("requiredNote")
        self.required_note.hide()
        self.root.addWidget(self.required_note)
        self.offline = MessageLabel(f"{object_name}Offline")
        self.root.addWidget(self.offline)
        self.message = MessageLabel(f"{object_name}Error")
        self.root.addWidget(self.message)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                                        | QDialogButtonBox.StandardButton.Cancel)
        self.ok_button = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.ok_button.setText(save_text)
        self.ok_button.setObjectName(f"{object_name}Save")
        self.ok_button.setDefault(True)
        self.buttons.accepted.connect(self.submit)
        self.buttons.rejected.connect(self.reject)
        self.root.addWidget(self.buttons)
        self.cancel_button = self.buttons.button(QDialogButtonBox.StandardButton.Cancel)
        self.cancel_button.setObjectName(f"{object_name}Cancel")
        for keys in ("Ctrl+Return", "Ctrl+Enter"):
            QShortcut(QKeySequence(keys), self, self._enter_pressed)
        self._baseline: tuple[Any, ...] | None = None  # what the fields held when shown
        self.discard_box: QMessageBox | None = None
        self.setMinimumWidth(460)
        self._saving = False
        self._watch: tuple[str, uuid.UUID, int, Callable[[], Any]] | None = None
        self._latest: Any = None
        ws.connection_state_changed.connect(self._connection_changed)
        ws.data_changed.connect(self._data_changed)
        self._connection_changed(ws.connection_state)

    def add_field(self, key: str, label: str, widget: W, hint: str = "", *,
                  required: bool = False) -> W:
        """A labelled input; ``required`` marks its label with an asterisk (and
        the form says once what the asterisk means)."""
        widget.setObjectName(f"field_{key}")
        if required:
            label = f"{label.removesuffix(':')}*:" if label else label
            widget.setAccessibleDescription("Required")
            widget.setProperty("required", True)
            self.required_note.show()
        if hint:
            box = QWidget()
            lay = QVBoxLayout(box)
            lay.setContentsMargins(0, 0, 0, 0)
            lay.setSpacing(2)
            lay.addWidget(widget)
            h = QLabel(hint)
            h.setObjectName("hint")
            h.setWordWrap(True)
            lay.addWidget(h)
            self.form.addRow(label, box)
        else:
            self.form.addRow(label, widget)
        self.fields[key] = widget
        return widget

    # ------------------------------------------------- keyboard and closing

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802 - Qt API
        if self._baseline is None:
            self._only_save_is_default()
            self._show_beginnings()
            self._baseline = self._snapshot()
            for view in self.findChildren(QAbstractItemView):
                view.installEventFilter(self)
        super().showEvent(event)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt API
        """Enter in a table cell being edited: the table keeps the key (the cell's
        editor commits what was typed), and the form is saved too."""
        if (event.type() == QEvent.Type.KeyPress and isinstance(watched, QAbstractItemView)
                and isinstance(event, QKeyEvent)
                and event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter)
                and not event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier):
            focus = QApplication.focusWidget()
            if focus is not None and focus is not watched and watched.isAncestorOf(focus):
                self._enter_pressed()
        return super().eventFilter(watched, event)

    def _show_beginnings(self) -> None:
        """A long value filled in shows its beginning, not its end (a line edit
        scrolls to the cursor, which setText puts at the end)."""
        for edit in self.findChildren(QLineEdit):
            if not edit.hasFocus():
                edit.setCursorPosition(0)

    def _only_save_is_default(self) -> None:
        only_default(self, self.ok_button)  # in the dialog now: its default for good

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 - Qt API
        mods = event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and \
                mods == Qt.KeyboardModifier.NoModifier:
            event.accept()
            self._enter_pressed()
            return
        super().keyPressEvent(event)

    def _enter_pressed(self) -> None:
        # after the event: a table cell being edited commits what was typed
        # first (its delegate does that on the event queue)
        QTimer.singleShot(0, self, self._save_from_keyboard)

    def _save_from_keyboard(self) -> None:
        if self.isVisible() and self.ok_button.isEnabled():
            self.submit()

    def _snapshot(self) -> tuple[Any, ...]:
        """What every input of the form holds (a spin box's or a date's text is in
        its line edit)."""
        out: list[Any] = []
        for w in self.findChildren(QWidget):
            if isinstance(w, QLineEdit):
                out.append(w.text())
            elif isinstance(w, QPlainTextEdit):
                out.append(w.toPlainText())
            elif isinstance(w, QComboBox):
                out.append(w.currentIndex())
            elif isinstance(w, QAbstractButton) and w.isCheckable():
                out.append(w.isChecked())
            elif isinstance(w, QTableWidget):
                out.append(tuple(
                    (item.text() if (item := w.item(r, c)) is not None else "")
                    for r in range(w.rowCount()) for c in range(w.columnCount())))
        return tuple(out)

    def has_changes(self) -> bool:
        return self._baseline is not None and self._snapshot() != self._baseline

    @contextlib.contextmanager
    def filling(self) -> Iterator[None]:
        """Fields the program fills in after the form was shown (a default that
        arrives late) are not the user's changes; a form the user had changed
        already stays changed."""
        untouched = not self.has_changes()
        yield
        if self._baseline is not None and untouched:
            self._baseline = self._snapshot()

    def reject(self) -> None:
        """Escape, Cancel and the window's close button: typed work is never
        thrown away without asking."""
        if not self.has_changes() or self.discard_box is not None:
            if self.discard_box is None:
                super().reject()
            return
        box = QMessageBox(QMessageBox.Icon.Question, "Discard changes?",
                          f"Discard what you typed in {self.windowTitle()}?",
                          QMessageBox.StandardButton.NoButton, self)
        box.setObjectName("discardChanges")
        discard = box.addButton("Discard changes", QMessageBox.ButtonRole.DestructiveRole)
        discard.setObjectName("discardChangesYes")
        keep = box.addButton("Keep editing", QMessageBox.ButtonRole.RejectRole)
        keep.setObjectName("discardChangesNo")
        box.setDefaultButton(keep)
        box.setEscapeButton(keep)
        self.discard_box = box

        def answered(_result: int) -> None:
            self.discard_box = None
            box.deleteLater()
            if box.clickedButton() is discard:
                super(FormDialog, self).reject()

        box.finished.connect(answered)
        box.open()

    # subclasses implement these two
    def collect(self) -> Any:
        """Read the widgets (GUI thread). May raise DomainError for local checks."""
        raise NotImplementedError

    def save(self, values: Any) -> Any:
        """Call the service (worker thread)."""
        raise NotImplementedError

    def saved_text(self, result: Any) -> str:
        """What the status bar says once saved; subclasses say what was saved."""
        return f"{self.windowTitle()}: saved."

    # the kind of offline write this form's save is (sync.outbox.Kind), when it
    # may be saved on the offline copy while the server cannot be reached
    offline_kind: Any = None

    def _writable(self) -> bool:
        return self.ws.online or (self.offline_kind is not None
                                  and self.ws.writable(self.offline_kind))

    def submit(self) -> None:
        if self._saving or not self._writable():
            return
        for w in self.fields.values():
            mark_invalid(w, False)
        self.message.clear_message()
        try:
            values = self.collect()
        except DomainError as exc:
            self._failed(exc)
            return
        self._saving = True
        self._update_ok()
        self.ws.run(lambda: self.save(values), self._saved, self._failed,
                    label=f"{self.windowTitle()}…", parent=self)

    def _update_ok(self) -> None:
        self.ok_button.setEnabled(not self._saving and self._writable())

    def _connection_changed(self, state: str) -> None:
        if state == "connected":
            self.offline.clear_message()
        elif self._writable():
            self.offline.show_warning("Offline: this is saved on this workstation and sent "
                                      "to the server when it answers.")
        else:
            self.offline.show_warning(OFFLINE_TEXT)
        self._update_ok()

    # ------------------------------------------- edited underneath by others

    def watch_record(self, table: str, record_id: uuid.UUID, version: int,
                     load: Callable[[], Any]) -> None:
        """Tell the user when the record being edited changes elsewhere.
        ``load`` (worker thread) returns the record's current info, which has
        ``version``, ``updated_by`` and ``updated_at``."""
        self._watch = (table, record_id, version, load)

    def reload_record(self, info: Any) -> None:
        """Subclasses that watch a record put ``info`` into the fields."""
        raise NotImplementedError

    def _data_changed(self, table: str, ids: set) -> None:
        if self._watch is None or self._saving:
            return
        watched, record_id, _version, load = self._watch
        if table != watched or (ids and record_id not in ids):
            return
        self.ws.run(load, self._check_changed, lambda _exc: None)

    def _check_changed(self, info: Any) -> None:
        if self._watch is None or self._saving or info.version == self._watch[2]:
            return
        self._latest = info
        who = info.updated_by or "another user"
        from ..tablemodels.models import local_time

        self.changed_text.show_warning(
            f"Changed by {who} at {local_time(info.updated_at)} while you were editing. "
            "Reload to see their version (what you typed here is replaced); saving "
            "without reloading is refused.")
        self.changed_bar.show()

    def _reload_clicked(self) -> None:
        info = self._latest
        if info is None or self._watch is None:
            return
        table, record_id, _version, load = self._watch
        self._watch = (table, record_id, info.version, load)
        self.reload_record(info)
        self._show_beginnings()
        self._baseline = self._snapshot()  # what is shown is the record again
        self.changed_bar.hide()
        self.message.clear_message()

    def _saved(self, result: Any) -> None:
        self._saving = False
        self._update_ok()
        if self.discard_box is not None:  # asked while saving: saved, nothing to discard
            self.discard_box.done(0)
        self.ws.tell(self.saved_text(result))
        self.saved.emit(result)
        self.accept()

    def _failed(self, exc: BaseException) -> None:
        self._saving = False
        self._update_ok()
        field = getattr(exc, "field", None)
        widget = self.fields.get(field) if field else None
        if widget is not None:
            mark_invalid(widget, True)
            widget.setFocus()
        text = str(exc) if isinstance(exc, GetMedsError) else f"{type(exc).__name__}: {exc}"
        if isinstance(exc, StaleEdit):
            text += " (Close this window and open the record again.)"
        self.message.show_error(text)


class Picker(QWidget):
    """Type-ahead chooser: type a few letters, pick from what the database finds."""

    chosen = Signal(object)  # Choice or None

    def __init__(self, ws: Workspace, search: Callable[[str], Sequence[Choice]],
                 placeholder: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ws = ws
        self._search = search
        self._choices: list[Choice] = []
        self.choice: Choice | None = None
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(2)
        self.edit = QLineEdit()
        self.edit.setPlaceholderText(placeholder)
        self.edit.setClearButtonEnabled(True)
        lay.addWidget(self.edit)
        self.detail = QLabel("")
        self.detail.setObjectName("hint")
        lay.addWidget(self.detail)
        self._model = QStringListModel(self)
        self.completer = QCompleter(self._model, self)
        self.completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.completer.setCompletionMode(QCompleter.CompletionMode.UnfilteredPopupCompletion)
        self.completer.setMaxVisibleItems(12)
        # activated(QString) is the signal's first overload, the one connect() takes
        # (the other carries a QModelIndex)
        self.completer.activated.connect(self._picked_text)
        self.edit.setCompleter(self.completer)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(200)
        self._timer.timeout.connect(self._run_search)
        self.edit.textEdited.connect(self._edited)
        self.setFocusProxy(self.edit)

    def _edited(self, _text: str) -> None:
        if self.choice is not None:
            self.choice = None
            self.detail.setText("")
            self.chosen.emit(None)
        self._timer.start()

    def _run_search(self) -> None:
        text = self.edit.text().strip()
        if len(text) < 2:
            return
        self.ws.run(lambda: self._search(text), lambda res: self._results(text, res),
                    lambda exc: self.detail.setText(str(exc)))

    def _results(self, text: str, choices: Sequence[Choice]) -> None:
        if text != self.edit.text().strip():
            return  # typing went on: a newer search follows
        self._choices = list(choices)
        self._model.setStringList([self._display(c) for c in choices])
        if not choices:
            self.detail.setText("No match.")
            return
        self.detail.setText("")
        self.completer.complete()

    @staticmethod
    def _display(c: Choice) -> str:
        return f"{c.label}  ·  {c.detail}" if c.detail else c.label

    def _picked_text(self, text: str) -> None:
        for c in self._choices:
            if self._display(c) == text:
                self.set_choice(c)
                return

    def set_choice(self, choice: Choice | None) -> None:
        self.choice = choice
        self.edit.blockSignals(True)
        self.edit.setText(choice.label if choice else "")
        self.edit.setCursorPosition(0)  # a long name shows its beginning
        self.edit.blockSignals(False)
        self.detail.setText(choice.detail if choice else "")
        self.chosen.emit(choice)

    def results(self) -> list[Choice]:
        return list(self._choices)


_ISO_DATE = re.compile(r"(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})")
_US_DATE = re.compile(r"(\d{1,2})[/-](\d{1,2})[/-](\d{4})")
DATE_EXAMPLE = "1985-03-14 or 03/14/1985"


def parse_date(text: str) -> dt.date | None:
    """A typed date: year-month-day (1985-03-14) or the US month/day/year
    (03/14/1985), with one or two digits for month and day, or the eight digits
    without separators (19850314). Nothing is guessed: a two-digit year, a 13th
    month or a February 30 is refused with a message that says so, never turned
    into another date. Empty text is None."""
    text = text.strip()
    if not text:
        return None
    if m := _ISO_DATE.fullmatch(text):
        year, month, day = (int(g) for g in m.groups())
    elif m := _US_DATE.fullmatch(text):
        month, day, year = (int(g) for g in m.groups())
    elif text.isdigit() and len(text) == 8:
        year, month, day = int(text[:4]), int(text[4:6]), int(text[6:])
    else:
        raise ValidationError(f"\u201c{text}\u201d is not a date: type it as {DATE_EXAMPLE} "
                              "(the year with four digits).")
    try:
        return dt.date(year, month, day)
    except ValueError:
        if not 1 <= month <= 12:
            problem = f"there is no month {month}"
        else:
            problem = f"{dt.date(2000, month, 1):%B} has no day {day}"
            if month == 2 and day == 29:
                problem = f"{year} is not a leap year"
        raise ValidationError(f"\u201c{text}\u201d is not a date: {problem}.") from None


class DateField(QLineEdit):
    """A date typed with separators (1985-03-14, or 03/14/1985 as written in the
    US) or picked from the calendar button; shown as 1985-03-14 once typed.

    Unlike a QDateEdit, typing never moves into another part of the date nor
    changes one, and the field can be empty: a form reads ``value()`` (refused
    when empty or not a date) or ``value_or_none()``. ``what`` names the date in
    messages ("date of birth")."""

    date_changed = Signal(object)  # dt.date | None, when the typed date is complete

    def __init__(self, value: dt.date | None = None, parent: QWidget | None = None, *,
                 what: str = "date") -> None:
        super().__init__(parent)
        self.what = what
        self.setPlaceholderText("YYYY-MM-DD or MM/DD/YYYY")
        self.setToolTip(f"Type the {what} as {DATE_EXAMPLE}, or pick it from the calendar.")
        self.setMaxLength(16)
        self.calendar_action = self.addAction(icon("calendar"),
                                              QLineEdit.ActionPosition.TrailingPosition)
        self.calendar_action.setToolTip("Pick from the calendar")
        self.calendar_action.triggered.connect(self._pick)
        self._calendar: QCalendarWidget | None = None
        self.editingFinished.connect(self._finished)
        if value is not None:
            self.set_date(value)

    # ------------------------------------------------------------ reading

    def _field(self) -> str | None:
        name = self.objectName()
        return name.removeprefix("field_") if name.startswith("field_") else None

    def value_or_none(self) -> dt.date | None:
        try:
            return parse_date(self.text())
        except ValidationError as exc:
            raise ValidationError(str(exc), field=self._field()) from None

    def value(self) -> dt.date:
        d = self.value_or_none()
        if d is None:
            raise ValidationError(f"Enter the {self.what} ({DATE_EXAMPLE}).",
                                  field=self._field())
        return d

    def set_date(self, value: dt.date | None) -> None:
        self.setText(value.isoformat() if value is not None else "")
        self.setCursorPosition(0)
        mark_invalid(self, False)
        self.date_changed.emit(value)

    # ------------------------------------------------------------ typing

    def _finished(self) -> None:
        """Leaving the field: a date is shown the one way (1985-03-14); what is not
        a date is marked and says why in its tooltip, and stays as typed."""
        try:
            d = parse_date(self.text())
        except ValidationError as exc:
            mark_invalid(self, True)
            self.setToolTip(str(exc))
            return
        self.setToolTip(f"Type the {self.what} as {DATE_EXAMPLE}, or pick it from the "
                        "calendar.")
        if d is not None and self.text() != d.isoformat():
            self.setText(d.isoformat())
        mark_invalid(self, False)
        self.date_changed.emit(d)

    def _pick(self) -> None:
        cal = QCalendarWidget(self)
        cal.setObjectName("datePopup")
        cal.setWindowFlags(Qt.WindowType.Popup)
        cal.setGridVisible(True)
        try:
            current = parse_date(self.text())
        except ValidationError:
            current = None
        if current is not None:
            cal.setSelectedDate(QDate(current.year, current.month, current.day))
        cal.clicked.connect(lambda q: self._picked(cal, q))
        cal.activated.connect(lambda q: self._picked(cal, q))
        cal.move(self.mapToGlobal(self.rect().bottomLeft()))
        self._calendar = cal
        cal.show()
        cal.setFocus()

    def _picked(self, cal: QCalendarWidget, q: QDate) -> None:
        cal.close()
        cal.deleteLater()
        self._calendar = None
        self.set_date(dt.date(q.year(), q.month(), q.day()))
        self.setFocus()


class ScanField(QLineEdit):
    """What a keyboard-wedge scanner types, ended by Enter.

    Enter emits ``scanned`` and stops there (it never also presses the dialog's
    default button); the GS1 group separator a scanner sends between element
    strings (ASCII 29) is kept, where a plain line edit would drop it. After each
    scan, and whenever the field takes the focus, its text is selected: the next
    scan replaces it instead of being added to it.
    """

    scanned = Signal(str)
    GS = barcodes.GS

    def __init__(self, placeholder: str = "Scan the package barcode or type its NDC, then Enter",
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setPlaceholderText(placeholder)

    def keyPressEvent(self, event: Any) -> None:  # noqa: N802 - Qt API
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and not (
                event.modifiers() & Qt.KeyboardModifier.ControlModifier):
            event.accept()
            self.selectAll()
            self.scanned.emit(self.text())
            if self.hasFocus():
                self.selectAll()  # what the scan did may have set the text again
            return
        if event.text() == self.GS:
            self.insert(self.GS)
            event.accept()
            return
        super().keyPressEvent(event)

    def focusInEvent(self, event: QFocusEvent) -> None:  # noqa: N802 - Qt API
        super().focusInEvent(event)
        # after the focus event: a mouse click would place the cursor over it
        QTimer.singleShot(0, self, self.selectAll)


class MoneyField(QLineEdit):
    def __init__(self, value: decimal.Decimal | float | str = "0.00",
                 parent: QWidget | None = None) -> None:
        super().__init__(str(value), parent)
        self.setAlignment(Qt.AlignmentFlag.AlignRight)
        self.setPlaceholderText("0.00")

