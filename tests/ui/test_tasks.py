"""The one path of background work: order, always, retry, and which thread
lets go of what a task closes over."""

from __future__ import annotations

import gc
import threading

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QWidget

from getmeds_desktop.errors import GetMedsError
from getmeds_desktop.ui.tasks import RetryPolicy, TaskManager, _Runnable, _Signals


class Lost(GetMedsError):
    pass


def test_tasks_of_a_lane_run_in_order_and_always_runs_after_a_bug(qtbot, tasks):
    seen: list[object] = []
    for i in range(5):
        tasks.run(lambda i=i: i, seen.append)
    bugs: list[object] = []
    tasks.unexpected_error.connect(lambda exc, tb: bugs.append(exc))
    cleared: list[bool] = []
    tasks.run(lambda: 1 / 0, seen.append, always=lambda: cleared.append(True))
    qtbot.waitUntil(lambda: cleared == [True], timeout=10000)
    assert seen == [0, 1, 2, 3, 4]
    assert isinstance(bugs[0], ZeroDivisionError)


def test_a_dropped_connection_is_tried_again_then_gives_up(qtbot, tasks):
    attempts: list[int] = []
    lost: list[int] = []
    tasks.set_retry(RetryPolicy(retryable=lambda exc: isinstance(exc, Lost),
                                delays=(0.01, 0.01), gave_up=lambda: GetMedsError("gave up"),
                                on_lost=lambda: lost.append(1)))

    def flaky() -> str:
        attempts.append(1)
        if len(attempts) < 3:
            raise Lost("connection lost")
        return "ok"

    done: list[str] = []
    tasks.run(flaky, done.append)
    qtbot.waitUntil(lambda: done == ["ok"], timeout=10000)
    assert len(attempts) == 3 and len(lost) == 2

    errors: list[BaseException] = []

    def never() -> None:
        raise Lost("connection lost")

    tasks.run(never, on_error=errors.append)
    qtbot.waitUntil(lambda: bool(errors), timeout=10000)
    assert str(errors[0]) == "gave up"


def test_the_worker_lets_go_of_the_task_before_it_reports(qtbot):
    """A task's function closes over a screen; if the worker held the last
    reference, the screen would be destroyed in the worker thread (a crash)."""
    signals = _Signals()
    at_report: list[object] = []

    def fn() -> int:
        return 1

    runnable = _Runnable(1, fn, signals, None)
    signals.finished.connect(lambda i, r: at_report.append(runnable.fn),
                             Qt.ConnectionType.DirectConnection)
    runnable.run()
    assert at_report == [None]

    class Holder:
        pass

    failed: list[BaseException] = []
    signals.failed.connect(lambda i, exc, tb: failed.append(exc),
                           Qt.ConnectionType.DirectConnection)
    holder = Holder()

    def boom() -> None:
        screen = holder  # a local the traceback's frame would keep alive
        raise ValueError(repr(screen))

    _Runnable(2, boom, signals, None).run()
    assert failed[0].__traceback__ is None  # its frames would keep ``screen``


def test_a_failure_does_not_keep_the_task_function_alive(qtbot):
    """The failure a worker reports refers to no frame of the task: a frame
    keeps its function (and so its closure) alive even after frame.clear(), and
    when the worker's reference to the failure was the last one, a dialog the
    task closed over was destroyed in the pool thread (a crash)."""
    import weakref

    signals = _Signals()
    failed: list[BaseException] = []
    signals.failed.connect(lambda i, exc, tb: failed.append(exc),
                           Qt.ConnectionType.DirectConnection)

    class Dialog:
        pass

    def make() -> tuple[object, weakref.ref[Dialog]]:
        dialog = Dialog()

        def work() -> None:
            try:
                raise KeyError(repr(dialog))
            except KeyError as inner:  # a failure raised while handling another
                raise GetMedsError("could not sign in") from inner

        return work, weakref.ref(dialog)

    work, alive = make()
    _Runnable(1, work, signals, None).run()
    del work
    assert len(failed) == 1 and str(failed[0]) == "could not sign in"
    assert alive() is None  # the failure alone keeps nothing of the task
    assert failed[0].__cause__ is not None and failed[0].__cause__.__traceback__ is None


def test_a_widget_a_task_closed_over_is_destroyed_on_the_gui_thread(qtbot, tasks):
    where: list[str] = []

    class Screen(QWidget):
        pass

    for _ in range(3):
        screen = Screen()
        screen.destroyed.connect(lambda *_: where.append(threading.current_thread().name),
                                 Qt.ConnectionType.DirectConnection)
        done: list[int] = []
        tasks.run(lambda s=screen: s.objectName() and 0, done.append)
        del screen
        qtbot.waitUntil(done.__len__, timeout=10000)
        tasks.wait_idle()
        gc.collect()
    assert where and set(where) == {threading.main_thread().name}


def test_a_shut_down_manager_runs_nothing_but_always(qtbot):
    t = TaskManager()
    t.shutdown()
    ran: list[str] = []
    assert t.run(lambda: ran.append("fn"), always=lambda: ran.append("always")) == 0
    assert ran == ["always"]


def test_garbage_widgets_are_collected_on_the_gui_thread_not_in_a_worker(qtbot, tasks):
    """A closed dialog kept only by a reference cycle is freed by Python's cycle
    collector; the workers allocate enough to trigger it, but it must run on the
    GUI thread (ui/gc_guard.py), or Qt destroys the widget in a worker and crashes."""
    from getmeds_desktop.ui.gc_guard import GuiThreadCollector

    where: list[str] = []

    class Dialog(QWidget):
        def __init__(self) -> None:
            super().__init__()
            self.me = self  # a cycle: only the collector can free it

    gc.enable()  # as in a fresh application (the test run keeps it off)
    collector = GuiThreadCollector()
    try:
        for _ in range(5):
            dlg = Dialog()
            dlg.destroyed.connect(lambda *_: where.append(threading.current_thread().name),
                                  Qt.ConnectionType.DirectConnection)
            del dlg

            def allocate() -> int:
                junk = [[i] for i in range(200_000)]  # crosses every generation's threshold
                return len(junk)

            done: list[int] = []
            tasks.run(allocate, done.append)
            qtbot.waitUntil(done.__len__, timeout=20000)
        tasks.wait_idle()
    finally:
        collector.stop()  # collects on this (the GUI) thread, turns collection back on
        assert gc.isenabled()
        gc.disable()
    assert len(where) == 5 and set(where) == {threading.main_thread().name}, where


def test_the_collector_collects_young_garbage_on_its_timer(qtbot):
    from getmeds_desktop.ui.gc_guard import GuiThreadCollector

    freed: list[str] = []

    class Cycle:
        def __init__(self) -> None:
            self.me = self

        def __del__(self) -> None:
            freed.append(threading.current_thread().name)

    gc.collect()
    collector = GuiThreadCollector(interval_ms=20)
    try:
        for _ in range(gc.get_threshold()[0] + 10):
            Cycle()
        qtbot.waitUntil(lambda: len(freed) > 0, timeout=5000)
    finally:
        collector.stop()
    assert set(freed) == {threading.main_thread().name}
    assert not gc.isenabled()  # it was off when the collector started: stays off


def test_results_queued_at_shutdown_are_dropped(qtbot):
    """A task that ends while the window closes: its result is not delivered
    later to a window being destroyed."""
    import time as _time

    from getmeds_desktop.ui.tasks import TaskManager

    tm = TaskManager()
    called: list[object] = []
    tm.run(lambda: _time.sleep(0.2) or "late", called.append, called.append)
    tm.shutdown()  # waits for the worker; its result is queued for the GUI thread
    qtbot.wait(100)  # the queued result arrives now, and is dropped
    assert called == [] and not tm.busy


def test_a_task_still_running_at_shutdown_lets_go_of_its_closure_in_the_gui_thread(qtbot):
    """A task that outlives the shutdown's wait (a demo being seeded, a slow
    server): what its function closes over (a dialog, in the app) is released
    by the GUI thread when the result comes, never by the worker (a QObject
    destroyed in a worker thread crashed test workers: "QBasicTimer::stop:
    Failed ... from a different thread")."""
    from getmeds_desktop.ui.tasks import TaskManager

    freed: list[str] = []

    class Held:
        def __del__(self) -> None:
            freed.append(threading.current_thread().name)

    release = threading.Event()

    def task() -> object:  # the only reference to the Held is the task's closure
        held = Held()
        return lambda: release.wait(5) and repr(held)

    tm = TaskManager()
    called: list[object] = []
    tm.run(task(), called.append, called.append)
    tm.shutdown(wait_ms=50)  # the task is still running
    release.set()
    assert tm.wait_idle(5000)
    qtbot.wait(50)
    assert called == []  # nothing is delivered after shutdown
    assert freed == []  # the worker did not let go of it: the manager holds it
    del tm  # the window (and its task manager) goes, on the GUI thread
    qtbot.waitUntil(lambda: freed != [], timeout=5000)
    assert freed == [threading.main_thread().name]
