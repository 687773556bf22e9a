"""Remembered passwords in the operating system's keyring (service "GetMeds").

Key: "<profile>:<username>". When keyring has no usable backend, nothing is
remembered and the caller is told why; there is never a plaintext fallback.
"""

from __future__ import annotations

import logging

import keyring
from keyring.errors import KeyringError, PasswordDeleteError

log = logging.getLogger(__name__)

SERVICE = "GetMeds"


def _key(profile: str, username: str) -> str:
    return f"{profile}:{username.strip().lower()}"


def backend_problem() -> str | None:
    """None when a usable keyring backend exists, else why not (for the UI)."""
    try:
        kr = keyring.get_keyring()
    except Exception as exc:  # noqa: BLE001 - a broken backend is "none"
        return f"The system keyring cannot be used ({type(exc).__name__})."
    from keyring.backends import chainer, fail

    if isinstance(kr, fail.Keyring):
        return ("No system keyring is available on this computer, so passwords cannot be "
                "remembered.")
    if isinstance(kr, chainer.ChainerBackend) and not kr.backends:
        return ("No system keyring is available on this computer, so passwords cannot be "
                "remembered.")
    return None


def backend_name() -> str:
    try:
        kr = keyring.get_keyring()
        return f"{type(kr).__module__}.{type(kr).__name__}"
    except Exception:  # noqa: BLE001
        return "none"


def remember(profile: str, username: str, password: str) -> bool:
    if backend_problem():
        return False
    try:
        keyring.set_password(SERVICE, _key(profile, username), password)
        return True
    except KeyringError as exc:
        log.warning("could not store a password in the keyring: %s", type(exc).__name__)
        return False


def recall(profile: str, username: str) -> str | None:
    if backend_problem() or not username:
        return None
    try:
        return keyring.get_password(SERVICE, _key(profile, username))
    except KeyringError as exc:
        log.warning("could not read the keyring: %s", type(exc).__name__)
        return None


def forget(profile: str, username: str) -> None:
    if backend_problem():
        return
    try:
        keyring.delete_password(SERVICE, _key(profile, username))
    except (PasswordDeleteError, KeyringError):
        pass
