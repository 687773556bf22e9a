"""Pharmacy-wide settings: one row."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, ChangeStamped, UUIDPk, Versioned, str_enum, utcnow
from .enums import PaperSize


class AppSettings(Versioned, ChangeStamped, Base):
    __tablename__ = "app_settings"
    __table_args__ = (
        sa.CheckConstraint("id = 1", name="single_row"),
        sa.CheckConstraint("auto_lock_minutes BETWEEN 1 AND 240", name="auto_lock_range"),
        sa.CheckConstraint(
            "controlled_validity_months BETWEEN 1 AND 12", name="controlled_validity_range"
        ),
        sa.CheckConstraint("rx_validity_months BETWEEN 1 AND 24", name="rx_validity_range"),
        sa.CheckConstraint(
            "early_refill_percent BETWEEN 1 AND 100", name="early_refill_percent_range"
        ),
        sa.CheckConstraint(
            "controlled_early_refill_percent BETWEEN 1 AND 100",
            name="controlled_early_refill_percent_range",
        ),
        sa.CheckConstraint("geriatric_age BETWEEN 40 AND 120", name="geriatric_age_range"),
        sa.CheckConstraint("return_after_days BETWEEN 1 AND 90", name="return_after_range"),
        sa.CheckConstraint("discard_after_months BETWEEN 1 AND 12", name="discard_after_range"),
        sa.CheckConstraint("schedule_ii_max_days BETWEEN 1 AND 365",
                           name="schedule_ii_max_days_range"),
        sa.CheckConstraint("schedule_ii_over_limit IN ('warn', 'refuse')",
                           name="schedule_ii_over_limit_value"),
        sa.CheckConstraint("dea_number IS NULL OR length(dea_number) = 9", name="dea_format"),
    )

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, default=1)
    pharmacy_name: Mapped[str] = mapped_column(sa.String(200), default="GetMeds Pharmacy")
    address: Mapped[str | None] = mapped_column(sa.String(300))
    phone: Mapped[str | None] = mapped_column(sa.String(32))
    dea_number: Mapped[str | None] = mapped_column(sa.String(9))
    npi: Mapped[str | None] = mapped_column(sa.String(10))
    paper_size: Mapped[PaperSize] = mapped_column(
        str_enum(PaperSize, "paper_size"), default=PaperSize.LETTER
    )
    auto_lock_minutes: Mapped[int] = mapped_column(sa.Integer, default=5)
    controlled_validity_months: Mapped[int] = mapped_column(sa.Integer, default=6)
    rx_validity_months: Mapped[int] = mapped_column(sa.Integer, default=12)
    # early refill: the share of the supply on hand that must be used before a
    # refill, for every product, and (stricter) for Schedule II-V products
    early_refill_percent: Mapped[int] = mapped_column(sa.Integer, default=75)
    controlled_early_refill_percent: Mapped[int] = mapped_column(sa.Integer, default=90)
    # from this age the screening's geriatric age entries apply
    geriatric_age: Mapped[int] = mapped_column(sa.Integer, default=65)
    # Every fill needs a scan of its package (True), or a recorded reason when
    # there is none (False).
    scan_required: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    # A pharmacist may verify their own fill (a pharmacy with one pharmacist on
    # duty); both steps are still recorded (0015).
    self_verify: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    # A fill waiting for pickup longer than this is listed to go back to stock.
    return_after_days: Mapped[int] = mapped_column(sa.Integer, default=14)
    # At the release of a controlled substance, the ID seen is recorded.
    id_check_controlled: Mapped[bool] = mapped_column(sa.Boolean, default=True)
    # The label's discard-by date: this long after the fill at most, never after
    # the lot's expiry.
    discard_after_months: Mapped[int] = mapped_column(sa.Integer, default=12)
    # One Schedule II prescription for more days than this is warned of at
    # prescribing and at the fill (a stop for a pharmacist), or refused
    # ("refuse"): federal law sets no limit on one prescription (21 CFR 1306.12(b)
    # limits several written together to 90 days), many states do (0023).
    schedule_ii_max_days: Mapped[int] = mapped_column(sa.Integer, default=90)
    schedule_ii_over_limit: Mapped[str] = mapped_column(sa.String(6), default="warn")


class DbSecurity(Base):
    """PostgreSQL: the prefix of this pharmacy's group roles (one row)."""

    __tablename__ = "db_security"
    __table_args__ = (sa.CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, default=1)
    role_prefix: Mapped[str] = mapped_column(sa.String(40), default="getmeds_")


class KnowledgeImport(UUIDPk, ChangeStamped, Base):
    """A licensed clinical knowledge file as it was imported (docs/screening.md).
    One per kind is active; the others are kept as history."""

    __tablename__ = "knowledge_imports"
    __table_args__ = (
        sa.CheckConstraint("kind IN ('interactions')", name="knowledge_kind"),
        sa.CheckConstraint("rule_count >= 0", name="rules_nonneg"),
        sa.Index("ix_knowledge_imports_kind_active", "kind", "active", "imported_at"),
    )

    kind: Mapped[str] = mapped_column(sa.String(12))
    file_name: Mapped[str] = mapped_column(sa.String(255))
    sha256: Mapped[str] = mapped_column(sa.String(64))
    rule_count: Mapped[int] = mapped_column(sa.Integer)
    source_label: Mapped[str] = mapped_column(sa.String(200))
    content: Mapped[bytes] = mapped_column(sa.LargeBinary)
    imported_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    imported_by: Mapped[str] = mapped_column(sa.String(64))
    active: Mapped[bool] = mapped_column(sa.Boolean, default=True, server_default=sa.true())
