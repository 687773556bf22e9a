"""Needs attention: the writes made offline that the server refused, each with
its reason and what resolves it (sync.outbox)."""

from __future__ import annotations

import html
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ...sync.outbox import AttentionItem
from ..tablemodels.models import local_time
from ..tablemodels.paged import Column, ListTableModel
from ..views.base import fit_columns, make_table
from ..widgets.forms import MessageLabel
from ..workspace import Workspace


def _actions(item: AttentionItem) -> str:
    return "; ".join(a.label for a in item.actions)


COLUMNS: list[Column[AttentionItem]] = [
    Column("when", "Made offline", lambda r: local_time(r.created_at), width=135),
    Column("by", "By", lambda r: r.username, width=100),
    Column("what", "What", lambda r: r.summary, width=260, tooltip=lambda r: r.summary),
    Column("reason", "Why the server refused it", lambda r: r.reason, width=300,
           tooltip=lambda r: r.error),
    Column("actions", "What resolves it", _actions, width=300, stretch=True,
           tooltip=lambda r: "\n".join(a.label for a in r.actions)),
]


class NeedsAttentionDialog(QDialog):
    """The refused offline writes; send one again once resolved, or dismiss it."""

    def __init__(self, ws: Workspace, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ws = ws
        self.setObjectName("needsAttentionDialog")
        self.setWindowTitle("Offline writes that need attention")
        self.resize(1180, 460)
        root = QVBoxLayout(self)
        intro = QLabel("These were done on this workstation while the server could not be "
                       "reached, and the server refused them. Nothing was changed on the "
                       "server for them: resolve the cause, then send one again, or "
                       "dismiss it.")
        intro.setWordWrap(True)
        root.addWidget(intro)
        self.model = ListTableModel(COLUMNS, self)
        self.table = make_table("needsAttentionTable")
        self.table.setModel(self.model)
        fit_columns(self.table, COLUMNS)
        self.table.horizontalHeader().setSortIndicatorShown(False)
        self.table.selectionModel().selectionChanged.connect(lambda *_: self._update())
        root.addWidget(self.table, 1)
        # the selected one in full: its reason and what resolves it
        self.details = QLabel("")
        self.details.setObjectName("needsAttentionDetails")
        self.details.setWordWrap(True)
        self.details.setTextFormat(Qt.TextFormat.RichText)
        root.addWidget(self.details)
        self.message = MessageLabel("needsAttentionMessage")
        root.addWidget(self.message)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.retry = QPushButton("Send &again")
        self.retry.setObjectName("attentionRetry")
        self.retry.clicked.connect(lambda: self._resolve("retry"))
        self.dismiss = QPushButton("&Dismiss")
        self.dismiss.setObjectName("attentionDismiss")
        self.dismiss.clicked.connect(lambda: self._resolve("dismiss"))
        buttons.addButton(self.retry, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.addButton(self.dismiss, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.rejected.connect(self.reject)
        root.addWidget(buttons)
        self._update()
        self.reload()

    def reload(self) -> None:
        work = self.ws.offline
        if work is None:
            return
        self.ws.tasks.run(work.needs_attention, self._loaded, self._failed, lane="io",
                          retry=False)

    def _loaded(self, items: list[AttentionItem]) -> None:
        self.model.set_rows(items)
        if items:
            self.table.selectRow(0)
        else:
            self.message.show_info("Nothing needs attention.")
        self._update()

    def selected(self) -> AttentionItem | None:
        rows = self.table.selectionModel().selectedRows()
        return self.model.row_at(rows[0].row()) if rows else None

    def _update(self) -> None:
        item = self.selected()
        self.retry.setEnabled(item is not None)
        self.dismiss.setEnabled(item is not None)
        if item is None:
            self.details.setText("")
            return
        steps = "".join(f"<li>{html.escape(a.label)}</li>" for a in item.actions)
        self.details.setText(
            f"<b>{html.escape(item.summary)}</b> (made offline by {html.escape(item.username)}"
            f" at {html.escape(local_time(item.created_at))})<br>"
            f"<b>Why:</b> {html.escape(item.reason)}<br><b>What resolves it:</b><ul>{steps}</ul>")

    def _resolve(self, how: str) -> None:
        item, work = self.selected(), self.ws.offline
        if item is None or work is None:
            return
        actor = self.ws.actor

        def done(_r: Any) -> None:
            self.message.show_info("It is sent with the next writes to the server."
                                   if how == "retry" else "Dismissed: it is not sent.")
            self.ws.refresh_offline_state()
            if how == "retry":
                self.ws.replay_offline_writes()
            self.reload()

        self.ws.tasks.run(lambda: work.resolve(item.entry_id, how, actor), done, self._failed,
                          lane="io", retry=False)

    def _failed(self, exc: BaseException) -> None:
        self.message.show_error(str(exc))  # an expected error (a bug goes to the crash dialog)
