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
    StockMovement,
)
from . import clock
from ._common import clean_email, clean_phone
from .errors import ValidationError
from .staff import clean_username

NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "getmeds-web")
REQUIRED = ("pharmacy_customuser", "pharmacy_patients", "pharmacy_category", "pharmacy_stock",
            "pharmacy_prescription", "pharmacy_dispense", "pharmacy_patientfeedback")
STAFF_TABLES = ("pharmacy_adminhod", "pharmacy_pharmacist", "pharmacy_doctor",
                "pharmacy_pharmacyclerk")
ROLES = {"1": Role.ADMIN, "2": Role.PHARMACIST, "3": Role.DOCTOR, "4": Role.CLERK}
UNKNOWN_BIRTH = dt.date(1900, 1, 1)
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


class _DryRun(Exception):
    pass


def _key(table: str, row_id: Any) -> uuid.UUID:
    return uuid.uuid5(NAMESPACE, f"{table}:{row_id}")


def source_engine(url_or_path: str) -> sa.Engine:
    """A read-only engine on the web app's database."""
    text = (url_or_path or "").strip()
    if not text:
        raise ValidationError("Give the web app's database: the path of its db.sqlite3 or a "
                              "postgresql:// URL.")
    if "://" not in text:
        path = Path(text).expanduser()
        if not path.is_file():
            raise ValidationError(f"{path} does not exist.")
        return sa.create_engine(f"sqlite:///file:{path.resolve()}?mode=ro&uri=true",
                                poolclass=sa.NullPool)
    return db.make_engine(text)


def _str(value: Any) -> str:
    return " ".join(str(value).split()) if value is not None else ""


def _date(value: Any) -> dt.date | None:
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value)[:10])
    except ValueError:
        return None


def _moment(value: Any) -> dt.datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        moment = value
    else:
        try:
            moment = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            d = _date(value)
            if d is None:
                return None
            moment = dt.datetime(d.year, d.month, d.day)
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _int(value: Any) -> int | None:
    try:
        return int(decimal.Decimal(str(value).strip()))
    except (decimal.InvalidOperation, ValueError):
        return None


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
    names = set(sa.inspect(src).get_table_names())
    missing = [t for t in REQUIRED if t not in names]
    if missing:
        raise ValidationError("That is not a GetMeds web app database: it has no table "
                              + ", ".join(missing) + ".")
    out: dict[str, list[dict[str, Any]]] = {}
    with src.connect() as conn:
        for table in REQUIRED + tuple(t for t in STAFF_TABLES if t in names):
            out[table] = [dict(r) for r in conn.execute(
                sa.text(f'SELECT * FROM "{table}" ORDER BY id')).mappings()]
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
    try:
        with db.write_transaction(sf, WHO) as s:
            _Import(s, data, result, say).run()
            if dry_run:
                raise _DryRun
    except _DryRun:
        pass
    say("Done", 1.0)
    return result


class _Import:
    def __init__(self, s: Session, data: dict[str, list[dict[str, Any]]],
                 result: WebImportResult, say: Callable[[str, float | None], None]) -> None:
        self.s = s
        self.data = data
        self.r = result
        self.say = say
        self.users = {r["id"]: r for r in data["pharmacy_customuser"]}
        self.now = clock.now()

    def count(self, key: str, new: bool) -> None:
        target = self.r.counts if new else self.r.existing
        target[key] = target.get(key, 0) + 1

    def problem(self, text: str) -> None:
        self.r.problems.append(text)

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
        details: dict[Any, dict[str, Any]] = {}
        for table in STAFF_TABLES:
            for row in self.data.get(table, []):
                details[row.get("admin_id")] = row
        taken = {u for u in self.s.scalars(sa.select(Staff.username))}
        for u in self.data["pharmacy_customuser"]:
            role = ROLES.get(_str(u.get("user_type")))
            if role is None:
                continue
            raw = _str(u.get("username"))
            try:
                username = clean_username(raw)
            except ValidationError as exc:
                self.problem(f"Staff {raw or '(no username)'}: not imported: {exc}")
                continue
            if username in taken:
                self.count("staff", False)
                continue
            full = _str(f"{_str(u.get('first_name'))} {_str(u.get('last_name'))}") or username
            self.s.add(Staff(id=_key("pharmacy_customuser", u["id"]), username=username,
                             full_name=_cut(full, 200), role=role,
                             active=bool(u.get("is_active", True)), updated_by=WHO))
            taken.add(username)
            self.count("staff", True)
            if u["id"] not in details:
                self.problem(f"Staff {username}: no {role.value} record (employee number, "
                             "phone) in the web app; imported with the name only")

    # ----------------------------------------------------------------- stock

    def categories(self) -> None:
        self.category_ids: dict[Any, uuid.UUID] = {}
        known = {c.name.lower(): c.id for c in self.s.scalars(sa.select(Category))}
        for row in self.data["pharmacy_category"]:
            name = _cut(_str(row.get("name")), 100)
            if not name:
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
            name = _cut(_str(row.get("drug_name")), 200)
            strength = _cut(_str(row.get("drug_strength")), 100) or None
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
            reorder = _int(row.get("reorder_level")) or 0
            self.s.add(Product(
                id=pid, name=name, strength=strength,
                manufacturer=_cut(_str(row.get("manufacture")), 200) or None,
                category_id=self.category_ids.get(row.get("category_id")),
                reorder_level=max(reorder, 0), reorder_quantity=max(reorder, 0) * 2,
                unit="each", pack_size=1, unit_price=0, updated_by=WHO))
            self.count("products", True)
            opening = self.opening_lot(row, pid, name)
            if opening is not None:
                lots.append((*opening, sid))
        # products, then their lots, then the receipts (the ledger moves the stock)
        self.s.flush()
        self.s.add_all(lot for lot, _qty, _sid in lots)
        self.s.flush()
        self.s.add_all(StockMovement(
            lot_id=lot.id, kind=MovementKind.RECEIPT, quantity=qty,
            reason="Opening balance from the GetMeds web app",
            reference=f"pharmacy_stock:{sid}", staff_id=self.importer, created_at=self.now)
            for lot, qty, sid in lots)

    def opening_lot(self, row: dict[str, Any], product_id: uuid.UUID, name: str
                    ) -> tuple[StockLot, int] | None:
        """The opening-balance lot of a stock row and its quantity (None: no stock)."""
        sid = row["id"]
        qty = _int(row.get("quantity"))
        if qty is None:
            self.problem(f"Stock row {sid} ({name}): quantity '{row.get('quantity')}' is not a "
                         "number; imported with no stock")
            return None
        if qty < 0:
            self.problem(f"Stock row {sid} ({name}): quantity {qty} is negative (the web app "
                         "allowed it); imported as 0: count it")
            return None
        if qty == 0:
            return None
        expiry = _date(row.get("valid_to"))
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
            user = self.users.get(row.get("admin_id"), {})
            first = _str(row.get("first_name")) or _str(user.get("first_name"))
            last = _str(row.get("last_name")) or _str(user.get("last_name"))
            label = f"Patient {row['id']} ({first} {last})".replace(" ( )", "")
            if not first or not last:
                self.problem(f"{label}: no first or last name; not imported (nor their "
                             "prescriptions, dispenses and feedback)")
                continue
            notes = []
            dob = _date(row.get("dob"))
            if dob is None or dob > self.now.date():
                notes.append("Date of birth not recorded in the GetMeds web app (1900-01-01 "
                             "stands in): ask the patient.")
                self.problem(f"{label}: no valid date of birth; 1900-01-01 stands in, with a "
                             "note")
                dob = UNKNOWN_BIRTH
            try:
                phone = clean_phone(_str(row.get("phone_number")) or None)
            except ValidationError:
                phone = None
                notes.append(f"Phone in the GetMeds web app: {_str(row.get('phone_number'))}")
                self.problem(f"{label}: phone '{row.get('phone_number')}' is not a phone "
                             "number; kept in the notes")
            try:
                email = clean_email(_str(user.get("email")) or None)
            except ValidationError:
                email = None
            reg = _str(row.get("reg_no"))
            if reg:
                notes.append(f"Registration number in the GetMeds web app: {reg}")
            pid = _key("pharmacy_patients", row["id"])
            self.s.add(Patient(
                id=pid, first_name=_cut(first, 100), last_name=_cut(last, 100),
                date_of_birth=dob, sex=_sex(row.get("gender")), phone=phone, email=email,
                address_line=_cut(_str(row.get("address")), 200) or None,
                notes="\n".join(notes) or None, legacy_ref=ref, updated_by=WHO))
            self.patient_ids[row["id"]] = pid
            self.count("patients", True)

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
            patient = self.patient_ids.get(row.get("patient_id"))
            if patient is None:
                self.problem(f"Prescription {row['id']}: its patient was not imported; skipped")
                continue
            text = _str(row.get("prescribe"))
            product = self._product_by_text(text)
            if product is None:
                self.problem(f"Prescription {row['id']} ('{_cut(text, 60)}'): names no single "
                             "known product; kept as text")
            self.s.add(LegacyPrescription(
                id=_key("pharmacy_prescription", row["id"]), source_ref=ref,
                patient_id=patient, text=text or "(blank)",
                description=_str(row.get("description")) or None, product_id=product,
                prescribed_on=_date(row.get("date_precribed")), imported_at=self.now))
            self.count("prescriptions", True)

    def dispenses(self) -> None:
        known = set(self.s.scalars(sa.select(LegacyDispense.source_ref)))
        for row in self.data["pharmacy_dispense"]:
            ref = f"pharmacy_dispense:{row['id']}"
            if ref in known:
                self.count("dispenses", False)
                continue
            patient = self.patient_ids.get(row.get("patient_id"))
            if patient is None:
                self.problem(f"Dispense {row['id']}: its patient was not imported; skipped")
                continue
            drug = row.get("drug_id")
            product = _key("pharmacy_stock", drug) if drug in self.product_names else None
            qty = _int(row.get("dispense_quantity"))
            if qty is None or qty < 0:
                self.problem(f"Dispense {row['id']}: quantity '{row.get('dispense_quantity')}'"
                             " is not a quantity; recorded as 0")
                qty = 0
            self.s.add(LegacyDispense(
                id=_key("pharmacy_dispense", row["id"]), source_ref=ref, patient_id=patient,
                product_id=product,
                drug_text=_cut(self.product_names.get(drug, "(unknown drug)"), 300),
                quantity=qty, instructions=_str(row.get("instructions")) or None,
                dispensed_at=_moment(row.get("dispense_at")), imported_at=self.now))
            self.count("dispenses", True)

    def feedback(self) -> None:
        rows = self.data["pharmacy_patientfeedback"]
        done = self._existing(PatientFeedback.id,
                              [_key("pharmacy_patientfeedback", r["id"]) for r in rows])
        for row in rows:
            fid = _key("pharmacy_patientfeedback", row["id"])
            if fid in done:
                self.count("feedback", False)
                continue
            patient = self.patient_ids.get(row.get("patient_id"))
            text = str(row.get("feedback") or "").strip()
            if patient is None or not text:
                self.problem(f"Feedback {row['id']}: "
                             + ("its patient was not imported" if patient is None else "empty")
                             + "; skipped")
                continue
            reply = str(row.get("feedback_reply") or "").strip() or None
            self.s.add(PatientFeedback(
                id=fid, patient_id=patient, feedback=text, reply=reply,
                replied_by=self.importer if reply else None,
                replied_at=self.now if reply else None, updated_by=WHO))
            self.count("feedback", True)


__all__ = ["WebImportResult", "import_web", "source_engine"]

