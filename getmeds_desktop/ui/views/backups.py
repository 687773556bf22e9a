"""Administration > Backups.

Embedded database: the daily copies (kept 14), "Copy now" and "Restore this
copy…". Server database: the backups in the S3 bucket, "Back up now" and
"Restore to a new database…", each in the background with progress.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import (
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ...services import backups
from ..tablemodels.models import local_time
from ..tablemodels.paged import ALIGN_RIGHT, Column, ListTableModel
from ..widgets.forms import MessageLabel, form_layout
from ..workspace import Workspace
from .base import make_table


def _mb(size: int) -> str:
    return f"{size / 1024 / 1024:,.1f} MB"


LOCAL_COLUMNS: list[Column[Any]] = [
    Column("when", "Made", lambda r: local_time(r.created_at), width=160),
    Column("size", "Size", lambda r: _mb(r.size), align=ALIGN_RIGHT, width=100),
    Column("file", "File", lambda r: r.name, width=320),
]
SERVER_COLUMNS: list[Column[Any]] = [
    Column("when", "Made", lambda r: local_time(r.created_at), width=160),
    Column("database", "Database", lambda r: r.database, width=160),
    Column("size", "Size", lambda r: r.size_label, align=ALIGN_RIGHT, width=90),
    Column("rows", "Rows (main tables)", lambda r: f"{sum(r.row_counts.values()):,}",
           align=ALIGN_RIGHT, width=140),
    Column("revision", "Schema", lambda r: r.schema_revision, width=70),
    Column("key", "Key", lambda r: r.key, width=360),
]


class BackupsPage(QWidget):
    def __init__(self, ws: Workspace, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("backupsPage")
        self.ws = ws
        self.embedded = ws.database.is_sqlite
        lay = QVBoxLayout(self)
        intro = QLabel(
            "This workstation's database is copied every day into its data folder; the last "
            "14 copies are kept. Restoring a copy keeps the current data aside first."
            if self.embedded else
            "Backups of the pharmacy's database in Amazon S3. The scheduled backup runs by "
            "itself every day; IT is told if one fails. AWS access comes from this "
            "workstation's AWS configuration.")
        intro.setObjectName("hint")
        intro.setWordWrap(True)
        lay.addWidget(intro)
        if not self.embedded:
            form = form_layout()
            settings = QSettings()
            self.bucket = QLineEdit(str(settings.value("backups/bucket", "") or ""))
            self.bucket.setObjectName("backupBucket")
            self.bucket.setPlaceholderText("e.g. rivera-getmeds-backupbucket-1a2b3c")
            self.prefix = QLineEdit(str(settings.value("backups/prefix", "backups") or ""))
            self.region = QLineEdit(str(settings.value("backups/region", "") or ""))
            self.region.setPlaceholderText("the AWS configuration's region")
            self.endpoint = QLineEdit(str(settings.value("backups/endpoint", "") or ""))
            self.endpoint.setPlaceholderText("only for a test endpoint")
            form.addRow("&Bucket:", self.bucket)
            form.addRow("&Prefix:", self.prefix)
            form.addRow("&Region:", self.region)
            form.addRow("&Endpoint:", self.endpoint)
            lay.addLayout(form)
        row = QHBoxLayout()
        self.refresh_button = QPushButton("Refresh")
        self.refresh_button.setObjectName("refreshBackups")
        self.refresh_button.clicked.connect(lambda: self.refresh())
        self.now_button = QPushButton("Copy now" if self.embedded else "Back up now")
        self.now_button.setObjectName("backupNow")
        self.now_button.clicked.connect(self.back_up_now)
        self.restore_button = QPushButton("Restore this copy…" if self.embedded
                                          else "Restore to a new database…")
        self.restore_button.setObjectName("restoreBackup")
        self.restore_button.clicked.connect(self.restore)
        for b in (self.refresh_button, self.now_button, self.restore_button):
            row.addWidget(b)
        row.addStretch(1)
        lay.addLayout(row)
        self.model = ListTableModel(LOCAL_COLUMNS if self.embedded else SERVER_COLUMNS, self)
        self.table = make_table("backupsTable")
        self.table.setModel(self.model)
        for i, c in enumerate(self.model.columns):
            self.table.setColumnWidth(i, c.width)
        lay.addWidget(self.table, 1)
        self.message = MessageLabel("backupsMessage")
        lay.addWidget(self.message)
        self.loaded = False

    # ------------------------------------------------------------- helpers

    def _s3(self) -> Any:
        s = QSettings()
        s.setValue("backups/bucket", self.bucket.text().strip())
        s.setValue("backups/prefix", self.prefix.text().strip())
        s.setValue("backups/region", self.region.text().strip())
        s.setValue("backups/endpoint", self.endpoint.text().strip())
        return backups.s3_client(self.region.text().strip(), self.endpoint.text().strip())

    def _busy(self, busy: bool) -> None:
        for b in (self.refresh_button, self.now_button, self.restore_button):
            b.setEnabled(not busy)

    def _failed(self, exc: BaseException) -> None:
        self._busy(False)
        self.message.show_error(str(exc))

    def selected(self) -> Any | None:
        rows = self.table.selectionModel().selectedRows()
        return self.model.row_at(rows[0].row()) if rows else None

    # ------------------------------------------------------------- actions

    def refresh(self, *, keep_message: bool = False) -> None:
        self.loaded = True
        self._keep_message = keep_message
        actor, engine = self.ws.actor, self.ws.database.engine
        if self.embedded:
            self.ws.run(lambda: backups.local_copies(actor, engine), self._listed, self._failed,
                        lane="io")
            return
        if not self.bucket.text().strip():
            self.message.show_info("Enter the backup bucket, then Refresh.")
            return
        bucket, prefix = self.bucket.text(), self.prefix.text().strip() or "backups"
        s3 = self._s3()
        self._busy(True)
        self.ws.run(lambda: backups.server_backups(actor, s3, bucket, prefix), self._listed,
                    self._failed, label="Reading the backup list…", parent=self, lane="io")

    def _listed(self, rows: list[Any]) -> None:
        self._busy(False)
        self.model.set_rows(rows)
        if not rows:
            self.message.show_info("No backups yet.")
        elif not getattr(self, "_keep_message", False):
            self.message.clear_message()

    def back_up_now(self) -> None:
        actor, engine = self.ws.actor, self.ws.database.engine
        self._busy(True)
        self.message.show_info("Backing up…")
        if self.embedded:
            self.ws.run(lambda: backups.copy_now(actor, engine), self._done, self._failed,
                        label="Copying the database…", parent=self, retry=False, lane="io")
            return
        bucket, prefix = self.bucket.text(), self.prefix.text().strip() or "backups"
        s3 = self._s3()
        self.ws.run(lambda state: backups.back_up_server(
            actor, engine, s3, bucket, prefix, progress=state.progress),
            self._done, self._failed, label="Backing up the database…", parent=self,
            retry=False, lane="io")

    def _done(self, made: Any) -> None:
        self._busy(False)
        where = made.path if self.embedded else made.key
        self.message.show_info(f"Backed up: {where}")
        self.refresh(keep_message=True)

    def restore(self) -> None:
        chosen = self.selected()
        if chosen is None:
            self.message.show_error("Select a backup in the list first.")
            return
        actor, engine = self.ws.actor, self.ws.database.engine
        if self.embedded:
            answer = QMessageBox.question(
                self, "Restore a copy",
                f"Replace all of this workstation's data with the copy made "
                f"{local_time(chosen.created_at)}?\n\nThe current data is kept aside first, "
                "and you are signed out when the restore is done.")
            if answer != QMessageBox.StandardButton.Yes:
                return
            self._busy(True)
            self.ws.run(lambda: backups.restore_copy(actor, engine, chosen.name),
                        self._restored_local, self._failed, label="Restoring…", parent=self,
                        retry=False, lane="io")
            return
        target, ok = QInputDialog.getText(
            self, "Restore to a new database",
            "The new, empty database to restore into (IT creates it first), e.g.\n"
            "postgresql://getmeds_owner@host/getmeds_restored:")
        if not ok or not target.strip():
            return
        bucket = self.bucket.text()
        s3 = self._s3()
        self._busy(True)
        self.ws.run(lambda state: backups.restore_server(
            actor, s3, bucket, chosen.key, target, progress=state.progress),
            self._restored_server, self._failed, label="Restoring the backup…", parent=self,
            retry=False, lane="io")

    def _restored_local(self, aside: Any) -> None:
        self._busy(False)
        QMessageBox.information(self, "Restored",
                                f"The copy is back in place. The data from before the restore "
                                f"is kept in {aside}.\n\nSign in again to continue.")
        window = self.window()
        signal = getattr(window, "sign_out_requested", None)
        if signal is not None:
            signal.emit()

    def _restored_server(self, result: Any) -> None:
        self._busy(False)
        rows = sum(result.row_counts.values())
        self.message.show_info(
            f"Restored into {result.database} in {result.seconds:.0f} s: {rows:,} rows in the "
            "main tables, the same counts as the backup.")
