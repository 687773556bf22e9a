"""Reading the audit trail (administrators only)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from .. import db
from ..models import AuditEntry
from .context import Actor, Perm, require


@dataclasses.dataclass(frozen=True)
class AuditRow:
    id: int
    occurred_at: dt.datetime
    actor: str | None
    db_user: str
    action: str
    table_name: str
    row_id: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None

    def changed_fields(self) -> list[str]:
        if self.before is None or self.after is None:
            return sorted((self.after or self.before or {}).keys())
        return sorted(k for k in self.after if self.before.get(k) != self.after.get(k))


def audit_query(
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
    table: str | None = None,
    row_id: str | None = None,
) -> sa.Select[AuditEntry]:
    q = sa.select(AuditEntry).order_by(AuditEntry.id)
    if start is not None:
        q = q.where(AuditEntry.occurred_at >= start)
    if end is not None:
        q = q.where(AuditEntry.occurred_at < end)
    if table is not None:
        q = q.where(AuditEntry.table_name == table)
    if row_id is not None:
        q = q.where(AuditEntry.row_id == row_id)
    return q


def row_of(e: AuditEntry) -> AuditRow:
    return AuditRow(e.id, e.occurred_at, e.actor, e.db_user, e.action, e.table_name, e.row_id,
                    e.before, e.after)


def audit_trail(
    sf: sessionmaker[Session],
    actor: Actor,
    *,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
    table: str | None = None,
    row_id: str | None = None,
    limit: int = 1000,
) -> list[AuditRow]:
    require(actor, Perm.READ_AUDIT)
    with db.read_session(sf) as s:
        return [row_of(e) for e in s.scalars(audit_query(start, end, table, row_id).limit(limit))]
