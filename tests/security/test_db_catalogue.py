"""What the catalogue says about our functions and the database's privileges.

Every function that runs with privileges other than its caller's (SECURITY
DEFINER, and every trigger function) must pin ``search_path`` with pg_temp
explicitly last, or a temporary table of the caller's could stand in for one of
ours. The check reads pg_proc, so a new function that forgets it fails here.
"""

from __future__ import annotations

import psycopg
import pytest
import sqlalchemy as sa
from alembic import command
from psycopg import errors

from getmeds_desktop import db
from getmeds_desktop.enums import DATABASE_GROUPS

from .conftest import Pharmacy

# Our functions: those of our schema that no extension (pg_trgm) owns.
OUR_FUNCTIONS = """
    SELECT p.oid::regprocedure::text, p.prosecdef, p.prorettype = 'pg_catalog.trigger'::regtype,
           p.proconfig
      FROM pg_catalog.pg_proc AS p
     WHERE p.pronamespace = pg_catalog.current_schema()::regnamespace
       AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend AS d
                        WHERE d.classid = 'pg_catalog.pg_proc'::regclass
                          AND d.objid = p.oid AND d.deptype = 'e')
     ORDER BY 1
"""


def unpinned(conn: psycopg.Connection) -> dict[str, str]:
    """Functions that run with other privileges and do not pin a safe search_path:
    name -> what is wrong. A safe path is pg_catalog first, pg_temp last, and
    only our own schema in between."""
    schema = conn.execute("SELECT current_schema()").fetchone()[0]
    problems: dict[str, str] = {}
    for name, definer, trigger, config in conn.execute(OUR_FUNCTIONS):
        if not (definer or trigger):
            continue
        settings = dict(c.split("=", 1) for c in (config or []))
        path = [p.strip().strip('"') for p in settings.get("search_path", "").split(",")]
        if "search_path" not in settings:
            problems[name] = "does not set search_path"
        elif path[0] != "pg_catalog" or path[-1] != "pg_temp":
            problems[name] = (f"search_path {settings['search_path']!r}: pg_catalog must be "
                              "first and pg_temp last")
        elif any(p not in ("pg_catalog", schema, "pg_temp") for p in path):
            problems[name] = f"search_path {settings['search_path']!r} names other schemas"
    return problems


def functions(conn: psycopg.Connection) -> list[tuple]:
    return conn.execute(OUR_FUNCTIONS).fetchall()


def test_every_function_that_runs_with_other_privileges_pins_search_path(pharmacy: Pharmacy):
    with pharmacy.owner() as c:
        found = functions(c)
        assert unpinned(c) == {}
    names = {f[0].split("(")[0] for f in found}
    # the ones the security review named are among them, with the rights they need
    assert {"getmeds_audit", "getmeds_audit_row", "getmeds_apply_movements",
            "getmeds_create_login", "getmeds_alter_login", "getmeds_add_staff",
            "getmeds_current_staff", "getmeds_current_prescriber", "getmeds_check_dispense",
            "getmeds_lot_controlled", "getmeds_product_controlled"} <= names
    definers = {f[0].split("(")[0] for f in found if f[1]}
    # notifications carry nothing that needs the owner's eyes any more
    assert not {n for n in definers if n.startswith("getmeds_notify_")}
    # every one of ours pins it, helpers included
    assert all(f[3] for f in found), [f[0] for f in found if not f[3]]


def test_the_check_catches_a_function_that_forgets_it(pharmacy: Pharmacy):
    with pharmacy.owner() as c, c.transaction(force_rollback=True):
        c.execute("CREATE FUNCTION getmeds_forgetful() RETURNS uuid LANGUAGE sql "
                  "SECURITY DEFINER AS $$ SELECT id FROM staff LIMIT 1 $$")
        c.execute("CREATE FUNCTION getmeds_forgetful_trigger() RETURNS trigger "
                  "LANGUAGE plpgsql SET search_path = public AS $$ BEGIN RETURN NEW; END $$")
        c.execute("CREATE FUNCTION getmeds_temp_first() RETURNS void LANGUAGE sql "
                  "SECURITY DEFINER SET search_path = pg_temp, pg_catalog, public AS $$ $$")
        assert unpinned(c) == {
            "getmeds_forgetful()": "does not set search_path",
            "getmeds_forgetful_trigger()": "search_path 'public': pg_catalog must be first "
                                           "and pg_temp last",
            "getmeds_temp_first()": "search_path 'pg_temp, pg_catalog, public': pg_catalog "
                                    "must be first and pg_temp last",
        }


def test_only_the_pharmacys_groups_may_connect_and_nobody_creates_temporary_tables(
        pharmacy: Pharmacy):
    acl = pharmacy.one("SELECT datacl::text[] FROM pg_database WHERE datname = "
                       "current_database()")
    grants = dict(a.split("/")[0].split("=") for a in acl)
    assert "" not in grants  # PUBLIC: neither CONNECT nor TEMPORARY
    for g in DATABASE_GROUPS:
        assert grants[pharmacy.group(g)] == "c"  # CONNECT only
    owner = pharmacy.one("SELECT pg_get_userbyid(datdba) FROM pg_database "
                         "WHERE datname = current_database()")
    assert set(grants) == {owner, *(pharmacy.group(g) for g in DATABASE_GROUPS)}
    # nobody but the owner creates objects in our schema
    assert pharmacy.one("SELECT has_schema_privilege('public', current_schema(), 'CREATE')") \
        is False


def test_only_the_owner_may_restrict_the_database_again(pharmacy: Pharmacy):
    w = pharmacy.world
    for who in (w.admin, w.clerk):
        with pharmacy.login(who) as c, pytest.raises(errors.InsufficientPrivilege):
            c.execute("SELECT getmeds_restrict_database()")


def test_downgrade_restores_0006_and_upgrade_comes_back(pg_fresh_db):
    engine = db.make_engine(pg_fresh_db, poolclass=sa.NullPool)
    try:
        with engine.begin() as conn:
            command.downgrade(db.alembic_config(conn), "0006")
        with engine.connect() as conn:
            config = dict(conn.execute(sa.text(
                "SELECT proname, proconfig FROM pg_proc WHERE proname = ANY(:n)"),
                {"n": ["getmeds_audit", "getmeds_add_staff", "getmeds_check_dispense"]}).all())
            acl = conn.scalar(sa.text("SELECT datacl::text[] FROM pg_database "
                                      "WHERE datname = current_database()"))
            triggers = conn.scalar(sa.text(
                "SELECT count(*) FROM pg_trigger WHERE tgname LIKE '%identity' "
                "OR tgname LIKE '%dispense_consistent'"))
        assert set(config) == {"getmeds_audit"}  # the new functions are gone
        assert config["getmeds_audit"] == ['search_path="$user", public']  # as 0001 made it
        assert any(a.startswith("=") for a in acl) and triggers == 0
        db.upgrade(engine)
        assert db.current_revision(engine) == db.head_revision()
        with engine.connect() as conn:
            assert conn.scalar(sa.text(
                "SELECT proconfig FROM pg_proc WHERE proname = 'getmeds_audit'")) == [
                "search_path=pg_catalog, public, pg_temp"]
    finally:
        engine.dispose()
