"""What a signed-in window works with: the database, the actor, the task runner.

Plain Python objects and Qt signals; views ask the workspace to run service
calls in the background and are told when data they show may have changed.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal

from ..config import AppConfig
from ..services.context import Actor, Perm
from ..startup import OpenedDatabase
from .tasks import TaskManager

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker


class Workspace(QObject):
    """Shared by all views of one main window."""

    # table name -> ids (empty set: "anything in that table"); views refresh.
    data_changed = Signal(str, object)
    connection_state_changed = Signal(str)  # connected | reconnecting | offline
    actor_changed = Signal(object)
    settings_changed = Signal(object)  # services.settings.Settings
    navigate = Signal(str, object)  # area key, filter (e.g. from dashboard counts)

    def __init__(self, database: OpenedDatabase, actor: Actor, config: AppConfig,
                 tasks: TaskManager | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.database = database
        self.actor = actor
        self.config = config
        self.tasks = tasks or TaskManager(self)
        self.connection_state = "connected"

    @property
    def sf(self) -> sessionmaker[Session]:
        return self.database.sf

    def can(self, perm: Perm) -> bool:
        return self.actor.can(perm)

    def run(self, fn: Callable[..., Any], on_done: Callable[[Any], None] | None = None,
            on_error: Callable[[BaseException], None] | None = None, *,
            label: str | None = None, parent: Any = None) -> int:
        return self.tasks.run(fn, on_done, on_error, label=label, parent=parent)

    def changed(self, table: str, *ids: uuid.UUID) -> None:
        """Announce a local write so views showing that table refresh."""
        self.data_changed.emit(table, set(ids))

    def set_connection_state(self, state: str) -> None:
        if state != self.connection_state:
            self.connection_state = state
            self.connection_state_changed.emit(state)

    def set_actor(self, actor: Actor) -> None:
        self.actor = actor
        self.actor_changed.emit(actor)
