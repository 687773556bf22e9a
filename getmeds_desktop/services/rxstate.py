"""A prescription's state: the one home of refills left, fills used, expiry,
next fill and part, default and owed quantity, and every "cannot be filled
because". No database and no Qt: the services read the facts, this decides.

Fills are numbered 0 (the original fill), 1, 2, ... (refills); a fill made in
parts (a partial fill completed later) has parts 1, 2, ... of the same number.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from ..enums import PartialReason, RxStatus, Schedule
from . import clock
from .clock import add_months

# Statuses from which a fill may be made (dispensed = a refill when refills are left).
OPEN_STATUSES = (RxStatus.NEW, RxStatus.IN_PROGRESS, RxStatus.READY_FOR_CHECK,
                 RxStatus.PARTIALLY_DISPENSED)
FILLABLE = (*OPEN_STATUSES, RxStatus.DISPENSED)
# What can stop a fill, by RxState.problem_kind (the rules runner reports these).
PROBLEM_KINDS = ("transferred", "cancelled", "on_hold", "no_refills", "expired",
                 "not_before", "partial_limit")
CONTROLLED_III_V = (Schedule.III, Schedule.IV, Schedule.V)

# The NCPDP product-selection (DAW) codes (NCPDP Telecommunication Standard
# field 408-D8, Dispense As Written/Product Selection Code).
DAW_CODES: dict[int, str] = {
    0: "No product selection indicated",
    1: "Substitution not allowed by prescriber",
    2: "Substitution allowed - patient requested product dispensed",
    3: "Substitution allowed - pharmacist selected product dispensed",
    4: "Substitution allowed - generic drug not in stock",
    5: "Substitution allowed - brand drug dispensed as a generic",
    6: "Override",
    7: "Substitution not allowed - brand drug mandated by law",
    8: "Substitution allowed - generic drug not available in marketplace",
    9: "Substitution allowed by prescriber but plan requests brand",
}
# The codes under which the product dispensed must be the one prescribed: the
# prescriber (1) or the law (7) forbids substitution, or the patient (2) or the
# plan (9) asked for that product. The database keeps ``prescriptions.daw``
# equal to "the code is one of these" (migration 0016).
NO_SUBSTITUTION_CODES = frozenset({1, 2, 7, 9})


def substitution_allowed(daw_code: int) -> bool:
    """May another package of the same drug be dispensed for this DAW code?"""
    return daw_code not in NO_SUBSTITUTION_CODES


def daw_label(daw_code: int) -> str:
    return f"{daw_code} - {DAW_CODES.get(daw_code, 'unknown code')}"


# 21 CFR 1306.13: how long the remainder of a Schedule II partial fill may be
# dispensed. (a) a shortage: within 72 hours of the first partial filling, after
# which the pharmacist notifies the prescriber and the rest is void; (b) and 21
# U.S.C. 829(f)(2)(A), at the patient's or prescriber's request: not later than 30
# days after the date written; (c) a long-term care facility patient or one with
# a terminal illness: up to 60 days from the issue date.
SHORTAGE_HOURS = 72
REQUEST_DAYS = 30
LONG_TERM_CARE_DAYS = 60


def fill_label(fill_number: int, part: int = 1) -> str:
    """How a fill is named on screens and reports: "original", "refill 2",
    "original, part 2" (the parts of a partial fill)."""
    base = "original" if fill_number == 0 else f"refill {fill_number}"
    return base + (f", part {part}" if part > 1 else "")


def proportional_days(days_supply: int, prescribed: int, quantity: int) -> int:
    """The days supply of a fill of ``quantity`` out of ``prescribed`` for
    ``days_supply`` days (rounded half up, at least one day)."""
    if prescribed <= 0 or quantity >= prescribed:
        return days_supply
    return max(1, (2 * days_supply * quantity + prescribed) // (2 * prescribed))


# 21 CFR 1306.22(a): "No prescription for a controlled substance listed in
# Schedule III or IV shall be filled or refilled more than six months after the
# date on which such prescription was issued". GetMeds holds Schedule V to the same
# period (federal law sets none; many states do). A pharmacy's setting may only
# make it shorter.
CONTROLLED_MONTHS_MAX = 6


def validity_months(schedule: Schedule, rx_months: int, controlled_months: int) -> int:
    """How long a prescription may be filled after it was written (the settings:
    one period for Schedule III-V, never more than the law's six months; one for
    everything else)."""
    if schedule in (Schedule.III, Schedule.IV, Schedule.V):
        return min(controlled_months, CONTROLLED_MONTHS_MAX)
    return rx_months


def refills_left(refills_authorized: int, last_fill: int | None) -> int:
    """Refills still allowed after fill number ``last_fill`` (None: never filled)."""
    if last_fill is None:
        return refills_authorized
    return max(refills_authorized - last_fill, 0)


@dataclasses.dataclass(frozen=True)
class RxState:
    rx_number: int
    status: RxStatus
    schedule: Schedule
    quantity: int
    refills_authorized: int
    date_written: dt.date
    owed_quantity: int
    validity_months: int
    last_fill: int | None = None  # the highest fill number dispensed so far
    last_part: int | None = None  # the highest part of that fill
    not_before: dt.date | None = None  # the earliest day it may be filled
    # the first part of the latest fill: why it was partial, and when it was made
    partial_reason: PartialReason | None = None
    partial_started: dt.datetime | None = None
    remainder_void_at: dt.datetime | None = None  # the rest was declared void
    electronic: bool = True  # arrived as an electronic prescription
    # transferred out to another pharmacy (its name, the day): closed here
    transferred_to: str | None = None
    transferred_on: dt.date | None = None
    arrived_by_transfer: bool = False  # entered here from another pharmacy's

    @property
    def fills_used(self) -> int:
        return 0 if self.last_fill is None else self.last_fill + 1

    @property
    def refills_left(self) -> int:
        """Refills left here (none once transferred out: they went with it)."""
        if self.transferred:
            return 0
        return refills_left(self.refills_authorized, self.last_fill)

    @property
    def expires_on(self) -> dt.date:
        """The last day it may be filled."""
        return add_months(self.date_written, self.validity_months)

    def expired_on(self, day: dt.date) -> bool:
        return day > self.expires_on

    @property
    def completing(self) -> bool:
        """The next fill completes a partial fill (the owed quantity)."""
        return self.status is RxStatus.PARTIALLY_DISPENSED and self.owed_quantity > 0

    def next_fill(self) -> tuple[int, int]:
        """(fill number, part) of the next fill."""
        if self.last_fill is None:
            return 0, 1
        if self.completing:
            return self.last_fill, (self.last_part or 1) + 1
        return self.last_fill + 1, 1

    def default_quantity(self) -> int:
        return self.owed_quantity if self.completing else self.quantity

    @property
    def remainder_limit(self) -> dt.datetime | dt.date | None:
        """Until when the rest of a Schedule II partial fill may be dispensed (a
        moment for a shortage, else a last day), or None when that does not apply."""
        if self.schedule is not Schedule.II or not self.completing:
            return None
        reason = self.partial_reason or PartialReason.SHORTAGE
        if reason is PartialReason.SHORTAGE:
            if self.partial_started is None:
                return None
            return self.partial_started + dt.timedelta(hours=SHORTAGE_HOURS)
        days = LONG_TERM_CARE_DAYS if reason.sixty_days else REQUEST_DAYS
        return self.date_written + dt.timedelta(days=days)

    def remainder_void(self, day: dt.date, at: dt.datetime | None = None) -> bool:
        """The rest of a Schedule II partial fill can no longer be dispensed."""
        if self.remainder_void_at is not None:
            return True
        if self.schedule is not Schedule.II or not self.completing:
            return False
        limit = self.remainder_limit
        if isinstance(limit, dt.datetime):
            return at > limit if at is not None else day > clock.local(limit).date()
        return limit is not None and day > limit

    def partial_reason_needed(self, owed_after: int) -> bool:
        """A fill that leaves ``owed_after`` owed must say why (Schedule II)."""
        return self.schedule is Schedule.II and owed_after > 0

    def finished_on(self, day: dt.date) -> bool:
        """Dispensed with no refills left, or past its last day: no more fills."""
        return self.status is RxStatus.DISPENSED and (
            self.refills_left <= 0 or self.expired_on(day))

    def problem_kind(self, day: dt.date, at: dt.datetime | None = None) -> str | None:
        """Which rule stops a fill on ``day`` (at the moment ``at``, when known:
        the 72 hours of a shortage are counted to the minute) (one of
        :data:`PROBLEM_KINDS`), or None. :meth:`problem` says it in words."""
        if self.transferred:
            return "transferred"
        if self.status is RxStatus.CANCELLED:
            return "cancelled"
        if self.status is RxStatus.ON_HOLD:
            return "on_hold"
        if self.remainder_void(day, at):
            return "partial_limit"
        if self.status is RxStatus.DISPENSED and self.refills_left <= 0:
            return "no_refills"
        if self.expired_on(day):
            return "expired"
        if self.not_before is not None and day < self.not_before:
            return "not_before"
        return None

    def problem(self, day: dt.date, at: dt.datetime | None = None) -> str | None:
        """Why it cannot be filled on ``day`` (at ``at``), or None."""
        number = self.rx_number
        kind = self.problem_kind(day, at)
        if kind == "transferred":
            return self.transferred_text
        if kind == "cancelled":
            return f"Rx {number} is cancelled."
        if kind == "on_hold":
            return f"Rx {number} is on hold; release it first."
        if kind == "no_refills":
            return f"Rx {number} has no refills left; the prescriber must authorise more."
        if kind == "expired":
            which = ("Schedule III-V prescriptions"
                     if self.schedule in (Schedule.III, Schedule.IV, Schedule.V)
                     else "Prescriptions")
            return (f"Rx {number} expired on {self.expires_on:%Y-%m-%d}: {which} "
                    f"cannot be filled after that date.")
        if kind == "not_before":
            return (f"Rx {number} may not be filled before {self.not_before:%Y-%m-%d}: the "
                    "prescriber wrote that as its earliest fill date (21 CFR 1306.12(b)).")
        if kind == "partial_limit":
            return self._void_text()
        return None

    # ------------------------------------------------------------ transfers

    @property
    def transferred(self) -> bool:
        return self.status is RxStatus.TRANSFERRED or self.transferred_to is not None

    @property
    def transferred_text(self) -> str:
        where = self.transferred_to or "another pharmacy"
        when = f" on {self.transferred_on:%Y-%m-%d}" if self.transferred_on else ""
        return (f"Rx {self.rx_number} was transferred to {where}{when}: it is closed here and "
                "cannot be filled.")

    def transfer_problem_kind(self, day: dt.date) -> str | None:
        """Why this prescription cannot be transferred out on ``day``: a kind of
        :data:`PROBLEM_KINDS`, ``"transfer"`` (the law allows no transfer of it),
        ``"owed"`` (a partial fill is not complete), or None.

        21 CFR 1306.25(a): Schedule III-V prescription information is transferred
        for refills "on a one-time basis only" (pharmacies sharing a real-time,
        on-line database are one pharmacy here: moving a prescription between
        them is no transfer). 1306.08(e): an electronic prescription for a
        Schedule II-V substance may be transferred for its initial dispensing,
        once; Schedule II has no refills (1306.12(a)), so it is transferred only
        unfilled. Other prescriptions follow state law: transferred with refills
        left, as often as asked."""
        if self.transferred:
            return "transferred"
        if self.status is RxStatus.CANCELLED:
            return "cancelled"
        if self.schedule is Schedule.II:
            if not self.electronic or self.fills_used > 0 or self.arrived_by_transfer:
                return "transfer"
        elif self.schedule in CONTROLLED_III_V:
            if self.arrived_by_transfer:
                return "transfer"
            if self.fills_used == 0 and not self.electronic:
                return "transfer"
        if self.completing:
            return "owed"
        kind = self.problem_kind(day)
        if kind in ("no_refills", "expired"):
            return kind  # nothing is left to transfer
        return None

    def transfer_problem(self, day: dt.date) -> str | None:
        """:meth:`transfer_problem_kind` in words, or None."""
        kind = self.transfer_problem_kind(day)
        number = self.rx_number
        if kind is None:
            return None
        if kind == "transfer":
            if self.schedule is Schedule.II:
                if self.arrived_by_transfer:
                    why = "it arrived here by transfer, and that one-time transfer is used"
                elif not self.electronic:
                    why = "it is not an electronic prescription"
                else:
                    why = "part of it has been filled"
                return (f"Rx {number} cannot be transferred: {why}. A Schedule II "
                        "prescription is transferred only once, electronic and before any "
                        "of it is filled (21 CFR 1306.08(e)).")
            if self.arrived_by_transfer:
                return (f"Rx {number} arrived here by transfer: a Schedule "
                        f"{self.schedule.value} prescription is transferred once only "
                        "(21 CFR 1306.25(a)). The patient needs a new prescription.")
            return (f"Rx {number} was never filled and is not electronic: only an electronic "
                    "prescription is transferred for its initial filling (21 CFR "
                    "1306.08(e)); give the patient the prescription itself.")
        if kind == "owed":
            return (f"Rx {number} has {self.owed_quantity} owed on a partial fill: complete it "
                    "(or cancel the rest) before transferring the refills.")
        if kind == "no_refills":
            return f"Rx {number} has no refills left to transfer."
        return self.problem(day)

    def _void_text(self) -> str:
        number = self.rx_number
        owed = self.owed_quantity
        if self.remainder_void_at is not None:
            return (f"Rx {number}: the rest of this Schedule II partial fill was declared "
                    f"void on {clock.local(self.remainder_void_at):%Y-%m-%d %H:%M}; a new "
                    "prescription is needed.")
        limit = self.remainder_limit
        if isinstance(limit, dt.datetime):
            return (f"Rx {number}: the remaining {owed} of this Schedule II partial fill "
                    f"(a shortage) could be dispensed until "
                    f"{clock.local(limit):%Y-%m-%d %H:%M}, 72 hours after the first part; "
                    "they are void. Notify the prescriber (21 CFR 1306.13(a)); a new "
                    "prescription is needed.")
        return (f"Rx {number}: the remaining {owed} of this Schedule II partial fill could be "
                f"dispensed until {limit:%Y-%m-%d} "
                f"({'60' if self.partial_reason and self.partial_reason.sixty_days else '30'} "
                "days after the date written, 21 CFR 1306.13(b), (c)); a new prescription "
                "is needed.")


__all__ = ["CONTROLLED_III_V", "DAW_CODES", "FILLABLE", "NO_SUBSTITUTION_CODES", "OPEN_STATUSES",
           "PROBLEM_KINDS", "RxState", "daw_label", "fill_label", "proportional_days",
           "refills_left",
           "substitution_allowed", "validity_months"]
