"""Bad input, collected in one table: each case is what a user or an operator
really feeds ``getmeds-admin`` (broken, truncated, binary, huge and hostile
files, odd values and odd places to write to). Each must end with the expected
exit code and a sentence a person can act on, never a traceback or "unexpected
error", and must leave the database as it was (or change only what the case
says). Run on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from getmeds_desktop import cli, db
from getmeds_desktop.services import catalog
from getmeds_desktop.services.errors import ValidationError
from tests.fixtures.data import build_world
from tests.unit.test_ndc_import import PACKAGES, PRODUCTS, package
from tests.unit.test_ndc_import import write as write_ndc

COUNTED = ("patients", "products", "product_ingredients", "stock_lots", "stock_movements",
           "prescriptions", "dispenses", "categories")

PATIENTS_HEADER = "First name,Last name,Date of birth,Phone\n"
PRODUCTS_HEADER = "Name,Strength,NDC,Unit price,Pack size\n"


@dataclasses.dataclass(frozen=True)
class Case:
    id: str
    make: Callable[[Path], list[str]]  # builds the input in a folder -> CLI arguments
    code: int
    message: str  # a fragment of what the user reads (stdout and stderr)
    changed: dict[str, int] = dataclasses.field(default_factory=dict)  # table -> rows added


def _file(folder: Path, name: str, content: str | bytes) -> Path:
    path = folder / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


def _csv(kind: str, content: str | bytes, name: str = "in.csv") -> Callable[[Path], list[str]]:
    return lambda d: ["import", "csv", kind, str(_file(d, name, content))]


def _sparse(folder: Path, size: int) -> list[str]:
    path = folder / "huge.csv"
    with open(path, "wb") as fh:
        fh.write(PATIENTS_HEADER.encode())
        fh.truncate(size)
    return ["import", "csv", "patients", str(path)]


def _ndc(products: list[str], packages: list[str], cut_package: int = 0
         ) -> Callable[[Path], list[str]]:
    def make(d: Path) -> list[str]:
        prod, pack = write_ndc(d, products, packages)
        if cut_package:
            pack.write_bytes(pack.read_bytes()[:-cut_package])
        return ["import", "ndc", str(prod), str(pack)]
    return make


GOOD_PATIENT = "Ann,Lee,1980-01-02,555-0100\n"
LONG = "x" * 200_000
PRODUCT_ROWS = [r for r in PRODUCTS if r.split("\t")[0] in ("P1", "P2")]
PACKAGE_ROWS = [r for r in PACKAGES if r.split("\t")[0] in ("P1", "P2")]
HUGE_PACK = [package("P2", "12345-678", "12345-678-90", "99999999999 TABLET in 1 BOTTLE")]

CASES = [
    Case("csv-nan-price", _csv("products", PRODUCTS_HEADER + "Amoxil,500 mg,,NaN,1\n"),
         1, "line 2: Unit price must be a number."),
    Case("csv-infinite-price", _csv("products", PRODUCTS_HEADER + "Amoxil,500 mg,,1e999,1\n"),
         1, "line 2: Unit price must be at most 99,999,999.9999."),
    Case("csv-huge-price", _csv("products", PRODUCTS_HEADER + "Amoxil,500 mg,,1e30,1\n"),
         1, "line 2: Unit price must be at most"),
    Case("csv-huge-pack", _csv("products", PRODUCTS_HEADER + "Amoxil,500 mg,,1.00,99999999999\n"),
         1, "line 2: Pack size must be at most 10,000,000."),
    Case("csv-unterminated-quote",
         _csv("patients", PATIENTS_HEADER + GOOD_PATIENT + '"Bob,Ray,1970-02-02,555\n'
              + GOOD_PATIENT.replace("Ann", "Cid")),
         1, "in.csv, line 3: a quoted value is never closed"),
    Case("csv-stray-quote", _csv("patients", PATIENTS_HEADER + '"Bob"x,Ray,1970-02-02,555\n'),
         1, "in.csv, line 2: a quote inside a value must be doubled"),
    Case("csv-duplicate-column",
         _csv("patients", "First name,Last name,Date of birth,Last name\n" + GOOD_PATIENT),
         1, "has the column 'Last name' twice"),
    Case("csv-binary", _csv("patients", b"PK\x03\x04\x14\x00\x00\x00" + bytes(range(256)) * 8,
                            name="patients.xlsx"),
         1, "holds binary data"),
    Case("csv-empty", _csv("patients", ""), 1, "in.csv is empty"),
    Case("csv-only-spaces", _csv("patients", " , ,\n"), 1, "the first line must name the columns"),
    Case("csv-device", lambda d: ["import", "csv", "patients", "/dev/zero"], 1,
         "/dev/zero is not a CSV file: it is not a regular file"),
    Case("csv-too-big", lambda d: _sparse(d, 101 << 20), 1, "a CSV file may be at most 100 MB"),
    Case("csv-long-line", _csv("patients", PATIENTS_HEADER + f"Ann,Lee,1980-01-02,{LONG}\n"),
         1, "in.csv, line 2: the line is longer than 100,000 characters"),
    Case("csv-truncated-row", _csv("patients", PATIENTS_HEADER + GOOD_PATIENT + "Bob,Ray,19"),
         1, "line 3: '19' is not a date"),
    Case("csv-missing-file", lambda d: ["import", "csv", "patients", str(d / "nope.csv")], 1,
         "nope.csv cannot be read: No such file or directory."),
    Case("csv-good", _csv("patients", PATIENTS_HEADER + GOOD_PATIENT), 0,
         "1 new and 0 existing patients were imported", {"patients": 1}),
    Case("ndc-cut-download", _ndc(PRODUCT_ROWS, PACKAGE_ROWS, cut_package=25), 1,
         "package.txt ends in the middle of a row"),
    Case("ndc-huge-pack", _ndc(PRODUCT_ROWS, [*PACKAGE_ROWS[:2], *HUGE_PACK]), 0,
         "the pack size 99,999,999,999 is out of range", {"products": 2,
                                                          "product_ingredients": 2}),
    Case("ndc-huge-field",
         _ndc([*PRODUCT_ROWS[:1], PRODUCT_ROWS[1].replace("Labeler Two", LONG)], PACKAGE_ROWS),
         0, "product.txt, line 3: the row is longer than 100,000 characters",
         {"products": 2, "product_ingredients": 2}),
    Case("ndc-binary", lambda d: ["import", "ndc", str(_file(d, "product.txt", bytes(4096))),
                                  str(_file(d, "package.txt", bytes(4096)))], 1,
         "product.txt is not an FDA NDC Directory file: it holds binary data"),
    Case("report-all-time", lambda d: ["report", "dispensing-log", "--from", "0001-01-01",
                                       "--to", "9999-12-31", "--out", str(d / "all.pdf")],
         0, "Wrote"),
    Case("report-bad-date", lambda d: ["report", "dispensing-log", "--from", "2026-02-30",
                                       "--to", "2026-03-01", "--out", str(d / "x.pdf")],
         2, "2026-02-30"),
]


@pytest.fixture
def target(fresh_db) -> Iterator[str]:
    engine = db.make_engine(fresh_db)
    build_world(db.session_factory(engine))
    engine.dispose()
    yield fresh_db


def counts(url: str) -> dict[str, int]:
    engine = db.make_engine(url, poolclass=sa.NullPool)
    try:
        with engine.connect() as c:
            return {t: c.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one()
                    for t in COUNTED}
    finally:
        engine.dispose()


def run_cli(argv: list[str], capsys) -> tuple[int, str]:
    try:
        code = cli.main(argv)
    except SystemExit as exc:  # argparse refuses a malformed option
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out + out.err


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, target, tmp_path, capsys):
    argv = [*case.make(tmp_path), "--database", target]
    before = counts(target)
    code, said = run_cli(argv, capsys)
    assert code == case.code, said
    assert case.message in said, said
    for bad in ("Traceback", "unexpected error", "Exception"):
        assert bad not in said, said
    after = counts(target)
    assert {t: after[t] - before[t] for t in COUNTED if after[t] != before[t]} == case.changed


# ---------------------------------------------------- places that cannot be written


@pytest.fixture
def read_only_dir(tmp_path) -> Iterator[Path]:
    """A folder on a read-only file system (a read-only tmpfs; as a user who is
    not root, a folder without write permission does the same)."""
    folder = tmp_path / "ro"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(folder)],
                             capture_output=True)
    if mounted.returncode != 0:
        pytest.skip("cannot mount a read-only file system here: "
                    + mounted.stderr.decode(errors="replace").strip())
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


@pytest.mark.parametrize("argv", [
    ["export", "patients", "--out", "{ro}/patients.csv"],
    ["report", "inventory", "--out", "{ro}/inventory.pdf"],
    ["report", "staff", "--out", "{ro}/sub/staff.pdf"],
], ids=["export", "report", "report-in-new-folder"])
def test_writing_where_nothing_can_be_written(argv, target, read_only_dir, capsys):
    argv = [a.replace("{ro}", str(read_only_dir)) for a in argv] + ["--database", target]
    code, said = run_cli(argv, capsys)
    assert code == 1, said
    assert "cannot be written:" in said and "Traceback" not in said
    assert "unexpected error" not in said
    assert list(read_only_dir.iterdir()) == []


# ------------------------------------------------------------- services directly


@pytest.mark.parametrize("price, message", [
    (float("nan"), "Unit price must be a number."),
    ("NaN", "Unit price must be a number."),
    ("sNaN", "Unit price must be a number."),
    (float("inf"), "Unit price must be a number."),
    ("-Infinity", "Unit price must be a number."),
    ("1e999", "Unit price must be at most"),
    ("-0.01", "Unit price cannot be negative."),
    ("9" * 100, "Unit price must be a number."),
])
def test_a_product_price_that_is_not_an_amount(price, message, sf, world):
    with pytest.raises(ValidationError, match=message.replace(".", r"\.")):
        catalog.create_product(sf, world.admin, catalog.ProductDraft(name="Odd", unit_price=price))


@pytest.mark.slow  # a subprocess or a big file
def test_output_to_a_closed_pipe_finishes_the_work(fresh_db, tmp_path):
    """``getmeds-admin ... | head -1``: the reader leaves after one line; the
    command still does its work, says nothing more and exits cleanly."""
    env = {**os.environ, "PYTHONWARNINGS": "error"}
    folder = tmp_path / "demo"
    folder.mkdir()
    shell = (f"{sys.executable} -m getmeds_desktop.cli demo seed --database '{fresh_db}' "
             "--products 30 --patients 20 --prescriptions 20 | head -c 1 >/dev/null; "
             "echo \"exit=${PIPESTATUS[0]}\" >&2")
    done = subprocess.run(["bash", "-c", shell], capture_output=True, text=True, env=env,
                          timeout=300, cwd=folder)
    assert "exit=0" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and "BrokenPipeError" not in done.stderr
    assert counts(fresh_db)["products"] >= 30


def test_a_full_disk_or_no_permission_is_named(tmp_path):
    import errno

    from getmeds_desktop.db import _unusable

    path = tmp_path / "pharmacy.sqlite3"
    full = _unusable(path, OSError(errno.ENOSPC, "No space left on device"))
    assert f"The database at {path} cannot be opened: the disk is full" in full
    denied = _unusable(path, PermissionError(errno.EACCES, "Permission denied"))
    assert "this account may not write there" in denied
