"""Sign-in, first-run administrator, demo logins and remembered passwords."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from PySide6.QtCore import Qt

from getmeds_desktop import db, secrets
from getmeds_desktop.config import DatabaseTarget
from getmeds_desktop.services import staff
from getmeds_desktop.ui.dialogs.first_admin import FirstAdminDialog
from getmeds_desktop.ui.dialogs.login import LoginDialog
from getmeds_desktop.ui.main_window import MainWindow
from getmeds_desktop.ui.workspace import Workspace
from tests.fixtures.data import PASSWORD


def make_login(qtbot, connector, tasks, targets, **kw) -> LoginDialog:
    dlg = LoginDialog(connector, tasks, targets, **kw)
    qtbot.addWidget(dlg)
    dlg.show()
    return dlg


def wait_ready(qtbot, dlg) -> None:
    qtbot.waitUntil(lambda: dlg.sign_in_button.isEnabled(), timeout=20000)


def sign_in(qtbot, dlg, username, password):
    wait_ready(qtbot, dlg)
    dlg.username.setText(username)
    dlg.password.setText(password)
    qtbot.mouseClick(dlg.sign_in_button, Qt.MouseButton.LeftButton)


def test_sign_in_opens_the_main_window(qtbot, connector, tasks, gui_world, empty_config):
    target, world = gui_world
    dlg = make_login(qtbot, connector, tasks, [target])
    with qtbot.waitSignal(dlg.signed_in, timeout=20000) as sig:
        sign_in(qtbot, dlg, world.pharmacist.username, PASSWORD)
    opened, actor = sig.args
    assert actor.username == world.pharmacist.username
    ws = Workspace(opened, actor, empty_config)
    win = MainWindow(ws)
    qtbot.addWidget(win)
    win.show()
    assert win.user_label.text() == f"Test Pharmacist ({world.pharmacist.username})"
    assert win.role_label.text() == "Pharmacist"
    assert "Test database" in win.db_label.text()
    assert "Connected" in win.conn_label.text()
    # a pharmacist does not see Administration
    assert "admin" not in win.area_keys() and "dispensing" in win.area_keys()
    ws.tasks.shutdown()


@pytest.mark.parametrize("role", ["clerk", "doctor", "admin", "technician"])
def test_navigation_shows_only_what_the_role_may_use(qtbot, connector, gui_world, empty_config,
                                                     role):
    target, world = gui_world
    opened = connector.open(target)
    ws = Workspace(opened, getattr(world, role), empty_config)
    win = MainWindow(ws)
    qtbot.addWidget(win)
    expected = {
        # the clerk hands verified fills over at the counter
        "clerk": ["dashboard", "inventory", "patients", "prescriptions", "fills"],
        "doctor": ["dashboard", "inventory", "patients", "prescriptions"],
        # an administrator manages the pharmacy: no fills without a practice role
        "admin": ["dashboard", "inventory", "patients", "prescriptions", "reports", "admin"],
        "technician": ["dashboard", "inventory", "patients", "prescriptions", "dispensing",
                       "fills"],
    }[role]
    assert win.area_keys() == expected
    ws.tasks.shutdown()


def test_wrong_password_is_a_clear_message(qtbot, connector, tasks, gui_world, password_checks):
    target, world = gui_world
    dlg = make_login(qtbot, connector, tasks, [target])
    sign_in(qtbot, dlg, world.clerk.username, "not the password")
    qtbot.waitUntil(lambda: dlg.message.text() == "Wrong username or password.", timeout=20000)
    assert (dlg.isVisible() and dlg.password.hasSelectedText()) or dlg.password.text()
    sign_in(qtbot, dlg, "nobody", "not the password")
    qtbot.waitUntil(lambda: dlg.message.text() == "Wrong username or password.", timeout=20000)


def test_unreachable_server_is_a_clear_message(qtbot, connector, tasks):
    target = DatabaseTarget("postgresql://postgres@127.0.0.1:1/getmeds", "far", "far away")
    dlg = make_login(qtbot, connector, tasks, [target])
    sign_in(qtbot, dlg, "anybody", "any password")
    qtbot.waitUntil(lambda: "cannot be reached" in dlg.message.text(), timeout=20000)
    assert dlg.message.property("kind") == "error"


def test_schema_mismatch_is_a_clear_message(qtbot, connector, tasks, gui_world):
    target, world = gui_world
    engine = db.make_engine(target.url)
    with engine.begin() as c:
        c.execute(sa.text("UPDATE alembic_version SET version_num = 'zz_future'"))
    engine.dispose()
    dlg = make_login(qtbot, connector, tasks, [target])
    if not target.url.startswith("sqlite"):  # a server is opened when somebody signs in
        sign_in(qtbot, dlg, world.admin.username, PASSWORD)
    qtbot.waitUntil(lambda: "newer than this GetMeds" in dlg.message.text(), timeout=20000)


def test_empty_embedded_database_asks_for_the_first_admin(qtbot, connector, tasks, tmp_path):
    target = DatabaseTarget(f"sqlite:///{tmp_path / 'new.sqlite3'}", "embedded", "Embedded")
    dlg = make_login(qtbot, connector, tasks, [target])
    with qtbot.waitSignal(dlg.needs_first_admin, timeout=20000) as sig:
        pass
    opened = sig.args[0]
    first = FirstAdminDialog(opened, tasks, dlg)  # a child of the login dialog: closed with it
    first.show()
    first.username.setText("boss")
    first.full_name.setText("Barbara Boss")
    first.password.setText("short")
    first.repeat.setText("short")
    qtbot.mouseClick(first.ok, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "at least 12" in first.message.text(), timeout=10000)
    first.password.setText("a strong password here")
    first.repeat.setText("a strong password here")
    with qtbot.waitSignal(first.accepted, timeout=10000):
        qtbot.mouseClick(first.ok, Qt.MouseButton.LeftButton)
    assert staff.find_by_username(opened.sf, "boss").role.value == "admin"
    with qtbot.waitSignal(dlg.signed_in, timeout=20000):
        sign_in(qtbot, dlg, "boss", "a strong password here")


def test_remember_password_uses_the_keyring(qtbot, connector, tasks, gui_world, _memory_keyring):
    target, world = gui_world
    dlg = make_login(qtbot, connector, tasks, [target])
    dlg.remember.setChecked(True)
    with qtbot.waitSignal(dlg.signed_in, timeout=20000):
        sign_in(qtbot, dlg, world.clerk.username, PASSWORD)
    assert _memory_keyring.store == {("GetMeds", f"test:{world.clerk.username}"): PASSWORD}
    again = make_login(qtbot, connector, tasks, [target], username=world.clerk.username)
    assert again.password.text() == PASSWORD and again.remember.isChecked()
    # signing in without the box ticked forgets it
    again.remember.setChecked(False)
    with qtbot.waitSignal(again.signed_in, timeout=20000):
        qtbot.mouseClick(again.sign_in_button, Qt.MouseButton.LeftButton)
    assert _memory_keyring.store == {}


def test_no_keyring_backend_disables_remember(qtbot, connector, tasks, gui_world):
    import keyring
    from keyring.backends import fail

    keyring.set_keyring(fail.Keyring())
    target, _ = gui_world
    dlg = make_login(qtbot, connector, tasks, [target])
    assert not dlg.remember.isEnabled()
    assert "No system keyring" in dlg.remember.toolTip()
    assert secrets.remember("test", "x", "y") is False


def test_demo_database_shows_demo_logins(qtbot, connector, tasks, tmp_path):
    from getmeds_desktop.services.demo import DEMO_PASSWORD
    from getmeds_desktop.startup import demo_target

    dlg = make_login(qtbot, connector, tasks, [demo_target(tmp_path)],
                     demo_accounts=[("pharmacist", "Pharmacist")], demo_password=DEMO_PASSWORD)
    text = dlg.findChild(type(dlg.message), "demoLoginList") or dlg.findChild(
        __import__("PySide6.QtWidgets", fromlist=["QLabel"]).QLabel, "demoLoginList")
    assert "pharmacist" in text.text() and DEMO_PASSWORD in text.text()
    with qtbot.waitSignal(dlg.signed_in, timeout=30000) as sig:
        sign_in(qtbot, dlg, "pharmacist", DEMO_PASSWORD)
    opened, actor = sig.args
    assert actor.role.value == "pharmacist" and opened.staff_count >= 4


@pytest.mark.parametrize("shape", ["file_as_folder", "folder", "not_a_database"])
def test_an_unusable_database_path_is_a_clear_message(qtbot, connector, tasks, tmp_path, shape):
    if shape == "file_as_folder":
        (tmp_path / "afile").write_text("x")
        path, words = tmp_path / "afile" / "pharmacy.sqlite3", "is a file, not a folder"
    elif shape == "folder":
        path, words = tmp_path, "a folder, not a database file"
    else:
        path = tmp_path / "notes.sqlite3"
        path.write_bytes(b"these are my notes, not a database" * 100)
        words = "not a GetMeds database"
    dlg = make_login(qtbot, connector, tasks, [DatabaseTarget(f"sqlite:///{path}", "embedded",
                                                              "Embedded")])
    qtbot.waitUntil(lambda: "cannot be opened" in dlg.message.text(), timeout=20000)
    assert str(path) in dlg.message.text() and words in dlg.message.text()
    assert dlg.sign_in_button.isEnabled()  # another database can still be chosen
    qtbot.waitUntil(lambda: not tasks.busy, timeout=20000)  # the probe has finished for good
    dlg.close()


def test_a_database_path_with_nothing_there_asks_before_creating(qtbot, tmp_path, monkeypatch):
    from PySide6.QtWidgets import QMessageBox

    from getmeds_desktop.app import confirm_new_database

    path = tmp_path / "typo" / "pharmacy.sqlite3"
    asked: list[str] = []
    answer = [QMessageBox.StandardButton.No]
    monkeypatch.setattr(QMessageBox, "question",
                        lambda *a, **k: asked.append(a[2]) or answer[0])
    assert not confirm_new_database(f"sqlite:///{path}")
    assert f"There is no database at {path}" in asked[0] and not path.parent.exists()
    answer[0] = QMessageBox.StandardButton.Yes
    assert confirm_new_database(f"sqlite:///{path}")
    existing = tmp_path / "there.sqlite3"
    existing.touch()
    asked.clear()
    assert confirm_new_database(f"sqlite:///{existing}") and not asked  # nothing to ask
