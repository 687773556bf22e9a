"""Staff accounts (the people who sign in) and their embedded-mode credentials."""

from __future__ import annotations

import datetime as dt
import uuid

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Base, ChangeStamped, UUIDPk, Versioned, str_enum, utcnow
from .enums import Role


class Staff(UUIDPk, Versioned, ChangeStamped, Base):
    __tablename__ = "staff"
    __table_args__ = (
        sa.CheckConstraint("length(username) >= 2", name="username_length"),
        sa.CheckConstraint("username = lower(username)", name="username_lowercase"),
        sa.CheckConstraint("length(full_name) > 0", name="full_name_present"),
        sa.CheckConstraint("dea_number IS NULL OR length(dea_number) = 9", name="dea_format"),
        sa.CheckConstraint("practice_role IS NULL OR (role = 'admin' AND practice_role IN "
                           "('pharmacist', 'technician', 'clerk'))", name="practice_role"),
    )

    username: Mapped[str] = mapped_column(sa.String(63), unique=True)
    full_name: Mapped[str] = mapped_column(sa.String(200))
    role: Mapped[Role] = mapped_column(str_enum(Role, "staff_role"))
    licence_number: Mapped[str | None] = mapped_column(sa.String(64))
    dea_number: Mapped[str | None] = mapped_column(sa.String(9))
    # A staff doctor writes prescriptions as this prescriber.
    prescriber_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("prescribers.id", ondelete="RESTRICT"), unique=True
    )
    active: Mapped[bool] = mapped_column(sa.Boolean, default=True)
    # an administrator who also works at the counter: pharmacist, technician or
    # clerk (0018); None: manages the pharmacy only
    practice_role: Mapped[str | None] = mapped_column(sa.String(10))

    prescriber = relationship("Prescriber", lazy="raise")


class StaffCredential(Base):
    """Embedded (SQLite) mode only: the argon2 hash of a staff member's password.

    Kept apart from ``staff`` so that the hash never appears in the audit log or
    in any query that lists staff. In PostgreSQL mode the server's own login
    roles hold the passwords and this table stays empty.
    """

    __tablename__ = "staff_credentials"

    staff_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("staff.id", ondelete="CASCADE"), primary_key=True
    )
    password_hash: Mapped[str] = mapped_column(sa.String(255))
    must_change: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    changed_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class LoginThrottle(Base):
    """Failed sign-ins per typed username (existing or not, so a lockout never
    reveals whether a username exists)."""

    __tablename__ = "login_throttle"
    __table_args__ = (sa.CheckConstraint("failed_attempts >= 0", name="failed_nonneg"),)

    username: Mapped[str] = mapped_column(sa.String(200), primary_key=True)
    failed_attempts: Mapped[int] = mapped_column(sa.Integer, default=0)
    locked_until: Mapped[dt.datetime | None]
    last_failure_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
