"""Pharmacy-wide settings (one row): details for reports, auto-lock, Rx validity."""

from __future__ import annotations

import dataclasses
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from .. import db
from ..models import AppSettings, PaperSize
from . import uow
from ._common import text, whole_number
from .context import Actor, Perm
from .errors import ValidationError
from .identifiers import clean_dea, clean_npi, clean_phone
from .rxstate import CONTROLLED_MONTHS_MAX

# A Schedule II prescription for more days than this is warned of (or refused:
# a setting). Federal law sets no limit on the quantity of one Schedule II
# prescription; 21 CFR 1306.12(b)(1) allows several, written together, for a
# total of up to 90 days, so that is the default. Many states are stricter (New
# York, for one: a 30-day supply, three months for listed conditions).
SCHEDULE_II_DAYS_DEFAULT = 90
SCHEDULE_II_OVER_LIMIT = ("warn", "refuse")


@dataclasses.dataclass(frozen=True)
class Settings:
    pharmacy_name: str
    address: str | None
    phone: str | None
    dea_number: str | None
    npi: str | None
    paper_size: PaperSize
    auto_lock_minutes: int
    controlled_validity_months: int
    rx_validity_months: int
    early_refill_percent: int
    version: int
    updated_by: str | None
    scan_required: bool = False
    controlled_early_refill_percent: int = 90
    geriatric_age: int = 65
    self_verify: bool = False
    return_after_days: int = 14
    id_check_controlled: bool = True
    discard_after_months: int = 12
    schedule_ii_max_days: int = SCHEDULE_II_DAYS_DEFAULT
    schedule_ii_over_limit: str = "warn"  # or "refuse"

    @property
    def schedule_ii_refused_over(self) -> int | None:
        """Days above which a Schedule II prescription is refused (None: warned)."""
        return self.schedule_ii_max_days if self.schedule_ii_over_limit == "refuse" else None


def _info(row: AppSettings) -> Settings:
    return Settings(
        pharmacy_name=row.pharmacy_name,
        address=row.address,
        phone=row.phone,
        dea_number=row.dea_number,
        npi=row.npi,
        paper_size=row.paper_size,
        auto_lock_minutes=row.auto_lock_minutes,
        # a database of an earlier version may hold more than the law allows
        controlled_validity_months=min(row.controlled_validity_months, CONTROLLED_MONTHS_MAX),
        rx_validity_months=row.rx_validity_months,
        early_refill_percent=row.early_refill_percent,
        version=row.version,
        updated_by=row.updated_by,
        scan_required=bool(row.scan_required),
        controlled_early_refill_percent=row.controlled_early_refill_percent,
        geriatric_age=row.geriatric_age,
        self_verify=bool(row.self_verify),
        return_after_days=row.return_after_days,
        id_check_controlled=bool(row.id_check_controlled),
        discard_after_months=row.discard_after_months,
        schedule_ii_max_days=row.schedule_ii_max_days,
        schedule_ii_over_limit=row.schedule_ii_over_limit,
    )


def load(session: Session) -> AppSettings:
    row = session.get(AppSettings, 1)
    if row is None:  # the migration inserts it; a database without it is broken
        raise RuntimeError("app_settings row missing")
    return row


def get_settings(sf: sessionmaker[Session]) -> Settings:
    with db.quick_read(sf) as s:  # one statement: one round trip on a server
        return _info(load(s))


def update_settings(
    sf: sessionmaker[Session],
    actor: Actor,
    changes: dict[str, Any],
    *,
    expected_version: int | None = None,
    locked: frozenset[str] = frozenset(),
) -> Settings:
    """Change some settings. ``locked`` names settings IT fixed in the site file."""
    blocked = sorted(set(changes) & locked)
    if blocked:
        raise ValidationError(
            f"{', '.join(blocked)} is set by your IT department and cannot be changed here.",
            field=blocked[0],
        )
    clean: dict[str, Any] = {}
    for key, value in changes.items():
        if key == "pharmacy_name":
            clean[key] = text(value, key, "Pharmacy name", max_len=200)
        elif key == "address":
            clean[key] = text(value, key, "Address", required=False, max_len=300)
        elif key == "phone":
            clean[key] = clean_phone(value, key)
        elif key == "dea_number":
            clean[key] = clean_dea(value, key)
        elif key == "npi":
            clean[key] = clean_npi(value, key)
        elif key == "paper_size":
            try:
                clean[key] = PaperSize(str(value).lower())
            except ValueError:
                raise ValidationError("Paper size must be letter or A4.", field=key) from None
        elif key == "auto_lock_minutes":
            clean[key] = whole_number(value, key, "Auto-lock minutes", minimum=1, maximum=240)
        elif key == "controlled_validity_months":
            months = whole_number(value, key, "Validity of Schedule III-V prescriptions (months)",
                                  minimum=1)
            if months > CONTROLLED_MONTHS_MAX:
                raise ValidationError(
                    f"Schedule III-V prescriptions may be filled for at most "
                    f"{CONTROLLED_MONTHS_MAX} months after they were written (21 CFR "
                    f"1306.22(a)); a setting can only make that shorter.", field=key)
            clean[key] = months
        elif key == "rx_validity_months":
            clean[key] = whole_number(
                value, key, "Validity of other prescriptions (months)", minimum=1, maximum=24)
        elif key == "scan_required":
            if not isinstance(value, bool):
                raise ValidationError("Say yes or no: must every fill be scanned?", field=key)
            clean[key] = value
        elif key in ("self_verify", "id_check_controlled"):
            if not isinstance(value, bool):
                raise ValidationError("Say yes or no.", field=key)
            clean[key] = value
        elif key == "discard_after_months":
            clean[key] = whole_number(value, key, "Discard-by date on the label (months after "
                                      "the fill)", minimum=1, maximum=12)
        elif key == "schedule_ii_max_days":
            clean[key] = whole_number(value, key, "Longest Schedule II supply (days)",
                                      minimum=1, maximum=365)
        elif key == "schedule_ii_over_limit":
            choice = str(value).strip().lower()
            if choice not in SCHEDULE_II_OVER_LIMIT:
                raise ValidationError("A longer Schedule II supply is either warned of "
                                      "('warn') or refused ('refuse').", field=key)
            clean[key] = choice
        elif key == "return_after_days":
            clean[key] = whole_number(value, key, "Days a fill waits for pickup before it goes "
                                      "back to stock", minimum=1, maximum=90)
        elif key == "early_refill_percent":
            clean[key] = whole_number(
                value, key, "Early-refill threshold (%)", minimum=1, maximum=100)
        elif key == "geriatric_age":
            clean[key] = whole_number(value, key, "Geriatric age (years)", minimum=40,
                                      maximum=120)
        elif key == "controlled_early_refill_percent":
            clean[key] = whole_number(
                value, key, "Early-refill threshold of controlled substances (%)", minimum=1,
                maximum=100)
        else:
            raise ValidationError(f"Unknown setting '{key}'.", field=key)
    def body(w: uow.Work) -> Settings:
        row = load(w.session)
        w.expect_version(row, expected_version, "settings page")
        for key, value in clean.items():
            setattr(row, key, value)
        row.updated_by = w.actor.username
        w.session.flush()
        return _info(row)

    return uow.write(sf, actor, Perm.SETTINGS, body)
