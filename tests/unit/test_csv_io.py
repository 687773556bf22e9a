"""CSV import (dry run, mapping, all-or-nothing, no duplicates) and export."""

from __future__ import annotations

import csv
import datetime as dt

import pytest

from getmeds_desktop import cli
from getmeds_desktop.models import Schedule, StorageCondition
from getmeds_desktop.services import catalog, csv_io, listing, patients
from getmeds_desktop.services.errors import PermissionDenied, ValidationError

PATIENTS = """\
Surname;Given name;DOB;Gender;Phone;Allergies;Notes
Okafor;Ada;1961-04-02;F;(555) 201-3344;Penicillin; Sulfa;
Brandt;Otto;07/30/1948;m;;;prefers large print
"""

PRODUCTS = """\
Product,Strength,Form,NDC,Category,Schedule,Storage,Reorder level,Price,Active ingredients
Amoxicillin,500 mg,capsule,0093-3109-01,Antibiotics,,room,20,$0.12,Amoxicillin
Oxycodone,5 mg,tablet,0406-0552-01,Analgesics,CII,,10,0.45,Oxycodone Hydrochloride
Insulin glargine,100 units/mL,solution,,Diabetes,,fridge,2,"1,200.00",Insulin Glargine
"""


def write(tmp_path, name, text, encoding="utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def test_mapping_is_guessed_from_the_header(tmp_path):
    data = csv_io.read_csv(write(tmp_path, "p.csv", PATIENTS))
    assert data.delimiter == ";" and data.row_count == 2
    m = csv_io.guess_mapping(data.headers, "patients")
    assert m["last_name"] == "Surname" and m["first_name"] == "Given name"
    assert m["date_of_birth"] == "DOB" and m["sex"] == "Gender" and m["email"] is None


def test_patients_import_then_again_updates_and_never_duplicates(tmp_path, sf, world):
    # Windows-1252, as Excel saves it
    path = write(tmp_path, "p.csv", PATIENTS.replace("Okafor", "Okaför"), "cp1252")
    data = csv_io.read_csv(path)
    # "Sulfa" after the ';' of the allergies is its own column in a ';' file: the row has
    # more values than columns -> an error, nothing written
    result = csv_io.import_csv(sf, world.clerk, "patients", data)
    assert not result.written and [p.line for p in result.problems] == [2]
    assert "8 values but 7 columns" in str(result.problems[0])

    fixed = PATIENTS.replace("Penicillin; Sulfa", "Penicillin| Sulfa")
    data = csv_io.read_csv(write(tmp_path, "p2.csv", fixed))
    dry = csv_io.import_csv(sf, world.clerk, "patients", data, dry_run=True)
    assert dry.dry_run and (dry.created, dry.updated) == (2, 0) and not dry.problems
    assert listing.list_patients(sf, world.clerk, "okafor").rows == ()

    done = csv_io.import_csv(sf, world.clerk, "patients", data)
    assert done.written and (done.created, done.updated) == (2, 0)
    row = listing.list_patients(sf, world.clerk, "okafor").rows[0]
    ada = patients.get_patient(sf, world.clerk, row.id)
    assert ada.date_of_birth == dt.date(1961, 4, 2) and ada.sex.value == "female"
    assert sorted(a.allergen for a in ada.allergies) == ["Penicillin", "Sulfa"]
    otto = listing.list_patients(sf, world.clerk, "brandt").rows[0]
    assert otto.date_of_birth == dt.date(1948, 7, 30)

    again = csv_io.import_csv(sf, world.clerk, "patients", data)
    assert (again.created, again.updated) == (0, 2)
    assert len(listing.list_patients(sf, world.clerk, "okafor").rows) == 1


def test_every_bad_row_is_listed_and_nothing_is_written(tmp_path, sf, world):
    text = ("first,last,dob,sex,email\n"
            "Ann,Lee,2199-01-01,F,\n"          # future birth date
            "Bob,,1970-01-01,M,\n"             # no last name
            "Cy,Ng,31/31/1970,M,\n"            # not a date
            "Di,Ho,1980-02-03,Q,\n"            # not a sex
            "Ed,Yu,1980-02-03,M,not-an-email\n"
            "Flo,Ray,1990-05-06,F,flo@example.org\n"  # fine
            "flo,RAY,1990-05-06,F,\n")         # the same patient twice
    data = csv_io.read_csv(write(tmp_path, "bad.csv", text))
    r = csv_io.import_csv(sf, world.clerk, "patients", data)
    lines = {p.line: p.message for p in r.problems}
    assert sorted(lines) == [2, 3, 4, 5, 6, 8]
    assert "future" in lines[2] and "Last name" in lines[3] and "not a date" in lines[4]
    assert "not a sex" in lines[5] and "mail" in lines[6] and "line 7" in lines[8]
    assert listing.list_patients(sf, world.clerk, "ray").rows == ()


def test_products_import_with_categories_and_ndc_matching(tmp_path, sf, world):
    data = csv_io.read_csv(write(tmp_path, "products.csv", PRODUCTS))
    with pytest.raises(PermissionDenied):
        csv_io.import_csv(sf, world.clerk, "products", data)
    r = csv_io.import_csv(sf, world.admin, "products", data)
    assert r.written and (r.created, r.updated) == (3, 0), r.problems
    oxy = catalog.find_product_by_ndc(sf, "0406-0552-01")
    assert oxy.schedule is Schedule.II and oxy.reorder_level == 10
    assert [i.name for i in oxy.ingredients] == ["Oxycodone Hydrochloride"]
    rows = listing.list_products(sf, world.admin, listing.ProductFilter(search="insulin")).rows
    assert rows[0].storage is StorageCondition.REFRIGERATED and rows[0].category == "Diabetes"
    assert catalog.get_product(sf, rows[0].id).unit_price == 1200

    # the price list changes; the same products are updated by NDC, or by name and strength
    changed = PRODUCTS.replace("0.45", "0.50").replace(",2,", ",5,")
    r2 = csv_io.import_csv(sf, world.admin, "products",
                           csv_io.read_csv(write(tmp_path, "p2.csv", changed)))
    assert (r2.created, r2.updated) == (0, 3)
    assert catalog.find_product_by_ndc(sf, "0406-0552-01").unit_price == pytest.approx(0.5)
    assert listing.count_products(sf, world.admin, listing.ProductFilter(search="insulin")) == 1


def test_a_column_the_file_lacks_or_a_required_field_unmapped_is_refused(tmp_path, sf, world):
    data = csv_io.read_csv(write(tmp_path, "p.csv", "name,born\nA,2000-01-01\n"))
    m = csv_io.guess_mapping(data.headers, "patients")
    with pytest.raises(ValidationError, match="first name"):
        csv_io.import_csv(sf, world.clerk, "patients", data, m)
    m.update(first_name="name", last_name="nope")
    with pytest.raises(ValidationError, match="no column 'nope'"):
        csv_io.import_csv(sf, world.clerk, "patients", data, m)
    with pytest.raises(ValidationError, match="empty"):
        csv_io.read_csv(write(tmp_path, "e.csv", ""))


def test_export_then_import_round_trips(tmp_path, sf, world):
    data = csv_io.read_csv(write(tmp_path, "products.csv", PRODUCTS))
    csv_io.import_csv(sf, world.admin, "products", data)
    p = catalog.find_product_by_ndc(sf, "0093-3109-01")
    world.receive(p.id, 40)
    out = tmp_path / "out.csv"
    n = csv_io.export_table(sf, world.admin, "products", out)
    with open(out, encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert n == len(rows) >= 3
    amox = next(r for r in rows if r["NDC"] == "00093-3109-01")
    assert amox["Category"] == "Antibiotics" and amox["Schedule"] == "none"
    again = csv_io.import_csv(sf, world.admin, "products", csv_io.read_csv(out))
    assert again.created == 0 and again.updated == n, again.problems
    for kind in ("patients", "lots", "dispenses"):
        assert csv_io.export_table(sf, world.admin, kind, tmp_path / f"{kind}.csv") >= 0
        assert (tmp_path / f"{kind}.csv").read_text(encoding="utf-8-sig").count("\n") >= 1
    with pytest.raises(PermissionDenied):
        csv_io.export_table(sf, world.doctor, "dispenses", tmp_path / "d.csv")


def test_formulas_are_not_exported_as_formulas(tmp_path):
    out = tmp_path / "x.csv"
    csv_io.write_csv(out, ["a"], [["=HYPERLINK(\"x\")"], ["-12.5"], ["-x"]])
    lines = out.read_text(encoding="utf-8-sig").splitlines()
    assert lines[1].startswith("\"'=HYPERLINK") and lines[2] == "-12.5" and lines[3] == "'-x"


def test_cli_import_and_export(tmp_path, capsys, fresh_db):
    bad = write(tmp_path, "bad.csv", "first,last,dob\nA,B,notadate\n")
    code = cli.main(["import", "csv", "patients", str(bad), "--database", fresh_db])
    out = capsys.readouterr().out
    assert code == 1 and "line 2" in out and "nothing was imported" in out
    good = write(tmp_path, "good.csv", "given,family,birthday\nA,B,2001-02-03\n")
    code = cli.main(["import", "csv", "patients", str(good), "--database", fresh_db,
                     "--map", "first_name=given", "--map", "last_name=family",
                     "--map", "date_of_birth=birthday", "--dry-run"])
    assert code == 0 and "1 new and 0 existing patients would be imported" in \
        capsys.readouterr().out
    code = cli.main(["import", "csv", "patients", str(good), "--database", fresh_db,
                     "--map", "first_name=given", "--map", "last_name=family",
                     "--map", "date_of_birth=birthday"])
    assert code == 0 and "were imported" in capsys.readouterr().out
    out_csv = tmp_path / "patients.csv"
    code = cli.main(["export", "patients", "--out", str(out_csv), "--database", fresh_db])
    assert code == 0 and "Wrote 1 patients" in capsys.readouterr().out
    assert "2001-02-03" in out_csv.read_text(encoding="utf-8-sig")
    code = cli.main(["import", "csv", "patients", str(good), "--database", fresh_db,
                     "--map", "bogus=x"])
    assert code == 1 and "--map takes FIELD=COLUMN" in capsys.readouterr().err


@pytest.mark.slow  # a subprocess or a big file
def test_a_big_file_is_refused_in_flat_memory(tmp_path):
    """A 39 MB CSV with too many rows once took 367 MB to be refused: it is read
    as a stream, so memory does not grow with the file."""
    import tracemalloc

    path = tmp_path / "big.csv"
    row = "Firstname,Lastname,1980-01-02,555-0100,12 Long Street Name,Springfield,IL,62701\n"
    with open(path, "w") as fh:
        fh.write("First name,Last name,Date of birth,Phone,Address,City,State,ZIP\n")
        for _ in range(39_000_000 // len(row)):
            fh.write(row)
    tracemalloc.start()
    try:
        with pytest.raises(ValidationError, match="more than 200,000 rows"):
            csv_io.read_csv(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, f"{peak / 1e6:.0f} MB"
