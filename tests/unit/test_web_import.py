"""Migration from the GetMeds web app.

The source databases are built from the web app's real schema
(tests/fixtures/getmeds_web_schema.sql, what its Django migrations create) and
hold the awkward data it allowed; every test that reads one runs with a SQLite
and a PostgreSQL source, into a SQLite and a PostgreSQL target.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from getmeds_desktop import cli
from getmeds_desktop.models import (
    Category,
    LegacyDispense,
    LegacyPrescription,
    LotStatus,
    Patient,
    PatientFeedback,
    Product,
    Staff,
    StockLot,
    StockMovement,
)
from getmeds_desktop.services import catalog, staff, web_import
from getmeds_desktop.services.context import SYSTEM
from getmeds_desktop.services.errors import ValidationError
from tests.fixtures.web_app import (
    ROWS,
    postgresql_source,
    postgresql_statements,
    sqlite_source,
    utc,
)

key = web_import._key

COUNTS = {"staff": 5, "categories": 2, "products": 5, "lots": 3, "patients": 4,
          "prescriptions": 4, "dispenses": 4, "feedback": 4}
# a second import finds everything (lots come with their product, so are not counted)
EXISTING = {k: v for k, v in COUNTS.items() if k != "lots"}

# Each fragment names exactly one problem of the fixture's report, and there are no others.
PROBLEMS = [
    "pharmacy_pharmacist 3: admin_id 77 refers to no row of pharmacy_customuser; ignored",
    "Staff bad name!: not imported: Username must be",
    "Account odd (pharmacy_customuser 8): user type '9' is not one the web app defines",
    "Category 3: no name; not imported",
    "Stock row 2 (Paracetamol): quantity -15 is negative (the web app allowed it); "
    "imported as 0",
    "Stock rows 2 and 3 are both Paracetamol 500mg",
    "Stock row 4 (Ibuprofen): no expiry date; its 30 on hand are quarantined",
    "pharmacy_stock 5: category_id 9 refers to no row of pharmacy_category; imported without "
    "a category",
    "Stock row 5 (Cetirizine): no quantity recorded; imported with no stock",
    "Stock row 6: no drug name; not imported",
    "Patient 2 (John Doe): no valid date of birth",
    "Patient 2 (John Doe): phone 'call me' is not a phone number",
    "Patient 3: no first or last name; not imported",
    "pharmacy_patients 4: admin_id 42 refers to no row of pharmacy_customuser; imported "
    "without that account's name and e-mail",
    "Prescription 2 ('Paracetamol'): names no single known product",
    "Prescription 3 ('Unobtainium 5mg'): names no single known product",
    "Prescription 4: its patient (Patient 3) was not imported; skipped",
    "Prescription 5: no patient in the web app (patient_id_id is empty); skipped",
    "pharmacy_prescription 6: patient_id_id 99 refers to no row of pharmacy_patients; skipped",
    "pharmacy_dispense 3: patient_id_id 99 refers to no row of pharmacy_patients; skipped",
    "pharmacy_dispense 4: drug_id_id 77 refers to no row of pharmacy_stock; recorded as "
    "'(unknown drug)'",
    "Dispense 5: no drug in the web app (drug_id_id is empty)",
    "Dispense 5: no quantity recorded; recorded as 0",
    "Dispense 6: no patient in the web app (patient_id_id is empty); skipped",
    "pharmacy_patientfeedback 4: pharmacist_id_id 55 refers to no row of pharmacy_pharmacist;"
    " imported without it",
    "pharmacy_patientfeedback 5: patient_id_id 99 refers to no row of pharmacy_patients; "
    "skipped",
    "Feedback 6: its patient (Patient 3) was not imported; skipped",
    "Feedback 7: empty; skipped",
]


def make_web_db(path) -> str:
    """A SQLite db.sqlite3 of the web app holding the fixture's rows."""
    return sqlite_source(path)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"],
                ids=["from-sqlite", "from-postgresql"])
def web_source(request, tmp_path_factory) -> Iterator[str]:
    """The web app's database (read only by the import, so shared by the module)."""
    if request.param == "sqlite":
        yield sqlite_source(tmp_path_factory.mktemp("web") / "db.sqlite3")
    else:
        with postgresql_source() as url:
            yield url


@pytest.fixture
def web_db(tmp_path) -> str:
    return make_web_db(tmp_path / "db.sqlite3")


def _totals(sf) -> dict[str, int]:
    with sf() as s:
        return {m.__tablename__: s.scalar(sa.select(sa.func.count()).select_from(m))
                for m in (Staff, Category, Product, StockLot, StockMovement, Patient,
                          LegacyPrescription, LegacyDispense, PatientFeedback)}


def _assert_problems(problems: list[str]) -> None:
    for fragment in PROBLEMS:
        hits = [p for p in problems if fragment in p]
        assert len(hits) == 1, (fragment, problems)
    assert len(problems) == len(PROBLEMS), problems


def test_both_sources_have_the_web_apps_tables_and_columns(web_source, tmp_path):
    """The PostgreSQL translation changes types only: every table and column of
    the schema file is there, under the same name."""
    reference = sa.create_engine(f"sqlite:///{sqlite_source(tmp_path / 'ref.sqlite3', {})}")
    try:
        engine = web_import.source_engine(web_source)
        try:
            def shape(e: sa.Engine) -> dict[str, list[str]]:
                inspector = sa.inspect(e)
                return {t: sorted(c["name"] for c in inspector.get_columns(t))
                        for t in inspector.get_table_names() if t.startswith("pharmacy_")}

            assert shape(engine) == shape(reference)
            assert "patient_id_id" in shape(engine)["pharmacy_dispense"]
        finally:
            engine.dispose()
    finally:
        reference.dispose()
    assert any("ADD FOREIGN KEY" in s for s in postgresql_statements())


def test_dry_run_reports_exactly_what_the_import_does(sf, world, web_source):
    before = _totals(sf)
    dry = web_import.import_web(sf, web_source, dry_run=True)
    assert dry.dry_run
    assert dry.counts == COUNTS and dry.existing == {}
    _assert_problems(dry.problems)
    assert _totals(sf) == before  # nothing written

    real = web_import.import_web(sf, web_source)
    assert not real.dry_run
    assert (real.counts, real.existing, real.problems) == (dry.counts, dry.existing,
                                                           dry.problems)
    after = _totals(sf)
    # the counts of the report are the rows that arrived
    assert {t: after[t] - before[t] for t in after} == {
        "staff": COUNTS["staff"], "categories": COUNTS["categories"],
        "products": COUNTS["products"], "stock_lots": COUNTS["lots"],
        "stock_movements": COUNTS["lots"], "patients": COUNTS["patients"],
        "legacy_prescriptions": COUNTS["prescriptions"],
        "legacy_dispenses": COUNTS["dispenses"], "patient_feedback": COUNTS["feedback"]}


def test_importing_twice_brings_nothing_twice(sf, world, web_source):
    web_import.import_web(sf, web_source)
    after_first = _totals(sf)
    again = web_import.import_web(sf, web_source, dry_run=True)
    assert again.counts == {} and again.existing == EXISTING
    again = web_import.import_web(sf, web_source)
    assert again.counts == {} and again.existing == EXISTING
    assert _totals(sf) == after_first
    assert catalog.get_product(sf, key("pharmacy_stock", 1)).name == "Amoxicillin"


def test_prescriptions_dispenses_and_feedback_belong_to_the_right_people(sf, world,
                                                                          web_source):
    web_import.import_web(sf, web_source)
    mary, john, ada, sam = (key("pharmacy_patients", n) for n in (1, 2, 4, 5))
    amox, ibu, cetirizine = (key("pharmacy_stock", n) for n in (1, 4, 5))
    with sf() as s:
        rx = {p.source_ref: p for p in s.scalars(sa.select(LegacyPrescription))}
        assert {ref: (p.patient_id, p.product_id, p.prescribed_on) for ref, p in rx.items()} == {
            "pharmacy_prescription:1": (mary, amox, dt.date(2026, 10, 1)),
            "pharmacy_prescription:2": (mary, None, dt.date(2026, 10, 2)),  # two Paracetamols
            "pharmacy_prescription:3": (john, None, dt.date(2026, 10, 3)),  # unknown product
            "pharmacy_prescription:7": (ada, cetirizine, dt.date(2026, 10, 5)),
        }
        assert rx["pharmacy_prescription:1"].text == "Amoxicillin"
        assert rx["pharmacy_prescription:1"].description == "500mg three times a day for 7 days"
        assert rx["pharmacy_prescription:3"].description is None

        ds = {d.source_ref: d for d in s.scalars(sa.select(LegacyDispense))}
        assert {ref: (d.patient_id, d.product_id, d.drug_text, d.quantity, d.instructions,
                      d.dispensed_at) for ref, d in ds.items()} == {
            "pharmacy_dispense:1": (mary, amox, "Amoxicillin 500mg", 21, "1 cap tds",
                                    utc(2026, 10, 1, 11, 0)),
            "pharmacy_dispense:2": (john, ibu, "Ibuprofen 200mg", 10,
                                    "taken: yes; stock reference: GRN-881",
                                    utc(2026, 10, 4, 9, 30)),
            "pharmacy_dispense:4": (ada, None, "(unknown drug)", 3, "1 daily",
                                    utc(2026, 10, 6, 8, 0)),
            "pharmacy_dispense:5": (ada, None, "(unknown drug)", 0, None, None),
        }

        fb = {f.id: f for f in s.scalars(sa.select(PatientFeedback))}
        boss, phil = key("pharmacy_customuser", 1), key("pharmacy_customuser", 2)
        assert {f.patient_id: (f.feedback, f.reply, f.replied_by, f.replied_at, f.created_at)
                for f in fb.values()} == {
            # answered by the administrator the feedback names, when its reply was made
            mary: ("Friendly staff", "Thank you!", boss, utc(2026, 10, 8, 12, 0),
                   utc(2026, 10, 7, 12, 0)),
            john: ("Queue too long", None, None, None, utc(2026, 10, 9, 12, 0)),
            # answered by the pharmacist it names, last changed when the reply was saved
            ada: ("Great advice", "Glad to help", phil, utc(2026, 10, 11, 15, 0),
                  utc(2026, 10, 10, 12, 0)),
            # its pharmacist is not in the web app: recorded under the importing admin
            sam: ("Out of stock again", "Sorry", world.admin.staff_id,
                  utc(2026, 10, 12, 13, 0), utc(2026, 10, 12, 12, 0)),
        }


def test_staff_patients_and_stock_come_over(sf, world, web_source):
    web_import.import_web(sf, web_source)
    with sf() as s:
        people = {u.username: (u.id, u.role.value, u.full_name, u.active)
                  for u in s.scalars(sa.select(Staff).where(Staff.updated_by == web_import.WHO))}
        assert people == {
            "boss": (key("pharmacy_customuser", 1), "admin", "Grace Hopper", True),
            "phil": (key("pharmacy_customuser", 2), "pharmacist", "Phil Macy", True),
            "doc": (key("pharmacy_customuser", 3), "doctor", "Ann Tomy", True),
            "clerk1": (key("pharmacy_customuser", 4), "clerk", "Cal Erk", True),
            "gone": (key("pharmacy_customuser", 7), "pharmacist", "Old Timer", False),
        }
        pts = {p.legacy_ref: p for p in s.scalars(
            sa.select(Patient).where(Patient.legacy_ref.like("web:%")))}
        assert sorted(pts) == ["web:1", "web:2", "web:4", "web:5"]
        mary, john, ada, sam = pts["web:1"], pts["web:2"], pts["web:4"], pts["web:5"]
        # dob is a DateTimeField: the midnight of the birth date in the web app's zone
        assert (mary.date_of_birth, mary.email, mary.phone) == (
            dt.date(1970, 5, 1), "mary@example.org", "5552013344")
        assert mary.sex.value == "female" and "REG-001" in mary.notes
        assert john.date_of_birth == dt.date(1900, 1, 1) and "ask the patient" in john.notes
        assert "The web app had age 54 on 2024-03-01." in john.notes
        assert "call me" in john.notes and john.phone is None
        assert (ada.first_name, ada.email, ada.date_of_birth) == ("Ada", None,
                                                                  dt.date(1985, 12, 10))
        assert (sam.first_name, sam.last_name, sam.email, sam.date_of_birth) == (
            "Sam", "Stone", "sam@example.org", dt.date(1990, 7, 15))

        amox = s.get(Product, key("pharmacy_stock", 1))
        assert (amox.name, amox.strength, amox.manufacturer, amox.reorder_level) == (
            "Amoxicillin", "500mg", "Teva", 20)
        assert s.get(Category, amox.category_id).name == "Antibiotics"
        cetirizine = s.get(Product, key("pharmacy_stock", 5))
        assert cetirizine.category_id is None and cetirizine.reorder_level == 0
        lots = {lot.lot_number: lot for lot in s.scalars(sa.select(StockLot).where(
            StockLot.lot_number.like("WEB-%")))}
        assert sorted(lots) == ["WEB-1", "WEB-3", "WEB-4"]
        assert lots["WEB-1"].on_hand == 120 and lots["WEB-1"].expiry_date == dt.date(2027, 6, 30)
        assert lots["WEB-4"].status is LotStatus.QUARANTINED and lots["WEB-4"].on_hand == 30
    # staff have no password: they cannot sign in until an administrator sets one
    assert staff.get_staff(sf, key("pharmacy_customuser", 2)).has_password is False


def test_an_unknown_schema_is_refused_by_name(sf, world, tmp_path):
    """The pre-Django-naming guess (patient_id instead of patient_id_id) would read
    every link as empty; such a database is refused, naming what is missing."""
    path = sqlite_source(tmp_path / "db.sqlite3")
    conn = sqlite3.connect(path)
    conn.execute('ALTER TABLE "pharmacy_dispense" RENAME COLUMN "patient_id_id" TO "patient_id"')
    conn.execute('ALTER TABLE "pharmacy_patientfeedback" DROP COLUMN "admin_created_at"')
    conn.commit()
    conn.close()
    before = _totals(sf)
    with pytest.raises(ValidationError) as err:
        web_import.import_web(sf, path)
    assert "pharmacy_dispense has no column patient_id_id" in str(err.value)
    assert "pharmacy_patientfeedback has no column admin_created_at" in str(err.value)
    assert _totals(sf) == before


def test_odd_values_are_reported_not_fatal(sf, world, tmp_path):
    """What SQLite lets a column hold whatever its declared type."""
    rows = {t: [] for t in ROWS}
    rows["pharmacy_category"] = [{"id": 1, "name": "Misc"}]
    rows["pharmacy_stock"] = [
        {"id": 1, "drug_name": "Big", "quantity": 99999999999, "reorder_level": 10**12,
         "valid_to": "not a date"},
        {"id": 2, "drug_name": "Text", "quantity": "lots", "valid_to": "2027-01-01"},
    ]
    rows["pharmacy_patients"] = [{"id": 1, "first_name": "Eve", "last_name": "Odd",
                                  "dob": "9999-12-31 23:00:00", "phone_number": None}]
    rows["pharmacy_dispense"] = [
        {"id": 1, "patient_id_id": 1, "drug_id_id": 1, "dispense_quantity": 10**15,
         "dispense_at": "yesterday"},
        {"id": 2, "patient_id_id": 1, "drug_id_id": 2, "dispense_quantity": 1,
         "dispense_at": "0001-01-01 00:00:00+05:00"}]
    r = web_import.import_web(sf, sqlite_source(tmp_path / "odd.sqlite3", rows))
    assert r.counts == {"categories": 1, "products": 2, "patients": 1, "dispenses": 2}
    text = "\n".join(r.problems)
    assert "Stock row 1 (Big): quantity '99999999999' is not a quantity" in text
    assert "Stock row 2 (Text): quantity 'lots' is not a quantity" in text
    assert "Patient 1 (Eve Odd): no valid date of birth" in text
    assert "Dispense 1: quantity '1000000000000000' is not a quantity; recorded as 0" in text
    with sf() as s:
        assert s.get(Product, key("pharmacy_stock", 1)).reorder_level == 0
        ds = {d.source_ref: (d.quantity, d.dispensed_at)
              for d in s.scalars(sa.select(LegacyDispense))}
        assert ds == {"pharmacy_dispense:1": (0, None), "pharmacy_dispense:2": (1, None)}


def test_a_sqlite_url_is_opened_read_only(sf, world, tmp_path):
    path = tmp_path / "db.sqlite3"
    sqlite_source(path)
    r = web_import.import_web(sf, f"sqlite:///{path}")
    assert r.counts == COUNTS
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"  # not switched to WAL
    conn.close()


def test_history_is_permanent(sf, world, web_db):
    web_import.import_web(sf, web_db)
    with pytest.raises(sa.exc.DatabaseError), sf() as s, s.begin():
        s.execute(sa.delete(LegacyDispense))


def test_not_a_web_database_is_a_clear_error(sf, world, tmp_path):
    other = tmp_path / "other.sqlite3"
    sqlite3.connect(other).execute("CREATE TABLE x (id int)").connection.close()
    with pytest.raises(ValidationError, match="not a GetMeds web app database"):
        web_import.import_web(sf, str(other))
    with pytest.raises(ValidationError, match="does not exist"):
        web_import.import_web(sf, str(tmp_path / "nope.sqlite3"))


def test_cli_import_getmeds_web(capsys, fresh_db, web_source):
    from getmeds_desktop import db

    engine = db.make_engine(fresh_db)
    staff.create_staff(db.session_factory(engine), SYSTEM, username="firstadmin",
                       full_name="First Admin", role="admin")
    engine.dispose()
    code = cli.main(["import", "getmeds-web", web_source, "--database", fresh_db, "--dry-run"])
    out = capsys.readouterr().out
    assert code == 0 and "Would import:" in out
    assert "4 prescriptions" in out and "4 dispenses" in out and "4 feedback" in out
    assert f"{len(PROBLEMS)} things to know:" in out
    assert "pharmacy_dispense 3: patient_id_id 99 refers to no row of pharmacy_patients" in out
    code = cli.main(["import", "getmeds-web", web_source, "--database", fresh_db])
    out = capsys.readouterr().out
    assert code == 0 and "Imported:" in out and "5 products" in out and "4 patients" in out
    code = cli.main(["import", "getmeds-web", web_source, "--database", fresh_db])
    out = capsys.readouterr().out
    assert "0 prescriptions (4 already here, skipped)" in out


def test_patient_history_report_shows_the_earlier_records(sf, world, web_db, tmp_path):
    from pypdf import PdfReader

    from getmeds_desktop.reports import ReportParams, generate

    web_import.import_web(sf, web_db)
    mary = key("pharmacy_patients", 1)
    out = tmp_path / "history.pdf"
    generate(sf, world.pharmacist, "patient-history", ReportParams(patient_id=mary), out,
             generated_by="test")
    text = " ".join(page.extract_text() for page in PdfReader(out).pages)
    assert "Earlier records (from our previous system)" in text
    assert "Amoxicillin 500mg" in text and "1 cap tds" in text and "2026-10-01" in text
    assert "500mg three times a day for 7 days" in text
    # her only records are earlier ones: the empty sections say so instead of a bare header
    assert "No current prescriptions." in text and "Nothing dispensed yet." in text
