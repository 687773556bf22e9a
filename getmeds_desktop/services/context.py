"""Who is acting, and what each role may do (the service-layer permission matrix).

On PostgreSQL the database enforces the same matrix with GRANTs and row-level
security; here it gives a clear message before anything is attempted, and it is
the only enforcement in embedded (SQLite) mode.
"""

from __future__ import annotations

import dataclasses
import enum
import uuid

from ..enums import Role
from .errors import PermissionDenied


@dataclasses.dataclass(frozen=True)
class Actor:
    """Who a service call acts for: a signed-in staff member, or :data:`SYSTEM`."""

    staff_id: uuid.UUID | None  # None only for SYSTEM
    username: str
    full_name: str
    role: Role
    prescriber_id: uuid.UUID | None = None
    system: bool = False
    # an administrator's practice role (pharmacist, technician or clerk), if any
    practice_role: Role | None = None

    @property
    def initials(self) -> str:
        return "".join(p[0] for p in self.full_name.split() if p).upper()[:3]

    @property
    def practice(self) -> Role:
        """The role this person works in at the counter: their role, or an
        administrator's practice role (an administrator without one: ADMIN)."""
        if self.role is Role.ADMIN and self.practice_role is not None:
            return self.practice_role
        return self.role

    def can(self, perm: Perm) -> bool:
        if self.system or perm in PERMISSIONS[self.role]:
            return True
        return self.practice_role is not None and perm in PERMISSIONS[self.practice_role]


class Perm(enum.Enum):
    READ_PATIENTS = "read patients"
    WRITE_PATIENTS = "edit patients"
    READ_PRESCRIBERS = "read prescribers"
    WRITE_PRESCRIBERS = "edit prescribers"
    READ_PRESCRIPTIONS = "read prescriptions"
    CREATE_PRESCRIPTIONS = "create prescriptions"
    EDIT_PRESCRIPTIONS = "edit prescriptions"
    DISPENSE = "dispense"
    VERIFY = "verify fills"
    RELEASE = "release fills to patients"
    RETURN_TO_STOCK = "return fills to stock"
    # 21 CFR 1306.25(b)(1), 1306.08(g): between two licensed pharmacists
    TRANSFER = "transfer prescriptions to and from other pharmacies"
    READ_STOCK = "read stock"
    READ_LOTS = "read lots and stock movements"
    RECEIVE = "receive stock"
    RECEIVE_CONTROLLED = "receive controlled substances"
    ADJUST = "adjust stock"
    DEA_FORMS = "file DEA Form 41 and Form 106 records"
    STOCKTAKE = "run stocktakes"
    DEA_INVENTORY = "take DEA inventories of controlled substances"
    LOT_STATUS = "quarantine, recall or release lots"
    WRITE_CATALOG = "edit products, categories and suppliers"
    READ_DISPENSES = "read dispensing history"
    REPORTS = "print management reports"
    MANAGE_STAFF = "manage staff"
    SETTINGS = "change settings"
    READ_AUDIT = "read the audit log"
    FEEDBACK = "record patient feedback"
    REPLY_FEEDBACK = "reply to patient feedback"
    BACKUPS = "make and restore backups"


_ALL = frozenset(Perm)
PERMISSIONS: dict[Role, frozenset[Perm]] = {
    # an administrator manages the pharmacy; filling, verifying and handing out
    # come with a practice role of their own (Actor.practice_role)
    # (a DEA inventory and the DEA forms too: only a pharmacist, 21 CFR 1304.11,
    # 1301.76(b), 1317.90; and a transfer, 1306.25(b)(1))
    Role.ADMIN: _ALL - {Perm.DISPENSE, Perm.VERIFY, Perm.RELEASE, Perm.RETURN_TO_STOCK,
                        Perm.DEA_INVENTORY, Perm.DEA_FORMS, Perm.TRANSFER},
    Role.PHARMACIST: _ALL - {Perm.MANAGE_STAFF, Perm.SETTINGS, Perm.READ_AUDIT, Perm.WRITE_CATALOG,
                             Perm.BACKUPS},
    # fills, scans and labels, receipts of ordinary stock; never verification,
    # a severe warning's override (screening.overrides) or a controlled-stock change
    Role.TECHNICIAN: frozenset(
        {
            Perm.READ_PATIENTS,
            Perm.WRITE_PATIENTS,
            Perm.READ_PRESCRIBERS,
            Perm.WRITE_PRESCRIBERS,
            Perm.READ_PRESCRIPTIONS,
            Perm.CREATE_PRESCRIPTIONS,
            Perm.EDIT_PRESCRIPTIONS,
            Perm.DISPENSE,
            Perm.RELEASE,
            Perm.RETURN_TO_STOCK,
            Perm.READ_STOCK,
            Perm.READ_LOTS,
            Perm.RECEIVE,
            Perm.READ_DISPENSES,
            Perm.FEEDBACK,
        }
    ),
    Role.CLERK: frozenset(
        {
            Perm.READ_PATIENTS,
            Perm.WRITE_PATIENTS,
            Perm.READ_PRESCRIBERS,
            Perm.WRITE_PRESCRIBERS,
            Perm.READ_PRESCRIPTIONS,
            Perm.CREATE_PRESCRIPTIONS,
            Perm.READ_STOCK,
            Perm.READ_LOTS,
            Perm.RECEIVE,
            Perm.FEEDBACK,
            Perm.RELEASE,  # at the register: the offer to counsel is recorded
        }
    ),
    Role.DOCTOR: frozenset(
        {
            Perm.READ_PATIENTS,
            Perm.READ_PRESCRIBERS,
            Perm.READ_PRESCRIPTIONS,
            Perm.CREATE_PRESCRIPTIONS,
            Perm.EDIT_PRESCRIPTIONS,
            Perm.READ_STOCK,
        }
    ),
}


# Trusted callers: getmeds-admin maintenance, imports, the demo seed, creating the
# first administrator. May do everything; is no staff member, so a write that
# records a person (a dispense, a stock movement) needs a real one.
SYSTEM = Actor(staff_id=None, username="system", full_name="GetMeds (system)",
               role=Role.ADMIN, system=True)


def require(actor: Actor, perm: Perm) -> None:
    if not actor.can(perm):
        raise PermissionDenied(f"Your role ({actor.role.label}) may not {perm.value}.")
