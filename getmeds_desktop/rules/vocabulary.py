"""The words of a case file, and how each value is read.

Every reader here takes the value as the file gave it (a ``str``, ``None``, a
:class:`~.yamlfile.YMap` or a :class:`~.yamlfile.YSeq`), checks it, converts it,
and on a mistake raises :class:`CaseError` with a sentence and the line.
"""

from __future__ import annotations

import datetime as dt
import difflib
import re
from collections.abc import Collection, Iterable, Mapping
from typing import Any, NoReturn

from ..enums import Role, Schedule, Severity, Sex, WarningKind
from .yamlfile import YMap, YSeq


class CaseError(Exception):
    """A mistake in a case file: ``message`` says what, ``line`` where (1-based)."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


def fail(message: str, line: int | None) -> NoReturn:
    raise CaseError(message, line)


NOT_YET = "is not supported yet in this version"

# Roles a case may give staff. Those the app does not have yet are refused by
# name until the Role enum has them (then they work with no change here).
CASE_ROLES = ("admin", "pharmacist", "technician", "clerk", "doctor")

# Warning kinds of the rules format. The app raises those in WarningKind today;
# the others are expected by cases written for checks still being built, and a
# case that expects one fails (the app does not raise it) rather than being
# refused as a mistake. Kinds added to WarningKind are known automatically.
CASE_WARNING_KINDS = ("allergy", "duplicate_therapy", "early_refill", "interaction", "dose",
                      "age", "pregnancy", "beyond_use")


def warning_kinds() -> tuple[str, ...]:
    return tuple(dict.fromkeys([*CASE_WARNING_KINDS, *(k.value for k in WarningKind)]))


# Why a step was refused: the value of ``expect: refused: <kind>``. How an
# error of the services becomes one of these is decided in one place
# (steps.refusal_kind).
REFUSAL_KINDS: dict[str, str] = {
    "warning": "a safety warning was not acknowledged with a reason",
    "stock": "not enough dispensable stock (expired, quarantined and recalled lots do not "
             "count), or an adjustment or count that would take a lot below zero",
    "scan": "the scanned package may not be dispensed (another product, a lot that is "
            "expired, quarantined, recalled or not here), or no scan and no reason",
    "refills": "refills the prescription may not have (Schedule II: none; III-V: at most 5), "
               "or no refills left",
    "expired": "the prescription is past its last day (written too long ago)",
    "prescriber": "the prescriber may not write this prescription (a controlled substance "
                  "needs a prescriber with a DEA number)",
    "transferred": "the prescription was transferred to another pharmacy (closed here)",
    "transfer": "a transfer the law does not allow (Schedule II: only an unfilled electronic "
                "prescription, once; Schedule III-V: once only, an unfilled one only when "
                "electronic; 21 CFR 1306.08(e), 1306.25(a))",
    "cancelled": "the prescription is cancelled",
    "on_hold": "the prescription is on hold",
    "not_before": "a fill before the prescription's earliest fill date (21 CFR 1306.12(b))",
    "partial_limit": "the rest of a Schedule II partial fill after its time limit, or once "
                     "declared void (21 CFR 1306.13)",
    "quantity": "a quantity the prescription or the stock does not allow",
    "lot": "a lot that cannot be received or changed like this (another expiry, recalled, "
           "expired)",
    "dea_record": "a DEA record the step needs is missing or incomplete: a controlled "
                  "receipt's supplier DEA number (21 CFR 1304.22(c)), a Schedule II "
                  "receipt's DEA Form 222 or CSOS order number (21 CFR 1305), a Form 41's "
                  "two witnesses, method and place, a Form 106's type of loss or police "
                  "department, or what was taken",
    "permission": "the staff member's role may not do this",
    "not_found": "something the step names does not exist (or is inactive)",
    "conflict": "the step clashes with a record that exists already",
    "stale": "someone else changed the record first",
    "invalid": "any other value the app does not accept",
    "state": "any other reason the record's state does not allow the step",
}


def describe(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, YMap):
        return "a mapping (key: value lines)"
    if isinstance(value, YSeq):
        return "a list"
    text = str(value)
    return repr(text if len(text) <= 40 else text[:37] + "...")


def as_map(value: Any, line: int | None, what: str) -> YMap:
    if not isinstance(value, YMap):
        fail(f"{what} must be a mapping (key: value lines), not {describe(value)}", line)
    return value


def as_list(value: Any, line: int | None, what: str) -> YSeq:
    if not isinstance(value, YSeq):
        fail(f"{what} must be a list (lines starting with '- ', or [a, b]), not "
             f"{describe(value)}", line)
    return value


def check_keys(m: YMap, what: str, allowed: Collection[str], *,
               required: Iterable[str] = (), not_yet: Mapping[str, str] | None = None) -> None:
    """Only ``allowed`` keys (and each of ``required``); ``not_yet`` keys are
    refused as not supported yet, with what they are for."""
    not_yet = not_yet or {}
    for key in m:
        if key in not_yet:
            fail(f"{what}: '{key}' {NOT_YET} ({not_yet[key]})", m.line_of(key))
        if key not in allowed:
            hint = suggest(key, [*allowed, *not_yet])
            if not hint and m.flow and m[key] is None:
                hint = (" (inside { } a comma starts a new key: put a value that has a comma "
                        "in quotes)")
            fail(f"{what}: unknown key '{key}'{hint}", m.line_of(key))
    for key in required:
        if key not in m or m[key] is None:
            fail(f"{what} needs '{key}'", m.line_of(key) if key in m else m.line)


def suggest(word: str, options: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def key_name(value: str, line: int, what: str) -> str:
    """A name the case uses for a record (staff, product, patient, rx...)."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,39}", value):
        fail(f"{what}: '{value[:40]}' cannot be used as a name: use letters, digits, '_', "
             "'-' or '.' (at most 40)", line)
    return value


def text(m: YMap, key: str, what: str, *, default: str | None = None, max_len: int = 300,
         empty_ok: bool = False) -> str | None:
    """A text value. ``empty_ok``: an empty quoted string ('') is kept as such
    (to test that the app refuses it)."""
    if key not in m or m[key] is None:
        if key in m and empty_ok:
            return ""
        return default
    value = m[key]
    if not isinstance(value, str):
        fail(f"{what}: '{key}' must be text, not {describe(value)}", m.line_of(key))
    if len(value) > max_len:
        fail(f"{what}: '{key}' is longer than {max_len} characters", m.line_of(key))
    if not value.strip() and not empty_ok:
        fail(f"{what}: '{key}' is empty", m.line_of(key))
    return value


def required_text(m: YMap, key: str, what: str, *, max_len: int = 300) -> str:
    value = text(m, key, what, max_len=max_len)
    if value is None:
        fail(f"{what} needs '{key}'", m.line_of(key) if key in m else m.line)
    return value


def whole(value: Any, line: int, what: str, *, minimum: int | None = None,
          maximum: int | None = None) -> int:
    if not isinstance(value, str) or not re.fullmatch(r"[-+]?\d{1,9}", value.strip()):
        fail(f"{what} must be a whole number, not {describe(value)}", line)
    n = int(value)
    if minimum is not None and n < minimum:
        fail(f"{what} must be at least {minimum}, not {n}", line)
    if maximum is not None and n > maximum:
        fail(f"{what} must be at most {maximum}, not {n}", line)
    return n


def number(m: YMap, key: str, what: str, *, default: int | None = None,
           minimum: int | None = None, maximum: int | None = None) -> int | None:
    if key not in m or m[key] is None:
        return default
    return whole(m[key], m.line_of(key), f"{what}: '{key}'", minimum=minimum, maximum=maximum)


def a_date(value: Any, line: int, what: str) -> dt.date:
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value.strip()):
        try:
            day = dt.date.fromisoformat(value.strip())
        except ValueError:
            pass
        else:
            if dt.date(1900, 1, 1) <= day <= dt.date(2999, 12, 31):
                return day
    fail(f"{what} must be a date written YYYY-MM-DD (such as 2026-03-02), not "
         f"{describe(value)}", line)


def date(m: YMap, key: str, what: str) -> dt.date | None:
    if key not in m or m[key] is None:
        return None
    return a_date(m[key], m.line_of(key), f"{what}: '{key}'")


_TRUE = {"true", "yes", "on"}
_FALSE = {"false", "no", "off"}


def a_bool(value: Any, line: int, what: str) -> bool:
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    fail(f"{what} must be true or false, not {describe(value)}", line)


def boolean(m: YMap, key: str, what: str, *, default: bool | None = None) -> bool | None:
    if key not in m or m[key] is None:
        return default
    return a_bool(m[key], m.line_of(key), f"{what}: '{key}'")


def choice(m: YMap, key: str, what: str, options: Collection[str], *,
           default: str | None = None) -> str | None:
    if key not in m or m[key] is None:
        return default
    value = m[key]
    if not isinstance(value, str) or value.strip() not in options:
        fail(f"{what}: '{key}' must be one of {', '.join(options)}, not {describe(value)}"
             f"{suggest(str(value), options) if isinstance(value, str) else ''}",
             m.line_of(key))
    return value.strip()


def text_list(m: YMap, key: str, what: str, *, max_len: int = 200) -> tuple[str, ...] | None:
    """A list of texts (None when the key is not there)."""
    if key not in m:
        return None
    items = as_list(m[key], m.line_of(key), f"{what}: '{key}'")
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, str) or not item.strip():
            fail(f"{what}: each of '{key}' must be text, not {describe(item)}",
                 items.line_of(i))
        if len(item) > max_len:
            fail(f"{what}: an item of '{key}' is longer than {max_len} characters",
                 items.line_of(i))
        out.append(item.strip())
    return tuple(out)


def role(value: Any, line: int, what: str) -> Role:
    known = {r.value: r for r in Role}
    if isinstance(value, str) and value.strip() in known:
        return known[value.strip()]
    if isinstance(value, str) and value.strip() in CASE_ROLES:
        fail(f"{what}: the role '{value.strip()}' {NOT_YET}", line)
    fail(f"{what}: role must be one of {', '.join(CASE_ROLES)}, not {describe(value)}", line)


def schedule(value: Any, line: int, what: str) -> Schedule:
    options = {s.value.lower(): s for s in Schedule}
    if isinstance(value, str) and value.strip().lower() in options:
        return options[value.strip().lower()]
    fail(f"{what}: schedule must be none, II, III, IV or V, not {describe(value)}", line)


def sex(value: Any, line: int, what: str) -> Sex:
    options = {s.value: s for s in Sex}
    if isinstance(value, str) and value.strip().lower() in options:
        return options[value.strip().lower()]
    fail(f"{what}: sex must be one of {', '.join(options)}, not {describe(value)}", line)


def severity(value: Any, line: int, what: str) -> Severity:
    options = {s.value: s for s in Severity if s is not Severity.UNKNOWN}
    if isinstance(value, str) and value.strip().lower() in options:
        return options[value.strip().lower()]
    fail(f"{what}: severity must be mild, moderate or severe, not {describe(value)}", line)


def warning_kind(value: Any, line: int, what: str) -> str:
    kinds = warning_kinds()
    if isinstance(value, str) and value.strip() in kinds:
        return value.strip()
    hint = suggest(value, kinds) if isinstance(value, str) else ""
    fail(f"{what}: {describe(value)} is not a warning kind (the kinds are "
         f"{', '.join(kinds)}){hint}", line)


__all__ = [
    "CASE_ROLES",
    "CASE_WARNING_KINDS",
    "NOT_YET",
    "REFUSAL_KINDS",
    "CaseError",
    "a_bool",
    "a_date",
    "as_list",
    "as_map",
    "boolean",
    "check_keys",
    "choice",
    "date",
    "describe",
    "fail",
    "key_name",
    "number",
    "required_text",
    "role",
    "schedule",
    "severity",
    "sex",
    "suggest",
    "text",
    "text_list",
    "warning_kind",
    "warning_kinds",
    "whole",
]
