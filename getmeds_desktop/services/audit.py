"""The audit trail as a manager reads it: filtered by period, staff member,
patient, prescription, product and table, each change in words (names, not
ids: "status: new -> dispensed", "patient: Jane Doe"). One reader for the
Administration screen's viewer, its CSV export and the audit report.

The rows themselves are written by database triggers (who, when, before and
after); nothing here changes them.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import uuid
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from .. import db
from ..models import (
    AuditEntry,
    Category,
    Dispense,
    Patient,
    Prescriber,
    Prescription,
    Product,
    Staff,
    StockLot,
    Supplier,
)
from . import clock, outfile
from .context import Actor, Perm, require
from .errors import ValidationError

__all__ = ["TABLES", "AuditFilter", "AuditPage", "AuditRow", "audit_page", "audit_rows",
           "export_csv"]

#: The audited tables, as the viewer names them.
TABLES: dict[str, str] = {
    "patients": "Patient", "patient_allergies": "Allergy", "patient_conditions": "Condition",
    "patient_feedback": "Patient feedback", "prescriptions": "Prescription",
    "dispenses": "Dispense", "dispense_warnings": "Safety warning override",
    "prescribers": "Prescriber", "products": "Product", "product_ingredients": "Ingredient",
    "product_drug_classes": "Drug class", "categories": "Category", "suppliers": "Supplier",
    "stock_lots": "Stock lot", "stock_movements": "Stock movement", "stocktakes": "Stocktake",
    "stocktake_lines": "Stocktake count", "staff": "Staff member",
    "app_settings": "Settings", "knowledge_imports": "Clinical knowledge import",
}
# Fields that name another record, and the kind of record they name.
_REFERENCES = {
    "patient_id": "patient", "product_id": "product", "prescriber_id": "prescriber",
    "prescription_id": "prescription", "lot_id": "lot", "dispense_id": "dispense",
    "category_id": "category", "supplier_id": "supplier", "staff_id": "staff",
    "pharmacist_id": "staff", "acknowledged_by": "staff", "created_by": "staff",
    "received_by": "staff", "replied_by": "staff", "started_by": "staff",
    "posted_by": "staff", "counted_by": "staff", "movement_id": "movement",
    "stocktake_id": "stocktake",
}
# What a row of each table is (its row id names a record of this kind).
_ROW_KIND = {"patients": "patient", "products": "product", "prescribers": "prescriber",
             "prescriptions": "prescription", "stock_lots": "lot", "dispenses": "dispense",
             "categories": "category", "suppliers": "supplier", "staff": "staff"}
_QUIET = frozenset({"updated_at", "version", "created_at", "id", "request_id"})
MAX_PERIOD_DAYS = 3660


@dataclasses.dataclass(frozen=True)
class AuditFilter:
    start: dt.date
    end: dt.date  # inclusive
    staff: str | None = None  # a username
    patient_id: uuid.UUID | None = None
    prescription_id: uuid.UUID | None = None
    product_id: uuid.UUID | None = None
    table: str | None = None

    def check(self) -> None:
        if self.end < self.start:
            raise ValidationError("The end of the period is before its start.", field="period")
        if (self.end - self.start).days > MAX_PERIOD_DAYS:
            raise ValidationError("Choose a period of at most ten years.", field="period")
        if self.table is not None and self.table not in TABLES:
            raise ValidationError(f"'{self.table}' is not an audited table.", field="table")


@dataclasses.dataclass(frozen=True)
class AuditRow:
    id: int
    occurred_at: dt.datetime
    who: str  # the staff member (or the database login when none was declared)
    db_user: str  # the database session user: a client cannot forge it
    action: str  # Created, Changed, Deleted
    what: str  # "Prescription Rx 100002"
    changes: tuple[str, ...]  # "status: new -> dispensed", ...

    @property
    def changes_text(self) -> str:
        return "; ".join(self.changes)


@dataclasses.dataclass(frozen=True)
class AuditPage:
    rows: tuple[AuditRow, ...]
    total: int  # matching changes in all
    limit: int


def _conditions(s: Session, f: AuditFilter) -> list[sa.ColumnElement[bool]]:
    lo, hi = clock.day_range(f.start, f.end)
    a = AuditEntry
    where: list[sa.ColumnElement[bool]] = [a.occurred_at >= lo, a.occurred_at < hi]
    if f.table:
        where.append(a.table_name == f.table)
    if f.staff:
        name = f.staff.strip().lower()
        where.append(sa.or_(sa.func.lower(a.actor) == name, sa.func.lower(a.db_user) == name))

    def field(key: str) -> sa.ColumnElement[Any]:
        return sa.func.coalesce(a.after[key].as_string(), a.before[key].as_string())

    def ids(values: Iterable[uuid.UUID]) -> list[str]:
        # the embedded database's triggers write ids as 32 hex digits, PostgreSQL's
        # with dashes; audit_log.row_id always has the dashes
        return [x for v in values for x in (str(v), v.hex)]

    def one_of(key: str, values: list[str]) -> sa.ColumnElement[bool]:
        return field(key).in_(values) if values else sa.false()

    if f.patient_id is not None:
        rx = ids(s.scalars(sa.select(Prescription.id).where(
            Prescription.patient_id == f.patient_id)))
        dsp = ids(s.scalars(sa.select(Dispense.id).join(Prescription).where(
            Prescription.patient_id == f.patient_id)))
        where.append(sa.or_(
            sa.and_(a.table_name == "patients", a.row_id == str(f.patient_id)),
            field("patient_id").in_(ids([f.patient_id])),
            sa.and_(a.table_name == "prescriptions", a.row_id.in_(rx)) if rx else sa.false(),
            one_of("prescription_id", rx), one_of("dispense_id", dsp)))
    if f.prescription_id is not None:
        dsp = ids(s.scalars(sa.select(Dispense.id).where(
            Dispense.prescription_id == f.prescription_id)))
        where.append(sa.or_(
            sa.and_(a.table_name == "prescriptions", a.row_id == str(f.prescription_id)),
            field("prescription_id").in_(ids([f.prescription_id])), one_of("dispense_id", dsp)))
    if f.product_id is not None:
        lots = ids(s.scalars(sa.select(StockLot.id).where(StockLot.product_id == f.product_id)))
        where.append(sa.or_(
            sa.and_(a.table_name == "products", a.row_id == str(f.product_id)),
            field("product_id").in_(ids([f.product_id])),
            sa.and_(a.table_name == "stock_lots", a.row_id.in_(lots)) if lots else sa.false(),
            one_of("lot_id", lots)))
    return where


class _Names:
    """Names for the ids a page of audit rows mentions, read a kind at a time."""

    def __init__(self, s: Session, entries: Sequence[AuditEntry]) -> None:
        wanted: dict[str, set[uuid.UUID]] = {}
        for e in entries:
            kind = _ROW_KIND.get(e.table_name)
            if kind:
                _add(wanted, kind, e.row_id)
            for state in (e.before or {}, e.after or {}):
                for key, kind in _REFERENCES.items():
                    if state.get(key):
                        _add(wanted, kind, state[key])
        self.names: dict[tuple[str, uuid.UUID], str] = {}
        for kind, found in wanted.items():
            for record, label in _read(s, kind, sorted(found)):
                self.names[(kind, record)] = label

    def of(self, kind: str, value: Any) -> str | None:
        key = _uuid(value)
        return self.names.get((kind, key)) if key is not None else None


def _uuid(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except (ValueError, TypeError):
        return None


def _add(wanted: dict[str, set[uuid.UUID]], kind: str, value: Any) -> None:
    key = _uuid(value)
    if key is not None:
        wanted.setdefault(kind, set()).add(key)


def _read(s: Session, kind: str, ids: list[uuid.UUID]) -> Iterator[tuple[uuid.UUID, str]]:
    if kind == "patient":
        for i, f, la in s.execute(sa.select(Patient.id, Patient.first_name, Patient.last_name)
                                  .where(Patient.id.in_(ids))):
            yield i, f"{f} {la}"
    elif kind == "product":
        for i, n, st in s.execute(sa.select(Product.id, Product.name, Product.strength)
                                  .where(Product.id.in_(ids))):
            yield i, " ".join(x for x in (n, st) if x)
    elif kind == "prescriber":
        for i, f, la in s.execute(sa.select(Prescriber.id, Prescriber.first_name,
                                            Prescriber.last_name).where(Prescriber.id.in_(ids))):
            yield i, f"{f} {la}"
    elif kind == "prescription":
        for i, number in s.execute(sa.select(Prescription.id, Prescription.rx_number)
                                   .where(Prescription.id.in_(ids))):
            yield i, f"Rx {number}"
    elif kind == "dispense":
        for i, rx_number, fill, part in s.execute(
                sa.select(Dispense.id, Prescription.rx_number, Dispense.fill_number, Dispense.part)
                .join(Prescription).where(Dispense.id.in_(ids))):
            yield i, f"Rx {rx_number} " + ("original fill" if fill == 0 else f"refill {fill}") + (
                f" part {part}" if part > 1 else "")
    elif kind == "lot":
        for i, n, pn in s.execute(sa.select(StockLot.id, StockLot.lot_number, Product.name)
                                  .join(Product).where(StockLot.id.in_(ids))):
            yield i, f"{n} of {pn}"
    elif kind == "category":
        for i, n in s.execute(sa.select(Category.id, Category.name)
                              .where(Category.id.in_(ids))):
            yield i, n
    elif kind == "supplier":
        for i, n in s.execute(sa.select(Supplier.id, Supplier.name)
                              .where(Supplier.id.in_(ids))):
            yield i, n
    elif kind == "movement":
        from ..models import StockMovement

        for i, mkind, qty, lot in s.execute(
                sa.select(StockMovement.id, StockMovement.kind, StockMovement.quantity,
                          StockLot.lot_number).join(StockLot).where(StockMovement.id.in_(ids))):
            yield i, f"{mkind.value} {qty:+d} on lot {lot}"
    elif kind == "stocktake":
        from ..models import Stocktake

        for i, started in s.execute(sa.select(Stocktake.id, Stocktake.created_at)
                                    .where(Stocktake.id.in_(ids))):
            yield i, f"the stocktake of {clock.local(started):%Y-%m-%d}"
    elif kind == "staff":
        for i, n, u in s.execute(sa.select(Staff.id, Staff.full_name, Staff.username)
                                 .where(Staff.id.in_(ids))):
            yield i, f"{n} ({u})"


def _booleans() -> frozenset[tuple[str, str]]:
    """(table, column) of every yes/no column (SQLite's triggers record 0 and 1)."""
    from ..models import Base

    return frozenset((t.name, c.name) for t in Base.metadata.tables.values()
                     for c in t.columns if isinstance(c.type, sa.Boolean))


_BOOLEANS = _booleans()


def _shown(table: str, key: str, value: Any, names: _Names) -> str:
    if value is None or value == "":
        return "(empty)"
    kind = _REFERENCES.get(key)
    if kind is not None:
        return names.of(kind, value) or f"(a removed {kind.replace('_', ' ')})"
    if isinstance(value, bool) or ((table, key) in _BOOLEANS and value in (0, 1)):
        return "yes" if value else "no"
    if key.endswith("_id") and _uuid(value) is not None:
        return "(a linked record)"  # an id no one reads: not shown as hex
    text = str(value)
    return text if len(text) <= 80 else text[:79] + "…"


def _label(key: str) -> str:
    return key.removesuffix("_id").replace("_", " ")


def _row(e: AuditEntry, names: _Names) -> AuditRow:
    kind = _ROW_KIND.get(e.table_name)
    record = (names.of(kind, e.row_id) if kind else None) or ""
    what = TABLES.get(e.table_name, e.table_name.replace("_", " ").capitalize())
    before, after = e.before or {}, e.after or {}
    if not record:  # name the row by what it belongs to
        owner = next((names.of(k, (after or before).get(f)) for f, k in _REFERENCES.items()
                      if k in ("patient", "prescription", "dispense", "product", "lot")
                      and (after or before).get(f)), None)
        record = f"of {owner}" if owner else ""
    if e.action == "UPDATE":
        changes = tuple(
            f"{_label(k)}: {_shown(e.table_name, k, before.get(k), names)} -> "
            f"{_shown(e.table_name, k, after.get(k), names)}"
            for k in sorted(after) if k not in _QUIET and before.get(k) != after.get(k))
        action = "Changed"
    else:
        state = after if e.action == "INSERT" else before
        changes = tuple(f"{_label(k)}: {_shown(e.table_name, k, v, names)}"
                        for k, v in sorted(state.items())
                        if k not in _QUIET and v not in (None, ""))
        action = "Created" if e.action == "INSERT" else "Deleted"
    # the embedded database has one login for everybody: "who" says it all
    login = e.actor or e.db_user if e.db_user == "embedded" else e.db_user
    return AuditRow(e.id, e.occurred_at, e.actor or e.db_user, login, action,
                    f"{what} {record}".strip(), changes or ("(no visible change)",))


def audit_rows(s: Session, f: AuditFilter, limit: int | None = None,
               newest_first: bool = True) -> Iterator[AuditRow]:
    """The matching changes in words, a batch of rows (and their names) at a time."""
    f.check()
    q = sa.select(AuditEntry).where(*_conditions(s, f)).order_by(
        AuditEntry.id.desc() if newest_first else AuditEntry.id)
    if limit is not None:
        q = q.limit(limit)
    batch: list[AuditEntry] = []
    for e in s.scalars(q.execution_options(yield_per=500)):
        batch.append(e)
        if len(batch) == 500:
            yield from _batch(s, batch)
            batch = []
    yield from _batch(s, batch)


def _batch(s: Session, entries: list[AuditEntry]) -> Iterator[AuditRow]:
    if not entries:
        return
    names = _Names(s, entries)
    for e in entries:
        yield _row(e, names)


def audit_count(s: Session, f: AuditFilter) -> int:
    f.check()
    return s.scalar(sa.select(sa.func.count()).select_from(AuditEntry)
                    .where(*_conditions(s, f))) or 0


def audit_page(sf: sessionmaker[Session], actor: Actor, f: AuditFilter, limit: int = 500
               ) -> AuditPage:
    """The newest ``limit`` matching changes and how many match in all."""
    require(actor, Perm.READ_AUDIT)
    with db.read_session(sf) as s:
        rows = tuple(audit_rows(s, f, limit))
        return AuditPage(rows, audit_count(s, f), limit)


def export_csv(sf: sessionmaker[Session], actor: Actor, f: AuditFilter, path: Path) -> int:
    """Every matching change, oldest first, to a CSV file (written whole or not
    at all). Returns the number of rows."""
    require(actor, Perm.READ_AUDIT)
    n = 0
    with db.read_session(sf) as s, outfile.replacing(Path(path)) as tmp, \
            open(tmp, "w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(["when", "who", "database login", "action", "what", "changes"])
        for r in audit_rows(s, f, newest_first=False):
            out.writerow([clock.local(r.occurred_at).isoformat(timespec="seconds"), r.who,
                          r.db_user, r.action, r.what, r.changes_text])
            n += 1
    return n
