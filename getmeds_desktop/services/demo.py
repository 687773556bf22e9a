"""A realistic, deterministic demo pharmacy (``getmeds-admin demo seed``, ``getmeds --demo``,
the benchmarks).

Real generic drugs and strengths, controlled products of every schedule, lots
from already expired to three years out, products below their reorder level,
patients with allergies and conditions, prescriptions in every status and a
dispense history over the last 90 days. The same seed gives the same data.

Bulk rows go in with COPY on PostgreSQL (executemany on SQLite) in one
transaction, through the same triggers as everything else: the stock caches,
the controlled register and the audit trail are maintained by the database.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import random
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from .. import db
from .. import screening as sc
from ..models import (
    AppSettings,
    Category,
    Dispense,
    Patient,
    PatientAllergy,
    PatientCondition,
    PatientFeedback,
    Prescriber,
    Prescription,
    PrescriptionTransfer,
    Product,
    ProductDrugClass,
    ProductIngredient,
    Role,
    Schedule,
    Staff,
    StaffCredential,
    StockLot,
    Supplier,
    table_of,
)
from ..models.prescriptions import RX_NUMBER_START
from . import clock, ledger, rxstate
from .demo_data import (
    ALLERGENS,
    CITIES,
    CONDITIONS,
    DRUGS,
    FIRST_NAMES_F,
    FIRST_NAMES_M,
    LAST_NAMES,
    MANUFACTURERS,
    PACK_SIZES,
    REFRIGERATED,
    SIGS,
    STREETS,
    SUPPLIERS,
)
from .errors import DomainError
from .identifiers import dea_check_digit, npi_check_digit

# Made-up pharmacies that demo prescriptions were transferred to (valid-looking
# DEA numbers: their check digit is right).
OTHER_PHARMACIES = (
    ("Elm Street Pharmacy", "4 Elm Street, Springfield", "BE1234563", "Jo Park, RPh"),
    ("Oak Road Drugs", "9 Oak Road, Riverton", "FM2345672", "Lee Wong, RPh"),
    ("Harbor Apothecary", "21 Harbor Way, Bayport", "AP7654329", "Sam Ortiz, PharmD"),
)
DEMO_PASSWORD = "getmeds-demo-1"
# (username, role, full name); every demo account uses DEMO_PASSWORD.
DEMO_ACCOUNTS = (
    ("admin", Role.ADMIN, "Alex Morgan"),
    ("pharmacist", Role.PHARMACIST, "Priya Shah"),
    ("pharmacist2", Role.PHARMACIST, "Tom Becker"),
    ("technician", Role.TECHNICIAN, "Sam Ortiz"),
    ("clerk", Role.CLERK, "Carla Diaz"),
    ("doctor", Role.DOCTOR, "Dana Whitfield"),
)
SEED_ACTOR = "demo-seed"

ProgressFn = Callable[[str, float], None]


@dataclasses.dataclass(frozen=True)
class SeedSummary:
    staff: int
    prescribers: int
    products: int
    lots: int
    patients: int
    prescriptions: int
    dispenses: int
    seconds: float


def _dea(rng: random.Random, initial: str, kind: str = "B") -> str:
    six = "".join(str(rng.randint(0, 9)) for _ in range(6))
    return f"{kind}{initial.upper()}{six}{dea_check_digit(six)}"


def _npi(rng: random.Random) -> str:
    base = "1" + "".join(str(rng.randint(0, 9)) for _ in range(8))
    return base + npi_check_digit(base)


def _gtin_for_ndc10(ndc10: str) -> str:
    body = "003" + ndc10  # indicator 0, GS1 prefix 03 for NDC-based codes
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(body))
    return body + str((10 - total % 10) % 10)


def _split_ingredients(name: str, strength: str) -> list[tuple[str, str | None]]:
    parts = [p.strip() for p in name.replace(", ", " and ").split(" and ") if p.strip()]
    strengths = [s.strip() for s in strength.split("/")] if "/" in strength else [strength]
    if len(parts) == 1:
        return [(parts[0], strength)]
    if len(strengths) == len(parts):
        return list(zip(parts, strengths, strict=True))
    return [(p, None) for p in parts]


def _uuid(rng: random.Random) -> uuid.UUID:
    return uuid.UUID(int=rng.getrandbits(128), version=4)


def seed_demo(
    engine: Engine,
    *,
    products: int = 600,
    patients: int = 400,
    prescriptions: int = 500,
    lots_per_product: float = 1.6,
    history_days: int = 90,
    seed: int = 1,
    progress: ProgressFn | None = None,
) -> SeedSummary:
    """Fill an empty (migrated) database with the demo pharmacy."""
    for label, n in (("products", products), ("patients", patients),
                     ("prescriptions", prescriptions)):
        if n < 0:
            raise DomainError(f"The number of {label} cannot be negative.")
    if prescriptions and (not products or not patients):
        raise DomainError("Prescriptions need at least one product and one patient.")
    started = time.perf_counter()
    report = progress or (lambda _msg, _frac: None)
    rng = random.Random(seed)
    now = clock.now().replace(microsecond=0)
    today = clock.local(now).date()

    with engine.connect() as conn:
        conn = conn.execution_options(**{db.IMMEDIATE: True})
        with conn.begin():
            if conn.scalar(sa.select(sa.func.count()).select_from(Product)) or conn.scalar(
                    sa.select(sa.func.count()).select_from(Staff)):
                raise DomainError(
                    "This database already holds data; demo data goes only into an empty "
                    "database.")
            _set_actor(conn)
            summary = _seed(conn, rng, now, today, products, patients, prescriptions,
                            lots_per_product, report, history_days)
    return dataclasses.replace(summary, seconds=round(time.perf_counter() - started, 2))


def _set_actor(conn: sa.Connection) -> None:
    if conn.dialect.name == "sqlite":
        holder = conn.connection.info.get("actor_holder")
        if holder is not None:
            holder["actor"] = SEED_ACTOR
    else:
        conn.execute(sa.text("SELECT set_config('getmeds.actor', :u, true)"), {"u": SEED_ACTOR})


def _seed(conn: sa.Connection, rng: random.Random, now: dt.datetime,
          today: dt.date, n_products: int, n_patients: int, n_rx: int, lots_per_product: float,
          report: Callable[[str, float], None], history_days: int = 90) -> SeedSummary:
    def write(table: sa.Table, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
        return db.bulk_insert(conn, table, columns, rows)

    from .staff import _hasher

    report("Pharmacy settings", 0.0)
    conn.execute(sa.update(AppSettings).where(AppSettings.id == 1).values(
        pharmacy_name="GetMeds Demo Pharmacy",
        address="120 Main Street, Springfield, IL 62701",
        phone="(217) 555-0142",
        dea_number=_dea(rng, "G", "B"),
        npi=_npi(rng),
        updated_by=SEED_ACTOR,
        updated_at=now,
        version=AppSettings.version + 1,
    ))

    # Categories and suppliers -------------------------------------------------
    cat_ids: dict[str, uuid.UUID] = {}
    for drug in DRUGS:
        cat_ids.setdefault(drug[4], _uuid(rng))
    write(table_of(Category), ("id", "name"), ((v, k) for k, v in sorted(cat_ids.items())))
    supplier_ids = [_uuid(rng) for _ in SUPPLIERS]
    write(table_of(Supplier), (
        "id", "name", "dea_number", "phone", "active", "created_at", "updated_at", "updated_by",
        "version"), (
        (sid, name, dea, f"(800) 555-{1000 + i:04d}", True, now, now, SEED_ACTOR, 1)
        for i, (sid, (name, dea)) in enumerate(zip(supplier_ids, SUPPLIERS, strict=True))))

    # Prescribers and staff ---------------------------------------------------
    report("Prescribers and staff", 0.05)
    prescriber_rows: list[tuple[Any, ...]] = []
    for _ in range(40):
        female = rng.random() < 0.5
        first = rng.choice(FIRST_NAMES_F if female else FIRST_NAMES_M)
        last = rng.choice(LAST_NAMES)
        cred = rng.choice(("MD", "MD", "MD", "DO", "NP", "PA"))
        has_dea = cred in ("MD", "DO") or rng.random() < 0.5
        city, state, zip3 = rng.choice(CITIES)
        prescriber_rows.append((
            _uuid(rng), first, last, cred, _npi(rng), f"{state}-{rng.randint(10000, 99999)}",
            _dea(rng, last[0], "F" if cred in ("NP", "PA") else "B") if has_dea else None,
            f"({rng.randint(201, 989)}) 555-{rng.randint(1000, 9999)}",
            f"{rng.randint(10, 999)} {rng.choice(STREETS)}, {city}, {state}", True,
            now, now, SEED_ACTOR, 1))
    # The staff doctor is one of them.
    doc = list(prescriber_rows[0])
    doc[1], doc[2], doc[3] = "Dana", "Whitfield", "MD"
    doc[6] = _dea(rng, "W", "B")
    prescriber_rows[0] = tuple(doc)
    write(table_of(Prescriber), (
        "id", "first_name", "last_name", "credentials", "npi", "licence_number", "dea_number",
        "phone", "address", "active", "created_at", "updated_at", "updated_by", "version"),
        prescriber_rows)
    prescribers = [(r[0], r[6] is not None) for r in prescriber_rows]

    password_hash = _hasher.hash(DEMO_PASSWORD)
    staff_ids: dict[str, uuid.UUID] = {}
    staff_rows, cred_rows = [], []
    for username, role, full in DEMO_ACCOUNTS:
        sid = _uuid(rng)
        staff_ids[username] = sid
        staff_rows.append((
            sid, username, full, role.value,
            f"RPH-{rng.randint(10000, 99999)}" if role is Role.PHARMACIST else (
                "MD-48213" if role is Role.DOCTOR else None),
            doc[6] if role is Role.DOCTOR else None,
            doc[0] if role is Role.DOCTOR else None, True, now, now, SEED_ACTOR, 1,
            # the demo's owner manages the pharmacy and works in it as a pharmacist
            Role.PHARMACIST.value if role is Role.ADMIN else None))
        cred_rows.append((sid, password_hash, False, now))
    write(table_of(Staff), (
        "id", "username", "full_name", "role", "licence_number", "dea_number", "prescriber_id",
        "active", "created_at", "updated_at", "updated_by", "version", "practice_role"),
        staff_rows)
    write(table_of(StaffCredential), ("staff_id", "password_hash", "must_change",
                                           "changed_at"), cred_rows)
    pharmacists = [staff_ids["pharmacist"], staff_ids["pharmacist2"]]
    fillers = [*pharmacists, staff_ids["technician"]]

    # Products ----------------------------------------------------------------
    report("Products", 0.1)
    combos = [(di, si) for di, d in enumerate(DRUGS) for si in range(len(d[1]))]
    ingredient_rows: list[tuple[Any, ...]] = []
    class_rows: list[tuple[Any, ...]] = []
    product_meta: list[tuple[uuid.UUID, int, int, int, float, str]] = []
    # (id, drug index, pack size, reorder level, unit cost, schedule)

    def product_rows() -> Iterable[tuple[Any, ...]]:
        # A generator: COPY streams each row while the next is made (2 cores).
        round_ = 0
        while True:
            for pack_i, pack in enumerate(PACK_SIZES):
                for mfr_i, mfr in enumerate(MANUFACTURERS):
                    for di, si in combos:
                        if len(product_meta) >= n_products:
                            return
                        (name, strengths, form, route, cat, classes, sched, unit, cost, _q,
                         _d) = DRUGS[di]
                        if pack >= 500 and unit not in ("tablet", "capsule"):
                            continue  # no 1000-pen packs
                        labeler = 10000 + round_ * 100 + mfr_i
                        ndc10 = f"{labeler:05d}{di * 10 + si:04d}{pack_i + 1}"
                        ndc11 = f"{labeler:05d}{di * 10 + si:04d}0{pack_i + 1}"
                        pid = _uuid(rng)
                        level = rng.choice((0, 10, 20, 30, 50, 100))
                        reorder_qty = max(level * 2, pack)
                        price = decimal.Decimal(str(round(cost * 1.8 + 0.05, 2)))
                        for pos, (ing, st) in enumerate(_split_ingredients(name, strengths[si])):
                            ingredient_rows.append((_uuid(rng), pid, pos, ing, st))
                        for c in classes:
                            class_rows.append((pid, c))
                        product_meta.append((pid, di, pack, level, cost, sched))
                        yield (pid, name, strengths[si], form, route, ndc11,
                               _gtin_for_ndc10(ndc10), mfr, cat_ids[cat],
                               "refrigerated" if name in REFRIGERATED else "room", sched, unit,
                               pack, level, reorder_qty, price, True, now, now, SEED_ACTOR, 1)
            round_ += 1

    write(table_of(Product), (
        "id", "name", "strength", "dosage_form", "route", "ndc", "gtin", "manufacturer",
        "category_id", "storage", "schedule", "unit", "pack_size", "reorder_level",
        "reorder_quantity", "unit_price", "active", "created_at", "updated_at", "updated_by",
        "version"), product_rows())
    write(table_of(ProductIngredient), ("id", "product_id", "position", "name", "strength"),
               ingredient_rows)
    write(table_of(ProductDrugClass), ("product_id", "name"), class_rows)

    # Lots and receipts --------------------------------------------------------
    report("Stock lots", 0.3)
    # product -> [lot id, expiry, balance, received, status]
    lots: dict[uuid.UUID, list[list[Any]]] = {}
    lot_rows: list[tuple[Any, ...]] = []
    events: list[tuple[dt.datetime, int, tuple[Any, ...]]] = []  # (time, order, movement)
    for pid, _di, pack, level, cost, _sched in product_meta:
        k = int(lots_per_product) + (1 if rng.random() < lots_per_product % 1 else 0)
        low = level > 0 and rng.random() < 0.12  # deliberately below reorder level
        for n in range(k):
            lid = _uuid(rng)
            expiry = today + dt.timedelta(days=rng.randint(-60, 1095))
            received = now - dt.timedelta(days=rng.randint(95, max(400, history_days + 60)),
                                          minutes=rng.randint(0, 600))
            if expiry <= received.date():
                received = now - dt.timedelta(days=rng.randint(100, 130))
                expiry = received.date() + dt.timedelta(days=rng.randint(30, 60))
            qty = max(level // 3, 1) if low else pack * rng.randint(1, 4)
            qty = min(qty, 5000)
            r = rng.random()
            status = "quarantined" if r < 0.015 else ("recalled" if r < 0.025 else "available")
            unit_cost = decimal.Decimal(str(round(cost * rng.uniform(0.85, 1.15), 4)))
            lot_no = f"{rng.choice('ABCDEFGHJKLMNPRSTUVWXYZ')}{rng.randint(10000, 99999)}"
            if any(x[5] == lot_no for x in lots.get(pid, [])):
                lot_no += str(n)
            supplier = rng.choice(supplier_ids)
            lot = [lid, expiry, qty, received, status, lot_no]
            lot_rows.append((lot, pid, lot_no, expiry, status,
                             "Manufacturer recall" if status == "recalled" else (
                                 "Damaged packaging" if status == "quarantined" else None),
                             received, supplier, unit_cost, now, now, SEED_ACTOR, 1))
            lots.setdefault(pid, []).append(lot)
            events.append((received, 0, (
                _uuid(rng), lid, "receipt", qty, None, f"INV-{rng.randint(100000, 999999)}",
                rng.choice(pharmacists), received, None, supplier, None, None)))
    # Patients ----------------------------------------------------------------
    report("Patients", 0.45)
    allergy_rows: list[tuple[Any, ...]] = []
    condition_rows: list[tuple[Any, ...]] = []
    patient_allergies: dict[uuid.UUID, list[str]] = {}
    patient_ids: list[uuid.UUID] = []

    def patient_rows() -> Iterable[tuple[Any, ...]]:
        for n in range(n_patients):
            pid = _uuid(rng)
            female = rng.random() < 0.52
            first = rng.choice(FIRST_NAMES_F if female else FIRST_NAMES_M)
            last = rng.choice(LAST_NAMES)
            dob = today - dt.timedelta(days=rng.randint(0, 95 * 365))
            city, state, zip3 = rng.choice(CITIES)
            patient_ids.append(pid)
            # asked about allergies: listed, or "no known allergies"; a few records
            # never were (the screening says so at every fill)
            status = "no_known_allergies" if rng.random() < 0.97 else "not_asked"
            if rng.random() < 0.2:
                status = "recorded"
                chosen = rng.sample(ALLERGENS, rng.randint(1, 2))
                patient_allergies[pid] = [a for a, _ in chosen]
                for allergen, reaction in chosen:
                    allergy_rows.append((_uuid(rng), pid, allergen, reaction,
                                         rng.choice(("mild", "moderate", "severe")), now))
            if rng.random() < 0.4:
                for cond in rng.sample(CONDITIONS, rng.randint(1, 3)):
                    condition_rows.append((_uuid(rng), pid, cond, None, now))
            yield (
                pid, first, last, dob, "female" if female else "male",
                f"({rng.randint(201, 989)}) 555-{rng.randint(1000, 9999)}",
                f"{first.lower()}.{last.lower().replace(chr(39), '')}{n}@example.com"
                if rng.random() < 0.6 else None,
                f"{rng.randint(1, 9999)} {rng.choice(STREETS)}", city, state,
                f"{zip3}{rng.randint(0, 99):02d}", None, True, status,
                None if status == "not_asked" else SEED_ACTOR,
                None if status == "not_asked" else now, now, now, SEED_ACTOR, 1)

    write(table_of(Patient), (
        "id", "first_name", "last_name", "date_of_birth", "sex", "phone", "email",
        "address_line", "city", "state", "postal_code", "notes", "active", "allergy_status",
        "allergy_status_by", "allergy_status_at", "created_at", "updated_at", "updated_by",
        "version"), patient_rows())
    write(table_of(PatientAllergy), ("id", "patient_id", "allergen", "reaction", "severity",
                                          "recorded_at"), allergy_rows)
    write(table_of(PatientCondition), ("id", "patient_id", "name", "notes", "recorded_at"),
               condition_rows)

    # Prescriptions and dispense history --------------------------------------
    report("Prescriptions and dispense history", 0.6)
    rx_rows, dispense_rows = [], []
    stocked = [m for m in product_meta if m[0] in lots]
    controlled_prescribers = [p for p, has_dea in prescribers if has_dea]
    statuses = (["new"] * 15 + ["in_progress"] * 8 + ["ready_for_check"] * 7 + ["on_hold"] * 4
                + ["cancelled"] * 5 + ["partially_dispensed"] * 5 + ["dispensed"] * 56
                + ["transferred"] * 3)
    transfer_rows = []  # prescriptions transferred out to other pharmacies
    rx_number = RX_NUMBER_START
    creators = [staff_ids["clerk"], staff_ids["pharmacist"], staff_ids["pharmacist2"]]
    for _ in range(n_rx if stocked else 0):
        pid, di, pack, _level, _cost, sched = rng.choice(stocked)
        drug = DRUGS[di]
        patient = rng.choice(patient_ids)
        allergies = patient_allergies.get(patient, [])
        ing_names = [x for x, _ in _split_ingredients(drug[0], drug[1][0])]
        screened = sc.Product(drug[0], ingredients=tuple(sc.Ingredient(x) for x in ing_names),
                              classes=tuple(drug[5]))
        if any(sc.allergy_match(a, screened) for a in allergies):
            patient = rng.choice(patient_ids)  # keep the history free of allergy clashes
        controlled = sched != "none"
        prescriber = (rng.choice(controlled_prescribers) if controlled
                      else rng.choice(prescribers)[0])
        status = rng.choice(statuses)
        if status == "transferred" and sched == "II":
            status = "new"  # Schedule II goes only unfilled and electronic (1306.08(e))
        refills = 0 if sched == "II" else rng.choice((0, 0, 1, 2, 3, 5))
        if status == "transferred":
            refills = max(refills, 2)  # filled once here, the rest went elsewhere
        qty, days = drug[9], drug[10]
        written = today - dt.timedelta(days=rng.randint(0, 30) if status in (
            "new", "in_progress", "ready_for_check") else rng.randint(5, history_days + 20))
        route = drug[3]
        sig_kind = ("tablet" if drug[7] == "tablet" else "capsule" if drug[7] == "capsule"
                    else route if route in SIGS else "injection" if route in (
                        "subcutaneous", "intramuscular") else "other")
        rid = _uuid(rng)
        owed = 0
        fills_made = 0
        if status in ("dispensed", "partially_dispensed", "on_hold", "cancelled",
                      "transferred"):
            fill_time = dt.datetime.combine(written, dt.time(9), tzinfo=dt.UTC) + dt.timedelta(
                days=rng.randint(0, 2), hours=rng.randint(0, 9), minutes=rng.randint(0, 59))
            max_fills = refills + 1 if status == "dispensed" else 1  # transferred: one here
            if status in ("on_hold", "cancelled") and rng.random() < 0.6:
                max_fills = 0
            expires = clock.add_months(written, rxstate.validity_months(
                Schedule(sched), rx_months=12, controlled_months=6))  # the default settings
            for fill in range(max_fills):
                if fill_time >= now - dt.timedelta(minutes=5) or fill_time.date() > expires:
                    break
                wanted = qty
                alloc, got = _fefo(lots[pid], wanted, fill_time)
                if got == 0:
                    break
                partial = status == "partially_dispensed" and fill == 0
                if partial and got >= wanted:
                    got = max(wanted // 2, 1)
                    alloc, got = _fefo(lots[pid], got, fill_time)
                if got < wanted and not partial:
                    break  # history keeps only complete fills otherwise
                for picked, take in alloc:
                    picked[2] -= take
                did = _uuid(rng)
                pharmacist = rng.choice(fillers)
                dispense_rows.append((did, rid, fill, 1, got, wanted - got, days, pharmacist,
                                      fill_time, _uuid(rng), None))
                for picked, take in alloc:
                    events.append((fill_time, 1, (
                        _uuid(rng), picked[0], "dispense", -take, None, f"Rx {rx_number}",
                        pharmacist, fill_time, did, None, None, None)))
                fills_made += 1
                owed = wanted - got
                if owed:
                    break
                fill_time += dt.timedelta(days=days, hours=rng.randint(-12, 12))
            if status == "dispensed" and fills_made == 0:
                status = "new"
            if status == "partially_dispensed" and not owed:
                status = "dispensed" if fills_made else "new"
            if status == "transferred" and not fills_made:
                status = "new"
            elif status == "transferred" and now - dispense_rows[-1][8] < dt.timedelta(days=6):
                status = "dispensed"  # its fill may still wait: it goes only once handed out
        notes = ("Waiting for insurance approval" if status == "on_hold" else (
            "Cancelled at the prescriber's request" if status == "cancelled" else None))
        if status == "transferred":
            name, address, dea, rph = rng.choice(OTHER_PHARMACIES)
            notes = f"Transferred out to {name}, {address}, DEA {dea}; received by {rph}"
            moved = min(dispense_rows[-1][8] + dt.timedelta(days=rng.randint(3, 20)),
                        now - dt.timedelta(hours=1))
            transfer_rows.append((_uuid(rng), rid, "out", name, address, dea, rph,
                                  staff_ids["pharmacist"], moved, _uuid(rng)))
        sig = rng.choice(SIGS[sig_kind])
        daw = rng.random() < 0.1
        rx_rows.append((
            rid, rx_number, patient, prescriber, pid, sig, qty, days,
            refills, daw, int(daw), written, status, owed, notes,
            None, rng.choice(creators), None, now, now, SEED_ACTOR, 1))
        rx_number += 1
    # Lots, with their final balance when the caches are written directly.
    write(table_of(StockLot), (
        "id", "product_id", "lot_number", "expiry_date", "status", "status_reason",
        "received_at", "supplier_id", "unit_cost", "created_at", "updated_at", "updated_by",
        "version", "on_hand"), (
        (r[0][0], *r[1:], 0) for r in lot_rows))  # the ledger fills the balance
    write(table_of(Prescription), (
        "id", "rx_number", "patient_id", "prescriber_id", "product_id", "sig", "quantity",
        "days_supply", "refills_authorized", "daw", "daw_code", "date_written", "status",
        "owed_quantity",
        "notes", "legacy_text", "created_by", "request_id", "created_at", "updated_at",
        "updated_by", "version"), rx_rows)
    write(table_of(PrescriptionTransfer), (
        "id", "prescription_id", "direction", "pharmacy_name", "pharmacy_address",
        "pharmacy_dea", "other_pharmacist", "pharmacist_id", "transferred_at", "request_id"),
        transfer_rows)
    dispense_rows.sort(key=lambda r: r[8])
    write(table_of(Dispense), (
        "id", "prescription_id", "fill_number", "part", "quantity", "owed_after", "days_supply",
        "pharmacist_id", "dispensed_at", "request_id", "notes", "status", "verified_by",
        "verified_at", "released_by", "released_at", "counseling"),
        (_steps(r, now, rng, pharmacists, staff_ids["clerk"]) for r in dispense_rows))

    # The ledger, in time order, so the controlled register's running balances
    # follow the calendar.
    report("Stock ledger", 0.8)
    events.sort(key=lambda e: (e[0], e[1]))
    ledger.load(conn, (e[2] for e in events))
    if conn.dialect.name == "postgresql" and rx_rows:
        conn.execute(sa.text("SELECT setval('rx_number_seq', :n)"), {"n": rx_number - 1})

    # A little feedback -------------------------------------------------------
    feedback_rows = []
    for _ in range(min(30, n_patients)):
        replied = rng.random() < 0.5
        feedback_rows.append((
            _uuid(rng), rng.choice(patient_ids), rng.choice((
                "The pharmacist explained my new medication very clearly. Thank you!",
                "I waited 25 minutes for a refill that was supposed to be ready.",
                "Could you text me when my prescription is ready?",
                "The label print is too small for me to read.",
                "Very friendly staff at the counter.")),
            staff_ids["clerk"],
            "Thank you for telling us; we have passed this on to the team." if replied else None,
            staff_ids["pharmacist"] if replied else None, now if replied else None,
            now - dt.timedelta(days=rng.randint(1, 60)), now, SEED_ACTOR, 1))
    write(table_of(PatientFeedback), (
        "id", "patient_id", "feedback", "received_by", "reply", "replied_by", "replied_at",
        "created_at", "updated_at", "updated_by", "version"), feedback_rows)
    report("Checking the ledger", 0.95)
    from sqlalchemy.orm import Session

    from .ledger import verify_in

    check = verify_in(Session(bind=conn))
    if not check.ok:  # a bug in the generator: nothing is committed
        raise RuntimeError(f"demo data failed the ledger check: {check}")
    report("Done", 1.0)
    return SeedSummary(
        staff=len(staff_rows), prescribers=len(prescriber_rows), products=len(product_meta),
        lots=len(lot_rows), patients=len(patient_ids), prescriptions=len(rx_rows),
        dispenses=len(dispense_rows), seconds=0.0,
    )


def _steps(row: tuple[Any, ...], now: dt.datetime, rng: random.Random,
           pharmacists: list[uuid.UUID], clerk: uuid.UUID) -> tuple[Any, ...]:
    """A demo fill's way to the patient: today's wait for verification or for
    pickup; older ones were verified by the other pharmacist and handed over."""
    when = row[8]
    other = next(p for p in pharmacists if p != row[7]) if row[7] in pharmacists \
        else pharmacists[0]
    age = now - when
    if age < dt.timedelta(days=2) and rng.random() < 0.5:
        return (*row, "filled", None, None, None, None, None)
    verified = min(when + dt.timedelta(minutes=rng.randint(5, 40)), now)
    if age < dt.timedelta(days=4) or rng.random() < 0.002:
        return (*row, "verified", other, verified, None, None, None)
    released = min(verified + dt.timedelta(hours=rng.randint(1, 30)), now)
    return (*row, "released", other, verified, clerk, released,
            rng.choice(("declined", "declined", "accepted", "offered")))


def _fefo(product_lots: list[list[Any]], wanted: int, when: dt.datetime
          ) -> tuple[list[tuple[list[Any], int]], int]:
    """Allocate from lots that were on the shelf, available and unexpired at ``when``."""
    day = when.date()
    usable = sorted(
        (lot for lot in product_lots
         if lot[3] <= when and lot[1] >= day and lot[4] == "available" and lot[2] > 0),
        key=lambda lot: (lot[1], lot[5]))
    alloc: list[tuple[list[Any], int]] = []
    left = wanted
    for lot in usable:
        if left == 0:
            break
        take = min(lot[2], left)
        alloc.append((lot, take))
        left -= take
    return alloc, wanted - left


def create_demo_logins(sf: Any) -> list[str]:
    """PostgreSQL: database logins for the demo accounts (existing ones are kept)."""
    from . import uow
    from .context import SYSTEM, Perm
    from .staff import create_login

    def body(w: uow.Work) -> list[str]:
        made: list[str] = []
        s = w.session
        if s.get_bind().dialect.name != "postgresql":
            return made
        for username, role, _ in DEMO_ACCOUNTS:
            exists = s.scalar(sa.text("SELECT count(*) FROM pg_roles WHERE rolname = :r"),
                              {"r": username})
            if not exists:
                create_login(s, username, DEMO_PASSWORD, role)
                made.append(username)
        return made

    return uow.write(sf, SYSTEM, Perm.MANAGE_STAFF, body)
