"""the database boundary holds against a hostile staff login

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28 00:00:00

PostgreSQL only (the embedded database has no logins; SQLite gets nothing).

* Every function of ours (SECURITY DEFINER, trigger and helper functions) pins
  ``search_path = pg_catalog, <schema>, pg_temp`` (pg_temp explicitly last) and
  schema-qualifies every table, function and catalog it names, so temporary
  tables can no longer stand in for audit_log, products, staff, pg_roles, ...
* CONNECT and TEMPORARY on the database are revoked from PUBLIC; CONNECT is
  granted to this pharmacy's group roles (and the backup role) only
  (``getmeds_restrict_database()``, which the owner runs again after creating a
  database from a template or restoring a dump into a new one, since database
  privileges are not copied).
* Notifications carry only the changed row's table and id
  (``{"t": ..., "id": ..., "op": ...}``); clients look up the rest under their
  own privileges.
* Identity comes from the login: for every session that is not the database
  owner (or a superuser), the "who did it" columns must be the signed-in staff
  member's id (a mismatch is refused), ``updated_by`` is stamped with the login,
  and the audit actor is the login (``getmeds.actor`` is honoured only for the
  owner's own maintenance sessions).
* A dispense is refused when written against a cancelled or held
  prescription, and checked at commit (a deferred constraint trigger): its
  prescription is not cancelled or on hold, a refill is within the refills
  authorised, its quantity does not exceed what remains, its movements sum to
  its quantity from lots of the prescribed product, and its pharmacist is the
  signed-in staff member.
* Logins: ``getmeds_add_staff`` creates the staff row and its login in one
  call; ``getmeds_create_login`` only gives an existing staff member a login;
  verifiers are validated in full; creating, resetting, enabling and disabling
  logins write audit rows; the membership checks read pg_catalog only and touch
  roles of this pharmacy's groups only.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

GROUPS = ("admin", "pharmacist", "clerk", "doctor")
CHANNEL = "getmeds_changes"
MANY = 100


class _Names:
    """What the SQL below needs to know about this database."""

    def __init__(self, prefix: str, schema: str) -> None:
        self.prefix = prefix
        self.schema = schema

    def sql(self, text: str) -> str:
        groups = "ARRAY[" + ", ".join(f"'{self.prefix}{g}'" for g in GROUPS) + "]::text[]"
        out = text.replace("@path", f'SET search_path = pg_catalog, "{self.schema}", pg_temp')
        out = out.replace("@groups", groups).replace("@prefix", f"'{self.prefix}'")
        for g in (*GROUPS, "backup"):
            out = out.replace(f"@g_{g}", f"'{self.prefix}{g}'")
        return out.replace("@s.", f'"{self.schema}".')


def _names() -> _Names:
    bind = op.get_bind()
    prefix = bind.execute(sa.text("SELECT role_prefix FROM db_security")).scalar()
    if not prefix or not re.fullmatch(r"[a-z][a-z0-9_]{0,30}", prefix):
        raise RuntimeError(f"unexpected role prefix {prefix!r}")
    schema = bind.execute(sa.text("SELECT current_schema()")).scalar()
    if not schema or not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", schema):
        raise RuntimeError(f"unexpected schema name {schema!r}")
    return _Names(prefix, schema)


def _run(n: _Names, *statements: str) -> None:
    for statement in statements:
        op.execute(n.sql(statement))


# ---------------------------------------------------------------- helpers

# Is this session the database owner's (a login with the owner role's
# privileges, or a superuser)? Those run migrations, imports and getmeds-admin,
# and may label their audit rows themselves. Every other session is held to its
# login. pg_database_owner (PostgreSQL 14+) stands for the current database's
# owner; asking for it reads no table, which matters because the identity
# triggers ask once per row, bulk loads included.
TRUSTED = r"""
CREATE OR REPLACE FUNCTION @s.getmeds_trusted_session() RETURNS boolean
LANGUAGE plpgsql STABLE @path AS $body$
BEGIN
    RETURN pg_catalog.pg_has_role(session_user, 'pg_database_owner', 'USAGE');
END $body$
"""

# SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>, base64; anything
# else would be taken by the server as a plain-text password.
CHECK_VERIFIER = r"""
CREATE OR REPLACE FUNCTION @s.getmeds_check_verifier(verifier text) RETURNS void
LANGUAGE plpgsql IMMUTABLE @path AS $body$
DECLARE
    part text[] := pg_catalog.regexp_match(verifier,
        '^SCRAM-SHA-256\$([0-9]{1,10}):([A-Za-z0-9+/]+={0,2})'
        || '\$([A-Za-z0-9+/]{43}=):([A-Za-z0-9+/]{43}=)$');
BEGIN
    IF part IS NULL
       OR part[1]::bigint NOT BETWEEN 4096 AND 2147483647
       OR pg_catalog.length(part[2]) % 4 <> 0
       OR pg_catalog.length(pg_catalog.decode(part[2], 'base64')) < 8
       OR pg_catalog.length(pg_catalog.decode(part[3], 'base64')) <> 32
       OR pg_catalog.length(pg_catalog.decode(part[4], 'base64')) <> 32 THEN
        RAISE EXCEPTION 'the password must arrive as a SCRAM-SHA-256 verifier '
            '(SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>, base64, at least '
            '4096 iterations); this one is missing or malformed'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
END $body$
"""

# Database-level privileges are not copied by CREATE DATABASE ... TEMPLATE nor
# restored by pg_restore: the owner runs this again on such a copy.
RESTRICT_DATABASE = r"""
CREATE OR REPLACE FUNCTION @s.getmeds_restrict_database() RETURNS void
LANGUAGE plpgsql @path AS $body$
DECLARE
    db text := pg_catalog.current_database();
    groups text := pg_catalog.format('%I, %I, %I, %I, %I', @g_admin, @g_pharmacist,
                                     @g_clerk, @g_doctor, @g_backup);
BEGIN
    EXECUTE pg_catalog.format('REVOKE CONNECT, TEMPORARY ON DATABASE %I FROM PUBLIC', db);
    EXECUTE pg_catalog.format('REVOKE TEMPORARY ON DATABASE %I FROM %s', db, groups);
    EXECUTE pg_catalog.format('GRANT CONNECT ON DATABASE %I TO %s', db, groups);
    EXECUTE pg_catalog.format('REVOKE CREATE ON SCHEMA %I FROM PUBLIC', '@schema');
END $body$
"""

# The audit actor: the owner's sessions may label themselves (getmeds.actor);
# every other session is its login.
WHO = ("CASE WHEN @s.getmeds_trusted_session()"
       " THEN nullif(pg_catalog.current_setting('getmeds.actor', true), '')"
       " ELSE session_user::text END")

# ------------------------------------------------------ recreated: 0001

FORBID_CHANGE = r"""
CREATE OR REPLACE FUNCTION @s.getmeds_forbid_change() RETURNS trigger
LANGUAGE plpgsql @path AS $body$
BEGIN
    RAISE EXCEPTION 'rows of % are permanent records and cannot be changed or removed',
        TG_TABLE_NAME
        USING ERRCODE = 'integrity_constraint_violation',
              HINT = 'Correct a mistake with a new entry.';
END $body$
"""

PRODUCT_STOCK_ROW = r"""
CREATE OR REPLACE FUNCTION @s.getmeds_product_stock_row() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER @path AS $body$
BEGIN
    INSERT INTO @s.product_stock (product_id, on_hand)
    SELECT id, 0 FROM new_products
    ON CONFLICT (product_id) DO NOTHING;
    RETURN NULL;
END $body$
"""

APPLY_MOVEMENTS = r"""
CREATE OR REPLACE FUNCTION @s.getmeds_apply_movements() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER @path AS $body$
BEGIN
    UPDATE @s.stock_lots AS l
       SET on_hand = l.on_hand + d.q
      FROM (SELECT lot_id, pg_catalog.sum(quantity) AS q
              FROM new_movements GROUP BY lot_id) AS d
     WHERE l.id = d.lot_id;

    UPDATE @s.product_stock AS ps
       SET on_hand = ps.on_hand + d.q,
           nearest_expiry = (SELECT pg_catalog.min(x.expiry_date) FROM @s.stock_lots AS x
                              WHERE x.product_id = d.product_id AND x.on_hand > 0)
      FROM (SELECT l.product_id, pg_catalog.sum(m.quantity) AS q
              FROM new_movements AS m JOIN @s.stock_lots AS l ON l.id = m.lot_id
             GROUP BY l.product_id) AS d
     WHERE ps.product_id = d.product_id;

    INSERT INTO @s.controlled_register
           (movement_id, product_id, lot_id, schedule, register, kind,
            quantity, balance_after, staff_id, recorded_at)
    SELECT m.id, l.product_id, m.lot_id, p.schedule,
           CASE WHEN p.schedule = 'II' THEN 'II' ELSE 'III-V' END,
           m.kind, m.quantity,
           ps.on_hand - coalesce(pg_catalog.sum(m.quantity) OVER (
               PARTITION BY l.product_id ORDER BY m.created_at, m.id
               ROWS BETWEEN 1 FOLLOWING AND UNBOUNDED FOLLOWING), 0),
           m.staff_id, m.created_at
      FROM new_movements AS m
      JOIN @s.stock_lots AS l ON l.id = m.lot_id
      JOIN @s.products AS p ON p.id = l.product_id
      JOIN @s.product_stock AS ps ON ps.product_id = l.product_id
     WHERE p.schedule <> 'none'
     ORDER BY l.product_id, m.created_at, m.id;
    RETURN NULL;
END $body$
"""

AUDIT = r"""
CREATE OR REPLACE FUNCTION @s.getmeds_audit() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER @path AS $body$
DECLARE
    who text := @who;
    key text := TG_ARGV[0];
    skip text[] := coalesce(TG_ARGV[1:], '{}');
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO @s.audit_log (occurred_at, actor, db_user, action, table_name,
                                  row_id, before, after)
        SELECT pg_catalog.now(), who, session_user, 'INSERT', TG_TABLE_NAME,
               n.j ->> key, NULL, n.j
          FROM (SELECT pg_catalog.to_jsonb(t) - skip AS j FROM new_rows AS t) AS n;
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO @s.audit_log (occurred_at, actor, db_user, action, table_name,
                                  row_id, before, after)
        SELECT pg_catalog.now(), who, session_user, 'UPDATE', TG_TABLE_NAME,
               n.j ->> key, o.j, n.j
          FROM (SELECT pg_catalog.to_jsonb(t) - skip AS j FROM old_rows AS t) AS o
          JOIN (SELECT pg_catalog.to_jsonb(t) - skip AS j FROM new_rows AS t) AS n
            ON (o.j ->> key) = (n.j ->> key)
         WHERE o.j IS DISTINCT FROM n.j;
    ELSE
        INSERT INTO @s.audit_log (occurred_at, actor, db_user, action, table_name,
                                  row_id, before, after)
        SELECT pg_catalog.now(), who, session_user, 'DELETE', TG_TABLE_NAME,
               o.j ->> key, o.j, NULL
          FROM (SELECT pg_catalog.to_jsonb(t) - skip AS j FROM old_rows AS t) AS o;
    END IF;
    RETURN NULL;
END $body$
"""

AUDIT_ROW = r"""
CREATE OR REPLACE FUNCTION @s.getmeds_audit_row() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER @path AS $body$
DECLARE
    skip text[] := coalesce(TG_ARGV[1:], '{}');
    o jsonb := pg_catalog.to_jsonb(OLD) - skip;
    n jsonb := pg_catalog.to_jsonb(NEW) - skip;
BEGIN
    IF o IS DISTINCT FROM n THEN
        INSERT INTO @s.audit_log (occurred_at, actor, db_user, action, table_name,
                                  row_id, before, after)
        VALUES (pg_catalog.now(), @who, session_user, 'UPDATE', TG_TABLE_NAME,
                n ->> TG_ARGV[0], o, n);
    END IF;
    RETURN NULL;
END $body$
"""

# ------------------------------------------------------ recreated: 0003

# Only an administrator (an active admin staff member whose login has the
# admin group's privileges) or the owner's session manages logins.
MANAGER_CHECK = r"""
    IF NOT @s.getmeds_trusted_session() AND NOT (
           pg_catalog.pg_has_role(session_user, @g_admin, 'USAGE')
           AND EXISTS (SELECT 1 FROM @s.staff AS st
                        WHERE st.username = session_user AND st.active
                          AND st.role = 'admin')) THEN
        RAISE EXCEPTION 'only GetMeds administrators manage staff logins'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
"""

LOGIN_NAME_CHECK = r"""
    IF login IS NULL OR login !~ '^[a-z][a-z0-9._-]{1,62}$' THEN
        RAISE EXCEPTION 'not a valid login name: %', login
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles AS r WHERE r.rolname = login) THEN
        RAISE EXCEPTION 'a database role named % already exists', login
            USING ERRCODE = 'duplicate_object';
    END IF;
"""

LOGIN_AUDIT = r"""
    INSERT INTO @s.audit_log (occurred_at, actor, db_user, action, table_name, row_id,
                              before, after)
    VALUES (pg_catalog.now(), @who, session_user, {action}, 'db_logins', login,
            {before}, {after});
"""


def _login_audit(action: str, before: str, after: str) -> str:
    return LOGIN_AUDIT.format(action=action, before=before, after=after)


CREATE_LOGIN = r"""
CREATE OR REPLACE FUNCTION @s.getmeds_create_login(login text, verifier text, grp text)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER @path AS $body$
BEGIN
@manager
    IF grp IS NULL OR grp <> ALL (@groups) THEN
        RAISE EXCEPTION 'not a GetMeds group: %', grp
            USING ERRCODE = 'insufficient_privilege';
    END IF;
@login_name
    PERFORM @s.getmeds_check_verifier(verifier);
    -- a login only for an existing staff member of that role: never a "ghost"
    IF NOT EXISTS (SELECT 1 FROM @s.staff AS st
                    WHERE st.username = login AND st.active
                      AND @prefix || st.role = grp) THEN
        RAISE EXCEPTION 'there is no active staff member % with the role of %: add staff '
            'with getmeds_add_staff', login, grp
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    EXECUTE pg_catalog.format('CREATE ROLE %I LOGIN PASSWORD %L IN ROLE %I',
                              login, verifier, grp);
@audit
END $body$
"""

ADD_STAFF = r"""
CREATE OR REPLACE FUNCTION @s.getmeds_add_staff(
    new_id uuid, login text, verifier text, grp text, name text,
    licence text DEFAULT NULL, dea text DEFAULT NULL, prescriber uuid DEFAULT NULL)
RETURNS uuid LANGUAGE plpgsql SECURITY DEFINER @path AS $body$
DECLARE
    sid uuid := coalesce(new_id, pg_catalog.gen_random_uuid());
    staff_role text := CASE grp WHEN @g_admin THEN 'admin'
                                WHEN @g_pharmacist THEN 'pharmacist'
                                WHEN @g_clerk THEN 'clerk'
                                WHEN @g_doctor THEN 'doctor' END;
BEGIN
@manager
    IF staff_role IS NULL THEN
        RAISE EXCEPTION 'not a GetMeds group: %', grp
            USING ERRCODE = 'insufficient_privilege';
    END IF;
@login_name
    PERFORM @s.getmeds_check_verifier(verifier);
    INSERT INTO @s.staff (id, username, full_name, role, licence_number, dea_number,
                          prescriber_id, active, created_at, updated_at, updated_by, version)
    VALUES (sid, login, name, staff_role, licence, dea, prescriber, true, pg_catalog.now(),
            pg_catalog.now(), @who, 1);
    EXECUTE pg_catalog.format('CREATE ROLE %I LOGIN PASSWORD %L IN ROLE %I',
                              login, verifier, grp);
@audit
    RETURN sid;
END $body$
"""

# The target of a reset or (de)activation: a role that is a member of one of
# this pharmacy's groups and of nothing else, with no special attributes, not
# the owner, and with a staff row. Read from pg_catalog only.
ALTER_LOGIN = r"""
CREATE OR REPLACE FUNCTION @s.getmeds_alter_login(login text, verifier text, can_login boolean)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER @path AS $body$
DECLARE
    target oid;
    special boolean;
    was_login boolean;
BEGIN
@manager
    SELECT r.oid, r.rolsuper OR r.rolcreaterole OR r.rolcreatedb OR r.rolreplication
                  OR r.rolbypassrls, r.rolcanlogin
      INTO target, special, was_login
      FROM pg_catalog.pg_roles AS r WHERE r.rolname = login;
    IF target IS NULL OR special
       OR NOT EXISTS (SELECT 1 FROM pg_catalog.pg_auth_members AS m
                        JOIN pg_catalog.pg_roles AS g ON g.oid = m.roleid
                       WHERE m.member = target AND g.rolname = ANY (@groups))
       OR EXISTS (SELECT 1 FROM pg_catalog.pg_auth_members AS m
                    JOIN pg_catalog.pg_roles AS g ON g.oid = m.roleid
                   WHERE m.member = target AND g.rolname <> ALL (@groups))
       OR pg_catalog.pg_has_role(target, 'pg_database_owner', 'USAGE')
       OR NOT EXISTS (SELECT 1 FROM @s.staff AS st WHERE st.username = login) THEN
        RAISE EXCEPTION '% is not a GetMeds staff login of this pharmacy', login
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF verifier IS NULL AND can_login IS NULL THEN
        RAISE EXCEPTION 'nothing to change: give a SCRAM verifier, can_login, or both'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF verifier IS NOT NULL THEN
        PERFORM @s.getmeds_check_verifier(verifier);
        EXECUTE pg_catalog.format('ALTER ROLE %I PASSWORD %L', login, verifier);
    END IF;
    IF can_login IS NOT NULL THEN
        EXECUTE pg_catalog.format('ALTER ROLE %I %s', login,
                                  CASE WHEN can_login THEN 'LOGIN' ELSE 'NOLOGIN' END);
    END IF;
@audit
END $body$
"""

CURRENT_STAFF = r"""
CREATE OR REPLACE FUNCTION @s.getmeds_current_staff() RETURNS uuid
LANGUAGE sql STABLE SECURITY DEFINER @path AS $body$
    SELECT st.id FROM @s.staff AS st WHERE st.username = session_user AND st.active
$body$
"""

CURRENT_PRESCRIBER = r"""
CREATE OR REPLACE FUNCTION @s.getmeds_current_prescriber() RETURNS uuid
LANGUAGE sql STABLE SECURITY DEFINER @path AS $body$
    SELECT st.prescriber_id FROM @s.staff AS st WHERE st.username = session_user AND st.active
$body$
"""

PRODUCT_CONTROLLED = r"""
CREATE OR REPLACE FUNCTION @s.getmeds_product_controlled(product uuid) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER @path AS $body$
    SELECT p.schedule <> 'none' FROM @s.products AS p WHERE p.id = product
$body$
"""

LOT_CONTROLLED = r"""
CREATE OR REPLACE FUNCTION @s.getmeds_lot_controlled(lot uuid) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER @path AS $body$
    SELECT p.schedule <> 'none'
      FROM @s.stock_lots AS l JOIN @s.products AS p ON p.id = l.product_id
     WHERE l.id = lot
$body$
"""

# ------------------------------------------------------ recreated: 0004

# table -> (the table screens know it as, SQL giving "id" for each row of the
# transition table "rows"). The id is the changed row's own, except for a
# patient's allergies and conditions, which are part of the patient record:
# they name the patient (a row every group may read), so that a removed
# allergy still says whose record changed.
NOTIFY_IDS = {
    "patients": ("patients", "SELECT r.id AS id FROM rows AS r"),
    "patient_allergies": ("patients", "SELECT DISTINCT r.patient_id AS id FROM rows AS r"),
    "patient_conditions": ("patients", "SELECT DISTINCT r.patient_id AS id FROM rows AS r"),
    "products": ("products", "SELECT r.id AS id FROM rows AS r"),
    "stock_lots": ("stock_lots", "SELECT r.id AS id FROM rows AS r"),
    "stock_movements": ("stock_movements", "SELECT r.id AS id FROM rows AS r"),
    "prescriptions": ("prescriptions", "SELECT r.id AS id FROM rows AS r"),
    "dispenses": ("dispenses", "SELECT r.id AS id FROM rows AS r"),
}
# A lot's on-hand figure changes with every movement, and the movement is
# announced: an UPDATE of stock_lots that changes nothing else is not.
LOT_UPDATE_IDS = (
    "SELECT r.id AS id FROM rows AS r JOIN old_rows AS o ON o.id = r.id"
    " WHERE (r.status, r.status_reason, r.lot_number, r.expiry_date, r.unit_cost,"
    " r.supplier_id, r.version) IS DISTINCT FROM (o.status, o.status_reason, o.lot_number,"
    " o.expiry_date, o.unit_cost, o.supplier_id, o.version)")


def _notify(table: str, name: str | None = None, select: str | None = None) -> str:
    shown_as, default_select = NOTIFY_IDS[table]
    return f"""
CREATE OR REPLACE FUNCTION @s.{name or f"getmeds_notify_{table}"}() RETURNS trigger
LANGUAGE plpgsql SECURITY INVOKER @path AS $body$
DECLARE
    n integer;
    rec record;
BEGIN
    SELECT pg_catalog.count(*) INTO n FROM (SELECT 1 FROM rows LIMIT {MANY + 1}) AS x;
    IF n > {MANY} THEN
        PERFORM pg_catalog.pg_notify('{CHANNEL}', pg_catalog.jsonb_build_object(
            't', '{shown_as}', 'op', pg_catalog.lower(TG_OP), 'all', true)::text);
        RETURN NULL;
    END IF;
    FOR rec IN {select or default_select} LOOP
        PERFORM pg_catalog.pg_notify('{CHANNEL}', pg_catalog.jsonb_build_object(
            't', '{shown_as}', 'op', pg_catalog.lower(TG_OP), 'id', rec.id)::text);
    END LOOP;
    RETURN NULL;
END $body$
"""


# ------------------------------------------------------ new: identity

# Staff-id columns: on INSERT they must name the signed-in staff member ("me"),
# or be NULL where the column allows it ("me_or_null"); on UPDATE a column that
# records an earlier act cannot change ("fixed"), and one that records this
# change, if it changes, must be NULL or me ("changed"). "stamp": updated_by is
# set to the login. A mismatch is refused, not silently corrected: the app
# always sends the signed-in member's id, so a mismatch is a forgery or a bug,
# and the register and the audit trail must never record a quietly rewritten
# "who".
IDENTITY: dict[str, dict[str, tuple[str, ...] | bool]] = {
    "stock_movements": {"me": ("staff_id",)},
    "dispense_warnings": {"me": ("acknowledged_by",)},
    "prescriptions": {"me": ("created_by",), "fixed": ("created_by",), "stamp": True},
    "stocktakes": {"me": ("started_by",), "me_or_null": ("posted_by",),
                   "fixed": ("started_by",), "changed": ("posted_by",), "stamp": True},
    "stocktake_lines": {"me_or_null": ("counted_by",), "changed": ("counted_by",)},
    "patient_feedback": {"me_or_null": ("received_by", "replied_by"),
                         "fixed": ("received_by",), "changed": ("replied_by",),
                         "stamp": True},
}
# Tables whose only identity column is updated_by (a label stamped from the
# login): (table, columns whose UPDATE fires the trigger, or None for all).
STAMPED = {
    "app_settings": None, "patients": None, "prescribers": None, "suppliers": None,
    "products": None,
    # not on the on_hand cache updates of the ledger trigger
    "stock_lots": ("product_id", "lot_number", "expiry_date", "status", "status_reason",
                   "received_at", "supplier_id", "unit_cost", "created_at", "updated_at",
                   "updated_by", "version"),
}

ME = ("SELECT st.id INTO me FROM @s.staff AS st"
      " WHERE st.username = session_user AND st.active;")

# Prescriptions: a cancelled prescription stays cancelled, and what was
# prescribed cannot change once it has been dispensed (the dispense checks
# below measure "what remains" against it).
RX_RULES = r"""
        IF OLD.status = 'cancelled' AND NEW.status <> 'cancelled' THEN
            RAISE EXCEPTION 'Rx % is cancelled; a cancelled prescription stays cancelled',
                OLD.rx_number USING ERRCODE = 'check_violation',
                CONSTRAINT = 'prescriptions_cancelled_is_final';
        END IF;
        IF (NEW.rx_number, NEW.patient_id, NEW.prescriber_id, NEW.product_id, NEW.sig,
            NEW.quantity, NEW.days_supply, NEW.refills_authorized, NEW.daw, NEW.date_written)
           IS DISTINCT FROM
           (OLD.rx_number, OLD.patient_id, OLD.prescriber_id, OLD.product_id, OLD.sig,
            OLD.quantity, OLD.days_supply, OLD.refills_authorized, OLD.daw, OLD.date_written)
           AND EXISTS (SELECT 1 FROM @s.dispenses AS d WHERE d.prescription_id = OLD.id) THEN
            RAISE EXCEPTION 'Rx % has been dispensed: what was prescribed cannot be changed',
                OLD.rx_number USING ERRCODE = 'check_violation',
                CONSTRAINT = 'prescriptions_dispensed_is_final';
        END IF;
"""


def _refuse(column: str, what: str) -> str:
    return (f"RAISE EXCEPTION '%.{column} {what}', TG_TABLE_NAME"
            " USING ERRCODE = 'insufficient_privilege',"
            " HINT = 'The database records who did it from the login; it cannot be chosen.';")


def _guard(table: str) -> str:
    spec = IDENTITY[table]
    me_cols = spec.get("me", ())
    null_cols = spec.get("me_or_null", ())
    fixed = spec.get("fixed", ())
    changed = spec.get("changed", ())
    assert isinstance(me_cols, tuple) and isinstance(null_cols, tuple)
    assert isinstance(fixed, tuple) and isinstance(changed, tuple)
    own = "must be the signed-in staff member''s own id"
    lines = ["    IF TG_OP = 'INSERT' THEN", f"        {ME}"]
    for c in me_cols:
        lines.append(f"        IF NEW.{c} IS DISTINCT FROM me THEN {_refuse(c, own)} END IF;")
    for c in null_cols:
        lines.append(f"        IF NEW.{c} IS NOT NULL AND NEW.{c} IS DISTINCT FROM me THEN "
                     f"{_refuse(c, own)} END IF;")
    lines.append("    ELSE")
    for c in fixed:
        lines.append(f"        IF NEW.{c} IS DISTINCT FROM OLD.{c} THEN "
                     f"{_refuse(c, 'records an earlier act and cannot be changed')} END IF;")
    if changed:
        any_changed = " OR ".join(f"NEW.{c} IS DISTINCT FROM OLD.{c}" for c in changed)
        lines.append(f"        IF {any_changed} THEN")
        lines.append(f"            {ME}")
        for c in changed:
            lines.append(f"            IF NEW.{c} IS DISTINCT FROM OLD.{c} AND NEW.{c} IS NOT "
                         f"NULL AND NEW.{c} IS DISTINCT FROM me THEN {_refuse(c, own)} END IF;")
        lines.append("        END IF;")
    if table == "prescriptions":
        lines.append(RX_RULES.rstrip())
    lines.append("    END IF;")
    if spec.get("stamp"):
        lines.append("    NEW.updated_by := session_user;")
    body = "\n".join(lines)
    return f"""
CREATE OR REPLACE FUNCTION @s.getmeds_guard_{table}() RETURNS trigger
LANGUAGE plpgsql @path AS $body$
DECLARE
    me uuid;
BEGIN
{body}
    RETURN NEW;
END $body$
"""


STAMP_UPDATED_BY = r"""
CREATE OR REPLACE FUNCTION @s.getmeds_stamp_updated_by() RETURNS trigger
LANGUAGE plpgsql @path AS $body$
BEGIN
    NEW.updated_by := session_user;
    RETURN NEW;
END $body$
"""

# Staff rows: a staff member with a login keeps their username (the login is
# named after it) and is deactivated, not deleted, so no login is ever left
# without its staff row.
GUARD_STAFF = r"""
CREATE OR REPLACE FUNCTION @s.getmeds_guard_staff() RETURNS trigger
LANGUAGE plpgsql @path AS $body$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE')
       AND EXISTS (SELECT 1 FROM pg_catalog.pg_roles AS r WHERE r.rolname = OLD.username) THEN
        IF TG_OP = 'DELETE' THEN
            RAISE EXCEPTION 'staff member % has a database login: deactivate them instead',
                OLD.username USING ERRCODE = 'insufficient_privilege';
        END IF;
        IF NEW.username IS DISTINCT FROM OLD.username THEN
            RAISE EXCEPTION 'staff member % has a database login named after them: the '
                'username cannot change', OLD.username
                USING ERRCODE = 'insufficient_privilege';
        END IF;
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    NEW.updated_by := session_user;
    RETURN NEW;
END $body$
"""

# ------------------------------------------------------ new: dispensing

# At commit, for every dispense (and every dispense movement) a staff session
# wrote: see the module docstring. SECURITY DEFINER so that it sees every row
# whatever the writer's row-level security. It locks the prescription so two
# transactions cannot both take what remains (FOR NO KEY UPDATE, the lock the
# app's own UPDATE of the prescription takes: it does not wait for the key-share
# locks that inserting a dispense takes, so racing writers do not deadlock).
CHECK_DISPENSE = r"""
CREATE OR REPLACE FUNCTION @s.getmeds_check_dispense() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER @path AS $body$
DECLARE
    d @s.dispenses;
    me uuid;
    rx record;
    remains integer;
    moved bigint;
    other_product boolean;
BEGIN
    IF TG_TABLE_NAME = 'dispenses' THEN
        d := NEW;
    ELSE
        SELECT * INTO d FROM @s.dispenses AS x WHERE x.id = NEW.dispense_id;
    END IF;
    SELECT st.id INTO me FROM @s.staff AS st WHERE st.username = session_user AND st.active;
    IF d.pharmacist_id IS DISTINCT FROM me THEN
        RAISE EXCEPTION 'a dispense is recorded as the signed-in pharmacist: pharmacist_id '
            'must be the login''s own staff id'
            USING ERRCODE = 'insufficient_privilege', CONSTRAINT = 'dispenses_consistent';
    END IF;
    SELECT r.rx_number, r.status, r.quantity, r.refills_authorized, r.product_id INTO rx
      FROM @s.prescriptions AS r WHERE r.id = d.prescription_id FOR NO KEY UPDATE;
    IF rx.status IN ('cancelled', 'on_hold') THEN
        RAISE EXCEPTION 'Rx % is %: it cannot be dispensed', rx.rx_number,
            pg_catalog.replace(rx.status, '_', ' ')
            USING ERRCODE = 'check_violation', CONSTRAINT = 'dispenses_consistent';
    END IF;
    IF d.part = 1 THEN
        IF d.fill_number > rx.refills_authorized THEN
            RAISE EXCEPTION 'Rx % has no refills left (fill % of % authorised refills)',
                rx.rx_number, d.fill_number, rx.refills_authorized
                USING ERRCODE = 'check_violation', CONSTRAINT = 'dispenses_consistent';
        END IF;
        remains := rx.quantity;
    ELSE
        SELECT p.owed_after INTO remains FROM @s.dispenses AS p
         WHERE p.prescription_id = d.prescription_id AND p.fill_number = d.fill_number
           AND p.part = d.part - 1;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'Rx %: part % of fill % follows no part %', rx.rx_number, d.part,
                d.fill_number, d.part - 1
                USING ERRCODE = 'check_violation', CONSTRAINT = 'dispenses_consistent';
        END IF;
    END IF;
    IF d.quantity > remains OR d.owed_after <> remains - d.quantity THEN
        RAISE EXCEPTION 'Rx %: % remain to be dispensed, so a dispense of % leaving % owed '
            'is refused', rx.rx_number, remains, d.quantity, d.owed_after
            USING ERRCODE = 'check_violation', CONSTRAINT = 'dispenses_consistent';
    END IF;
    SELECT coalesce(pg_catalog.sum(-m.quantity), 0),
           coalesce(pg_catalog.bool_or(l.product_id <> rx.product_id), false)
      INTO moved, other_product
      FROM @s.stock_movements AS m JOIN @s.stock_lots AS l ON l.id = m.lot_id
     WHERE m.dispense_id = d.id;
    IF moved <> d.quantity THEN
        RAISE EXCEPTION 'Rx %: the dispense is for % but its stock movements take %',
            rx.rx_number, d.quantity, moved
            USING ERRCODE = 'check_violation', CONSTRAINT = 'dispenses_consistent';
    END IF;
    IF other_product THEN
        RAISE EXCEPTION 'Rx %: stock of another product cannot be dispensed for it',
            rx.rx_number
            USING ERRCODE = 'check_violation', CONSTRAINT = 'dispenses_consistent';
    END IF;
    RETURN NULL;
END $body$
"""

# When the dispense is written (before the app marks the prescription filled),
# the prescription must be open: the check at commit cannot tell a prescription
# that was on hold and marked filled in the same transaction from one that was
# filled from an open state.
GUARD_DISPENSES = r"""
CREATE OR REPLACE FUNCTION @s.getmeds_guard_dispenses() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER @path AS $body$
DECLARE
    rx record;
BEGIN
    SELECT r.rx_number, r.status INTO rx FROM @s.prescriptions AS r
     WHERE r.id = NEW.prescription_id;
    IF rx.status IN ('cancelled', 'on_hold') THEN
        RAISE EXCEPTION 'Rx % is %: it cannot be dispensed', rx.rx_number,
            pg_catalog.replace(rx.status, '_', ' ')
            USING ERRCODE = 'check_violation', CONSTRAINT = 'dispenses_consistent';
    END IF;
    RETURN NEW;
END $body$
"""

NOT_TRUSTED = "NOT @s.getmeds_trusted_session()"


def _functions() -> list[str]:
    """Every function this revision creates or replaces, in creation order."""
    manager = MANAGER_CHECK.strip("\n")
    login_name = LOGIN_NAME_CHECK.strip("\n")
    out = [
        TRUSTED, CHECK_VERIFIER, RESTRICT_DATABASE, FORBID_CHANGE, PRODUCT_STOCK_ROW,
        APPLY_MOVEMENTS, AUDIT, AUDIT_ROW, CURRENT_STAFF, CURRENT_PRESCRIBER,
        PRODUCT_CONTROLLED, LOT_CONTROLLED,
        CREATE_LOGIN.replace("@manager", manager).replace("@login_name", login_name)
        .replace("@audit", _login_audit(
            "'INSERT'", "NULL", "pg_catalog.jsonb_build_object('login', login, 'group', grp, "
            "'can_login', true)").strip("\n")),
        ADD_STAFF.replace("@manager", manager).replace("@login_name", login_name)
        .replace("@audit", _login_audit(
            "'INSERT'", "NULL", "pg_catalog.jsonb_build_object('login', login, 'group', grp, "
            "'can_login', true, 'staff_id', sid)").strip("\n")),
        ALTER_LOGIN.replace("@manager", manager).replace("@audit", _login_audit(
            "'UPDATE'", "pg_catalog.jsonb_build_object('login', login, 'can_login', was_login)",
            "pg_catalog.jsonb_build_object('login', login, 'can_login', "
            "coalesce(can_login, was_login)) || CASE WHEN verifier IS NULL THEN '{}'::jsonb "
            "ELSE pg_catalog.jsonb_build_object('password', 'reset') END").strip("\n")),
        *(_notify(t) for t in NOTIFY_IDS),
        _notify("stock_lots", "getmeds_notify_stock_lots_update", LOT_UPDATE_IDS),
        *(_guard(t) for t in IDENTITY), STAMP_UPDATED_BY, GUARD_STAFF, GUARD_DISPENSES,
        CHECK_DISPENSE,
    ]
    return [f.replace("@who", WHO) for f in out]


NEW_FUNCTIONS = (
    "getmeds_trusted_session()", "getmeds_check_verifier(text)",
    "getmeds_restrict_database()",
    "getmeds_add_staff(uuid, text, text, text, text, text, text, uuid)",
    *(f"getmeds_guard_{t}()" for t in IDENTITY),
    "getmeds_stamp_updated_by()", "getmeds_guard_staff()", "getmeds_guard_dispenses()",
    "getmeds_check_dispense()",
)


def _triggers() -> list[str]:
    out = []
    for table in IDENTITY:
        events = "INSERT" if table in ("stock_movements", "dispense_warnings") else (
            "INSERT OR UPDATE")
        out.append(f"CREATE TRIGGER {table}_identity BEFORE {events} ON @s.{table}"
                   f" FOR EACH ROW WHEN ({NOT_TRUSTED})"
                   f" EXECUTE FUNCTION @s.getmeds_guard_{table}()")
    for table, columns in STAMPED.items():
        of = f" OF {', '.join(columns)}" if columns else ""
        out.append(f"CREATE TRIGGER {table}_identity BEFORE INSERT OR UPDATE{of} ON @s.{table}"
                   f" FOR EACH ROW WHEN ({NOT_TRUSTED})"
                   " EXECUTE FUNCTION @s.getmeds_stamp_updated_by()")
    out.append("CREATE TRIGGER staff_identity BEFORE INSERT OR UPDATE OR DELETE ON @s.staff"
               f" FOR EACH ROW WHEN ({NOT_TRUSTED}) EXECUTE FUNCTION @s.getmeds_guard_staff()")
    out.append("CREATE TRIGGER dispenses_open_prescription BEFORE INSERT ON @s.dispenses"
               f" FOR EACH ROW WHEN ({NOT_TRUSTED}) EXECUTE FUNCTION @s.getmeds_guard_dispenses()")
    out.append("CREATE CONSTRAINT TRIGGER dispenses_consistent AFTER INSERT ON @s.dispenses"
               " DEFERRABLE INITIALLY DEFERRED FOR EACH ROW"
               f" WHEN ({NOT_TRUSTED}) EXECUTE FUNCTION @s.getmeds_check_dispense()")
    out.append("CREATE CONSTRAINT TRIGGER stock_movements_dispense_consistent AFTER INSERT"
               " ON @s.stock_movements DEFERRABLE INITIALLY DEFERRED FOR EACH ROW"
               f" WHEN (NEW.dispense_id IS NOT NULL AND {NOT_TRUSTED})"
               " EXECUTE FUNCTION @s.getmeds_check_dispense()")
    return out


TRIGGERS = (
    *((f"{t}_identity", t) for t in (*IDENTITY, *STAMPED, "staff")),
    ("dispenses_open_prescription", "dispenses"),
    ("dispenses_consistent", "dispenses"),
    ("stock_movements_dispense_consistent", "stock_movements"),
)


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    n = _names()
    _run(n, *(f.replace("@schema", n.schema) for f in _functions()))
    _run(n, *_triggers())
    _run(n,
         "REVOKE ALL ON FUNCTION @s.getmeds_restrict_database() FROM PUBLIC",
         "REVOKE ALL ON FUNCTION @s.getmeds_add_staff(uuid, text, text, text, text, text, "
         "text, uuid) FROM PUBLIC",
         "GRANT EXECUTE ON FUNCTION @s.getmeds_add_staff(uuid, text, text, text, text, text, "
         "text, uuid) TO " + f'"{n.prefix}admin"',
         "SELECT @s.getmeds_restrict_database()")


# ---------------------------------------------------------------- downgrade
# The definitions of revisions 0001, 0003 and 0004, as they were.

OLD_0001 = {
    "getmeds_forbid_change": """
        CREATE OR REPLACE FUNCTION getmeds_forbid_change() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'rows of % are permanent records and cannot be changed or removed',
                TG_TABLE_NAME
                USING ERRCODE = 'integrity_constraint_violation',
                      HINT = 'Correct a mistake with a new entry.';
        END $$
        """,
    "getmeds_product_stock_row": """
        CREATE OR REPLACE FUNCTION getmeds_product_stock_row() RETURNS trigger
        LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
        BEGIN
            INSERT INTO product_stock (product_id, on_hand)
            SELECT id, 0 FROM new_products
            ON CONFLICT (product_id) DO NOTHING;
            RETURN NULL;
        END $$
        """,
    "getmeds_apply_movements": """
        CREATE OR REPLACE FUNCTION getmeds_apply_movements() RETURNS trigger
        LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
        BEGIN
            UPDATE stock_lots AS l
               SET on_hand = l.on_hand + d.q
              FROM (SELECT lot_id, sum(quantity) AS q
                      FROM new_movements GROUP BY lot_id) AS d
             WHERE l.id = d.lot_id;

            UPDATE product_stock AS ps
               SET on_hand = ps.on_hand + d.q,
                   nearest_expiry = (SELECT min(x.expiry_date) FROM stock_lots AS x
                                      WHERE x.product_id = d.product_id AND x.on_hand > 0)
              FROM (SELECT l.product_id, sum(m.quantity) AS q
                      FROM new_movements AS m JOIN stock_lots AS l ON l.id = m.lot_id
                     GROUP BY l.product_id) AS d
             WHERE ps.product_id = d.product_id;

            INSERT INTO controlled_register
                   (movement_id, product_id, lot_id, schedule, register, kind,
                    quantity, balance_after, staff_id, recorded_at)
            SELECT m.id, l.product_id, m.lot_id, p.schedule,
                   CASE WHEN p.schedule = 'II' THEN 'II' ELSE 'III-V' END,
                   m.kind, m.quantity,
                   ps.on_hand - coalesce(sum(m.quantity) OVER (
                       PARTITION BY l.product_id ORDER BY m.created_at, m.id
                       ROWS BETWEEN 1 FOLLOWING AND UNBOUNDED FOLLOWING), 0),
                   m.staff_id, m.created_at
              FROM new_movements AS m
              JOIN stock_lots AS l ON l.id = m.lot_id
              JOIN products AS p ON p.id = l.product_id
              JOIN product_stock AS ps ON ps.product_id = l.product_id
             WHERE p.schedule <> 'none'
             ORDER BY l.product_id, m.created_at, m.id;
            RETURN NULL;
        END $$
        """,
    "getmeds_audit": """
        CREATE OR REPLACE FUNCTION getmeds_audit() RETURNS trigger
        LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
        DECLARE
            who text := nullif(current_setting('getmeds.actor', true), '');
            key text := TG_ARGV[0];
            skip text[] := coalesce(TG_ARGV[1:], '{}');
        BEGIN
            IF TG_OP = 'INSERT' THEN
                INSERT INTO audit_log (occurred_at, actor, db_user, action, table_name,
                                       row_id, before, after)
                SELECT now(), who, session_user, 'INSERT', TG_TABLE_NAME,
                       n.j ->> key, NULL, n.j
                  FROM (SELECT to_jsonb(t) - skip AS j FROM new_rows AS t) AS n;
            ELSIF TG_OP = 'UPDATE' THEN
                INSERT INTO audit_log (occurred_at, actor, db_user, action, table_name,
                                       row_id, before, after)
                SELECT now(), who, session_user, 'UPDATE', TG_TABLE_NAME,
                       n.j ->> key, o.j, n.j
                  FROM (SELECT to_jsonb(t) - skip AS j FROM old_rows AS t) AS o
                  JOIN (SELECT to_jsonb(t) - skip AS j FROM new_rows AS t) AS n
                    ON (o.j ->> key) = (n.j ->> key)
                 WHERE o.j IS DISTINCT FROM n.j;
            ELSE
                INSERT INTO audit_log (occurred_at, actor, db_user, action, table_name,
                                       row_id, before, after)
                SELECT now(), who, session_user, 'DELETE', TG_TABLE_NAME,
                       o.j ->> key, o.j, NULL
                  FROM (SELECT to_jsonb(t) - skip AS j FROM old_rows AS t) AS o;
            END IF;
            RETURN NULL;
        END $$
        """,
    "getmeds_audit_row": """
        CREATE OR REPLACE FUNCTION getmeds_audit_row() RETURNS trigger
        LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
        DECLARE
            skip text[] := coalesce(TG_ARGV[1:], '{}');
            o jsonb := to_jsonb(OLD) - skip;
            n jsonb := to_jsonb(NEW) - skip;
        BEGIN
            IF o IS DISTINCT FROM n THEN
                INSERT INTO audit_log (occurred_at, actor, db_user, action, table_name,
                                       row_id, before, after)
                VALUES (now(), nullif(current_setting('getmeds.actor', true), ''),
                        session_user, 'UPDATE', TG_TABLE_NAME, n ->> TG_ARGV[0], o, n);
            END IF;
            RETURN NULL;
        END $$
        """,
}


def _old_0003(prefix: str) -> list[str]:
    g = {name: f"{prefix}{name}" for name in GROUPS}
    groups_array = "ARRAY[" + ", ".join(f"'{r}'" for r in g.values()) + "]"
    return [f"""
        CREATE OR REPLACE FUNCTION getmeds_create_login(login text, verifier text, grp text)
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
        END $$""", f"""
        CREATE OR REPLACE FUNCTION getmeds_alter_login(login text, verifier text,
                                                       can_login boolean)
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
        END $$""", """
        CREATE OR REPLACE FUNCTION getmeds_current_staff() RETURNS uuid
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path FROM CURRENT AS $$
            SELECT id FROM staff WHERE username = session_user AND active
        $$""", """
        CREATE OR REPLACE FUNCTION getmeds_current_prescriber() RETURNS uuid
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path FROM CURRENT AS $$
            SELECT prescriber_id FROM staff WHERE username = session_user AND active
        $$""", """
        CREATE OR REPLACE FUNCTION getmeds_product_controlled(product uuid) RETURNS boolean
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path FROM CURRENT AS $$
            SELECT schedule <> 'none' FROM products WHERE id = product
        $$""", """
        CREATE OR REPLACE FUNCTION getmeds_lot_controlled(lot uuid) RETURNS boolean
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path FROM CURRENT AS $$
            SELECT p.schedule <> 'none' FROM stock_lots l JOIN products p ON p.id = l.product_id
             WHERE l.id = lot
        $$"""]


OLD_PAYLOADS = {
    "patients": ("patients", "SELECT r.id AS id, '{}'::jsonb AS extra FROM rows r"),
    "patient_allergies": ("patients", "SELECT DISTINCT r.patient_id AS id, '{}'::jsonb AS extra"
                                      " FROM rows r"),
    "patient_conditions": ("patients", "SELECT DISTINCT r.patient_id AS id, '{}'::jsonb AS extra"
                                       " FROM rows r"),
    "products": ("products", "SELECT r.id AS id, jsonb_build_object('product', r.id) AS extra"
                             " FROM rows r"),
    "stock_lots": ("stock_lots", "SELECT r.id AS id, jsonb_build_object('product', r.product_id)"
                                 " AS extra FROM rows r"),
    "stock_movements": (
        "stock_movements",
        "SELECT r.id AS id, jsonb_build_object('product', l.product_id, 'lot', r.lot_id) AS extra"
        " FROM rows r JOIN stock_lots l ON l.id = r.lot_id"),
    "prescriptions": (
        "prescriptions",
        "SELECT r.id AS id, jsonb_build_object('patient', r.patient_id, 'product', r.product_id,"
        " 'rx', r.id) AS extra FROM rows r"),
    "dispenses": (
        "dispenses",
        "SELECT r.id AS id, jsonb_build_object('rx', r.prescription_id, 'product', p.product_id,"
        " 'patient', p.patient_id) AS extra"
        " FROM rows r JOIN prescriptions p ON p.id = r.prescription_id"),
}
OLD_LOT_UPDATE = (
    "SELECT r.id AS id, jsonb_build_object('product', r.product_id) AS extra"
    " FROM rows r JOIN old_rows o ON o.id = r.id"
    " WHERE (r.status, r.status_reason, r.lot_number, r.expiry_date, r.unit_cost,"
    " r.supplier_id, r.version) IS DISTINCT FROM (o.status, o.status_reason, o.lot_number,"
    " o.expiry_date, o.unit_cost, o.supplier_id, o.version)")


def _old_notify(table: str, name: str | None = None, select: str | None = None) -> str:
    shown_as, default_select = OLD_PAYLOADS[table]
    select = select or default_select
    security = ("SECURITY DEFINER SET search_path FROM CURRENT"
                if table in ("stock_movements", "dispenses") else "")
    return f"""
        CREATE OR REPLACE FUNCTION {name or f"getmeds_notify_{table}"}() RETURNS trigger
        LANGUAGE plpgsql {security} AS $fn$
        DECLARE
            base jsonb := jsonb_build_object(
                't', '{shown_as}', 'op', lower(TG_OP),
                'by', coalesce(nullif(current_setting('getmeds.actor', true), ''),
                               session_user::text));
            n integer;
            rec record;
        BEGIN
            SELECT count(*) INTO n FROM (SELECT 1 FROM rows LIMIT {MANY + 1}) x;
            IF n > {MANY} THEN
                PERFORM pg_notify('{CHANNEL}',
                                  (base || jsonb_build_object('all', true))::text);
                RETURN NULL;
            END IF;
            FOR rec IN {select} LOOP
                PERFORM pg_notify('{CHANNEL}',
                                  (base || jsonb_build_object('id', rec.id) || rec.extra)::text);
            END LOOP;
            RETURN NULL;
        END
        $fn$
    """


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    n = _names()
    for trigger, table in TRIGGERS:
        op.execute(f'DROP TRIGGER IF EXISTS {trigger} ON "{n.schema}".{table}')
    for fn in NEW_FUNCTIONS:
        op.execute(f'DROP FUNCTION IF EXISTS "{n.schema}".{fn}')
    for statement in (*OLD_0001.values(), *_old_0003(n.prefix),
                      *(_old_notify(t) for t in OLD_PAYLOADS),
                      _old_notify("stock_lots", "getmeds_notify_stock_lots_update",
                                  OLD_LOT_UPDATE)):
        op.execute(statement)
    database = op.get_bind().execute(sa.text("SELECT current_database()")).scalar()
    # the database's default privileges again (CREATE on the schema stays revoked:
    # that is PostgreSQL's own default since version 15)
    op.execute(f'GRANT CONNECT, TEMPORARY ON DATABASE "{database}" TO PUBLIC')
