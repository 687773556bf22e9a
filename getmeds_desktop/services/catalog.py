"""The catalogue: categories, suppliers and products (with ingredients and drug classes)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import re
import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, selectinload, sessionmaker

from .. import db
from ..models import (
    Category,
    Product,
    ProductDrugClass,
    ProductIngredient,
    ProductStock,
    Schedule,
    StorageCondition,
    Supplier,
)
from . import uow
from ._common import money, text, whole_number
from .barcodes import Scan
from .context import Actor, Perm
from .errors import InvalidState, NotFound, ValidationError
from .identifiers import clean_dea, clean_email, clean_phone, format_ndc, normalize_ndc

# ------------------------------------------------------------------ categories


@dataclasses.dataclass(frozen=True)
class CategoryInfo:
    id: uuid.UUID
    name: str


def _categories(s: Session) -> list[CategoryInfo]:
    rows = s.execute(sa.select(Category).order_by(Category.name)).scalars()
    return [CategoryInfo(c.id, c.name) for c in rows]


@dataclasses.dataclass(frozen=True)
class ReferenceLists:
    """What the screens' filters and forms choose from, read once per window."""

    categories: list[CategoryInfo]
    suppliers: list[SupplierInfo]


def reference_lists(sf: sessionmaker[Session]) -> ReferenceLists:
    """Categories and active suppliers: two statements, no transaction round trips."""
    with db.quick_read(sf) as s:
        return ReferenceLists(_categories(s), _suppliers(s, active_only=True))


def create_category(sf: sessionmaker[Session], actor: Actor, name: str) -> CategoryInfo:
    """The category of that name (case does not matter), created if it is new."""
    clean = text(name, "name", "Category name", max_len=100)

    def body(w: uow.Work) -> CategoryInfo:
        s = w.session
        existing = s.scalar(sa.select(Category).where(
            sa.func.lower(Category.name) == clean.lower()))
        if existing is not None:
            return CategoryInfo(existing.id, existing.name)
        c = Category(id=uuid.uuid4(), name=clean)
        s.add(c)
        s.flush()
        return CategoryInfo(c.id, c.name)

    return uow.write(sf, actor, Perm.WRITE_CATALOG, body)


# ------------------------------------------------------------------- suppliers


@dataclasses.dataclass(frozen=True)
class SupplierInfo:
    id: uuid.UUID
    name: str
    dea_number: str | None
    account_number: str | None
    phone: str | None
    email: str | None
    address: str | None
    active: bool
    version: int


def _supplier_info(x: Supplier) -> SupplierInfo:
    return SupplierInfo(
        x.id, x.name, x.dea_number, x.account_number, x.phone, x.email, x.address, x.active,
        x.version,
    )


def list_suppliers(sf: sessionmaker[Session], *, active_only: bool = True) -> list[SupplierInfo]:
    with db.quick_read(sf) as s:
        return _suppliers(s, active_only=active_only)


def _suppliers(s: Session, *, active_only: bool) -> list[SupplierInfo]:
    q = sa.select(Supplier).order_by(Supplier.name)
    if active_only:
        q = q.where(Supplier.active.is_(True))
    return [_supplier_info(x) for x in s.execute(q).scalars()]


def create_supplier(
    sf: sessionmaker[Session],
    actor: Actor,
    *,
    name: str,
    dea_number: str | None = None,
    account_number: str | None = None,
    phone: str | None = None,
    email: str | None = None,
    address: str | None = None,
) -> SupplierInfo:
    values = dict(
        name=text(name, "name", "Supplier name"),
        dea_number=clean_dea(dea_number),
        account_number=text(account_number, "account_number", "Account number", required=False,
                            max_len=64),
        phone=clean_phone(phone),
        email=clean_email(email),
        address=text(address, "address", "Address", required=False, max_len=300),
    )

    def body(w: uow.Work) -> SupplierInfo:
        x = Supplier(id=uuid.uuid4(), **values, updated_by=w.actor.username)
        w.session.add(x)
        w.session.flush()
        return _supplier_info(x)

    return uow.write(sf, actor, Perm.WRITE_CATALOG, body)


# -------------------------------------------------------------------- products


@dataclasses.dataclass(frozen=True)
class IngredientDraft:
    name: str
    strength: str | None = None


@dataclasses.dataclass(frozen=True)
class ProductDraft:
    """What the product editor (or an import) submits."""

    name: str
    strength: str | None = None
    dosage_form: str | None = None
    route: str | None = None
    ndc: str | None = None
    gtin: str | None = None
    manufacturer: str | None = None
    category_id: uuid.UUID | None = None
    storage: StorageCondition | str = StorageCondition.ROOM
    schedule: Schedule | str = Schedule.NONE
    unit: str = "each"
    pack_size: int | str = 1  # whole numbers, checked like typed text
    reorder_level: int | str = 0
    reorder_quantity: int | str = 0
    unit_price: decimal.Decimal | str | float | int = 0
    active: bool = True
    ingredients: Sequence[IngredientDraft] = ()
    drug_classes: Sequence[str] = ()
    max_units_per_day: int | str | None = None  # empty: no product maximum


@dataclasses.dataclass(frozen=True)
class ProductInfo:
    id: uuid.UUID
    name: str
    strength: str | None
    dosage_form: str | None
    route: str | None
    ndc: str | None
    gtin: str | None
    manufacturer: str | None
    category_id: uuid.UUID | None
    category_name: str | None
    storage: StorageCondition
    schedule: Schedule
    unit: str
    pack_size: int
    reorder_level: int
    reorder_quantity: int
    unit_price: decimal.Decimal
    active: bool
    ingredients: tuple[IngredientDraft, ...]
    drug_classes: tuple[str, ...]
    on_hand: int
    nearest_expiry: dt.date | None
    version: int
    updated_by: str | None
    updated_at: dt.datetime
    max_units_per_day: int | None = None

    @property
    def display_name(self) -> str:
        return " ".join(x for x in (self.name, self.strength, self.dosage_form) if x)

    @property
    def ndc_display(self) -> str:
        return format_ndc(self.ndc)

    @property
    def controlled(self) -> bool:
        return self.schedule.controlled

    def draft(self) -> ProductDraft:
        return ProductDraft(
            name=self.name, strength=self.strength, dosage_form=self.dosage_form,
            route=self.route, ndc=self.ndc, gtin=self.gtin, manufacturer=self.manufacturer,
            category_id=self.category_id, storage=self.storage, schedule=self.schedule,
            unit=self.unit, pack_size=self.pack_size, reorder_level=self.reorder_level,
            reorder_quantity=self.reorder_quantity, unit_price=self.unit_price,
            active=self.active, ingredients=self.ingredients, drug_classes=self.drug_classes,
            max_units_per_day=self.max_units_per_day,
        )


def clean_gtin(value: str | None, field: str = "gtin") -> str | None:
    """GTIN-8/12/13/14 with a valid check digit -> 14 digits."""
    if value is None or not str(value).strip():
        return None
    digits = str(value).strip()
    if not re.fullmatch(r"\d{8}|\d{12,14}", digits):
        raise ValidationError(f"'{value}' is not a GTIN (8, 12, 13 or 14 digits).", field=field)
    digits = digits.zfill(14)
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(digits[:13]))
    if (10 - total % 10) % 10 != int(digits[13]):
        raise ValidationError(f"GTIN {value} fails its check digit.", field=field)
    return digits


def _clean_draft(d: ProductDraft) -> dict[str, Any]:
    try:
        storage = StorageCondition(d.storage)
    except ValueError:
        raise ValidationError("Storage must be room, refrigerated or frozen.",
                              field="storage") from None
    try:
        schedule = Schedule(d.schedule)
    except ValueError:
        raise ValidationError("Schedule must be none, II, III, IV or V.",
                              field="schedule") from None
    price = money(d.unit_price, "unit_price", "Unit price")
    ingredients: list[IngredientDraft] = []
    seen: set[str] = set()
    for ing in d.ingredients:
        name = text(ing.name, "ingredients", "Ingredient name", max_len=200)
        if name.lower() in seen:
            raise ValidationError(f"Ingredient {name} is listed twice.", field="ingredients")
        seen.add(name.lower())
        ingredients.append(IngredientDraft(
            name, text(ing.strength, "ingredients", "Ingredient strength", required=False,
                       max_len=100)))
    classes: list[str] = []
    for c in d.drug_classes:
        cc = text(c, "drug_classes", "Drug class", required=False, max_len=200)
        if cc and cc.lower() not in {x.lower() for x in classes}:
            classes.append(cc)
    return dict(
        name=text(d.name, "name", "Product name"),
        strength=text(d.strength, "strength", "Strength", required=False, max_len=100),
        dosage_form=text(d.dosage_form, "dosage_form", "Dosage form", required=False, max_len=80),
        route=text(d.route, "route", "Route", required=False, max_len=80),
        ndc=normalize_ndc(d.ndc),
        gtin=clean_gtin(d.gtin),
        manufacturer=text(d.manufacturer, "manufacturer", "Manufacturer", required=False),
        category_id=d.category_id,
        storage=storage,
        schedule=schedule,
        unit=text(d.unit, "unit", "Unit", max_len=30),
        pack_size=whole_number(d.pack_size, "pack_size", "Pack size", minimum=1),
        reorder_level=whole_number(d.reorder_level, "reorder_level", "Reorder level", minimum=0),
        reorder_quantity=whole_number(d.reorder_quantity, "reorder_quantity", "Reorder quantity",
                                      minimum=0),
        unit_price=price,
        max_units_per_day=None if d.max_units_per_day in (None, "") else whole_number(
            d.max_units_per_day, "max_units_per_day", "Most units a day", minimum=1,
            maximum=100_000),
        active=bool(d.active),
        _ingredients=ingredients,
        _classes=classes,
    )


def product_info(s: Session, p: Product) -> ProductInfo:
    stock = s.get(ProductStock, p.id)
    cat = s.get(Category, p.category_id) if p.category_id else None
    return ProductInfo(
        id=p.id, name=p.name, strength=p.strength, dosage_form=p.dosage_form, route=p.route,
        ndc=p.ndc, gtin=p.gtin, manufacturer=p.manufacturer, category_id=p.category_id,
        category_name=cat.name if cat else None, storage=p.storage, schedule=p.schedule,
        unit=p.unit, pack_size=p.pack_size, reorder_level=p.reorder_level,
        reorder_quantity=p.reorder_quantity, unit_price=decimal.Decimal(p.unit_price),
        active=p.active,
        ingredients=tuple(IngredientDraft(i.name, i.strength) for i in p.ingredients),
        drug_classes=tuple(sorted(c.name for c in p.drug_classes)),
        on_hand=stock.on_hand if stock else 0,
        nearest_expiry=stock.nearest_expiry if stock else None,
        version=p.version, updated_by=p.updated_by, updated_at=p.updated_at,
        max_units_per_day=p.max_units_per_day,
    )


def _load(s: Session, product_id: uuid.UUID, *, lock: bool = False) -> Product:
    q = (
        sa.select(Product)
        .where(Product.id == product_id)
        .options(selectinload(Product.ingredients), selectinload(Product.drug_classes))
    )
    if lock:
        q = q.with_for_update()
    p = s.scalar(q)
    if p is None:
        raise NotFound("That product does not exist.")
    return p


def _check_category(s: Session, category_id: uuid.UUID | None) -> None:
    if category_id is not None and s.get(Category, category_id) is None:
        raise NotFound("That category does not exist.", field="category_id")


def create_product(
    sf: sessionmaker[Session],
    actor: Actor,
    draft: ProductDraft,
    *,
    product_id: uuid.UUID | None = None,
) -> ProductInfo:
    """Add a product. A client-chosen ``product_id`` makes a retry harmless."""
    values = _clean_draft(draft)
    ingredients, classes = values.pop("_ingredients"), values.pop("_classes")

    def body(w: uow.Work) -> ProductInfo:
        s = w.session
        if product_id is not None and s.get(Product, product_id) is not None:
            return product_info(s, _load(s, product_id))  # a retry: it exists already
        _check_category(s, values["category_id"])
        p = Product(id=product_id or uuid.uuid4(), **values, updated_by=w.actor.username)
        p.ingredients = [ProductIngredient(position=i, name=g.name, strength=g.strength)
                         for i, g in enumerate(ingredients)]
        p.drug_classes = [ProductDrugClass(name=c) for c in classes]
        s.add(p)
        s.flush()
        return product_info(s, p)

    return uow.write(sf, actor, Perm.WRITE_CATALOG, body)


def update_product(
    sf: sessionmaker[Session],
    actor: Actor,
    product_id: uuid.UUID,
    draft: ProductDraft,
    *,
    expected_version: int,
    request_id: uuid.UUID | None = None,
) -> ProductInfo:
    """Save an edited product. A ``request_id`` makes a retry harmless."""
    values = _clean_draft(draft)
    ingredients, classes = values.pop("_ingredients"), values.pop("_classes")

    def body(w: uow.Work) -> ProductInfo:
        s = w.session
        p = _load(s, product_id, lock=True)
        w.expect_version(p, expected_version, "product")
        _check_category(s, values["category_id"])
        if _register(values["schedule"]) != _register(p.schedule):
            # 21 CFR 1304.11(d): services/dea_inventory.change_schedule does it
            raise InvalidState(
                f"Moving {p.name} into, out of or between the controlled registers is Change "
                "schedule, which takes the newly-controlled inventory.", field="schedule")
        for key, value in values.items():
            setattr(p, key, value)
        wanted = [(g.name, g.strength) for g in ingredients]
        if [(i.name, i.strength) for i in p.ingredients] != wanted:
            p.ingredients.clear()
            s.flush()
            p.ingredients.extend(ProductIngredient(position=i, name=n, strength=st)
                                 for i, (n, st) in enumerate(wanted))
        if sorted(c.name for c in p.drug_classes) != sorted(classes):
            p.drug_classes.clear()
            s.flush()
            p.drug_classes.extend(ProductDrugClass(name=c) for c in classes)
        p.updated_by = w.actor.username
        s.flush()
        return product_info(s, p)

    return uow.write(sf, actor, Perm.WRITE_CATALOG, body, request_id=request_id,
                     operation="products.update",
                     replay=lambda w, _id: product_info(w.session, _load(w.session, product_id)))


def _register(schedule: Schedule) -> str:
    return "none" if schedule is Schedule.NONE else "II" if schedule is Schedule.II else "III-V"


def get_product(sf: sessionmaker[Session], product_id: uuid.UUID) -> ProductInfo:
    with db.read_session(sf) as s:
        return product_info(s, _load(s, product_id))


def find_product_by_ndc(sf: sessionmaker[Session], ndc: str) -> ProductInfo | None:
    ndc11 = normalize_ndc(ndc)
    with db.read_session(sf) as s:
        pid = s.scalar(sa.select(Product.id).where(Product.ndc == ndc11))
        return product_info(s, _load(s, pid)) if pid else None


@dataclasses.dataclass(frozen=True)
class ScanMatch:
    """What a scanned package is in the catalogue: the product whose GTIN (or
    NDC) it is exactly, or else the packages of the same NDC product (the same
    labeler and product code, another package size) to choose from."""

    exact: ProductInfo | None
    candidates: tuple[ProductInfo, ...] = ()


def match_scan(sf: sessionmaker[Session], scan: Scan) -> ScanMatch:
    """The product a receipt's scan names, preferring the exact GTIN; without
    one, every active package of the same NDC product (nothing found: both
    empty). Two statements at most."""
    with db.read_session(sf) as s:
        if scan.gtin:
            exact = s.scalars(sa.select(Product.id).where(
                Product.gtin == scan.gtin.zfill(14), Product.active.is_(True)).limit(2)).all()
            if len(exact) == 1:
                return ScanMatch(product_info(s, _load(s, exact[0])))
        ids = list(s.scalars(sa.select(Product.id).where(
            Product.ndc.in_(list(scan.ndc_candidates)), Product.active.is_(True)).limit(3))
        ) if scan.ndc_candidates else []
        if len(ids) == 1:
            return ScanMatch(product_info(s, _load(s, ids[0])))
        families = sorted({c[:9] for c in scan.ndc_candidates})
        if not ids and families:  # other packages of the same product
            ids = list(s.scalars(sa.select(Product.id).where(
                sa.func.substr(Product.ndc, 1, 9).in_(families), Product.active.is_(True))
                .order_by(Product.name, Product.ndc).limit(20)))
        return ScanMatch(None, tuple(product_info(s, _load(s, i)) for i in ids))
