"""Running cases: a fresh scratch database each, the clock frozen to the case's
day, steps through the services as the staff member, PASS / FAIL lines with
"step N: expected ..., got ...", and getmeds-admin rules check."""

from __future__ import annotations

import datetime as dt
import textwrap
import uuid
from pathlib import Path
from textwrap import dedent

import pytest
import sqlalchemy as sa

from getmeds_desktop import cli, rules
from getmeds_desktop.enums import RxStatus, Schedule
from getmeds_desktop.rules import scratch, steps
from getmeds_desktop.rules.runner import run_case
from getmeds_desktop.services import dispensing
from getmeds_desktop.services.errors import (
    Conflict,
    InsufficientStock,
    InvalidState,
    NotFound,
    PermissionDenied,
    StaleEdit,
    ValidationError,
)
from getmeds_desktop.services.rxstate import RxState

HEAD = """\
name: {name}
today: 2026-03-02
setup:
  staff:
    rph: {{role: pharmacist, name: Rita Park}}
    clerk1: {{role: clerk, name: Carl Clerk}}
    doc: {{role: doctor, name: Ann Lee, prescriber: drlee}}
  prescribers:
    drlee: {{name: "Ann Lee, MD", dea: AL1234563, npi: 1234567893}}
    nodea: {{name: "Nora Nash, NP"}}
  products:
    oxy: {{name: Oxycodone HCl, strength: 5 mg, form: tablet, ndc: 12345-0101-01, schedule: II}}
    amox: {{name: Amoxicillin, strength: 500 mg, form: capsule, ndc: 12345-0181-18,
           classes: [Penicillins]}}
  patients:
    bob: {{name: Bob Stone, born: 1968-04-11, sex: male, allergies: [Penicillin]}}
    ann: {{name: Ann Gray, born: 1990-01-01, allergies: []}}
  lots:
    - {{product: oxy, lot: OX-A, expiry: 2027-01-31, quantity: 100}}
    - {{product: amox, lot: AM-1, expiry: 2026-09-30, quantity: 10}}
    - {{product: amox, lot: AM-2, expiry: 2027-09-30, quantity: 50}}
steps:
"""


def case(tmp_path: Path, steps_text: str, name: str = "The case", extra: str = "") -> Path:
    path = tmp_path / f"{uuid.uuid4().hex[:8]}.yaml"
    path.write_text(HEAD.format(name=name) + textwrap.indent(textwrap.dedent(steps_text), "  ")
                    + extra, encoding="utf-8")
    return path


def run(*paths: Path) -> tuple[rules.Report, list[str]]:
    lines: list[str] = []
    report = rules.run(list(paths), out=lines.append)
    return report, lines


def one_line(path: Path) -> str:
    report, lines = run(path)
    assert len(lines) == 1, lines
    return lines[0]


PRESCRIBE_OXY = ("- prescribe: {id: rx1, patient: bob, prescriber: drlee, product: oxy, "
                 "quantity: 30, days_supply: 10}\n")
PRESCRIBE_AMOX = ("- prescribe: {id: am1, patient: ann, prescriber: drlee, product: amox, "
                  "quantity: 20, days_supply: 10, refills: 2}\n")


def test_a_passing_case(tmp_path):
    line = one_line(case(tmp_path, PRESCRIBE_OXY + dedent("""\
        - fill: {rx: rx1, scan: 12345-0101-01}
          expect:
            dispensed: 30
            owed: 0
            lots: [OX-A]
            warnings: []
            register_balance: {product: oxy, balance: 70}
            on_hand: {product: oxy, quantity: 70}
            label_contains: [Rx 100001, "Bob Stone", "oxycodone hcl 5 MG", "03/02/2026", C-II]
    """)))
    assert line == "PASS The case"


@pytest.mark.parametrize("step, expect, detail", [
    (PRESCRIBE_OXY + "- fill: {rx: rx1}\n", "{dispensed: 29}",
     "step 2: expected dispensed 29, got dispensed 30"),
    (PRESCRIBE_OXY + "- fill: {rx: rx1}\n", "{owed: 3}", "step 2: expected owed 3, got owed 0"),
    (PRESCRIBE_AMOX + "- fill: {rx: am1}\n", "{lots: [AM-2]}",
     "step 2: expected lots [AM-2], got lots [AM-1, AM-2]"),
    (PRESCRIBE_AMOX + "- fill: {rx: am1}\n", "{warnings: [allergy]}",
     "step 2: expected warnings [allergy], got no warnings"),
    (PRESCRIBE_AMOX + "- fill: {rx: am1}\n", "{warnings_include: [dose]}",
     "step 2: expected warnings including [dose], got no warnings"),
    (PRESCRIBE_OXY + "- fill: {rx: rx1}\n", "{register_balance: {product: oxy, balance: 100}}",
     "step 2: expected register balance of oxy 100, got 70"),
    (PRESCRIBE_OXY + "- fill: {rx: rx1}\n", "{on_hand: [{product: amox, quantity: 60}, "
     "{product: oxy, quantity: 71}]}", "step 2: expected 71 of oxy on hand, got 70"),
    (PRESCRIBE_OXY + "- fill: {rx: rx1}\n", "{label_contains: ['Refills left: 9']}",
     "step 2: expected the label to contain ['Refills left: 9'], got a label reading "
     "'GetMeds"),
    (PRESCRIBE_OXY + "- fill: {rx: rx1}\n", "{refused: true}",
     "step 2: expected refused, got success"),
    (PRESCRIBE_OXY + "- fill: {rx: rx1, quantity: 31}\n", "{refused: stock}",
     "step 2: expected refused (stock), got refused (quantity): Rx 100001 is for 30 each"),
    (PRESCRIBE_OXY + "- fill: {rx: rx1, scan: 12345-0181-18}\n", "{dispensed: 30}",
     "step 2: expected success, got refused (scan): Wrong product: scanned NDC 12345-0181-18"),
    (PRESCRIBE_OXY + "- fill: {rx: rx1}\n  as: clerk1\n", "{refused: stock}",
     "step 2: expected refused (stock), got refused (permission): Your role (Clerk) may not "
     "dispense."),
])
def test_each_expectation_says_what_it_expected_and_what_it_got(tmp_path, step, expect,
                                                                 detail):
    line = one_line(case(tmp_path, step + f"  expect: {expect}\n"))
    assert line.startswith(f"FAIL The case: {detail}"), line


def test_a_refused_step_without_refused_fails_and_stops_the_case(tmp_path):
    report, lines = run(case(tmp_path, """\
        - prescribe: {id: rx1, patient: bob, prescriber: nodea, product: oxy, quantity: 30}
        - fill: {rx: rx1}
    """))
    assert lines[0] == ("FAIL The case: step 1: expected success, got refused (prescriber): "
                        "Oxycodone HCl is a Schedule II controlled substance; Nora Nash, NP has "
                        "no DEA number on file.")
    assert not report.ok and [r.status for r in report.results] == ["fail"]


def test_a_step_that_needs_a_record_a_refused_step_did_not_make(tmp_path):
    line = one_line(case(tmp_path, """\
        - prescribe: {id: rx1, patient: bob, prescriber: nodea, product: oxy, quantity: 30}
          expect: {refused: prescriber}
        - fill: {rx: rx1}
    """))
    assert line == ("FAIL The case: step 2: prescription 'rx1' does not exist: the prescribe "
                    "step that would have made it was refused")


@pytest.mark.parametrize("steps_text, kind", [
    ("- prescribe: {id: r, patient: bob, prescriber: drlee, product: oxy, quantity: 30, "
     "refills: 1}\n", "refills"),
    ("- prescribe: {id: r, patient: bob, prescriber: drlee, product: oxy, quantity: 30, "
     "written: 2025-01-01}\n", "expired"),
    ("- prescribe: {id: r, patient: bob, prescriber: drlee, product: oxy, quantity: 30, "
     "written: 2026-03-03}\n", "invalid"),
    ("- prescribe: {id: r, patient: bob, prescriber: drlee, product: oxy, quantity: 0}\n",
     "quantity"),
    ("- prescribe: {id: r, patient: bob, prescriber: nodea, product: amox, quantity: 30}\n"
     "  as: doc\n", "permission"),
    ("- prescribe: {id: big, patient: ann, prescriber: drlee, product: amox, quantity: 70}\n"
     "- fill: {rx: big, partial: false}\n", "stock"),
    (PRESCRIBE_AMOX + "- hold: {rx: am1}\n- fill: {rx: am1}\n", "on_hold"),
    (PRESCRIBE_AMOX + "- cancel: {rx: am1}\n- fill: {rx: am1}\n", "cancelled"),
    (PRESCRIBE_AMOX + "- cancel: {rx: am1, reason: ''}\n", "invalid"),
    (PRESCRIBE_AMOX + "- fill: {rx: am1, no_scan_reason: ''}\n", "scan"),
    ("- prescribe: {id: b1, patient: bob, prescriber: drlee, product: amox, quantity: 20}\n"
     "- fill: {rx: b1}\n", "warning"),
    ("- receive: {product: amox, lot: AM-1, expiry: 2026-10-31, quantity: 5}\n", "lot"),
    ("- receive: {product: amox, lot: NEW, expiry: 2026-03-01, quantity: 5}\n", "lot"),
    ("- receive: {product: oxy, lot: NEW, expiry: 2027-03-01, quantity: 5}\n  as: clerk1\n",
     "permission"),
    ("- adjust: {product: oxy, lot: OX-A, quantity: -101}\n", "stock"),
    ("- adjust: {product: oxy, lot: OX-A, quantity: -1, reason: ''}\n", "invalid"),
    ("- recall: {product: amox, lot: AM-1}\n- quarantine: {product: amox, lot: AM-1}\n",
     "state"),
    ("- count: {product: amox, lot: AM-1, counted: 9, reason: ''}\n", "invalid"),
])
def test_refusal_kinds(tmp_path, steps_text, kind):
    text = steps_text.rstrip("\n") + f"\n  expect: {{refused: {kind}}}\n"
    line = one_line(case(tmp_path, text))
    assert line == "PASS The case", line


def test_the_clock_is_frozen_to_the_case_day_and_travel_moves_it(tmp_path):
    line = one_line(case(tmp_path, PRESCRIBE_AMOX + dedent("""\
        - fill: {rx: am1}
          expect: {label_contains: [03/02/2026]}
        - travel: {days: 10}
        - fill: {rx: am1}
          expect: {label_contains: [03/12/2026]}
        - travel: {to: 2026-05-01}
        - fill: {rx: am1}
          expect: {label_contains: [05/01/2026], lots: [AM-2]}
    """)))
    assert line == "PASS The case"


def test_each_case_has_a_database_of_its_own(tmp_path):
    body = PRESCRIBE_OXY + dedent("""\
        - fill: {rx: rx1}
          expect: {register_balance: {product: oxy, balance: 70}, label_contains: [Rx 100001]}
    """)
    report, lines = run(case(tmp_path, body, "First"), case(tmp_path, body, "Second"))
    assert lines == ["PASS First", "PASS Second"]  # the same staff, same Rx number, same stock


def test_the_scratch_folder_is_removed(tmp_path, monkeypatch):
    made = []
    real = scratch.SqliteScratch.__init__

    def spy(self):
        real(self)
        made.append(self.folder)

    monkeypatch.setattr(scratch.SqliteScratch, "__init__", spy)
    run(case(tmp_path, PRESCRIBE_OXY))
    assert made and not made[0].exists()


def test_a_setup_the_app_refuses_fails_the_case_naming_the_record(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(HEAD.format(name="Bad setup").replace("born: 1990-01-01", "born: 2027-01-01")
                    + "  - travel: {days: 1}\n", encoding="utf-8")
    assert one_line(path) == ("FAIL Bad setup: setup: patient ann: Date of birth cannot be in "
                              "the future.")


def test_known_bugs_do_not_fail_the_run_until_they_are_fixed(tmp_path):
    failing = case(tmp_path, PRESCRIBE_OXY + "- fill: {rx: rx1}\n  expect: {dispensed: 1}\n",
                   "Still broken").read_text()
    (tmp_path / "bug.yaml").write_text(failing.replace("today:", "known_bug: the bug\ntoday:"))
    passing = case(tmp_path, PRESCRIBE_OXY, "Fixed now").read_text()
    (tmp_path / "fixed.yaml").write_text(passing.replace("today:", "known_bug: old bug\ntoday:"))
    report, lines = run(tmp_path / "bug.yaml")
    assert lines == ["KNOWN BUG Still broken: step 2: expected dispensed 1, got dispensed 30 "
                     "(known bug: the bug)"]
    assert report.ok
    report, lines = run(tmp_path / "fixed.yaml")
    assert lines == ["FAIL Fixed now: it passes now, but it is marked known_bug: remove "
                     "known_bug if the bug is fixed"]
    assert not report.ok


def test_an_unexpected_error_is_one_line_and_the_traceback_goes_to_the_log(tmp_path,
                                                                           monkeypatch, caplog):
    def boom(*a, **kw):
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr(dispensing, "dispense", boom)
    line = one_line(case(tmp_path, PRESCRIBE_OXY + "- fill: {rx: rx1}\n"))
    assert line == ("FAIL The case: step 2: unexpected error (RuntimeError: boom); details are "
                    "in the log")
    assert "Traceback" not in line and any(r.exc_info for r in caplog.records)


def test_the_warnings_of_a_refused_fill_are_those_screening_raised(tmp_path):
    line = one_line(case(tmp_path, """\
        - prescribe: {id: b1, patient: bob, prescriber: drlee, product: amox, quantity: 20}
        - fill: {rx: b1}
          expect: {refused: warning, warnings: [allergy], on_hand: {product: amox, quantity: 60}}
        - fill:
            rx: b1
            quantity: 70
            acknowledge: {allergy: "patient_tolerated_before: no reaction in 2024"}
          expect: {refused: quantity, warnings: [allergy]}
        - fill: {rx: b1, acknowledge: {allergy: "patient_tolerated_before: no reaction in 2024"}}
          expect: {dispensed: 20, warnings: [allergy], lots: [AM-1, AM-2]}
    """))
    assert line == "PASS The case"


def _gtin(ndc10: str) -> str:
    body = "003" + ndc10
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(body))
    return body + str((10 - total % 10) % 10)


@pytest.mark.parametrize("separator", ["<GS>", "\\x1d"])
def test_a_gs1_scan_with_a_group_separator(tmp_path, separator):
    # amoxicillin 12345-0181-18 is the 10-digit NDC 12345-181-18; the lot ends with a separator
    scan = f"01{_gtin('1234518118')}10AM-2{separator}17270930"
    line = one_line(case(tmp_path, PRESCRIBE_AMOX + dedent(f"""\
        - fill: {{rx: am1, scan: "{scan}"}}
          expect: {{lots: [AM-2]}}
    """)))
    assert line == "PASS The case"


def test_refusal_kind_of_each_error():
    world = type("W", (), {"rx": {}})()
    kind = steps.STEP_KINDS["fill"]
    cases = [
        (InsufficientStock("x", available=1, requested=2), "stock"),
        (PermissionDenied("x"), "permission"),
        (StaleEdit("prescription", None, None), "stale"),
        (NotFound("x"), "not_found"),
        (Conflict("x"), "conflict"),
        (Conflict("x", field="expiry_date"), "lot"),
        (ValidationError("x", field="scan"), "scan"),
        (InvalidState("x", field="scan"), "scan"),
        (ValidationError("x", field="refills_authorized"), "refills"),
        (ValidationError("x", field="prescriber_id"), "prescriber"),
        (ValidationError("x", field="quantity"), "quantity"),
        (ValidationError("x", field="lot_number"), "lot"),
        (ValidationError("x"), "invalid"),
        (InvalidState("x"), "state"),
    ]
    for error, expected in cases:
        assert steps.refusal_kind(error, kind, {}, world) == expected, error  # type: ignore[arg-type]


@pytest.mark.parametrize("status, refills, last_fill, day, expected", [
    (RxStatus.CANCELLED, 3, None, dt.date(2026, 1, 2), "cancelled"),
    (RxStatus.ON_HOLD, 3, None, dt.date(2026, 1, 2), "on_hold"),
    (RxStatus.DISPENSED, 1, 1, dt.date(2026, 1, 2), "no_refills"),
    (RxStatus.DISPENSED, 3, 1, dt.date(2026, 7, 2), "expired"),
    (RxStatus.DISPENSED, 3, 1, dt.date(2026, 7, 1), None),
])
def test_rx_state_names_the_rule_that_stops_a_fill(status, refills, last_fill, day, expected):
    state = RxState(rx_number=1, status=status, schedule=Schedule.IV, quantity=30,
                    refills_authorized=refills, date_written=dt.date(2026, 1, 1),
                    owed_quantity=0, validity_months=6, last_fill=last_fill)
    assert state.problem_kind(day) == expected
    assert (state.problem(day) is None) == (expected is None)


# ------------------------------------------------------------------ the CLI


def cli_run(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_getmeds_admin_rules_check(tmp_path, capsys):
    good = case(tmp_path, PRESCRIBE_OXY, "Good")
    bad = case(tmp_path, PRESCRIBE_OXY + "- fill: {rx: rx1}\n  expect: {dispensed: 1}\n", "Bad")
    unreadable = tmp_path / "broken.yaml"
    unreadable.write_bytes(b"\x00\x01binary")
    code, out, err = cli_run(capsys, "rules", "check", str(good))
    assert (code, err) == (0, "") and out.splitlines() == ["PASS Good", out.splitlines()[1]]
    assert out.splitlines()[1].startswith("1 passed, 0 failed (")
    code, out, _ = cli_run(capsys, "rules", "check", str(good), str(bad), str(unreadable))
    lines = out.splitlines()
    assert code == 1
    assert lines[0] == f"ERROR {unreadable}: the file is a binary file, not YAML text"
    assert lines[1:3] == ["PASS Good", "FAIL Bad: step 2: expected dispensed 1, got dispensed 30"]
    assert lines[3].startswith("1 passed, 1 failed, 1 could not be read (")


def test_getmeds_admin_rules_check_refuses_a_database_that_is_not_a_server(tmp_path, capsys):
    code, out, err = cli_run(capsys, "rules", "check", str(case(tmp_path, PRESCRIBE_OXY)),
                             "--database", f"sqlite:///{tmp_path / 'x.db'}")
    assert code == 1 and "takes the URL of a PostgreSQL server" in err
    assert err.count("\n") == 1 and not (tmp_path / "x.db").exists()


def test_getmeds_admin_rules_check_with_nothing_to_run(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    code, out, _ = cli_run(capsys, "rules", "check", str(tmp_path / "empty"))
    assert code == 1 and "the folder has no .yaml case files" in out


def test_cases_run_on_postgresql_scratch_databases_that_are_dropped(tmp_path, pg_backend,
                                                                     monkeypatch):
    from tests.fixtures.database import _pg_admin_engine, pg_admin_url

    made: list[scratch.PostgresScratch] = []
    real = scratch.PostgresScratch.__init__

    def spy(self, url):
        real(self, url)
        made.append(self)

    monkeypatch.setattr(scratch.PostgresScratch, "__init__", spy)
    first = case(tmp_path, PRESCRIBE_OXY + dedent("""\
        - fill: {rx: rx1, scan: 12345-0101-01}
          expect: {dispensed: 30, register_balance: {product: oxy, balance: 70},
                   label_contains: [Rx 100001]}
        - fill: {rx: rx1}
          expect: {refused: refills}
    """), "First")
    second = case(tmp_path, PRESCRIBE_OXY + "- fill: {rx: rx1}\n", "Second")
    url = pg_admin_url().render_as_string(hide_password=False)
    lines: list[str] = []
    report = rules.run([first, second], database=url, out=lines.append)
    assert lines == ["PASS First", "PASS Second"] and report.ok
    (s,) = made
    with _pg_admin_engine().connect() as conn:
        assert conn.scalar(sa.text("SELECT count(*) FROM pg_database WHERE datname LIKE :p"),
                           {"p": s.prefix + "%"}) == 0
        assert conn.scalar(sa.text("SELECT count(*) FROM pg_roles WHERE rolname LIKE :p"),
                           {"p": s.role_prefix + "%"}) == 0


def test_run_case_is_the_public_way_to_run_one_case(tmp_path):
    cases, bad = rules.load_file(case(tmp_path, PRESCRIBE_OXY))
    s = scratch.SqliteScratch()
    try:
        result = run_case(cases[0], s)
    finally:
        s.close()
    assert result.status == "pass" and result.line() == "PASS The case" and result.seconds > 0
