"""Live sync for the GUI: the listener's callbacks become signals on the GUI
thread, and a batch of changes becomes one ``Workspace.data_changed`` per table.

A batch arrives already looked up by the listener under the signed-in login's
own privileges (a notification carries only a table and an id, and may be
forged): the views then re-read the rows they show, so what appears on screen
always comes from the database, never from a notification."""

from __future__ import annotations

from PySide6.QtCore import QObject, Qt, Signal, Slot

from ..sync import EVERYTHING, Change, ChangeListener, group
from .workspace import Workspace

TABLES = ("patients", "products", "stock_lots", "prescriptions", "dispenses")


class LiveSync(QObject):
    _changes = Signal(object)  # list[Change], from the listener thread
    _state = Signal(str)

    def __init__(self, ws: Workspace, **listener_options: float) -> None:
        super().__init__(ws)
        self.ws = ws
        self._changes.connect(self._apply, Qt.ConnectionType.QueuedConnection)
        self._state.connect(ws.set_connection_state, Qt.ConnectionType.QueuedConnection)
        self.listener = ChangeListener(ws.database.engine, self._changes.emit,
                                       self._state.emit, **listener_options)

    def start(self) -> None:
        self.listener.start()

    def stop(self) -> None:
        self.listener.stop()

    def check_now(self) -> None:
        self.listener.check_now()

    @Slot(object)  # from the listener thread (see ui.tasks on PYSIDE-3124)
    def _apply(self, batch: list[Change]) -> None:
        grouped = group(batch)
        if EVERYTHING in grouped:
            grouped = dict.fromkeys(TABLES)
        for table, ids in grouped.items():
            # an empty set means "anything in that table": refresh what is shown
            self.ws.data_changed.emit(table, set() if ids is None else ids)
