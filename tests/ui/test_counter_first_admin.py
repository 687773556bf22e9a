"""The first administrator's form: Enter creates the account, never cancels it."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QPushButton

from getmeds_desktop.config import DatabaseTarget
from getmeds_desktop.services import staff
from getmeds_desktop.ui.dialogs.first_admin import FirstAdminDialog
from getmeds_desktop.ui.dialogs.login import LoginDialog


def test_enter_after_a_refusal_creates_the_account(qtbot, connector, tasks, tmp_path):
    target = DatabaseTarget(f"sqlite:///{tmp_path / 'new.sqlite3'}", "embedded", "Embedded")
    login = LoginDialog(connector, tasks, [target])
    qtbot.addWidget(login)
    login.show()
    with qtbot.waitSignal(login.needs_first_admin, timeout=20000) as sig:
        pass
    opened = sig.args[0]
    first = FirstAdminDialog(opened, tasks, login)
    first.show()
    qtbot.waitUntil(first.isActiveWindow, timeout=5000)
    for button in first.findChildren(QPushButton):
        assert not button.autoDefault() and button.isDefault() == (button is first.ok)
    first.username.setText("boss")
    first.full_name.setText("Barbara Boss")
    first.password.setText("short")
    first.repeat.setText("short")
    # pressed with the mouse: disabled while creating, the focus moves on to Cancel
    qtbot.mouseClick(first.ok, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "at least 12" in first.message.text(), timeout=10000)
    first.password.setText("a strong password here")
    first.repeat.setText("a strong password here")
    with qtbot.waitSignal(first.accepted, timeout=10000):
        qtbot.keyClick(QApplication.focusWidget() or first, Qt.Key.Key_Return)
    assert staff.find_by_username(opened.sf, "boss").role.value == "admin"
