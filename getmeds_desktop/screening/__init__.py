"""Clinical screening of a prescription or a fill: allergies (with
cross-sensitivity, synonyms and brand names), drug-drug interactions,
duplicate therapy, early refill, dose, age, pregnancy and breastfeeding,
beyond-use, and "allergies not asked".

No Qt and no database here: the caller reads what it needs (in one or two
round trips), builds frozen inputs and gets frozen findings back. The clinical
data are versioned YAML files in ``screening/data/`` with their sources,
compiled once per process (:func:`default_knowledge`). They are small cited
defaults, not a licensed knowledge base; import one with
:func:`read_interactions_csv` and :func:`merge_interactions` (docs/screening.md).

Using it
--------
::

    from getmeds_desktop import screening as sc

    result = sc.screen(sc.ScreeningRequest(
        patient=sc.Patient(date_of_birth=dob, pregnant=False, breastfeeding=False,
                           allergy_status=sc.AllergyStatus.RECORDED,
                           allergies=(sc.Allergy("Penicillins", sc.Severity.SEVERE, "hives"),)),
        product=sc.Product("Amoxicillin 500 mg capsule",
                           ingredients=(sc.Ingredient.parse("Amoxicillin", "500 mg"),),
                           classes=("Penicillin-class Antibacterial [EPC]",),
                           brand_names=("Amoxil",), unit="capsule", controlled=False),
        quantity=Decimal(21), days_supply=7, at=clock.now(),
        medications=(...),           # the patient's other prescriptions and fills
        prescription="Rx 1042",      # the prescription being filled (or None)
        lot_expiry=lot.expiry_date,  # the lot that will be dispensed (fill only)
        settings=sc.ScreeningSettings(early_refill_percent=settings.early_refill_percent),
        checks=sc.FILL_CHECKS,       # or sc.PRESCRIBING_CHECKS on the prescription form
    ))
    for f in result.findings:        # most severe first
        f.kind, f.severity, f.key, f.message, f.why, f.sources, f.is_stop

    decision = sc.decide_override(finding, actor.role, sc.OverrideReason.PRESCRIBER_CONSULTED,
                                  "Dr Lee confirmed the dose by phone")
    if not decision.accepted:
        raise ValidationError(decision.problem)

Wiring notes for the services
-----------------------------
* ``medications``: every prescription of the patient that is open (new, in
  progress, ready for check, partially dispensed, on hold) as a
  ``MedicationSource.PRESCRIPTION``, and every dispense of the last
  ``early_refill_window_days`` (default 180) as a ``MedicationSource.FILL``
  with its own days supply and quantity, whatever the prescription's status.
  Give fills returned to stock ``active=False``. ``prescription`` groups a
  prescription with its fills ("Rx 1042"); ``reference`` names each one.
* ``Product.classes``: the PHARM_CLASSES names with their "[EPC]"/"[CS]"/"[MoA]"
  codes when the catalogue has them (only EPC classes then count for duplicate
  therapy); without codes every class except enzyme/transporter mechanisms
  counts.
* Acknowledgements are given per ``Finding.key``; keys are stable for the same
  situation and change when the situation does (another fill, another lot).
* Completing a partial fill (part 2 and later of the same fill): leave
  ``FindingKind.EARLY_REFILL`` out of ``checks``; the earlier part is supply
  of the same fill, not an early refill.
* ``FindingKind.ALLERGIES_NOT_ASKED`` is a kind of its own (not one of the
  rules-conformance warning kinds); the dispense warning enum needs the new
  kinds (interaction, dose, age, pregnancy, beyond_use, allergies_not_asked)
  before findings are stored.
* Store ``Screening.data_versions`` with the fill, next to the overrides.
* The checks never read a clock: pass ``at`` (timezone-aware).
"""

from __future__ import annotations

from ..enums import Role, Severity, Sex
from .checks import AllergyMatch, allergy_match, mg_per_unit, screen
from .importing import (
    COLUMNS as INTERACTION_CSV_COLUMNS,
)
from .importing import (
    ImportedInteractions,
    InteractionFileError,
    merge_interactions,
    read_interactions_csv,
)
from .knowledge import (
    DATA_FILES,
    InteractionRule,
    InteractionSeverity,
    Knowledge,
    KnowledgeError,
    default_knowledge,
    load_knowledge,
)
from .model import (
    ALL_CHECKS,
    FILL_CHECKS,
    PRESCRIBING_CHECKS,
    Allergy,
    AllergyStatus,
    Finding,
    FindingKind,
    Ingredient,
    Medication,
    MedicationSource,
    Patient,
    Product,
    Screening,
    ScreeningRequest,
    ScreeningSettings,
    severity_rank,
)
from .overrides import (
    MIN_NOTE_WORDS,
    OverrideDecision,
    OverrideReason,
    decide_override,
    role_name,
)

__all__ = [
    "ALL_CHECKS",
    "DATA_FILES",
    "FILL_CHECKS",
    "INTERACTION_CSV_COLUMNS",
    "MIN_NOTE_WORDS",
    "PRESCRIBING_CHECKS",
    "Allergy",
    "AllergyMatch",
    "AllergyStatus",
    "Finding",
    "FindingKind",
    "ImportedInteractions",
    "Ingredient",
    "InteractionFileError",
    "InteractionRule",
    "InteractionSeverity",
    "Knowledge",
    "KnowledgeError",
    "Medication",
    "MedicationSource",
    "OverrideDecision",
    "OverrideReason",
    "Patient",
    "Product",
    "Role",
    "Screening",
    "ScreeningRequest",
    "ScreeningSettings",
    "Severity",
    "Sex",
    "allergy_match",
    "decide_override",
    "default_knowledge",
    "load_knowledge",
    "merge_interactions",
    "mg_per_unit",
    "read_interactions_csv",
    "role_name",
    "screen",
    "severity_rank",
]
