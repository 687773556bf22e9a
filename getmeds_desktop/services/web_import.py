"""Bring over the GetMeds web app's records (the Django app this product replaces).

Reads its database (a SQLite file or a PostgreSQL URL, read only) and brings
over staff, categories, stock, patients, prescriptions, dispense history and
feedback, in one transaction: it all arrives or none of it does. A dry run does
the same work and rolls it back, so what it reports is exactly what an import
would do.

Mapping:

* Staff (user_type 1..4 = admin, pharmacist, doctor, clerk) come without
  passwords: an administrator sets a first password for each (it must be
  changed at the first sign-in). Patients' own web accounts (user_type 5) are
  not staff and are not brought over as logins.
* Each stock row becomes a product with one opening-balance lot. Negative
  quantities (the web app allowed them) are reported and imported as zero; a
  row without an expiry date gets a quarantined lot to be checked.
* Free-text prescriptions keep their text and link to a product only when the
  text names exactly one product; dispenses become history. Both are kept
  beside the real prescriptions and dispenses and never move stock.
* Feedback keeps its dates; a reply is recorded under the administrator or
  pharmacist the feedback names, else under the administrator who imports.

The tables and columns read are those the web app's Django migrations create
(``COLUMNS``); a database without one of them is refused before anything is
read. A foreign key that points at no row (a dispense keeps the id of a
deleted patient, on_delete=DO_NOTHING; a copy restored without its constraints
can hold anything) is reported with its table, row and value, and the row is
skipped or imported without that link; nothing stops the import.

Everything imported gets an id derived from its table and id in the web app,
so importing twice brings nothing twice.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import functools
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from .. import db
from ..models import (
    Category,
    LegacyDispense,
    LegacyPrescription,
    LotStatus,
    MovementKind,
    Patient,
    PatientFeedback,
    Product,
    Role,
    Sex,
    Staff,
    StockLot,
)
from . import clock, ledger, uow
from .context import SYSTEM
from .errors import ValidationError
from .identifiers import clean_email, clean_phone
from .staff import clean_username

NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "getmeds-web")
# The columns read from each table, as the web app's Django migrations name them: a
# ForeignKey field gets the column <field>_id, so the field patient_id of a
# prescription is the column patient_id_id. The staff profiles (adminhod, pharmacist,
# doctor, clerk) point at their account with admin_id; feedback names the profile of
# the administrator or pharmacist concerned (admin_id_id, pharmacist_id_id).
COLUMNS: dict[str, tuple[str, ...]] = {
    "pharmacy_customuser": ("id", "username", "first_name", "last_name", "email",
                            "is_active", "user_type"),
    "pharmacy_adminhod": ("id", "admin_id"),
    "pharmacy_pharmacist": ("id", "admin_id"),
    "pharmacy_doctor": ("id", "admin_id"),
    "pharmacy_pharmacyclerk": ("id", "admin_id"),
    "pharmacy_category": ("id", "name"),
    "pharmacy_stock": ("id", "category_id", "drug_name", "drug_strength", "quantity",
                       "reorder_level", "manufacture", "valid_to"),
    "pharmacy_patients": ("id", "admin_id", "reg_no", "gender", "first_name", "last_name",
                          "dob", "phone_number", "age", "address", "last_updated"),
    "pharmacy_prescription": ("id", "patient_id_id", "prescribe", "description",
                              "date_precribed"),
    "pharmacy_dispense": ("id", "patient_id_id", "drug_id_id", "dispense_quantity", "taken",
                          "stock_ref_no", "instructions", "dispense_at"),
    "pharmacy_patientfeedback": ("id", "patient_id_id", "admin_id_id", "pharmacist_id_id",
                                 "feedback", "feedback_reply", "admin_created_at",
                                 "created_at", "updated_at"),
}
# CustomUser.user_type: 1 AdminHOD, 2 Pharmacist, 3 Doctor, 4 PharmacyClerk, 5 Patients
ROLES = {"1": Role.ADMIN, "2": Role.PHARMACIST, "3": Role.DOCTOR, "4": Role.CLERK}
PATIENT_ACCOUNT = "5"
UNKNOWN_BIRTH = dt.date(1900, 1, 1)
MAX_QUANTITY = 2**31 - 1  # an integer column on PostgreSQL
WHO = "getmeds-web import"


@dataclasses.dataclass
class WebImportResult:
    counts: dict[str, int]
    existing: dict[str, int]
    problems: list[str]
    dry_run: bool

    def summary_lines(self) -> list[str]:
        out = []
        for key in ("staff", "categories", "products", "lots", "patients", "prescriptions",
                    "dispenses", "feedback"):
            line = f"{self.counts.get(key, 0):>7,} {key}"
            if self.existing.get(key):
                line += f" ({self.existing[key]:,} already here, skipped)"
            out.append(line)
        return out


def _key(table: str, row_id: Any) -> uuid.UUID:
    return uuid.uuid5(NAMESPACE, f"{table}:{row_id}")


def source_engine(url_or_path: str) -> sa.Engine:
    """A read-only engine on the web app's database."""
    text = (url_or_path or "").strip()
    if not text:
        raise ValidationError("Give the web app's database: the path of its db.sqlite3 or a "
                              "postgresql:// URL.")
    if text.startswith("sqlite:"):
        # opened read only, never through the app's own SQLite set-up (which would
        # switch the web app's file to WAL)
        text = db.normalize_url(text).database or ""
    elif "://" in text:
        return db.make_engine(text)
    path = Path(text).expanduser()
    if not path.is_file():
        raise ValidationError(f"{path} does not exist.")
    return sa.create_engine(f"sqlite:///file:{path.resolve()}?mode=ro&uri=true",
                            poolclass=sa.NullPool)


def _str(value: Any) -> str:
    return " ".join(str(value).split()) if value is not None else ""


def _moment(value: Any) -> dt.datetime | None:
    """A DateTimeField value in UTC. Django keeps UTC (naive text on SQLite,
    timestamptz on PostgreSQL); a naive value is taken as UTC."""
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        moment = value
    elif isinstance(value, dt.date):
        moment = dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)
    else:
        text = str(value).strip().replace("Z", "+00:00")
        try:
            moment = dt.datetime.fromisoformat(text)
        except ValueError:
            try:
                d = dt.date.fromisoformat(text[:10])
            except ValueError:
                return None
            moment = dt.datetime(d.year, d.month, d.day, tzinfo=dt.UTC)
    try:
        return (moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)).astimezone(dt.UTC)
    except OverflowError:  # the first or last day of the calendar in another zone
        return None


def _date(value: Any) -> dt.date | None:
    """The UTC date of a DateTimeField value (an expiry or a prescription date)."""
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    moment = _moment(value)
    return moment.date() if moment else None


def _birth_date(value: Any) -> dt.date | None:
    """A date of birth the web app kept as a moment (a DateTimeField): the midnight
    of the birth date in the web app's time zone, stored in UTC. The nearest UTC
    midnight gives the date back for any zone within 12 hours of UTC."""
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    moment = _moment(value)
    if moment is None:
        return None
    try:
        return (moment + dt.timedelta(hours=12)).date()
    except OverflowError:
        return None


def _int(value: Any) -> int | None:
    """A whole number within the range the database stores, else None."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = decimal.Decimal(str(value).strip())
        n = int(number)
    except (decimal.InvalidOperation, ValueError, OverflowError):
        return None
    return n if n == number and abs(n) <= MAX_QUANTITY else None


def _cut(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _sex(value: Any) -> Sex:
    v = _str(value).lower()
    if v in ("m", "male", "man"):
        return Sex.MALE
    if v in ("f", "female", "woman"):
        return Sex.FEMALE
    if v in ("o", "other"):
        return Sex.OTHER
    return Sex.UNKNOWN


def _read(src: sa.Engine) -> dict[str, list[dict[str, Any]]]:
    """The columns the import uses, from one consistent snapshot of the web app."""
    out: dict[str, list[dict[str, Any]]] = {}
    with src.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
        with conn.begin():
            if conn.dialect.name == "sqlite":
                conn.exec_driver_sql("BEGIN")  # pysqlite does not begin for SELECTs
            inspector = sa.inspect(conn)
            names = set(inspector.get_table_names())
            missing = [t for t in COLUMNS if t not in names]
            if missing:
                raise ValidationError("That is not a GetMeds web app database: it has no table "
                                      + ", ".join(missing) + ".")
            lacking = []
            for table, columns in COLUMNS.items():
                have = {c["name"] for c in inspector.get_columns(table)}
                gone = [c for c in columns if c not in have]
                if gone:
                    lacking.append(f"{table} has no column {', '.join(gone)}")
            if lacking:
                raise ValidationError(
                    "That database does not have the GetMeds web app's schema that this import "
                    "reads (" + "; ".join(lacking) + "). Nothing was imported.")
            for table, columns in COLUMNS.items():
                cols = ", ".join(f'"{c}"' for c in columns)
                out[table] = [dict(r) for r in conn.execute(
                    sa.text(f'SELECT {cols} FROM "{table}" ORDER BY "id"')).mappings()]
    return out


def import_web(
    sf: sessionmaker[Session],
    url_or_path: str,
    *,
    dry_run: bool = False,
    progress: Callable[[str, float | None], None] | None = None,
) -> WebImportResult:
    say = progress or (lambda _m, _f: None)
    src = source_engine(url_or_path)
    try:
        say("Reading the web app's database…", 0.05)
        try:
            data = _read(src)
        except sa.exc.DBAPIError as exc:
            raise ValidationError("The web app's database cannot be read: "
                                  f"{db.describe_operational_error(exc)}") from None
    finally:
        src.dispose()
    result = WebImportResult({}, {}, [], dry_run)

    def body(w: uow.Work) -> WebImportResult:
        _Import(w, data, result, say).run()
        return result

    uow.write(sf, SYSTEM, None, body, dry_run=dry_run)
    say("Done", 1.0)
    return result


class _Import:
    def __init__(self, w: uow.Work, data: dict[str, list[dict[str, Any]]],
                 result: WebImportResult, say: Callable[[str, float | None], None]) -> None:
        self.w = w
        self.s = w.session
        self.data = data
        self.r = result
        self.say = say
        self.users = {r["id"]: r for r in data["pharmacy_customuser"]}
        self.patient_rows = {r["id"] for r in data["pharmacy_patients"]}
        self.stock_rows = {r["id"] for r in data["pharmacy_stock"]}
        self.now = clock.now()

    def count(self, key: str, new: bool) -> None:
        target = self.r.counts if new else self.r.existing
        target[key] = target.get(key, 0) + 1

    def problem(self, text: str) -> None:
        self.r.problems.append(text)

    def dangling(self, table: str, row_id: Any, column: str, value: Any, target: str,
                 outcome: str) -> None:
        """A foreign key of the web app that points at a row that is not there."""
        self.problem(f"{table} {row_id}: {column} {value} refers to no row of {target}; "
                     f"{outcome}")

    def run(self) -> None:
        self.say("Staff…", 0.1)
        self.staff()
        self.s.flush()
        self.importer = self.s.scalar(
            sa.select(Staff.id).where(Staff.role == Role.ADMIN)
            .order_by(Staff.active.desc(), Staff.created_at).limit(1))
        if self.importer is None:
            raise ValidationError("There is no administrator to record the import under: "
                                  "create the first administrator, then import.")
        self.say("Stock…", 0.25)
        self.categories()
        self.stock()
        self.s.flush()
        self.say("Patients…", 0.5)
        self.patients()
        self.s.flush()
        self.say("Prescriptions and dispenses…", 0.7)
        self.prescriptions()
        self.dispenses()
        self.feedback()
        self.s.flush()

    # ----------------------------------------------------------------- staff

    def staff(self) -> None:
        # profile (table, id) -> account id: feedback names a profile, not an account
        self.profile_users: dict[tuple[str, Any], Any] = {}
        for table in ("pharmacy_adminhod", "pharmacy_pharmacist", "pharmacy_doctor",
                      "pharmacy_pharmacyclerk"):
            for row in self.data[table]:
                account = row["admin_id"]
                if account is None:
                    continue
                if account not in self.users:
                    self.dangling(table, row["id"], "admin_id", account, "pharmacy_customuser",
                                  "ignored")
                    continue
                self.profile_users[(table, row["id"])] = account
        # account id -> staff id (here already, or imported now)
        self.staff_ids: dict[Any, uuid.UUID] = {}
        taken = dict(self.s.execute(sa.select(Staff.username, Staff.id)).all())
        for u in self.data["pharmacy_customuser"]:
            code = _str(u["user_type"])
            if code == PATIENT_ACCOUNT:
                continue  # a patient's own web account: not a login here
            raw = _str(u["username"])
            role = ROLES.get(code)
            if role is None:
                self.problem(f"Account {raw or '(no username)'} (pharmacy_customuser {u['id']}):"
                             f" user type '{code}' is not one the web app defines; not imported")
                continue
            try:
                username = clean_username(raw)
            except ValidationError as exc:
                self.problem(f"Staff {raw or '(no username)'}: not imported: {exc}")
                continue
            if username in taken:
                self.staff_ids[u["id"]] = taken[username]
                self.count("staff", False)
                continue
            full = _str(f"{_str(u['first_name'])} {_str(u['last_name'])}") or username
            sid = _key("pharmacy_customuser", u["id"])
            self.s.add(Staff(id=sid, username=username, full_name=_cut(full, 200), role=role,
                             active=u["is_active"] is None or bool(u["is_active"]),
                             updated_by=WHO))
            taken[username] = sid
            self.staff_ids[u["id"]] = sid
            self.count("staff", True)

    def staff_of_profile(self, table: str, profile_id: Any) -> uuid.UUID | None:
        return self.staff_ids.get(self.profile_users.get((table, profile_id)))

    # ----------------------------------------------------------------- stock

    def categories(self) -> None:
        self.category_ids: dict[Any, uuid.UUID] = {}
        self.category_rows = {r["id"] for r in self.data["pharmacy_category"]}
        known = {c.name.lower(): c.id for c in self.s.scalars(sa.select(Category))}
        for row in self.data["pharmacy_category"]:
            name = _cut(_str(row["name"]), 100)
            if not name:
                self.problem(f"Category {row['id']}: no name; not imported (its stock comes "
                             "without a category)")
                continue
            if name.lower() in known:
                self.count("categories", False)
            else:
                cid = _key("pharmacy_category", row["id"])
                self.s.add(Category(id=cid, name=name))
                known[name.lower()] = cid
                self.count("categories", True)
            self.category_ids[row["id"]] = known[name.lower()]

    def _existing(self, column: Any, keys: list[Any]) -> set[Any]:
        """Which of ``keys`` are already in ``column`` (in chunks: SQLite limits
        the parameters of one statement)."""
        found: set[Any] = set()
        for i in range(0, len(keys), 1000):
            found.update(self.s.scalars(sa.select(column).where(column.in_(keys[i:i + 1000]))))
        return found

    def stock(self) -> None:
        names: dict[tuple[str, str], int] = {}
        self.product_names: dict[Any, str] = {}
        rows = self.data["pharmacy_stock"]
        done = self._existing(Product.id, [_key("pharmacy_stock", r["id"]) for r in rows])
        lots: list[tuple[StockLot, int, Any]] = []
        for row in rows:
            sid = row["id"]
            name = _cut(_str(row["drug_name"]), 200)
            strength = _cut(_str(row["drug_strength"]), 100) or None
            if not name:
                self.problem(f"Stock row {sid}: no drug name; not imported")
                continue
            self.product_names[sid] = f"{name} {strength}" if strength else name
            key = (name.lower(), (strength or "").lower())
            if key in names:
                self.problem(f"Stock rows {names[key]} and {sid} are both {name}"
                             f"{' ' + strength if strength else ''}: imported as two products;"
                             " merge their stock if they are the same")
            else:
                names[key] = sid
            pid = _key("pharmacy_stock", sid)
            if pid in done:
                self.count("products", False)
                continue
            category = row["category_id"]
            if category is not None and category not in self.category_rows:
                self.dangling("pharmacy_stock", sid, "category_id", category,
                              "pharmacy_category", "imported without a category")
            reorder = max(_int(row["reorder_level"]) or 0, 0)
            self.s.add(Product(
                id=pid, name=name, strength=strength,
                manufacturer=_cut(_str(row["manufacture"]), 200) or None,
                category_id=self.category_ids.get(category),
                reorder_level=reorder, reorder_quantity=min(reorder * 2, MAX_QUANTITY),
                unit="each", pack_size=1, unit_price=0, updated_by=WHO))
            self.count("products", True)
            opening = self.opening_lot(row, pid, name)
            if opening is not None:
                lots.append((*opening, sid))
        # products, then their lots, then the receipts (the ledger moves the stock)
        self.s.flush()
        self.s.add_all(lot for lot, _qty, _sid in lots)
        self.s.flush()
        ledger.post(self.w, [
            ledger.Movement(ledger.Lot(lot.id, lot.product_id, lot.lot_number, 0),
                            MovementKind.RECEIPT, qty,
                            reason="Opening balance from the GetMeds web app",
                            reference=f"pharmacy_stock:{sid}")
            for lot, qty, sid in lots], staff_id=self.importer, at=self.now)

    def opening_lot(self, row: dict[str, Any], product_id: uuid.UUID, name: str
                    ) -> tuple[StockLot, int] | None:
        """The opening-balance lot of a stock row and its quantity (None: no stock)."""
        sid = row["id"]
        if row["quantity"] is None:
            self.problem(f"Stock row {sid} ({name}): no quantity recorded; imported with no "
                         "stock: count it")
            return None
        qty = _int(row["quantity"])
        if qty is None:
            self.problem(f"Stock row {sid} ({name}): quantity '{row['quantity']}' is not a "
                         "quantity; imported with no stock: count it")
            return None
        if qty < 0:
            self.problem(f"Stock row {sid} ({name}): quantity {qty} is negative (the web app "
                         "allowed it); imported as 0: count it")
            return None
        if qty == 0:
            return None
        expiry = _date(row["valid_to"])
        lot = StockLot(id=_key("lot", sid), product_id=product_id, lot_number=f"WEB-{sid}",
                       expiry_date=expiry or self.now.date(),
                       status=LotStatus.AVAILABLE if expiry else LotStatus.QUARANTINED,
                       status_reason=None if expiry else (
                           "No expiry date in the GetMeds web app: check the packs, then "
                           "release"),
                       received_at=self.now, unit_cost=0, updated_by=WHO)
        if expiry is None:
            self.problem(f"Stock row {sid} ({name}): no expiry date; its {qty} on hand are "
                         "quarantined until checked")
        self.count("lots", True)
        return lot, qty

    # -------------------------------------------------------------- patients

    def patients(self) -> None:
        self.patient_ids: dict[Any, uuid.UUID] = {}
        known = dict(self.s.execute(sa.select(Patient.legacy_ref, Patient.id)
                                    .where(Patient.legacy_ref.like("web:%"))).all())
        for row in self.data["pharmacy_patients"]:
            ref = f"web:{row['id']}"
            if ref in known:
                self.patient_ids[row["id"]] = known[ref]
                self.count("patients", False)
                continue
            account = row["admin_id"]
            user = self.users.get(account, {})
            first = _str(row["first_name"]) or _str(user.get("first_name"))
            last = _str(row["last_name"]) or _str(user.get("last_name"))
            label = f"Patient {row['id']} ({first} {last})".replace(" ( )", "")
            if account is not None and not user:
                self.dangling("pharmacy_patients", row["id"], "admin_id", account,
                              "pharmacy_customuser", "imported without that account's name "
                              "and e-mail")
            if not first or not last:
                self.problem(f"{label}: no first or last name; not imported (nor their "
                             "prescriptions, dispenses and feedback)")
                continue
            notes = []
            dob = _birth_date(row["dob"])
            if dob is None or dob > self.now.date():
                age = _int(row["age"])
                notes.append("Date of birth not recorded in the GetMeds web app (1900-01-01 "
                             "stands in): ask the patient."
                             + (f" The web app had age {age} on "
                                f"{_date(row['last_updated']) or 'an unknown date'}."
                                if age and 0 < age < 150 else ""))
                self.problem(f"{label}: no valid date of birth; 1900-01-01 stands in, with a "
                             "note")
                dob = UNKNOWN_BIRTH
            try:
                phone = clean_phone(_str(row["phone_number"]) or None)
            except ValidationError:
                phone = None
                notes.append(f"Phone in the GetMeds web app: {_str(row['phone_number'])}")
                self.problem(f"{label}: phone '{row['phone_number']}' is not a phone "
                             "number; kept in the notes")
            try:
                email = clean_email(_str(user.get("email")) or None)
            except ValidationError:
                email = None
            reg = _str(row["reg_no"])
            if reg:
                notes.append(f"Registration number in the GetMeds web app: {reg}")
            pid = _key("pharmacy_patients", row["id"])
            self.s.add(Patient(
                id=pid, first_name=_cut(first, 100), last_name=_cut(last, 100),
                date_of_birth=dob, sex=_sex(row["gender"]), phone=phone, email=email,
                address_line=_cut(_str(row["address"]), 200) or None,
                notes="\n".join(notes) or None, legacy_ref=ref, updated_by=WHO))
            self.patient_ids[row["id"]] = pid
            self.count("patients", True)

    def patient_of(self, table: str, what: str, row: dict[str, Any]) -> uuid.UUID | None:
        """The patient a prescription, dispense or feedback row belongs to; reports why
        there is none."""
        ref = row["patient_id_id"]
        if ref is None:
            self.problem(f"{what} {row['id']}: no patient in the web app (patient_id_id is "
                         "empty); skipped")
            return None
        patient = self.patient_ids.get(ref)
        if patient is None:
            if ref in self.patient_rows:
                self.problem(f"{what} {row['id']}: its patient (Patient {ref}) was not "
                             "imported; skipped")
            else:
                self.dangling(table, row["id"], "patient_id_id", ref, "pharmacy_patients",
                              "skipped")
        return patient

    # ----------------------------------------------------- prescriptions etc.

    @functools.cached_property
    def _products_by_label(self) -> dict[str, set[uuid.UUID]]:
        """Every product under its name and its "name strength" (lower case)."""
        out: dict[str, set[uuid.UUID]] = {}
        for pid, name, strength in self.s.execute(
                sa.select(Product.id, Product.name, Product.strength)):
            for label in {name.lower(), f"{name} {strength or ''}".lower().strip()}:
                out.setdefault(label, set()).add(pid)
        return out

    def _product_by_text(self, text: str) -> uuid.UUID | None:
        """The product a prescription's text names, when it names exactly one."""
        ids = self._products_by_label.get(_str(text).lower(), set())
        return next(iter(ids)) if len(ids) == 1 else None

    def prescriptions(self) -> None:
        known = set(self.s.scalars(sa.select(LegacyPrescription.source_ref)))
        for row in self.data["pharmacy_prescription"]:
            ref = f"pharmacy_prescription:{row['id']}"
            if ref in known:
                self.count("prescriptions", False)
                continue
            patient = self.patient_of("pharmacy_prescription", "Prescription", row)
            if patient is None:
                continue
            text = _str(row["prescribe"])
            product = self._product_by_text(text)
            if product is None:
                self.problem(f"Prescription {row['id']} ('{_cut(text, 60)}'): names no single "
                             "known product; kept as text")
            self.s.add(LegacyPrescription(
                id=_key("pharmacy_prescription", row["id"]), source_ref=ref,
                patient_id=patient, text=text or "(blank)",
                description=_str(row["description"]) or None, product_id=product,
                prescribed_on=_date(row["date_precribed"]), imported_at=self.now))
            self.count("prescriptions", True)

    def dispenses(self) -> None:
        known = set(self.s.scalars(sa.select(LegacyDispense.source_ref)))
        for row in self.data["pharmacy_dispense"]:
            ref = f"pharmacy_dispense:{row['id']}"
            if ref in known:
                self.count("dispenses", False)
                continue
            patient = self.patient_of("pharmacy_dispense", "Dispense", row)
            if patient is None:
                continue
            drug = row["drug_id_id"]
            if drug is None:
                self.problem(f"Dispense {row['id']}: no drug in the web app (drug_id_id is "
                             "empty); recorded as '(unknown drug)'")
            elif drug not in self.stock_rows:
                self.dangling("pharmacy_dispense", row["id"], "drug_id_id", drug,
                              "pharmacy_stock", "recorded as '(unknown drug)'")
            product = _key("pharmacy_stock", drug) if drug in self.product_names else None
            qty = _int(row["dispense_quantity"])
            if qty is None or qty < 0:
                self.problem(f"Dispense {row['id']}: "
                             + ("no quantity recorded" if row["dispense_quantity"] is None
                                else f"quantity '{row['dispense_quantity']}' is not a quantity")
                             + "; recorded as 0")
                qty = 0
            said = [_str(row["instructions"])]
            if _str(row["taken"]):
                said.append(f"taken: {_str(row['taken'])}")
            if _str(row["stock_ref_no"]):
                said.append(f"stock reference: {_str(row['stock_ref_no'])}")
            self.s.add(LegacyDispense(
                id=_key("pharmacy_dispense", row["id"]), source_ref=ref, patient_id=patient,
                product_id=product,
                drug_text=_cut(self.product_names.get(drug, "(unknown drug)"), 300),
                quantity=qty, instructions="; ".join(t for t in said if t) or None,
                dispensed_at=_moment(row["dispense_at"]), imported_at=self.now))
            self.count("dispenses", True)

    def feedback(self) -> None:
        rows = self.data["pharmacy_patientfeedback"]
        done = self._existing(PatientFeedback.id,
                              [_key("pharmacy_patientfeedback", r["id"]) for r in rows])
        profiles = {table: {r["id"] for r in self.data[table]}
                    for table in ("pharmacy_adminhod", "pharmacy_pharmacist")}
        for row in rows:
            fid = _key("pharmacy_patientfeedback", row["id"])
            if fid in done:
                self.count("feedback", False)
                continue
            patient = self.patient_of("pharmacy_patientfeedback", "Feedback", row)
            if patient is None:
                continue
            text = str(row["feedback"] or "").strip()
            if not text:
                self.problem(f"Feedback {row['id']}: empty; skipped")
                continue
            reply = str(row["feedback_reply"] or "").strip() or None
            # the administrator or pharmacist the feedback names answered it; the web
            # app kept nobody else, so an answer without one is the importer's
            answered_by = None
            for column, table in (("admin_id_id", "pharmacy_adminhod"),
                                  ("pharmacist_id_id", "pharmacy_pharmacist")):
                profile = row[column]
                if profile is None:
                    continue
                if profile not in profiles[table]:
                    self.dangling("pharmacy_patientfeedback", row["id"], column, profile, table,
                                  "imported without it")
                    continue
                answered_by = answered_by or self.staff_of_profile(table, profile)
            answered_at = (_moment(row["admin_created_at"]) or _moment(row["updated_at"])
                           or self.now)
            self.s.add(PatientFeedback(
                id=fid, patient_id=patient, feedback=text, reply=reply,
                replied_by=(answered_by or self.importer) if reply else None,
                replied_at=answered_at if reply else None,
                created_at=_moment(row["created_at"]) or self.now, updated_by=WHO))
            self.count("feedback", True)


__all__ = ["WebImportResult", "import_web", "source_engine"]
