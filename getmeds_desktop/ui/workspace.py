"""What a signed-in window works with: the database, the actor, the task runner.

Plain Python objects and Qt signals; views ask the workspace to run service
calls in the background and are told when data they show may have changed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Qt, Signal, Slot

from ..config import AppConfig
from ..services.context import Actor, Perm
from ..startup import OpenedDatabase
from .tasks import RetryPolicy, TaskManager, _takes_argument

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from ..reports import SiteOverrides
    from ..services.catalog import ReferenceLists
    from ..services.uow import Changes
    from .sync import LiveSync


class Workspace(QObject):
    """Shared by all views of one main window."""

    # table name -> ids (empty set: "anything in that table"); views refresh.
    data_changed = Signal(str, object)
    connection_state_changed = Signal(str)  # connected | reconnecting | offline
    actor_changed = Signal(object)
    settings_changed = Signal(object)  # services.settings.Settings
    navigate = Signal(str, object)  # area key, filter (e.g. from dashboard counts)
    status_message = Signal(str)  # a short confirmation for the status bar
    _connection_lost = Signal()  # from the worker thread
    _committed = Signal(object)  # services.uow.Changes, from the worker thread

    def __init__(self, database: OpenedDatabase, actor: Actor, config: AppConfig,
                 tasks: TaskManager | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.database = database
        self.actor = actor
        self.config = config
        self.tasks = tasks or TaskManager(self)
        self.connection_state = "connected"
        self.live: LiveSync | None = None  # on a server database
        self._reference: ReferenceLists | None = None
        self._reference_waiting: list[Callable[[ReferenceLists], object]] = []
        self._connection_lost.connect(self._lost, Qt.ConnectionType.QueuedConnection)
        self._committed.connect(self._apply_changes, Qt.ConnectionType.QueuedConnection)
        if not database.is_sqlite:
            # every task of this window, the lists' pages and refreshes included,
            # is tried again once the server answers (sync.retry)
            from ..sync import retry

            self.tasks.set_retry(RetryPolicy(retry.is_disconnect, retry.RECONNECT_DELAYS,
                                             retry.gave_up, self._connection_lost.emit))

    @property
    def sf(self) -> sessionmaker[Session]:
        return self.database.sf

    @property
    def report_sf(self) -> sessionmaker[Session]:
        """Reports read from the read replica when the profile names one."""
        return self.database.report_sf

    def can(self, perm: Perm) -> bool:
        return self.actor.can(perm)

    @property
    def report_site(self) -> SiteOverrides:
        """The site file's presets for reports (pharmacy details, paper size)."""
        from ..reports import SiteOverrides

        return SiteOverrides(dict(self.config.pharmacy), self.config.paper_size)

    @property
    def online(self) -> bool:
        return self.connection_state == "connected"

    def run(self, fn: Callable[..., Any], on_done: Callable[[Any], object] | None = None,
            on_error: Callable[[BaseException], object] | None = None, *,
            label: str | None = None, parent: Any = None, retry: bool = True,
            lane: str = "db", always: Callable[[], None] | None = None) -> int:
        """Run a service call in the worker. On a server database a call that
        loses its connection is tried again once the server answers (see
        ``sync.retry`` and ``TaskManager.set_retry``): every
        call made here is a read or a write with a request id, so a repeat never
        doubles anything. ``retry=False`` for the rare write that cannot be
        repeated safely.

        What each write commits (``services.uow.Changes``) is announced with
        ``data_changed`` before ``on_done`` runs, so every list showing those
        rows refreshes; nobody announces a local change by hand."""
        from ..services import uow

        committed = self._committed.emit
        inner = fn
        if _takes_argument(inner):
            def fn(state: Any) -> Any:
                with uow.publishing_to(committed):
                    return inner(state)
        else:
            def fn() -> Any:
                with uow.publishing_to(committed):
                    return inner()
        return self.tasks.run(fn, on_done, on_error, label=label, parent=parent, retry=retry,
                              lane=lane, always=always)

    @Slot(object)  # from the worker thread (see ui.tasks on PYSIDE-3124)
    def _apply_changes(self, changes: Changes) -> None:
        for table, ids in changes.tables.items():
            if table in self._REFERENCE_TABLES:
                self._reference = None  # read again when a screen next asks
            self.data_changed.emit(table, set(ids))

    # ------------------------------------------------------ reference data

    _REFERENCE_TABLES = frozenset({"categories", "suppliers"})

    def reference_lists(self, on_done: Callable[[ReferenceLists], object]) -> None:
        """Categories and suppliers for filters and forms: read once per window
        (a round trip saved on every screen that opens), again after a change
        of either. ``on_done`` runs on the GUI thread, at once when known."""
        if self._reference is not None:
            on_done(self._reference)
            return
        self._reference_waiting.append(on_done)
        if len(self._reference_waiting) == 1:
            from ..services import catalog

            sf = self.sf
            self.run(lambda: catalog.reference_lists(sf), self._reference_loaded,
                     always=self._reference_done)

    def _reference_loaded(self, lists: ReferenceLists) -> None:
        self._reference = lists
        waiting, self._reference_waiting = self._reference_waiting, []
        for cb in waiting:
            cb(lists)

    def _reference_done(self) -> None:
        if self._reference is None:  # failed: the next screen asks again
            self._reference_waiting.clear()

    # ----------------------------------------------------------- live sync

    def start_live_sync(self, **listener_options: float) -> None:
        """Server databases: listen for other workstations' changes."""
        if self.database.is_sqlite or self.live is not None:
            return
        from .sync import LiveSync

        self.live = LiveSync(self, **listener_options)
        self.live.start()

    def close(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None
        self.tasks.shutdown()

    @Slot()
    def _lost(self) -> None:
        """A call in the worker lost its connection: have the listener check."""
        if self.live is not None:
            self.live.check_now()

    @Slot(str)  # from the listener thread
    def set_connection_state(self, state: str) -> None:
        if state != self.connection_state:
            self.connection_state = state
            self.connection_state_changed.emit(state)

    def tell(self, text: str) -> None:
        """Say in the window's status bar what was just done ("Saved patient Jane
        Doe"), so a save that closed its form is seen to have happened."""
        self.status_message.emit(text)

    def set_actor(self, actor: Actor) -> None:
        self.actor = actor
        self.actor_changed.emit(actor)
