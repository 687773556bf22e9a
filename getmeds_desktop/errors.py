"""Errors a person can act on.

Everything raised on purpose by GetMeds derives from :class:`GetMedsError`; its
``str()`` is a complete sentence meant for the user (never a traceback, never a
password). Anything else reaching the top level is a bug.
"""

from __future__ import annotations


class GetMedsError(Exception):
    """Base of every expected error. ``str(err)`` is shown to the user as is."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ConfigError(GetMedsError):
    """A configuration file or option is wrong (the message names file and line)."""


class DatabaseUnavailable(GetMedsError):
    """The database server cannot be reached (network, server down, TLS)."""


class AuthenticationFailed(GetMedsError):
    """Wrong username or password. Never says which of the two."""


class AccountLocked(AuthenticationFailed):
    """Too many failed attempts; the account is locked for a while."""


class SchemaMismatch(GetMedsError):
    """The database schema is older or newer than this version of GetMeds knows."""

    def __init__(self, message: str, *, current: str | None, head: str) -> None:
        super().__init__(message)
        self.current = current
        self.head = head


class DomainError(GetMedsError):
    """A rule of the pharmacy refused the request. Nothing was written."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class ValidationError(DomainError):
    """A value is missing or not acceptable (``field`` names the input)."""
