"""The change feed (0026) against a hostile staff login: the stamp cannot be
forged, tombstones cannot be written or removed, and a login reads only the
tombstones of tables it may read itself."""

from __future__ import annotations

import json
import uuid

from tests.security.conftest import refused


def test_a_login_cannot_choose_its_rows_stamp(pharmacy):
    with pharmacy.login(pharmacy.world.clerk) as c:
        cid = uuid.uuid4()
        c.execute("INSERT INTO patients (id, first_name, last_name, date_of_birth, sex,"
                  " active, allergy_status, pregnant, breastfeeding, version, created_at,"
                  " updated_at, change_xid) VALUES (%s, 'Forged', 'Stamp', '1970-01-01',"
                  " 'unknown', true, 'not_asked', false, false, 1, now(), now(), 1)", (cid,))
        xid = c.execute("SELECT pg_current_xact_id()::text::bigint").fetchone()[0]
        assert c.execute("SELECT change_xid FROM patients WHERE id = %s",
                         (cid,)).fetchone()[0] == xid
        c.execute("UPDATE patients SET change_xid = 2 WHERE id = %s", (cid,))
        assert c.execute("SELECT change_xid FROM patients WHERE id = %s",
                         (cid,)).fetchone()[0] == xid
        c.rollback()


def test_tombstones_are_written_by_the_database_only(pharmacy):
    with pharmacy.login(pharmacy.world.admin) as c:
        refused(c, "INSERT INTO change_tombstones (table_name, row_key, change_xid, deleted_at)"
                   " VALUES ('patients', '{}', 1, now())")
        refused(c, "DELETE FROM change_tombstones")
        refused(c, "UPDATE change_tombstones SET change_xid = 0")


def test_a_login_reads_the_tombstones_of_tables_it_may_read_only(pharmacy):
    hidden, shown = uuid.uuid4(), uuid.uuid4()
    for table, key in (("stocktake_lines", hidden), ("patient_allergies", shown)):
        pharmacy.q("INSERT INTO change_tombstones (table_name, row_key, change_xid, deleted_at)"
                   " VALUES (%s, %s, 1, now())", (table, json.dumps({"id": str(key)})))

    def keys(who) -> set[str]:
        with pharmacy.login(who) as c:
            return {r[0] for r in c.execute("SELECT row_key ->> 'id' FROM change_tombstones")}

    clerk = keys(pharmacy.world.clerk)
    assert str(shown) in clerk and str(hidden) not in clerk
    assert {str(shown), str(hidden)} <= keys(pharmacy.world.pharmacist)


def test_every_login_reads_where_pruned_tombstones_end(pharmacy):
    pharmacy.q("INSERT INTO change_tombstones (table_name, row_key, change_xid, deleted_at)"
               " VALUES ('stocktake_lines', '{}', 1, now() - interval '1 day')")
    pharmacy.q("SELECT getmeds_prune_tombstones(interval '1 hour')")
    for who in (pharmacy.world.clerk, pharmacy.world.doctor):
        with pharmacy.login(who) as c:
            below = c.execute("SELECT max(change_xid) FROM change_tombstones "
                              "WHERE table_name = '*pruned*'").fetchone()[0]
        assert below is not None and below >= 1
