"""The sign-in dialog with a keyring GetMeds does not trust (keyrings.alt's
plaintext file): the checkbox is off and says why, and even a checkbox forced
on by hand writes nothing."""

from __future__ import annotations

from pathlib import Path

import keyring
import pytest
from keyrings.alt.file import PlaintextKeyring
from PySide6.QtCore import Qt

from getmeds_desktop.ui.dialogs.login import LoginDialog
from tests.fixtures.data import PASSWORD

pytestmark = pytest.mark.parametrize("backend_name", ["sqlite"], indirect=True)


def test_a_plaintext_keyring_disables_remember_and_nothing_is_written(
        qtbot, connector, tasks, gui_world, tmp_path):
    kr = PlaintextKeyring()
    kr.file_path = str(tmp_path / "keyring_pass.cfg")
    keyring.set_keyring(kr)
    target, world = gui_world
    dlg = LoginDialog(connector, tasks, [target])
    qtbot.addWidget(dlg)
    dlg.show()
    assert not dlg.remember.isEnabled() and not dlg.remember.isChecked()
    reason = dlg.remember_reason
    assert reason.isVisible() and "PlaintextKeyring" in reason.text()
    assert "not available" in dlg.remember.text()
    assert "PlaintextKeyring" in dlg.remember.toolTip()
    # somebody forces the box on: still nothing reaches the file
    dlg.remember.setEnabled(True)
    dlg.remember.setChecked(True)
    qtbot.waitUntil(lambda: dlg.sign_in_button.isEnabled(), timeout=20000)
    dlg.username.setText(world.clerk.username)
    dlg.password.setText(PASSWORD)
    with qtbot.waitSignal(dlg.signed_in, timeout=20000):
        qtbot.mouseClick(dlg.sign_in_button, Qt.MouseButton.LeftButton)
    assert not Path(kr.file_path).exists()
    # and the next dialog does not read the file either
    kr.set_password("GetMeds", f"test:{world.clerk.username}", "planted")
    again = LoginDialog(connector, tasks, [target], username=world.clerk.username)
    qtbot.addWidget(again)
    assert again.password.text() == ""
