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

import dataclasses
import re
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from .. import db, textfile
from ..models import (
    Product,
    ProductDrugClass,
    ProductIngredient,
    Schedule,
    StorageCondition,
    table_of,
)
from . import clock, uow
from ._common import MAX_COUNT
from ._common import RowProblem as Problem
from .context import Actor, Perm, require
from .errors import ValidationError
from .identifiers import format_ndc, normalize_ndc

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
MAX_BYTES = 1 << 30  # the published files are about 30 and 40 MB
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
    unit: str | None  # None: the package description does not say
    pack_size: int | None
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


def _header(f: textfile.TextFile, required: Sequence[str]) -> list[str]:
    with textfile.open_text(f) as fh:
        first = next(textfile.lines(fh), None)
    if first is None or first.too_long or not first.text.strip():
        raise ValidationError(f"{f.path.name} is not an FDA NDC Directory file: its first line "
                              "is not a header.")
    header = [h.strip().upper().lstrip("\ufeff") for h in first.text.split("\t")]
    missing = [c for c in required if c not in header]
    if missing:
        raise ValidationError(
            f"{f.path.name} is not an FDA NDC Directory file: it has no column "
            f"{', '.join(missing)}.")
    twice = sorted({h for h in header if h and header.count(h) > 1})
    if twice:
        raise ValidationError(f"{f.path.name} has the column {', '.join(twice)} twice; "
                              "the file is damaged.")
    return header


def _open(path: Path, required: Sequence[str]) -> tuple[textfile.TextFile, list[str]]:
    """Check a directory file before anything is imported from it: a text file
    with the FDA's columns that does not end in the middle of a row (an
    interrupted download)."""
    f = textfile.inspect(Path(path), max_bytes=MAX_BYTES, what="an FDA NDC Directory file")
    header = _header(f, required)
    if not f.ends_with_newline:
        with open(f.path, "rb") as fh:
            fh.seek(max(f.size - textfile.MAX_LINE * 4, 0))
            tail = fh.read().decode(f.encoding, errors="replace").splitlines()
        last = tail[-1] if tail else ""
        if len(last.split("\t")) < len(header):
            raise ValidationError(
                f"{f.path.name} ends in the middle of a row: the file is incomplete (an "
                "interrupted download?). Nothing was imported; download it again.")
    return f, header


def _rows(f: textfile.TextFile, header: list[str]
          ) -> Iterator[tuple[int, dict[str, str]] | Problem]:
    """Each data row as column -> value, or the reason it cannot be used. A row
    must have exactly the header's fields: a short one would blank what it lacks."""
    name = f.path.name
    with textfile.open_text(f) as fh:
        for line in textfile.lines(fh):
            if line.number == 1:
                continue
            if line.too_long:
                yield Problem(name, line.number,
                              f"the row is longer than {textfile.MAX_LINE:,} characters; "
                              "nothing from it was imported")
                continue
            if not line.text.strip():
                continue
            values = line.text.split("\t")
            if len(values) != len(header):
                yield Problem(name, line.number,
                              f"the row has {len(values)} fields but the header has "
                              f"{len(header)}; nothing from it was imported")
                continue
            yield line.number, dict(zip(header, values, strict=True))


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


def _pack(description: str) -> tuple[str, int] | None:
    """"30 TABLET in 1 BOTTLE (…)" -> ("tablet", 30); the innermost package of a
    nested description ("1 BOTTLE in 1 CARTON > 100 TABLET in 1 BOTTLE"); None
    when the description does not say (the product keeps what it has)."""
    inner = description.split(">")[-1]
    m = _PACK.match(inner)
    if not m:
        return None
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
    prod_file, prod_header = _open(Path(product_txt), PRODUCT_COLUMNS)
    pack_file, pack_header = _open(Path(package_txt), PACKAGE_COLUMNS)
    for item in _rows(prod_file, prod_header):
        if isinstance(item, Problem):
            yield item
            continue
        line, row = item
        pid = row.get("PRODUCTID", "").strip()
        if not pid:
            yield Problem(pname, line, "no PRODUCTID")
            continue
        products[pid] = (line, row)
    kname = Path(package_txt).name
    for item in _rows(pack_file, pack_header):
        if isinstance(item, Problem):
            yield item
            continue
        line, pkg = item
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
        pack = _pack(pkg.get("PACKAGEDESCRIPTION", ""))
        if pack is not None and not 1 <= pack[1] <= MAX_COUNT:
            yield Problem(kname, line, f"the pack size {pack[1]:,} is out of range (1 to "
                                       f"{MAX_COUNT:,}); {format_ndc(ndc)} was not imported")
            continue
        unit, pack_size = pack if pack is not None else (None, None)
        yield NdcProduct(
            line=line, ndc=ndc, name=name, strength=strength,
            dosage_form=_cut((row.get("DOSAGEFORMNAME") or "").lower(), 80),
            route=_cut((row.get("ROUTENAME") or "").lower(), 80),
            manufacturer=_cut(row.get("LABELERNAME"), 200),
            schedule=SCHEDULES.get(dea, Schedule.NONE), unit=unit, pack_size=pack_size,
            ingredients=ingredients, classes=_classes(row.get("PHARM_CLASSES", "")))


def import_directory(
    sf: sessionmaker[Session],
    actor: Actor,
    product_txt: Path,
    package_txt: Path,
    *,
    dry_run: bool = False,
    batch: int = BATCH,
    progress: Progress | None = None,
) -> ImportResult:
    """Import (or, with ``dry_run``, only check) the directory."""
    require(actor, Perm.WRITE_CATALOG)
    started = time.perf_counter()
    say = progress or (lambda _m, _f: None)
    total = max(_count_lines(Path(package_txt)) - 1, 1)
    problems: list[Problem] = []
    created = updated = 0
    pending: dict[str, NdcProduct] = {}
    seen = 0

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
            c, u = _write_batch(sf, actor, list(pending.values()))
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


def _count_lines(path: Path) -> int:
    """For the progress bar; a file that cannot be read is reported by the reader."""
    n = 0
    try:
        with open(path, "rb") as fh:
            while chunk := fh.read(textfile.CHUNK):
                n += chunk.count(b"\n")
    except OSError:
        return 1
    return n


_products = table_of(Product)
_ingredients_t = table_of(ProductIngredient)
_classes_t = table_of(ProductDrugClass)
_UPDATE = (
    sa.update(_products)
    .where(_products.c.id == sa.bindparam("b_id"))
    # A field the file leaves empty keeps what the product has: an update never
    # blanks a value the directory does not actually provide.
    .values(name=sa.bindparam("b_name"),
            strength=sa.func.coalesce(sa.bindparam("b_strength"), _products.c.strength),
            dosage_form=sa.func.coalesce(sa.bindparam("b_form"), _products.c.dosage_form),
            route=sa.func.coalesce(sa.bindparam("b_route"), _products.c.route),
            manufacturer=sa.func.coalesce(sa.bindparam("b_maker"), _products.c.manufacturer),
            schedule=sa.bindparam("b_schedule"),
            unit=sa.func.coalesce(sa.bindparam("b_unit", type_=sa.String), _products.c.unit),
            pack_size=sa.func.coalesce(sa.bindparam("b_pack", type_=sa.Integer),
                                       _products.c.pack_size),
            updated_at=sa.bindparam("b_now"), updated_by=sa.bindparam("b_who"),
            version=_products.c.version + 1)
)


def _write_batch(sf: sessionmaker[Session], actor: Actor, items: list[NdcProduct]
                 ) -> tuple[int, int]:
    """One unit of work: insert the new products, update the known ones, and
    replace their ingredients and drug classes."""
    return uow.write(sf, actor, Perm.WRITE_CATALOG, lambda w: _write_items(w, items))


def _write_items(w: uow.Work, items: list[NdcProduct]) -> tuple[int, int]:
    now = clock.now()
    who = w.actor.username
    conn = w.conn
    known = dict(conn.execute(sa.select(_products.c.ndc, _products.c.id).where(
        _products.c.ndc.in_([i.ndc for i in items]))).all())
    new = [i for i in items if i.ndc not in known]
    ids = {i.ndc: known.get(i.ndc) or uuid.uuid4() for i in items}
    if new:
        conn.execute(sa.insert(_products), [
            {"id": ids[i.ndc], "name": i.name, "strength": i.strength,
             "dosage_form": i.dosage_form, "route": i.route, "ndc": i.ndc, "gtin": None,
             "manufacturer": i.manufacturer, "category_id": None,
             "storage": StorageCondition.ROOM, "schedule": i.schedule,
             "unit": i.unit or "each", "pack_size": i.pack_size or 1,
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
        # ingredients and classes are replaced only where the file lists some
        with_ingredients = [known[i.ndc] for i in old if i.ingredients]
        if with_ingredients:
            conn.execute(sa.delete(_ingredients_t).where(
                _ingredients_t.c.product_id.in_(with_ingredients)))
        with_classes = [known[i.ndc] for i in old if i.classes]
        if with_classes:
            conn.execute(sa.delete(_classes_t).where(
                _classes_t.c.product_id.in_(with_classes)))
    ingredient_rows = [
        {"id": uuid.uuid4(), "product_id": ids[i.ndc], "position": n, "name": name,
         "strength": strength}
        for i in items for n, (name, strength) in enumerate(i.ingredients)]
    if ingredient_rows:
        conn.execute(sa.insert(_ingredients_t), ingredient_rows)
    class_rows = [{"product_id": ids[i.ndc], "name": c} for i in items for c in i.classes]
    if class_rows:
        conn.execute(sa.insert(_classes_t), class_rows)
    w.touched("products", *ids.values())
    return len(new), len(old)
