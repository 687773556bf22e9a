"""Clinical screening of one fill, in process (no database: the screening is pure).

``screening_fill_20_meds_p95_ms``: the full screening (every check) of one fill
for a patient with 3 recorded allergies and 20 current medications (12 fills
with supply on hand, 8 open prescriptions), data files already loaded.
``screening_fill_20_meds_median_ms``: the same, median.
``screening_data_load_ms``: reading and compiling the shipped data files once.

Run alone: ``python -m benchmarks.bench_screening`` (prints JSON), or as the
``screening`` group of ``python -m benchmarks``.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
from collections.abc import Callable
from decimal import Decimal

from getmeds_desktop import screening as sc
from getmeds_desktop.screening import knowledge

from .common import median, percentile

NOW = dt.datetime(2026, 5, 10, 15, 0, tzinfo=dt.UTC)

# (name, ingredients with strength, FDA classes, controlled)
_DRUGS: list[tuple[str, tuple[tuple[str, str], ...], tuple[str, ...], bool]] = [
    ("Lisinopril 20 mg", (("Lisinopril", "20 mg"),),
     ("Angiotensin Converting Enzyme Inhibitor [EPC]",), False),
    ("Amlodipine Besylate 5 mg", (("Amlodipine Besylate", "5 mg"),),
     ("Dihydropyridine Calcium Channel Blocker [EPC]",), False),
    ("Metformin Hydrochloride 500 mg", (("Metformin Hydrochloride", "500 mg"),),
     ("Biguanide [EPC]",), False),
    ("Atorvastatin Calcium 40 mg", (("Atorvastatin Calcium", "40 mg"),),
     ("HMG-CoA Reductase Inhibitor [EPC]",), False),
    ("Levothyroxine Sodium 50 mcg", (("Levothyroxine Sodium", "50 mcg"),),
     ("l-Thyroxine [EPC]",), False),
    ("Omeprazole 20 mg", (("Omeprazole", "20 mg"),), ("Proton Pump Inhibitor [EPC]",), False),
    ("Sertraline 50 mg", (("Sertraline Hydrochloride", "50 mg"),),
     ("Serotonin Reuptake Inhibitor [EPC]",), False),
    ("Hydrochlorothiazide 25 mg", (("Hydrochlorothiazide", "25 mg"),),
     ("Thiazide Diuretic [EPC]",), False),
    ("Metoprolol Succinate 50 mg", (("Metoprolol Succinate", "50 mg"),),
     ("beta-Adrenergic Blocker [EPC]",), False),
    ("Gabapentin 300 mg", (("Gabapentin", "300 mg"),), ("Anti-epileptic Agent [EPC]",), False),
    ("Warfarin Sodium 5 mg", (("Warfarin Sodium", "5 mg"),), ("Vitamin K Antagonist [EPC]",),
     False),
    ("Furosemide 40 mg", (("Furosemide", "40 mg"),), ("Loop Diuretic [EPC]",), False),
    ("Alprazolam 0.5 mg", (("Alprazolam", "0.5 mg"),), ("Benzodiazepine [EPC]",), True),
    ("Montelukast 10 mg", (("Montelukast Sodium", "10 mg"),),
     ("Leukotriene Receptor Antagonist [EPC]",), False),
    ("Tamsulosin 0.4 mg", (("Tamsulosin Hydrochloride", "0.4 mg"),),
     ("alpha-Adrenergic Blocker [EPC]",), False),
    ("Prednisone 10 mg", (("Prednisone", "10 mg"),), ("Corticosteroid [EPC]",), False),
    ("Clopidogrel 75 mg", (("Clopidogrel Bisulfate", "75 mg"),),
     ("P2Y12 Platelet Inhibitor [EPC]",), False),
    ("Acetaminophen 500 mg", (("Acetaminophen", "500 mg"),), (), False),
    ("Cetirizine 10 mg", (("Cetirizine Hydrochloride", "10 mg"),),
     ("Histamine-1 Receptor Antagonist [EPC]",), False),
    ("Tramadol Hydrochloride 50 mg", (("Tramadol Hydrochloride", "50 mg"),),
     ("Opioid Agonist [EPC]",), True),
]


def _product(name: str, ingredients: tuple[tuple[str, str], ...], classes: tuple[str, ...],
             controlled: bool) -> sc.Product:
    return sc.Product(name, tuple(sc.Ingredient.parse(n, s) for n, s in ingredients), classes,
                      (), "TABLET", "tablet", None, controlled)


def build_request() -> sc.ScreeningRequest:
    meds = []
    for i, drug in enumerate(_DRUGS):
        prod = _product(*drug)
        if i < 12:
            meds.append(sc.Medication(prod, sc.MedicationSource.FILL, f"Rx {100 + i} fill 0",
                                      NOW - dt.timedelta(days=3 + i), 30, Decimal(30),
                                      f"Rx {100 + i}"))
        else:
            meds.append(sc.Medication(prod, sc.MedicationSource.PRESCRIPTION, f"Rx {100 + i}",
                                      NOW - dt.timedelta(days=i), 30, Decimal(60),
                                      f"Rx {100 + i}", status="new"))
    patient = sc.Patient(
        dt.date(1948, 3, 2), sc.Sex.FEMALE, allergy_status=sc.AllergyStatus.RECORDED,
        allergies=(sc.Allergy("Penicillins", sc.Severity.SEVERE, "anaphylaxis"),
                   sc.Allergy("Sulfa", sc.Severity.MODERATE, "rash"),
                   sc.Allergy("Codeine", sc.Severity.MILD, "nausea", intolerance=True)))
    norco = _product("Hydrocodone Bitartrate and Acetaminophen 10 mg/325 mg",
                     (("Hydrocodone Bitartrate", "10 mg"), ("Acetaminophen", "325 mg")),
                     ("Opioid Agonist [EPC]",), True)
    return sc.ScreeningRequest(patient, norco, Decimal(120), 30, NOW, tuple(meds), "Rx 999",
                               dt.date(2027, 1, 31))


def run(log: Callable[[str], None], rounds: int = 2000) -> dict[str, float]:
    knowledge.default_knowledge.cache_clear()
    started = time.perf_counter()
    sc.default_knowledge()
    load_ms = (time.perf_counter() - started) * 1000
    req = build_request()
    first = sc.screen(req)
    log(f"screening: {len(req.medications)} medications, {len(first.findings)} findings "
        f"({', '.join(sorted(f.kind.value for f in first.findings))})")
    for _ in range(50):  # warm the name caches as a running app would have
        sc.screen(req)
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        sc.screen(req)
        times.append((time.perf_counter() - t) * 1000)
    return {
        "screening_fill_20_meds_p95_ms": round(percentile(times, 95), 3),
        "screening_fill_20_meds_median_ms": round(median(times), 3),
        "screening_data_load_ms": round(load_ms, 1),
    }


if __name__ == "__main__":
    result = run(lambda msg: print(msg, file=sys.stderr))
    json.dump(result, sys.stdout, indent=2, sort_keys=True)
    print()
