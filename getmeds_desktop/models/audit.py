"""The audit trail (written by database triggers) and the log of client requests."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, BigIntPK, JSONType, utcnow


class AuditEntry(Base):
    """Who changed what, when, before and after. Insert-only, written by triggers.

    ``actor`` is the staff username the application declared for the transaction;
    ``db_user`` is the database session user, which a client cannot forge.
    """

    __tablename__ = "audit_log"
    __table_args__ = (
        sa.CheckConstraint("action IN ('INSERT', 'UPDATE', 'DELETE')", name="action_valid"),
        sa.Index("ix_audit_log_occurred_at", "occurred_at"),
        sa.Index("ix_audit_log_row", "table_name", "row_id"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    occurred_at: Mapped[dt.datetime] = mapped_column()
    actor: Mapped[str | None] = mapped_column(sa.String(63))
    db_user: Mapped[str] = mapped_column(sa.String(63))
    action: Mapped[str] = mapped_column(sa.String(6))
    table_name: Mapped[str] = mapped_column(sa.String(63))
    row_id: Mapped[str] = mapped_column(sa.String(64))
    before: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSONType)


class RequestLog(Base):
    """Client request ids of edits already applied, so a retry changes nothing."""

    __tablename__ = "request_log"

    request_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    operation: Mapped[str] = mapped_column(sa.String(60))
    entity_id: Mapped[str] = mapped_column(sa.String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ChangeTombstone(Base):
    """PostgreSQL: a row deleted from a replicated table (its table, primary key
    and the deleting transaction's id), written by trigger (migration 0026) so
    that replicas delete their copy. Empty in an embedded database."""

    __tablename__ = "change_tombstones"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    table_name: Mapped[str] = mapped_column(sa.String(63))
    row_key: Mapped[dict[str, Any]] = mapped_column(JSONType)
    change_xid: Mapped[int] = mapped_column(sa.BigInteger, index=True)
    deleted_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
