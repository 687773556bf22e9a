"""The FDA NDC Directory as the product catalogue.

Reads the two text files the FDA publishes (``product.txt`` and
``package.txt``: tab-separated, cp1252) and makes one product per package NDC,
normalised to 11 digits. Re-importing updates the products it made before (by
NDC) and never duplicates one. Rows that cannot be used are reported with their
file and line and skipped. Products are written in batches, each in its own
transaction: an interruption leaves whole batches only, and running the import
again finishes the job.
"""

from __future__ import annotations

import csv
import dataclasses
import re
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from .. import db
from ..models import Product, ProductDrugClass, ProductIngredient, Schedule, StorageCondition
from . import clock
from ._common import RowProblem as Problem
from ._common import format_ndc, normalize_ndc
from .context import Actor, Perm, require
from .errors import ValidationError

PRODUCT_COLUMNS = ("PRODUCTID", "PRODUCTNDC", "PRODUCTTYPENAME", "PROPRIETARYNAME",
                   "NONPROPRIETARYNAME", "DOSAGEFORMNAME", "ROUTENAME", "LABELERNAME",
                   "SUBSTANCENAME", "ACTIVE_NUMERATOR_STRENGTH", "ACTIVE_INGRED_UNIT",
                   "PHARM_CLASSES", "DEASCHEDULE")
PACKAGE_COLUMNS = ("PRODUCTID", "PRODUCTNDC", "NDCPACKAGECODE", "PACKAGEDESCRIPTION")
# Every column of the files as the FDA publishes them (the import reads the ones above).
PUBLISHED_PRODUCT_COLUMNS = (
    "PRODUCTID", "PRODUCTNDC", "PRODUCTTYPENAME", "PROPRIETARYNAME", "PROPRIETARYNAMESUFFIX",
    "NONPROPRIETARYNAME", "DOSAGEFORMNAME", "ROUTENAME", "STARTMARKETINGDATE",
    "ENDMARKETINGDATE", "MARKETINGCATEGORYNAME", "APPLICATIONNUMBER", "LABELERNAME",
    "SUBSTANCENAME", "ACTIVE_NUMERATOR_STRENGTH", "ACTIVE_INGRED_UNIT", "PHARM_CLASSES",
    "DEASCHEDULE", "NDC_EXCLUDE_FLAG", "LISTING_RECORD_CERTIFIED_THROUGH")
PUBLISHED_PACKAGE_COLUMNS = (
    "PRODUCTID", "PRODUCTNDC", "NDCPACKAGECODE", "PACKAGEDESCRIPTION", "STARTMARKETINGDATE",
    "ENDMARKETINGDATE", "NDC_EXCLUDE_FLAG", "SAMPLE_PACKAGE")
SCHEDULES = {"CII": Schedule.II, "CIII": Schedule.III, "CIV": Schedule.IV, "CV": Schedule.V}
BATCH = 2000
Progress = Callable[[str, float | None], None]


@dataclasses.dataclass(frozen=True)
class NdcProduct:
    line: int
    ndc: str
    name: str
    strength: str | None
    dosage_form: str | None
    route: str | None
    manufacturer: str | None
    schedule: Schedule
    unit: str
    pack_size: int
    ingredients: tuple[tuple[str, str | None], ...]
    classes: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class ImportResult:
    created: int
    updated: int
    problems: tuple[Problem, ...]
    seconds: float
    dry_run: bool = False

    @property
    def imported(self) -> int:
        return self.created + self.updated


def _cut(text: str | None, n: int) -> str | None:
    if text is None:
        return None
    text = " ".join(text.split())
    if not text:
        return None
    return text if len(text) <= n else text[: n - 1].rstrip() + "…"


def _rows(path: Path, required: Sequence[str]) -> Iterator[tuple[int, dict[str, str]]]:
    try:
        fh = open(path, encoding="cp1252", errors="replace", newline="")  # noqa: SIM115
    except OSError as exc:
        raise ValidationError(f"{path} cannot be read: {exc.strerror}.") from None
    with fh:
        reader = csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader, None)
        if header is None:
            raise ValidationError(f"{path.name} is empty.")
        header = [h.strip().upper().lstrip("\ufeff") for h in header]
        missing = [c for c in required if c not in header]
        if missing:
            raise ValidationError(
                f"{path.name} is not an FDA NDC Directory file: it has no column "
                f"{', '.join(missing)}.")
        for line, values in enumerate(reader, start=2):
            if not any(v.strip() for v in values):
                continue
            yield line, dict(zip(header, values, strict=False))


_STRENGTH_UNIT = re.compile(r"/1$")


def _ingredients(row: dict[str, str]) -> tuple[tuple[str, str | None], ...]:
    names = [n.strip() for n in row.get("SUBSTANCENAME", "").split(";")]
    amounts = [a.strip() for a in row.get("ACTIVE_NUMERATOR_STRENGTH", "").split(";")]
    units = [u.strip() for u in row.get("ACTIVE_INGRED_UNIT", "").split(";")]
    out: list[tuple[str, str | None]] = []
    seen: set[str] = set()
    for i, name in enumerate(names):
        if not name:
            continue
        title = _cut(name.title(), 200) or name
        if title.lower() in seen:
            continue
        seen.add(title.lower())
        amount = amounts[i] if i < len(amounts) else ""
        unit = _STRENGTH_UNIT.sub("", units[i]) if i < len(units) else ""
        strength = _cut(f"{amount} {unit}".strip(), 100) if amount else None
        out.append((title, strength))
    return tuple(out)


def _classes(text: str) -> tuple[str, ...]:
    out: list[str] = []
    for part in re.split(r",(?![^\[]*\])", text or ""):
        name = re.sub(r"\s*\[[A-Za-z/ ]+\]\s*$", "", part).strip()
        if name and name.lower() not in (x.lower() for x in out):
            out.append(_cut(name, 200) or name)
    return tuple(out)


_PACK = re.compile(r"^\s*([\d.]+)\s+(.+?)\s+in\s+\d", re.IGNORECASE)


def _pack(description: str) -> tuple[str, int]:
    """"30 TABLET in 1 BOTTLE (…)" -> ("tablet", 30); the innermost package of a
    nested description ("1 BOTTLE in 1 CARTON > 100 TABLET in 1 BOTTLE")."""
    inner = description.split(">")[-1]
    m = _PACK.match(inner)
    if not m:
        return "each", 1
    qty, unit = m.group(1), m.group(2).strip().lower()
    unit = _cut(re.sub(r"\s*\(.*$", "", unit), 30) or "each"
    try:
        value = float(qty)
    except ValueError:
        return unit, 1
    if value >= 1 and value.is_integer():
        return unit, int(value)
    return _cut(f"{qty} {unit}", 30) or unit, 1


def read_directory(product_txt: Path, package_txt: Path
                   ) -> Iterator[NdcProduct | Problem]:
    """The packages as products, or the reason a row cannot be used."""
    products: dict[str, tuple[int, dict[str, str]]] = {}
    pname = Path(product_txt).name
    for line, row in _rows(Path(product_txt), PRODUCT_COLUMNS):
        pid = row.get("PRODUCTID", "").strip()
        if not pid:
            yield Problem(pname, line, "no PRODUCTID")
            continue
        products[pid] = (line, row)
    kname = Path(package_txt).name
    for line, pkg in _rows(Path(package_txt), PACKAGE_COLUMNS):
        pid = pkg.get("PRODUCTID", "").strip()
        found = products.get(pid)
        if found is None:
            yield Problem(kname, line, f"product {pid or '(none)'} is not in {pname}")
            continue
        pline, row = found
        code = pkg.get("NDCPACKAGECODE", "").strip()
        try:
            ndc = normalize_ndc(code)
        except ValidationError:
            ndc = None
        if not ndc:
            yield Problem(kname, line, f"'{code}' is not a package NDC (4-4-2, 5-3-2 or 5-4-1)")
            continue
        dea = row.get("DEASCHEDULE", "").strip().upper()
        if dea == "CI":
            yield Problem(kname, line, f"{format_ndc(ndc)} is a Schedule I substance: not "
                                       "dispensable, not imported")
            continue
        if dea and dea not in SCHEDULES:
            yield Problem(pname, pline, f"unknown DEASCHEDULE '{dea}'")
            continue
        name = _cut(row.get("PROPRIETARYNAME") or row.get("NONPROPRIETARYNAME"), 200)
        if not name:
            yield Problem(pname, pline, "no PROPRIETARYNAME or NONPROPRIETARYNAME")
            continue
        ingredients = _ingredients(row)
        strength = _cut(" / ".join(s for _, s in ingredients if s), 100)
        unit, pack_size = _pack(pkg.get("PACKAGEDESCRIPTION", ""))
        yield NdcProduct(
            line=line, ndc=ndc, name=name, strength=strength,
            dosage_form=_cut((row.get("DOSAGEFORMNAME") or "").lower(), 80),
            route=_cut((row.get("ROUTENAME") or "").lower(), 80),
            manufacturer=_cut(row.get("LABELERNAME"), 200),
            schedule=SCHEDULES.get(dea, Schedule.NONE), unit=unit, pack_size=pack_size,
            ingredients=ingredients, classes=_classes(row.get("PHARM_CLASSES", "")))


def import_directory(
    sf: sessionmaker[Session],
    actor: Actor | None,
    product_txt: Path,
    package_txt: Path,
    *,
    dry_run: bool = False,
    batch: int = BATCH,
    progress: Progress | None = None,
) -> ImportResult:
    """Import (or, with ``dry_run``, only check) the directory."""
    if actor is not None:
        require(actor, Perm.WRITE_CATALOG)
    started = time.perf_counter()
    say = progress or (lambda _m, _f: None)
    try:
        with open(package_txt, "rb") as fh:
            total = max(sum(1 for _ in fh) - 1, 1)
    except OSError as exc:
        raise ValidationError(f"{package_txt} cannot be read: {exc.strerror}.") from None
    problems: list[Problem] = []
    created = updated = 0
    pending: dict[str, NdcProduct] = {}
    seen = 0
    who = actor.username if actor else "getmeds-admin"

    def flush() -> None:
        nonlocal created, updated
        if not pending:
            return
        if dry_run:
            with db.read_session(sf) as s:
                known = set(s.scalars(sa.select(Product.ndc).where(
                    Product.ndc.in_(list(pending)))))
            updated += len(known)
            created += len(pending) - len(known)
        else:
            c, u = _write_batch(sf, list(pending.values()), who)
            created += c
            updated += u
        pending.clear()

    for item in read_directory(Path(product_txt), Path(package_txt)):
        if isinstance(item, Problem):
            problems.append(item)
            if item.file == Path(package_txt).name:
                seen += 1
            continue
        seen += 1
        if item.ndc in pending:
            problems.append(Problem(Path(package_txt).name, item.line,
                                    f"{format_ndc(item.ndc)} appears twice; the later row wins"))
        pending[item.ndc] = item
        if len(pending) >= batch:
            flush()
            say(f"{created + updated:,} products {'checked' if dry_run else 'imported'}…",
                min(seen / total, 1.0))
    flush()
    say("Done", 1.0)
    return ImportResult(created, updated, tuple(problems),
                        round(time.perf_counter() - started, 1), dry_run)


_products = Product.__table__
_ingredients_t = ProductIngredient.__table__
_classes_t = ProductDrugClass.__table__
_UPDATE = (
    sa.update(_products)
    .where(_products.c.id == sa.bindparam("b_id"))
    .values(name=sa.bindparam("b_name"), strength=sa.bindparam("b_strength"),
            dosage_form=sa.bindparam("b_form"), route=sa.bindparam("b_route"),
            manufacturer=sa.bindparam("b_maker"), schedule=sa.bindparam("b_schedule"),
            unit=sa.bindparam("b_unit"), pack_size=sa.bindparam("b_pack"),
            updated_at=sa.bindparam("b_now"), updated_by=sa.bindparam("b_who"),
            version=_products.c.version + 1)
)


def _write_batch(sf: sessionmaker[Session], items: list[NdcProduct], who: str
                 ) -> tuple[int, int]:
    """One transaction: insert the new products, update the known ones, and
    replace their ingredients and drug classes."""
    now = clock.now()
    with db.write_transaction(sf, who) as s:
        conn = s.connection()
        known = dict(conn.execute(sa.select(_products.c.ndc, _products.c.id).where(
            _products.c.ndc.in_([i.ndc for i in items]))).all())
        new = [i for i in items if i.ndc not in known]
        ids = {i.ndc: known.get(i.ndc) or uuid.uuid4() for i in items}
        if new:
            conn.execute(sa.insert(_products), [
                {"id": ids[i.ndc], "name": i.name, "strength": i.strength,
                 "dosage_form": i.dosage_form, "route": i.route, "ndc": i.ndc, "gtin": None,
                 "manufacturer": i.manufacturer, "category_id": None,
                 "storage": StorageCondition.ROOM, "schedule": i.schedule, "unit": i.unit,
                 "pack_size": i.pack_size,
                 "reorder_level": 0, "reorder_quantity": 0, "unit_price": 0, "active": True,
                 "created_at": now, "updated_at": now, "updated_by": who, "version": 1}
                for i in new])
        old = [i for i in items if i.ndc in known]
        if old:
            conn.execute(_UPDATE, [
                {"b_id": known[i.ndc], "b_name": i.name, "b_strength": i.strength,
                 "b_form": i.dosage_form, "b_route": i.route, "b_maker": i.manufacturer,
                 "b_schedule": i.schedule, "b_unit": i.unit, "b_pack": i.pack_size,
                 "b_now": now, "b_who": who} for i in old])
            old_ids = [known[i.ndc] for i in old]
            conn.execute(sa.delete(_ingredients_t).where(
                _ingredients_t.c.product_id.in_(old_ids)))
            conn.execute(sa.delete(_classes_t).where(_classes_t.c.product_id.in_(old_ids)))
        ingredient_rows = [
            {"id": uuid.uuid4(), "product_id": ids[i.ndc], "position": n, "name": name,
             "strength": strength}
            for i in items for n, (name, strength) in enumerate(i.ingredients)]
        if ingredient_rows:
            conn.execute(sa.insert(_ingredients_t), ingredient_rows)
        class_rows = [{"product_id": ids[i.ndc], "name": c} for i in items for c in i.classes]
        if class_rows:
            conn.execute(sa.insert(_classes_t), class_rows)
    return len(new), len(old)
