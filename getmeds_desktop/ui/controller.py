"""The GUI's composition: sign-in, first-run admin, main window, lock, crash dialog."""

from __future__ import annotations

import logging
import shutil
import sys
import traceback
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, QTimer
from PySide6.QtWidgets import QApplication, QMessageBox
from shiboken6 import isValid

from ..config import AppConfig, DatabaseTarget
from ..startup import Connector, OpenedDatabase
from .dialogs.crash import show_crash_dialog
from .dialogs.first_admin import FirstAdminDialog
from .dialogs.login import LoginDialog
from .tasks import TaskManager

if TYPE_CHECKING:  # loaded after sign-in, to keep start-up short
    from ..services.context import Actor
    from .lock import IdleMonitor
    from .main_window import MainWindow
    from .workspace import Workspace

log = logging.getLogger(__name__)


class AppController(QObject):
    def __init__(self, app: QApplication, config: AppConfig, targets: list[DatabaseTarget],
                 log_path: Path, *, demo_folder: Path | None = None,
                 default_index: int = 0) -> None:
        super().__init__(app)
        self.app = app
        self.config = config
        self.targets = targets
        self.log_path = log_path
        self.demo_folder = demo_folder
        self.default_index = default_index
        self.tasks = TaskManager(self)
        self.tasks.unexpected_error.connect(self._bug)
        self.connector = Connector()
        self.login: LoginDialog | None = None
        self.window: MainWindow | None = None
        self.workspace: Workspace | None = None
        self.idle: IdleMonitor | None = None
        self.unlock_dialog: LoginDialog | None = None
        self._previous_hook = sys.excepthook
        sys.excepthook = self._excepthook
        app.aboutToQuit.connect(self.shutdown)

    # --------------------------------------------------------------- sign in

    def start(self) -> None:
        self.show_login()

    def show_login(self, username: str = "") -> LoginDialog:
        accounts: list[tuple[str, str]] = []
        password = None
        if self.demo_folder is not None:
            from ..services.demo import DEMO_ACCOUNTS, DEMO_PASSWORD

            accounts = [(u, role.label) for u, role, _ in DEMO_ACCOUNTS]
            password = DEMO_PASSWORD
        dlg = LoginDialog(self.connector, self.tasks, self.targets, demo_accounts=accounts,
                          demo_password=password, username=username)
        if self.default_index and self.default_index < len(self.targets):
            dlg.connection.setCurrentIndex(self.default_index)
        dlg.signed_in.connect(self._signed_in)
        dlg.needs_first_admin.connect(self._first_admin)
        dlg.rejected.connect(self._login_cancelled)
        self.login = dlg
        dlg.show()
        return dlg

    def _login_cancelled(self) -> None:
        if self.window is None:
            QTimer.singleShot(0, self.app.quit)

    def _first_admin(self, opened: OpenedDatabase) -> None:
        dlg = FirstAdminDialog(opened, self.tasks, self.login)
        dlg.accepted.connect(lambda: self._first_admin_done(dlg))
        dlg.open()

    def _first_admin_done(self, dlg: FirstAdminDialog) -> None:
        if self.login is not None and dlg.created_username:
            self.login.username.setText(dlg.created_username)
            self.login.password.setFocus()
            self.login.message.show_info("Administrator created. Sign in with the new account.")

    def _signed_in(self, opened: OpenedDatabase, actor: Actor) -> None:
        from .main_window import MainWindow
        from .workspace import Workspace

        self.workspace = Workspace(opened, actor, self.config, parent=self)
        self.workspace.tasks.unexpected_error.connect(self._bug)
        self.window = MainWindow(self.workspace)
        self.window.sign_out_requested.connect(self.sign_out)
        self.window.lock_requested.connect(self.lock_by_user)
        self.window.show()
        # the window takes the keyboard at once: its shortcuts work without a click
        self.window.raise_()
        self.window.activateWindow()
        self.login = None
        self.workspace.start_live_sync()
        self.workspace.start_offline()
        self._start_idle_monitor()
        self._upload_daily_copy(opened)

    def _upload_daily_copy(self, opened: OpenedDatabase) -> None:
        """Embedded: when the site file names a bucket, today's copy goes there too."""
        bucket = self.config.backups.get("bucket")
        if not bucket or opened.daily_copy is None or self.workspace is None:
            return
        from ..services import backups
        from ..services.context import SYSTEM

        copy, prefix = opened.daily_copy, self.config.backups.get("prefix", "backups")
        region = self.config.backups.get("region")
        self.workspace.run(
            lambda: backups.upload_copy(SYSTEM, copy, backups.s3_client(region), bucket,
                                        prefix),
            lambda key: log.info("daily copy uploaded to s3://%s/%s", bucket, key),
            lambda exc: log.warning("the daily copy was not uploaded: %s", exc), retry=False)
        opened.daily_copy = None  # once per opening

    # ------------------------------------------------------------------ lock

    def _start_idle_monitor(self) -> None:
        from ..services import settings
        from .lock import IdleMonitor

        ws = self.workspace
        assert ws is not None
        self.idle = IdleMonitor(5 * 60_000, self)
        self.idle.idle.connect(self.lock_when_idle)
        self.idle.lock_keys.connect(self.lock_by_user)

        def apply(s: settings.Settings) -> None:
            minutes = ws.config.auto_lock_minutes or s.auto_lock_minutes
            if self.idle is not None:
                self.idle.set_timeout_ms(minutes * 60_000)

        ws.run(lambda: settings.get_settings(ws.sf), apply)
        ws.settings_changed.connect(apply)

    def lock_by_user(self) -> None:
        self.lock(by_user=True)

    def lock_when_idle(self) -> None:
        self.lock(by_user=False)

    def lock(self, *, by_user: bool = False) -> None:
        window = self.window
        if window is None or not isValid(window) or self.workspace is None or window.locked:
            return
        minutes = None
        if self.idle is not None and not by_user:
            minutes = max(1, round(self.idle.timeout_ms / 60_000))
        window.lock(by_user=by_user, idle_minutes=minutes)
        ws = self.workspace
        dlg = LoginDialog(self.connector, self.tasks, [ws.database.target],
                          locked_username=ws.actor.username,
                          locked_session=(ws.database, ws.actor),
                          lock_reason=window.lock_reason, parent=window)
        window.allow_while_locked(dlg)
        dlg.signed_in.connect(self._unlocked)
        dlg.switch_user.connect(self.sign_out)
        dlg.rejected.connect(self._quit_from_lock)
        self.unlock_dialog = dlg
        dlg.open()

    def _quit_from_lock(self) -> None:
        QTimer.singleShot(0, self.app.quit)

    def _unlocked(self, _opened: OpenedDatabase, actor: object) -> None:
        if self.window is not None:
            self.window.unlock()
        if self.idle is not None:
            self.idle.reset()
        self.unlock_dialog = None
        del actor

    def _close_unlock_dialog(self) -> None:
        dlg, self.unlock_dialog = self.unlock_dialog, None
        if dlg is not None and isValid(dlg):
            dlg.signed_in.disconnect(self._unlocked)
            dlg.rejected.disconnect(self._quit_from_lock)
            dlg.hide()
            dlg.deleteLater()

    def _stop_idle_monitor(self) -> None:
        if self.idle is not None:
            self.idle.stop()
            self.idle.deleteLater()
            self.idle = None

    def sign_out(self) -> None:
        self._stop_idle_monitor()
        self._close_unlock_dialog()
        if self.window is not None:
            if isValid(self.window):
                self.window.save_settings()
                self.window.shutdown()
                self.window.hide()
                self.window.deleteLater()
            self.window = None
        if self.workspace is not None:
            self.workspace.close()
            self.workspace = None
        self.show_login()

    # ------------------------------------------------------------------ bugs

    def _excepthook(self, kind: type[BaseException], exc: BaseException,
                    tb: TracebackType | None) -> None:
        if issubclass(kind, KeyboardInterrupt):
            self.app.quit()
            return
        text = "".join(traceback.format_exception(kind, exc, tb))
        log.error("unexpected error:\n%s", text)
        self._bug(exc, text)

    def _bug(self, exc: BaseException, tb: str) -> None:
        from ..errors import GetMedsError

        parent = self.window or self.login
        if isinstance(exc, GetMedsError):
            QMessageBox.warning(parent, "GetMeds", str(exc))
            return
        show_crash_dialog(parent, self.log_path, f"{type(exc).__name__}: {exc}")

    # -------------------------------------------------------------- shutdown

    def shutdown(self) -> None:
        # every timer stops first: the idle monitor's would otherwise lock a
        # window that is already gone
        self._stop_idle_monitor()
        self._close_unlock_dialog()
        if self.window is not None and isValid(self.window):
            self.window.save_settings()
            self.window.shutdown()
        if self.workspace is not None:
            self.workspace.close()
        self.tasks.shutdown()
        self.connector.close_all()
        sys.excepthook = self._previous_hook
        if self.demo_folder is not None:
            shutil.rmtree(self.demo_folder, ignore_errors=True)
