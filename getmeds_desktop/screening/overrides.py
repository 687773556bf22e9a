"""Who may override a finding, and with what reason.

* Every override has a coded reason (:class:`OverrideReason`).
* A stop (a severe finding) needs a pharmacist and a note of at least
  :data:`MIN_NOTE_WORDS` different real words; "x", "ok ok ok" or "asdf" are
  refused. The reason OTHER always needs such a note.
* A technician may acknowledge findings that are not stops (when the
  pharmacy's setting allows it) and never a stop: the fill waits for a
  pharmacist. Other roles (clerk, doctor, administrator) cannot override;
  at prescribing, findings are shown, not overridden.
* "Allergy record outdated" is a reason only for allergy findings.
"""

from __future__ import annotations

import dataclasses
import enum
import re

from ..enums import OverrideReason, Role
from .model import Finding, FindingKind, ScreeningSettings

__all__ = ["MIN_NOTE_WORDS", "NOTE_MAX_LENGTH", "OverrideDecision", "OverrideReason",
           "decide_override", "role_name"]

MIN_NOTE_WORDS = 3
NOTE_MAX_LENGTH = 500
_WORD = re.compile(r"[^\W\d_]{2,}")


@dataclasses.dataclass(frozen=True)
class OverrideDecision:
    accepted: bool
    problem: str | None  # the sentence to show when refused
    reason: OverrideReason | None = None
    note: str = ""  # the note as it will be stored (trimmed)
    by_role: bool = False  # refused for who is asking, whatever the reason and note


def role_name(role: Role | str) -> str:
    """"pharmacist" for Role.PHARMACIST or " Pharmacist " (roles that the enum
    does not know yet, such as "technician", are accepted as text)."""
    value = role.value if isinstance(role, enum.Enum) else str(role)
    return value.strip().lower()


def _real_words(note: str) -> int:
    return len({w.lower() for w in _WORD.findall(note)})


def decide_override(finding: Finding, role: Role | str, reason: OverrideReason | str | None,
                    note: str | None = None, *,
                    settings: ScreeningSettings | None = None) -> OverrideDecision:
    """Whether ``role`` may override ``finding`` with ``reason`` and ``note``."""
    settings = settings or ScreeningSettings()
    who = role_name(role)
    text = " ".join((note or "").split())
    if reason is None or (isinstance(reason, str) and not reason.strip()):
        return OverrideDecision(False, "Choose a reason for going ahead despite this warning.")
    try:
        code = OverrideReason(reason.value if isinstance(reason, OverrideReason)
                              else str(reason).strip().lower())
    except ValueError:
        return OverrideDecision(False, f"{reason!r} is not one of the override reasons.")
    if who == "pharmacist":
        pass
    elif who == "technician":
        if finding.is_stop:
            return OverrideDecision(
                False, f"{finding.kind.label}: this is a stop; a pharmacist must review and "
                       "override it. The fill waits for a pharmacist.", by_role=True)
        if not settings.technician_may_acknowledge:
            return OverrideDecision(
                False, "Technicians do not acknowledge screening warnings here; ask a "
                       "pharmacist.", by_role=True)
    else:
        return OverrideDecision(
            False, f"A{'n' if who[:1] in 'aeiou' else ''} {who or 'unknown role'} cannot "
                   "override screening warnings; a pharmacist must review them.", by_role=True)
    if code is OverrideReason.ALLERGY_RECORD_OUTDATED and finding.kind not in (
            FindingKind.ALLERGY, FindingKind.ALLERGIES_NOT_ASKED):
        return OverrideDecision(
            False, "\"Allergy record outdated\" is a reason only for allergy warnings.")
    if len(text) > NOTE_MAX_LENGTH:
        return OverrideDecision(
            False, f"The note may be at most {NOTE_MAX_LENGTH} characters.")
    if (finding.is_stop or code is OverrideReason.OTHER) and _real_words(text) < MIN_NOTE_WORDS:
        why = "a severe warning" if finding.is_stop else "the reason Other"
        return OverrideDecision(
            False, f"Overriding {why} needs a note of at least {MIN_NOTE_WORDS} words saying "
                   "what was checked (for example who was consulted and what they said).")
    return OverrideDecision(True, None, code, text)
