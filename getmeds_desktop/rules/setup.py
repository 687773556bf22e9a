"""``setup``: the pharmacy a case starts from, read from the file and then
built through the services (staff, prescribers, products, patients, lots and
settings), as a pharmacy would enter them."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from ..enums import LotStatus, Role, Schedule, Severity, Sex
from ..services import catalog, clock, inventory, patients, settings, staff
from ..services.catalog import IngredientDraft, ProductDraft
from ..services.context import SYSTEM, Actor
from ..services.errors import DomainError
from ..services.identifiers import clean_dea, clean_npi, normalize_ndc, npi_check_digit
from ..services.patients import AllergyDraft, ConditionDraft, PatientDraft, PrescriberDraft
from . import vocabulary as v
from .yamlfile import YMap

# The staff member who receives the setup's lots (a stock movement records a
# person). Cases cannot act as them.
SETUP_USERNAME = "rules-setup"
# The setup's controlled stock is on hand at the start: received from a DEA
# registrant (21 CFR 1304.22(c)) and, for Schedule II, on an order form (21 CFR
# 1305), which the case does not name. A lot of the setup that names its
# supplier gets this DEA number when the supplier is made for it.
SETUP_SUPPLIER = "Opening stock (rules setup)"
SETUP_SUPPLIER_DEA = "PS1234563"
SETUP_ORDER_FORM = "opening stock"

# Values the format accepts that the app has nowhere to keep yet: read,
# checked, and ignored until the record supports them (docs/rules-format.md).
IGNORED: dict[str, str] = {}  # every key of this version is used

SETTINGS: dict[str, str] = {  # key -> type: the settings a case may set
    "pharmacy_name": "text", "address": "text", "phone": "text", "dea_number": "text",
    "npi": "text", "controlled_validity_months": "number", "rx_validity_months": "number",
    "early_refill_percent": "number", "controlled_early_refill_percent": "number",
    "geriatric_age": "number",
    "scan_required": "bool", "self_verify": "bool", "id_check_controlled": "bool",
    "return_after_days": "number", "discard_after_months": "number",
    "schedule_ii_max_days": "number", "schedule_ii_over_limit": "text",
}


@dataclasses.dataclass(frozen=True)
class StaffSpec:
    key: str
    role: Role
    full_name: str
    dea: str | None
    licence: str | None
    prescriber: str | None
    line: int
    also: Role | None = None  # an administrator's practice role


@dataclasses.dataclass(frozen=True)
class PrescriberSpec:
    key: str
    first: str
    last: str
    credentials: str | None
    dea: str | None
    npi: str | None
    licence: str | None
    line: int


@dataclasses.dataclass(frozen=True)
class ProductSpec:
    key: str
    name: str
    strength: str | None
    form: str | None
    ndc: str | None
    gtin: str | None
    schedule: Schedule
    ingredients: tuple[tuple[str, str | None], ...]
    classes: tuple[str, ...]
    unit: str
    line: int
    max_per_day: int | None = None
    reorder_level: int = 0  # reordered at or below this much dispensable stock


@dataclasses.dataclass(frozen=True)
class AllergySpec:
    name: str
    severity: Severity
    reaction: str | None


@dataclasses.dataclass(frozen=True)
class PatientSpec:
    key: str
    first: str
    last: str
    born: dt.date
    sex: Sex
    allergies: tuple[AllergySpec, ...] | None  # None: not asked (not told in the case)
    conditions: tuple[str, ...]
    line: int
    pregnant: bool = False
    breastfeeding: bool = False


@dataclasses.dataclass(frozen=True)
class LotSpec:
    product: str
    lot: str
    expiry: dt.date
    quantity: int
    status: LotStatus
    supplier: str | None
    line: int


@dataclasses.dataclass(frozen=True)
class Setup:
    staff: tuple[StaffSpec, ...] = ()
    prescribers: tuple[PrescriberSpec, ...] = ()
    products: tuple[ProductSpec, ...] = ()
    patients: tuple[PatientSpec, ...] = ()
    lots: tuple[LotSpec, ...] = ()
    settings: tuple[tuple[str, Any, int], ...] = ()
    ignored: tuple[str, ...] = ()  # what the case gave that the app cannot keep yet

    def product(self, key: str) -> ProductSpec | None:
        return next((p for p in self.products if p.key == key), None)


# ------------------------------------------------------------------- reading


def _service_check(check: Callable[[], Any], line: int, what: str) -> Any:
    """A value checked by the app's own validator (DEA and NPI check digits,
    NDC forms), so the case is told at load time with its line."""
    try:
        return check()
    except DomainError as exc:
        v.fail(f"{what}: {exc}", line)


def _names(full: str, line: int, what: str) -> tuple[str, str, str | None]:
    """'Ann Lee, MD' -> ('Ann', 'Lee', 'MD')."""
    words, _, credentials = full.partition(",")
    parts = words.split()
    if parts and parts[0].rstrip(".").lower() == "dr":
        parts = parts[1:]
    if len(parts) < 2:
        v.fail(f"{what}: name must give a first and a last name (such as 'Ann Lee'), not "
               f"{v.describe(full)}", line)
    return " ".join(parts[:-1]), parts[-1], credentials.strip() or None


def _entries(m: YMap, key: str, what: str) -> list[tuple[str, Any, int]]:
    """The entries of a keyed section: (name, value, line)."""
    if key not in m or m[key] is None:
        return []
    section = v.as_map(m[key], m.line_of(key), f"{what}: {key}")
    return [(v.key_name(name, section.line_of(name), f"{what}: {key}"), value,
             section.line_of(name)) for name, value in section.items()]


def read_setup(value: Any, line: int) -> Setup:
    if value is None:
        return Setup()
    m = v.as_map(value, line, "setup")
    v.check_keys(m, "setup", ("staff", "prescribers", "products", "patients", "lots",
                              "settings"))
    ignored: list[str] = []
    prescribers = tuple(_prescriber(*e) for e in _entries(m, "prescribers", "setup"))
    staff_ = tuple(_staff(*e) for e in _entries(m, "staff", "setup"))
    products = tuple(_product(*e, ignored) for e in _entries(m, "products", "setup"))
    patients_ = tuple(_patient(*e, ignored) for e in _entries(m, "patients", "setup"))
    known_prescribers = {p.key for p in prescribers}
    for s in staff_:
        if s.key == SETUP_USERNAME:
            v.fail(f"setup: staff: '{s.key}' is the name the runner uses for itself: choose "
                   "another", s.line)
        if s.role is Role.DOCTOR and s.prescriber is None:
            v.fail(f"setup: staff: {s.key}: a doctor needs 'prescriber: <a key of "
                   "prescribers>' (the prescriber record they write as)", s.line)
        if s.prescriber is not None and s.prescriber not in known_prescribers:
            v.fail(f"setup: staff: {s.key}: prescriber '{s.prescriber}' is not one of "
                   f"setup's prescribers{v.suggest(s.prescriber, known_prescribers)}", s.line)
    product_keys = {p.key for p in products}
    lots: list[LotSpec] = []
    if "lots" in m and m["lots"] is not None:
        items = v.as_list(m["lots"], m.line_of("lots"), "setup: lots")
        for i, item in enumerate(items):
            lot = _lot(item, items.line_of(i), product_keys)
            if any(x.product == lot.product and x.lot.upper() == lot.lot.upper() for x in lots):
                v.fail(f"setup: lots: lot {lot.lot} of {lot.product} is listed twice",
                       lot.line)
            lots.append(lot)
    return Setup(staff=staff_, prescribers=prescribers, products=products,
                 patients=patients_, lots=tuple(lots),
                 settings=_settings(m.get("settings"), m.line_of("settings")),
                 ignored=tuple(dict.fromkeys(ignored)))


def _staff(key: str, value: Any, line: int) -> StaffSpec:
    what = f"setup: staff: {key}"
    if isinstance(value, str):  # rph: pharmacist
        return StaffSpec(key, v.role(value, line, what), key, None, None, None, line)
    m = v.as_map(value, line, what)
    v.check_keys(m, what, ("role", "name", "dea", "licence", "prescriber", "also"),
                 required=("role",))
    dea = v.text(m, "dea", what, max_len=20)
    role = v.role(m["role"], m.line_of("role"), what)
    also = v.role(m["also"], m.line_of("also"), what) if m.get("also") is not None else None
    if also is not None and (role is not Role.ADMIN or also not in (
            Role.PHARMACIST, Role.TECHNICIAN, Role.CLERK)):
        v.fail(f"{what}: 'also' is an administrator's practice role (pharmacist, technician "
               "or clerk)", m.line_of("also"))
    return StaffSpec(
        key, role,
        v.text(m, "name", what, default=key, max_len=200) or key,
        _service_check(lambda: clean_dea(dea), m.line_of("dea"), what) if dea else None,
        v.text(m, "licence", what, max_len=64), v.text(m, "prescriber", what, max_len=40),
        line, also)


def _prescriber(key: str, value: Any, line: int) -> PrescriberSpec:
    what = f"setup: prescribers: {key}"
    m = v.as_map(value, line, what)
    v.check_keys(m, what, ("name", "dea", "npi", "licence", "credentials"), required=("name",))
    first, last, creds = _names(v.required_text(m, "name", what, max_len=200),
                                m.line_of("name"), what)
    dea = v.text(m, "dea", what, max_len=20)
    npi = v.text(m, "npi", what, max_len=20)
    return PrescriberSpec(
        key, first, last, v.text(m, "credentials", what, max_len=20) or creds,
        _service_check(lambda: clean_dea(dea), m.line_of("dea"), what) if dea else None,
        _service_check(lambda: clean_npi(npi), m.line_of("npi"), what) if npi else None,
        v.text(m, "licence", what, max_len=64), line)


def _product(key: str, value: Any, line: int, ignored: list[str]) -> ProductSpec:
    what = f"setup: products: {key}"
    m = v.as_map(value, line, what)
    v.check_keys(m, what, ("name", "strength", "form", "ndc", "gtin", "schedule",
                           "ingredients", "classes", "max_per_day", "unit", "reorder_level"),
                 required=("name",))
    name = v.required_text(m, "name", what, max_len=200)
    ndc = v.text(m, "ndc", what, max_len=20)
    max_per_day = (v.number(m, "max_per_day", what, minimum=1, maximum=100_000)
                   if m.get("max_per_day") is not None else None)
    ingredients: list[tuple[str, str | None]] = []
    if "ingredients" in m and m["ingredients"] is not None:
        items = v.as_list(m["ingredients"], m.line_of("ingredients"), f"{what}: ingredients")
        for i, item in enumerate(items):
            at = items.line_of(i)
            if isinstance(item, str) and item.strip():
                ingredients.append((item.strip(), None))
                continue
            im = v.as_map(item, at, f"{what}: an ingredient")
            v.check_keys(im, f"{what}: ingredient", ("name", "strength"), required=("name",))
            ingredients.append((v.required_text(im, "name", f"{what}: ingredient"),
                                v.text(im, "strength", f"{what}: ingredient", max_len=100)))
    return ProductSpec(
        key, name, v.text(m, "strength", what, max_len=100), v.text(m, "form", what, max_len=80),
        _service_check(lambda: normalize_ndc(ndc), m.line_of("ndc"), what) if ndc else None,
        v.text(m, "gtin", what, max_len=14),
        v.schedule(m["schedule"], m.line_of("schedule"), what)
        if m.get("schedule") is not None else Schedule.NONE,
        tuple(ingredients) or ((name, None),), v.text_list(m, "classes", what) or (),
        v.text(m, "unit", what, default="each", max_len=30) or "each", line, max_per_day,
        v.number(m, "reorder_level", what, minimum=0, maximum=10_000_000) or 0)


def _patient(key: str, value: Any, line: int, ignored: list[str]) -> PatientSpec:
    what = f"setup: patients: {key}"
    m = v.as_map(value, line, what)
    v.check_keys(m, what, ("name", "born", "sex", "allergies", "conditions", "pregnant",
                           "breastfeeding"), required=("name", "born"))
    first, last, _ = _names(v.required_text(m, "name", what, max_len=200), m.line_of("name"),
                            what)
    flags = {flag: bool(v.boolean(m, flag, what)) for flag in ("pregnant", "breastfeeding")}
    allergies: tuple[AllergySpec, ...] | None = None
    if "allergies" in m:
        if m["allergies"] is None:
            v.fail(f"{what}: 'allergies' is empty: write 'allergies: []' for no known "
                   "allergies, or leave the key out when they were not asked",
                   m.line_of("allergies"))
        items = v.as_list(m["allergies"], m.line_of("allergies"), f"{what}: allergies")
        found: list[AllergySpec] = []
        for i, item in enumerate(items):
            at = items.line_of(i)
            if isinstance(item, str) and item.strip():
                found.append(AllergySpec(item.strip(), Severity.UNKNOWN, None))
                continue
            am = v.as_map(item, at, f"{what}: an allergy")
            v.check_keys(am, f"{what}: allergy", ("name", "severity", "reaction"),
                         required=("name",))
            found.append(AllergySpec(
                v.required_text(am, "name", f"{what}: allergy", max_len=120),
                v.severity(am["severity"], am.line_of("severity"), f"{what}: allergy")
                if am.get("severity") is not None else Severity.UNKNOWN,
                v.text(am, "reaction", f"{what}: allergy", max_len=200)))
        allergies = tuple(found)
    return PatientSpec(
        key, first, last, v.a_date(m["born"], m.line_of("born"), f"{what}: 'born'"),
        v.sex(m["sex"], m.line_of("sex"), what) if m.get("sex") is not None else Sex.UNKNOWN,
        allergies, v.text_list(m, "conditions", what) or (), line, **flags)


def _lot(value: Any, line: int, products: set[str]) -> LotSpec:
    what = "setup: lots"
    m = v.as_map(value, line, "setup: each lot")
    v.check_keys(m, what, ("product", "lot", "expiry", "quantity", "status", "supplier"),
                 required=("product", "lot", "expiry", "quantity"))
    product = v.required_text(m, "product", what, max_len=40)
    if product not in products:
        v.fail(f"{what}: product '{product}' is not one of setup's products"
               f"{v.suggest(product, products)}", m.line_of("product"))
    status = v.choice(m, "status", what, [s.value for s in LotStatus],
                      default=LotStatus.AVAILABLE.value)
    expiry = v.date(m, "expiry", what)
    quantity = v.number(m, "quantity", what, minimum=1, maximum=1_000_000)
    assert expiry is not None and quantity is not None and status is not None
    return LotSpec(product, v.required_text(m, "lot", what, max_len=40), expiry, quantity,
                   LotStatus(status), v.text(m, "supplier", what, max_len=200), line)


def _settings(value: Any, line: int) -> tuple[tuple[str, Any, int], ...]:
    if value is None:
        return ()
    m = v.as_map(value, line, "setup: settings")
    v.check_keys(m, "setup: settings", SETTINGS)
    out: list[tuple[str, Any, int]] = []
    for key, raw in m.items():
        at = m.line_of(key)
        kind = SETTINGS[key]
        if kind == "number":
            out.append((key, v.whole(raw, at, f"setup: settings: {key}"), at))
        elif kind == "bool":
            out.append((key, v.a_bool(raw, at, f"setup: settings: {key}"), at))
        else:
            out.append((key, v.text(m, key, "setup: settings", max_len=300), at))
    return tuple(out)


# ------------------------------------------------------------------ building


class SetupFailed(Exception):
    """The app refused part of the setup (``what`` names it)."""

    def __init__(self, what: str, message: str) -> None:
        super().__init__(f"{what}: {message}")
        self.what = what
        self.message = message


@dataclasses.dataclass
class World:
    """The case's pharmacy while it runs: the records by the case's names."""

    sf: sessionmaker[Session]
    now: dt.datetime
    setup_actor: Actor
    staff: dict[str, Actor] = dataclasses.field(default_factory=dict)
    prescribers: dict[str, uuid.UUID] = dataclasses.field(default_factory=dict)
    products: dict[str, catalog.ProductInfo] = dataclasses.field(default_factory=dict)
    patients: dict[str, uuid.UUID] = dataclasses.field(default_factory=dict)
    lots: dict[tuple[str, str], uuid.UUID] = dataclasses.field(default_factory=dict)
    suppliers: dict[str, uuid.UUID] = dataclasses.field(default_factory=dict)
    rx: dict[str, uuid.UUID] = dataclasses.field(default_factory=dict)

    def supplier(self, name: str, dea: str | None = None) -> uuid.UUID:
        """The supplier of that name, made on first use (with ``dea``, its DEA
        registration number)."""
        if name.lower() not in self.suppliers:
            info = catalog.create_supplier(self.sf, SYSTEM, name=name, dea_number=dea)
            self.suppliers[name.lower()] = info.id
        return self.suppliers[name.lower()]

    def lot(self, product: str, lot: str) -> uuid.UUID | None:
        return self.lots.get((product, lot.upper()))


def noon(day: dt.date) -> dt.datetime:
    """Noon of ``day`` on this workstation's clock, as aware UTC."""
    return dt.datetime.combine(day, dt.time(12)).astimezone(dt.UTC)


_NPI_BASE = 123456780  # generated NPIs for prescribers without one: 9 digits + check


def generated_npi(n: int) -> str:
    base = str(_NPI_BASE + n)[-9:]
    return base + npi_check_digit(base)


@contextlib.contextmanager
def _making(what: str, at: dt.datetime) -> Iterator[None]:
    """Run the block on the clock ``at``; a refusal of the app names ``what``."""
    try:
        with clock.travel(at):
            yield
    except DomainError as exc:
        raise SetupFailed(what, str(exc)) from None


def build(sf: sessionmaker[Session], setup: Setup, today: dt.date) -> World:
    """Make the setup's records through the services, on the case's day."""
    now = noon(today)
    with _making("the runner's own staff member", now):
        staff.create_staff(sf, SYSTEM, username=SETUP_USERNAME, full_name="Rules Setup",
                           role=Role.ADMIN)
        world = World(sf, now, staff.actor_for_username(sf, SETUP_USERNAME))
    if setup.settings:
        with _making("settings", now):
            settings.update_settings(sf, SYSTEM, {k: value for k, value, _ in setup.settings})
    for n, p in enumerate(setup.prescribers):
        with _making(f"prescriber {p.key}", now):
            world.prescribers[p.key] = patients.create_prescriber(sf, SYSTEM, PrescriberDraft(
                first_name=p.first, last_name=p.last, credentials=p.credentials,
                npi=p.npi or (None if p.licence else generated_npi(n)),
                licence_number=p.licence, dea_number=p.dea)).id
    for s in setup.staff:
        with _making(f"staff {s.key}", now):
            staff.create_staff(
                sf, SYSTEM, username=s.key.lower(), full_name=s.full_name, role=s.role,
                licence_number=s.licence, dea_number=s.dea,
                prescriber_id=world.prescribers[s.prescriber] if s.prescriber else None,
                practice_role=s.also)
            world.staff[s.key] = staff.actor_for_username(sf, s.key.lower())
    for product in setup.products:
        with _making(f"product {product.key}", now):
            world.products[product.key] = catalog.create_product(sf, SYSTEM, ProductDraft(
                name=product.name, strength=product.strength, dosage_form=product.form,
                ndc=product.ndc, gtin=product.gtin, schedule=product.schedule,
                unit=product.unit, max_units_per_day=product.max_per_day,
                reorder_level=product.reorder_level,
                ingredients=[IngredientDraft(i, st) for i, st in product.ingredients],
                drug_classes=product.classes))
    for pt in setup.patients:
        with _making(f"patient {pt.key}", now):
            world.patients[pt.key] = patients.create_patient(sf, SYSTEM, PatientDraft(
                first_name=pt.first, last_name=pt.last, date_of_birth=pt.born, sex=pt.sex,
                allergies=[AllergyDraft(a.name, a.reaction, a.severity)
                           for a in pt.allergies or ()],
                no_known_allergies=pt.allergies == (), pregnant=pt.pregnant,
                breastfeeding=pt.breastfeeding,
                conditions=[ConditionDraft(c) for c in pt.conditions])).id
    for lot in setup.lots:
        # stock cannot be received expired: a lot that has expired by the
        # case's day was received on its last good day
        with _making(f"lot {lot.lot} of {lot.product}", noon(min(today, lot.expiry))):
            schedule = world.products[lot.product].schedule
            dea = SETUP_SUPPLIER_DEA if schedule.controlled else None
            name = lot.supplier or (SETUP_SUPPLIER if schedule.controlled else None)
            supplier = world.supplier(name, dea) if name else None
            moved = inventory.receive_stock(sf, world.setup_actor, inventory.ReceiptRequest(
                product_id=world.products[lot.product].id, lot_number=lot.lot,
                expiry_date=lot.expiry, quantity=lot.quantity, supplier_id=supplier,
                invoice_ref="setup",
                order_form=SETUP_ORDER_FORM if schedule is Schedule.II else None))
            world.lots[(lot.product, lot.lot.upper())] = moved.lot_id
            if lot.status is not LotStatus.AVAILABLE:
                inventory.set_lot_status(sf, world.setup_actor, moved.lot_id, lot.status,
                                         f"{lot.status.value} in the case's setup")
    return world


__all__ = ["IGNORED", "SETUP_USERNAME", "Setup", "SetupFailed", "World", "build", "noon",
           "read_setup"]
