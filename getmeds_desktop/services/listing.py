"""Big lists, one page at a time: keyset pagination with sorting and filtering in SQL.

Every list sorts on a non-null expression plus the row id, and a page after
the last row is ``WHERE (key, id) > (:key, :id) ORDER BY key, id LIMIT n``,
so page 500 costs what page 1 costs. Rows are frozen dataclasses carrying
their ``sort_key`` so the caller can ask for the next page.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import re
import uuid
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

import sqlalchemy as sa
from sqlalchemy.orm import QueryableAttribute, Session, sessionmaker

from .. import db
from ..models import (
    Category,
    Dispense,
    Patient,
    Prescriber,
    Prescription,
    Product,
    ProductStock,
    RxStatus,
    Schedule,
    StorageCondition,
)
from . import clock, rxstate
from .context import Actor, Perm, require
from .errors import ValidationError

T = TypeVar("T")
Query = sa.Select[*tuple[Any, ...]]  # a select of any columns
Column = sa.ColumnElement[Any]
Expr = sa.ColumnElement[Any] | QueryableAttribute[Any]  # a column or a mapped attribute


SortKey = Expr | tuple[Expr, ...]  # one sort expression, or several (then by the next)


def _expr(x: Expr) -> Column:
    return x if isinstance(x, sa.ColumnElement) else x.expression


def _sort_columns(q: Query, key: SortKey) -> tuple[Query, tuple[Column, ...]]:
    """The query with its sort key's columns added last. Several sort
    expressions make one ``sort_key`` tuple on the row (see ``_packed``)."""
    keys = tuple(_expr(k) for k in key) if isinstance(key, tuple) else (_expr(key),)
    if len(keys) == 1:
        return q.add_columns(keys[0].label("sort_key")), keys
    return q.add_columns(*(k.label(f"sort_key_{i}") for i, k in enumerate(keys))), keys


def _packed(make: Callable[[Any], T], n: int) -> Callable[[Any], T]:
    if n == 1:
        return make
    return lambda r: make((*r[:-n], tuple(r[-n:])))
PAGE_SIZE = 200
FAR_FUTURE = dt.date(9999, 12, 31)


@dataclasses.dataclass(frozen=True)
class Page(Generic[T]):
    rows: tuple[T, ...]
    has_more: bool


@dataclasses.dataclass(frozen=True)
class After:
    """Where the previous page ended."""

    key: Any
    id: uuid.UUID


def _page(s: Session, q: Query, key: SortKey, id_col: Expr,
          descending: bool, after: After | None, limit: int,
          make: Callable[[Any], T]) -> Page[T]:
    id_col = _expr(id_col)
    labelled, keys = _sort_columns(q, key)
    if after is not None:
        values = after.key if len(keys) > 1 else (after.key,)
        cmp = sa.tuple_(*keys, id_col)
        point = sa.tuple_(*(sa.literal(v, k.type) for v, k in zip(values, keys, strict=True)),
                          sa.literal(after.id, id_col.type))
        labelled = labelled.where(cmp < point if descending else cmp > point)
    order = [*(k.desc() for k in keys), id_col.desc()] if descending else [*keys, id_col]
    rows = s.execute(labelled.order_by(*order).limit(limit + 1)).all()
    more = len(rows) > limit
    make = _packed(make, len(keys))
    return Page(tuple(make(r) for r in rows[:limit]), more)


def _matching(s: Session, q: Query, key: SortKey, id_col: Expr,
              ids: Sequence[uuid.UUID], make: Callable[[Any], T]) -> list[T]:
    """The rows among ``ids`` that match the list's filter, with their sort key
    (to refresh what a screen shows after a change)."""
    if not ids:
        return []
    id_col = _expr(id_col)
    labelled, keys = _sort_columns(q, key)
    make = _packed(make, len(keys))
    return [make(r) for r in s.execute(labelled.where(id_col.in_(list(ids))))]


def _like_fragment(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def digits_of(column: Expr, dialect: str) -> Column:
    """The digits of a phone number (indexed by trigrams on PostgreSQL)."""
    if dialect == "postgresql":
        return sa.func.regexp_replace(sa.func.coalesce(column, ""), "[^0-9]", "", "g")
    expr: Column = sa.func.coalesce(column, "")
    for ch in (" ", "-", "(", ")", ".", "+", "/"):
        expr = sa.func.replace(expr, ch, "")
    return expr


# --------------------------------------------------------------------- products


@dataclasses.dataclass(frozen=True)
class ProductFilter:
    search: str = ""
    category_id: uuid.UUID | None = None
    storage: StorageCondition | None = None
    schedule: Schedule | None = None
    controlled_only: bool = False
    low_stock: bool = False
    expiring_within_days: int | None = None
    expired: bool = False
    include_inactive: bool = False


@dataclasses.dataclass(frozen=True)
class ProductRow:
    id: uuid.UUID
    name: str
    strength: str | None
    dosage_form: str | None
    ndc: str | None
    category: str | None
    schedule: Schedule
    on_hand: int
    reorder_level: int
    nearest_expiry: dt.date | None
    storage: StorageCondition
    active: bool
    version: int
    sort_key: Any = None

    @property
    def low(self) -> bool:
        return self.on_hand <= self.reorder_level

    def expired_on(self, day: dt.date) -> bool:
        return self.nearest_expiry is not None and self.nearest_expiry < day

    def expiring_on(self, day: dt.date, days: int = 30) -> bool:
        return (self.nearest_expiry is not None
                and day <= self.nearest_expiry <= day + dt.timedelta(days=days))


PRODUCT_SORTS: dict[str, Callable[[], Expr]] = {
    "name": lambda: Product.name,
    "strength": lambda: sa.func.coalesce(Product.strength, ""),
    "dosage_form": lambda: sa.func.coalesce(Product.dosage_form, ""),
    "ndc": lambda: sa.func.coalesce(Product.ndc, ""),
    "category": lambda: sa.func.coalesce(Category.name, ""),
    "schedule": lambda: Product.schedule,
    "on_hand": lambda: ProductStock.on_hand,
    "reorder_level": lambda: Product.reorder_level,
    "nearest_expiry": lambda: sa.func.coalesce(ProductStock.nearest_expiry, FAR_FUTURE),
    "storage": lambda: Product.storage,
}


def _product_query(f: ProductFilter, dialect: str) -> Query:
    q = (
        sa.select(Product.id, Product.name, Product.strength, Product.dosage_form, Product.ndc,
                  Category.name.label("category"), Product.schedule, ProductStock.on_hand,
                  Product.reorder_level, ProductStock.nearest_expiry, Product.storage,
                  Product.active, Product.version)
        .select_from(Product)
        .join(ProductStock, ProductStock.product_id == Product.id)
        .outerjoin(Category, Category.id == Product.category_id)
    )
    if not f.include_inactive:
        q = q.where(Product.active.is_(True))
    text = f.search.strip()
    if text:
        digits = re.sub(r"[-\s]", "", text)
        if digits.isdigit() and len(digits) >= 3:
            q = q.where(sa.or_(Product.ndc.like(f"{digits}%"), Product.gtin.like(f"%{digits}%")))
        else:
            pattern = f"%{_like_fragment(text.lower())}%"
            q = q.where(sa.func.lower(Product.name).like(pattern, escape="\\"))
    if f.category_id is not None:
        q = q.where(Product.category_id == f.category_id)
    if f.storage is not None:
        q = q.where(Product.storage == f.storage)
    if f.schedule is not None:
        q = q.where(Product.schedule == f.schedule)
    if f.controlled_only:
        q = q.where(Product.schedule != Schedule.NONE)
    if f.low_stock:
        q = q.where(ProductStock.on_hand <= Product.reorder_level)
    today = clock.today()
    if f.expiring_within_days is not None:
        q = q.where(ProductStock.nearest_expiry >= today,
                    ProductStock.nearest_expiry <= today + dt.timedelta(
                        days=f.expiring_within_days))
    if f.expired:
        q = q.where(ProductStock.nearest_expiry < today)
    return q


def _product_row(r: Any) -> ProductRow:
    return ProductRow(*r)


def list_products(
    sf: sessionmaker[Session],
    actor: Actor,
    f: ProductFilter,
    *,
    sort: str = "name",
    descending: bool = False,
    after: After | None = None,
    limit: int = PAGE_SIZE,
) -> Page[ProductRow]:
    require(actor, Perm.READ_STOCK)
    if sort not in PRODUCT_SORTS:
        raise ValidationError(f"Products cannot be sorted by {sort}.")
    with db.quick_read(sf, custom_plan=True) as s:
        q = _product_query(f, s.get_bind().dialect.name)
        return _page(s, q, PRODUCT_SORTS[sort](), Product.id, descending, after, limit,
                     _product_row)


def product_rows(sf: sessionmaker[Session], actor: Actor, ids: Sequence[uuid.UUID],
                 f: ProductFilter | None = None, *, sort: str = "name") -> list[ProductRow]:
    """Fresh copies of those of ``ids`` that match the filter ``f`` (all of
    them without one), for refreshing what is on screen."""
    require(actor, Perm.READ_STOCK)
    f = f if f is not None else ProductFilter(include_inactive=True)
    with db.quick_read(sf, custom_plan=True) as s:
        q = _product_query(f, s.get_bind().dialect.name)
        return _matching(s, q, PRODUCT_SORTS.get(sort, PRODUCT_SORTS["name"])(), Product.id,
                         ids, _product_row)


def count_products(sf: sessionmaker[Session], actor: Actor, f: ProductFilter) -> int:
    require(actor, Perm.READ_STOCK)
    with db.quick_read(sf, custom_plan=True) as s:
        q = _product_query(f, s.get_bind().dialect.name)
        return s.scalar(sa.select(sa.func.count()).select_from(q.subquery())) or 0


# --------------------------------------------------------------------- patients


@dataclasses.dataclass(frozen=True)
class PatientRow:
    id: uuid.UUID
    last_name: str
    first_name: str
    date_of_birth: dt.date
    sex: str
    phone: str | None
    city: str | None
    allergy_count: int
    version: int
    sort_key: Any = None

    @property
    def name(self) -> str:
        return f"{self.last_name}, {self.first_name}"


def _parse_date(text: str) -> dt.date | None:
    for fmt in ("%Y-%m-%d", "%m/%d/%Y", "%m/%d/%y", "%m-%d-%Y"):
        try:
            return dt.datetime.strptime(text, fmt).date()  # noqa: DTZ007 - a date only
        except ValueError:
            continue
    return None


def _name_key(dialect: str) -> Column:
    """The patient sort key. Byte order ("C") on PostgreSQL, whatever the database's
    collation, so a name prefix is an index range (see _patient_name_search)."""
    expr = sa.func.lower(Patient.last_name + " " + Patient.first_name)
    return expr.collate("C") if dialect == "postgresql" else expr


PATIENT_SORTS: dict[str, Callable[[str], Expr]] = {
    "name": _name_key,
    "date_of_birth": lambda _d: Patient.date_of_birth,
    "phone": lambda _d: sa.func.coalesce(Patient.phone, ""),
    "city": lambda _d: sa.func.coalesce(Patient.city, ""),
}


def _patient_columns() -> list[Any]:
    from ..models import PatientAllergy

    allergies = (
        sa.select(sa.func.count()).where(PatientAllergy.patient_id == Patient.id)
        .correlate(Patient).scalar_subquery()
    )
    return [Patient.id, Patient.last_name, Patient.first_name, Patient.date_of_birth,
            Patient.sex, Patient.phone, Patient.city, allergies, Patient.version]


def _name_tokens(text: str) -> tuple[list[str], bool]:
    return [t for t in re.split(r"[,\s]+", text.lower()) if t], "," in text


def _token_matches(tok: str) -> Column:
    frag = f"{_like_fragment(tok)}%"
    return sa.or_(sa.func.lower(Patient.last_name).like(frag, escape="\\"),
                  sa.func.lower(Patient.first_name).like(frag, escape="\\"))


def _patient_query(search: str, dialect: str) -> Query:
    q = sa.select(*_patient_columns()).where(Patient.active.is_(True))
    text = search.strip()
    if not text:
        return q
    day = _parse_date(text)
    if day is not None:
        return q.where(Patient.date_of_birth == day)
    digits = re.sub(r"[\s()+.\-]", "", text)
    if digits.isdigit() and len(digits) >= 3:
        matches = digits_of(Patient.phone, dialect).like(f"%{digits}%")
        if dialect == "postgresql":
            # The same digits in order with anything between them: a superset,
            # cheap to test on the stored number, and tested first (cheaper),
            # so walking the list's order past patients whose number cannot
            # match costs no regexp_replace (a rare fragment the planner thought
            # common read the whole name index: 350 ms at a million patients).
            return q.where(Patient.phone.like("%" + "%".join(digits) + "%"), matches)
        return q.where(matches)
    tokens, comma = _name_tokens(text)
    if comma and len(tokens) >= 2:  # "last, first"
        return q.where(
            sa.func.lower(Patient.last_name).like(f"{_like_fragment(tokens[0])}%", escape="\\"),
            sa.func.lower(Patient.first_name).like(f"{_like_fragment(tokens[1])}%",
                                                   escape="\\"))
    for tok in tokens:
        q = q.where(_token_matches(tok))
    return q


def _is_name_search(text: str) -> bool:
    t = text.strip()
    if not t or _parse_date(t) is not None:
        return False
    digits = re.sub(r"[\s()+.\-]", "", t)
    return not (digits.isdigit() and len(digits) >= 3)


def _patient_name_search(s: Session, text: str, dialect: str, descending: bool,
                         after: After | None, limit: int) -> Page[PatientRow]:
    """A name search sorted by name, shaped so that it reads only the rows it shows.

    The sort key starts with the last name, so "last name starts with X" is a
    range of the sort-key index, already in order: a page of Smiths reads 200
    index entries instead of sorting 3,000 rows. Patients matching only by first
    name come from a second branch; each branch is limited to one page and the
    two are merged.

    The statement depends only on the search's shape (how many words, a comma,
    which branches), so it is built once per shape with its words as bound
    parameters (building it took about 3 ms of the workstation's CPU per search).
    """
    tokens, comma = _name_tokens(text)
    first, rest = tokens[0], tokens[1:]
    second = rest[0] if rest else None
    pg = dialect == "postgresql"
    by_last_first_name = bool(pg and second is not None and (
        comma or not (second.startswith(first) or first.startswith(second))))
    stmt = _name_search_statement(dialect, len(tokens), comma, by_last_first_name,
                                  descending, after is not None, limit)
    params: dict[str, Any] = {}
    for i, tok in enumerate(tokens):
        upper = tok[:-1] + chr(ord(tok[-1]) + 1)
        params[f"w{i}_lo"], params[f"w{i}_hi"] = tok, upper
        params[f"w{i}_like"] = f"{_like_fragment(tok)}%"
    if after is not None:
        params["after_key"], params["after_id"] = after.key, after.id
    rows = s.execute(stmt, params).all()
    return Page(tuple(PatientRow(*tuple(r)) for r in rows[:limit]), len(rows) > limit)


def _word(i: int, part: str, dialect: str) -> Column:
    """The search's ``i``-th word as a bound parameter: ``lo`` (the word), ``hi``
    (just past every text that starts with it) or ``like`` (a LIKE pattern)."""
    p: Column = sa.bindparam(f"w{i}_{part}", type_=sa.String)
    return p.collate("C") if dialect == "postgresql" and part != "like" else p


def _starts(key: Column, i: int, dialect: str) -> Column:
    return sa.and_(key >= _word(i, "lo", dialect), key < _word(i, "hi", dialect))


def _word_matches(i: int) -> Column:
    frag = _word(i, "like", "")
    return sa.or_(sa.func.lower(Patient.last_name).like(frag, escape="\\"),
                  sa.func.lower(Patient.first_name).like(frag, escape="\\"))


@functools.lru_cache(maxsize=64)
def _name_search_statement(dialect: str, words: int, comma: bool, by_last_first_name: bool,
                           descending: bool, paged: bool, limit: int) -> Any:
    key = _name_key(dialect)
    rest = range(1, words)
    if comma and words > 1:
        extra: list[Column] = [sa.func.lower(Patient.first_name).like(
            _word(1, "like", dialect), escape="\\")]
    else:
        extra = [_word_matches(i) for i in rest]
    conditions = [[_starts(key, 0, dialect), *extra]]
    if not (comma and words > 1):
        conditions.append([
            sa.func.lower(Patient.first_name).like(_word(0, "like", dialect), escape="\\"),
            sa.not_(_starts(key, 0, dialect)), *extra])
    keyset: list[Column] = []
    if paged:
        cmp = sa.tuple_(key, Patient.id)
        point = sa.tuple_(sa.bindparam("after_key", type_=key.type),
                          sa.bindparam("after_id", type_=sa.Uuid()))
        keyset.append(cmp < point if descending else cmp > point)
    order = (key.desc(), Patient.id.desc()) if descending else (key, Patient.id)

    def sorted_matches(conds: list[Column]) -> Query:
        q = sa.select(Patient.id.label("pid"), key.label("sort_key")).where(
            Patient.active.is_(True), *conds, *keyset)
        return sa.select(q.order_by(*order).limit(limit + 1).subquery())

    pg = dialect == "postgresql"
    branches = []
    if by_last_first_name:
        # the second word can only be the start of the first name then: for each
        # first name that starts with it, the patients of that last name are one
        # range of the first-name index
        more = [] if comma else [_word_matches(i) for i in range(2, words)]
        branches.append(_by_first_name(1, [conditions[0][0], *more], keyset, descending,
                                       limit, "by_last"))
    else:
        branches.append(sorted_matches(conditions[0]))
    if len(conditions) > 1:
        # SQLite sorts the matches it finds through the first-name index
        branches.append(_by_first_name(0, conditions[1][1:], keyset, descending, limit,
                                       "by_first") if pg else sorted_matches(conditions[1]))
    found = (sa.union_all(*branches) if len(branches) > 1 else branches[0]).subquery("found")
    outer_order = ((found.c.sort_key.desc(), found.c.pid.desc()) if descending
                   else (found.c.sort_key, found.c.pid))
    return (sa.select(*_patient_columns(), found.c.sort_key)
            .join(found, found.c.pid == Patient.id)
            .order_by(*outer_order)
            .limit(limit + 1))


def _by_first_name(word: int, conds: list[Column], keyset: list[Column],
                   descending: bool, limit: int, name: str) -> Query:
    """PostgreSQL: the first page of active patients whose first name starts with
    the search's word number ``word`` and who meet ``conds``, in the list's
    order, reading only what it shows. The first names that start with the word
    are found one after the other along the index of first names (a recursive
    query, one index probe each); for each, its patients come from that index
    already in the list's order, one page at most; the pages are merged
    (migration 0013). ``name`` names the query's parts (two branches of one
    statement may use this)."""
    key = _name_key("postgresql")
    first = sa.func.lower(Patient.first_name).collate("C")
    lo, hi = _word(word, "lo", "postgresql"), _word(word, "hi", "postgresql")

    def next_name(above: Column | None) -> Any:
        q = sa.select(first).where(Patient.active.is_(True), first < hi,
                                   first >= lo if above is None else first > above)
        return q.order_by(first).limit(1).scalar_subquery()

    names = sa.select(next_name(None).label("n")).cte(f"{name}_names", recursive=True)
    names = names.union_all(sa.select(next_name(names.c.n)).where(names.c.n.is_not(None)))
    order = (key.desc(), Patient.id.desc()) if descending else (key, Patient.id)
    page = (sa.select(Patient.id.label("pid"), key.label("sort_key"))
            .where(Patient.active.is_(True), first == names.c.n, *conds, *keyset)
            .order_by(*order).limit(limit + 1).lateral(f"{name}_page"))
    merged = (sa.select(page.c.pid, page.c.sort_key)
              .select_from(names).join(page, sa.true()).where(names.c.n.is_not(None)))
    outer = ((page.c.sort_key.desc(), page.c.pid.desc()) if descending
             else (page.c.sort_key, page.c.pid))
    return sa.select(merged.order_by(*outer).limit(limit + 1).subquery())


def list_patients(
    sf: sessionmaker[Session],
    actor: Actor,
    search: str = "",
    *,
    sort: str = "name",
    descending: bool = False,
    after: After | None = None,
    limit: int = PAGE_SIZE,
) -> Page[PatientRow]:
    """Search by name ("smith jo", "smith, john"), date of birth or phone digits."""
    require(actor, Perm.READ_PATIENTS)
    if sort not in PATIENT_SORTS:
        raise ValidationError(f"Patients cannot be sorted by {sort}.")
    with db.quick_read(sf, custom_plan=True) as s:
        dialect = s.get_bind().dialect.name
        if sort == "name" and _is_name_search(search):
            return _patient_name_search(s, search, dialect, descending, after, limit)
        q = _patient_query(search, dialect)
        return _page(s, q, PATIENT_SORTS[sort](dialect), Patient.id, descending, after,
                     limit, lambda r: PatientRow(*r))


def patient_rows(sf: sessionmaker[Session], actor: Actor, ids: Sequence[uuid.UUID],
                 search: str = "", *, sort: str = "name") -> list[PatientRow]:
    """Fresh copies of those of ``ids`` that match ``search``."""
    require(actor, Perm.READ_PATIENTS)
    with db.quick_read(sf, custom_plan=True) as s:
        dialect = s.get_bind().dialect.name
        key = PATIENT_SORTS.get(sort, PATIENT_SORTS["name"])(dialect)
        return _matching(s, _patient_query(search, dialect), key, Patient.id, ids,
                         lambda r: PatientRow(*r))


# ---------------------------------------------------------------- prescriptions


@dataclasses.dataclass(frozen=True)
class PrescriptionFilter:
    statuses: tuple[RxStatus, ...] = ()
    search: str = ""
    patient_id: uuid.UUID | None = None
    prescriber_id: uuid.UUID | None = None


@dataclasses.dataclass(frozen=True)
class PrescriptionRow:
    id: uuid.UUID
    rx_number: int
    patient_id: uuid.UUID
    patient_name: str
    product_name: str
    strength: str | None
    schedule: Schedule
    quantity: int
    refills_authorized: int
    date_written: dt.date
    status: RxStatus
    owed_quantity: int
    prescriber_name: str
    created_at: dt.datetime
    last_fill: int | None
    version: int
    sort_key: Any = None

    @property
    def refills_left(self) -> int:
        if self.status is RxStatus.TRANSFERRED:
            return 0  # they went with it to the other pharmacy
        return rxstate.refills_left(self.refills_authorized, self.last_fill)

    @property
    def product(self) -> str:
        return f"{self.product_name} {self.strength}" if self.strength else self.product_name


RX_SORTS: dict[str, Callable[[], SortKey]] = {
    "rx_number": lambda: Prescription.rx_number,
    "created_at": lambda: Prescription.created_at,
    # the dispensing queue's order: oldest written first, then first received
    "date_written": lambda: (Prescription.date_written, Prescription.created_at),
    "patient": lambda: sa.func.lower(Patient.last_name + " " + Patient.first_name),
    "product": lambda: Product.name,
    "status": lambda: Prescription.status,
}


def _rx_query(f: PrescriptionFilter) -> Query:
    last_fill = (
        sa.select(sa.func.max(Dispense.fill_number))
        .where(Dispense.prescription_id == Prescription.id, Dispense.status != "returned")
        .correlate(Prescription).scalar_subquery()
    )
    q = (
        sa.select(
            Prescription.id, Prescription.rx_number, Prescription.patient_id,
            (Patient.last_name + ", " + Patient.first_name).label("patient"),
            Product.name, Product.strength, Product.schedule, Prescription.quantity,
            Prescription.refills_authorized, Prescription.date_written, Prescription.status,
            Prescription.owed_quantity,
            (Prescriber.first_name + " " + Prescriber.last_name).label("prescriber"),
            Prescription.created_at, last_fill, Prescription.version)
        .join(Patient, Patient.id == Prescription.patient_id)
        .join(Product, Product.id == Prescription.product_id)
        .join(Prescriber, Prescriber.id == Prescription.prescriber_id)
    )
    if f.statuses:
        q = q.where(Prescription.status.in_(f.statuses))
    if f.patient_id is not None:
        q = q.where(Prescription.patient_id == f.patient_id)
    if f.prescriber_id is not None:
        q = q.where(Prescription.prescriber_id == f.prescriber_id)
    text = f.search.strip()
    if text:
        number = text.lstrip("#").removeprefix("Rx").strip()
        if number.isdigit():
            q = q.where(Prescription.rx_number == int(number))
        else:
            frag = f"{_like_fragment(text.lower())}%"
            q = q.where(sa.or_(
                sa.func.lower(Patient.last_name).like(frag, escape="\\"),
                sa.func.lower(Patient.first_name).like(frag, escape="\\"),
                sa.func.lower(Product.name).like(frag, escape="\\")))
    return q


def list_prescriptions(
    sf: sessionmaker[Session],
    actor: Actor,
    f: PrescriptionFilter,
    *,
    sort: str = "created_at",
    descending: bool = True,
    after: After | None = None,
    limit: int = PAGE_SIZE,
) -> Page[PrescriptionRow]:
    require(actor, Perm.READ_PRESCRIPTIONS)
    if sort not in RX_SORTS:
        raise ValidationError(f"Prescriptions cannot be sorted by {sort}.")
    with db.quick_read(sf, custom_plan=True) as s:
        return _page(s, _rx_query(f), RX_SORTS[sort](), Prescription.id, descending, after,
                     limit, lambda r: PrescriptionRow(*r))


def prescription_rows(sf: sessionmaker[Session], actor: Actor, ids: Sequence[uuid.UUID],
                      f: PrescriptionFilter | None = None, *, sort: str = "created_at"
                      ) -> list[PrescriptionRow]:
    """Fresh copies of those of ``ids`` that match the filter ``f``."""
    require(actor, Perm.READ_PRESCRIPTIONS)
    with db.quick_read(sf, custom_plan=True) as s:
        q = _rx_query(f or PrescriptionFilter())
        return _matching(s, q, RX_SORTS.get(sort, RX_SORTS["created_at"])(), Prescription.id,
                         ids, lambda r: PrescriptionRow(*r))


# ------------------------------------------------------------ pickers (type-ahead)


@dataclasses.dataclass(frozen=True)
class Choice:
    id: uuid.UUID
    label: str
    detail: str = ""


def pick_patients(sf: sessionmaker[Session], actor: Actor, text: str, limit: int = 20
                  ) -> list[Choice]:
    page = list_patients(sf, actor, text, limit=limit)
    return [Choice(r.id, f"{r.last_name}, {r.first_name}",
                   f"born {r.date_of_birth:%Y-%m-%d}" + (f" · {r.phone}" if r.phone else ""))
            for r in page.rows]


def pick_products(sf: sessionmaker[Session], actor: Actor, text: str, limit: int = 20
                  ) -> list[Choice]:
    page = list_products(sf, actor, ProductFilter(search=text), limit=limit)
    from .identifiers import format_ndc

    return [Choice(r.id, " ".join(x for x in (r.name, r.strength, r.dosage_form) if x),
                   f"NDC {format_ndc(r.ndc)} · on hand {r.on_hand}"
                   + (f" · C-{r.schedule.value}" if r.schedule is not Schedule.NONE else ""))
            for r in page.rows]


def pick_prescribers(sf: sessionmaker[Session], actor: Actor, text: str, limit: int = 20
                     ) -> list[Choice]:
    require(actor, Perm.READ_PRESCRIBERS)
    with db.quick_read(sf, custom_plan=True) as s:
        q = sa.select(Prescriber).where(Prescriber.active.is_(True))
        if actor.role.value == "doctor" and actor.prescriber_id is not None:
            q = q.where(Prescriber.id == actor.prescriber_id)
        for tok in [t for t in re.split(r"[,\s]+", text.lower()) if t]:
            frag = f"{_like_fragment(tok)}%"
            q = q.where(sa.or_(sa.func.lower(Prescriber.last_name).like(frag, escape="\\"),
                               sa.func.lower(Prescriber.first_name).like(frag, escape="\\"),
                               Prescriber.npi.like(frag)))
        rows = s.scalars(q.order_by(Prescriber.last_name, Prescriber.first_name).limit(limit))
        return [Choice(p.id, p.display_name,
                       " · ".join(x for x in (f"NPI {p.npi}" if p.npi else "",
                                              "DEA on file" if p.dea_number else "no DEA") if x))
                for p in rows]

