"""getmeds-admin: each command on SQLite and PostgreSQL, and one-line errors."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import pytest
import sqlalchemy as sa

from getmeds_desktop import __version__, cli, db
from getmeds_desktop.models import Product, RxStatus
from getmeds_desktop.services import ledger, staff


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_upgrade_status_and_seed_on_an_empty_database(capsys, empty_database):
    code, out, _ = run(capsys, "db", "status", "--database", empty_database)
    assert code == 1 and "empty database" in out
    code, out, _ = run(capsys, "db", "upgrade", "--database", empty_database)
    assert code == 0 and "upgraded from empty" in out
    code, out, _ = run(capsys, "db", "status", "--database", empty_database)
    assert code == 0 and "up to date" in out
    engine = db.make_engine(empty_database)
    current, head, _ = db.schema_state(engine)
    engine.dispose()
    assert current == head and f"current:  {head}" in out

    code, out, err = run(capsys, "demo", "seed", "--products", "150", "--patients", "80",
                         "--prescriptions", "120", "--database", empty_database)
    assert code == 0, err
    assert "150 products" in out and "80 patients" in out and "120 prescriptions" in out
    code, _, err = run(capsys, "demo", "seed", "--database", empty_database)
    assert code == 1 and err.count("\n") == 1 and "already holds data" in err


def test_seeded_pharmacy_is_realistic_and_consistent(empty_database, capsys):
    run(capsys, "db", "upgrade", "--database", empty_database)
    code, _, err = run(capsys, "demo", "seed", "--products", "400", "--patients", "200",
                       "--prescriptions", "400", "--database", empty_database)
    assert code == 0, err
    engine = db.make_engine(empty_database)
    sf = db.session_factory(engine)
    assert ledger.verify(sf).ok
    with engine.connect() as c:
        statuses = set(c.scalars(sa.text("SELECT DISTINCT status FROM prescriptions")))
        assert statuses == {s.value for s in RxStatus}
        schedules = set(c.scalars(sa.text("SELECT DISTINCT schedule FROM products")))
        assert schedules == {"none", "II", "III", "IV", "V"}
        assert c.scalar(sa.text("SELECT count(*) FROM stock_lots "
                                "WHERE expiry_date < CURRENT_DATE AND on_hand > 0")) > 0
        assert c.scalar(sa.text("SELECT count(*) FROM stock_lots "
                                "WHERE expiry_date > CURRENT_DATE + 700")) > 0
        assert c.scalar(sa.text(
            "SELECT count(*) FROM products p JOIN product_stock s ON s.product_id = p.id "
            "WHERE s.on_hand <= p.reorder_level AND p.reorder_level > 0")) > 0
        assert c.scalar(sa.text("SELECT count(*) FROM patient_allergies")) > 0
        assert c.scalar(sa.text("SELECT count(*) FROM dispenses")) > 50
        assert c.scalar(sa.text("SELECT count(*) FROM controlled_register")) > 0
        assert c.scalar(sa.text("SELECT count(DISTINCT actor) FROM audit_log")) >= 1
        names = set(c.scalars(sa.select(Product.name)))
        assert {"Amoxicillin", "Lisinopril", "Oxycodone Hydrochloride"} <= names
    for username in ("admin", "pharmacist", "clerk", "doctor"):
        if empty_database.startswith("sqlite"):
            actor = staff.authenticate(sf, username, "getmeds-demo-1")
        else:  # no database logins unless --logins: the staff rows are there
            actor = staff.actor_for_username(sf, username)
        assert actor.role.value == username
    engine.dispose()


def test_seed_is_deterministic(tmp_path, capsys):
    rows = []
    for n in (1, 2):
        url = f"sqlite:///{tmp_path / f's{n}.sqlite3'}"
        run(capsys, "db", "upgrade", "--database", url)
        run(capsys, "demo", "seed", "--products", "60", "--patients", "30", "--prescriptions",
            "40", "--seed", "7", "--database", url)
        engine = db.make_engine(url)
        with engine.connect() as c:
            rows.append((
                c.execute(sa.text("SELECT id, ndc, name FROM products ORDER BY ndc")).all(),
                c.execute(sa.text("SELECT id, last_name, date_of_birth FROM patients "
                                  "ORDER BY id")).all(),
                c.execute(sa.text("SELECT rx_number, status, quantity FROM prescriptions "
                                  "ORDER BY rx_number")).all(),
            ))
        engine.dispose()
    assert rows[0] == rows[1]


def test_user_add_reads_the_password_from_stdin(capsys, monkeypatch, fresh_db):
    monkeypatch.setattr(sys, "stdin", io.StringIO("a long enough password\n"))
    nina = f"nina{os.getpid()}"  # logins are server-wide: one of a run killed earlier may stay
    code, out, err = run(capsys, "user", "add", nina.title(), "--role", "pharmacist",
                         "--full-name", "Nina Patel", "--password-stdin", "--database", fresh_db)
    assert code == 0, err
    assert f"Added pharmacist {nina}" in out
    if fresh_db.startswith("sqlite"):
        engine = db.make_engine(fresh_db)
        sf = db.session_factory(engine)
        assert staff.authenticate(sf, nina, "a long enough password").full_name == "Nina Patel"
        engine.dispose()
    else:  # on PostgreSQL nina is a database login of the pharmacist group
        from getmeds_desktop.config import DatabaseTarget
        from getmeds_desktop.startup import Connector

        c = Connector()
        _, actor = c.sign_in(DatabaseTarget(fresh_db, "test", "test"), nina,
                             "a long enough password")
        assert (actor.full_name, actor.role.value) == ("Nina Patel", "pharmacist")
        c.close_all()

    monkeypatch.setattr(sys, "stdin", io.StringIO("short\n"))
    code, _, err = run(capsys, "user", "add", "omar", "--role", "clerk", "--password-stdin",
                       "--database", fresh_db)
    assert code == 1 and "at least 12 characters" in err and err.count("\n") == 1


def test_password_is_never_an_argument(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["user", "add", "x", "--role", "clerk", "--password", "secret"])
    assert exc.value.code == 2
    assert "unrecognized arguments" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgresql://postgres@127.0.0.1:1/none", "cannot be reached"),
        ("mysql://host/db", "Unsupported database"),
        ("not a url", "not valid"),
    ],
)
def test_connection_errors_are_one_line(capsys, url, message):
    code, _, err = run(capsys, "db", "status", "--database", url)
    assert code == 1
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_schema_mismatch_is_one_line(capsys, fresh_db):
    engine = db.make_engine(fresh_db)
    with engine.begin() as c:
        c.execute(sa.text("UPDATE alembic_version SET version_num = 'zz_future'"))
    engine.dispose()
    code, _, err = run(capsys, "user", "list", "--database", fresh_db)
    assert code == 1 and "newer than this GetMeds" in err and err.count("\n") == 1


def test_database_url_from_environment(capsys, monkeypatch, fresh_db):
    monkeypatch.setenv("GETMEDS_DATABASE_URL", fresh_db)
    code, out, _ = run(capsys, "db", "status")
    assert code == 0 and "up to date" in out


@pytest.mark.slow  # a subprocess or a big file
def test_console_scripts_are_installed():
    from pathlib import Path

    bindir = Path(sys.executable).parent
    out = subprocess.run([bindir / "getmeds-admin", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and __version__ in out.stdout
    out = subprocess.run([bindir / "getmeds", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and __version__ in out.stdout


def test_knowledge_import_status_and_back_to_the_shipped_data(capsys, fresh_db, tmp_path):
    good = tmp_path / "vendor.csv"
    good.write_text("ingredient_or_class_a,ingredient_or_class_b,severity,"
                    "clinical_consequence,management,source\n"
                    "lisinopril,spironolactone,major,Hyperkalaemia,Check potassium,KB 1\n"
                    "warfarin,fluconazole,major,Bleeding,Check the INR,KB 1\n", encoding="utf-8")
    cut = tmp_path / "cut.csv"
    cut.write_bytes(good.read_bytes()[:120])
    code, out, err = run(capsys, "knowledge", "status", "--database", fresh_db)
    assert code == 0 and "shipped, cited list only" in out
    code, out, err = run(capsys, "knowledge", "import", "interactions", str(cut),
                         "--database", fresh_db)
    assert code == 1 and "line 2" in err and err.count("\n") == 1 and "Traceback" not in err
    code, out, err = run(capsys, "knowledge", "import", "interactions", str(good),
                         "--source", "Vendor KB 2026.2", "--database", fresh_db)
    assert code == 0, err
    assert "2 interactions from vendor.csv" in out
    code, out, _ = run(capsys, "knowledge", "status", "--database", fresh_db)
    assert "with 2 from vendor.csv (Vendor KB 2026.2)" in out
    code, out, _ = run(capsys, "knowledge", "use-shipped", "--database", fresh_db)
    assert code == 0 and "shipped interactions only" in out
    code, out, _ = run(capsys, "knowledge", "status", "--database", fresh_db)
    assert "shipped, cited list only" in out and "earlier: vendor.csv" in out


@pytest.mark.parametrize("argv", [("db", "status"), ("user", "list"),
                                  ("knowledge", "status"), ("export", "patients", "--out", "x")])
def test_only_db_upgrade_makes_a_new_embedded_database(capsys, tmp_path, argv):
    missing = tmp_path / "typo" / "pharmacy.sqlite3"
    code, _, err = run(capsys, *argv, "--database", f"sqlite:///{missing}")
    assert code == 1 and f"There is no database at {missing}" in err
    assert err.count("\n") == 1 and not missing.parent.exists()
    code, _, err = run(capsys, "db", "status", "--database", f"sqlite:///{tmp_path}")
    assert code == 1 and "is not a database file" in err


def test_the_pharmacys_time_zone_is_shown_and_set(capsys, empty_database):
    """IT sets the zone a server database's rules judge dates in (and every
    workstation shows); the embedded database uses its workstation's."""
    run(capsys, "db", "upgrade", "--database", empty_database)
    code, out, _ = run(capsys, "db", "time-zone", "--database", empty_database)
    if empty_database.startswith("sqlite"):
        assert code == 0 and "this workstation's own" in out
        code, _, err = run(capsys, "db", "time-zone", "America/Chicago", "--database",
                           empty_database)
        assert code == 1 and "workstation's time zone" in err and "Traceback" not in err
        return
    assert code == 0 and "time zone: UTC" in out
    code, out, _ = run(capsys, "db", "time-zone", "America/Chicago", "--database",
                       empty_database)
    assert code == 0 and "time zone: America/Chicago" in out
    code, _, err = run(capsys, "db", "time-zone", "Chicago'; DROP TABLE staff; --",
                       "--database", empty_database)
    assert code == 1 and "not a time zone the server knows" in err
    engine = db.make_engine(empty_database)
    try:
        assert db.pharmacy_time_zone(engine) == "America/Chicago"
    finally:
        engine.dispose()


def test_the_demo_suppliers_dea_numbers_pass_their_check_digit():
    """A demo user receiving controlled stock from a demo supplier is not refused
    for a DEA number that fails its check digit (21 CFR 1304.22(c) receipts)."""
    from getmeds_desktop.services import demo_data
    from getmeds_desktop.services.identifiers import clean_dea

    numbers = [dea for _name, dea in demo_data.SUPPLIERS if dea]
    assert numbers and all(clean_dea(n, "dea_number") == n for n in numbers)
