"""licensed clinical knowledge imported into the pharmacy's database

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 12:30:00

``knowledge_imports`` keeps each imported knowledge file (today: a drug-drug
interaction knowledge base as CSV, docs/screening.md) as it was imported, with
its checksum, who imported it and when, so every workstation screens with the
same data. One import per kind is active; importing again or going back to the
shipped data deactivates it (rows are kept). Everybody signed in reads it; on
PostgreSQL administrators write it. The file's content is left out of the audit
rows (they record the file name, checksum and rule count).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from getmeds_desktop.migrations import sqlite_triggers

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

AUDITED = ("id", "kind", "file_name", "sha256", "rule_count", "source_label", "imported_at",
           "imported_by", "active")
GROUPS = ("admin", "pharmacist", "clerk", "doctor", "backup")


def upgrade() -> None:
    op.create_table(
        "knowledge_imports",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(12), nullable=False),
        sa.Column("file_name", sa.String(255), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("rule_count", sa.Integer(), nullable=False),
        sa.Column("source_label", sa.String(200), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("imported_by", sa.String(64), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.CheckConstraint("kind IN ('interactions')",
                           name=op.f("ck_knowledge_imports_knowledge_kind")),
        sa.CheckConstraint("rule_count >= 0", name=op.f("ck_knowledge_imports_rules_nonneg")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_knowledge_imports")),
    )
    op.create_index("ix_knowledge_imports_kind_active", "knowledge_imports",
                    ["kind", "active", "imported_at"])
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        prefix = bind.execute(sa.text("SELECT role_prefix FROM db_security")).scalar()
        if not prefix or not re.fullmatch(r"[a-z][a-z0-9_]{0,30}", prefix):
            raise RuntimeError(f"unexpected role prefix {prefix!r}")
        for group in GROUPS:
            exists = bind.execute(sa.text("SELECT 1 FROM pg_roles WHERE rolname = :r"),
                                  {"r": f"{prefix}{group}"}).scalar()
            if exists:
                op.execute(f'GRANT SELECT ON knowledge_imports TO "{prefix}{group}"')
        op.execute(f'GRANT INSERT, UPDATE (active) ON knowledge_imports TO "{prefix}admin"')
        args = "'id', 'content'"
        op.execute("CREATE TRIGGER knowledge_imports_audit_insert AFTER INSERT ON"
                   " knowledge_imports REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT"
                   f" EXECUTE FUNCTION getmeds_audit({args})")
        op.execute("CREATE TRIGGER knowledge_imports_audit_update AFTER UPDATE ON"
                   " knowledge_imports REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows"
                   f" FOR EACH STATEMENT EXECUTE FUNCTION getmeds_audit({args})")
        op.execute("CREATE TRIGGER knowledge_imports_audit_delete AFTER DELETE ON"
                   " knowledge_imports REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT"
                   f" EXECUTE FUNCTION getmeds_audit({args})")
    else:
        sqlite_triggers.audit("knowledge_imports", AUDITED)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        for action in ("insert", "update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS knowledge_imports_audit_{action}")
    op.drop_index("ix_knowledge_imports_kind_active", table_name="knowledge_imports")
    op.drop_table("knowledge_imports")
