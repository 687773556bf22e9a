"""the database enforces who may do what (PostgreSQL roles, grants, row-level security)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 22:00:00

PostgreSQL: four group roles (<prefix>admin, <prefix>pharmacist, <prefix>clerk,
<prefix>doctor; the prefix comes from ``getmeds-admin db upgrade --role-prefix``,
default "getmeds_"), GRANTs and row-level security that implement the
permission matrix, and SECURITY DEFINER functions that let an administrator
create, disable and reset staff logins without CREATEROLE. SQLite: only the
db_security table (the embedded mode enforces the matrix in the service layer).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

GROUPS = ("admin", "pharmacist", "clerk", "doctor")

ALL_TABLES = (
    "app_settings", "audit_log", "categories", "controlled_register", "db_security",
    "dispense_warnings", "dispenses", "login_throttle", "patient_allergies",
    "patient_conditions", "patient_feedback", "patients", "prescribers", "prescriptions",
    "product_drug_classes", "product_ingredients", "product_stock", "products", "request_log",
    "staff", "staff_credentials", "stock_lots", "stock_movements", "stocktake_lines",
    "stocktakes", "suppliers", "alembic_version",
)
# History: nobody updates or deletes these rows, administrators included.
PERMANENT = ("stock_movements", "dispenses", "dispense_warnings", "controlled_register",
             "audit_log")
# Written only by SECURITY DEFINER triggers.
TRIGGER_ONLY = ("controlled_register", "audit_log", "product_stock")
# Embedded mode only: no database role touches them.
EMBEDDED_ONLY = ("staff_credentials", "login_throttle")

PATIENT_TABLES = ("patients", "patient_allergies", "patient_conditions", "patient_feedback")
CATALOG_TABLES = ("categories", "suppliers", "products", "product_ingredients",
                  "product_drug_classes", "product_stock")

# (group, table, privileges). Row-level rules come on top (see _policies).
MATRIX: list[tuple[str, str, str]] = []


def _grant(groups: Sequence[str], tables: Sequence[str], privs: str) -> None:
    for g in groups:
        for t in tables:
            MATRIX.append((g, t, privs))


# everybody signed in reads the settings, the staff list and their own requests
_grant(GROUPS, ("app_settings", "staff", "db_security", "alembic_version"), "SELECT")
_grant(GROUPS, ("request_log",), "SELECT, INSERT")
# admin: everything but changing history
_grant(["admin"], [t for t in ALL_TABLES if t not in PERMANENT + TRIGGER_ONLY + EMBEDDED_ONLY
                   + ("alembic_version", "db_security", "stock_lots")],
       "SELECT, INSERT, UPDATE, DELETE")
_grant(["admin"], ("stock_lots",), "SELECT, INSERT")
_grant(["admin"], ("stock_movements", "dispenses", "dispense_warnings"), "SELECT, INSERT")
_grant(["admin"], ("controlled_register", "audit_log", "product_stock"), "SELECT")
# pharmacist: reads everything but the audit log
_grant(["pharmacist"], [t for t in ALL_TABLES if t not in ("audit_log",) + EMBEDDED_ONLY
                        + ("app_settings", "staff", "db_security", "alembic_version",
                           "request_log")], "SELECT")
_grant(["pharmacist"], PATIENT_TABLES + ("prescribers", "prescriptions", "stocktakes",
                                         "stocktake_lines"), "INSERT, UPDATE")
_grant(["pharmacist"], ("patient_allergies", "patient_conditions"), "DELETE")
_grant(["pharmacist"], ("dispenses", "dispense_warnings", "stock_movements", "stock_lots"),
       "INSERT")
# clerk: patients, prescribers, new prescriptions, receipts of ordinary products
_grant(["clerk"], PATIENT_TABLES + ("prescribers",) + CATALOG_TABLES + ("stock_lots",
                                                                      "prescriptions"),
       "SELECT")
_grant(["clerk"], PATIENT_TABLES + ("prescribers",), "INSERT, UPDATE")
_grant(["clerk"], ("patient_allergies", "patient_conditions"), "DELETE")
_grant(["clerk"], ("prescriptions", "stock_lots", "stock_movements"), "INSERT")
# Whether a prescription has been filled (its fills and refills left) is part of
# reading prescriptions; row-level security limits a doctor to their own.
_grant(["clerk", "doctor"], ("dispenses",), "SELECT")
# doctor: reads patients, products and stock on hand; writes own prescriptions
_grant(["doctor"], ("patients", "patient_allergies", "patient_conditions", "prescribers")
       + CATALOG_TABLES + ("prescriptions",), "SELECT")
_grant(["doctor"], ("prescriptions",), "INSERT, UPDATE")

# Column-level: nobody writes the balance caches; lot changes are status only.
LOT_STATUS_COLUMNS = "status, status_reason, updated_at, updated_by, version"


def _prefix() -> str:
    bind = op.get_bind()
    value = bind.execute(sa.text("SELECT current_setting('getmeds.role_prefix', true)")).scalar()
    prefix = value or "getmeds_"
    if not re.fullmatch(r"[a-z][a-z0-9_]{0,30}", prefix):
        raise RuntimeError(f"role prefix {prefix!r}: lower-case letters, digits and _ only")
    return prefix


def upgrade() -> None:
    op.create_table(
        "db_security",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("role_prefix", sa.String(length=40), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_db_security_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_db_security")),
    )
    if op.get_bind().dialect.name != "postgresql":
        op.execute("INSERT INTO db_security (id, role_prefix) VALUES (1, 'getmeds_')")
        return
    p = _prefix()
    op.execute(sa.text("INSERT INTO db_security (id, role_prefix) VALUES (1, :p)").bindparams(
        p=p))
    g = {name: f"{p}{name}" for name in GROUPS}
    for role in g.values():
        op.execute(f"""
            DO $$ BEGIN
                IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{role}') THEN
                    CREATE ROLE "{role}" NOLOGIN;
                END IF;
            END $$""")
    db = op.get_bind().execute(sa.text("SELECT current_database()")).scalar()
    schema = op.get_bind().execute(sa.text("SELECT current_schema()")).scalar()
    everyone = ", ".join(f'"{r}"' for r in g.values())
    op.execute(f'GRANT CONNECT ON DATABASE "{db}" TO {everyone}')
    op.execute(f'GRANT USAGE ON SCHEMA "{schema}" TO {everyone}')
    op.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA \"{schema}\" FROM PUBLIC")
    op.execute("REVOKE ALL ON SEQUENCE rx_number_seq FROM PUBLIC")
    op.execute(f'GRANT USAGE ON SEQUENCE rx_number_seq TO "{g["admin"]}", '
               f'"{g["pharmacist"]}", "{g["clerk"]}", "{g["doctor"]}"')
    for group, table, privs in MATRIX:
        op.execute(f'GRANT {privs} ON "{table}" TO "{g[group]}"')
    op.execute(f'GRANT UPDATE ({LOT_STATUS_COLUMNS}) ON stock_lots TO "{g["admin"]}", '
               f'"{g["pharmacist"]}"')
    _functions(g)
    _policies(g)


def _functions(g: dict[str, str]) -> None:
    groups_array = "ARRAY[" + ", ".join(f"'{r}'" for r in g.values()) + "]"
    # Staff logins, for administrators without CREATEROLE. The verifier is a
    # SCRAM hash made by the client: the password never reaches the server.
    op.execute(f"""
        CREATE FUNCTION getmeds_create_login(login text, verifier text, grp text)
        RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
        BEGIN
            IF NOT pg_has_role(session_user, '{g["admin"]}', 'MEMBER') THEN
                RAISE EXCEPTION 'only GetMeds administrators manage staff logins'
                    USING ERRCODE = 'insufficient_privilege';
            END IF;
            IF grp <> ALL({groups_array}) THEN
                RAISE EXCEPTION 'not a GetMeds group: %', grp;
            END IF;
            IF login !~ '^[a-z][a-z0-9._-]{{1,62}}$' THEN
                RAISE EXCEPTION 'not a valid login name: %', login;
            END IF;
            IF verifier !~ '^SCRAM-SHA-256\\$' THEN
                RAISE EXCEPTION 'the password must arrive as a SCRAM verifier';
            END IF;
            IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = login) THEN
                RAISE EXCEPTION 'a database role named % already exists', login
                    USING ERRCODE = 'duplicate_object';
            END IF;
            EXECUTE format('CREATE ROLE %I LOGIN PASSWORD %L IN ROLE %I', login, verifier, grp);
        END $$""")
    op.execute(f"""
        CREATE FUNCTION getmeds_alter_login(login text, verifier text, can_login boolean)
        RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
        BEGIN
            IF NOT pg_has_role(session_user, '{g["admin"]}', 'MEMBER') THEN
                RAISE EXCEPTION 'only GetMeds administrators manage staff logins'
                    USING ERRCODE = 'insufficient_privilege';
            END IF;
            IF NOT EXISTS (
                SELECT 1 FROM pg_auth_members m
                JOIN pg_roles r ON r.oid = m.roleid
                JOIN pg_roles u ON u.oid = m.member
                WHERE u.rolname = login AND r.rolname = ANY({groups_array})) THEN
                RAISE EXCEPTION '% is not a GetMeds staff login', login
                    USING ERRCODE = 'insufficient_privilege';
            END IF;
            IF verifier IS NOT NULL THEN
                IF verifier !~ '^SCRAM-SHA-256\\$' THEN
                    RAISE EXCEPTION 'the password must arrive as a SCRAM verifier';
                END IF;
                EXECUTE format('ALTER ROLE %I PASSWORD %L', login, verifier);
            END IF;
            IF can_login IS NOT NULL THEN
                EXECUTE format('ALTER ROLE %I %s', login,
                               CASE WHEN can_login THEN 'LOGIN' ELSE 'NOLOGIN' END);
            END IF;
        END $$""")
    op.execute("REVOKE ALL ON FUNCTION getmeds_create_login(text, text, text) FROM PUBLIC")
    op.execute("REVOKE ALL ON FUNCTION getmeds_alter_login(text, text, boolean) FROM PUBLIC")
    op.execute(f'GRANT EXECUTE ON FUNCTION getmeds_create_login(text, text, text) '
               f'TO "{g["admin"]}"')
    op.execute(f'GRANT EXECUTE ON FUNCTION getmeds_alter_login(text, text, boolean) '
               f'TO "{g["admin"]}"')
    # Row-level helpers: who the signed-in staff member is.
    op.execute("""
        CREATE FUNCTION getmeds_current_staff() RETURNS uuid
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path FROM CURRENT AS $$
            SELECT id FROM staff WHERE username = session_user AND active
        $$""")
    op.execute("""
        CREATE FUNCTION getmeds_current_prescriber() RETURNS uuid
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path FROM CURRENT AS $$
            SELECT prescriber_id FROM staff WHERE username = session_user AND active
        $$""")
    op.execute("""
        CREATE FUNCTION getmeds_product_controlled(product uuid) RETURNS boolean
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path FROM CURRENT AS $$
            SELECT schedule <> 'none' FROM products WHERE id = product
        $$""")
    op.execute("""
        CREATE FUNCTION getmeds_lot_controlled(lot uuid) RETURNS boolean
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path FROM CURRENT AS $$
            SELECT p.schedule <> 'none' FROM stock_lots l JOIN products p ON p.id = l.product_id
             WHERE l.id = lot
        $$""")


def _policies(g: dict[str, str]) -> None:
    admin, pharm, clerk, doctor = (f'"{g[x]}"' for x in GROUPS)
    for table in ("prescriptions", "stock_movements", "stock_lots", "dispenses"):
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
    me = "getmeds_current_prescriber()"
    statements = [
        # prescriptions
        f"CREATE POLICY rx_read ON prescriptions FOR SELECT TO {admin}, {pharm}, {clerk} "
        "USING (true)",
        f"CREATE POLICY rx_read_own ON prescriptions FOR SELECT TO {doctor} "
        f"USING (prescriber_id = {me})",
        f"CREATE POLICY rx_insert ON prescriptions FOR INSERT TO {admin}, {pharm} "
        "WITH CHECK (true)",
        f"CREATE POLICY rx_insert_clerk ON prescriptions FOR INSERT TO {clerk} "
        "WITH CHECK (status = 'new')",
        f"CREATE POLICY rx_insert_doctor ON prescriptions FOR INSERT TO {doctor} "
        f"WITH CHECK (status = 'new' AND prescriber_id = {me} "
        "AND created_by = getmeds_current_staff())",
        f"CREATE POLICY rx_update ON prescriptions FOR UPDATE TO {admin}, {pharm} "
        "USING (true) WITH CHECK (true)",
        f"CREATE POLICY rx_update_doctor ON prescriptions FOR UPDATE TO {doctor} "
        f"USING (status = 'new' AND prescriber_id = {me}) "
        f"WITH CHECK (prescriber_id = {me} AND status IN ('new', 'cancelled'))",
        # fills
        f"CREATE POLICY dsp_read ON dispenses FOR SELECT TO {admin}, {pharm}, {clerk} "
        "USING (true)",
        f"CREATE POLICY dsp_read_own ON dispenses FOR SELECT TO {doctor} "
        "USING (prescription_id IN (SELECT id FROM prescriptions))",
        f"CREATE POLICY dsp_insert ON dispenses FOR INSERT TO {admin}, {pharm} "
        "WITH CHECK (true)",
        # the ledger
        f"CREATE POLICY mv_read ON stock_movements FOR SELECT TO {admin}, {pharm}, {clerk} "
        "USING (true)",
        f"CREATE POLICY mv_insert ON stock_movements FOR INSERT TO {admin}, {pharm} "
        "WITH CHECK (true)",
        f"CREATE POLICY mv_insert_clerk ON stock_movements FOR INSERT TO {clerk} "
        "WITH CHECK (kind = 'receipt' AND NOT getmeds_lot_controlled(lot_id))",
        # lots
        f"CREATE POLICY lot_read ON stock_lots FOR SELECT TO {admin}, {pharm}, {clerk} "
        "USING (true)",
        f"CREATE POLICY lot_insert ON stock_lots FOR INSERT TO {admin}, {pharm} "
        "WITH CHECK (true)",
        f"CREATE POLICY lot_insert_clerk ON stock_lots FOR INSERT TO {clerk} "
        "WITH CHECK (NOT getmeds_product_controlled(product_id))",
        f"CREATE POLICY lot_update ON stock_lots FOR UPDATE TO {admin}, {pharm} "
        "USING (true) WITH CHECK (true)",
    ]
    for statement in statements:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in ("prescriptions", "stock_movements", "stock_lots", "dispenses"):
            op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
            for pol in op.get_bind().execute(sa.text(
                    "SELECT policyname FROM pg_policies WHERE tablename = :t"), {"t": table}
                    ).scalars().all():
                op.execute(f"DROP POLICY {pol} ON {table}")
        for fn in ("getmeds_create_login(text, text, text)",
                   "getmeds_alter_login(text, text, boolean)", "getmeds_current_staff()",
                   "getmeds_current_prescriber()", "getmeds_product_controlled(uuid)",
                   "getmeds_lot_controlled(uuid)"):
            op.execute(f"DROP FUNCTION IF EXISTS {fn}")
        # group roles are server-wide and may serve other databases: left in place
    op.drop_table("db_security")
