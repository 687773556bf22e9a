"""First run: an empty database needs its first administrator account."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QLineEdit,
    QVBoxLayout,
    QWidget,
)

from ...enums import Role
from ...startup import OpenedDatabase
from ..tasks import TaskManager
from ..widgets.forms import MessageLabel, form_layout, mark_invalid, only_default

if TYPE_CHECKING:
    from ...services.staff import StaffInfo


class FirstAdminDialog(QDialog):
    def __init__(self, opened: OpenedDatabase, tasks: TaskManager,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("firstAdminDialog")
        self.setWindowTitle("Create the first administrator")
        self.opened = opened
        self.tasks = tasks
        self.created_username: str | None = None

        root = QVBoxLayout(self)
        root.setContentsMargins(24, 20, 24, 20)
        intro = QLabel(
            "This database has no staff accounts yet. Create the administrator account; "
            "the administrator then adds pharmacists, clerks and doctors.")
        intro.setWordWrap(True)
        root.addWidget(intro)
        form = form_layout()
        self.username = QLineEdit()
        self.username.setObjectName("adminUsername")
        self.full_name = QLineEdit()
        self.full_name.setObjectName("adminFullName")
        self.password = QLineEdit()
        self.password.setObjectName("adminPassword")
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        self.repeat = QLineEdit()
        self.repeat.setObjectName("adminRepeat")
        self.repeat.setEchoMode(QLineEdit.EchoMode.Password)
        form.addRow("&Username:", self.username)
        form.addRow("&Full name:", self.full_name)
        form.addRow("&Password:", self.password)
        form.addRow("&Repeat password:", self.repeat)
        from ...services import staff

        hint = QLabel(f"At least {staff.MIN_PASSWORD_LENGTH} characters, not containing the "
                      "username.")
        hint.setObjectName("hint")
        form.addRow("", hint)
        root.addLayout(form)
        self.message = MessageLabel("firstAdminError")
        root.addWidget(self.message)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                                   | QDialogButtonBox.StandardButton.Cancel)
        self.ok = buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.ok.setText("Create account")
        self.ok.setObjectName("firstAdminCreate")
        buttons.accepted.connect(self._create)
        buttons.rejected.connect(self.reject)
        root.addWidget(buttons)
        only_default(self, self.ok)  # Enter creates the account, never cancels
        self.setMinimumWidth(440)
        self.username.setFocus()

    def _create(self) -> None:
        for w in (self.username, self.full_name, self.password, self.repeat):
            mark_invalid(w, False)
        if self.password.text() != self.repeat.text():
            mark_invalid(self.repeat, True)
            self.message.show_error("The two passwords differ.")
            return
        username, full = self.username.text(), self.full_name.text() or self.username.text()
        password = self.password.text()
        self.ok.setEnabled(False)
        from ...services import staff
        from ...services.context import SYSTEM

        self.tasks.run(
            lambda: staff.create_staff(self.opened.sf, SYSTEM, username=username, full_name=full,
                                       role=Role.ADMIN, password=password, first=True),
            self._created, self._failed, label="Creating the account…", parent=self)

    def _created(self, info: StaffInfo) -> None:
        self.created_username = info.username
        self.accept()

    def _failed(self, exc: BaseException) -> None:
        from ...services.errors import ValidationError

        self.ok.setEnabled(True)
        field = getattr(exc, "field", None)
        if isinstance(exc, ValidationError) and field in ("username", "password"):
            mark_invalid(self.username if field == "username" else self.password, True)
        self.message.show_error(str(exc))
