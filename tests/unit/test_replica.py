"""The offline replica and the change feed (migration 0026), on a real
PostgreSQL server with real commits and the staff members' own logins."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import stat
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from getmeds_desktop import db
from getmeds_desktop.models import Base, Schedule
from getmeds_desktop.services import dispensing, inventory, ledger, patients
from getmeds_desktop.services.context import Actor
from getmeds_desktop.services.dispensing import DispenseRequest
from getmeds_desktop.services.patients import AllergyDraft, PatientDraft
from getmeds_desktop.sync.replica import (
    REPLICATED,
    WINDOWED,
    Replica,
    ReplicaMismatch,
    SyncCancelled,
)
from tests.fixtures.data import NO_SCAN, PASSWORD, World, build_world


@dataclasses.dataclass
class Server:
    url: str
    engine: sa.Engine
    sf: sessionmaker[Session]  # the owner's
    world: World
    engines: list[sa.Engine]

    def login(self, who: Actor) -> sessionmaker[Session]:
        """A session factory on the staff member's own login (SCRAM password)."""
        engine = db.make_engine(self.url, username=who.username, password=PASSWORD)
        self.engines.append(engine)
        return db.session_factory(engine)

    def q(self, sql: str, **params: object) -> list[sa.Row]:
        with self.engine.begin() as c:
            result = c.execute(sa.text(sql), params)
            return list(result) if result.returns_rows else []


@pytest.fixture
def server(pg_fresh_db) -> Iterator[Server]:
    engine = db.make_engine(pg_fresh_db)
    sf = db.session_factory(engine)
    srv = Server(pg_fresh_db, engine, sf, build_world(sf), [])
    yield srv
    for e in srv.engines:
        e.dispose()
    engine.dispose()


@pytest.fixture
def replica(tmp_path) -> Iterator[Replica]:
    rep = Replica.open(tmp_path / "replica" / "getmeds-replica.sqlite3")
    yield rep
    rep.close()


def fill(w: World, rx_id: uuid.UUID) -> dispensing.DispenseResult:
    return dispensing.dispense(w.sf, w.pharmacist, DispenseRequest(
        prescription_id=rx_id, request_id=uuid.uuid4(), no_scan_reason=NO_SCAN))


def stocked_world(srv: Server) -> dict[str, uuid.UUID]:
    """Products (one controlled) with stock, a patient with a filled
    prescription, and a patient whose last activity was three years ago."""
    w = srv.world
    amox = w.product("Amoxicillin")
    oxy = w.product("Oxycodone", schedule=Schedule.II)
    w.receive(amox.id, 100, lot="AMX-1")
    w.receive(oxy.id, 40, lot="OXY-1")
    recent = w.patient("Rita", "Recent", allergies=("Latex",))
    rx = w.rx(recent.id, amox.id, quantity=10)
    fill(w, rx.id)
    old = w.patient("Olga", "Oldtimer")
    old_rx = w.rx(old.id, amox.id, quantity=5)
    fill(w, old_rx.id)
    three_years = dt.datetime.now(dt.UTC) - dt.timedelta(days=3 * 365)
    srv.q("UPDATE patients SET created_at = :t, updated_at = :t WHERE id = :p",
          t=three_years, p=old.id)
    srv.q("UPDATE prescriptions SET created_at = :t, updated_at = :t WHERE patient_id = :p",
          t=three_years, p=old.id)
    # a fill's row is permanent on the server: only its owner's session may date it back
    srv.q("ALTER TABLE dispenses DISABLE TRIGGER USER")
    try:
        srv.q("UPDATE dispenses SET dispensed_at = :t WHERE prescription_id = :r",
              t=three_years, r=old_rx.id)
    finally:
        srv.q("ALTER TABLE dispenses ENABLE TRIGGER USER")
    return {"amox": amox.id, "oxy": oxy.id, "recent": recent.id, "old": old.id,
            "rx": rx.id, "old_rx": old_rx.id}


def local_ids(rep: Replica, table: str, column: str = "id") -> set[object]:
    t = sa.table(table, sa.column(column, sa.Uuid()))
    with rep.session_factory()() as s:
        return set(s.execute(sa.select(t.c[column])).scalars())


def balances(sf: sessionmaker[Session]) -> tuple[dict[uuid.UUID, int], dict[uuid.UUID, int]]:
    lots = sa.table("stock_lots", sa.column("id", sa.Uuid()), sa.column("on_hand", sa.Integer()))
    ps = sa.table("product_stock", sa.column("product_id", sa.Uuid()),
                  sa.column("on_hand", sa.Integer()))
    with db.read_session(sf) as s:
        return (dict(s.execute(sa.select(lots.c.id, lots.c.on_hand)).all()),
                dict(s.execute(sa.select(ps.c.product_id, ps.c.on_hand)).all()))


# ------------------------------------------------------------------ first sync


def test_first_sync_copies_the_window_and_the_balances(server, replica):
    ids = stocked_world(server)
    with replica.session_factory()() as s:  # the migration's own (the settings row)
        audited = s.scalar(sa.text("SELECT count(*) FROM audit_log"))
    seen: list[tuple[int, int]] = []
    result = replica.first_sync(server.login(server.world.pharmacist),
                                progress=lambda d, t: seen.append((d, t)))
    # the patient with recent activity and what is theirs; not the one of three years ago
    assert ids["recent"] in local_ids(replica, "patients")
    assert ids["old"] not in local_ids(replica, "patients")
    assert ids["rx"] in local_ids(replica, "prescriptions")
    assert ids["old_rx"] not in local_ids(replica, "prescriptions")
    assert len(local_ids(replica, "patient_allergies")) == 1
    assert result.patients == len(local_ids(replica, "patients"))
    # the whole ledger, and the server's balances as they are
    assert balances(replica.session_factory()) == balances(server.sf)
    assert ledger.verify(replica.session_factory()).ok
    on_server = {r[0] for r in server.q("SELECT id FROM stock_movements")}
    assert local_ids(replica, "stock_movements") == on_server
    # no audit row and no second register entry came from the copy
    with replica.session_factory()() as s:
        assert s.scalar(sa.text("SELECT count(*) FROM audit_log")) == audited
        local_register = s.scalar(sa.text("SELECT count(*) FROM controlled_register"))
    assert local_register == server.q("SELECT count(*) FROM controlled_register")[0][0] > 0
    # progress: from 0 to the total, never backwards
    assert seen[0][0] == 0 and seen[-1][0] == seen[-1][1] > 0
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert replica.cursor is not None and replica.cursor.xmax == result.cursor
    assert replica.synced_at is not None


def test_replica_files_are_private(server, replica):
    replica.first_sync(server.login(server.world.pharmacist))
    assert stat.S_IMODE(os.stat(replica.path.parent).st_mode) == 0o700
    files = [p for p in replica.path.parent.iterdir() if p.is_file()]
    assert replica.path in files
    for p in files:
        assert stat.S_IMODE(os.stat(p).st_mode) == 0o600, p


def test_a_replica_of_an_older_schema_is_upgraded_despite_its_references_outside_the_window(
        server, replica):
    """A ledger movement refers to a fill of a patient outside the window: the
    embedded database's upgrade would refuse such a file (its foreign key check);
    the replica's accepts the references it had, and refuses new ones."""
    from alembic import command

    stocked_world(server)
    replica.first_sync(server.login(server.world.pharmacist))
    with replica.engine.connect() as c:
        assert c.exec_driver_sql("PRAGMA foreign_key_check").all()
    with replica.engine.begin() as c:
        command.downgrade(db.alembic_config(c), "0025")
    replica.close()
    with pytest.raises(Exception, match="break foreign keys"):
        db.prepare_embedded(replica.path)[0].dispose()
    again = Replica.open(replica.path)
    try:
        assert db.schema_state(again.engine)[2] == "current"
        assert ledger.verify(again.session_factory()).ok
        copies = [p for p in replica.path.parent.iterdir() if ".before-upgrade-" in p.name]
        assert copies and all(stat.S_IMODE(os.stat(p).st_mode) == 0o600 for p in copies)
    finally:
        again.close()


def test_a_cancelled_first_sync_leaves_the_replica_as_it_was(server, replica):
    stocked_world(server)
    pharmacist = server.login(server.world.pharmacist)
    calls = []

    def cancel() -> bool:
        calls.append(1)
        return len(calls) >= 2

    with pytest.raises(SyncCancelled):
        replica.first_sync(pharmacist, cancelled=cancel)
    assert local_ids(replica, "products") == set()
    assert replica.cursor is None
    # and the embedded schema's triggers are all there again
    with replica.engine.connect() as c:
        triggers = c.exec_driver_sql(
            "SELECT count(*) FROM sqlite_master WHERE type = 'trigger'").scalar()
    fresh = Replica.open(replica.path.with_name("other.sqlite3"))
    try:
        with fresh.engine.connect() as c:
            assert triggers == c.exec_driver_sql(
                "SELECT count(*) FROM sqlite_master WHERE type = 'trigger'").scalar()
    finally:
        fresh.close()
    replica.first_sync(pharmacist)
    assert local_ids(replica, "products")


# ------------------------------------------------------------------------ pull


def test_pull_applies_inserts_updates_and_deletes(server, replica):
    ids = stocked_world(server)
    w = server.world
    pharmacist = server.login(w.pharmacist)
    replica.first_sync(pharmacist)
    assert replica.pull(pharmacist).total == 0  # nothing changed: nothing moves

    new = w.product("Lisinopril")
    w.receive(new.id, 30, lot="LIS-1")
    info = patients.get_patient(w.sf, w.pharmacist, ids["recent"])
    patients.update_patient(w.sf, w.clerk, ids["recent"], PatientDraft(
        first_name="Rita", last_name="Renamed", date_of_birth=info.date_of_birth,
        allergies=[AllergyDraft("Sulfa")], no_known_allergies=False),
        expected_version=info.version)
    rx2 = w.rx(ids["recent"], new.id, quantity=3)
    fill(w, rx2.id)

    result = replica.pull(pharmacist)
    assert new.id in local_ids(replica, "products")
    assert rx2.id in local_ids(replica, "prescriptions")
    with replica.session_factory()() as s:
        assert s.scalar(sa.text("SELECT last_name FROM patients")) == "Renamed"
        assert list(s.execute(sa.text("SELECT allergen FROM patient_allergies")).scalars()
                    ) == ["Sulfa"]
    # the latex allergy was deleted on the server: its tombstone deleted it here
    assert result.deleted.get("patient_allergies") == 1
    assert ids["recent"] in result.changed["patients"]
    assert new.id in result.changed["products"]
    assert balances(replica.session_factory()) == balances(server.sf)
    assert ledger.verify(replica.session_factory()).ok
    assert replica.pull(pharmacist).total == 0


def test_a_transaction_that_commits_last_is_not_missed(server, replica):
    """T1 takes its transaction id (and stamp) first, T2 after it; T2 commits,
    a pull runs, T1 commits, a pull runs: T1's row arrives all the same."""
    pharmacist = server.login(server.world.pharmacist)
    replica.first_sync(pharmacist)
    insert = sa.text("INSERT INTO categories (id, name) VALUES (:id, :name)")
    first, second = uuid.uuid4(), uuid.uuid4()
    with server.engine.connect() as t1, server.engine.connect() as t2:
        t1.execute(insert, {"id": first, "name": "Stamped first"})
        t2.execute(insert, {"id": second, "name": "Stamped second"})
        xids = [c.execute(sa.text("SELECT change_xid FROM categories WHERE id = :i"),
                          {"i": i}).scalar() for c, i in ((t1, first), (t2, second))]
        assert xids[0] < xids[1]
        t2.commit()
        result = replica.pull(pharmacist)
        assert second in result.changed["categories"]
        assert first not in local_ids(replica, "categories")
        # T1 was in flight at the pull's snapshot: the cursor says so
        assert replica.cursor is not None and xids[0] in replica.cursor.in_flight
        t1.commit()
    result = replica.pull(pharmacist)
    assert first in result.changed["categories"]
    assert {first, second} <= local_ids(replica, "categories")


def test_a_patient_who_comes_back_brings_their_records(server, replica):
    ids = stocked_world(server)
    w = server.world
    pharmacist = server.login(w.pharmacist)
    replica.first_sync(pharmacist)
    assert ids["old"] not in local_ids(replica, "patients")
    w.rx(ids["old"], ids["amox"], quantity=2)
    replica.pull(pharmacist)
    assert ids["old"] in local_ids(replica, "patients")
    # with the records from before the window
    assert ids["old_rx"] in local_ids(replica, "prescriptions")
    assert ledger.verify(replica.session_factory()).ok


def test_a_patient_whose_record_is_edited_comes_back_with_their_records(server, replica):
    ids = stocked_world(server)
    w = server.world
    pharmacist = server.login(w.pharmacist)
    replica.first_sync(pharmacist)
    info = patients.get_patient(w.sf, w.pharmacist, ids["old"])
    patients.update_patient(w.sf, w.clerk, ids["old"], PatientDraft(
        first_name="Olga", last_name="Oldtimer", date_of_birth=info.date_of_birth,
        phone="555-0100", no_known_allergies=True), expected_version=info.version)
    replica.pull(pharmacist)
    assert ids["old"] in local_ids(replica, "patients")
    assert ids["old_rx"] in local_ids(replica, "prescriptions")
    assert len(local_ids(replica, "dispenses")) == len(server.q("SELECT id FROM dispenses"))


def test_pull_refuses_a_replica_made_for_another_login(server, replica):
    replica.first_sync(server.login(server.world.pharmacist))
    with pytest.raises(ReplicaMismatch, match="made for"):
        replica.pull(server.login(server.world.clerk))


# ------------------------------------------------------------------- refetch


def test_refetch_replaces_offline_rows_by_the_servers(server, replica):
    ids = stocked_world(server)
    w = server.world
    pharmacist = server.login(w.pharmacist)
    replica.first_sync(pharmacist)
    local = replica.session_factory()
    lot = next(iter(r[0] for r in server.q(
        "SELECT id FROM stock_lots WHERE lot_number = 'AMX-1'")))
    # offline: a receipt on the replica (its triggers move the local balance)
    offline = inventory.adjust_stock(local, w.pharmacist, lot, -5, "broken bottle")
    before = balances(local)
    assert before != balances(server.sf)
    # the same write reached the server with another id (as a replay would)
    online = inventory.adjust_stock(w.sf, w.pharmacist, lot, -5, "broken bottle")
    result = replica.refetch(pharmacist, {"stock_movements": {offline.id,
                                                              online.id}})
    assert offline.id in result.changed["stock_movements"]
    assert offline.id not in local_ids(replica, "stock_movements")
    assert online.id in local_ids(replica, "stock_movements")
    assert balances(local) == balances(server.sf)
    assert ledger.verify(local).ok
    # a row gone from the server is gone here
    srv_patient = ids["recent"]
    replica.refetch(pharmacist, {"patient_allergies": local_ids(replica, "patient_allergies"),
                                 "patients": {srv_patient}})
    assert srv_patient in local_ids(replica, "patients")
    gone = uuid.uuid4()
    assert replica.refetch(pharmacist, {"categories": {gone}}).changed["categories"] == {gone}


# -------------------------------------------------------------- who sees what


def _keys(conn: sa.Connection, table: str) -> set[tuple[object, ...]]:
    cols = [c.name for c in Base.metadata.tables[table].primary_key.columns]
    return {tuple(str(v).replace("-", "") for v in r) for r in conn.execute(sa.text(
        f"SELECT {', '.join(cols)} FROM {table}"))}


def _readable(server: Server, who: Actor) -> dict[str, set[tuple[object, ...]] | None]:
    """The keys of what the login can read in each replicated table itself
    (None: it may not read the table)."""
    out: dict[str, set[tuple[object, ...]] | None] = {}
    engine = db.make_engine(server.url, username=who.username, password=PASSWORD,
                            poolclass=sa.NullPool)
    try:
        for table in REPLICATED:
            with engine.connect() as c:
                try:
                    out[table] = _keys(c, table)
                except sa.exc.ProgrammingError:
                    out[table] = None
    finally:
        engine.dispose()
    return out


UNREADABLE = {
    "clerk": {"controlled_register", "dea_forms", "dea_inventories", "dea_inventory_lines",
              "dispense_warnings", "stocktake_lines", "stocktakes"},
}


@pytest.mark.parametrize("role", ["clerk", "doctor", "technician"])
def test_a_login_s_replica_holds_only_what_it_may_read(server, tmp_path, role):
    ids = stocked_world(server)
    w = server.world
    if role == "doctor":  # a prescription of the doctor's own besides the others'
        own = server.q("SELECT prescriber_id FROM staff WHERE username = :u",
                       u=w.doctor.username)[0][0]
        w.rx(ids["recent"], ids["amox"], quantity=4, prescriber_id=own, actor=w.doctor)
    who = getattr(w, role)
    rep = Replica.open(tmp_path / role / "replica.sqlite3")
    try:
        login = server.login(who)
        rep.first_sync(login)
        w.receive(ids["amox"], 7, lot="AMX-2")
        patients.update_patient(w.sf, w.clerk, ids["recent"], PatientDraft(
            first_name="Rita", last_name="Later", date_of_birth=dt.date(1960, 5, 17),
            no_known_allergies=True), expected_version=patients.get_patient(
                w.sf, w.pharmacist, ids["recent"]).version)
        rep.pull(login)
        may = _readable(server, who)
        with rep.engine.connect() as c:
            here = {t: _keys(c, t) for t in REPLICATED}
        for table in REPLICATED:
            allowed = may[table]
            if allowed is None:
                assert here[table] == set(), table
            elif table in WINDOWED:
                # what it may read, less the records of the patient of three years ago
                assert here[table] <= allowed, table
            else:
                assert here[table] == allowed, table
        assert {t for t in REPLICATED if may[t] is None} >= UNREADABLE.get(role, set())
        if role == "doctor":  # only their own prescriptions, and the fills of those
            assert len(here["prescriptions"]) == 1
            assert here["prescriptions"] == may["prescriptions"]
    finally:
        rep.close()


def test_writers_committing_in_any_order_while_pulls_run_miss_nothing(server, replica):
    """Four writers whose transactions overlap and commit in random order, with
    updates and deletes; pulls run all the while. Afterwards the replica holds
    exactly the server's rows."""
    import random
    import threading

    pharmacist = server.login(server.world.pharmacist)
    replica.first_sync(pharmacist)
    stop = threading.Event()
    errors: list[BaseException] = []

    def writer(seed: int) -> None:
        rnd = random.Random(seed)
        mine: list[uuid.UUID] = []
        try:
            for i in range(25):
                with server.engine.begin() as c:
                    new = uuid.uuid4()
                    c.execute(sa.text("INSERT INTO categories (id, name) VALUES (:i, :n)"),
                              {"i": new, "n": f"W{seed}-{i}"})
                    mine.append(new)
                    if len(mine) > 3 and rnd.random() < 0.3:
                        c.execute(sa.text("UPDATE categories SET name = name || '+' "
                                          "WHERE id = :i"), {"i": rnd.choice(mine[:-1])})
                    if len(mine) > 3 and rnd.random() < 0.2:
                        gone = mine.pop(rnd.randrange(len(mine) - 1))
                        c.execute(sa.text("DELETE FROM categories WHERE id = :i"), {"i": gone})
                    stop.wait(rnd.random() * 0.02)  # the transaction stays open a while
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for th in threads:
        th.start()
    pulls = 0
    while any(th.is_alive() for th in threads):
        replica.pull(pharmacist)
        pulls += 1
    for th in threads:
        th.join()
    assert not errors
    replica.pull(pharmacist)
    with server.engine.connect() as c:
        on_server = dict(c.execute(sa.text("SELECT id, name FROM categories")).all())
    with replica.engine.connect() as c:
        here = dict(c.execute(sa.select(
            sa.column("id", sa.Uuid()), sa.column("name")).select_from(
                sa.table("categories"))).all())
    assert here == on_server
    assert pulls > 3


def test_deleting_a_product_deletes_it_and_what_cascaded_from_it(server, replica):
    """Tombstones of a key of one column and of two (a drug class is keyed by
    product and name), written for the rows the server's cascade deleted."""
    w = server.world
    pharmacist = server.login(w.pharmacist)
    product = w.product("Metformin", classes=("biguanides",))
    replica.first_sync(pharmacist)
    assert product.id in local_ids(replica, "products")
    assert product.id in local_ids(replica, "product_drug_classes", "product_id")
    server.q("DELETE FROM products WHERE id = :p", p=product.id)
    result = replica.pull(pharmacist)
    assert product.id in result.changed["products"]
    assert (product.id, "biguanides") in result.changed["product_drug_classes"]
    for table, column in (("products", "id"), ("product_drug_classes", "product_id"),
                          ("product_ingredients", "product_id"),
                          ("product_stock", "product_id")):
        assert product.id not in local_ids(replica, table, column), table


def test_the_services_work_on_the_replica_after_a_sync(server, replica):
    """What an offline workstation does: a new prescription and its fill, by
    the same services, on the replica; the embedded triggers are all in place
    again (the balance moves, the ledger holds)."""
    from getmeds_desktop.services import prescriptions, staff
    from getmeds_desktop.services.prescriptions import PrescriptionDraft

    ids = stocked_world(server)
    w = server.world
    lis = w.product("Lisinopril")
    w.receive(lis.id, 50, lot="LIS-9")
    replica.first_sync(server.login(w.pharmacist))
    local = replica.session_factory()
    me = staff.actor_for_username(local, w.pharmacist.username)
    rx = prescriptions.create_prescription(local, me, PrescriptionDraft(
        patient_id=ids["recent"], prescriber_id=w.prescriber_id, product_id=lis.id,
        sig="Take 1 by mouth daily", quantity=6, days_supply=6, refills_authorized=0,
        date_written=dt.date.today()))
    before = balances(local)[1][lis.id]
    dispensing.dispense(local, me, DispenseRequest(
        prescription_id=rx.id, request_id=uuid.uuid4(), no_scan_reason=NO_SCAN))
    assert balances(local)[1][lis.id] == before - 6
    assert ledger.verify(local).ok
    with local() as s:  # the local write was audited by the embedded triggers
        assert s.scalar(sa.text("SELECT count(*) FROM audit_log WHERE table_name = "
                                "'dispenses'")) == 1


def test_a_table_the_login_may_no_longer_read_is_emptied_and_more_needs_a_new_copy(
        server, replica):
    ids = stocked_world(server)
    w = server.world
    clerk = server.login(w.clerk)
    patients.add_feedback(w.sf, w.clerk, ids["recent"], "Friendly staff")
    replica.first_sync(clerk)
    assert local_ids(replica, "patient_feedback")
    group = server.q("SELECT role_prefix FROM db_security")[0][0] + "clerk"
    server.q(f'REVOKE SELECT ON patient_feedback FROM "{group}"')
    replica.pull(clerk)
    assert local_ids(replica, "patient_feedback") == set()
    server.q(f'GRANT SELECT ON patient_feedback, stocktakes TO "{group}"')
    with pytest.raises(ReplicaMismatch, match="may now read more"):
        replica.pull(clerk)
    replica.first_sync(clerk)  # a new copy holds it again
    assert local_ids(replica, "patient_feedback")


def test_pull_needs_a_first_sync(server, replica):
    with pytest.raises(ReplicaMismatch, match="first sync"):
        replica.pull(server.login(server.world.pharmacist))


def test_fills_are_read_through_their_prescriptions(server, replica):
    """A login that may read fills but not prescriptions gets neither (a fill
    belongs to the window through its prescription), and its syncs work."""
    stocked_world(server)
    w = server.world
    group = server.q("SELECT role_prefix FROM db_security")[0][0] + "clerk"
    server.q(f'REVOKE SELECT ON prescriptions FROM "{group}"')
    clerk = server.login(w.clerk)
    replica.first_sync(clerk)
    lis = w.product("Lisinopril")
    w.receive(lis.id, 5)
    fill(w, w.rx(w.patient("Fay", "Newfill").id, lis.id, quantity=2).id)
    assert "stock_lots" in replica.pull(clerk).changed
    assert local_ids(replica, "dispenses") == local_ids(replica, "prescriptions") == set()
    assert local_ids(replica, "patients")


def test_an_encrypted_replica_is_upgraded_and_its_copy_stays_encrypted(server, tmp_path):
    """The app's replica is encrypted (SQLCipher): its before-upgrade copy is the
    encrypted file, never a plain copy of patient data."""
    import secrets as random

    from alembic import command

    key = random.token_bytes(32)
    path = tmp_path / "offline" / "replica.sqlite3"
    rep = Replica.open(path, key=key)
    stocked_world(server)
    rep.first_sync(server.login(server.world.pharmacist))
    with rep.engine.begin() as c:
        command.downgrade(db.alembic_config(c), "0025")
    rep.close()
    with pytest.raises(db.WrongKey):
        Replica.open(path, key=bytes(32))
    again = Replica.open(path, key=key)
    try:
        assert db.schema_state(again.engine)[2] == "current"
        assert ledger.verify(again.session_factory()).ok
        copies = [p for p in path.parent.iterdir() if ".before-upgrade-" in p.name]
        assert len(copies) == 1
        assert not copies[0].read_bytes().startswith(b"SQLite format 3")
        assert stat.S_IMODE(os.stat(copies[0]).st_mode) == 0o600
        copy = db.make_encrypted_engine(copies[0], key)  # the key opens it
        try:
            assert db.current_revision(copy) == "0025"
        finally:
            copy.dispose()
    finally:
        again.close()


def test_a_replica_older_than_the_pruned_tombstones_asks_for_a_new_copy(server, replica,
                                                                         tmp_path):
    ids = stocked_world(server)
    w = server.world
    pharmacist = server.login(w.pharmacist)
    replica.first_sync(pharmacist)
    server.q("DELETE FROM patient_allergies WHERE patient_id = :p", p=ids["recent"])
    assert server.q("SELECT getmeds_prune_tombstones(interval '0 seconds')")[0][0] >= 1
    assert server.q("SELECT count(*) FROM change_tombstones WHERE table_name = "
                    "'patient_allergies'")[0][0] == 0
    with pytest.raises(ReplicaMismatch, match="older than the deletions"):
        replica.pull(pharmacist)
    fresh = Replica.open(tmp_path / "fresh" / "replica.sqlite3")
    try:
        fresh.first_sync(pharmacist)
        assert fresh.pull(pharmacist).total == 0  # a copy made after the pruning is fine
        assert local_ids(fresh, "patient_allergies") == set()
    finally:
        fresh.close()
