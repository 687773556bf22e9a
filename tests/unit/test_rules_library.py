"""The case library shipped with the app: every case passes (or is a known bug
the lead knows about), each cites its rule, and it ships with every build."""

from __future__ import annotations

from pathlib import Path

import pytest

from getmeds_desktop import rules

ROOT = Path(__file__).resolve().parents[2]

# Cases that show a bug not fixed yet. A new entry here is a bug report.
KNOWN_BUGS: set[str] = set()


@pytest.mark.slow  # every case of the library, each on a database of its own
def test_the_library_passes():
    lines: list[str] = []
    report = rules.run([rules.LIBRARY], out=lines.append)
    assert report.invalid == (), lines
    failed = [r.line() for r in report.results if r.status == "fail"]
    assert failed == []
    assert {r.name for r in report.results if r.status == "known_bug"} == KNOWN_BUGS
    assert report.ok and len(report.results) >= 20


def test_every_case_cites_its_rule_and_every_file_is_documented():
    cases, invalid = rules.load_paths([rules.LIBRARY])
    assert invalid == []
    assert [c.name for c in cases if not c.cite] == []
    doc = (ROOT / "docs" / "rules-format.md").read_text(encoding="utf-8")
    files = sorted(p.name for p in rules.LIBRARY.glob("*.yaml"))
    assert files and [f for f in files if f"`{f}`" not in doc] == []
    assert {c.file.name for c in cases} == set(files)


def test_the_library_is_package_data_for_wheels_and_frozen_builds():
    assert rules.LIBRARY == ROOT / "getmeds_desktop" / "rules" / "cases"
    assert '"rules/cases/*.yaml"' in (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert '"rules/cases/*.yaml"' in (ROOT / "packaging" / "getmeds.spec").read_text(
        encoding="utf-8")


def test_getmeds_admin_rules_check_runs_the_library_by_default(capsys, tmp_path, monkeypatch):
    """Without PATH the shipped library runs (here one of its files, to keep this fast:
    test_the_library_passes runs all of it)."""
    from getmeds_desktop import cli

    one = tmp_path / "library"
    one.mkdir()
    (one / "x.yaml").write_bytes((rules.LIBRARY / "schedule-ii-no-refills.yaml").read_bytes())
    monkeypatch.setattr(rules, "LIBRARY", one)
    code = cli.main(["rules", "check"])
    out = capsys.readouterr().out.splitlines()
    assert code == 0
    assert out[:2] == [f"Running the case library of this version ({one}).",
                       "PASS Schedule II prescriptions cannot be refilled"]
    assert out[2].startswith("1 passed, 0 failed (")
