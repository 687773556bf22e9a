"""Which statements the server may answer from a kept (generic) plan: the
queries of triggers and security functions and the fill's own statements may;
a search never does, because its best plan depends on what is searched for
(the generic plan of ``lower(name) LIKE $1`` cannot use the prefix and trigram
indexes)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from getmeds_desktop import db
from getmeds_desktop.services import listing
from tests.fixtures.data import build_world

pytestmark = pytest.mark.slow

SEARCH_PARTS = ("lower(patients.last_name)", "lower(products.name)",
                "lower(prescribers.last_name)")


@pytest.fixture
def one_connection(pg_fresh_db):
    direct = db.make_engine(pg_fresh_db)
    world = build_world(db.session_factory(direct))
    direct.dispose()
    engine = db.make_engine(pg_fresh_db, pool_size=1, max_overflow=0)
    yield engine, world
    engine.dispose()


def _prepared(engine: sa.Engine) -> list[str]:
    with engine.connect() as c:
        return list(c.exec_driver_sql("SELECT statement FROM pg_prepared_statements").scalars())


NOBODY = "00000000-0000-0000-0000-000000000000"


def test_searches_are_planned_for_their_words_every_time(one_connection):
    engine, world = one_connection
    sf = db.session_factory(engine)
    with engine.connect() as c:  # the server's own choice, not a forced plan per run
        assert c.exec_driver_sql("SHOW plan_cache_mode").scalar() == "auto"
    for _ in range(8):  # psycopg prepares a statement at its sixth run
        listing.list_patients(sf, world.clerk, "smi")
        listing.list_products(sf, world.clerk, listing.ProductFilter(search="amox"))
        listing.pick_prescribers(sf, world.clerk, "wel")
        listing.pick_patients(sf, world.clerk, "smith jo")
        with db.quick_read(sf) as s:  # any other statement is prepared
            s.execute(sa.text("SELECT count(*) FROM products WHERE id = :i"), {"i": NOBODY})
    prepared = _prepared(engine)
    assert any("FROM products WHERE id" in s for s in prepared), prepared
    assert [s for s in prepared if any(p in s for p in SEARCH_PARTS)] == []
