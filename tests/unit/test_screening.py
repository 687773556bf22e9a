"""Clinical screening: the examples of the issue that asked for it, a case for each
group and default, and the false alarms that must stay quiet."""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal

import pytest

from getmeds_desktop import screening as sc
from getmeds_desktop.enums import Role

from .screening_helpers import (
    ACETAMINOPHEN_500,
    ALBUTEROL,
    ALPRAZOLAM,
    AMOXICILLIN,
    APAP_LIQUID,
    ASPIRIN,
    ATORVASTATIN,
    BACTRIM,
    CELECOXIB,
    CEPHALEXIN,
    CLARITHROMYCIN,
    CODEINE_APAP,
    ENALAPRIL,
    FENTANYL,
    HCTZ,
    HYDROCODONE_APAP_A,
    HYDROCODONE_APAP_B,
    IBUPROFEN,
    ISOSORBIDE,
    ISOTRETINOIN,
    LISINOPRIL_10,
    LISINOPRIL_20,
    MEROPENEM,
    METHOTREXATE,
    MORPHINE,
    NOW,
    PEN_VK,
    PROMETHAZINE,
    SILDENAFIL,
    SIMVASTATIN,
    TRAMADOL,
    WARFARIN,
    allergy,
    fill,
    kinds,
    only,
    open_rx,
    patient,
    product,
    run,
)

K = sc.FindingKind
SEVERE, MODERATE, MILD = sc.Severity.SEVERE, sc.Severity.MODERATE, sc.Severity.MILD


# ----------------------------------------------------- the examples


def test_240_hydrocodone_apap_tablets_in_3_days_from_two_ndcs():
    # 120 tablets for 30 days of one NDC three days ago; now 120 more of another NDC.
    earlier = fill(HYDROCODONE_APAP_A, days_ago=3, days_supply=30, quantity=120, rx="Rx 1")
    result = run(HYDROCODONE_APAP_B, None, earlier, quantity=120, days_supply=30, rx="Rx 2")
    early = only(result, K.EARLY_REFILL)
    assert early.severity is SEVERE  # a controlled drug: a stop
    assert "10%" in early.message and "Hydrocodone Bitartrate" in early.message
    assert "90%" in early.message  # the stricter threshold for controlled drugs
    assert only(result, K.DUPLICATE_THERAPY).why == (
        "same ingredient: Hydrocodone Bitartrate and Acetaminophen")


def test_early_refill_across_ndcs_of_the_same_prescription():
    earlier = fill(HYDROCODONE_APAP_A, days_ago=3, days_supply=30, quantity=120, rx="Rx 1")
    result = run(HYDROCODONE_APAP_B, None, earlier, quantity=120, days_supply=30, rx="Rx 1")
    assert kinds(result) == {"early_refill"}  # its own earlier fill is not a duplicate


def test_lisinopril_20_three_days_after_a_30_day_lisinopril_10_fill():
    # Rx 1 is finished (dispensed, no refills left) but its supply is still on hand.
    earlier = fill(LISINOPRIL_10, days_ago=3, rx="Rx 1")
    result = run(LISINOPRIL_20, None, earlier, rx="Rx 2")
    dup = only(result, K.DUPLICATE_THERAPY)
    assert dup.why == "same ingredient: Lisinopril"
    assert "Lisinopril 10 mg (Rx 1 fill 0, filled" in dup.message
    assert "early_refill" in kinds(result)  # 27 days of lisinopril still on hand


def test_duplicate_therapy_by_class():
    result = run(ENALAPRIL, None, fill(LISINOPRIL_10, days_ago=10, rx="Rx 1"), rx="Rx 2")
    dup = only(result, K.DUPLICATE_THERAPY)
    assert dup.why == "same therapeutic class: Angiotensin Converting Enzyme Inhibitor"
    assert "[EPC]" not in dup.message


def test_duplicate_therapy_against_an_open_prescription_not_yet_filled():
    result = run(LISINOPRIL_20, None, open_rx(LISINOPRIL_10, "Rx 7"), rx="Rx 8")
    assert "open" in only(result, K.DUPLICATE_THERAPY).message


def test_mechanism_classes_are_not_duplicate_therapy():
    # both are CYP3A4 inhibitors by mechanism, nothing alike therapeutically
    result = run(ATORVASTATIN, None, fill(CLARITHROMYCIN, days_ago=2, rx="Rx 1"), rx="Rx 2")
    assert "duplicate_therapy" not in kinds(result)
    uncoded = dataclasses.replace(ATORVASTATIN, classes=("HMG-CoA Reductase Inhibitor",
                                                         "Cytochrome P450 3A4 Inhibitors"))
    other = dataclasses.replace(CLARITHROMYCIN, classes=("Macrolide Antimicrobial",
                                                         "Cytochrome P450 3A4 Inhibitors"))
    assert "duplicate_therapy" not in kinds(
        run(uncoded, None, fill(other, days_ago=2, rx="Rx 1"), rx="Rx 2"))


@pytest.mark.parametrize("typed", ["Penicillins", "PCN", "Amoxil", "penicillin", "PENICILLIN",
                                   "Pen VK", "amoxicillins"])
@pytest.mark.parametrize("prod", [PEN_VK, AMOXICILLIN], ids=["pen-vk", "amoxicillin"])
def test_penicillin_allergy_as_typed_matches_pen_vk_and_amoxicillin(typed, prod):
    result = run(prod, patient(allergy(typed)))
    found = only(result, K.ALLERGY)
    if typed == "Pen VK" and prod is AMOXICILLIN:
        assert found.why.startswith("same class")  # penicillin V and amoxicillin
    assert found.severity is SEVERE
    assert typed in found.message and "hives" in found.message and "severe" in found.message
    assert "[EPC]" not in found.message and "[CS]" not in found.message


def test_allergy_message_says_why_in_plain_words():
    f = only(run(AMOXICILLIN, patient(allergy("Penicillins"))), K.ALLERGY)
    assert f.message == (
        "Allergy: the patient's record lists an allergy to Penicillins (severe; hives). "
        "Amoxicillin 500 mg capsule contains Amoxicillin, one of the penicillins (same class).")
    assert f.key == "allergy:penicillin"
    assert f.sources and "Khan DA" in f.sources[0]


def test_aspirin_allergy_warns_on_ibuprofen():
    f = only(run(IBUPROFEN, patient(allergy("Aspirin", "moderate", "wheezing"))), K.ALLERGY)
    assert f.why == "cross-sensitivity: Ibuprofen (aspirin and other NSAIDs)"
    assert f.severity is MODERATE
    assert "aspirin and other NSAIDs can cross-react" in f.message


def test_asa_abbreviation_and_nsaid_class_allergy():
    assert run(ASPIRIN, patient(allergy("ASA"))).of_kind(K.ALLERGY)
    assert run(IBUPROFEN, patient(allergy("NSAIDs"))).of_kind(K.ALLERGY)


def test_codeine_allergy_warns_on_morphine():
    f = only(run(MORPHINE, patient(allergy("Codeine", "moderate", "rash"))), K.ALLERGY)
    assert f.why == "cross-sensitivity: Morphine Sulfate (natural and semi-synthetic opioids)"
    assert "natural and semi-synthetic opioids" in f.message


def test_codeine_allergy_is_not_matched_to_a_synthetic_opioid():
    assert not run(FENTANYL, patient(allergy("Codeine"))).of_kind(K.ALLERGY)


def test_penicillin_allergy_warns_on_cephalexin_at_a_lower_severity():
    f = only(run(CEPHALEXIN, patient(allergy("Penicillin", "severe", "anaphylaxis"))),
             K.ALLERGY)
    assert f.severity is MODERATE
    assert f.why == "cross-sensitivity, lower risk: Cephalexin (penicillins)"
    assert "cephalosporins, which can cross-react with the penicillins" in f.message


def test_penicillin_allergy_warns_on_a_carbapenem_at_a_lower_severity():
    assert only(run(MEROPENEM, patient(allergy("PCN"))), K.ALLERGY).severity is MODERATE


def test_cephalosporin_allergy_warns_on_penicillins_at_a_lower_severity():
    f = only(run(AMOXICILLIN, patient(allergy("Keflex"))), K.ALLERGY)
    assert f.severity is MODERATE and "cross-sensitivity, lower risk" in f.why


def test_a_mild_allergy_stays_mild_through_cross_sensitivity():
    f = only(run(CEPHALEXIN, patient(allergy("Penicillin", "mild", "itch"))), K.ALLERGY)
    assert f.severity is MILD


def test_cephalexin_for_a_penicillin_intolerance_only_is_quiet():
    pat = patient(allergy("Penicillin", "mild", "nausea", intolerance=True))
    assert not run(CEPHALEXIN, pat).of_kind(K.ALLERGY)
    same = only(run(AMOXICILLIN, pat), K.ALLERGY)
    assert same.severity is MILD and "an intolerance to Penicillin" in same.message


@pytest.mark.parametrize("prod", [MORPHINE, ALBUTEROL, HCTZ], ids=lambda p: p.name)
def test_sulfa_never_matches_sulfate_salts_or_non_antibiotic_sulfonamides(prod):
    assert not run(prod, patient(allergy("Sulfa"), allergy("sulfonamides"))).of_kind(K.ALLERGY)


@pytest.mark.parametrize("typed", ["Sulfa", "sulfa drugs", "Sulfonamide", "Bactrim", "SMX-TMP"])
def test_sulfa_allergy_matches_sulfonamide_antibiotics(typed):
    assert only(run(BACTRIM, patient(allergy(typed))), K.ALLERGY).severity is SEVERE


def test_the_products_own_brand_name_matches():
    zorbex = dataclasses.replace(CEPHALEXIN, brand_names=("Zorbex",))
    f = only(run(zorbex, patient(allergy("Zorbex"))), K.ALLERGY)
    assert f.why.startswith("brand")


def test_unknown_allergy_severity_is_screened_as_severe():
    f = only(run(AMOXICILLIN, patient(allergy("amoxicillin", "unknown", None))), K.ALLERGY)
    assert f.severity is SEVERE and "severity not recorded" in f.message


def test_aspirin_allergy_does_not_match_celecoxib():
    assert not run(CELECOXIB, patient(allergy("Aspirin"))).of_kind(K.ALLERGY)


def test_warfarin_with_ibuprofen():
    result = run(IBUPROFEN, None, fill(WARFARIN, days_ago=5, rx="Rx 1"), rx="Rx 2")
    f = only(result, K.INTERACTION)
    assert f.severity is SEVERE and f.is_stop
    assert f.key == "interaction:fda-warfarin-nsaids:Rx 1"
    assert "Ibuprofen in Ibuprofen 800 mg with Warfarin Sodium in Warfarin Sodium 5 mg" in (
        f.message)
    # and the other way round
    assert run(WARFARIN, None, open_rx(IBUPROFEN, "Rx 3")).of_kind(K.INTERACTION)


def test_1000_tablets_in_5_days():
    result = run(LISINOPRIL_10, None, quantity=1000, days_supply=5)
    f = only(result, K.DOSE)
    assert f.key == "dose:days_supply" and f.severity is SEVERE
    assert "1,000 tablets in 5 days is 200 tablets a day" in f.message
    # of acetaminophen that is also far above its daily maximum
    apap = run(ACETAMINOPHEN_500, None, quantity=1000, days_supply=5).of_kind(K.DOSE)
    assert {f.key for f in apap} == {"dose:days_supply", "dose:acetaminophen"}
    assert not run(LISINOPRIL_10, None, quantity=90, days_supply=30).findings


def test_a_toddler_gets_codeine_and_promethazine():
    toddler = patient(born=dt.date(2024, 3, 1))  # 2 years old on NOW
    f = only(run(CODEINE_APAP, toddler, quantity=20, days_supply=5), K.AGE)
    assert f.severity is SEVERE and "2 years old" in f.message
    assert "younger than 12" in f.message and "FDA Drug Safety Communication" in f.sources[0]
    infant = patient(born=dt.date(2025, 9, 1))
    p = only(run(PROMETHAZINE, infant, quantity=100, days_supply=10), K.AGE)
    assert "younger than 1 year" in p.message and "younger than 2" in p.message


def test_x_is_refused_as_the_reason_for_a_severe_allergy():
    f = only(run(AMOXICILLIN, patient(allergy("Penicillins"))), K.ALLERGY)
    d = sc.decide_override(f, Role.PHARMACIST, sc.OverrideReason.BENEFIT_OUTWEIGHS_RISK, "x")
    assert not d.accepted and "at least 3 words" in (d.problem or "")
    ok = sc.decide_override(f, "pharmacist", "benefit_outweighs_risk",
                            "Skin test negative, allergist Dr Ortiz cleared amoxicillin")
    assert ok.accepted and ok.reason is sc.OverrideReason.BENEFIT_OUTWEIGHS_RISK


# ------------------------------------------------------------ interactions


def test_opioid_with_benzodiazepine():
    f = only(run(ALPRAZOLAM, None, fill(MORPHINE, days_ago=2, rx="Rx 1"), rx="Rx 2"),
             K.INTERACTION)
    assert f.is_stop and "respiratory depression" in f.message
    assert "FDA Drug Safety Communication" in f.sources[0]


def test_pde5_inhibitor_with_nitrate():
    f = only(run(SILDENAFIL, None, fill(ISOSORBIDE, days_ago=2, rx="Rx 1")), K.INTERACTION)
    assert "contraindicated" in f.message


def test_methotrexate_with_trimethoprim():
    f = only(run(BACTRIM, None, fill(METHOTREXATE, days_ago=2, quantity=8, rx="Rx 1")),
             K.INTERACTION)
    assert "Trimethoprim" in f.why and "bone marrow" in f.message


def test_simvastatin_with_clarithromycin_but_not_atorvastatin():
    assert run(CLARITHROMYCIN, None, fill(SIMVASTATIN, days_ago=2)).of_kind(K.INTERACTION)
    assert not run(CLARITHROMYCIN, None, fill(ATORVASTATIN, days_ago=2)).of_kind(K.INTERACTION)


def test_one_interaction_finding_per_other_prescription():
    # a prescription and two fills of it on hand: one finding, the most severe
    meds = (open_rx(WARFARIN, "Rx 1"), fill(WARFARIN, 10, rx="Rx 1", number=1),
            fill(WARFARIN, 2, rx="Rx 1", number=2))
    assert len(run(IBUPROFEN, None, *meds).of_kind(K.INTERACTION)) == 1


def test_a_finished_supply_long_past_is_not_screened():
    old = fill(WARFARIN, days_ago=120, days_supply=30, rx="Rx 1")
    result = run(IBUPROFEN, None, old, rx="Rx 2")
    assert result.findings == ()
    assert run(LISINOPRIL_20, None, fill(LISINOPRIL_10, days_ago=45, rx="Rx 1"),
               rx="Rx 2").findings == ()


def test_returned_fills_and_inactive_prescriptions_do_not_count():
    returned = fill(WARFARIN, days_ago=2, rx="Rx 1", active=False)
    cancelled = open_rx(WARFARIN, "Rx 2", active=False)
    assert run(IBUPROFEN, None, returned, cancelled).findings == ()


# ----------------------------------------------------------------- early refill


def test_an_on_time_refill_is_quiet():
    result = run(LISINOPRIL_10, None, fill(LISINOPRIL_10, days_ago=25, rx="Rx 1"), rx="Rx 1")
    assert result.findings == ()  # 83% used, threshold 75%


def test_early_refill_threshold_for_every_drug_and_stricter_for_controlled():
    tramadol = fill(TRAMADOL, days_ago=25, quantity=120, rx="Rx 1")
    f = only(run(TRAMADOL, None, tramadol, quantity=120, rx="Rx 1"), K.EARLY_REFILL)
    assert f.severity is SEVERE and "controlled threshold 90%" in f.why
    lisinopril = fill(LISINOPRIL_10, days_ago=20, rx="Rx 1")  # 67% < 75%
    f = only(run(LISINOPRIL_10, None, lisinopril, rx="Rx 1"), K.EARLY_REFILL)
    assert f.severity is MODERATE and "threshold 75%" in f.why
    assert "2026-05-13" in f.message  # due after 75% of 30 days from 2026-04-20
    looser = sc.ScreeningSettings(early_refill_percent=60)
    assert run(LISINOPRIL_10, None, lisinopril, rx="Rx 1", settings=looser).findings == ()


def test_early_refill_sums_the_supply_of_consecutive_fills():
    # day -50: 30 days, day -25: 30 days -> 60 days supplied in 50 days: 83% used
    fills = (fill(LISINOPRIL_10, 50, rx="Rx 1", number=0),
             fill(LISINOPRIL_10, 25, rx="Rx 1", number=1))
    assert run(LISINOPRIL_10, None, *fills, rx="Rx 1").findings == ()
    # day -20 and day -10: 60 days supplied in 20 days: 33% used
    fills = (fill(LISINOPRIL_10, 20, rx="Rx 1"), fill(LISINOPRIL_10, 10, rx="Rx 1", number=1))
    f = only(run(LISINOPRIL_10, None, *fills, rx="Rx 1"), K.EARLY_REFILL)
    assert "2 fills" in f.message and "supplied 60 days" in f.message
    assert f.key == "early_refill:lisinopril:Rx 1 fill 1"


def test_a_gap_in_supply_starts_a_new_course():
    fills = (fill(LISINOPRIL_10, 100, rx="Rx 1"), fill(LISINOPRIL_10, 24, rx="Rx 1", number=1))
    assert run(LISINOPRIL_10, None, *fills, rx="Rx 1").findings == ()  # 80% of the last one


# ------------------------------------------------------------------------- dose


def test_two_acetaminophen_products_together_above_4_g():
    # 8 tablets of 325 mg (2,600 mg) a day on hand, plus 4 tablets of 500 mg (2,000 mg)
    norco = fill(HYDROCODONE_APAP_A, days_ago=2, days_supply=15, quantity=120, rx="Rx 1")
    result = run(ACETAMINOPHEN_500, None, norco, quantity=120, days_supply=30)
    f = only(result, K.DOSE)
    assert f.key == "dose:acetaminophen" and f.severity is SEVERE
    assert "4,600 mg of Acetaminophen a day" in f.message
    assert "2,600 mg a day from Hydrocodone Bitartrate" in f.message
    assert run(ACETAMINOPHEN_500, None, quantity=120, days_supply=30).findings == ()


def test_liquid_strength_per_ml():
    # 160 mg/5 mL: 32 mg/mL; 4,800 mL in 30 days is 160 mL a day = 5,120 mg
    assert sc.mg_per_unit(APAP_LIQUID.ingredients[0], APAP_LIQUID) == Decimal(32)
    assert run(APAP_LIQUID, None, quantity=4800, days_supply=30).of_kind(K.DOSE)
    assert not run(APAP_LIQUID, None, quantity=1500, days_supply=30).of_kind(K.DOSE)


def test_units_per_day_against_the_products_maximum():
    capped = dataclasses.replace(TRAMADOL, max_units_per_day=Decimal(8))
    f = only(run(capped, None, quantity=300, days_supply=30), K.DOSE)
    assert f.key == "dose:units_per_day" and "10 tablets a day" in f.message
    assert not run(capped, None, quantity=240, days_supply=30).of_kind(K.DOSE)


def test_units_that_are_not_counted_one_by_one_are_not_held_to_a_daily_count():
    insulin = product("Insulin Glargine 100 units/mL", ("Insulin Glargine", "100 [iU]/mL"),
                      unit="unit", form="INJECTION, SOLUTION")
    assert not run(insulin, None, quantity=1500, days_supply=30).findings
    strips = product("Glucose test strips", unit="each", form=None)
    assert not run(strips, None, quantity=1000, days_supply=30).findings
    each_tablet = dataclasses.replace(LISINOPRIL_10, unit="each")
    assert run(each_tablet, None, quantity=1000, days_supply=30).of_kind(K.DOSE)


def test_a_days_supply_of_zero_does_not_fit():
    assert only(run(LISINOPRIL_10, None, days_supply=0), K.DOSE).key == "dose:days_supply"


# ---------------------------------------------------- age, pregnancy, beyond use


def test_tramadol_under_12_and_aspirin_in_a_teenager():
    child = patient(born=dt.date(2016, 6, 1))  # 9
    assert only(run(TRAMADOL, child, quantity=10, days_supply=5), K.AGE).key == (
        "age:tramadol-under-12")
    teen = patient(born=dt.date(2010, 1, 1))  # 16
    f = only(run(ASPIRIN, teen), K.AGE)
    assert f.severity is MODERATE and "Reye" in f.message
    assert not run(TRAMADOL, teen, quantity=10, days_supply=5).of_kind(K.AGE)
    assert not run(ASPIRIN, patient(born=dt.date(2006, 1, 1))).of_kind(K.AGE)  # 20


def test_codeine_age_boundary_is_the_12th_birthday():
    turned_12 = patient(born=dt.date(2014, 5, 10))
    not_yet = patient(born=dt.date(2014, 5, 11))
    assert not run(CODEINE_APAP, turned_12, quantity=10, days_supply=5).of_kind(K.AGE)
    assert run(CODEINE_APAP, not_yet, quantity=10, days_supply=5).of_kind(K.AGE)


def test_geriatric_rules_use_the_setting(monkeypatch):
    k = sc.default_knowledge()
    rule = sc.knowledge.AgeRule(  # type: ignore[attr-defined]
        "test-geriatric", sc.knowledge.Members.of(["alprazolam"]), None, None, True,  # type: ignore[attr-defined]
        MODERATE, "a test rule", k.age_rules[0].source, "")
    custom = dataclasses.replace(k, age_rules=(*k.age_rules, rule))
    old = patient(born=dt.date(1956, 1, 1))  # 70
    req = sc.ScreeningRequest(old, ALPRAZOLAM, Decimal(30), 30, NOW)
    assert sc.screen(req, custom).of_kind(K.AGE)
    later = dataclasses.replace(req, settings=sc.ScreeningSettings(geriatric_age=75))
    assert not sc.screen(later, custom).of_kind(K.AGE)


@pytest.mark.parametrize("prod, rule", [(WARFARIN, "warfarin-pregnancy"),
                                         (ISOTRETINOIN, "isotretinoin-pregnancy"),
                                         (LISINOPRIL_10, "ace-inhibitors-pregnancy"),
                                         (ENALAPRIL, "ace-inhibitors-pregnancy")])
def test_pregnancy_contraindications(prod, rule):
    f = only(run(prod, patient(pregnant=True)), K.PREGNANCY)
    assert f.key == f"pregnancy:{rule}" and f.severity is SEVERE
    assert not run(prod, patient()).of_kind(K.PREGNANCY)


@pytest.mark.parametrize("prod", [CODEINE_APAP, TRAMADOL], ids=["codeine", "tramadol"])
def test_breastfeeding_and_codeine_or_tramadol(prod):
    f = only(run(prod, patient(breastfeeding=True), quantity=10, days_supply=5), K.PREGNANCY)
    assert "Breastfeeding" in f.message
    assert not run(prod, patient(pregnant=True), quantity=10, days_supply=5).of_kind(
        K.PREGNANCY)


def test_beyond_use():
    f = only(run(LISINOPRIL_10, None, lot_expiry=dt.date(2026, 5, 31)), K.BEYOND_USE)
    assert f.severity is MODERATE and "discard-by date 2026-05-31" in f.message
    assert not run(LISINOPRIL_10, None, lot_expiry=dt.date(2026, 6, 9)).findings
    expired = only(run(LISINOPRIL_10, None, lot_expiry=dt.date(2026, 5, 9)), K.BEYOND_USE)
    assert expired.is_stop


# ------------------------------------------------------- allergy record status


def test_allergies_not_asked_and_no_known_allergies():
    f = only(run(LISINOPRIL_10, patient(status=sc.AllergyStatus.NOT_ASKED)),
             K.ALLERGIES_NOT_ASKED)
    assert f.severity is MODERATE and f.key == "allergies_not_asked"
    assert run(LISINOPRIL_10, patient(status=sc.AllergyStatus.NO_KNOWN_ALLERGIES)).findings == ()
    with pytest.raises(ValueError):
        sc.Patient(None, allergy_status=sc.AllergyStatus.NOT_ASKED,
                   allergies=(allergy("PCN"),))


# ------------------------------------------------------------------ behaviour


def test_prescribing_checks_leave_out_early_refill_and_beyond_use():
    meds = (fill(LISINOPRIL_10, days_ago=3, rx="Rx 1"),)
    at_fill = run(LISINOPRIL_20, None, *meds, rx="Rx 2", lot_expiry=dt.date(2026, 5, 20))
    assert {"early_refill", "beyond_use", "duplicate_therapy"} <= kinds(at_fill)
    writing = run(LISINOPRIL_20, None, *meds, rx=None, lot_expiry=dt.date(2026, 5, 20),
                  checks=sc.PRESCRIBING_CHECKS)
    assert kinds(writing) == {"duplicate_therapy"}


def test_findings_are_sorted_and_keys_are_stable():
    meds = (fill(WARFARIN, days_ago=5, rx="Rx 1"), fill(IBUPROFEN, days_ago=3, rx="Rx 3"))
    pat = patient(allergy("Aspirin", "mild", "rash"), status=sc.AllergyStatus.RECORDED)
    first = run(IBUPROFEN, pat, *meds, rx="Rx 2")
    again = run(IBUPROFEN, pat, *meds, rx="Rx 2")
    assert first == again
    ranks = [sc.severity_rank(f.severity) for f in first.findings]
    assert ranks == sorted(ranks, reverse=True)
    assert first.data_versions == sc.default_knowledge().versions
    assert first.stops == tuple(f for f in first.findings if f.is_stop)


def test_the_request_needs_an_aware_time():
    with pytest.raises(ValueError):
        dataclasses.replace(
            sc.ScreeningRequest(patient(), LISINOPRIL_10, Decimal(30), 30, NOW),
            at=dt.datetime(2026, 5, 10, 12, 0))


def test_a_product_without_ingredient_data_is_screened_by_its_name():
    bare = product("Amoxicillin")
    assert run(bare, patient(allergy("amoxicillin"))).of_kind(K.ALLERGY)


def test_strength_parsing():
    assert sc.Ingredient.parse("Acetaminophen", "325 mg") == sc.Ingredient(
        "Acetaminophen", Decimal(325), "mg")
    assert sc.Ingredient.parse("X", "1,5 g").strength == Decimal("1.5")
    assert sc.Ingredient.parse("X", "160 mg/5 mL").unit == "mg/5 mL"
    assert sc.Ingredient.parse("X", "see label").strength is None
    assert sc.Ingredient.parse("X", None).unit is None
