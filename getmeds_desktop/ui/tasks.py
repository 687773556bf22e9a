"""Background work for the GUI: the GUI thread never waits on the database.

Two lanes:

* ``db``: one worker thread owns the short database work of the screens
  (pages, refreshes, saves), so those tasks run one after the other in
  submission order, each opening and closing its own session inside the
  service call;
* ``io``: long work that must never hold up a page load — reports (PDF
  rendering, with their own database session), S3 and backups, reading and
  writing files the user chose.

Results come back through queued signals; only plain data (frozen dataclasses)
crosses threads. A progress dialog appears only when a task runs longer than
``PROGRESS_DELAY_MS`` (Anki's delayed progress), with a Cancel button when the
task accepts a :class:`TaskState`. A task whose connection dropped is tried
again after a pause (the :class:`RetryPolicy`); the pause is a timer on the GUI
thread, so nothing waits in a worker meanwhile.
"""

from __future__ import annotations

import inspect
import itertools
import logging
import threading
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import QObject, QRunnable, Qt, QThreadPool, QTimer, Signal, Slot
from PySide6.QtWidgets import QProgressDialog, QWidget

from ..errors import GetMedsError

log = logging.getLogger(__name__)

PROGRESS_DELAY_MS = 500


class Cancelled(Exception):
    """Raised inside a task when the user pressed Cancel."""


class TaskState:
    """Handed to task functions that take a ``state`` argument (Orange3 style)."""

    def __init__(self, emit: Callable[[str, float], None]) -> None:
        self._cancel = threading.Event()
        self._emit = emit

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def check(self) -> None:
        if self._cancel.is_set():
            raise Cancelled()

    def progress(self, message: str, fraction: float | None = None) -> None:
        self.check()
        self._emit(message, -1.0 if fraction is None else float(fraction))


class _Signals(QObject):
    finished = Signal(int, object)
    failed = Signal(int, object, str)
    progress = Signal(int, str, float)


class _Runnable(QRunnable):
    """Runs one attempt of a task in a worker thread.

    The worker never holds the last reference to anything the task's function
    closes over (a screen, a dialog): Python would then destroy that widget in
    the worker thread, which Qt does not allow ("QBasicTimer::stop: Failed.
    Possibly trying to stop from a different thread", then a crash). So the
    runnable lets go of the function before it reports (the GUI thread's
    ``_Pending`` still holds it), and a failure travels without its traceback
    (the formatted text goes along for the log): a traceback's frames keep the
    function they ran (a frame holds its function even after ``clear()``), so
    an exception carrying one keeps the closure, and the worker's reference to
    the exception, dropped after the GUI thread has finished with it, was then
    the last one (seen as a sign-in dialog destroyed in a pool thread).
    """

    def __init__(self, task_id: int, fn: Callable[..., Any], signals: _Signals,
                 state: TaskState | None, closing: threading.Event | None = None) -> None:
        super().__init__()
        self.setAutoDelete(True)
        self.task_id, self.signals = task_id, signals
        self.fn: Callable[..., Any] | None = fn
        self.state = state
        # set by shutdown(): nobody waits for a result any more
        self.closing = closing if closing is not None else threading.Event()

    def run(self) -> None:
        fn, state = self.fn, self.state
        self.fn = self.state = None
        assert fn is not None
        try:
            result = fn(state) if state is not None else fn()
        except BaseException as exc:
            tb = traceback.format_exc()
            del fn, state
            _drop_tracebacks(exc)
            if not self.closing.is_set():  # after shutdown, nothing is sent to the GUI
                self.signals.failed.emit(self.task_id, exc, tb)
        else:
            del fn, state
            if not self.closing.is_set():
                self.signals.finished.emit(self.task_id, result)


def _drop_tracebacks(exc: BaseException) -> None:
    """Detach the tracebacks of an exception and of the exceptions it was
    raised from or during, so that it refers to no frame, and so to no
    function, local or closure of the work that failed."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        e = todo.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        if e.__traceback__ is not None:
            traceback.clear_frames(e.__traceback__)
            e.__traceback__ = None
        todo.extend(x for x in (e.__cause__, e.__context__) if x is not None)
        todo.extend(getattr(e, "exceptions", ()))  # an ExceptionGroup's members


@dataclass
class _Pending:
    fn: Callable[..., Any]
    lane: str
    on_done: Callable[[Any], object] | None
    on_error: Callable[[BaseException], object] | None
    always: Callable[[], object] | None
    label: str | None
    state: TaskState | None
    parent: QWidget | None
    retry: bool
    attempts: int = 0
    dialog: QProgressDialog | None = None
    timer: QTimer | None = None
    last_progress: tuple[str, float] = field(default=("", -1.0))


@dataclass(frozen=True)
class RetryPolicy:
    """When and how often a failed task is tried again: ``retryable`` says
    whether an error means "the connection went away"; after the last pause
    the task fails with ``gave_up()``; ``on_lost`` runs at each failure."""

    retryable: Callable[[BaseException], bool]
    delays: Sequence[float]
    gave_up: Callable[[], BaseException]
    on_lost: Callable[[], None] = lambda: None


LANES = {"db": 1, "io": 1}  # one thread each: tasks of a lane run in order


class TaskManager(QObject):
    """Runs functions off the GUI thread and calls back on it.

    Every task goes through one path: the retry policy set with
    :meth:`set_retry` (on a server database, "try again after the connection
    comes back"), then ``on_done`` or ``on_error``, then ``always``, whatever
    happened, so a caller's loading flags are cleared even after a bug.
    """

    busy_changed = Signal(bool)
    # A bug (not a GetMedsError) in a task without its own on_error.
    unexpected_error = Signal(object, str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._pools: dict[str, QThreadPool] = {}
        for lane, threads in LANES.items():
            pool = QThreadPool(self)
            pool.setMaxThreadCount(threads)  # "db": one worker, tasks run in order
            self._pools[lane] = pool
        self._signals = _Signals(self)
        self._signals.finished.connect(self._on_finished, Qt.ConnectionType.QueuedConnection)
        self._signals.failed.connect(self._on_failed, Qt.ConnectionType.QueuedConnection)
        self._signals.progress.connect(self._on_progress, Qt.ConnectionType.QueuedConnection)
        self._ids = itertools.count(1)
        self._pending: dict[int, _Pending] = {}
        self._closed = False
        self._closing = threading.Event()  # the workers' view of _closed
        self._retry: RetryPolicy | None = None
        self._waits: set[QTimer] = set()

    def set_retry(self, policy: RetryPolicy | None) -> None:
        """Try every task that allows it (``retry=True``, the default) again
        when it fails the way ``policy`` says (a dropped connection)."""
        self._retry = policy

    # ----------------------------------------------------------------- API

    def run(
        self,
        fn: Callable[..., Any],
        on_done: Callable[[Any], object] | None = None,
        on_error: Callable[[BaseException], object] | None = None,
        *,
        label: str | None = None,
        parent: QWidget | None = None,
        always: Callable[[], object] | None = None,
        retry: bool = True,
        lane: str = "db",
    ) -> int:
        """Run ``fn()`` (or ``fn(state)`` if it takes an argument) in the worker.

        ``label`` names the work for the progress dialog shown after 0.5 s.
        ``on_error`` receives expected errors (GetMedsError); without it, they
        go to ``unexpected_error`` like bugs do (and bugs always do).
        ``always`` runs last on the GUI thread, after success, error, bug or
        cancel. ``retry=False`` skips the retry policy (for the rare write that
        cannot be repeated safely). ``lane`` is "db" (the screens' database
        work, in order) or "io" (reports, S3, files: never ahead of a page load).
        """
        if self._closed:
            if always is not None:
                always()
            return 0
        task_id = next(self._ids)
        wants_state = _takes_argument(fn)
        state = TaskState(lambda m, f: self._signals.progress.emit(task_id, m, f)) \
            if wants_state else None
        if lane not in self._pools:
            raise ValueError(f"no lane {lane!r}")
        pending = _Pending(fn, lane, on_done, on_error, always, label, state, parent, retry)
        self._pending[task_id] = pending
        if label:
            timer = QTimer(self)
            timer.setSingleShot(True)
            timer.timeout.connect(lambda: self._show_progress(task_id))
            timer.start(PROGRESS_DELAY_MS)
            pending.timer = timer
        if len(self._pending) == 1:
            self.busy_changed.emit(True)
        self._start(task_id, pending)
        return task_id

    def _start(self, task_id: int, p: _Pending) -> None:
        p.attempts += 1
        self._pools[p.lane].start(_Runnable(task_id, p.fn, self._signals, p.state,
                                            self._closing))

    def cancel(self, task_id: int) -> None:
        p = self._pending.get(task_id)
        if p and p.state:
            p.state.cancel()

    @property
    def busy(self) -> bool:
        return bool(self._pending)

    def wait_idle(self, msecs: int = 30000) -> bool:
        """Block until the workers are idle (shutdown and tests only)."""
        return all(pool.waitForDone(msecs) for pool in self._pools.values())

    def shutdown(self, wait_ms: int = 15000) -> None:
        self._closed = True
        self._closing.set()
        for timer in self._waits:
            timer.stop()
        self._waits.clear()
        for p in self._pending.values():
            if p.state:
                p.state.cancel()
        idle = True
        for pool in self._pools.values():  # every pool, even when one is still busy
            idle = pool.waitForDone(wait_ms) and idle
        # Results still queued for the GUI thread are dropped, not delivered later
        # to windows that are closing (a callback into a dialog being destroyed
        # crashed a test worker now and then).
        if idle:
            for task_id in list(self._pending):
                self._finish(task_id)
        # A task still running (a demo database being seeded, a slow server) keeps
        # its entry: the GUI thread, not the worker, must let go of what its
        # function closes over (a dialog destroyed in a worker thread crashes:
        # "QBasicTimer::stop: Failed ... from a different thread"). Its result,
        # when it comes, is dropped without a callback (_closed).

    # ----------------------------------------------------------- internals

    def _finish(self, task_id: int) -> _Pending | None:
        p = self._pending.pop(task_id, None)
        if p is None:
            return None
        if p.timer is not None:
            p.timer.stop()
            p.timer.deleteLater()
        if p.dialog is not None:
            p.dialog.reset()
            p.dialog.hide()
            p.dialog.deleteLater()
        if not self._pending:
            self.busy_changed.emit(False)
        return p

    # WORKAROUND for PYSIDE-3124 (https://bugreports.qt.io/browse/PYSIDE-3124): a
    # queued call from a worker thread into an undecorated Python method can crash
    # (seen here as segfaults in _on_finished); declared slots are called safely.
    @Slot(int, object)
    def _on_finished(self, task_id: int, result: object) -> None:
        p = self._finish(task_id)
        if p is None or self._closed:
            return
        try:
            if p.on_done is not None:
                p.on_done(result)
        finally:
            if p.always is not None:
                p.always()

    @Slot(int, object, str)
    def _on_failed(self, task_id: int, exc: BaseException, tb: str) -> None:
        waiting = self._pending.get(task_id)
        policy = self._retry
        if (waiting is not None and waiting.retry and policy is not None and not self._closed
                and not isinstance(exc, Cancelled) and policy.retryable(exc)):
            policy.on_lost()
            if waiting.attempts <= len(policy.delays):
                self._again_later(task_id, waiting, policy.delays[waiting.attempts - 1])
                return
            exc, tb = policy.gave_up(), ""
        p = self._finish(task_id)
        if p is None or self._closed:
            return
        try:
            if isinstance(exc, Cancelled):
                return
            if isinstance(exc, GetMedsError) and p.on_error is not None:
                p.on_error(exc)
                return
            if isinstance(exc, GetMedsError):
                log.info("task error: %s", exc)
            else:
                log.error("unexpected error in background task:\n%s", tb)
            self.unexpected_error.emit(exc, tb)
        finally:
            if p.always is not None:
                p.always()

    def _again_later(self, task_id: int, p: _Pending, seconds: float) -> None:
        """Start the task again after a pause; meanwhile the workers carry on."""
        log.info("connection lost; trying again in %.2f s", seconds)
        timer = QTimer(self)
        timer.setSingleShot(True)
        self._waits.add(timer)

        def again() -> None:
            self._waits.discard(timer)
            timer.deleteLater()
            if not self._closed and task_id in self._pending:
                self._start(task_id, p)

        timer.timeout.connect(again)
        timer.start(int(seconds * 1000))

    @Slot(int, str, float)
    def _on_progress(self, task_id: int, message: str, fraction: float) -> None:
        p = self._pending.get(task_id)
        if p is None:
            return
        p.last_progress = (message, fraction)
        if p.dialog is not None:
            _apply_progress(p.dialog, message, fraction)

    def _show_progress(self, task_id: int) -> None:
        p = self._pending.get(task_id)
        if p is None or not p.label:
            return
        dlg = QProgressDialog(p.label, "Cancel" if p.state else "", 0, 0, p.parent)
        dlg.setObjectName("taskProgressDialog")
        dlg.setWindowTitle("GetMeds")
        dlg.setWindowModality(Qt.WindowModality.WindowModal)
        dlg.setMinimumDuration(0)
        dlg.setAutoClose(False)
        dlg.setAutoReset(False)
        if p.state is None:
            dlg.setCancelButton(None)
        else:
            dlg.canceled.connect(lambda: self.cancel(task_id))
        msg, frac = p.last_progress
        if msg:
            _apply_progress(dlg, msg, frac)
        p.dialog = dlg
        dlg.show()


def _apply_progress(dlg: QProgressDialog, message: str, fraction: float) -> None:
    dlg.setLabelText(message)
    if fraction < 0:
        dlg.setRange(0, 0)
    else:
        dlg.setRange(0, 1000)
        dlg.setValue(int(fraction * 1000))


def _takes_argument(fn: Callable[..., Any]) -> bool:
    try:
        params = [p for p in inspect.signature(fn).parameters.values()
                  if p.default is inspect.Parameter.empty
                  and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        return False
    return len(params) == 1
