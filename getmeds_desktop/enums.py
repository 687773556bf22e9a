"""Value sets shared by the models, the services and the screens."""

from __future__ import annotations

import enum


class Role(str, enum.Enum):
    ADMIN = "admin"
    PHARMACIST = "pharmacist"
    TECHNICIAN = "technician"
    CLERK = "clerk"
    DOCTOR = "doctor"

    @property
    def label(self) -> str:
        return self.value.capitalize()


# PostgreSQL: the pharmacy's group roles (<prefix><name>): one per staff role,
# and the backup role.
DATABASE_GROUPS: tuple[str, ...] = (*(r.value for r in Role), "backup")


class Sex(str, enum.Enum):
    FEMALE = "female"
    MALE = "male"
    OTHER = "other"
    UNKNOWN = "unknown"


class Severity(str, enum.Enum):
    MILD = "mild"
    MODERATE = "moderate"
    SEVERE = "severe"
    UNKNOWN = "unknown"


class StorageCondition(str, enum.Enum):
    ROOM = "room"
    REFRIGERATED = "refrigerated"
    FROZEN = "frozen"


class Schedule(str, enum.Enum):
    """DEA controlled-substance schedule (none for ordinary products)."""

    NONE = "none"
    II = "II"
    III = "III"
    IV = "IV"
    V = "V"

    @property
    def controlled(self) -> bool:
        return self is not Schedule.NONE

    @property
    def register(self) -> str | None:
        """Which register the product's records belong to (II kept separate)."""
        if self is Schedule.NONE:
            return None
        return "II" if self is Schedule.II else "III-V"


class LotStatus(str, enum.Enum):
    AVAILABLE = "available"
    QUARANTINED = "quarantined"
    RECALLED = "recalled"


class MovementKind(str, enum.Enum):
    RECEIPT = "receipt"
    DISPENSE = "dispense"
    ADJUSTMENT = "adjustment"
    RETURN = "return"  # back to the supplier
    WRITE_OFF = "write_off"
    COUNT = "count"
    TRANSFER = "transfer"
    # back on the shelf from a fill that never reached the patient (refused at
    # verification, not picked up, declined at the counter): to the lots it came from
    RESTOCK = "restock"

    @property
    def label(self) -> str:
        return {"return": "Return to supplier", "write_off": "Write-off",
                "restock": "Return to stock"}.get(self.value, self.value.capitalize())


class RxStatus(str, enum.Enum):
    NEW = "new"
    IN_PROGRESS = "in_progress"
    READY_FOR_CHECK = "ready_for_check"
    PARTIALLY_DISPENSED = "partially_dispensed"
    DISPENSED = "dispensed"
    ON_HOLD = "on_hold"
    CANCELLED = "cancelled"
    # its refills went to another pharmacy (21 CFR 1306.25, 1306.08(e)): closed here
    TRANSFERRED = "transferred"

    @property
    def label(self) -> str:
        return self.value.replace("_", " ").capitalize()


class FillStatus(str, enum.Enum):
    """Where a fill (a dispense) is between the shelf and the patient.

    filled: packages scanned, lots taken, label printed; waits for a pharmacist.
    verified: a pharmacist did the final check; waits for the patient.
    released: handed to the patient. returned: its stock went back to the
    lots it came from (refused at verification, not picked up, declined)."""

    FILLED = "filled"
    VERIFIED = "verified"
    RELEASED = "released"
    RETURNED = "returned"

    @property
    def label(self) -> str:
        return {"filled": "To verify", "verified": "Ready for pickup", "released": "Released",
                "returned": "Returned to stock"}[self.value]


class Counseling(str, enum.Enum):
    """The offer to counsel at release (OBRA '90, 42 USC 1396r-8(g)(2)(A))."""

    OFFERED = "offered"  # offered; the patient did not say
    ACCEPTED = "accepted"
    DECLINED = "declined"

    @property
    def label(self) -> str:
        return {"offered": "Offered", "accepted": "Accepted: counselled",
                "declined": "Declined"}[self.value]


class ReturnReason(str, enum.Enum):
    """Why a fill went back to stock."""

    VERIFICATION_REFUSED = "verification_refused"
    NOT_PICKED_UP = "not_picked_up"
    PATIENT_DECLINED = "patient_declined"
    OTHER = "other"

    @property
    def label(self) -> str:
        return {"verification_refused": "Refused at verification",
                "not_picked_up": "Not picked up", "patient_declined": "Declined at the counter",
                "other": "Other"}[self.value]


class StocktakeScope(str, enum.Enum):
    ALL = "all"
    CATEGORY = "category"
    CONTROLLED = "controlled"


class StocktakeStatus(str, enum.Enum):
    OPEN = "open"
    POSTED = "posted"
    CANCELLED = "cancelled"


class WarningKind(str, enum.Enum):
    """The kinds of screening finding a fill can be stopped for (the screening's
    FindingKind values)."""

    ALLERGY = "allergy"
    DUPLICATE_THERAPY = "duplicate_therapy"
    EARLY_REFILL = "early_refill"
    INTERACTION = "interaction"
    DOSE = "dose"
    AGE = "age"
    PREGNANCY = "pregnancy"
    BEYOND_USE = "beyond_use"
    ALLERGIES_NOT_ASKED = "allergies_not_asked"


class AllergyStatus(str, enum.Enum):
    """Whether anyone asked the patient about allergies."""

    NOT_ASKED = "not_asked"
    NO_KNOWN_ALLERGIES = "no_known_allergies"  # asked, and the answer was none
    RECORDED = "recorded"

    @property
    def label(self) -> str:
        return {"not_asked": "Not asked", "no_known_allergies": "No known allergies",
                "recorded": "Allergies recorded"}[self.value]


class OverrideReason(str, enum.Enum):
    """Why a pharmacist went ahead despite a screening warning."""

    PRESCRIBER_CONSULTED = "prescriber_consulted"
    PATIENT_TOLERATED_BEFORE = "patient_tolerated_before"
    BENEFIT_OUTWEIGHS_RISK = "benefit_outweighs_risk"
    ALLERGY_RECORD_OUTDATED = "allergy_record_outdated"
    OTHER = "other"

    @property
    def label(self) -> str:
        return _OVERRIDE_LABELS[self.value]


_OVERRIDE_LABELS = {
    "prescriber_consulted": "Prescriber consulted",
    "patient_tolerated_before": "Patient tolerated it before",
    "benefit_outweighs_risk": "Benefit outweighs risk",
    "allergy_record_outdated": "Allergy record outdated",
    "other": "Other (explain in the note)",
}


class PaperSize(str, enum.Enum):
    LETTER = "letter"
    A4 = "a4"


class PartialReason(str, enum.Enum):
    """Why a Schedule II prescription was filled in part (21 CFR 1306.13; 21 U.S.C.
    829(f)); the reason decides how long the remainder may still be dispensed."""

    SHORTAGE = "shortage"  # 1306.13(a): the pharmacy could not supply it all
    PATIENT_REQUEST = "patient_request"  # 1306.13(b), 829(f): the patient or prescriber asked
    # 1306.13: an LTCF patient, or one with a documented terminal illness; the
    # pharmacist records which ("LTCF patient" or "terminally ill")
    LONG_TERM_CARE = "long_term_care"
    TERMINALLY_ILL = "terminally_ill"

    @property
    def sixty_days(self) -> bool:
        """The rest may be dispensed up to 60 days after the date written."""
        return self in (PartialReason.LONG_TERM_CARE, PartialReason.TERMINALLY_ILL)

    @property
    def label(self) -> str:
        return _PARTIAL_LABELS[self.value]


_PARTIAL_LABELS = {
    "shortage": "Not enough in stock (the rest within 72 hours)",
    "patient_request": "Requested by the patient or the prescriber (the rest within 30 days "
                       "of the date written)",
    "long_term_care": "LTCF patient: in a long-term care facility (the rest within 60 days "
                      "of the date written)",
    "terminally_ill": "Terminally ill: a medical diagnosis documents a terminal illness (the "
                      "rest within 60 days of the date written)",
}


class DeaForm(str, enum.Enum):
    """The DEA forms a pharmacy keeps a record of here (migration 0022)."""

    DESTRUCTION = "41"  # Registrant Record of Controlled Substances Destroyed (21 CFR 1304.21(e))
    THEFT_LOSS = "106"  # Report of Theft or Loss of Controlled Substances (21 CFR 1301.76(b))

    @property
    def label(self) -> str:
        return f"DEA Form {self.value}"


class LossType(str, enum.Enum):
    """DEA Form 106, item 10 "Type of Theft or Loss" (OMB 1117-0001)."""

    NIGHT_BREAK_IN = "night_break_in"
    ARMED_ROBBERY = "armed_robbery"
    EMPLOYEE_PILFERAGE = "employee_pilferage"
    CUSTOMER_THEFT = "customer_theft"
    LOST_IN_TRANSIT = "lost_in_transit"
    OTHER = "other"

    @property
    def label(self) -> str:
        return {"night_break_in": "Night break-in", "armed_robbery": "Armed robbery",
                "employee_pilferage": "Employee pilferage", "customer_theft": "Customer theft",
                "lost_in_transit": "Lost in transit", "other": "Other"}[self.value]
