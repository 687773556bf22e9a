"""A prescription's state: the one home of refills left, fills used, expiry,
next fill and part, default and owed quantity, and every "cannot be filled
because". No database and no Qt: the services read the facts, this decides.

Fills are numbered 0 (the original fill), 1, 2, ... (refills); a fill made in
parts (a partial fill completed later) has parts 1, 2, ... of the same number.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from ..enums import RxStatus, Schedule
from .clock import add_months

# Statuses from which a fill may be made (dispensed = a refill when refills are left).
OPEN_STATUSES = (RxStatus.NEW, RxStatus.IN_PROGRESS, RxStatus.READY_FOR_CHECK,
                 RxStatus.PARTIALLY_DISPENSED)
FILLABLE = (*OPEN_STATUSES, RxStatus.DISPENSED)
# What can stop a fill, by RxState.problem_kind (the rules runner reports these).
PROBLEM_KINDS = ("cancelled", "on_hold", "no_refills", "expired")


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

    @property
    def fills_used(self) -> int:
        return 0 if self.last_fill is None else self.last_fill + 1

    @property
    def refills_left(self) -> int:
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

    def finished_on(self, day: dt.date) -> bool:
        """Dispensed with no refills left, or past its last day: no more fills."""
        return self.status is RxStatus.DISPENSED and (
            self.refills_left <= 0 or self.expired_on(day))

    def problem_kind(self, day: dt.date) -> str | None:
        """Which rule stops a fill on ``day`` (one of :data:`PROBLEM_KINDS`), or None.
        :meth:`problem` says it in words."""
        if self.status is RxStatus.CANCELLED:
            return "cancelled"
        if self.status is RxStatus.ON_HOLD:
            return "on_hold"
        if self.status is RxStatus.DISPENSED and self.refills_left <= 0:
            return "no_refills"
        if self.expired_on(day):
            return "expired"
        return None

    def problem(self, day: dt.date) -> str | None:
        """Why it cannot be filled on ``day``, or None."""
        number = self.rx_number
        kind = self.problem_kind(day)
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
        return None


__all__ = ["FILLABLE", "OPEN_STATUSES", "PROBLEM_KINDS", "RxState", "refills_left",
           "validity_months"]
