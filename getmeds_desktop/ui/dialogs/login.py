"""Sign-in: username, password, connection, "remember password" (keyring).

All database work (opening, upgrading the embedded file, seeding the demo,
checking the password) runs in the background; the dialog stays responsive
and shows each failure as a sentence under the form.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFrame,
    QLabel,
    QLineEdit,
    QVBoxLayout,
    QWidget,
)

from ... import secrets
from ...config import DatabaseTarget
from ...errors import AuthenticationFailed, GetMedsError
from ...startup import Connector, OpenedDatabase
from ..tasks import TaskManager
from ..widgets.forms import MessageLabel, form_layout

log = logging.getLogger(__name__)


class LoginDialog(QDialog):
    """Emits ``signed_in(OpenedDatabase, Actor)`` and closes on success."""

    signed_in = Signal(object, object)
    needs_first_admin = Signal(object)  # OpenedDatabase with no staff yet
    switch_user = Signal()  # locked mode: sign in as somebody else

    def __init__(
        self,
        connector: Connector,
        tasks: TaskManager,
        targets: Sequence[DatabaseTarget],
        *,
        demo_accounts: Sequence[tuple[str, str]] = (),
        demo_password: str | None = None,
        username: str = "",
        locked_username: str | None = None,
        locked_session: tuple[OpenedDatabase, object] | None = None,
        lock_reason: str = "",
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("loginDialog")
        self.setWindowTitle("Sign in to GetMeds" if locked_username is None
                            else "GetMeds is locked")
        self.setModal(True)
        self.connector = connector
        self.tasks = tasks
        self.targets = list(targets)
        self.locked_username = locked_username
        self.locked_session = locked_session
        self._busy = False
        self._probing = False
        self._queued_sign_in = False
        self._opened: OpenedDatabase | None = None

        root = QVBoxLayout(self)
        root.setContentsMargins(24, 20, 24, 20)
        root.setSpacing(12)

        title = QLabel("GetMeds" if locked_username is None else "Locked")
        title.setObjectName("loginTitle")
        root.addWidget(title)
        subtitle = QLabel(
            "Pharmacy management. Sign in with your staff account."
            if locked_username is None else
            f"{lock_reason or 'This workstation is locked.'} Enter your password to continue, "
            "or sign in as someone else.")
        subtitle.setWordWrap(True)
        subtitle.setObjectName("loginSubtitle")
        root.addWidget(subtitle)

        form = form_layout()
        self.connection = QComboBox()
        self.connection.setObjectName("loginConnection")
        for t in self.targets:
            self.connection.addItem(t.label if t.profile in ("embedded", "demo") else
                                    f"{t.profile} ({t.label})", t)
        self.connection.setEnabled(len(self.targets) > 1 and locked_username is None)
        self.connection.currentIndexChanged.connect(self._probe)
        form.addRow("&Database:", self.connection)

        self.username = QLineEdit(locked_username or username)
        self.username.setObjectName("loginUsername")
        self.username.setReadOnly(locked_username is not None)
        self.username.setPlaceholderText("your username")
        self.username.editingFinished.connect(self._recall_password)
        form.addRow("&Username:", self.username)

        self.password = QLineEdit()
        self.password.setObjectName("loginPassword")
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        form.addRow("&Password:", self.password)

        self.remember = QCheckBox("&Remember password on this computer")
        self.remember.setObjectName("loginRemember")
        # shown (not only a tooltip) so keyboard and screen-reader users learn it too
        self.remember_reason = QLabel()
        self.remember_reason.setObjectName("loginRememberReason")
        self.remember_reason.setWordWrap(True)
        self.remember_reason.hide()
        problem = secrets.backend_problem()
        if problem:
            self.remember.setChecked(False)
            self.remember.setEnabled(False)
            self.remember.setToolTip(problem)
            self.remember.setAccessibleDescription(problem)
            self.remember.setText("Remember password (not available on this computer)")
            self.remember_reason.setText(problem)
            self.remember_reason.show()
        form.addRow("", self.remember)
        form.addRow("", self.remember_reason)
        if locked_username is not None:  # unlocking remembers nothing
            self.remember.hide()
            self.remember_reason.hide()
        root.addLayout(form)

        self.message = MessageLabel("loginError")
        root.addWidget(self.message)

        if demo_accounts:
            box = QFrame()
            box.setObjectName("demoLogins")
            lay = QVBoxLayout(box)
            lay.setContentsMargins(12, 8, 12, 8)
            head = QLabel("<b>Demo pharmacy</b> (a throwaway database). Sign in as:")
            lay.addWidget(head)
            rows = "".join(
                f"<tr><td><code>{u}</code>&nbsp;&nbsp;</td><td>{label}</td></tr>"
                for u, label in demo_accounts)
            accounts = QLabel(f"<table>{rows}</table>Password for all: "
                              f"<code>{demo_password}</code>")
            accounts.setObjectName("demoLoginList")
            accounts.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            lay.addWidget(accounts)
            root.addWidget(box)

        self.buttons = QDialogButtonBox()
        self.sign_in_button = self.buttons.addButton(
            "Sign in", QDialogButtonBox.ButtonRole.AcceptRole)
        self.sign_in_button.setObjectName("loginSignIn")
        self.sign_in_button.setDefault(True)
        quit_text = "Quit" if locked_username is None else "Quit GetMeds"
        quit_button = self.buttons.addButton(quit_text, QDialogButtonBox.ButtonRole.RejectRole)
        quit_button.setObjectName("loginQuit")
        if locked_username is not None:
            other = self.buttons.addButton("Sign in as someone else",
                                           QDialogButtonBox.ButtonRole.ResetRole)
            other.setObjectName("loginSwitchUser")
            other.clicked.connect(self._switch)
        self.buttons.accepted.connect(self._sign_in)
        self.buttons.rejected.connect(self.reject)
        root.addWidget(self.buttons)

        self.setTabOrder(self.connection, self.username)
        self.setTabOrder(self.username, self.password)
        self.setTabOrder(self.password, self.remember)
        self.setTabOrder(self.remember, self.sign_in_button)
        (self.password if (locked_username or username) else self.username).setFocus()
        self.setMinimumWidth(420)
        if locked_username is None:
            # Open the database once the dialog is on screen: the worker's first
            # imports (SQLAlchemy, the models) would otherwise slow the first paint.
            # A sign-in pressed meanwhile waits for it.
            self._probing = True
            QTimer.singleShot(30, self, self._probe)  # cancelled if the dialog goes first
        self._recall_password()

    # ------------------------------------------------------------------ state

    def target(self) -> DatabaseTarget:
        return self.connection.currentData()

    def _set_busy(self, busy: bool, text: str = "") -> None:
        self._busy = busy
        self.sign_in_button.setEnabled(not busy)
        self.connection.setEnabled(not busy and len(self.targets) > 1
                                   and self.locked_username is None)
        if busy and text:
            self.message.show_info(text)

    def _probe(self) -> None:
        """Open the chosen database now, so problems show before signing in.
        (A server is opened at sign-in: it takes the staff member's own login.)"""
        target = self.target()
        if target is None:
            return
        if self.connector.is_server(target):
            self._probing = False
            self.message.clear_message()
            if self._queued_sign_in:
                self._queued_sign_in = False
                self._sign_in()
            return
        # Sign in stays available: pressing it now queues the sign-in.
        self._probing = True
        self.message.show_info("Opening the database…")
        self.tasks.run(lambda state: self.connector.open(target, state.progress),
                       self._opened_ok, self._probe_failed,
                       label="Opening the database…", parent=self)

    def _probe_failed(self, exc: BaseException) -> None:
        self._probing = False
        self._queued_sign_in = False
        self._failed(exc)

    def _opened_ok(self, opened: OpenedDatabase) -> None:
        self._opened = opened
        self._probing = False
        self._set_busy(False)
        self.message.clear_message()
        if opened.backup_path is not None:
            self.message.show_info(
                f"The database was upgraded to this version of GetMeds. A copy of the "
                f"previous file was kept at {opened.backup_path}.")
        if opened.staff_count == 0:
            self._queued_sign_in = False
            self.needs_first_admin.emit(opened)
        elif self._queued_sign_in:
            self._queued_sign_in = False
            self._sign_in()

    def _failed(self, exc: BaseException) -> None:
        self._set_busy(False)
        self.message.show_error(str(exc))
        if isinstance(exc, AuthenticationFailed):
            self.password.selectAll()
            self.password.setFocus()

    def _recall_password(self) -> None:
        target = self.target()
        name = self.username.text().strip()
        if target is None or not name or not self.remember.isEnabled():
            return
        stored = secrets.recall(target.profile, name)
        if stored is not None and not self.password.text():
            self.password.setText(stored)
            self.remember.setChecked(True)

    # ---------------------------------------------------------------- sign in

    def _sign_in(self) -> None:
        if self._busy:
            return
        if self._probing:
            self._queued_sign_in = True
            return
        username = self.username.text().strip()
        password = self.password.text()
        if not username or not password:
            self.message.show_error("Enter your username and password.")
            (self.username if not username else self.password).setFocus()
            return
        target = self.target()
        remember = self.remember.isChecked() and self.remember.isEnabled()
        self._set_busy(True, "Signing in…")

        def work() -> tuple[OpenedDatabase, object]:
            if self.locked_session is not None:
                # unlocking: prove the password again, keep the session as it is
                self.connector.verify_password(target, username, password)
                return self.locked_session
            opened, actor = self.connector.sign_in(target, username, password)
            if self.locked_username is None:
                if remember:
                    secrets.remember(target.profile, username, password)
                else:
                    secrets.forget(target.profile, username)
            return opened, actor

        self.tasks.run(work, self._signed_in, self._failed, label="Signing in…", parent=self)

    def _signed_in(self, result: tuple[OpenedDatabase, object]) -> None:
        self._set_busy(False)
        self.password.clear()
        opened, actor = result
        self.signed_in.emit(opened, actor)
        self.accept()

    def _switch(self) -> None:
        self.switch_user.emit()
        self.done(2)

    def show_error(self, exc: GetMedsError) -> None:
        self.message.show_error(str(exc))
