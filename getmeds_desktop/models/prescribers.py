"""Prescribers: the doctors (mostly outside the pharmacy) who write prescriptions."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, ChangeStamped, UUIDPk, Versioned


class Prescriber(UUIDPk, Versioned, ChangeStamped, Base):
    __tablename__ = "prescribers"
    __table_args__ = (
        sa.CheckConstraint("length(last_name) > 0", name="last_name_present"),
        sa.CheckConstraint("npi IS NULL OR length(npi) = 10", name="npi_format"),
        sa.CheckConstraint("dea_number IS NULL OR length(dea_number) = 9", name="dea_format"),
        sa.CheckConstraint(
            "npi IS NOT NULL OR licence_number IS NOT NULL", name="npi_or_licence"
        ),
    )

    first_name: Mapped[str] = mapped_column(sa.String(100))
    last_name: Mapped[str] = mapped_column(sa.String(100))
    credentials: Mapped[str | None] = mapped_column(sa.String(20))  # MD, DO, NP, PA ...
    npi: Mapped[str | None] = mapped_column(sa.String(10), unique=True)
    licence_number: Mapped[str | None] = mapped_column(sa.String(64))
    dea_number: Mapped[str | None] = mapped_column(sa.String(9))
    phone: Mapped[str | None] = mapped_column(sa.String(32))
    address: Mapped[str | None] = mapped_column(sa.String(300))
    active: Mapped[bool] = mapped_column(sa.Boolean, default=True)

    @property
    def display_name(self) -> str:
        suffix = f", {self.credentials}" if self.credentials else ""
        return f"{self.first_name} {self.last_name}{suffix}".strip()
