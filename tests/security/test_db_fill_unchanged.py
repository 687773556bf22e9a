"""The check a pipelined fill writes first (migration 0025), as a staff login
with psql would try it: it runs with the caller's own privileges (it can lock
only what the caller could lock itself, and writes nothing), PUBLIC may not run
it, and it refuses what changed."""

from __future__ import annotations

import psycopg
import pytest

from .conftest import Pharmacy, refused

CALL = ("SELECT getmeds_fill_unchanged(%(rx)s, %(v)s, ARRAY[%(lot)s]::uuid[], "
        "ARRAY[%(take)s]::integer[], current_date, now())")


def _counts(ph: Pharmacy) -> tuple:
    return tuple(ph.one(f"SELECT count(*) FROM {t}") for t in (
        "dispenses", "stock_movements", "audit_log", "controlled_register"))


def test_it_runs_as_its_caller_and_not_for_public(pharmacy: Pharmacy):
    row = pharmacy.q("SELECT p.prosecdef, p.proconfig, "
                     "has_function_privilege('public', p.oid, 'EXECUTE') "
                     "FROM pg_proc AS p WHERE p.proname = 'getmeds_fill_unchanged'")
    assert len(row) == 1
    secdef, config, public = row[0]
    assert secdef is False and public is False
    assert any(c.startswith("search_path=pg_catalog") and c.endswith("pg_temp")
               for c in config)


@pytest.mark.parametrize("who", ["pharmacist", "technician", "clerk", "doctor"])
def test_it_writes_nothing_and_locks_only_what_the_caller_may(pharmacy: Pharmacy, who):
    w = pharmacy.world
    product, lot = pharmacy.stocked(f"Checkol{who[:4]}", 10)
    rx = pharmacy.rx(product.id, quantity=5)
    version = pharmacy.one("SELECT version FROM prescriptions WHERE id = %s", (rx.id,))
    params = {"rx": rx.id, "v": version, "lot": lot, "take": 5}
    before = _counts(pharmacy)
    actor = getattr(w, who)
    with pharmacy.login(actor) as c:
        may_lock = True
        try:
            with c.transaction():
                c.execute("SELECT 1 FROM prescriptions WHERE id = %s FOR UPDATE", (rx.id,))
                c.execute("SELECT 1 FROM stock_lots WHERE id = %s FOR UPDATE", (lot,))
        except psycopg.errors.InsufficientPrivilege:
            may_lock = False
        if may_lock:
            c.execute(CALL, params)  # as it was read: accepted, and nothing is written
            c.commit()
        else:  # no more than the caller may do itself (rows it cannot see are not there)
            refused(c, CALL, params)
        c.rollback()
        # what changed is refused, whoever asks
        refused(c, CALL, dict(params, v=version + 1))
        refused(c, CALL, dict(params, take=11))
    assert _counts(pharmacy) == before
