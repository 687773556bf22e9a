"""Products, patients and fills for the screening tests (real drugs, FDA class names)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from getmeds_desktop import screening as sc

NOW = dt.datetime(2026, 5, 10, 15, 0, tzinfo=dt.UTC)


def product(name: str, *ingredients: tuple[str, str | None], classes: tuple[str, ...] = (),
            brands: tuple[str, ...] = (), unit: str = "tablet", controlled: bool = False,
            form: str | None = "TABLET", max_per_day: int | None = None) -> sc.Product:
    return sc.Product(
        name, tuple(sc.Ingredient.parse(n, s) for n, s in ingredients), classes, brands,
        form, unit, None if max_per_day is None else Decimal(max_per_day), controlled)


AMOXICILLIN = product("Amoxicillin 500 mg capsule", ("Amoxicillin", "500 mg"),
                      classes=("Penicillin-class Antibacterial [EPC]", "Penicillins [CS]"),
                      unit="capsule", form="CAPSULE")
PEN_VK = product("Penicillin V Potassium 500 mg", ("Penicillin V Potassium", "500 mg"),
                 classes=("Penicillin-class Antibacterial [EPC]",))
CEPHALEXIN = product("Cephalexin 500 mg capsule", ("Cephalexin", "500 mg"),
                     classes=("Cephalosporin Antibacterial [EPC]",), brands=("Keflex",),
                     unit="capsule", form="CAPSULE")
MEROPENEM = product("Meropenem 1 g vial", ("Meropenem", "1 g"),
                    classes=("Penem Antibacterial [EPC]",), unit="each", form="INJECTION")
BACTRIM = product("Sulfamethoxazole and Trimethoprim 800 mg/160 mg",
                  ("Sulfamethoxazole", "800 mg"), ("Trimethoprim", "160 mg"),
                  classes=("Sulfonamide Antibacterial [EPC]",), brands=("Bactrim DS",))
MORPHINE = product("Morphine Sulfate ER 15 mg", ("Morphine Sulfate", "15 mg"),
                   classes=("Opioid Agonist [EPC]",), controlled=True)
ALBUTEROL = product("Albuterol Sulfate HFA inhaler", ("Albuterol Sulfate", "90 ug/1"),
                    classes=("beta2-Adrenergic Agonist [EPC]",), unit="each",
                    form="AEROSOL, METERED")
HCTZ = product("Hydrochlorothiazide 25 mg", ("Hydrochlorothiazide", "25 mg"),
               classes=("Thiazide Diuretic [EPC]",))
IBUPROFEN = product("Ibuprofen 800 mg", ("Ibuprofen", "800 mg"),
                    classes=("Nonsteroidal Anti-inflammatory Drug [EPC]",), brands=("Motrin",))
CELECOXIB = product("Celecoxib 200 mg capsule", ("Celecoxib", "200 mg"),
                    classes=("Nonsteroidal Anti-inflammatory Drug [EPC]",
                             "Cyclooxygenase Inhibitors [MoA]"), unit="capsule", form="CAPSULE")
ASPIRIN = product("Aspirin 81 mg chewable", ("Aspirin", "81 mg"),
                  classes=("Platelet Aggregation Inhibitor [EPC]",
                           "Nonsteroidal Anti-inflammatory Drug [EPC]"))
CODEINE_APAP = product("Acetaminophen and Codeine Phosphate 300 mg/30 mg",
                       ("Acetaminophen", "300 mg"), ("Codeine Phosphate", "30 mg"),
                       classes=("Opioid Agonist [EPC]",), controlled=True)
FENTANYL = product("Fentanyl 25 mcg/h patch", ("Fentanyl", "25 ug/h"),
                   classes=("Opioid Agonist [EPC]",), unit="patch", form="PATCH",
                   controlled=True)
HYDROCODONE_APAP_A = product("Hydrocodone Bitartrate and Acetaminophen 10 mg/325 mg",
                             ("Hydrocodone Bitartrate", "10 mg"), ("Acetaminophen", "325 mg"),
                             classes=("Opioid Agonist [EPC]",), controlled=True)
HYDROCODONE_APAP_B = product("Norco 10 mg/325 mg", ("Hydrocodone Bitartrate", "10 mg"),
                             ("Acetaminophen", "325 mg"), classes=("Opioid Agonist [EPC]",),
                             brands=("Norco",), controlled=True)
ACETAMINOPHEN_500 = product("Acetaminophen 500 mg", ("Acetaminophen", "500 mg"),
                            brands=("Tylenol Extra Strength",))
APAP_LIQUID = product("Acetaminophen 160 mg/5 mL oral solution",
                      ("Acetaminophen", "160 mg/5 mL"), unit="mL", form="SOLUTION")
LISINOPRIL_10 = product("Lisinopril 10 mg", ("Lisinopril", "10 mg"),
                        classes=("Angiotensin Converting Enzyme Inhibitor [EPC]",))
LISINOPRIL_20 = product("Lisinopril 20 mg", ("Lisinopril", "20 mg"),
                        classes=("Angiotensin Converting Enzyme Inhibitor [EPC]",))
ENALAPRIL = product("Enalapril Maleate 10 mg", ("Enalapril Maleate", "10 mg"),
                    classes=("Angiotensin Converting Enzyme Inhibitor [EPC]",))
WARFARIN = product("Warfarin Sodium 5 mg", ("Warfarin Sodium", "5 mg"),
                   classes=("Vitamin K Antagonist [EPC]",), brands=("Coumadin",))
ALPRAZOLAM = product("Alprazolam 0.5 mg", ("Alprazolam", "0.5 mg"),
                     classes=("Benzodiazepine [EPC]",), controlled=True)
SILDENAFIL = product("Sildenafil 100 mg", ("Sildenafil Citrate", "100 mg"),
                     classes=("Phosphodiesterase 5 Inhibitor [EPC]",), brands=("Viagra",))
ISOSORBIDE = product("Isosorbide Mononitrate ER 30 mg", ("Isosorbide Mononitrate", "30 mg"),
                     classes=("Nitrate Vasodilator [EPC]",))
METHOTREXATE = product("Methotrexate 2.5 mg", ("Methotrexate Sodium", "2.5 mg"),
                       classes=("Folate Analog Metabolic Inhibitor [EPC]",))
PROMETHAZINE = product("Promethazine HCl 6.25 mg/5 mL syrup",
                       ("Promethazine Hydrochloride", "6.25 mg/5 mL"),
                       classes=("Phenothiazine [EPC]",), unit="mL", form="SYRUP")
TRAMADOL = product("Tramadol HCl 50 mg", ("Tramadol Hydrochloride", "50 mg"),
                   classes=("Opioid Agonist [EPC]",), controlled=True)
ISOTRETINOIN = product("Isotretinoin 40 mg capsule", ("Isotretinoin", "40 mg"),
                       classes=("Retinoid [EPC]",), unit="capsule", form="CAPSULE")
ATORVASTATIN = product("Atorvastatin Calcium 40 mg", ("Atorvastatin Calcium", "40 mg"),
                       classes=("HMG-CoA Reductase Inhibitor [EPC]",
                                "Cytochrome P450 3A4 Inhibitors [MoA]"))
SIMVASTATIN = product("Simvastatin 40 mg", ("Simvastatin", "40 mg"),
                      classes=("HMG-CoA Reductase Inhibitor [EPC]",))
CLARITHROMYCIN = product("Clarithromycin 500 mg", ("Clarithromycin", "500 mg"),
                         classes=("Macrolide Antimicrobial [EPC]",
                                  "Cytochrome P450 3A4 Inhibitors [MoA]"))


def patient(*allergies: sc.Allergy, born: dt.date = dt.date(1970, 1, 1),
            status: sc.AllergyStatus | None = None, pregnant: bool = False,
            breastfeeding: bool = False, sex: sc.Sex = sc.Sex.FEMALE) -> sc.Patient:
    if status is None:
        status = sc.AllergyStatus.RECORDED if allergies else sc.AllergyStatus.NO_KNOWN_ALLERGIES
    return sc.Patient(born, sex, pregnant, breastfeeding, status, tuple(allergies))


def allergy(name: str, severity: str = "severe", reaction: str | None = "hives",
            intolerance: bool = False) -> sc.Allergy:
    return sc.Allergy(name, sc.Severity(severity), reaction, intolerance)


def fill(prod: sc.Product, days_ago: float, days_supply: int = 30, quantity: int = 30, *,
         rx: str = "Rx 100", number: int = 0, active: bool = True) -> sc.Medication:
    return sc.Medication(prod, sc.MedicationSource.FILL, f"{rx} fill {number}",
                         NOW - dt.timedelta(days=days_ago), days_supply, Decimal(quantity),
                         rx, active, "dispensed")


def open_rx(prod: sc.Product, rx: str = "Rx 200", *, days_ago: float = 1,
            days_supply: int = 30, quantity: int = 30, active: bool = True) -> sc.Medication:
    return sc.Medication(prod, sc.MedicationSource.PRESCRIPTION, rx,
                         NOW - dt.timedelta(days=days_ago), days_supply, Decimal(quantity),
                         rx, active, "new")


def request(prod: sc.Product, pat: sc.Patient | None = None, *meds: sc.Medication,
            quantity: int = 30, days_supply: int = 30, rx: str | None = "Rx 999",
            at: dt.datetime = NOW, lot_expiry: dt.date | None = None,
            settings: sc.ScreeningSettings | None = None,
            checks: frozenset[sc.FindingKind] = sc.FILL_CHECKS) -> sc.ScreeningRequest:
    return sc.ScreeningRequest(
        pat or patient(), prod, Decimal(quantity), days_supply, at, tuple(meds), rx,
        lot_expiry, settings or sc.ScreeningSettings(), checks)


def run(prod: sc.Product, pat: sc.Patient | None = None, *meds: sc.Medication,
        **kw: object) -> sc.Screening:
    return sc.screen(request(prod, pat, *meds, **kw))  # type: ignore[arg-type]


def kinds(result: sc.Screening) -> set[str]:
    return {f.kind.value for f in result.findings}


def only(result: sc.Screening, kind: sc.FindingKind) -> sc.Finding:
    found = result.of_kind(kind)
    assert len(found) == 1, [f.message for f in result.findings]
    return found[0]
