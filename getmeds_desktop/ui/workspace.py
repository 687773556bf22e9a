"""What a signed-in window works with: the database, the actor, the task runner.

Plain Python objects and Qt signals; views ask the workspace to run service
calls in the background and are told when data they show may have changed.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Qt, QTimer, Signal, Slot

from ..config import AppConfig
from ..services.context import Actor, Perm
from ..startup import OpenedDatabase
from .tasks import RetryPolicy, TaskManager, _takes_argument

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from ..reports import SiteOverrides
    from ..services.catalog import ReferenceLists
    from ..services.uow import Changes
    from ..sync.offline import OfflineWork
    from .sync import LiveSync

log = logging.getLogger(__name__)


class Workspace(QObject):
    """Shared by all views of one main window."""

    # table name -> ids (empty set: "anything in that table"); views refresh.
    data_changed = Signal(str, object)
    connection_state_changed = Signal(str)  # connected | reconnecting | offline
    actor_changed = Signal(object)
    settings_changed = Signal(object)  # services.settings.Settings
    navigate = Signal(str, object)  # area key, filter (e.g. from dashboard counts)
    status_message = Signal(str)  # a short confirmation for the status bar
    # the offline copy's state changed (made, synced, writes waiting or sent)
    offline_changed = Signal()
    _sync_progress = Signal(int, int)  # from the worker thread
    _queued_offline = Signal()  # from the worker thread: a write was queued
    _copy_progress = Signal(int, int)  # from the worker thread: the first sync
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
        # offline continuity (sync.offline), on a server database: None until
        # start_offline made it, or when it cannot be (offline_problem says why)
        self.offline: OfflineWork | None = None
        self.offline_problem: str | None = None
        self.offline_since: dt.datetime | None = None
        self.sync_progress: tuple[int, int] | None = None  # replaying: done, total
        self.copy_progress: tuple[int, int] | None = None  # making the copy: rows
        # what the outbox holds, read in the background (the status bar and the
        # lists' marks of rows changed offline show these)
        self.offline_waiting = 0
        self.offline_attention = 0
        self.offline_pending: dict[str, frozenset[Any]] = {}
        self._pull_timer = QTimer(self)
        self._pull_timer.setSingleShot(True)
        self._pull_timer.setInterval(self.PULL_AFTER_CHANGE_MS)
        self._pull_timer.timeout.connect(self.sync_replica)
        self._sync_progress.connect(self._show_sync_progress, Qt.ConnectionType.QueuedConnection)
        self._queued_offline.connect(self._offline_write_queued,
                                     Qt.ConnectionType.QueuedConnection)
        self._copy_progress.connect(self._show_copy_progress, Qt.ConnectionType.QueuedConnection)
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
        """Where the screens read and write: the server, or while it cannot be
        reached the offline copy (when this workstation has one)."""
        if self.working_offline and self.offline is not None:
            return self.offline.sf
        return self.database.sf

    @property
    def working_offline(self) -> bool:
        return self.offline is not None and self.connection_state == "offline"

    def writable(self, kind: Any) -> bool:
        """May a write of ``kind`` (sync.outbox.Kind) be made now: online, or
        offline on the offline copy when the pharmacy's setting allows it."""
        if self.online:
            return True
        return (self.working_offline and self.offline is not None
                and kind in self.offline.policy.kinds)

    @property
    def report_sf(self) -> sessionmaker[Session]:
        """Reports read from the read replica when the profile names one, and
        from the offline copy while the server cannot be reached."""
        if self.working_offline and self.offline is not None:
            return self.offline.sf
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

    # ------------------------------------------------------ offline continuity

    PULL_AFTER_CHANGE_MS = 1500  # changes come in bursts: one pull for a burst
    PULL_EVERY_MS = 60_000  # and a pull now and then (a missed notification)
    REPLAY_AGAIN_MS = 1000  # a replay cut short by the link is tried again

    def start_offline(self, folder: Path | None = None) -> None:
        """Server databases: open (or make) this login's encrypted offline copy
        and bring it up to date in the background."""
        if self.database.is_sqlite or self.offline is not None:
            return
        from ..config import data_dir
        from ..errors import GetMedsError
        from ..sync.offline import OfflinePolicy, OfflineWork

        try:
            policy = OfflinePolicy.from_setting(self.config.offline)
        except GetMedsError as exc:
            self.offline_problem = str(exc)
            self.offline_changed.emit()
            return
        where = folder or data_dir() / "offline"
        profile = self.database.target.profile or "default"
        login = self.database.engine.url.username or self.actor.username

        def opened(work: OfflineWork) -> None:
            self.offline = work
            self.refresh_offline_state(then_replay=True)
            self.sync_replica()
            every = QTimer(self)
            every.setInterval(self.PULL_EVERY_MS)
            every.timeout.connect(self.sync_replica)
            every.start()
            self.data_changed.connect(lambda *_a: self._pull_soon())

        def failed(exc: BaseException) -> None:
            self.offline_problem = str(exc)
            log.warning("working offline is not available: %s", exc)
            self.offline_changed.emit()

        self.tasks.run(lambda: OfflineWork.open(where, profile, login, policy), opened, failed,
                       lane="io", retry=False)

    def _pull_soon(self) -> None:
        if self.offline is not None and self.connection_state == "connected":
            self._pull_timer.start()

    def sync_replica(self) -> None:
        """Bring the offline copy up to date from the server (in the background;
        a failure is logged and tried again at the next change or timer)."""
        work = self.offline
        if work is None or self.connection_state != "connected":
            return
        server = self.database.sf
        first = not work.made
        progress = self._copy_progress.emit if first else None
        self.tasks.run(lambda: work.sync(server, progress), lambda _r: self.offline_changed.emit(),
                       lambda exc: log.info("the offline copy was not brought up to date: "
                                            "%s", exc), lane="io", retry=False,
                       always=self._copy_settled if first else None)

    @Slot(int, int)
    def _show_copy_progress(self, done: int, total: int) -> None:
        self.copy_progress = (done, total)
        self.offline_changed.emit()

    def _copy_settled(self) -> None:
        self.copy_progress = None
        self.offline_changed.emit()

    def perform(self, kind: Any, request: Any) -> Any:
        """Run in a task: the write of ``kind`` (sync.outbox.Kind) with its
        request, on the server, or while offline on the offline copy and queued
        for the server (the ``[offline]`` setting decides which writes may be)."""
        from ..sync import offline

        work = self.offline
        if work is None:
            return offline.online_call(kind, self.database.sf, self.actor, request)
        queued = self.working_offline
        result = work.perform(kind, self.sf, self.actor, request, offline=queued)
        if queued:
            self._queued_offline.emit()  # the status bar counts it
        return result

    @Slot()
    def _offline_write_queued(self) -> None:
        self.refresh_offline_state()

    def refresh_offline_state(self, *, then_replay: bool = False) -> None:
        """Read the outbox's counts and pending rows again (in the background);
        ``then_replay``: send what waits if the server answers (at sign-in, for
        what an earlier session left queued)."""
        work = self.offline
        if work is None:
            return

        def read() -> tuple[int, int, dict[str, frozenset[Any]]]:
            st = work.state()
            return st.waiting, st.needs_attention, work.pending_rows()

        def got(state: tuple[int, int, dict[str, frozenset[Any]]]) -> None:
            self.offline_waiting, self.offline_attention, self.offline_pending = state
            self.offline_changed.emit()
            if then_replay and self.offline_waiting:
                self.replay_offline_writes()

        self.tasks.run(read, got, lambda exc: log.warning(
            "the offline copy's queue could not be read: %s", exc), lane="io", retry=False)

    def replay_offline_writes(self) -> None:
        """Send the writes made offline to the server (in the background)."""
        work = self.offline
        if work is None or self.connection_state != "connected":
            return
        if self.offline_waiting == 0:
            self.sync_replica()
            return
        server, actor = self.database.sf, self.actor
        progress = self._sync_progress.emit
        self.sync_progress = (0, self.offline_waiting)
        self.offline_changed.emit()
        self.tasks.run(lambda: work.replay(server, actor, progress), self._replayed,
                       self._replay_failed, lane="io", retry=False,
                       always=self._replay_settled)

    @Slot(int, int)
    def _show_sync_progress(self, done: int, total: int) -> None:
        self.sync_progress = (done, total)
        self.offline_changed.emit()

    def _replayed(self, result: Any) -> None:
        if result.lost_connection:
            # the link dropped again mid-way (or a connection was stale): what was
            # answered is marked sent; the rest goes with the next try
            QTimer.singleShot(self.REPLAY_AGAIN_MS, self.replay_offline_writes)
            if not result.sent:
                return
        text = f"{result.sent} write(s) made offline are on the server now"
        if result.attention:
            text += f"; {result.attention} need attention (the status bar lists them)"
        if result.stopped:
            text += f". {result.stopped}"
        self.tell(text + ".")
        self._refresh_everything()

    def _replay_failed(self, exc: BaseException) -> None:
        self.tell(f"The writes made offline were not all sent: {exc}")

    def _replay_settled(self) -> None:
        self.sync_progress = None
        self.refresh_offline_state()

    def _refresh_everything(self) -> None:
        from .sync import TABLES

        for table in TABLES:
            self.data_changed.emit(table, set())

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
        if self.offline is not None:
            self.offline.close()
            self.offline = None

    @Slot()
    def _lost(self) -> None:
        """A call in the worker lost its connection: have the listener check."""
        if self.live is not None:
            self.live.check_now()

    @Slot(str)  # from the listener thread
    def set_connection_state(self, state: str) -> None:
        if state == self.connection_state:
            return
        was, self.connection_state = self.connection_state, state
        if state == "offline":
            from ..services import clock

            self.offline_since = clock.now()
        elif state == "connected":
            self.offline_since = None
        self.connection_state_changed.emit(state)
        if self.offline is not None and "offline" in (was, state):
            # the screens read the other copy now: what they show is read again
            self._refresh_everything()
            self.offline_changed.emit()
        if state == "connected":
            if was in ("offline", "reconnecting") and self.offline is not None:
                # the pooled connections died with the link: new ones for the replay
                self.database.engine.dispose()
            self.replay_offline_writes()

    def tell(self, text: str) -> None:
        """Say in the window's status bar what was just done ("Saved patient Jane
        Doe"), so a save that closed its form is seen to have happened."""
        self.status_message.emit(text)

    def set_actor(self, actor: Actor) -> None:
        self.actor = actor
        self.actor_changed.emit(actor)
