"""'Remember password' uses only the operating system's keyrings.

keyrings.alt is installed in the test environment on purpose: it offers a
plaintext file (base64 of the password) and a file encrypted with a password
typed on the console. However such a backend is chosen (set directly, by
PYTHON_KEYRING_BACKEND, by keyringrc.cfg, or by keyring's own chaining), GetMeds
never calls it: nothing is written, nothing is read, the checkbox says why.
"""

from __future__ import annotations

import getpass
from pathlib import Path

import keyring
import keyring.backend
import keyring.core
import pytest
from keyring.backends import SecretService, chainer, null
from keyrings.alt.file import EncryptedKeyring, PlaintextKeyring

from getmeds_desktop import secrets
from tests.fixtures.memkeyring import MemoryKeyring


@pytest.fixture(autouse=True)
def _no_console_prompts(monkeypatch):
    """EncryptedKeyring asks for its password with getpass: reaching it at all fails."""
    def refuse(*_a, **_k):
        raise AssertionError("an untrusted keyring backend was used")

    monkeypatch.setattr(getpass, "getpass", refuse)


@pytest.fixture
def plaintext(tmp_path: Path) -> PlaintextKeyring:
    kr = PlaintextKeyring()
    kr.file_path = str(tmp_path / "keyring_pass.cfg")
    keyring.set_keyring(kr)
    return kr


def _refused(problem: str | None, name: str) -> None:
    assert problem is not None and name in problem
    assert "not remembered" in problem


def test_a_plaintext_keyring_is_refused_and_nothing_is_written(plaintext):
    _refused(secrets.backend_problem(), "keyrings.alt.file.PlaintextKeyring")
    assert secrets.remember("pharmacy", "nina", "s3cret password") is False
    secrets.forget("pharmacy", "nina")
    assert secrets.recall("pharmacy", "nina") is None
    assert not Path(plaintext.file_path).exists()


def test_a_password_left_in_a_plaintext_keyring_is_not_read_back(plaintext):
    """An older version (or another program) left one there: GetMeds does not use it."""
    plaintext.set_password(secrets.SERVICE, "pharmacy:nina", "old plaintext")
    before = Path(plaintext.file_path).read_bytes()
    assert secrets.recall("pharmacy", "nina") is None
    secrets.remember("pharmacy", "nina", "new password")
    secrets.forget("pharmacy", "nina")
    assert Path(plaintext.file_path).read_bytes() == before


def test_an_encrypted_file_keyring_is_refused_without_asking_for_its_password(tmp_path):
    # (made without its cipher library: GetMeds must not get as far as using it)
    kr = EncryptedKeyring.__new__(EncryptedKeyring)
    kr.file_path = str(tmp_path / "crypted_pass.cfg")
    keyring.set_keyring(kr)
    _refused(secrets.backend_problem(), "EncryptedKeyring")
    assert secrets.remember("pharmacy", "nina", "s3cret password") is False
    assert secrets.recall("pharmacy", "nina") is None
    assert not Path(kr.file_path).exists()


def test_the_null_keyring_is_refused():
    keyring.set_keyring(null.Keyring())
    _refused(secrets.backend_problem(), "keyring.backends.null.Keyring")


def test_the_environment_variable_cannot_bring_in_a_plaintext_keyring(monkeypatch, tmp_path):
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyrings.alt.file.PlaintextKeyring")
    keyring.core.init_backend()
    kr = keyring.get_keyring()
    assert isinstance(kr, PlaintextKeyring)
    _refused(secrets.backend_problem(), "PlaintextKeyring")
    assert secrets.remember("pharmacy", "nina", "s3cret password") is False
    assert not Path(kr.file_path).exists()


def test_keyringrc_cannot_bring_in_a_plaintext_keyring(monkeypatch):
    from keyring.util import platform_

    monkeypatch.delenv("PYTHON_KEYRING_BACKEND", raising=False)
    rc = platform_.config_root() / "keyringrc.cfg"
    rc.parent.mkdir(parents=True, exist_ok=True)
    rc.write_text("[backend]\ndefault-keyring=keyrings.alt.file.PlaintextKeyring\n")
    try:
        keyring.core.init_backend()
        kr = keyring.get_keyring()
        assert isinstance(kr, PlaintextKeyring)
        _refused(secrets.backend_problem(), "PlaintextKeyring")
        assert secrets.remember("pharmacy", "nina", "s3cret password") is False
        assert not Path(kr.file_path).exists()
    finally:
        rc.unlink()


def _chain(monkeypatch, members: list) -> chainer.ChainerBackend:
    monkeypatch.setattr(keyring.backend, "get_all_keyring", lambda: members)
    kr = chainer.ChainerBackend()
    keyring.set_keyring(kr)
    return kr


def test_a_chain_is_refused_when_any_member_is_untrusted(monkeypatch, tmp_path):
    """keyring chains every backend it finds: with keyrings.alt installed the
    chain holds its plaintext file next to the real keyring."""
    trusted = MemoryKeyring()
    plain = PlaintextKeyring()
    plain.file_path = str(tmp_path / "keyring_pass.cfg")
    _chain(monkeypatch, [trusted, plain])
    _refused(secrets.backend_problem(), "PlaintextKeyring")
    assert secrets.remember("pharmacy", "nina", "s3cret password") is False
    assert trusted.store == {} and not Path(plain.file_path).exists()


def test_a_chain_of_trusted_backends_is_used(monkeypatch):
    first, second = MemoryKeyring(), MemoryKeyring()
    _chain(monkeypatch, [first, second])
    assert secrets.backend_problem() is None
    assert secrets.remember("pharmacy", "nina", "s3cret password") is True
    assert secrets.recall("pharmacy", "nina") == "s3cret password"


def test_an_empty_chain_means_no_keyring(monkeypatch):
    _chain(monkeypatch, [])
    assert secrets.backend_problem() == secrets.NO_KEYRING


def test_a_look_alike_of_a_trusted_backend_is_not_trusted():
    """A plug-in can call itself anything and subclass anything: only the exact
    classes of the operating system's keyrings count."""
    written: list[str] = []

    class Keyring(SecretService.Keyring):  # same class name, subclass of a trusted one
        priority = 5  # type: ignore[assignment]

        def set_password(self, service, username, password):
            written.append(password)

        def get_password(self, service, username):
            written.append("read")

    keyring.set_keyring(Keyring())
    assert secrets.backend_problem() is not None
    assert secrets.remember("pharmacy", "nina", "s3cret password") is False
    assert secrets.recall("pharmacy", "nina") is None
    assert written == []


def test_the_allow_list_is_exactly_the_operating_systems_keyrings():
    assert {
        "keyring.backends.Windows.WinVaultKeyring",
        "keyring.backends.macOS.Keyring",
        "keyring.backends.SecretService.Keyring",
        "keyring.backends.libsecret.Keyring",
        "keyring.backends.kwallet.DBusKeyring",
        "keyring.backends.kwallet.DBusKeyringKWallet4",
    } | {"tests.fixtures.memkeyring.MemoryKeyring"} == secrets.SECURE_BACKENDS  # conftest
