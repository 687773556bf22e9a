"""Patients, their allergies and their medical conditions."""

from __future__ import annotations

import datetime as dt
import uuid

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Base, ChangeStamped, UUIDPk, Versioned, str_enum, utcnow
from .enums import AllergyStatus, Severity, Sex


class Patient(UUIDPk, Versioned, ChangeStamped, Base):
    __tablename__ = "patients"
    __table_args__ = (
        sa.CheckConstraint("length(first_name) > 0", name="first_name_present"),
        sa.CheckConstraint("length(last_name) > 0", name="last_name_present"),
        sa.Index("ix_patients_name", "last_name", "first_name", "id"),
        sa.Index("ix_patients_date_of_birth", "date_of_birth"),
        sa.Index("ix_patients_phone", "phone"),
    )

    first_name: Mapped[str] = mapped_column(sa.String(100))
    last_name: Mapped[str] = mapped_column(sa.String(100))
    date_of_birth: Mapped[dt.date] = mapped_column(sa.Date)
    sex: Mapped[Sex] = mapped_column(str_enum(Sex, "patient_sex"), default=Sex.UNKNOWN)
    phone: Mapped[str | None] = mapped_column(sa.String(32))
    email: Mapped[str | None] = mapped_column(sa.String(254))
    address_line: Mapped[str | None] = mapped_column(sa.String(200))
    city: Mapped[str | None] = mapped_column(sa.String(100))
    state: Mapped[str | None] = mapped_column(sa.String(50))
    postal_code: Mapped[str | None] = mapped_column(sa.String(20))
    notes: Mapped[str | None] = mapped_column(sa.Text)
    legacy_ref: Mapped[str | None] = mapped_column(sa.String(64), unique=True)
    active: Mapped[bool] = mapped_column(sa.Boolean, default=True)
    # Whether anyone asked about allergies: "no known allergies" is an answer
    # (recorded with who and when), "not asked" is not.
    allergy_status: Mapped[AllergyStatus] = mapped_column(
        str_enum(AllergyStatus, "allergy_status"), default=AllergyStatus.NOT_ASKED)
    allergy_status_by: Mapped[str | None] = mapped_column(sa.String(64))
    allergy_status_at: Mapped[dt.datetime | None]
    pregnant: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    breastfeeding: Mapped[bool] = mapped_column(sa.Boolean, default=False)

    allergies: Mapped[list[PatientAllergy]] = relationship(
        back_populates="patient", cascade="all, delete-orphan", lazy="raise",
        order_by="PatientAllergy.allergen",
    )
    conditions: Mapped[list[PatientCondition]] = relationship(
        back_populates="patient", cascade="all, delete-orphan", lazy="raise",
        order_by="PatientCondition.name",
    )


class PatientAllergy(UUIDPk, ChangeStamped, Base):
    __tablename__ = "patient_allergies"
    __table_args__ = (
        sa.CheckConstraint("length(allergen) > 0", name="allergen_present"),
        sa.UniqueConstraint("patient_id", "allergen"),
    )

    patient_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("patients.id", ondelete="CASCADE"), index=True
    )
    allergen: Mapped[str] = mapped_column(sa.String(120))
    reaction: Mapped[str | None] = mapped_column(sa.String(200))
    severity: Mapped[Severity] = mapped_column(
        str_enum(Severity, "allergy_severity"), default=Severity.UNKNOWN
    )
    # A side effect recorded as such (nausea): warns mildly, never through
    # cross-sensitivity.
    intolerance: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    recorded_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    patient: Mapped[Patient] = relationship(back_populates="allergies", lazy="raise")


class PatientCondition(UUIDPk, ChangeStamped, Base):
    __tablename__ = "patient_conditions"
    __table_args__ = (
        sa.CheckConstraint("length(name) > 0", name="name_present"),
        sa.UniqueConstraint("patient_id", "name"),
    )

    patient_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("patients.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(sa.String(200))
    notes: Mapped[str | None] = mapped_column(sa.String(500))
    recorded_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    patient: Mapped[Patient] = relationship(back_populates="conditions", lazy="raise")


class PatientFeedback(UUIDPk, Versioned, ChangeStamped, Base):
    __tablename__ = "patient_feedback"
    __table_args__ = (
        sa.CheckConstraint("length(feedback) > 0", name="feedback_present"),
        sa.CheckConstraint(
            "(reply IS NULL AND replied_by IS NULL AND replied_at IS NULL) OR "
            "(reply IS NOT NULL AND replied_by IS NOT NULL AND replied_at IS NOT NULL)",
            name="reply_complete",
        ),
    )

    patient_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("patients.id", ondelete="RESTRICT"), index=True
    )
    feedback: Mapped[str] = mapped_column(sa.Text)
    received_by: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("staff.id", ondelete="RESTRICT")
    )
    reply: Mapped[str | None] = mapped_column(sa.Text)
    replied_by: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("staff.id", ondelete="RESTRICT")
    )
    replied_at: Mapped[dt.datetime | None]
