"""The shipped screening data: every entry fires, every entry is cited, and a
malformed data file is refused with its name and entry."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from importlib import resources
from pathlib import Path

import pytest
import yaml

from getmeds_desktop import screening as sc
from getmeds_desktop.screening import knowledge as kn

from .screening_helpers import NOW, allergy, fill, patient, product, run

ROOT = Path(__file__).resolve().parents[2]
K = sc.FindingKind
KNOWLEDGE = sc.default_knowledge()


def _texts() -> dict[str, str]:
    folder = resources.files("getmeds_desktop.screening").joinpath("data")
    return {f: folder.joinpath(f).read_text(encoding="utf-8") for f in sc.DATA_FILES}


def _example(members: kn.Members) -> sc.Product:
    """A product on this side: its first ingredient, else its first class."""
    if members.ingredients:
        name = sorted(members.ingredients)[0]
        return product(name.title(), (name.title(), "10 mg"))
    cls = sorted(members.classes)[0]
    return product(f"A {cls}", (f"Drug of {cls}", "10 mg"), classes=(cls.title(),))


# ------------------------------------------------------------ every entry fires


@pytest.mark.parametrize("rule", KNOWLEDGE.interactions, ids=lambda r: r.id)
def test_every_interaction_fires_both_ways(rule):
    a, b = _example(rule.a), _example(rule.b)
    for mine, theirs in ((a, b), (b, a)):
        result = run(mine, None, fill(theirs, days_ago=1, rx="Rx 1"), rx="Rx 2")
        found = result.of_kind(K.INTERACTION)
        assert len(found) == 1, (rule.id, [f.message for f in result.findings])
        assert found[0].key.startswith(f"interaction:{rule.id}:")
        assert found[0].severity is rule.severity.finding_severity
        assert found[0].sources and rule.source.citation.split()[0] in found[0].sources[0]


def test_the_onc_list_is_there_less_the_qt_pair():
    onc = [r for r in KNOWLEDGE.interactions if r.id.startswith("onc-")]
    assert len(onc) == 14  # the 15 ONC pairs without "QT prolonging agents" (see docs)
    assert all(r.severity is kn.InteractionSeverity.CONTRAINDICATED for r in onc)
    assert {r.source.id for r in onc} == {"phansalkar2012"}


@pytest.mark.parametrize("rule", KNOWLEDGE.age_rules, ids=lambda r: r.id)
def test_every_age_rule_fires_below_its_age_and_not_from_it(rule):
    prod = _example(rule.members)
    limit = rule.younger_than
    assert limit is not None  # the shipped rules are all "younger than"
    below = patient(born=dt.date(NOW.year - limit + 1, 1, 1))
    at = patient(born=dt.date(NOW.year - limit, 1, 1))
    assert [f.key for f in run(prod, below).of_kind(K.AGE)] == [f"age:{rule.id}"]
    assert not run(prod, at).of_kind(K.AGE)


@pytest.mark.parametrize("rule", KNOWLEDGE.pregnancy_rules, ids=lambda r: r.id)
def test_every_pregnancy_rule_fires_only_in_its_state(rule):
    prod = _example(rule.members)
    state = patient(pregnant=rule.when == "pregnant",
                    breastfeeding=rule.when == "breastfeeding")
    assert [f.key for f in run(prod, state).of_kind(K.PREGNANCY)] == [f"pregnancy:{rule.id}"]
    assert not run(prod, patient()).of_kind(K.PREGNANCY)


@pytest.mark.parametrize("limit", list(KNOWLEDGE.dose_limits.values()),
                         ids=lambda d: d.ingredient)
def test_every_ingredient_maximum_fires_above_it(limit):
    prod = product(limit.ingredient.title(), (limit.ingredient.title(), "500 mg"))
    per_day = int(limit.max_mg_per_day / 500)
    assert not run(prod, None, quantity=per_day * 10, days_supply=10).of_kind(K.DOSE)
    over = run(prod, None, quantity=(per_day + 1) * 10, days_supply=10).of_kind(K.DOSE)
    assert [f.key for f in over] == [f"dose:{limit.ingredient}"]


@pytest.mark.parametrize("group", KNOWLEDGE.groups, ids=lambda g: g.id)
def test_every_group_matches_its_members_by_name_and_by_ingredient(group):
    for member in sorted(group.members.ingredients):
        prod = product(member.title(), (member.title(), "10 mg"))
        f = run(prod, patient(allergy(group.name))).of_kind(K.ALLERGY)
        assert f, (group.id, member)
        want = "same class" if group.relation == "class" else "cross-sensitivity"
        assert f[0].why.startswith(want) or f[0].why.startswith("same ingredient")
    # an allergy to one member matches another member of the group
    first, *rest = sorted(group.members.ingredients)
    for member in rest[:3]:
        prod = product(member.title(), (member.title(), "10 mg"))
        assert run(prod, patient(allergy(first))).of_kind(K.ALLERGY), (first, member)


@pytest.mark.parametrize("group", [g for g in KNOWLEDGE.groups if g.cross], ids=lambda g: g.id)
def test_every_cross_link_warns_at_most_at_its_severity(group):
    allergen = sorted(group.members.ingredients)[0]
    for target, cap in group.cross:
        linked = KNOWLEDGE.group_by_id[target]
        member = sorted(linked.members.ingredients)[0]
        prod = product(member.title(), (member.title(), "10 mg"))
        f = run(prod, patient(allergy(allergen, "severe"))).of_kind(K.ALLERGY)
        assert f and f[0].severity is cap and "lower risk" in f[0].why


def test_every_synonym_and_brand_points_at_something_that_matches():
    for table in (KNOWLEDGE.synonyms, KNOWLEDGE.brands):
        for typed, targets in table.items():
            target = targets[0]
            if target.startswith("group:"):
                target = sorted(KNOWLEDGE.group_by_id[target[6:]].members.ingredients)[0]
            prod = product(target.title(), (target.title(), "10 mg"))
            assert run(prod, patient(allergy(typed))).of_kind(K.ALLERGY), typed


def test_intolerance_never_crosses_into_another_group():
    pat = patient(allergy("amoxicillin", "moderate", "diarrhoea", intolerance=True))
    for g in ("cephalosporins", "carbapenems"):
        member = sorted(KNOWLEDGE.group_by_id[g].members.ingredients)[0]
        assert not run(product(member, (member, "1 g")), pat).findings


# ------------------------------------------------------------- every entry cited


def test_every_data_file_has_a_version_and_cited_sources():
    for name, text in _texts().items():
        doc = yaml.safe_load(text)
        assert re.fullmatch(r"\d{4}\.\d+", str(doc["version"])), name
        for sid, src in doc["sources"].items():
            assert len(src["citation"].split()) >= 5, (name, sid)
            if sid != "editorial":
                assert src["url"].startswith(("https://", "http://")), (name, sid)
        used = set(re.findall(r"^\s*source: (\S+)$", text, re.MULTILINE))
        assert used <= set(doc["sources"]), name
        assert set(doc["sources"]) <= used | {"editorial"} or name == "interactions.yaml", name


def test_every_entry_names_its_source():
    for g in KNOWLEDGE.groups:
        assert g.source.citation and g.cite, g.id
    for r in KNOWLEDGE.interactions:
        assert r.source.citation and r.cite and r.consequence, r.id
    for a in KNOWLEDGE.age_rules:
        assert a.source.url and a.message, a.id
    for p in KNOWLEDGE.pregnancy_rules:
        assert p.source.url and p.message, p.id
    for d in KNOWLEDGE.dose_limits.values():
        assert d.source.url and d.message, d.ingredient


def test_the_data_is_read_once():
    assert sc.default_knowledge() is sc.default_knowledge()


def test_the_data_files_are_package_data_for_wheels_and_frozen_builds():
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert '"screening/data/*.yaml"' in pyproject
    assert re.search(r'"PyYAML>=6[^"]*,<7"', pyproject)
    spec = (ROOT / "packaging" / "getmeds.spec").read_text(encoding="utf-8")
    assert '"screening/data/*.yaml"' in spec
    assert set(sc.DATA_FILES) == {p.name for p in (
        ROOT / "getmeds_desktop" / "screening" / "data").glob("*.yaml")}


# ----------------------------------------------------- malformed data refused


def _with(file: str, old: str, new: str) -> dict[str, str]:
    texts = _texts()
    assert old in texts[file]
    texts[file] = texts[file].replace(old, new, 1)
    return texts


@pytest.mark.parametrize("file, old, new, message", [
    ("interactions.yaml", "severity: contraindicated\n    consequence: Hypertensive",
     "severity: deadly\n    consequence: Hypertensive",
     "interactions.yaml, onc-amphetamines-maois: severity must be"),
    ("interactions.yaml", "source: phansalkar2012\n    cite: Table 2, pair 3",
     "source: nobody\n    cite: Table 2, pair 3", "source 'nobody' is not listed"),
    ("interactions.yaml", "b: {sets: [maois]}", "b: {sets: [mao]}", "set 'mao' is not defined"),
    ("age.yaml", "younger_than: 12", "younger_than: twelve", "ages are whole years"),
    ("age.yaml", "id: tramadol-under-12", "id: codeine-under-12", "the id is used twice"),
    ("allergy.yaml", "group: carbapenems", "group: penems", "cross group 'penems'"),
    ("pregnancy.yaml", "when: breastfeeding", "when: nursing", "when must be pregnant"),
    ("dose.yaml", "max_mg_per_day: 4000", "max_mg_per_day: lots", "must be a number"),
    ("dose.yaml", "version: \"2026.1\"", "", "'version' is missing"),
    ("allergy.yaml", "groups:", "groups: [", "allergy.yaml is not valid YAML"),
])
def test_a_malformed_data_file_is_refused_with_its_name(file, old, new, message):
    with pytest.raises(sc.KnowledgeError, match=re.escape(message)):
        sc.load_knowledge(_with(file, old, new))


def test_a_missing_data_file_is_refused():
    texts = _texts()
    del texts["age.yaml"]
    with pytest.raises(sc.KnowledgeError, match="missing: age.yaml"):
        sc.load_knowledge(texts)


def test_a_site_can_extend_a_group():
    texts = _with("allergy.yaml", "ingredients: [imipenem, meropenem, ertapenem, doripenem]",
                  "ingredients: [imipenem, meropenem, ertapenem, doripenem, newpenem]")
    custom = sc.load_knowledge(texts)
    req = sc.ScreeningRequest(patient(allergy("carbapenems")), product(
        "Newpenem", ("Newpenem", "1 g")), Decimal(1), 1, NOW)
    assert sc.screen(req, custom).of_kind(K.ALLERGY)
    assert not sc.screen(req).of_kind(K.ALLERGY)
