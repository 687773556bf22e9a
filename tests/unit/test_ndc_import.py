"""The FDA NDC Directory import, from files built here in the FDA's format."""

from __future__ import annotations

from pathlib import Path

import pytest

from getmeds_desktop.models import Schedule
from getmeds_desktop.services import catalog, listing
from getmeds_desktop.services.errors import PermissionDenied, ValidationError
from getmeds_desktop.services.ndc_import import (
    PUBLISHED_PACKAGE_COLUMNS,
    PUBLISHED_PRODUCT_COLUMNS,
    import_directory,
    read_directory,
)

PRODUCT_HEADER = "\t".join(PUBLISHED_PRODUCT_COLUMNS)
PACKAGE_HEADER = "\t".join(PUBLISHED_PACKAGE_COLUMNS)


def product(pid: str, ndc: str, name: str, generic: str, form: str, route: str, labeler: str,
            substances: str, amounts: str, units: str, classes: str = "", dea: str = "") -> str:
    return "\t".join([pid, ndc, "HUMAN PRESCRIPTION DRUG", name, "", generic, form, route,
                      "20200101", "", "NDA", "NDA000001", labeler, substances, amounts, units,
                      classes, dea, "N", "20271231"])


def package(pid: str, ndc: str, code: str, description: str) -> str:
    return "\t".join([pid, ndc, code, description, "20200101", "", "N", "N"])


PRODUCTS = [
    # 4-4-2, with drug classes (the allergy check uses them)
    product("P1", "0002-3227", "Amoxil", "amoxicillin", "CAPSULE", "ORAL", "Ndcpharm Inc",
            "AMOXICILLIN", "500", "mg/1",
            "Penicillin-class Antibacterial [EPC],Penicillins [CS]"),
    # 5-3-2, Schedule II, two ingredients
    product("P2", "12345-678", "Percoxy", "oxycodone and acetaminophen", "TABLET", "ORAL",
            "Labeler Two", "OXYCODONE HYDROCHLORIDE; ACETAMINOPHEN", "5; 325", "mg/1; mg/1",
            "Opioid Agonist [EPC]", "CII"),
    # 5-4-1, Schedule III..V
    product("P3", "54321-9876", "Tylenol-Codeine", "acetaminophen and codeine", "TABLET",
            "ORAL", "Labeler Three", "ACETAMINOPHEN; CODEINE PHOSPHATE", "300; 30",
            "mg/1; mg/1", "", "CIII"),
    product("P4", "11111-2222", "Xanax", "alprazolam", "TABLET", "ORAL", "L4", "ALPRAZOLAM",
            "0.5", "mg/1", "Benzodiazepine [EPC]", "CIV"),
    product("P5", "22222-3333", "Lyrica", "pregabalin", "CAPSULE", "ORAL", "L5", "PREGABALIN",
            "75", "mg/1", "", "CV"),
    # a liquid, nested package description
    product("P6", "33333-444", "", "ondansetron", "SOLUTION", "ORAL", "L6", "ONDANSETRON",
            "4", "mg/5mL"),
    # Schedule I: never imported
    product("P7", "44444-5555", "Research", "something", "POWDER", "ORAL", "L7", "X", "1",
            "g/g", "", "CI"),
    # no name at all
    product("P8", "55555-6666", "", "", "TABLET", "ORAL", "L8", "Y", "1", "mg/1"),
]
PACKAGES = [
    package("P1", "0002-3227", "0002-3227-30", "30 CAPSULE in 1 BOTTLE (0002-3227-30)"),
    package("P1", "0002-3227", "0002-3227-01", "100 CAPSULE in 1 BOTTLE (0002-3227-01)"),
    package("P2", "12345-678", "12345-678-90", "100 TABLET in 1 BOTTLE (12345-678-90)"),
    package("P3", "54321-9876", "54321-9876-1", "30 TABLET in 1 BOTTLE (54321-9876-1)"),
    package("P4", "11111-2222", "11111-2222-33", "90 TABLET in 1 BOTTLE (11111-2222-33)"),
    package("P5", "22222-3333", "22222-3333-44", "60 CAPSULE in 1 BOTTLE (22222-3333-44)"),
    package("P6", "33333-444", "33333-444-55",
            "1 BOTTLE in 1 CARTON (33333-444-55) > 50 mL in 1 BOTTLE"),
    package("P7", "44444-5555", "44444-5555-66", "1 g in 1 VIAL"),
    package("P8", "55555-6666", "55555-6666-77", "10 TABLET in 1 BLISTER PACK"),
    package("P9", "66666-7777", "66666-7777-88", "10 TABLET in 1 BOTTLE"),   # unknown product
    package("P1", "0002-3227", "0002-32-27", "10 CAPSULE in 1 BOTTLE"),      # not an NDC
]


def write(folder: Path, products=PRODUCTS, packages=PACKAGES) -> tuple[Path, Path]:
    prod = folder / "product.txt"
    pack = folder / "package.txt"
    prod.write_bytes(("\r\n".join([PRODUCT_HEADER, *products]) + "\r\n").encode("cp1252"))
    pack.write_bytes(("\r\n".join([PACKAGE_HEADER, *packages]) + "\r\n").encode("cp1252"))
    return prod, pack


def test_reading_the_directory(tmp_path):
    prod, pack = write(tmp_path)
    items = list(read_directory(prod, pack))
    good = {i.ndc: i for i in items if not hasattr(i, "message")}
    bad = [str(i) for i in items if hasattr(i, "message")]
    assert set(good) == {"00002322730", "00002322701", "12345067890", "54321987601",
                         "11111222233", "22222333344", "33333044455"}
    oxy = good["12345067890"]
    assert oxy.schedule is Schedule.II and oxy.name == "Percoxy"
    assert oxy.ingredients == (("Oxycodone Hydrochloride", "5 mg"), ("Acetaminophen", "325 mg"))
    assert oxy.strength == "5 mg / 325 mg" and oxy.pack_size == 100 and oxy.unit == "tablet"
    assert good["54321987601"].schedule is Schedule.III
    assert good["11111222233"].schedule is Schedule.IV
    assert good["22222333344"].schedule is Schedule.V
    amox = good["00002322730"]
    assert amox.classes == ("Penicillin-class Antibacterial", "Penicillins")
    liquid = good["33333044455"]
    assert liquid.name == "ondansetron" and (liquid.unit, liquid.pack_size) == ("ml", 50)
    assert liquid.strength == "4 mg/5mL"
    assert any("package.txt, line 9" in b and "Schedule I" in b for b in bad)
    assert any("product.txt, line 9" in b and "no PROPRIETARYNAME" in b for b in bad)
    assert any("line 11" in b and "P9 is not in product.txt" in b for b in bad)
    assert any("line 12" in b and "'0002-32-27' is not a package NDC" in b for b in bad)


def test_import_then_reimport_updates_and_never_duplicates(tmp_path, sf, world):
    prod, pack = write(tmp_path)
    first = import_directory(sf, world.admin, prod, pack)
    assert (first.created, first.updated) == (7, 0) and len(first.problems) == 4
    p = catalog.find_product_by_ndc(sf, "12345-678-90")
    assert p.schedule is Schedule.II and p.manufacturer == "Labeler Two"
    assert [i.name for i in p.ingredients] == ["Oxycodone Hydrochloride", "Acetaminophen"]
    amox = catalog.find_product_by_ndc(sf, "0002-3227-30")
    assert "Penicillins" in amox.drug_classes

    # the labeler renames a product; the directory is imported again
    changed = [row.replace("Labeler Two", "Labeler Two LLC") for row in PRODUCTS]
    prod, pack = write(tmp_path, changed)
    again = import_directory(sf, world.admin, prod, pack)
    assert (again.created, again.updated) == (0, 7)
    p2 = catalog.find_product_by_ndc(sf, "12345-678-90")
    assert p2.id == p.id and p2.manufacturer == "Labeler Two LLC" and p2.version == p.version + 1
    assert [i.name for i in p2.ingredients] == ["Oxycodone Hydrochloride", "Acetaminophen"]
    count = listing.count_products(sf, world.admin, listing.ProductFilter(
        include_inactive=True))
    assert count == 7


def test_a_dry_run_writes_nothing(tmp_path, sf, world):
    prod, pack = write(tmp_path)
    result = import_directory(sf, world.admin, prod, pack, dry_run=True)
    assert result.dry_run and result.created == 7 and len(result.problems) == 4
    assert catalog.find_product_by_ndc(sf, "12345-678-90") is None


def test_files_that_are_not_the_directory_are_refused(tmp_path, sf, world):
    prod = tmp_path / "product.txt"
    prod.write_text("name,ndc\nx,1\n")
    with pytest.raises(ValidationError, match="not an FDA NDC Directory file"):
        import_directory(sf, world.admin, prod, prod)
    with pytest.raises(PermissionDenied):
        import_directory(sf, world.clerk, prod, prod)


def test_an_interrupted_import_leaves_whole_batches_and_finishes_on_the_next_run(
        tmp_path, sf, world):
    prod, pack = write(tmp_path)
    calls = []

    def stop_after_first_batch(message, fraction):
        calls.append(message)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        import_directory(sf, world.admin, prod, pack, batch=3, progress=stop_after_first_batch)
    assert len(calls) == 1
    products = listing.list_products(sf, world.admin, listing.ProductFilter(
        include_inactive=True)).rows
    assert len(products) == 3  # one whole batch, nothing of the next
    for row in products:
        assert catalog.get_product(sf, row.id).ingredients  # never a product without them
    rest = import_directory(sf, world.admin, prod, pack, batch=3)
    assert (rest.created, rest.updated) == (4, 3)


def test_cli_import_ndc(tmp_path, capsys, fresh_db):
    from getmeds_desktop import cli

    prod, pack = write(tmp_path)
    code = cli.main(["import", "ndc", str(prod), str(pack), "--database", fresh_db, "--dry-run"])
    out = capsys.readouterr().out
    assert code == 0 and "7 new products and 0 updated products would be imported" in out
    code = cli.main(["import", "ndc", str(prod), str(pack), "--database", fresh_db])
    out = capsys.readouterr().out
    assert code == 0 and "7 new products and 0 updated products were imported" in out
    assert "4 rows were skipped" in out and "package.txt, line 9" in out
    code = cli.main(["import", "ndc", str(prod), str(pack), "--database", fresh_db])
    assert "0 new products and 7 updated products" in capsys.readouterr().out
    code = cli.main(["import", "ndc", str(tmp_path / "nope.txt"), str(pack),
                     "--database", fresh_db])
    err = capsys.readouterr().err
    assert code == 1 and "nope.txt cannot be read" in err and "Traceback" not in err


def _snapshot(sf, ndc):
    p = catalog.find_product_by_ndc(sf, ndc)
    return (p.name, p.manufacturer, p.unit, p.pack_size, p.strength, p.ingredients,
            p.drug_classes, p.version)


def test_an_interrupted_download_is_refused_and_changes_nothing(tmp_path, sf, world):
    """Truncated copies of both files (the download stopped in the middle of the
    last row): refused before anything is written; the last product keeps its
    ingredients, manufacturer, unit and pack size."""
    prod, pack = write(tmp_path)
    import_directory(sf, world.admin, prod, pack)
    before = _snapshot(sf, "33333-444-55")
    full_prod, full_pack = prod.read_bytes(), pack.read_bytes()
    cut = tmp_path / "cut"
    cut.mkdir()
    for prod_bytes, pack_bytes in ((full_prod[:-30], full_pack),
                                   (full_prod, full_pack[:-40]),
                                   (full_prod[:-30], full_pack[:-40])):
        (cut / "product.txt").write_bytes(prod_bytes)
        (cut / "package.txt").write_bytes(pack_bytes)
        with pytest.raises(ValidationError, match="ends in the middle of a row"):
            import_directory(sf, world.admin, cut / "product.txt", cut / "package.txt")
        assert _snapshot(sf, "33333-444-55") == before


def test_a_short_row_is_a_problem_and_never_blanks_the_product(tmp_path, sf, world):
    prod, pack = write(tmp_path)
    import_directory(sf, world.admin, prod, pack)
    before = _snapshot(sf, "12345-678-90")
    # the Percoxy product row lost its last eight fields; Amoxil's package row two
    short_products = [("\t".join(r.split("\t")[:12]) if r.startswith("P2\t") else r)
                      for r in PRODUCTS]
    short_packages = [("\t".join(r.split("\t")[:4]) if r.startswith("P1\t0002-3227\t"
                                                                     "0002-3227-30") else r)
                      for r in PACKAGES]
    prod, pack = write(tmp_path, short_products, short_packages)
    again = import_directory(sf, world.admin, prod, pack)
    problems = [str(p) for p in again.problems]
    assert any(p.startswith("product.txt, line 3:") and "12 fields but the header has 20"
               in p for p in problems)
    assert any(p.startswith("package.txt, line 2:") and "4 fields but the header has 8"
               in p for p in problems)
    assert _snapshot(sf, "12345-678-90") == before  # not updated from a broken row
    amox = catalog.find_product_by_ndc(sf, "0002-3227-30")
    assert amox.ingredients and amox.manufacturer == "Ndcpharm Inc"


def test_fields_the_file_leaves_empty_keep_what_the_product_has(tmp_path, sf, world):
    prod, pack = write(tmp_path)
    import_directory(sf, world.admin, prod, pack)
    before = _snapshot(sf, "12345-678-90")

    def emptied(row: str) -> str:
        f = row.split("\t")
        if f[0] == "P2":
            f[6] = f[7] = f[12] = f[13] = f[14] = f[15] = f[16] = ""
        return "\t".join(f)

    packages = [("\t".join([*r.split("\t")[:3], "", *r.split("\t")[4:]])
                 if r.startswith("P2\t") else r) for r in PACKAGES]
    prod, pack = write(tmp_path, [emptied(r) for r in PRODUCTS], packages)
    import_directory(sf, world.admin, prod, pack)
    after = _snapshot(sf, "12345-678-90")
    assert after[:7] == before[:7]
    p = catalog.find_product_by_ndc(sf, "12345-678-90")
    assert p.dosage_form == "tablet" and p.route == "oral"


@pytest.mark.parametrize("description, fragment", [
    ("99999999999 TABLET in 1 BOTTLE", "pack size 99,999,999,999 is out of range"),
    ("10000001 TABLET in 1 DRUM", "pack size 10,000,001 is out of range"),
])
def test_an_out_of_range_value_is_a_problem_of_its_row(tmp_path, sf, world, description,
                                                       fragment):
    """Once aborted the import on PostgreSQL ("integer out of range") after
    earlier batches committed; SQLite stored it. Now the row is reported and the
    others are imported, on both databases, in one run."""
    packages = [*PACKAGES[:2],
                package("P2", "12345-678", "12345-678-90", description), *PACKAGES[3:]]
    prod, pack = write(tmp_path, PRODUCTS, packages)
    result = import_directory(sf, world.admin, prod, pack, batch=2)
    assert result.created == 6
    assert any(str(p).startswith("package.txt, line 4:") and fragment in str(p)
               for p in result.problems)
    assert catalog.find_product_by_ndc(sf, "12345-678-90") is None


def test_a_huge_field_is_a_problem_of_its_row(tmp_path, sf, world):
    huge = product("P4", "11111-2222", "Xanax", "alprazolam", "TABLET", "ORAL", "L" * 200_000,
                   "ALPRAZOLAM", "0.5", "mg/1")
    prod, pack = write(tmp_path, [r for r in PRODUCTS if not r.startswith("P4\t")] + [huge])
    result = import_directory(sf, world.admin, prod, pack)
    assert result.created == 6
    assert any(str(p).startswith("product.txt, line 9:") and "longer than 100,000" in str(p)
               for p in result.problems)
