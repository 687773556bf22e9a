"""Reading case files: good files load, and every bad or hostile one gives a
sentence with the file and line (never a traceback), before anything runs."""

from __future__ import annotations

import codecs
import re
import textwrap
import time
from pathlib import Path

import pytest

from getmeds_desktop import rules
from getmeds_desktop.rules import steps
from getmeds_desktop.rules.case import load_paths
from getmeds_desktop.rules.yamlfile import MAX_BYTES

ROOT = Path(__file__).resolve().parents[2]

GOOD = """\
name: A good case
cite: 21 CFR 1306.12(a)
today: 2026-03-02
setup:
  staff:
    rph: pharmacist
    clerk1: {role: clerk, name: Carl Clerk}
  prescribers:
    drlee: {name: "Ann Lee, MD", dea: AL1234563, npi: 1234567893}
  products:
    oxy: {name: Oxycodone HCl, strength: 5 mg, form: tablet, ndc: 12345-0101-01, schedule: II}
    amox: {name: Amoxicillin, ingredients: [Amoxicillin], classes: [Penicillins]}
  patients:
    bob: {name: Bob Stone, born: 1968-04-11, sex: male, allergies: [Penicillin]}
  lots:
    - {product: oxy, lot: OX-A, expiry: 2027-01-31, quantity: 100}
steps:
  - prescribe: {id: rx1, patient: bob, prescriber: drlee, product: oxy, quantity: 30}
  - fill: {rx: rx1, scan: 12345-0101-01}
    expect: {dispensed: 30, lots: [OX-A], register_balance: {product: oxy, balance: 70}}
  - travel: {days: 3}
  - receive: {product: oxy, lot: OX-B, expiry: 2027-05-31, quantity: 10}
    as: rph
  - count: {product: oxy, lot: OX-B, counted: 10}
"""


def write(tmp_path: Path, text: str, name: str = "case.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def problems(path: Path) -> list[str]:
    cases, bad = rules.load_file(path)
    return [str(b) for b in bad]


def only_problem(path: Path) -> str:
    found = problems(path)
    assert len(found) == 1, found
    return found[0]


def replaced(old: str, new: str) -> str:
    assert old in GOOD, old
    return GOOD.replace(old, new, 1)


def test_a_good_file_loads_with_typed_values(tmp_path):
    cases, bad = rules.load_file(write(tmp_path, GOOD))
    assert bad == []
    (case,) = cases
    assert case.name == "A good case" and case.cite == "21 CFR 1306.12(a)"
    assert str(case.today) == "2026-03-02"
    assert [s.kind.name for s in case.steps] == ["prescribe", "fill", "travel", "receive",
                                                 "count"]
    prescribe, fill, travel, *_ = case.steps
    assert prescribe.args["quantity"] == 30 and prescribe.args["days_supply"] == 30
    assert prescribe.actor == "rph"  # the first pharmacist, by default
    assert fill.expect["lots"] == ("OX-A",) and fill.expect["dispensed"] == 30
    assert travel.actor is None and travel.args["days"] == 3
    assert case.setup.products[0].ndc == "12345010101"  # the app's own NDC form


def test_several_cases_in_one_file_and_values_are_never_guessed(tmp_path):
    text = GOOD + "---\n" + GOOD.replace("A good case", "Another").replace(
        "ndc: 12345-0101-01", "ndc: 00071015523")
    cases, bad = rules.load_file(write(tmp_path, text))
    assert bad == [] and [c.name for c in cases] == ["A good case", "Another"]
    # an NDC of octal-looking digits stays the NDC (YAML 1.1 would make it a number)
    assert cases[1].setup.products[0].ndc == "00071015523"


@pytest.mark.parametrize("old, new, message, line", [
    ("  - fill: {rx: rx1, scan: 12345-0101-01}",
     "  - fill: {rx: rx1, scan: 12345-0101-01, quantitiy: 3}",
     "step 2 (fill): unknown key 'quantitiy' (did you mean 'quantity'?)", 19),
    ("quantity: 30}", "quantity: thirty}",
     "step 1 (prescribe): 'quantity' must be a whole number, not 'thirty'", 18),
    ("today: 2026-03-02", "today: 2026-02-30",
     "the case: 'today' must be a date written YYYY-MM-DD", 3),
    ("today: 2026-03-02", "today: [2026]", "'today' must be a date", 3),
    ("name: A good case", "name: [a, list]", "the case: 'name' must be text, not a list", 1),
    ("schedule: II}", "schedule: VI}", "schedule must be none, II, III, IV or V, not 'VI'", 11),
    ("dea: AL1234563", "dea: AL1234564", "DEA number AL1234564 fails its check digit", 9),
    ("ndc: 12345-0101-01, schedule", "ndc: 1234-5, schedule", "'1234-5' is not an NDC", 11),
    ("rph: pharmacist", "rph: chemist", "role must be one of admin, pharmacist, technician", 6),
    ("  - travel: {days: 3}", "  - transfer_in: {rx: rx1}",
     "step 3 (transfer_in): unknown key 'rx' (it takes id, patient, prescriber, product", 21),
    ("  - travel: {days: 3}", "  - verfy: {rx: rx1}",
     "step 3: 'verfy' is not a step kind (did you mean 'verify'?)", 21),
    ("  - travel: {days: 3}", "  - transfer_out: {rx: rx9}",
     "step 3 (transfer_out): 'rx': 'rx9' is not an earlier prescribe step's id", 21),
    ("{rx: rx1, scan: 12345-0101-01}", "{rx: rx1, partial: shortly}",
     "'partial' must be true, false or a partial-fill reason (shortage, patient_request, "
     "long_term_care, terminally_ill), not 'shortly'", 19),
    ("quantity: 30}", "quantity: 30, not_before: 2026-04-31}",
     "step 1 (prescribe): 'not_before' must be a date written YYYY-MM-DD", 18),
    ("quantity: 30}", "quantity: 30, daw: 12}",
     "'daw': 12 is not a product-selection code (0-9)", 18),
    ("quantity: 10}\n", "quantity: 10, order_form: '" + "2" * 61 + "'}\n",
     "'order_form' is longer than 60 characters", 22),
    ("{rx: rx1, scan: 12345-0101-01}", "{rx: rx2}",
     "step 2 (fill): 'rx': 'rx2' is not an earlier prescribe step's id", 19),
    ("patient: bob,", "patient: bobby,",
     "'bobby' is not one of setup's patients (did you mean 'bob'?)", 18),
    ("  - count: {product: oxy, lot: OX-B, counted: 10}",
     "  - count: {product: oxy, lot: OX-C, counted: 10}",
     "oxy has no lot OX-C in setup's lots or an earlier receive step", 24),
    ("    as: rph", "    as: nobody", "as: 'nobody' is not one of setup's staff", 23),
    ("  - travel: {days: 3}", "  - travel: {days: 3}\n    as: rph",
     "nobody does a travel step, so it takes no 'as:'", 22),
    ("  - travel: {days: 3}", "  - travel: {days: 3, to: 2026-04-01}",
     "give either 'days' (how many days later) or 'to' (the date)", 21),
    ("  - travel: {days: 3}", "  - travel: {to: 2026-01-01}",
     "2026-01-01 is before the case's day at this step (2026-03-02): the clock only moves on",
     21),
    ("register_balance: {product: oxy, balance: 70}",
     "register_balance: {product: amox, balance: 70}",
     "amox is not a controlled substance, so it has no register balance", 20),
    ("expect: {dispensed: 30,", "expect: {dispensd: 30,",
     "unknown key 'dispensd' (did you mean 'dispensed'?)", 20),
    ("expect: {dispensed: 30,", "expect: {refused: nope, dispensed: 30,",
     "'refused' must be true, false or a refusal kind", 20),
    ("expect: {dispensed: 30,", "expect: {warnings: [allergie], dispensed: 30,",
     "'allergie' is not a warning kind", 20),
    ("    as: rph", "    as: rph\n    expect: {label_contains: [Rx]}",
     "'label_contains' cannot be expected of this step", 24),
    ("allergies: [Penicillin]", "allergies:",
     "'allergies' is empty: write 'allergies: []' for no known allergies", 14),
    ('drlee: {name: "Ann Lee, MD",', "drlee: {name: Ann Lee, MD,",
     "unknown key 'MD' (inside { } a comma starts a new key", 9),
    ("  - travel: {days: 3}", "  - travel: {days: 3}\n    receive: {product: oxy}",
     "a step is one action", 21),
    ("  - travel: {days: 3}", "  - just text", "step 3 must be a mapping", 21),
    ("    rph: pharmacist\n", "    rph: pharmacist\n    rph: clerk\n",
     "'rph' is given twice in the same place (first on line 6)", 7),
    ("steps:", "stepz:", "unknown key 'stepz' (did you mean 'steps'?)", 17),
])
def test_each_mistake_is_a_sentence_with_file_line_and_case(tmp_path, old, new, message,
                                                             line):
    path = write(tmp_path, replaced(old, new))
    text = only_problem(path)
    assert message in text
    assert text.startswith(f"{path}:{line}: "), text
    if "name:" not in old and "rph: pharmacist" not in old:  # else no case, or no name
        assert text.startswith(f"{path}:{line}: case 'A good case': "), text


@pytest.mark.parametrize("text, message", [
    ("name: x\ntoday: 2026-01-01\n", "the case needs 'steps'"),
    ("- a\n- b\n", "a case must be a mapping (key: value lines), not a list"),
    ("name: x\ntoday: 2026-01-01\nsteps: []\n", "the case has no steps"),
    ("name: x\ntoday: 2026-01-01\nsetup: {products: {p: {name: P}}}\nsteps:\n"
     "  - receive: {product: p, lot: L, expiry: 2027-01-01, quantity: 1}\n",
     "say who does it ('as: <a staff key>'): the case has no pharmacist"),
    ("# only a comment\n", "the file has no case in it"),
    ("", "the file has no case in it"),
    ("name: [unclosed\n", "is not valid YAML"),
    ("name: x\n  bad indent: 1\n", "is not valid YAML"),
])
def test_files_that_are_not_cases(tmp_path, text, message):
    assert message in only_problem(write(tmp_path, text))


# ------------------------------------------------------------ hostile files

BOMB = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""


@pytest.mark.parametrize("text, message", [
    (BOMB, "uses an anchor (&a): anchors and aliases are not allowed"),
    ("a: [x]\nb: *a\n", "uses an alias (*name): aliases are not allowed"),
    ("base: &base {x: 1}\ncase:\n  <<: *base\n", "anchors and aliases are not allowed"),
    ("a: &x [*x]\n", "anchors and aliases are not allowed"),
    ("!!python/object/apply:os.system [echo hacked]\n", "tags are not allowed"),
    ("name: !!binary aGVsbG8=\n", "uses the tag tag:yaml.org,2002:binary"),
    ("name: !custom x\n", "tags are not allowed"),
    ("? [complex, key]\n: value\n", "a key must be a plain word"),
    ("name: x\x07\n", "contains a control character (#x0007) that YAML does not allow"),
])
def test_hostile_yaml_is_refused_in_words(tmp_path, text, message):
    started = time.perf_counter()
    found = only_problem(write(tmp_path, text))
    assert message in found, found
    assert time.perf_counter() - started < 5


def write_bytes(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "case.yaml"
    path.write_bytes(data)
    return path


def test_a_huge_file_is_refused_without_being_read_whole(tmp_path):
    path = write_bytes(tmp_path, b"name: x\n" + b"# padding\n" * (MAX_BYTES // 10 + 10))
    assert "is larger than 1,000 kB" in only_problem(path)


@pytest.mark.parametrize("data, message", [
    (bytes(range(256)) * 4, "the file is a binary file, not YAML text"),
    (codecs.BOM_UTF16_LE + "name: x\n".encode("utf-16-le"), "is UTF-16 text: save it as UTF-8"),
    (b"name: caf\xe9\n", "is not UTF-8 text"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "is a binary file"),
])
def test_binary_and_wrong_encodings(tmp_path, data, message):
    assert message in only_problem(write_bytes(tmp_path, data))


def test_a_byte_order_mark_is_fine(tmp_path):
    path = write_bytes(tmp_path, codecs.BOM_UTF8 + GOOD.encode())
    assert problems(path) == []


def test_deep_nesting_is_refused_quickly(tmp_path):
    started = time.perf_counter()
    found = only_problem(write(tmp_path, "a: " + "[" * 200_000 + "]" * 200_000 + "\n"))
    assert "is nested more than 24 levels deep" in found
    assert time.perf_counter() - started < 5


def test_too_many_values_are_refused(tmp_path):
    found = only_problem(write(tmp_path, "a: [" + "1," * 150_000 + "1]\n"))
    assert "has more than 100,000 values" in found


def test_a_very_long_value_is_refused(tmp_path):
    found = only_problem(write(tmp_path, "name: " + "x" * 20_000 + "\n"))
    assert "has a value longer than 10,000 characters" in found


def test_wrong_types_everywhere_never_raise(tmp_path):
    """Every key of every step given every odd value: a message, never an exception."""
    odd = ["[1, 2]", "{a: b}", "''", "-5", "99999999999", "2026-13-40", "'  '", "~", "yes"]
    n = 0
    for kind_name, kind in steps.STEP_KINDS.items():
        for key in kind.fields or {"x": None}:
            for value in odd:
                step = f"  - {kind_name}: {{{key}: {value}}}\n    expect: {{refused: true}}\n"
                text = GOOD.split("steps:")[0] + "steps:\n" + step
                path = write(tmp_path, text, f"c{n}.yaml")
                n += 1
                cases, bad = rules.load_file(path)  # must not raise
                for b in bad:
                    assert re.match(rf"{re.escape(str(path))}:\d+: ", str(b)), str(b)
    assert n > 300


def test_wrong_types_in_the_setup_never_raise(tmp_path):
    odd = ["[1, 2]", "{a: b}", "''", "-5", "2026-13-40", "~", "yes", "'x, y'"]
    places = [  # (text in GOOD to put a value in, how to put it)
        ("rph: pharmacist", "rph: {{role: {v}}}"),
        ("rph: pharmacist", "rph: {{role: pharmacist, name: {v}, dea: {v}, prescriber: {v}}}"),
        ("name: Carl Clerk}", "name: Carl Clerk, licence: {v}}}"),
        ("npi: 1234567893}", "npi: {v}}}"),
        ('{name: "Ann Lee, MD",', "{{name: {v},"),
        ("strength: 5 mg,", "strength: {v},"),
        ("ingredients: [Amoxicillin]", "ingredients: {v}"),
        ("ingredients: [Amoxicillin]", "ingredients: [{{name: {v}, strength: {v}}}]"),
        ("classes: [Penicillins]", "classes: {v}"),
        ("schedule: II}", "schedule: II, max_per_day: {v}, unit: {v}, gtin: {v}}}"),
        ("born: 1968-04-11", "born: {v}"),
        ("sex: male", "sex: {v}"),
        ("allergies: [Penicillin]", "allergies: {v}"),
        ("allergies: [Penicillin]", "allergies: [{{name: Pen, severity: {v}, reaction: {v}}}]"),
        ("allergies: [Penicillin]", "allergies: [], conditions: {v}, pregnant: {v}"),
        ("lot: OX-A,", "lot: {v},"),
        ("expiry: 2027-01-31, quantity: 100}", "expiry: {v}, quantity: {v}, status: {v}}}"),
        ("  lots:", "  settings: {{controlled_validity_months: {v}, scan_required: {v}}}\n  lots:"),
        ("  lots:\n", "  lots: {v}\n  other:\n"),
        ("setup:\n", "setup: {v}\nx:\n"),
    ]
    n = 0
    for old, new in places:
        for value in odd:
            path = write(tmp_path, replaced(old, new.format(v=value)), f"s{n}.yaml")
            n += 1
            cases, bad = rules.load_file(path)  # must not raise
            for b in bad:
                assert re.match(rf"{re.escape(str(path))}(:\d+)?: ", str(b)), str(b)
    assert n == len(places) * len(odd)


# ------------------------------------------------------------ paths


def test_folders_are_searched_and_names_must_be_unique(tmp_path):
    write(tmp_path, GOOD, "a.yaml")
    (tmp_path / "sub").mkdir()
    write(tmp_path / "sub", GOOD, "b.yml")
    write(tmp_path, "not: a case file\n", "notes.txt")  # not .yaml: ignored
    cases, bad = load_paths([tmp_path])
    assert [c.name for c in cases] == ["A good case"]
    assert len(bad) == 1 and "another case has this name" in str(bad[0])
    assert str(bad[0]).startswith(f"{tmp_path / 'sub' / 'b.yml'}:1:")


def test_missing_paths_and_empty_folders(tmp_path):
    (tmp_path / "empty").mkdir()
    cases, bad = load_paths([tmp_path / "nope.yaml", tmp_path / "empty", Path("/dev/null")])
    assert cases == []
    assert [b.message for b in bad] == ["the file or folder does not exist",
                                        "the folder has no .yaml case files",
                                        "is not a regular file"]


def test_every_step_kind_expectation_and_refusal_kind_is_documented():
    doc = (ROOT / "docs" / "rules-format.md").read_text(encoding="utf-8")
    from getmeds_desktop.rules.expect import EXPECTATIONS

    for name in [*steps.STEP_KINDS, *EXPECTATIONS, *rules.REFUSAL_KINDS,
                 *rules.warning_kinds()]:
        assert f"`{name}`" in doc, name
    for name, kind in steps.STEP_KINDS.items():
        for key in kind.fields:
            assert f"`{key}`" in doc, f"{name}: {key}"
