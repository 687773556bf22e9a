"""Importing a licensed interaction knowledge base from CSV: checked row by
row, hostile files refused in one sentence, merged over the defaults."""

from __future__ import annotations

import pytest

from getmeds_desktop import screening as sc
from getmeds_desktop.screening import importing

from .screening_helpers import CLARITHROMYCIN, IBUPROFEN, SIMVASTATIN, WARFARIN, fill, product, run

HEADER = ("ingredient_or_class_a,ingredient_or_class_b,severity,clinical_consequence,"
          "management,source\n")
K = sc.FindingKind


def write(tmp_path, text: str, name: str = "kb.csv", encoding: str = "utf-8"):
    path = tmp_path / name
    path.write_text(text, encoding=encoding, newline="")
    return path


def test_a_good_file_is_read_and_merged_over_the_defaults(tmp_path):
    path = write(tmp_path, HEADER
                 + "warfarin,class:Nonsteroidal Anti-inflammatory Drug;ibuprofen,moderate,"
                   "Bleeding,Monitor the INR,Vendor KB 2026.2\n"
                 + "\"Lisinopril\",ingredient:spironolactone,major,"
                   "\"Hyperkalemia, \"\"high\"\" K\",,Vendor KB 2026.2\n")
    imported = sc.read_interactions_csv(path)
    assert len(imported.rules) == 2 and len(imported.sha256) == 64
    merged = sc.merge_interactions(sc.default_knowledge(), imported)
    assert merged.versions[-1][0] == "interactions import" and "kb.csv (2 rules" in (
        merged.versions[-1][1])
    before = run(IBUPROFEN, None, fill(WARFARIN, days_ago=2, rx="Rx 1"))
    assert len(before.findings[0].sources) == 1
    after = sc.screen(sc.ScreeningRequest(
        *_args(IBUPROFEN, fill(WARFARIN, days_ago=2, rx="Rx 1"))), merged)
    f = after.of_kind(K.INTERACTION)
    assert len(f) == 1  # one finding per other prescription: the most severe rule ...
    assert f[0].severity is sc.Severity.SEVERE and f[0].key.startswith(
        "interaction:fda-warfarin-nsaids")
    assert "Vendor KB 2026.2" in f[0].sources[1]  # ... citing every rule that matched
    assert "line 2" in f[0].sources[1]
    spiro = product("Spironolactone 25 mg", ("Spironolactone", "25 mg"))
    lisinopril = product("Lisinopril 10 mg", ("Lisinopril", "10 mg"))
    hk = sc.screen(sc.ScreeningRequest(*_args(spiro, fill(lisinopril, 3))), merged)
    assert 'Hyperkalemia, "high" K' in hk.of_kind(K.INTERACTION)[0].message


def test_an_imported_rule_for_the_same_pair_replaces_the_default(tmp_path):
    k = sc.default_knowledge()
    default = next(r for r in k.interactions if r.id == "onc-simvastatin-lovastatin-cyp3a4-"
                                                        "inhibitors")
    rule = sc.InteractionRule("kb-x", default.b, default.a, sc.InteractionSeverity.MINOR,
                              "replaced", "", default.source)
    merged = k.with_interactions([rule], "test")
    assert len(merged.interactions) == len(k.interactions)
    f = sc.screen(sc.ScreeningRequest(*_args(CLARITHROMYCIN, fill(SIMVASTATIN, 2))), merged)
    assert f.of_kind(K.INTERACTION)[0].severity is sc.Severity.MILD


def _args(prod, *meds):
    from decimal import Decimal

    from .screening_helpers import NOW, patient

    return patient(), prod, Decimal(30), 30, NOW, tuple(meds), "Rx 999"


def test_semicolons_tabs_aliases_and_windows_1252(tmp_path):
    text = ("Drug A;Drug B;Severity;Consequence;Management;Source\n"
            "warfarin;ibuprofen;minor;Saignement accru é;;Vendor\n")
    assert len(sc.read_interactions_csv(write(tmp_path, text, encoding="cp1252")).rules) == 1
    tabs = HEADER.replace(",", "\t") + "a\tb\tmoderate\tc\tm\ts\n"
    assert len(sc.read_interactions_csv(write(tmp_path, tabs, "t.tsv")).rules) == 1


def test_every_bad_row_is_named_with_its_line(tmp_path):
    path = write(tmp_path, HEADER
                 + "warfarin,ibuprofen,deadly,Bleeding,,KB\n"       # line 2
                 + ",ibuprofen,major,Bleeding,,KB\n"                # line 3
                 + "warfarin,ibuprofen,major,,,KB\n"                # line 4
                 + "warfarin,ibuprofen,major,Bleeding\n"            # line 5
                 + "123,ibuprofen,major,Bleeding,,KB\n"             # line 6
                 + "\n"                                             # blank: skipped
                 + "warfarin,naproxen,major,Bleeding,,KB\n"         # line 8: fine
                 + "Naproxen,Warfarin,major,Bleeding,,KB\n")        # line 9: duplicate
    with pytest.raises(sc.InteractionFileError) as e:
        sc.read_interactions_csv(path)
    problems = dict(e.value.problems)
    assert set(problems) == {2, 3, 4, 5, 6, 9}
    assert "'deadly' is not one of contraindicated, major, moderate, minor" in problems[2]
    assert "ingredient_or_class_a is empty" in problems[3]
    assert "clinical_consequence is empty" in problems[4]
    assert "4 values and the header 6" in problems[5]
    assert "'123' is not a drug name" in problems[6]
    assert "already on line 8" in problems[9]
    assert str(e.value).startswith("kb.csv was not imported: line 2:")
    assert "(and 1 more)" in str(e.value)


def test_a_missing_column_is_refused(tmp_path):
    with pytest.raises(sc.InteractionFileError, match="missing columns severity, source"):
        sc.read_interactions_csv(write(tmp_path, "drug_a,drug_b,consequence\nx,y,z\n"))
    with pytest.raises(sc.InteractionFileError, match="appears twice"):
        sc.read_interactions_csv(write(tmp_path, HEADER.strip() + ",drug_a\n"))


@pytest.mark.parametrize("content, message", [
    (b"", "is empty"),
    (b"PK\x03\x04\x00\x00binary spreadsheet", "binary data"),
    (HEADER.encode() + b'warfarin,ibuprofen,major,"Bleeding never closed\n', "never closed"),
    (HEADER.encode(), "no interactions"),
    (HEADER.encode() + b"a" * 200_001 + b"\n", "longer than"),
])
def test_hostile_or_truncated_files_are_refused_cleanly(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(sc.InteractionFileError, match=message):
        sc.read_interactions_csv(path)


def test_not_a_regular_file_and_too_big(tmp_path, monkeypatch):
    from getmeds_desktop.services.errors import ValidationError

    assert issubclass(sc.InteractionFileError, ValidationError)  # the CLI shows it as one line
    with pytest.raises(ValidationError, match="not a regular file"):
        sc.read_interactions_csv(tmp_path)
    with pytest.raises(ValidationError, match="cannot be read"):
        sc.read_interactions_csv(tmp_path / "missing.csv")
    monkeypatch.setattr(importing, "MAX_BYTES", 100)
    with pytest.raises(ValidationError, match="may be at most"):
        sc.read_interactions_csv(write(tmp_path, HEADER + "a,b,minor,c,,s\n" * 10))


def test_the_documented_columns():
    assert sc.INTERACTION_CSV_COLUMNS == (
        "ingredient_or_class_a", "ingredient_or_class_b", "severity", "clinical_consequence",
        "management", "source")
