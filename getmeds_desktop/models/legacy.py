"""History brought over from the GetMeds web app.

The web app kept prescriptions as free text (no prescriber, often no product it
could name) and dispenses without prescriptions. They are the patients'
medication history, so they are kept as they were, beside the real
prescriptions and dispenses rather than disguised as them: they never move
stock, never count as fills and never appear in the controlled register. Rows
are permanent. ``source_ref`` ("pharmacy_dispense:42") makes a second import
skip what the first brought.
"""

from __future__ import annotations

import datetime as dt
import uuid

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, ChangeStamped, UUIDPk, utcnow


class LegacyPrescription(UUIDPk, ChangeStamped, Base):
    __tablename__ = "legacy_prescriptions"

    source_ref: Mapped[str] = mapped_column(sa.String(64), unique=True)
    patient_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("patients.id", ondelete="RESTRICT"), index=True)
    text: Mapped[str] = mapped_column(sa.Text)
    description: Mapped[str | None] = mapped_column(sa.Text)
    product_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("products.id", ondelete="RESTRICT"))
    prescribed_on: Mapped[dt.date | None] = mapped_column(sa.Date)
    imported_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class LegacyDispense(UUIDPk, ChangeStamped, Base):
    __tablename__ = "legacy_dispenses"

    source_ref: Mapped[str] = mapped_column(sa.String(64), unique=True)
    patient_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("patients.id", ondelete="RESTRICT"), index=True)
    product_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("products.id", ondelete="RESTRICT"))
    drug_text: Mapped[str] = mapped_column(sa.String(300))
    quantity: Mapped[int] = mapped_column(sa.Integer)
    instructions: Mapped[str | None] = mapped_column(sa.Text)
    dispensed_at: Mapped[dt.datetime | None] = mapped_column()
    imported_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
