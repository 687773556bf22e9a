"""The network cable pulled at a busy counter: the pharmacist keeps dispensing
on the workstation's encrypted offline copy, the status bar says what is
waiting, and when the link is back every fill is on the server exactly once;
what the server refuses is listed in Needs attention.

The workstation reaches the server through a local proxy, which the test shuts
(the cable pulled) and starts again on the same address (plugged back in)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from PySide6.QtCore import Qt

from benchmarks.netdelay import DelayProxy, through
from getmeds_desktop import db
from getmeds_desktop.config import DatabaseTarget
from getmeds_desktop.models import Dispense
from getmeds_desktop.services import ledger
from getmeds_desktop.services.dispensing import DispenseRequest
from getmeds_desktop.startup import Connector
from getmeds_desktop.sync.outbox import Kind
from getmeds_desktop.ui.dialogs.prescriptions import DispenseDialog
from getmeds_desktop.ui.main_window import MainWindow
from getmeds_desktop.ui.workspace import Workspace
from tests.fixtures.data import NO_SCAN, World, build_world

pytestmark = pytest.mark.slow


class Counter:
    def __init__(self, url: str, other: sa.Engine, world: World, win: MainWindow,
                 ws: Workspace, proxy: DelayProxy) -> None:
        self.url, self.other, self.world, self.win, self.ws = url, other, world, win, ws
        self.proxy = proxy

    def pull_the_cable(self, qtbot) -> None:
        self.proxy.__exit__(None, None, None)
        qtbot.waitUntil(lambda: self.ws.connection_state == "offline", timeout=20000)

    def plug_it_back(self, qtbot) -> None:
        u = sa.engine.make_url(self.url)
        self.proxy = DelayProxy(u.host or "127.0.0.1", u.port or 5432,
                                port=self.proxy.port).__enter__()
        qtbot.waitUntil(lambda: self.ws.connection_state == "connected", timeout=20000)

    def server_fills(self, request_ids: list[uuid.UUID]) -> int:
        with self.other.connect() as c:
            return c.execute(sa.select(sa.func.count()).select_from(Dispense)
                             .where(Dispense.request_id.in_(request_ids))).scalar_one()


@pytest.fixture
def counter(qtbot, pg_fresh_db, empty_config, tmp_path) -> Iterator[Counter]:
    other = db.make_engine(pg_fresh_db,
                           connect_args={"application_name": "getmeds-test-other-workstation"})
    world = build_world(db.session_factory(other))
    u = sa.engine.make_url(pg_fresh_db)
    proxy = DelayProxy(u.host or "127.0.0.1", u.port or 5432).__enter__()
    connector = Connector()
    opened = connector.open(DatabaseTarget(through(pg_fresh_db, proxy), "test", "Pharmacy"))
    ws = Workspace(opened, world.pharmacist, empty_config)
    win = MainWindow(ws)
    qtbot.addWidget(win)
    win.resize(1300, 800)
    win.show()
    ws.start_live_sync(first_backoff=0.1, max_backoff=0.3, probe_seconds=0.3,
                       offline_after=0.5)
    qtbot.waitUntil(lambda: ws.live.listener.state == "connected", timeout=10000)
    seen: list[object] = []  # the first sync's progress, as the status bar showed it
    ws.offline_changed.connect(lambda: seen.append(
        (ws.copy_progress, win.sync_bar.isVisible(), win.conn_label.text())))
    ws.start_offline(tmp_path / "offline")
    qtbot.waitUntil(lambda: ws.offline is not None and ws.offline.made
                    and ws.copy_progress is None, timeout=30000)
    c = Counter(pg_fresh_db, other, world, win, ws, proxy)
    c.first_sync_seen = seen
    c.tmp = tmp_path
    yield c
    ws.close()
    connector.close_all()
    c.proxy.__exit__(None, None, None)
    other.dispose()


def _dispense_in_dialog(qtbot, c: Counter, rx_id: uuid.UUID) -> object:
    dlg = DispenseDialog(c.ws, rx_id, c.win)
    qtbot.addWidget(dlg)
    dlg.show()
    qtbot.waitUntil(lambda: dlg.preview is not None, timeout=10000)
    dlg.no_scan.setChecked(True)
    qtbot.keyClicks(dlg.no_scan_reason, NO_SCAN)
    try:
        qtbot.waitUntil(dlg.confirm.isEnabled, timeout=5000)
    except Exception:
        print("MSG", dlg.message.text(), "PREVIEW", dlg.preview)
        raise
    with qtbot.waitSignal(dlg.dispensed, timeout=15000) as done:
        qtbot.mouseClick(dlg.confirm, Qt.MouseButton.LeftButton)
    result = done.args[0]
    dlg.close()
    return result


def test_fills_made_offline_reach_the_server_once_when_the_link_is_back(qtbot, counter):
    c, world = counter, counter.world
    shown = [s for s in c.first_sync_seen if s[0] is not None]
    assert shown and all(bar and "making the offline copy" in text for _p, bar, text in shown)
    assert shown[-1][0][0] == shown[-1][0][1]  # to the last row
    assert not c.win.sync_bar.isVisible()
    product = world.product("Offlinamox")
    world.receive(product.id, 100, lot="OFF-1")
    rxs = [world.rx(world.patient("Olive", f"Offline {i}").id, product.id, quantity=10)
           for i in range(3)]
    # the copy has the new prescriptions (a pull, as after their notifications)
    qtbot.waitUntil(lambda: c.ws.offline.sync(c.ws.database.sf) is not None, timeout=10000)

    c.pull_the_cable(qtbot)
    assert c.win.conn_label.text().startswith("● Offline since")
    assert "working on the offline copy" in c.win.conn_label.text()
    assert c.ws.sf is c.ws.offline.sf  # the screens read the offline copy
    # and a report is made from it (the server is out of reach)
    from pypdf import PdfReader

    from getmeds_desktop.reports import ReportParams, generate

    report = generate(c.ws.report_sf, world.pharmacist, "inventory", ReportParams(),
                      c.tmp / "inventory.pdf")
    assert "Offlinamox" in "".join(p.extract_text() for p in PdfReader(report.path).pages)

    made = [_dispense_in_dialog(qtbot, c, rx.id) for rx in rxs[:2]]
    assert all(r.quantity == 10 for r in made)
    # a write the outbox does not take is refused, never kept here only
    from getmeds_desktop.services import inventory
    from getmeds_desktop.services.errors import InvalidState

    with pytest.raises(InvalidState, match="cannot be done offline"):
        inventory.adjust_stock(c.ws.sf, world.pharmacist, made[0].allocations[0].lot_id, -1,
                               "count correction", request_id=uuid.uuid4())
    # the first fill's label, printed offline: recorded on the copy and queued
    from getmeds_desktop.sync.outbox import LabelPrintRequest

    printed: list[object] = []
    c.ws.run(lambda: c.ws.perform(Kind.LABEL, LabelPrintRequest(made[0].dispense_id)),
             printed.append)
    qtbot.waitUntil(lambda: bool(printed), timeout=5000)
    qtbot.waitUntil(lambda: "3 writes waiting" in c.win.conn_label.text(), timeout=5000)
    # the queue marks the prescriptions filled offline until the server has them
    from getmeds_desktop.ui.tablemodels.models import prescription_model

    queue = prescription_model(c.ws)
    queue.reload()
    qtbot.waitUntil(lambda: not queue.loading and queue.rowCount() == 3, timeout=5000)

    def marked() -> set[uuid.UUID]:
        return {queue.row_at(i).id for i in range(queue.rowCount())
                if str(queue.data(queue.index(i, 0))).startswith("⏳")}

    qtbot.waitUntil(lambda: marked() == {rxs[0].id, rxs[1].id}, timeout=5000)
    request_ids = [e.request_id for e in c.ws.offline.outbox.entries(("waiting",))
                   if e.kind == Kind.DISPENSE]
    assert len(request_ids) == 2
    assert c.server_fills(request_ids) == 0  # nothing reached the server meanwhile

    c.plug_it_back(qtbot)
    qtbot.waitUntil(lambda: c.ws.offline.state().waiting == 0
                    and c.ws.sync_progress is None, timeout=30000)
    assert c.server_fills(request_ids) == 2
    with c.other.connect() as conn:  # the label is the server's fill's, once
        labels = conn.execute(sa.text(
            "SELECT d.prescription_id FROM label_prints l JOIN dispenses d "
            "ON d.id = l.dispense_id WHERE d.request_id = ANY(:r)"),
            {"r": request_ids}).scalars().all()
    assert labels == [rxs[0].id]
    with c.other.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(Dispense).where(
            Dispense.prescription_id.in_([rx.id for rx in rxs]))).scalar_one() == 2
    check = ledger.verify(db.session_factory(c.other))
    assert check.negative_lots == 0 and check.lot_mismatches == 0
    assert check.duplicate_request_ids == 0
    qtbot.waitUntil(lambda: c.win.conn_label.text() == "● Connected", timeout=5000)
    qtbot.waitUntil(lambda: not marked(), timeout=5000)
    assert not c.win.attention_button.isVisible()
    assert c.ws.sf is c.ws.database.sf


def test_a_fill_the_server_refuses_is_listed_for_a_person(qtbot, counter):
    c, world = counter, counter.world
    product = world.product("Lastunitol")
    world.receive(product.id, 10, lot="LAST-1")
    mine = world.rx(world.patient("Mina", "Offline").id, product.id, quantity=10)
    theirs = world.rx(world.patient("Theo", "Online").id, product.id, quantity=10)
    qtbot.waitUntil(lambda: c.ws.offline.sync(c.ws.database.sf) is not None, timeout=10000)

    c.pull_the_cable(qtbot)
    _dispense_in_dialog(qtbot, c, mine.id)  # the last 10, on the offline copy
    # meanwhile another workstation, still online, fills the last 10 on the server
    from getmeds_desktop.services import dispensing

    dispensing.dispense(db.session_factory(c.other), world.pharmacist,
                        DispenseRequest(theirs.id, uuid.uuid4(), no_scan_reason=NO_SCAN))

    c.plug_it_back(qtbot)
    qtbot.waitUntil(lambda: c.ws.offline.state().needs_attention == 1, timeout=30000)
    qtbot.waitUntil(c.win.attention_button.isVisible, timeout=5000)
    assert "1 needs attention" in c.win.attention_button.text()
    with c.other.connect() as conn:  # the server's stock never went below zero
        assert conn.execute(sa.text(
            "SELECT min(on_hand) FROM stock_lots WHERE product_id = :p"),
            {"p": product.id}).scalar_one() == 0
    c.win.show_needs_attention()
    from getmeds_desktop.ui.dialogs.offline import NeedsAttentionDialog

    dlg = c.win.findChild(NeedsAttentionDialog)
    qtbot.waitUntil(lambda: dlg.model.rowCount() == 1, timeout=5000)
    item = dlg.model.row_at(0)
    assert item.kind == Kind.DISPENSE
    assert "Count the shelf" in " ".join(a.label for a in item.actions)
    assert item.summary.endswith("first fill: 10 handed out")
    assert "Count the shelf" in dlg.details.text()
    qtbot.mouseClick(dlg.dismiss, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: c.ws.offline.state().needs_attention == 0, timeout=5000)
    qtbot.waitUntil(lambda: not c.win.attention_button.isVisible(), timeout=5000)
