"""Remembered passwords in the operating system's keyring (service "GetMeds").

Key: "<profile>:<username>". Only keyrings that the operating system keeps
encrypted for the signed-in user are used (:data:`SECURE_BACKENDS`); any other
backend (keyrings.alt's plaintext or self-encrypted files, the null keyring,
a third-party plug-in, a chain holding any of these) is never called at all,
and the caller is told why so the "remember" checkbox can say so. There is
never a plaintext fallback.
"""

from __future__ import annotations

import logging

import keyring
from keyring.backend import KeyringBackend
from keyring.backends.chainer import ChainerBackend
from keyring.errors import KeyringError, PasswordDeleteError

log = logging.getLogger(__name__)

SERVICE = "GetMeds"

# The backends GetMeds stores passwords in, by exact class (a subclass or a
# look-alike elsewhere is not trusted).
SECURE_BACKENDS = frozenset({
    "keyring.backends.Windows.WinVaultKeyring",      # Windows Credential Locker
    "keyring.backends.macOS.Keyring",                # macOS Keychain
    "keyring.backends.SecretService.Keyring",        # Secret Service (GNOME Keyring, KeePassXC)
    "keyring.backends.libsecret.Keyring",            # Secret Service through libsecret
    "keyring.backends.kwallet.DBusKeyring",          # KWallet 5 and 6
    "keyring.backends.kwallet.DBusKeyringKWallet4",  # KWallet 4
})
_NONE = "keyring.backends.fail.Keyring"
NO_KEYRING = ("No system keyring is available on this computer, so passwords cannot be "
              "remembered.")


def _key(profile: str, username: str) -> str:
    return f"{profile}:{username.strip().lower()}"


def _name(backend: object) -> str:
    return f"{type(backend).__module__}.{type(backend).__qualname__}"


def _checked() -> tuple[KeyringBackend | None, str | None]:
    """(the keyring backend, None) when it is a secure one, else (None, why not)."""
    try:
        kr = keyring.get_keyring()
        name = _name(kr)
        members = list(kr.backends) if type(kr) is ChainerBackend else [kr]
    except Exception as exc:
        return None, f"The system keyring cannot be used ({type(exc).__name__})."
    if name == _NONE or not members:
        return None, NO_KEYRING
    untrusted = [_name(m) for m in members if _name(m) not in SECURE_BACKENDS]
    if untrusted:
        return None, ("Passwords are not remembered: the keyring on this computer "
                      f"({', '.join(untrusted)}) is not one the operating system keeps "
                      "encrypted (Windows Credential Locker, macOS Keychain, Secret Service "
                      "or KWallet).")
    return kr, None


def backend_problem() -> str | None:
    """None when the keyring is one of the secure backends, else why not (for the UI)."""
    return _checked()[1]


def backend_name() -> str:
    try:
        kr = keyring.get_keyring()
        return f"{type(kr).__module__}.{type(kr).__name__}"
    except Exception:
        return "none"


def remember(profile: str, username: str, password: str) -> bool:
    kr, problem = _checked()
    if problem or kr is None:
        return False
    try:
        kr.set_password(SERVICE, _key(profile, username), password)
        return True
    except KeyringError as exc:
        log.warning("could not store a password in the keyring: %s", type(exc).__name__)
        return False


def recall(profile: str, username: str) -> str | None:
    kr, problem = _checked()
    if problem or kr is None or not username:
        return None
    try:
        value = kr.get_password(SERVICE, _key(profile, username))
        return value if isinstance(value, str) else None
    except KeyringError as exc:
        log.warning("could not read the keyring: %s", type(exc).__name__)
        return None


def forget(profile: str, username: str) -> None:
    kr, problem = _checked()
    if problem or kr is None:
        return
    try:
        kr.delete_password(SERVICE, _key(profile, username))
    except (PasswordDeleteError, KeyringError):
        pass


# ------------------------------------------------------------ the replica's key

_REPLICA_KEY = "offline replica key"  # a space: no staff login is named so
OFFLINE_NEEDS_KEYRING = (
    "Working offline is not available on this computer: the offline copy of the "
    "database holds patient records and is kept encrypted, and its key needs a "
    "keyring the operating system keeps encrypted (Windows Credential Locker, macOS "
    "Keychain, Secret Service or KWallet). ")


class NoSecureKeyring(Exception):
    """The replica's key cannot be kept: the message says why, for the user."""


def replica_key(profile: str, *, create: bool = True) -> bytes:
    """The 32-byte key of this profile's offline replica, kept in the keyring
    (made at random the first time when ``create``). Raises
    :class:`NoSecureKeyring` where no secure keyring exists, or when there is no
    key and ``create`` is false."""
    import secrets as random

    kr, problem = _checked()
    if problem or kr is None:
        raise NoSecureKeyring(OFFLINE_NEEDS_KEYRING + (problem or ""))
    name = _key(profile, _REPLICA_KEY)
    try:
        value = kr.get_password(SERVICE, name)
        if isinstance(value, str):
            try:
                key = bytes.fromhex(value)
            except ValueError:
                key = b""
            if len(key) == 32:
                return key
            log.warning("the keyring's replica key is not a key; a new one is made")
        if not create:
            raise NoSecureKeyring("This computer's keyring has no key for the offline copy.")
        key = random.token_bytes(32)
        kr.set_password(SERVICE, name, key.hex())
        return key
    except KeyringError as exc:
        raise NoSecureKeyring(OFFLINE_NEEDS_KEYRING + "The keyring refused: "
                              f"{type(exc).__name__}.") from None


def forget_replica_key(profile: str) -> None:
    """Remove the replica's key (the replica can then no longer be read)."""
    forget(profile, _REPLICA_KEY)
