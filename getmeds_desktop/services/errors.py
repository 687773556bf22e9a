"""Typed domain errors. ``str(error)`` is a sentence a pharmacist can act on."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..errors import DomainError as DomainError
from ..errors import ValidationError as ValidationError
from . import clock

if TYPE_CHECKING:
    from .clinical import SafetyWarning


class NotFound(DomainError):
    pass


class PermissionDenied(DomainError):
    pass


class Conflict(DomainError):
    """The request clashes with data that already exists (a duplicate, a lot...)."""


class PossibleDuplicate(Conflict):
    """A new patient looks like one already registered: the user must say it is
    another person (``candidates`` are the look-alikes)."""

    def __init__(self, candidates: Sequence[Any]) -> None:
        names = "; ".join(f"{c.full_name}, born {c.date_of_birth:%m/%d/%Y}" for c in candidates)
        super().__init__(f"This patient may already be registered: {names}. Open that record "
                         "instead, or confirm that this is another person.", field="last_name")
        self.candidates = tuple(candidates)


class InvalidState(DomainError):
    """The record is not in a state that allows this (e.g. dispensing a held Rx)."""


class InsufficientStock(DomainError):
    def __init__(self, message: str, *, available: int, requested: int) -> None:
        super().__init__(message, field="quantity")
        self.available = available
        self.requested = requested


class StaleEdit(DomainError):
    """Somebody else saved the record after it was opened here."""

    def __init__(self, what: str, changed_by: str | None, changed_at: dt.datetime | None) -> None:
        who = changed_by or "another user"
        when = ""
        if changed_at is not None:
            when = " at " + clock.local(changed_at).strftime("%Y-%m-%d %H:%M")
        super().__init__(
            f"This {what} was changed by {who}{when} after you opened it. "
            "Reload it to see the changes, then make your edit again."
        )
        self.changed_by = changed_by
        self.changed_at = changed_at


class WarningsNeedAcknowledgement(DomainError):
    """Safety warnings must be acknowledged, each with a reason, before dispensing."""

    def __init__(self, warnings: Sequence[SafetyWarning]) -> None:
        lines = "; ".join(w.message for w in warnings)
        super().__init__(
            f"Acknowledge each safety warning with a reason before dispensing: {lines}"
        )
        self.warnings = tuple(warnings)
