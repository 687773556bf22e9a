"""Administration > Backups, as an administrator uses it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import boto3
import pytest
import sqlalchemy as sa
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QInputDialog, QMessageBox

from getmeds_desktop import db
from getmeds_desktop.config import DatabaseTarget
from getmeds_desktop.services import listing
from getmeds_desktop.ui.main_window import MainWindow
from getmeds_desktop.ui.workspace import Workspace
from tests.fixtures.data import build_world
from tests.fixtures.database import _pg_admin_engine, pg_admin_url, role_prefix


def _open_backups(qtbot, win: MainWindow):
    admin = win.show_area("admin")
    page = admin.backups
    admin.tabs.setCurrentWidget(page)
    return page


def test_embedded_copies_copy_now_and_restore(qtbot, tmp_path, connector, empty_config,
                                              monkeypatch):
    url = f"sqlite:///{tmp_path / 'data' / 'getmeds.sqlite3'}"
    engine, _ = db.prepare_embedded(tmp_path / "data" / "getmeds.sqlite3")
    world = build_world(db.session_factory(engine))
    engine.dispose()
    opened = connector.open(DatabaseTarget(url, "pharmacy", "This workstation"))
    ws = Workspace(opened, world.admin, empty_config)
    win = MainWindow(ws)
    qtbot.addWidget(win)
    win.show()
    page = _open_backups(qtbot, win)
    qtbot.waitUntil(lambda: page.loaded and not ws.tasks.busy, timeout=10000)
    assert page.model.rowCount() == 1, (page.message.text(), page.model.rows())  # today's copy
    before = world.patient("Bo", "Before")

    qtbot.mouseClick(page.now_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not ws.tasks.busy and page.now_button.isEnabled(), timeout=10000)
    assert "Backed up" in page.message.text(), page.message.text()
    qtbot.waitUntil(lambda: page.model.rowCount() == 2, timeout=10000)
    world.patient("Al", "After")

    page.table.selectRow(0)  # the copy just made: Bo, not Al
    monkeypatch.setattr(QMessageBox, "question",
                        lambda *a, **k: QMessageBox.StandardButton.Yes)
    monkeypatch.setattr(QMessageBox, "information", lambda *a, **k: None)
    with qtbot.waitSignal(win.sign_out_requested, timeout=10000):
        page.restore()
    names = {r.name for r in listing.list_patients(ws.sf, world.admin, "", limit=100).rows}
    assert any("Before" in n for n in names) and not any("After" in n for n in names)
    assert before.id in {r.id for r in listing.list_patients(ws.sf, world.admin, "").rows}
    ws.tasks.shutdown()


@pytest.fixture
def moto_s3(monkeypatch) -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    for var in ("AWS_PROFILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    boto3.client("s3", endpoint_url=url).create_bucket(Bucket="pharmacy-backups")
    yield url
    server.stop()


def test_server_backup_now_and_restore_to_a_new_database(qtbot, pg_fresh_db, connector,
                                                         empty_config, moto_s3, monkeypatch):
    engine = db.make_engine(pg_fresh_db)
    world = build_world(db.session_factory(engine))
    world.patient("Sal", "Server")
    opened = connector.open(DatabaseTarget(pg_fresh_db, "server", "Pharmacy server"))
    ws = Workspace(opened, world.admin, empty_config)
    win = MainWindow(ws)
    qtbot.addWidget(win)
    win.show()
    page = _open_backups(qtbot, win)
    assert "Enter the backup bucket" in page.message.text()
    page.bucket.setText("pharmacy-backups")
    page.endpoint.setText(moto_s3)
    page.back_up_now()
    qtbot.waitUntil(lambda: "Backed up" in page.message.text(), timeout=30000)
    qtbot.waitUntil(lambda: page.model.rowCount() == 1, timeout=10000)
    assert page.model.row_at(0).database == sa.engine.make_url(pg_fresh_db).database

    name = f"{role_prefix()}guirestore_{uuid.uuid4().hex[:6]}"
    with _pg_admin_engine().connect() as c:
        c.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        target = pg_admin_url().set(database=name).render_as_string(hide_password=False)
        monkeypatch.setattr(QInputDialog, "getText", lambda *a, **k: (target, True))
        page.table.selectRow(0)
        page.restore()
        qtbot.waitUntil(lambda: "Restored into" in page.message.text()
                        or page.message.property("kind") == "error", timeout=30000)
        assert f"Restored into {name}" in page.message.text()
        check = db.make_engine(target, poolclass=sa.NullPool)
        with check.connect() as c:
            assert c.execute(sa.text("SELECT count(*) FROM patients WHERE last_name = 'Server'")
                             ).scalar() == 1
        check.dispose()
        # restoring into the same database again is refused, with the reason shown
        page.restore()
        qtbot.waitUntil(lambda: page.message.property("kind") == "error", timeout=30000)
        assert "already has tables" in page.message.text()
    finally:
        with _pg_admin_engine().connect() as c:
            c.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        ws.tasks.shutdown()
        engine.dispose()


def test_the_daily_copy_goes_to_the_site_files_bucket(qtbot, tmp_path, moto_s3, monkeypatch):
    """Embedded, with [backups] bucket in the site file: after sign-in, the
    copy made when the database was opened is uploaded (with its checksum)."""
    import hashlib

    from PySide6.QtWidgets import QApplication

    from getmeds_desktop.config import load_config
    from getmeds_desktop.ui.controller import AppController
    from tests.fixtures.data import PASSWORD

    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_s3)
    path = tmp_path / "data" / "getmeds.sqlite3"
    engine, _ = db.prepare_embedded(path)
    world = build_world(db.session_factory(engine))
    engine.dispose()
    site = tmp_path / "getmeds.toml"
    site.write_text('[backups]\nbucket = "pharmacy-backups"\nprefix = "rivera"\n')
    cfg = load_config([site], tmp_path / "none.toml")
    target = DatabaseTarget(f"sqlite:///{path}", "pharmacy", "This workstation")
    ctrl = AppController(QApplication.instance(), cfg, [target], tmp_path / "log.txt")
    try:
        login = ctrl.show_login(world.pharmacist.username)
        qtbot.addWidget(login)
        login.password.setText(PASSWORD)
        with qtbot.waitSignal(login.signed_in, timeout=20000):
            qtbot.mouseClick(login.sign_in_button, Qt.MouseButton.LeftButton)
        qtbot.addWidget(ctrl.window)
        s3 = boto3.client("s3", endpoint_url=moto_s3)

        def uploaded() -> list[dict]:
            return s3.list_objects_v2(Bucket="pharmacy-backups",
                                      Prefix="rivera/embedded/").get("Contents", [])

        qtbot.waitUntil(lambda: bool(uploaded()), timeout=20000)
        key = uploaded()[0]["Key"]
        copy = path.parent / "backups" / key.rsplit("/", 1)[1]
        head = s3.head_object(Bucket="pharmacy-backups", Key=key)
        assert head["Metadata"]["sha256"] == hashlib.sha256(copy.read_bytes()).hexdigest()
    finally:
        ctrl.shutdown()
