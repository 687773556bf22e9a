"""Helpers the service modules share: input cleaning, identifiers, idempotency,
optimistic-locking checks and the translation of database refusals."""

from __future__ import annotations

import dataclasses
import decimal
import math
from typing import Any, Literal, overload

import sqlalchemy as sa

from .errors import Conflict, ValidationError

# Typing aliases for SQLAlchemy statements built by the services.
Query = sa.Select[*tuple[Any, ...]]  # a select of any columns
Column = sa.ColumnElement[Any]


@overload
def text(value: Any, field: str, label: str, *, required: Literal[True] = True,
         max_len: int = 200) -> str: ...


@overload
def text(value: Any, field: str, label: str, *, required: bool,
         max_len: int = 200) -> str | None: ...


def text(
    value: Any,
    field: str,
    label: str,
    *,
    required: bool = True,
    max_len: int = 200,
) -> str | None:
    """Strip a text input; refuse it when required and empty or when too long."""
    if value is None:
        s = ""
    elif isinstance(value, str):
        s = " ".join(value.split()) if "\n" not in value else value.strip()
    else:
        raise ValidationError(f"{label} must be text.", field=field)
    if not s:
        if required:
            raise ValidationError(f"{label} is required.", field=field)
        return None
    if len(s) > max_len:
        raise ValidationError(f"{label} is too long (at most {max_len} characters).", field=field)
    return s


# The largest count any quantity column takes (pack size, receipt, adjustment,
# count, reorder level...). Every integer column is a 32-bit integer on
# PostgreSQL; SQLite would store anything, so the limit lives here, before any
# write, and is the same on both databases.
MAX_COUNT = 10_000_000
# Money columns are NUMERIC(12, 4): up to 99,999,999.9999.
MAX_MONEY = decimal.Decimal("99999999.9999")
_CENTS = decimal.Decimal("0.0001")


def whole_number(value: Any, field: str, label: str, *, minimum: int | None = None,
                 maximum: int | None = None) -> int:
    """A whole number within ``minimum``..``maximum`` (at most :data:`MAX_COUNT`
    either way, whatever the caller asks)."""
    if isinstance(value, bool) or not isinstance(value, int):
        text_ = str(value).strip()
        if len(text_) > 20:
            raise ValidationError(f"{label} must be a whole number.", field=field)
        try:
            value = int(text_)
        except (TypeError, ValueError):
            raise ValidationError(f"{label} must be a whole number.", field=field) from None
    if minimum is not None and value < minimum:
        if minimum == 1:
            raise ValidationError(f"{label} must be more than zero.", field=field)
        raise ValidationError(f"{label} must be at least {minimum}.", field=field)
    if value < -MAX_COUNT:
        raise ValidationError(f"{label} must be at least {-MAX_COUNT:,}.", field=field)
    top = MAX_COUNT if maximum is None else min(maximum, MAX_COUNT)
    if value > top:
        raise ValidationError(f"{label} must be at most {top:,}.", field=field)
    return int(value)


def money(value: Any, field: str, label: str) -> decimal.Decimal:
    """An amount of money: a finite, non-negative number up to :data:`MAX_MONEY`,
    kept to four decimal places (what the database stores)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValidationError(f"{label} must be a number.", field=field)
    raw = str(value).strip() if value is not None else ""
    if len(raw) > 40:
        raise ValidationError(f"{label} must be a number.", field=field)
    try:
        amount = decimal.Decimal(raw or "0")
    except decimal.InvalidOperation:
        raise ValidationError(f"{label} must be a number.", field=field) from None
    if not amount.is_finite():
        raise ValidationError(f"{label} must be a number.", field=field)
    if amount < 0:
        raise ValidationError(f"{label} cannot be negative.", field=field)
    if amount > MAX_MONEY:
        raise ValidationError(f"{label} must be at most {MAX_MONEY:,}.", field=field)
    return amount.quantize(_CENTS, rounding=decimal.ROUND_HALF_UP)


# ------------------------------------------------- database refusals -> words


def constraint_of(exc: sa.exc.DBAPIError) -> str:
    """The name of the violated constraint (PostgreSQL) or SQLite's description."""
    orig = exc.orig
    diag = getattr(orig, "diag", None)
    name = getattr(diag, "constraint_name", None) if diag is not None else None
    if name:
        return str(name)
    return str(orig)


_CONFLICT_MESSAGES = {
    "uq_products_ndc": ("ndc", "Another product already has this NDC."),
    "products.ndc": ("ndc", "Another product already has this NDC."),
    "uq_staff_username": ("username", "That username is taken."),
    "staff.username": ("username", "That username is taken."),
    "uq_categories_name": ("name", "A category with this name exists."),
    "categories.name": ("name", "A category with this name exists."),
    "uq_suppliers_name": ("name", "A supplier with this name exists."),
    "suppliers.name": ("name", "A supplier with this name exists."),
    "uq_prescribers_npi": ("npi", "Another prescriber already has this NPI."),
    "prescribers.npi": ("npi", "Another prescriber already has this NPI."),
    "uq_patient_allergies_patient_id_allergen": ("allergies", "An allergy is listed twice."),
    "patient_allergies.patient_id, patient_allergies.allergen": (
        "allergies", "An allergy is listed twice."),
    "uq_patient_conditions_patient_id_name": ("conditions", "A condition is listed twice."),
    "patient_conditions.patient_id, patient_conditions.name": (
        "conditions", "A condition is listed twice."),
}


def conflict_from(exc: sa.exc.IntegrityError) -> Conflict | None:
    """A Conflict for a duplicate the user can fix, or None for anything else."""
    text_ = constraint_of(exc)
    for key, (field, message) in _CONFLICT_MESSAGES.items():
        if key in text_:
            return Conflict(message, field=field)
    return None


@dataclasses.dataclass(frozen=True)
class RowProblem:
    """A row of an imported file that cannot be used, and why."""

    file: str | None
    line: int
    message: str

    def __str__(self) -> str:
        where = f"{self.file}, line {self.line}" if self.file else f"line {self.line}"
        return f"{where}: {self.message}"
