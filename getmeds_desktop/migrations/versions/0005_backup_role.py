"""a read-only group role for backups

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 23:00:00

PostgreSQL only. ``<prefix>backup`` may read every table and sequence, and
row-level security shows it every row (``pg_dump --enable-row-security``), so
the backup login needs neither superuser nor BYPASSRLS (AWS RDS grants neither).
It can change nothing. IT makes the login with ``getmeds-admin backup
create-login`` (from the Secrets Manager secret the CloudFormation stack made).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RLS_TABLES = ("prescriptions", "stock_movements", "stock_lots", "dispenses")


def _prefix() -> str:
    prefix = op.get_bind().execute(sa.text("SELECT role_prefix FROM db_security")).scalar()
    if not prefix or not re.fullmatch(r"[a-z][a-z0-9_]{0,30}", prefix):
        raise RuntimeError(f"unexpected role prefix {prefix!r}")
    return prefix


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    role = f"{_prefix()}backup"
    op.execute(f"""
        DO $$ BEGIN
            IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{role}') THEN
                CREATE ROLE "{role}" NOLOGIN;
            END IF;
        END $$""")
    database = op.get_bind().execute(sa.text("SELECT current_database()")).scalar()
    schema = op.get_bind().execute(sa.text("SELECT current_schema()")).scalar()
    op.execute(f'GRANT CONNECT ON DATABASE "{database}" TO "{role}"')
    op.execute(f'GRANT USAGE ON SCHEMA "{schema}" TO "{role}"')
    op.execute(f'GRANT SELECT ON ALL TABLES IN SCHEMA "{schema}" TO "{role}"')
    op.execute(f'GRANT SELECT ON ALL SEQUENCES IN SCHEMA "{schema}" TO "{role}"')
    for table in RLS_TABLES:
        op.execute(f'CREATE POLICY backup_read ON {table} FOR SELECT TO "{role}" USING (true)')
    # An administrator may back up from the Administration screen with their
    # own login: pg_dump reads every table (the embedded-only ones are empty on
    # a server) and every sequence's position.
    admin = f"{_prefix()}admin"
    op.execute(f'GRANT SELECT ON staff_credentials, login_throttle TO "{admin}"')
    op.execute(f'GRANT SELECT ON ALL SEQUENCES IN SCHEMA "{schema}" TO "{admin}"')


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    role = f"{_prefix()}backup"
    for table in RLS_TABLES:
        op.execute(f"DROP POLICY IF EXISTS backup_read ON {table}")
    schema = op.get_bind().execute(sa.text("SELECT current_schema()")).scalar()
    op.execute(f'REVOKE ALL ON ALL TABLES IN SCHEMA "{schema}" FROM "{role}"')
    op.execute(f'REVOKE ALL ON ALL SEQUENCES IN SCHEMA "{schema}" FROM "{role}"')
    admin = f"{_prefix()}admin"
    op.execute(f'REVOKE SELECT ON staff_credentials, login_throttle FROM "{admin}"')
