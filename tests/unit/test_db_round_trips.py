"""Round trips the connection layer spends on its own: none for a warm, recently
used connection; one ping for one that sat idle; one for a quick read; a
sign-in is the connection's handshake and two more."""

from __future__ import annotations

import uuid

import psycopg
import pytest
import sqlalchemy as sa

from benchmarks.netdelay import DelayProxy, through
from getmeds_desktop import db
from getmeds_desktop.config import DatabaseTarget
from getmeds_desktop.errors import SchemaMismatch
from getmeds_desktop.models import Role
from getmeds_desktop.services import dashboard, listing, settings
from getmeds_desktop.startup import Connector
from getmeds_desktop.sync import is_disconnect
from tests.fixtures.data import PASSWORD, build_world

pytestmark = pytest.mark.slow


def _kill_others(url: str) -> int:
    u = sa.engine.make_url(url)
    with psycopg.connect(host=u.host, port=u.port or 5432, user=u.username,
                         dbname=u.database, password=u.password, autocommit=True) as c:
        return len(c.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = "
            "current_database() AND pid <> pg_backend_pid()").fetchall())


@pytest.fixture
def proxied(pg_fresh_db):
    u = sa.engine.make_url(pg_fresh_db)
    with DelayProxy(u.host or "127.0.0.1", u.port or 5432) as proxy:
        engine = db.make_engine(through(pg_fresh_db, proxy), pool_size=1)
        yield proxy, engine
        engine.dispose()


def test_a_quick_read_is_one_round_trip_and_a_snapshot_read_three(proxied, pg_fresh_db):
    proxy, engine = proxied
    direct = db.make_engine(pg_fresh_db)
    world = build_world(db.session_factory(direct))
    direct.dispose()
    sf = db.session_factory(engine)
    listing.list_patients(sf, world.pharmacist, "smith")  # connect, warm
    with proxy.counting() as n:
        listing.list_patients(sf, world.pharmacist, "smith")
    assert n[0] == 1
    with proxy.counting() as n, db.read_session(sf) as s:
        s.execute(sa.text("SELECT 1"))
    assert n[0] == 3  # BEGIN, the statement, COMMIT


def test_a_connection_used_a_moment_ago_is_not_pinged(proxied):
    proxy, engine = proxied
    with engine.connect() as c:
        c.execute(sa.text("SELECT 1"))
    with proxy.counting() as n, engine.connect() as c:
        c.execute(sa.text("SELECT 1"))
    assert n[0] == 3  # BEGIN, SELECT, ROLLBACK: no ping


def test_an_idle_connection_is_pinged_and_a_dead_one_replaced(proxied, pg_fresh_db, monkeypatch):
    proxy, engine = proxied
    with engine.connect() as c:
        c.execute(sa.text("SELECT 1"))
    monkeypatch.setattr(db, "PING_AFTER_IDLE_S", 0.0)
    assert _kill_others(pg_fresh_db) >= 1
    with engine.connect() as c:  # the ping finds it dead: a new connection, no error
        assert c.execute(sa.text("SELECT 2")).scalar() == 2


def test_a_recently_used_connection_that_died_fails_as_connection_lost_then_recovers(
        proxied, pg_fresh_db):
    _proxy, engine = proxied
    with engine.connect() as c:
        c.execute(sa.text("SELECT 1"))
    assert _kill_others(pg_fresh_db) >= 1
    with pytest.raises(sa.exc.DBAPIError) as caught, engine.connect() as c:
        c.execute(sa.text("SELECT 1"))
    assert is_disconnect(caught.value)  # the app's tasks try again on this
    with engine.connect() as c:
        assert c.execute(sa.text("SELECT 3")).scalar() == 3


@pytest.fixture
def signed_in_world(pg_fresh_db):
    engine = db.make_engine(pg_fresh_db)
    world = build_world(db.session_factory(engine))
    yield world, engine
    engine.dispose()


def test_sign_in_is_the_connection_and_two_round_trips(proxied, pg_fresh_db, signed_in_world):
    """sign_in_round_trips: after the connection's own handshake (TLS or not,
    SCRAM or trust: what no statement can save), one round trip for what
    SQLAlchemy learns about the server and one statement for the schema
    revision, the staff row, the group role and the staff count. The
    dashboard's figures are one more, the settings one more."""
    proxy, _ = proxied
    world, _ = signed_in_world
    login = world.pharmacist.username
    u = sa.engine.make_url(pg_fresh_db)
    with proxy.counting() as handshake:  # kept open: its goodbye is not counted below
        bare = psycopg.connect(host=proxy.host, port=proxy.port, dbname=u.database,
                               user=login, password=PASSWORD)
    target = DatabaseTarget(through(pg_fresh_db, proxy), "t", "t")
    connector = Connector()
    try:
        with proxy.counting() as n:
            opened, actor = connector.sign_in(target, login, PASSWORD)
        assert (actor.username, actor.role) == (login, Role.PHARMACIST)
        assert opened.staff_count == 6  # the test world's staff
        assert n[0] == handshake[0] + 2
        with proxy.counting() as n:
            figures = dashboard.dashboard(opened.sf, actor)
        assert n[0] == 1
        assert figures.patients == 0 and len(figures.dispenses_per_day) == 30
        with proxy.counting() as n:  # the window's idle lock reads the settings
            settings.get_settings(opened.sf)
        assert n[0] == 1
    finally:
        connector.close_all()
        bare.close()


def test_sign_in_still_refuses_a_schema_this_version_does_not_know(
        proxied, pg_fresh_db, signed_in_world):
    proxy, _ = proxied
    world, engine = signed_in_world
    target = DatabaseTarget(through(pg_fresh_db, proxy), "t", "t")
    with engine.begin() as c:
        c.execute(sa.text("UPDATE alembic_version SET version_num = '0001'"))
    with pytest.raises(SchemaMismatch, match="older than this GetMeds"):
        Connector().sign_in(target, world.clerk.username, PASSWORD)
    with engine.begin() as c:
        c.execute(sa.text("UPDATE alembic_version SET version_num = 'ffff_from_the_future'"))
    with pytest.raises(SchemaMismatch, match="newer than this GetMeds"):
        Connector().sign_in(target, world.clerk.username, PASSWORD)
    with engine.begin() as c:
        c.execute(sa.text("DROP TABLE alembic_version"))
    with pytest.raises(SchemaMismatch, match="not a GetMeds database"):
        Connector().sign_in(target, world.clerk.username, PASSWORD)


def test_what_the_first_connection_learns_is_what_sqlalchemy_would_ask(pg_fresh_db):
    ours = db.make_engine(pg_fresh_db)
    plain = sa.create_engine(db.normalize_url(pg_fresh_db), poolclass=sa.NullPool)
    try:
        for engine in (ours, plain):
            with engine.connect() as c:
                c.execute(sa.text("SELECT 1"))
        for name in ("server_version_info", "default_schema_name", "default_isolation_level",
                     "_backslash_escapes", "supports_identity_columns"):
            assert getattr(ours.dialect, name) == getattr(plain.dialect, name), name
    finally:
        ours.dispose()
        plain.dispose()


def test_proving_a_password_again_is_the_handshake_and_two_round_trips(
        proxied, pg_fresh_db, signed_in_world):
    """Unlocking the window: a new connection as the staff member, nothing else."""
    proxy, _ = proxied
    world, _ = signed_in_world
    login = world.clerk.username
    u = sa.engine.make_url(pg_fresh_db)
    with proxy.counting() as handshake:
        bare = psycopg.connect(host=proxy.host, port=proxy.port, dbname=u.database,
                               user=login, password=PASSWORD)
    target = DatabaseTarget(through(pg_fresh_db, proxy), "t", "t")
    try:
        still_open = proxy.open_connections
        with proxy.counting() as n:
            Connector().verify_password(target, login, PASSWORD)
            proxy.wait_connections(still_open)  # its goodbye counted too
        assert n[0] == handshake[0] + 3  # what the dialect learns, SELECT 1, goodbye
    finally:
        bare.close()


def test_opening_with_a_login_of_its_own_is_the_connection_and_two_round_trips(
        proxied, pg_fresh_db, signed_in_world):
    """IT's tools: the schema check and the staff count in one statement."""
    proxy, _ = proxied
    u = sa.engine.make_url(pg_fresh_db)
    with proxy.counting() as handshake:
        bare = psycopg.connect(host=proxy.host, port=proxy.port, dbname=u.database,
                               user=u.username, password=u.password)
    connector = Connector()
    try:
        with proxy.counting() as n:
            opened = connector.open(DatabaseTarget(through(pg_fresh_db, proxy), "t", "t"))
        assert opened.staff_count == 6  # the test world's staff
        assert n[0] == handshake[0] + 2
        with proxy.counting() as n:  # opened again: the staff count only
            connector.open(DatabaseTarget(through(pg_fresh_db, proxy), "t", "t"))
        assert n[0] == 1
    finally:
        connector.close_all()
        bare.close()


def test_opening_an_empty_server_database_says_so(pg_backend):  # (the server is checked)
    from tests.fixtures.database import _pg_admin_engine, pg_admin_url

    name = f"getmeds_empty_{uuid.uuid4().hex[:8]}"
    with _pg_admin_engine().connect() as c:
        c.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        target = DatabaseTarget(pg_admin_url().set(database=name).render_as_string(
            hide_password=False), "t", "t")
        with pytest.raises(SchemaMismatch, match="The database is empty"):
            Connector().open(target)
    finally:
        with _pg_admin_engine().connect() as c:
            c.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
