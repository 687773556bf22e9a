"""What a screening takes and what it gives back: frozen dataclasses only."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import re
from decimal import Decimal, InvalidOperation

from ..enums import AllergyStatus, Severity, Sex

__all__ = [
    "ALL_CHECKS",
    "FILL_CHECKS",
    "PRESCRIBING_CHECKS",
    "Allergy",
    "AllergyStatus",
    "Finding",
    "FindingKind",
    "Ingredient",
    "Medication",
    "MedicationSource",
    "Patient",
    "Product",
    "Screening",
    "ScreeningRequest",
    "ScreeningSettings",
    "Severity",
    "Sex",
    "severity_rank",
]


class FindingKind(str, enum.Enum):
    """What a finding is about. The first eight are the warning kinds of the
    rules-conformance format (docs/rules-format.md)."""

    ALLERGY = "allergy"
    DUPLICATE_THERAPY = "duplicate_therapy"
    EARLY_REFILL = "early_refill"
    INTERACTION = "interaction"
    DOSE = "dose"
    AGE = "age"
    PREGNANCY = "pregnancy"  # pregnancy and breastfeeding
    BEYOND_USE = "beyond_use"
    ALLERGIES_NOT_ASKED = "allergies_not_asked"

    @property
    def label(self) -> str:
        return _KIND_LABELS[self]


_KIND_LABELS = {
    FindingKind.ALLERGY: "Allergy",
    FindingKind.DUPLICATE_THERAPY: "Duplicate therapy",
    FindingKind.EARLY_REFILL: "Early refill",
    FindingKind.INTERACTION: "Interaction",
    FindingKind.DOSE: "Dose",
    FindingKind.AGE: "Age",
    FindingKind.PREGNANCY: "Pregnancy and breastfeeding",
    FindingKind.BEYOND_USE: "Beyond use",
    FindingKind.ALLERGIES_NOT_ASKED: "Allergies not asked",
}

ALL_CHECKS: frozenset[FindingKind] = frozenset(FindingKind)
#: What the full screening at fill runs.
FILL_CHECKS: frozenset[FindingKind] = ALL_CHECKS
#: What the prescription form runs while a prescription is written (no supply
#: has been dispensed yet, so early refill and beyond-use do not apply).
PRESCRIBING_CHECKS: frozenset[FindingKind] = ALL_CHECKS - {
    FindingKind.EARLY_REFILL, FindingKind.BEYOND_USE}

_RANK = {Severity.MILD: 1, Severity.MODERATE: 2, Severity.SEVERE: 3, Severity.UNKNOWN: 3}


def severity_rank(severity: Severity) -> int:
    """1 mild, 2 moderate, 3 severe (an unknown severity counts as severe)."""
    return _RANK[severity]


@dataclasses.dataclass(frozen=True)
class Allergy:
    """One entry of the patient's allergy record. ``name`` is what was typed:
    an ingredient, a class, a group ("Penicillins"), an abbreviation ("PCN",
    "Sulfa") or a brand ("Amoxil"). An unknown severity is screened as severe.
    ``intolerance`` marks a side effect recorded as such (nausea, say): it is
    shown mildly for the same ingredient or class and never through
    cross-sensitivity."""

    name: str
    severity: Severity = Severity.UNKNOWN
    reaction: str | None = None
    intolerance: bool = False


@dataclasses.dataclass(frozen=True)
class Patient:
    date_of_birth: dt.date | None
    sex: Sex = Sex.UNKNOWN
    pregnant: bool = False
    breastfeeding: bool = False
    allergy_status: AllergyStatus = AllergyStatus.NOT_ASKED
    allergies: tuple[Allergy, ...] = ()

    def __post_init__(self) -> None:
        if self.allergies and self.allergy_status is not AllergyStatus.RECORDED:
            raise ValueError("a patient with allergies on record has allergy_status RECORDED")

    def age_on(self, day: dt.date) -> int | None:
        """Whole years on ``day`` (None when the date of birth is not known)."""
        born = self.date_of_birth
        if born is None:
            return None
        return day.year - born.year - ((day.month, day.day) < (born.month, born.day))


_STRENGTH = re.compile(
    r"^\s*(?P<amount>\d+(?:[.,]\d+)?)\s*(?P<unit>[a-zA-Z%µ]+(?:\s*/\s*[\d.]*\s*[a-zA-Z]+)?)\s*$")


@dataclasses.dataclass(frozen=True)
class Ingredient:
    """An active ingredient with its strength per dispensed unit: ``500`` and
    ``"mg"`` for a 500 mg tablet, ``160`` and ``"mg/5 mL"`` for a syrup."""

    name: str
    strength: Decimal | None = None
    unit: str | None = None

    @classmethod
    def parse(cls, name: str, strength: str | None) -> Ingredient:
        """From the catalogue's text ("500 mg", "160 mg/5 mL"); a strength that
        cannot be read is kept as unknown."""
        if not strength:
            return cls(name)
        m = _STRENGTH.match(strength)
        if not m:
            return cls(name)
        try:
            amount = Decimal(m.group("amount").replace(",", "."))
        except InvalidOperation:  # pragma: no cover - the pattern only admits numbers
            return cls(name)
        return cls(name, amount, " ".join(m.group("unit").split()))


@dataclasses.dataclass(frozen=True)
class Product:
    """The product being prescribed or filled (or one a medication is for).

    ``classes`` are FDA PHARM_CLASSES names, with or without their "[EPC]"
    style code; ``brand_names`` are the catalogue's proprietary names;
    ``unit`` is the dispensing unit (tablet, capsule, mL, each);
    ``max_units_per_day`` is the pharmacy's per-product limit, if any."""

    name: str
    ingredients: tuple[Ingredient, ...] = ()
    classes: tuple[str, ...] = ()
    brand_names: tuple[str, ...] = ()
    dosage_form: str | None = None
    unit: str = "each"
    max_units_per_day: Decimal | None = None
    controlled: bool = False  # DEA Schedule II-V
    schedule_ii: bool = False  # DEA Schedule II (21 CFR 1308.12)


class MedicationSource(str, enum.Enum):
    PRESCRIPTION = "prescription"  # an open prescription (not necessarily filled)
    FILL = "fill"  # a dispense: supply the patient took home


@dataclasses.dataclass(frozen=True)
class Medication:
    """One of the patient's other prescriptions or past fills.

    ``reference`` names it in messages and keys ("Rx 1042", "Rx 1042 fill 2");
    ``prescription`` is the prescription it belongs to ("Rx 1042"), so a
    prescription and its fills count once and the prescription being filled
    is not a duplicate of itself. ``started`` is the fill time (fills) or the
    date written (prescriptions). A fill counts while its supply lasts
    (``started`` + ``days_supply``), whatever the prescription's status; a
    prescription counts while ``active`` (open, on hold). Set ``active`` False
    for a fill that was returned to stock or a cancelled prescription."""

    product: Product
    source: MedicationSource
    reference: str
    started: dt.datetime
    days_supply: int
    quantity: Decimal
    prescription: str | None = None
    active: bool = True
    status: str | None = None  # shown in messages ("dispensed", "on hold")

    @property
    def group(self) -> str:
        return self.prescription or self.reference

    @property
    def supply_ends(self) -> dt.datetime:
        return self.started + dt.timedelta(days=max(self.days_supply, 0))


@dataclasses.dataclass(frozen=True)
class ScreeningSettings:
    """The pharmacy's screening settings.

    ``early_refill_percent``: share of the supply on hand that must have been
    used before a refill (the app setting of the same name);
    ``controlled_early_refill_percent``: the same for Schedule II-V products
    (stricter by default); ``geriatric_age``: the age from which geriatric age
    rules apply; ``implausible_units_per_day``: above this many countable
    units a day (tablets, capsules) the days supply is taken not to fit the
    quantity; ``early_refill_window_days``: how far back fills are looked at;
    ``technician_may_acknowledge``: whether a technician may acknowledge
    findings that are not stops (a stop always needs a pharmacist);
    ``schedule_ii_max_days``: a Schedule II supply of more days is a stop
    (None: no such check)."""

    early_refill_percent: int = 75
    controlled_early_refill_percent: int = 90
    geriatric_age: int = 65
    implausible_units_per_day: int = 24
    early_refill_window_days: int = 180
    technician_may_acknowledge: bool = True
    schedule_ii_max_days: int | None = None

    def __post_init__(self) -> None:
        for name in ("early_refill_percent", "controlled_early_refill_percent"):
            value = getattr(self, name)
            if not 1 <= value <= 100:
                raise ValueError(f"{name} must be between 1 and 100, not {value}")
        if self.geriatric_age < 1 or self.implausible_units_per_day < 1:
            raise ValueError("geriatric_age and implausible_units_per_day must be positive")
        if self.early_refill_window_days < 1:
            raise ValueError("early_refill_window_days must be positive")
        if self.schedule_ii_max_days is not None and self.schedule_ii_max_days < 1:
            raise ValueError("schedule_ii_max_days must be positive")


@dataclasses.dataclass(frozen=True)
class ScreeningRequest:
    """One prescription being written or one fill being made.

    ``at`` is the moment of the check (timezone-aware; its date in ``zone``,
    the pharmacy's time zone, counts for ages and beyond-use; None: this
    computer's zone). ``prescription`` names the prescription being
    filled, so that its own earlier fills count for early refill but are not
    duplicates. ``lot_expiry`` is the expiry of the lot that will be
    dispensed (the earliest one when several are allocated)."""

    patient: Patient
    product: Product
    quantity: Decimal
    days_supply: int
    at: dt.datetime
    medications: tuple[Medication, ...] = ()
    prescription: str | None = None
    lot_expiry: dt.date | None = None
    settings: ScreeningSettings = ScreeningSettings()
    checks: frozenset[FindingKind] = FILL_CHECKS
    zone: dt.tzinfo | None = None

    def __post_init__(self) -> None:
        if self.at.tzinfo is None:
            raise ValueError("ScreeningRequest.at must be timezone-aware")

    @property
    def local_date(self) -> dt.date:
        return self.at.astimezone(self.zone).date()


@dataclasses.dataclass(frozen=True)
class Finding:
    """One thing the pharmacist (or prescriber) must see.

    ``key`` is stable for the same situation, so an acknowledgement is given
    for it; ``message`` is the sentence shown; ``why`` says in plain words
    what matched; ``sources`` are the citations behind it."""

    kind: FindingKind
    severity: Severity
    key: str
    message: str
    why: str
    sources: tuple[str, ...] = ()

    @property
    def is_stop(self) -> bool:
        """A severe finding: only a pharmacist may override it, with a note."""
        return severity_rank(self.severity) >= 3


@dataclasses.dataclass(frozen=True)
class Screening:
    """The findings of one screening, most severe first, and the versions of
    the data files they came from (store them with the fill)."""

    findings: tuple[Finding, ...]
    data_versions: tuple[tuple[str, str], ...]

    @property
    def stops(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.is_stop)

    @property
    def kinds(self) -> frozenset[FindingKind]:
        return frozenset(f.kind for f in self.findings)

    def of_kind(self, kind: FindingKind) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.kind is kind)
