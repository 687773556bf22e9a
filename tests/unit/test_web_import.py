"""Migration from the GetMeds web app, from a SQLite database with its schema
holding the awkward data it allowed."""

from __future__ import annotations

import datetime as dt
import sqlite3

import pytest
import sqlalchemy as sa

from getmeds_desktop import cli
from getmeds_desktop.models import (
    LegacyDispense,
    LegacyPrescription,
    LotStatus,
    Patient,
    PatientFeedback,
    Product,
    Staff,
    StockLot,
)
from getmeds_desktop.services import catalog, staff, web_import
from getmeds_desktop.services.errors import ValidationError

SCHEMA = """
CREATE TABLE pharmacy_customuser (id integer primary key, password varchar(128),
    username varchar(150), first_name varchar(150), last_name varchar(150),
    email varchar(254), is_active bool, user_type varchar(10));
CREATE TABLE pharmacy_adminhod (id integer primary key, admin_id integer, emp_no varchar,
    gender varchar, mobile varchar, address varchar);
CREATE TABLE pharmacy_pharmacist (id integer primary key, admin_id integer, emp_no varchar,
    gender varchar, mobile varchar, address varchar);
CREATE TABLE pharmacy_doctor (id integer primary key, admin_id integer, emp_no varchar,
    gender varchar, mobile varchar, address varchar);
CREATE TABLE pharmacy_pharmacyclerk (id integer primary key, admin_id integer,
    emp_no varchar, gender varchar, mobile varchar, address varchar);
CREATE TABLE pharmacy_patients (id integer primary key, admin_id integer, reg_no varchar,
    gender varchar, first_name varchar, last_name varchar, dob date, phone_number varchar,
    address varchar);
CREATE TABLE pharmacy_category (id integer primary key, name varchar(50));
CREATE TABLE pharmacy_stock (id integer primary key, category_id integer,
    drug_name varchar, drug_strength varchar, quantity integer, receive_quantity integer,
    reorder_level integer, manufacture varchar, valid_to date, drug_description text);
CREATE TABLE pharmacy_prescription (id integer primary key, patient_id integer,
    prescribe varchar, description text, date_precribed datetime);
CREATE TABLE pharmacy_dispense (id integer primary key, patient_id integer, drug_id integer,
    dispense_quantity integer, instructions text, dispense_at datetime);
CREATE TABLE pharmacy_patientfeedback (id integer primary key, patient_id integer,
    feedback text, feedback_reply text);
"""

ROWS = {
    "pharmacy_customuser": [
        (1, "pbkdf2_sha256$x", "boss", "Grace", "Hopper", "grace@example.org", 1, "1"),
        (2, "pbkdf2_sha256$x", "phil", "Phil", "Macy", "", 1, "2"),
        (3, "pbkdf2_sha256$x", "doc", "Ann", "Tomy", "", 1, "3"),
        (4, "pbkdf2_sha256$x", "clerk1", "Cal", "Erk", "", 1, "4"),
        (5, "pbkdf2_sha256$x", "pat1", "Mary", "Major", "mary@example.org", 1, "5"),
        (6, "pbkdf2_sha256$x", "bad name!", "Bad", "Name", "", 1, "2"),
    ],
    "pharmacy_adminhod": [(1, 1, "E1", "Female", "555-0100", "1 Main St")],
    "pharmacy_pharmacist": [(1, 2, "E2", "Male", "555-0101", "2 Main St")],
    "pharmacy_doctor": [(1, 3, "E3", "Female", "", "")],
    "pharmacy_pharmacyclerk": [],
    "pharmacy_patients": [
        (1, 5, "REG-001", "Female", "Mary", "Major", "1970-05-01", "(555) 201-3344", "3 Oak St"),
        (2, None, "REG-002", "Male", "John", "Doe", None, "call me", ""),
        (3, None, "REG-003", "", "", "", "1980-01-01", "", ""),
    ],
    "pharmacy_category": [(1, "Antibiotics"), (2, "Analgesics")],
    "pharmacy_stock": [
        (1, 1, "Amoxicillin", "500mg", 120, 200, 20, "Teva", "2027-06-30", "caps"),
        (2, 2, "Paracetamol", "500mg", -15, 100, 10, "GSK", "2027-01-31", ""),   # negative
        (3, 2, "Paracetamol", "500mg", 40, 40, 10, "Other", "2026-12-31", ""),   # duplicate
        (4, 2, "Ibuprofen", "200mg", 30, 30, 5, "", None, ""),                   # no expiry
    ],
    "pharmacy_prescription": [
        (1, 1, "Amoxicillin", "500mg three times a day for 7 days", "2026-10-01 10:00:00"),
        (2, 1, "Paracetamol", "for pain", "2026-10-02 10:00:00"),   # two products: no link
        (3, 2, "Unobtainium 5mg", "", "2026-10-03 10:00:00"),       # no known product
        (4, 3, "Amoxicillin", "", "2026-10-03 10:00:00"),           # patient not imported
    ],
    "pharmacy_dispense": [
        (1, 1, 1, 21, "1 cap tds", "2026-10-01 11:00:00"),
        (2, 2, 4, 10, "", "2026-10-04 09:30:00"),
    ],
    "pharmacy_patientfeedback": [
        (1, 1, "Friendly staff", "Thank you!"),
        (2, 2, "Queue too long", None),
    ],
}


def make_web_db(path) -> str:  # noqa: ANN001
    conn = sqlite3.connect(path)
    conn.executescript(SCHEMA)
    for table, rows in ROWS.items():
        for row in rows:
            conn.execute(f"INSERT INTO {table} VALUES ({','.join('?' * len(row))})", row)
    conn.commit()
    conn.close()
    return str(path)


@pytest.fixture
def web_db(tmp_path) -> str:  # noqa: ANN001
    return make_web_db(tmp_path / "db.sqlite3")


def test_dry_run_lists_everything_and_writes_nothing(sf, world, web_db):
    r = web_import.import_web(sf, web_db, dry_run=True)
    assert r.dry_run
    assert r.counts == {"staff": 4, "categories": 2, "products": 4, "lots": 3, "patients": 2,
                        "prescriptions": 3, "dispenses": 2, "feedback": 2}
    text = "\n".join(r.problems)
    assert "bad name!" in text
    assert "quantity -15 is negative" in text and "imported as 0" in text
    assert "Stock rows 2 and 3 are both Paracetamol 500mg" in text
    assert "Stock row 4 (Ibuprofen): no expiry date" in text
    assert "Prescription 3 ('Unobtainium 5mg'): names no single known product" in text
    assert "Prescription 2 ('Paracetamol')" in text
    assert "Patient 3: no first or last name" in text
    with sf() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(LegacyPrescription)) == 0
        assert s.scalar(sa.select(Staff.id).where(Staff.username == "phil")) is None


def test_import_brings_everything_over_once(sf, world, web_db):
    r = web_import.import_web(sf, web_db)
    assert r.counts["patients"] == 2 and r.counts["dispenses"] == 2
    with sf() as s:
        phil = s.scalar(sa.select(Staff).where(Staff.username == "phil"))
        assert phil.role.value == "pharmacist" and phil.full_name == "Phil Macy"
        assert s.scalar(sa.select(Staff.id).where(Staff.username == "pat1")) is None
        amox = s.get(Product, web_import._key("pharmacy_stock", 1))
        assert amox.name == "Amoxicillin" and amox.strength == "500mg"
        lots = {lot.lot_number: lot for lot in s.scalars(sa.select(StockLot).where(
            StockLot.lot_number.like("WEB-%")))}
        assert lots["WEB-1"].on_hand == 120 and lots["WEB-1"].expiry_date == dt.date(2027, 6, 30)
        assert "WEB-2" not in lots  # negative stock: imported as zero
        assert lots["WEB-4"].status is LotStatus.QUARANTINED and lots["WEB-4"].on_hand == 30
        mary = s.scalar(sa.select(Patient).where(Patient.legacy_ref == "web:1"))
        assert (mary.date_of_birth, mary.email) == (dt.date(1970, 5, 1), "mary@example.org")
        assert "REG-001" in mary.notes
        john = s.scalar(sa.select(Patient).where(Patient.legacy_ref == "web:2"))
        assert john.date_of_birth == dt.date(1900, 1, 1) and "ask the patient" in john.notes
        assert "call me" in john.notes and john.phone is None
        rx = {p.source_ref: p for p in s.scalars(sa.select(LegacyPrescription))}
        assert rx["pharmacy_prescription:1"].product_id == amox.id
        assert rx["pharmacy_prescription:2"].product_id is None  # two Paracetamols
        assert rx["pharmacy_prescription:3"].text == "Unobtainium 5mg"
        assert rx["pharmacy_prescription:3"].product_id is None
        d = s.scalar(sa.select(LegacyDispense).where(
            LegacyDispense.source_ref == "pharmacy_dispense:1"))
        assert d.quantity == 21 and d.drug_text == "Amoxicillin 500mg"
        fb = s.scalar(sa.select(PatientFeedback).where(PatientFeedback.patient_id == mary.id))
        assert fb.reply == "Thank you!" and fb.replied_by is not None
    # staff have no password: they cannot sign in until an administrator sets one
    assert staff.get_staff(sf, web_import._key("pharmacy_customuser", 2)).has_password is False

    again = web_import.import_web(sf, web_db)
    assert sum(again.counts.values()) == 0
    assert again.existing["patients"] == 2 and again.existing["dispenses"] == 2
    assert catalog.get_product(sf, web_import._key("pharmacy_stock", 1)).name == "Amoxicillin"


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


def test_cli_import_getmeds_web(capsys, fresh_db, tmp_path):
    from getmeds_desktop import db

    engine = db.make_engine(fresh_db)
    staff.create_staff(db.session_factory(engine), None, username="firstadmin",
                       full_name="First Admin", role="admin")
    engine.dispose()
    web = make_web_db(tmp_path / "web.sqlite3")
    code = cli.main(["import", "getmeds-web", web, "--database", fresh_db, "--dry-run"])
    out = capsys.readouterr().out
    assert code == 0 and "Would import:" in out and "2 patients" in out
    assert "quantity -15 is negative" in out
    code = cli.main(["import", "getmeds-web", web, "--database", fresh_db])
    out = capsys.readouterr().out
    assert code == 0 and "Imported:" in out and "4 products" in out
    code = cli.main(["import", "getmeds-web", web, "--database", fresh_db])
    assert "(2 already here, skipped)" in capsys.readouterr().out


def test_patient_history_report_shows_the_earlier_records(sf, world, web_db, tmp_path):
    from pypdf import PdfReader

    from getmeds_desktop.reports import ReportParams, generate

    web_import.import_web(sf, web_db)
    mary = web_import._key("pharmacy_patients", 1)
    out = tmp_path / "history.pdf"
    generate(sf, world.pharmacist, "patient-history", ReportParams(patient_id=mary), out,
             generated_by="test")
    text = " ".join(page.extract_text() for page in PdfReader(out).pages)
    assert "Earlier records (from our previous system)" in text
    assert "Amoxicillin 500mg" in text and "1 cap tds" in text and "2026-10-01" in text
    assert "500mg three times a day for 7 days" in text
    # her only records are earlier ones: the empty sections say so instead of a bare header
    assert "No current prescriptions." in text and "Nothing dispensed yet." in text
