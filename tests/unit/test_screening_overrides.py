"""Overrides: a coded reason always; a stop needs a pharmacist and a real note."""

from __future__ import annotations

import pytest

from getmeds_desktop import screening as sc
from getmeds_desktop.enums import Role

R = sc.OverrideReason


def finding(severity: str, kind: sc.FindingKind = sc.FindingKind.INTERACTION) -> sc.Finding:
    return sc.Finding(kind, sc.Severity(severity), "k", "message", "why")


STOP = finding("severe")
WARNING = finding("moderate")
GOOD_NOTE = "Called Dr Patel, she confirmed the combination and wants INR checked"


@pytest.mark.parametrize("note", ["x", "", "   ", "ok", "ok ok ok", "asdf", "a b c d",
                                  "123 456 789", "x x x x x x", "ok."])
def test_a_stop_needs_a_note_of_real_words(note):
    d = sc.decide_override(STOP, Role.PHARMACIST, R.PRESCRIBER_CONSULTED, note)
    assert not d.accepted and "at least 3 words" in (d.problem or "")


@pytest.mark.parametrize("note", [GOOD_NOTE, "Tolerated amoxicillin 2024 uneventfully",
                                  "prescriber says continue"])
def test_a_pharmacist_overrides_a_stop_with_a_real_note(note):
    d = sc.decide_override(STOP, Role.PHARMACIST, R.PRESCRIBER_CONSULTED, note)
    assert d.accepted and d.problem is None and d.note == " ".join(note.split())


def test_a_technician_cannot_override_a_stop():
    d = sc.decide_override(STOP, "technician", R.PRESCRIBER_CONSULTED, GOOD_NOTE)
    assert not d.accepted and "a pharmacist must review" in (d.problem or "")


def test_a_technician_may_acknowledge_a_warning_unless_the_setting_says_no():
    assert sc.decide_override(WARNING, "Technician", R.PATIENT_TOLERATED_BEFORE).accepted
    strict = sc.ScreeningSettings(technician_may_acknowledge=False)
    d = sc.decide_override(WARNING, "technician", R.PATIENT_TOLERATED_BEFORE, settings=strict)
    assert not d.accepted


@pytest.mark.parametrize("role", [Role.CLERK, Role.DOCTOR, Role.ADMIN, "auditor", ""])
def test_other_roles_cannot_override(role):
    for f in (STOP, WARNING):
        d = sc.decide_override(f, role, R.PRESCRIBER_CONSULTED, GOOD_NOTE)
        assert not d.accepted and "cannot override" in (d.problem or "")
    assert "An admin cannot" in (sc.decide_override(WARNING, Role.ADMIN, R.OTHER, GOOD_NOTE)
                                 .problem or "")


def test_a_warning_needs_only_a_coded_reason():
    d = sc.decide_override(WARNING, Role.PHARMACIST, "benefit_outweighs_risk")
    assert d.accepted and d.reason is R.BENEFIT_OUTWEIGHS_RISK


@pytest.mark.parametrize("reason", [None, "", "because", "x"])
def test_the_reason_must_be_one_of_the_codes(reason):
    d = sc.decide_override(WARNING, Role.PHARMACIST, reason, GOOD_NOTE)
    assert not d.accepted


def test_other_always_needs_a_note():
    assert not sc.decide_override(WARNING, Role.PHARMACIST, R.OTHER, "x").accepted
    assert sc.decide_override(WARNING, Role.PHARMACIST, R.OTHER, GOOD_NOTE).accepted


def test_allergy_record_outdated_is_for_allergy_findings_only():
    allergy = finding("severe", sc.FindingKind.ALLERGY)
    assert sc.decide_override(allergy, Role.PHARMACIST, R.ALLERGY_RECORD_OUTDATED,
                              GOOD_NOTE).accepted
    d = sc.decide_override(STOP, Role.PHARMACIST, R.ALLERGY_RECORD_OUTDATED, GOOD_NOTE)
    assert not d.accepted and "only for allergy" in (d.problem or "")


def test_a_note_has_a_length_limit():
    d = sc.decide_override(STOP, Role.PHARMACIST, R.OTHER, "word " * 200)
    assert not d.accepted and "500" in (d.problem or "")


def test_reason_labels_and_role_names():
    assert [r.label for r in R][:2] == ["Prescriber consulted", "Patient tolerated it before"]
    assert sc.role_name(Role.PHARMACIST) == "pharmacist" == sc.role_name(" Pharmacist ")
