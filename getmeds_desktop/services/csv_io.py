"""Patients and products in from CSV; products, patients, lots and dispenses out.

Import is two steps, as the column-mapping dialog shows them: ``read_csv``
reads the header and rows (UTF-8 with or without a byte-order mark, or
Windows-1252; comma, semicolon or tab) and ``guess_mapping`` proposes which
column feeds which field; ``import_csv`` checks every row with the same rules
as the editors and, unless it is a dry run and only if no row has an error,
writes them all in one transaction. A file with one bad row writes nothing: the
user fixes the file (every error is listed with its line) and imports it again.

Patients already on file (same first and last name and date of birth) and
products already on file (same NDC, or same name and strength when there is no
NDC) are updated, never duplicated, so importing a file twice is harmless.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import re
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

import sqlalchemy as sa
from sqlalchemy.orm import Session, selectinload, sessionmaker

from .. import db, textfile
from ..models import (
    Category,
    Dispense,
    Patient,
    PatientAllergy,
    PatientCondition,
    Prescription,
    Product,
    ProductDrugClass,
    ProductIngredient,
    ProductStock,
    Staff,
    StockLot,
    Supplier,
)
from . import catalog, clock, outfile, patients, uow
from ._common import RowProblem
from .context import Actor, Perm, require
from .errors import ValidationError
from .identifiers import format_ndc

KINDS = ("patients", "products")
EXPORTS = ("products", "patients", "lots", "dispenses")
MAX_ROWS = 200_000


@dataclasses.dataclass(frozen=True)
class Field:
    key: str
    label: str
    required: bool = False
    aliases: tuple[str, ...] = ()


FIELDS: dict[str, tuple[Field, ...]] = {
    "patients": (
        Field("first_name", "First name", True, ("first", "given name", "forename", "firstname")),
        Field("last_name", "Last name", True, ("last", "surname", "family name", "lastname")),
        Field("date_of_birth", "Date of birth", True, ("dob", "birth date", "birthdate", "born")),
        Field("sex", "Sex", False, ("gender",)),
        Field("phone", "Phone", False, ("telephone", "phone number", "mobile", "cell")),
        Field("email", "Email", False, ("e-mail", "email address")),
        Field("address_line", "Address", False, ("address", "street", "address line")),
        Field("city", "City", False, ("town",)),
        Field("state", "State", False, ("province", "region")),
        Field("postal_code", "ZIP code", False, ("zip", "postcode", "postal code", "zip code")),
        Field("allergies", "Allergies (separated by ;)", False, ("allergy", "allergens")),
        Field("conditions", "Conditions (separated by ;)", False,
              ("medical conditions", "condition", "diagnoses")),
        Field("notes", "Notes", False, ("note", "comments")),
    ),
    "products": (
        Field("name", "Name", True, ("product", "product name", "drug", "drug name", "brand")),
        Field("strength", "Strength", False, ("dose",)),
        Field("dosage_form", "Dosage form", False, ("form",)),
        Field("route", "Route", False, ()),
        Field("ndc", "NDC", False, ("ndc code", "package ndc")),
        Field("gtin", "GTIN", False, ("barcode", "upc")),
        Field("manufacturer", "Manufacturer", False, ("labeler", "maker")),
        Field("category", "Category", False, ()),
        Field("storage", "Storage", False, ("storage condition",)),
        Field("schedule", "Schedule", False, ("dea schedule", "controlled schedule")),
        Field("unit", "Unit", False, ()),
        Field("pack_size", "Pack size", False, ("pack", "package size")),
        Field("reorder_level", "Reorder level", False, ("reorder point", "min")),
        Field("reorder_quantity", "Reorder quantity", False, ("reorder qty",)),
        Field("unit_price", "Unit price", False, ("price",)),
        Field("ingredients", "Active ingredients (separated by ;)", False,
              ("active ingredients", "ingredient", "substance")),
    ),
}


@dataclasses.dataclass(frozen=True)
class CsvFile:
    """A checked CSV file: its header, the first rows (for the preview) and how
    many rows it has. :meth:`rows` reads the rows again, streamed from the file."""

    path: Path
    headers: tuple[str, ...]
    preview: tuple[tuple[int, tuple[str, ...]], ...]  # (line number, values), first rows
    row_count: int
    encoding: str
    delimiter: str
    text: textfile.TextFile

    def rows(self) -> Iterator[tuple[int, tuple[str, ...]]]:
        """(line number, values) of every row with a value, from the file."""
        with textfile.open_text(self.text) as fh:
            yield from _parse(fh, self.path.name, self.delimiter, skip_header=True)


@dataclasses.dataclass(frozen=True)
class CsvImportResult:
    kind: str
    created: int
    updated: int
    problems: tuple[RowProblem, ...]
    dry_run: bool

    @property
    def written(self) -> bool:
        return not self.dry_run and not self.problems


def _norm(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()


MAX_BYTES = 100 << 20
PREVIEW_ROWS = 5


def read_csv(path: Path) -> CsvFile:
    """Check a CSV file from end to end and read its header (a clear error when
    it cannot be used). Streamed: memory does not grow with the file."""
    path = Path(path)
    f = textfile.inspect(path, max_bytes=MAX_BYTES, what="a CSV file")
    with textfile.open_text(f) as fh:
        first = next(textfile.lines(fh), None)
    head = first.text if first is not None and not first.too_long else ""
    delimiter = max((",", ";", "\t"), key=head.count)
    if not head.count(delimiter):
        delimiter = ","
    with textfile.open_text(f) as fh:
        rows = _parse(fh, path.name, delimiter)
        header = next(rows, None)
        if header is None or not any(h.strip() for h in header[1]):
            raise ValidationError(f"{path.name} is empty: the first line must name the columns.")
        headers = tuple(h.strip() for h in header[1])
        seen: set[str] = set()
        for h in headers:
            if h and _norm(h) in seen:
                raise ValidationError(
                    f"{path.name} has the column '{h}' twice; rename or remove one of them.")
            seen.add(_norm(h))
        preview: list[tuple[int, tuple[str, ...]]] = []
        count = 0
        for row in rows:
            count += 1
            if count > MAX_ROWS:
                raise ValidationError(f"{path.name} has more than {MAX_ROWS:,} rows; split it.")
            if len(preview) < PREVIEW_ROWS:
                preview.append(row)
    return CsvFile(path, headers, tuple(preview), count, f.encoding, delimiter, f)


def _parse(fh: TextIO, name: str, delimiter: str, *, skip_header: bool = False
           ) -> Iterator[tuple[int, tuple[str, ...]]]:
    """(first line number, values) of each row that has a value; the header first
    unless ``skip_header``. Quoting mistakes are errors that name the line."""
    reader = csv.reader(textfile.limited(fh, name), delimiter=delimiter, strict=True)
    start = 1
    first = True
    try:
        for values in reader:
            line, start = start, reader.line_num + 1
            if first:
                first = False
                if not skip_header:
                    yield line, tuple(values)
                continue
            if not any(v.strip() for v in values):
                continue
            yield line, tuple(values)
    except csv.Error as exc:
        raise ValidationError(f"{name}, line {start}: {_csv_problem(str(exc))}") from None


def _csv_problem(message: str) -> str:
    if "unexpected end of data" in message:
        return ("a quoted value is never closed: a \" opens it and the file ends before the "
                "closing \". Nothing was imported.")
    if "expected after" in message:
        return ("a quote inside a value must be doubled (\"\"), or the whole value put in "
                "quotes. Nothing was imported.")
    if "field larger than field limit" in message:
        return "a value is too long (more than 131,072 characters). Nothing was imported."
    return f"the file is not a CSV file the way it is written here ({message})."


def guess_mapping(headers: Sequence[str], kind: str) -> dict[str, str | None]:
    """field key -> the column that feeds it (or None)."""
    fields = _fields(kind)
    by_norm = {_norm(h): h for h in headers}
    out: dict[str, str | None] = {}
    for f in fields:
        out[f.key] = None
        for name in (f.key.replace("_", " "), f.label, *f.aliases):
            h = by_norm.get(_norm(name))
            if h is not None and h not in out.values():
                out[f.key] = h
                break
    return out


def _fields(kind: str) -> tuple[Field, ...]:
    if kind not in FIELDS:
        raise ValidationError(f"CSV import takes {' or '.join(KINDS)}, not {kind}.")
    return FIELDS[kind]


def check_mapping(headers: Sequence[str], kind: str, mapping: dict[str, str | None]) -> None:
    for f in _fields(kind):
        col = mapping.get(f.key)
        if col is not None and col not in headers:
            raise ValidationError(f"The file has no column '{col}'.")
        if f.required and not col:
            raise ValidationError(f"Choose the column that holds {f.label.lower()}.")


_DATE_FORMATS = ("%Y-%m-%d", "%m/%d/%Y", "%m/%d/%y", "%m-%d-%Y", "%Y/%m/%d", "%d.%m.%Y")


def parse_date(value: str) -> dt.date | None:
    value = value.strip()
    if not value:
        return None
    for fmt in _DATE_FORMATS:
        try:
            d = dt.datetime.strptime(value, fmt).date()  # noqa: DTZ007 - a date only
        except ValueError:
            continue
        if fmt == "%m/%d/%y" and d > clock.today():
            d = d.replace(year=d.year - 100)
        return d
    raise ValidationError(f"'{value}' is not a date (use YYYY-MM-DD or MM/DD/YYYY).")


_SEX = {"f": "female", "female": "female", "w": "female", "woman": "female",
        "m": "male", "male": "male", "man": "male", "o": "other", "other": "other",
        "u": "unknown", "unknown": "unknown", "": "unknown", "x": "other"}
_SCHEDULE = {"": "none", "none": "none", "no": "none", "0": "none", "ii": "II", "2": "II",
             "cii": "II", "c2": "II", "iii": "III", "3": "III", "ciii": "III", "c3": "III",
             "iv": "IV", "4": "IV", "civ": "IV", "c4": "IV", "v": "V", "5": "V", "cv": "V",
             "c5": "V"}
_STORAGE = {"": "room", "room": "room", "room temperature": "room", "ambient": "room",
            "refrigerated": "refrigerated", "fridge": "refrigerated", "cold": "refrigerated",
            "2-8": "refrigerated", "frozen": "frozen", "freezer": "frozen"}


def _split(value: str) -> list[str]:
    return [x.strip() for x in re.split(r"[;|]", value or "") if x.strip()]


def _patient_draft(v: dict[str, str]) -> patients.PatientDraft:
    sex = _SEX.get(v.get("sex", "").strip().lower())
    if sex is None:
        raise ValidationError(f"'{v['sex']}' is not a sex (female, male, other or unknown).")
    return patients.PatientDraft(
        first_name=v.get("first_name", ""), last_name=v.get("last_name", ""),
        date_of_birth=parse_date(v.get("date_of_birth", "")), sex=sex,
        phone=v.get("phone") or None, email=v.get("email") or None,
        address_line=v.get("address_line") or None, city=v.get("city") or None,
        state=v.get("state") or None, postal_code=v.get("postal_code") or None,
        notes=v.get("notes") or None,
        allergies=[patients.AllergyDraft(a) for a in _split(v.get("allergies", ""))],
        conditions=[patients.ConditionDraft(c) for c in _split(v.get("conditions", ""))])


def _product_draft(v: dict[str, str]) -> catalog.ProductDraft:
    schedule = _SCHEDULE.get(v.get("schedule", "").strip().lower())
    if schedule is None:
        raise ValidationError(f"'{v['schedule']}' is not a schedule (II, III, IV, V or none).")
    storage = _STORAGE.get(v.get("storage", "").strip().lower())
    if storage is None:
        raise ValidationError(
            f"'{v['storage']}' is not a storage condition (room, refrigerated or frozen).")
    price = (v.get("unit_price") or "0").strip().lstrip("$").replace(",", "")
    return catalog.ProductDraft(
        name=v.get("name", ""), strength=v.get("strength") or None,
        dosage_form=v.get("dosage_form") or None, route=v.get("route") or None,
        ndc=v.get("ndc") or None, gtin=v.get("gtin") or None,
        manufacturer=v.get("manufacturer") or None, storage=storage, schedule=schedule,
        unit=v.get("unit") or "each", pack_size=v.get("pack_size") or 1,  # checked as text
        reorder_level=v.get("reorder_level") or 0,
        reorder_quantity=v.get("reorder_quantity") or 0, unit_price=price,
        ingredients=[catalog.IngredientDraft(i) for i in _split(v.get("ingredients", ""))])


def _values(headers: Sequence[str], row: Sequence[str], mapping: dict[str, str | None]
            ) -> dict[str, str]:
    index = {h: i for i, h in enumerate(headers)}
    out: dict[str, str] = {}
    for key, col in mapping.items():
        if col is None:
            continue
        i = index[col]
        if i < len(row):  # a short row does not provide the columns it lacks
            out[key] = row[i].strip()
    return out


def import_csv(
    sf: sessionmaker[Session],
    actor: Actor,
    kind: str,
    data: CsvFile,
    mapping: dict[str, str | None] | None = None,
    *,
    dry_run: bool = False,
    progress: Callable[[str, float | None], None] | None = None,
) -> CsvImportResult:
    """Check every row; write them all (one transaction) when none has an error."""
    perm = Perm.WRITE_PATIENTS if kind == "patients" else Perm.WRITE_CATALOG
    require(actor, perm)  # before the file is read
    mapping = mapping if mapping is not None else guess_mapping(data.headers, kind)
    check_mapping(data.headers, kind, mapping)
    say = progress or (lambda _m, _f: None)
    problems: list[RowProblem] = []
    keys: dict[tuple[Any, ...], int] = {}
    total = max(data.row_count, 1)
    # First pass: check every row (only each row's identity is kept in memory).
    for n, (line, row) in enumerate(data.rows()):
        try:
            values, v = _clean_row(kind, data.headers, row, mapping)
        except ValidationError as exc:
            problems.append(RowProblem(None, line, str(exc)))
            continue
        key = _identity(kind, values)
        if key in keys:
            problems.append(RowProblem(None, line, f"the same {kind[:-1]} as line {keys[key]}"))
            continue
        keys[key] = line
        if n % 500 == 0:
            say(f"Checked {n:,} of {data.row_count:,} rows…", n / total / 2)
    if problems:  # listed in line order; nothing is written
        return CsvImportResult(kind, 0, 0, tuple(problems), dry_run)
    # Second pass: the same rows again, written in chunks in one transaction.
    rows = len(keys)
    write = _write_patients if kind == "patients" else _write_products

    def body(w: uow.Work) -> tuple[int, int]:
        s = w.session
        created = updated = 0
        for chunk in _chunks((_clean_row(kind, data.headers, row, mapping)
                              for _line, row in data.rows()), CHUNK):
            c, u = write(s, w.actor.username, chunk)
            created, updated = created + c, updated + u
            s.flush()
            say(f"Wrote {created + updated:,} of {rows:,} {kind}…",
                0.5 + (created + updated) / max(rows, 1) / 2)
        return created, updated

    # a dry run writes everything and rolls it back: its counts are exact
    created, updated = uow.write(sf, actor, perm, body, dry_run=dry_run)
    say("Done", 1.0)
    return CsvImportResult(kind, created, updated, (), dry_run)


def _clean_row(kind: str, headers: Sequence[str], row: Sequence[str],
               mapping: dict[str, str | None]) -> tuple[dict[str, Any], dict[str, str]]:
    """A row's checked values (the editors' rules) and its text by field."""
    if len(row) > len(headers):
        raise ValidationError(f"{len(row)} values but {len(headers)} columns (a comma inside "
                              "a value needs quotes)")
    v = _values(headers, row, mapping)
    if kind == "patients":
        values = patients._clean_patient(_patient_draft(v))
    else:
        values = catalog._clean_draft(_product_draft(v))
        if len(" ".join(v.get("category", "").split())) > 100:
            raise ValidationError("the category name is longer than 100 characters")
    return values, v


def _identity(kind: str, values: dict[str, Any]) -> tuple[Any, ...]:
    """What makes two rows the same patient or product."""
    if kind == "patients":
        return ("p", values["first_name"].lower(), values["last_name"].lower(),
                values["date_of_birth"])
    return (("ndc", values["ndc"]) if values["ndc"] else
            ("name", values["name"].lower(), (values["strength"] or "").lower()))


def _chunks(items: Iterable[Any], n: int) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= n:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


Cleaned = list[tuple[dict[str, Any], dict[str, str]]]  # (checked values, the row's text)
CHUNK = 500


def _write_patients(s: Session, who: str, chunk: Cleaned) -> tuple[int, int]:
    """Patients on file have the same first and last name and date of birth."""
    found = s.scalars(
        sa.select(Patient).options(selectinload(Patient.allergies),
                                   selectinload(Patient.conditions))
        .where(Patient.date_of_birth.in_({values["date_of_birth"] for values, _ in chunk})))
    on_file = {(p.first_name.lower(), p.last_name.lower(), p.date_of_birth): p for p in found}
    created = updated = 0
    for values, _v in chunk:
        allergies, conditions = values.pop("_allergies"), values.pop("_conditions")
        known = on_file.get((values["first_name"].lower(), values["last_name"].lower(),
                             values["date_of_birth"]))
        if known is None:
            created += 1
            p = Patient(id=uuid.uuid4(), **values, updated_by=who)
            p.allergies = [PatientAllergy(allergen=a.allergen, reaction=a.reaction,
                                          severity=a.severity) for a in allergies]
            p.conditions = [PatientCondition(name=c.name, notes=c.notes) for c in conditions]
            s.add(p)
            continue
        updated += 1
        for k, val in values.items():
            if val is not None and k not in ("first_name", "last_name", "date_of_birth"):
                setattr(known, k, val)
        had = {a.allergen.lower() for a in known.allergies}
        known.allergies.extend(  # a CSV adds allergies; it never removes one
            PatientAllergy(allergen=a.allergen, reaction=a.reaction, severity=a.severity)
            for a in allergies if a.allergen.lower() not in had)
        had = {c.name.lower() for c in known.conditions}
        known.conditions.extend(PatientCondition(name=c.name, notes=c.notes)
                                for c in conditions if c.name.lower() not in had)
        known.updated_by = who
    return created, updated


def _write_products(s: Session, who: str, chunk: Cleaned) -> tuple[int, int]:
    """Products on file have the same NDC or, without one, the same name and
    strength. An update changes only the fields the file has columns for."""
    categories = {c.name.lower(): c for c in s.scalars(sa.select(Category))}
    found = list(s.scalars(
        sa.select(Product).options(selectinload(Product.ingredients)).where(sa.or_(
            Product.ndc.in_([values["ndc"] for values, _ in chunk if values["ndc"]]),
            sa.func.lower(Product.name).in_(
                [values["name"].lower() for values, _ in chunk if not values["ndc"]])))))
    by_ndc = {p.ndc: p for p in found if p.ndc}
    by_name = {(p.name.lower(), (p.strength or "").lower()): p for p in found}
    created = updated = 0
    for values, v in chunk:
        ingredients, classes = values.pop("_ingredients"), values.pop("_classes")
        cat_name = " ".join(v.get("category", "").split())
        values.pop("category_id", None)
        if cat_name:
            cat = categories.get(cat_name.lower())
            if cat is None:
                cat = categories[cat_name.lower()] = Category(id=uuid.uuid4(), name=cat_name)
                s.add(cat)
            values["category_id"] = cat.id
        known = (by_ndc.get(values["ndc"]) if values["ndc"] else
                 by_name.get((values["name"].lower(), (values["strength"] or "").lower())))
        if known is None:
            created += 1
            p = Product(id=uuid.uuid4(), **values, updated_by=who)
            p.ingredients = [ProductIngredient(position=i, name=x.name, strength=x.strength)
                             for i, x in enumerate(ingredients)]
            p.drug_classes = [ProductDrugClass(name=c) for c in classes]
            s.add(p)
            continue
        updated += 1
        supplied = set(v) | ({"category_id"} if "category" in v else set())
        for k, val in values.items():
            if k in supplied and (val is not None or k == "category_id"):
                setattr(known, k, val)
        wanted = [(x.name, x.strength) for x in ingredients]
        if ingredients and wanted != [(x.name, x.strength) for x in known.ingredients]:
            known.ingredients.clear()
            s.flush()  # the old rows go before the new ones arrive
            known.ingredients.extend(
                ProductIngredient(position=i, name=x.name, strength=x.strength)
                for i, x in enumerate(ingredients))
        known.updated_by = who
    return created, updated


# ----------------------------------------------------------------------- export


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, dt.date):
        return value.isoformat()
    if hasattr(value, "value") and not isinstance(value, (int, float)):
        return str(value.value)
    return str(value)


def write_csv(path: Path, headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
    """Write ``rows`` (UTF-8 with a byte-order mark, so Excel opens it right) to
    ``path`` through a temporary file: a failed export leaves no half file."""
    n = 0
    with outfile.replacing(Path(path)) as tmp, \
            open(tmp, "w", encoding="utf-8-sig", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(headers)
        for row in rows:
            w.writerow([_guard(_text(x)) for x in row])
            n += 1
    return n


def _guard(text: str) -> str:
    """A cell that a spreadsheet would run as a formula is written as text."""
    if text[:1] in ("=", "+", "@") or (text[:1] == "-" and not _NUMBER.fullmatch(text)):
        return "'" + text
    return text


_NUMBER = re.compile(r"-?\d+(\.\d+)?")


def _exports(kind: str) -> tuple[Perm, list[str], Callable[[Session], Iterator[Sequence[Any]]]]:
    if kind == "products":
        cols = ["Name", "Strength", "Dosage form", "Route", "NDC", "GTIN", "Manufacturer",
                "Category", "Storage", "Schedule", "Unit", "Pack size", "Reorder level",
                "Reorder quantity", "Unit price", "On hand", "Nearest expiry", "Active"]

        def rows(s: Session) -> Iterator[Sequence[Any]]:
            q = (sa.select(Product.name, Product.strength, Product.dosage_form, Product.route,
                           Product.ndc, Product.gtin, Product.manufacturer, Category.name,
                           Product.storage, Product.schedule, Product.unit, Product.pack_size,
                           Product.reorder_level, Product.reorder_quantity, Product.unit_price,
                           ProductStock.on_hand, ProductStock.nearest_expiry, Product.active)
                 .outerjoin(Category, Category.id == Product.category_id)
                 .outerjoin(ProductStock, ProductStock.product_id == Product.id)
                 .order_by(Product.name, Product.id))
            for row in s.execute(q.execution_options(yield_per=2000)):
                r = list(row)
                r[4] = format_ndc(r[4]) if r[4] else ""
                r[17] = "yes" if r[17] else "no"
                yield r
        return Perm.READ_STOCK, cols, rows
    if kind == "patients":
        cols = ["Last name", "First name", "Date of birth", "Sex", "Phone", "Email", "Address",
                "City", "State", "ZIP code", "Allergies", "Conditions", "Notes"]

        def rows(s: Session) -> Iterator[Sequence[Any]]:
            q = (sa.select(Patient).options(selectinload(Patient.allergies),
                                            selectinload(Patient.conditions))
                 .order_by(Patient.last_name, Patient.first_name, Patient.id))
            for p in s.scalars(q.execution_options(yield_per=1000)):
                yield [p.last_name, p.first_name, p.date_of_birth, p.sex, p.phone, p.email,
                       p.address_line, p.city, p.state, p.postal_code,
                       "; ".join(a.allergen for a in p.allergies),
                       "; ".join(c.name for c in p.conditions), p.notes]
        return Perm.READ_PATIENTS, cols, rows
    if kind == "lots":
        cols = ["Product", "Strength", "NDC", "Lot", "Expiry", "On hand", "Status",
                "Unit cost", "Supplier", "Received"]

        def rows(s: Session) -> Iterator[Sequence[Any]]:
            q = (sa.select(Product.name, Product.strength, Product.ndc, StockLot.lot_number,
                           StockLot.expiry_date, StockLot.on_hand, StockLot.status,
                           StockLot.unit_cost, Supplier.name, StockLot.received_at)
                 .join(Product, Product.id == StockLot.product_id)
                 .outerjoin(Supplier, Supplier.id == StockLot.supplier_id)
                 .order_by(Product.name, StockLot.expiry_date, StockLot.id))
            for row in s.execute(q.execution_options(yield_per=2000)):
                r = list(row)
                r[2] = format_ndc(r[2]) if r[2] else ""
                yield r
        return Perm.READ_LOTS, cols, rows
    if kind == "dispenses":
        cols = ["Dispensed at (UTC)", "Rx number", "Fill", "Patient", "Date of birth",
                "Product", "Strength", "NDC", "Quantity", "Days supply", "Pharmacist"]

        def rows(s: Session) -> Iterator[Sequence[Any]]:
            q = (sa.select(Dispense.dispensed_at, Prescription.rx_number, Dispense.fill_number,
                           Patient.last_name + ", " + Patient.first_name,
                           Patient.date_of_birth, Product.name, Product.strength, Product.ndc,
                           Dispense.quantity, Dispense.days_supply, Staff.full_name)
                 .join(Prescription, Prescription.id == Dispense.prescription_id)
                 .join(Patient, Patient.id == Prescription.patient_id)
                 .join(Product, Product.id == Prescription.product_id)
                 .join(Staff, Staff.id == Dispense.pharmacist_id)
                 .order_by(Dispense.dispensed_at, Dispense.id))
            for row in s.execute(q.execution_options(yield_per=2000)):
                r = list(row)
                r[7] = format_ndc(r[7]) if r[7] else ""
                yield r
        return Perm.READ_DISPENSES, cols, rows
    raise ValidationError(f"Export takes {', '.join(EXPORTS)}, not {kind}.")


def export_table(sf: sessionmaker[Session], actor: Actor, kind: str, path: Path) -> int:
    """Write a whole table to ``path``; the number of rows written."""
    perm, cols, rows = _exports(kind)
    require(actor, perm)
    with db.read_session(sf) as s:
        return write_csv(path, cols, rows(s))


__all__ = ["EXPORTS", "FIELDS", "KINDS", "CsvFile", "CsvImportResult", "RowProblem",
           "export_table", "guess_mapping", "import_csv", "read_csv",
           "write_csv"]
