"""The failover drill through the app itself: a signed-in window whose database
address is a proxy to the local PostgreSQL has dispenses queued in its worker
when every backend is terminated and the address stops answering; the address
comes back (a new proxy on the same port, as the standby takes over the RDS
endpoint). The status bar goes from Reconnecting back to Connected, the
listener listens again, every queued dispense is done exactly once and the
window hears of each. The interruption waits for a dispense to have started,
never for a time."""

from __future__ import annotations

import threading
import uuid

import sqlalchemy as sa

from benchmarks.netdelay import DelayProxy, through
from getmeds_desktop import db
from getmeds_desktop.config import DatabaseTarget
from getmeds_desktop.models import Dispense
from getmeds_desktop.services import dispensing
from getmeds_desktop.services.dispensing import DispenseRequest
from getmeds_desktop.startup import Connector
from getmeds_desktop.ui.main_window import MainWindow
from getmeds_desktop.ui.workspace import Workspace
from tests.fixtures.data import NO_SCAN, build_world
from tests.unit.test_failover_drill import _terminate_all

DISPENSES = 6


def test_the_window_rides_out_a_failover(qtbot, pg_fresh_db, empty_config):
    direct = db.make_engine(pg_fresh_db,
                            connect_args={"application_name": "getmeds-failover-drill"})
    world = build_world(db.session_factory(direct))
    product = world.product("Failovamox")
    world.receive(product.id, 200, lot="FAIL-1")
    rxs = [world.rx(world.patient("Fay", f"Failover {i}").id, product.id, quantity=5)
           for i in range(DISPENSES)]
    requests = [DispenseRequest(prescription_id=rx.id, request_id=uuid.uuid4(),
                                no_scan_reason=NO_SCAN) for rx in rxs]

    u = sa.engine.make_url(pg_fresh_db)
    proxies: list[DelayProxy] = [DelayProxy(u.host or "127.0.0.1", u.port or 5432).__enter__()]
    connector = Connector()
    ws: Workspace | None = None
    try:
        opened = connector.open(DatabaseTarget(through(pg_fresh_db, proxies[0]), "pharmacy",
                                               "Pharmacy server"))
        ws = Workspace(opened, world.pharmacist, empty_config)
        win = MainWindow(ws)
        qtbot.addWidget(win)
        win.show()
        states: list[str] = []
        ws.connection_state_changed.connect(states.append)
        ws.start_live_sync(first_backoff=0.1, max_backoff=0.5, probe_seconds=0.5)
        qtbot.waitUntil(lambda: ws.live.listener.state == "connected", timeout=10000)
        heard: list[uuid.UUID] = []
        ws.data_changed.connect(lambda table, ids: heard.extend(
            ids if table == "dispenses" else ()))

        # the first dispense holds the worker until the failover has begun
        started, go_on = threading.Event(), threading.Event()

        def first() -> object:
            started.set()
            assert go_on.wait(30)
            return dispensing.dispense(opened.sf, world.pharmacist, requests[0])

        results: list[object] = []
        ws.run(first, results.append)
        for req in requests[1:]:
            ws.run(lambda req=req: dispensing.dispense(opened.sf, world.pharmacist, req),
                   results.append)
        assert started.wait(10)
        # the primary fails: its connections die and its address stops answering
        port = proxies[0].port
        proxies.pop().__exit__(None, None, None)
        _terminate_all(pg_fresh_db)
        go_on.set()  # the queued dispenses now meet a dead connection, then no answer
        qtbot.waitUntil(lambda: "reconnecting" in states, timeout=20000)
        assert win.conn_label.text().endswith("Reconnecting…")
        # the standby answers at the same address
        proxies.append(DelayProxy(u.host or "127.0.0.1", u.port or 5432, port=port).__enter__())
        qtbot.waitUntil(lambda: len(results) == DISPENSES, timeout=60000)
        qtbot.waitUntil(lambda: ws.connection_state == "connected", timeout=20000)
        assert win.conn_label.text().endswith("Connected")
        qtbot.waitUntil(lambda: ws.live.listener.state == "connected", timeout=10000)
        assert sorted(r.prescription_id for r in results) == sorted(rx.id for rx in rxs)
        qtbot.waitUntil(lambda: {r.dispense_id for r in results} <= set(heard),
                        timeout=10000)  # the window heard of every one
    finally:
        if ws is not None:
            ws.close()
        connector.close_all()
        for proxy in proxies:
            proxy.__exit__(None, None, None)
    check = db.make_engine(pg_fresh_db)
    try:
        with check.connect() as c:
            got = c.execute(sa.select(Dispense.request_id)).scalars().all()
        assert sorted(got) == sorted(r.request_id for r in requests)  # once each
    finally:
        check.dispose()
        direct.dispose()
