"""Reports on a read replica (the profile's reporting_host, cloud/template.yaml's
ReportingReplica), against the local PostgreSQL: every report reads only (it
runs on a connection where every transaction is read only, as on a hot
standby), the signed-in workstation's reports and ``getmeds-admin report`` go
to the reporting host, and ``--primary`` reads the database itself. The
"replica" here is the same server behind a proxy, so what reached it can be
counted."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from pypdf import PdfReader

from benchmarks.netdelay import DelayProxy
from getmeds_desktop import cli, config, db
from getmeds_desktop.config import DatabaseTarget
from getmeds_desktop.models import StockMovement
from getmeds_desktop.reports import ReportParams, generate
from getmeds_desktop.services import dispensing
from getmeds_desktop.services.dispensing import DispenseRequest
from getmeds_desktop.startup import Connector
from tests.fixtures.data import NO_SCAN, PASSWORD, World, build_world


def _period() -> ReportParams:
    today = dt.datetime.now(dt.UTC).date()
    return ReportParams(start=today - dt.timedelta(days=30), end=today + dt.timedelta(days=1))


@pytest.fixture
def pg_world(pg_fresh_db) -> Iterator[tuple[str, World, uuid.UUID, uuid.UUID]]:
    engine = db.make_engine(pg_fresh_db)
    world = build_world(db.session_factory(engine))
    product = world.product("Reportamox")
    world.receive(product.id, 40, lot="REP-1")
    patient = world.patient("Rhea", "Report")
    rx = world.rx(patient.id, product.id, quantity=10)
    done = dispensing.dispense(world.sf, world.pharmacist, DispenseRequest(
        prescription_id=rx.id, request_id=uuid.uuid4(), no_scan_reason=NO_SCAN))
    yield pg_fresh_db, world, patient.id, done.dispense_id
    engine.dispose()


def _lot_of(world: World, dispense_id: uuid.UUID) -> uuid.UUID:
    with db.read_session(world.sf) as s:
        return s.scalar(sa.select(StockMovement.lot_id).where(
            StockMovement.dispense_id == dispense_id))


@pytest.fixture
def replica(pg_fresh_db) -> Iterator[DelayProxy]:
    u = sa.engine.make_url(pg_fresh_db)
    with DelayProxy(u.host or "127.0.0.1", u.port or 5432) as proxy:
        yield proxy


def test_every_report_reads_only(pg_world, tmp_path):
    url, world, patient_id, dispense_id = pg_world
    lot_id = _lot_of(world, dispense_id)
    read_only = db.make_engine(url, connect_args={
        "options": "-c default_transaction_read_only=on"})
    try:
        with read_only.connect() as c:  # the connection refuses writes, as a standby does
            assert c.exec_driver_sql("SHOW default_transaction_read_only").scalar() == "on"
        sf = db.session_factory(read_only)
        period = _period()
        cases = {
            "inventory": ReportParams(), "reorder": ReportParams(),
            "expiry": ReportParams(days=90), "dispensing-log": period,
            "controlled-register": ReportParams(start=period.start, end=period.end,
                                                schedule="II"),
            "patient-history": ReportParams(patient_id=patient_id),
            "demographics": ReportParams(), "staff": ReportParams(),
            "label": ReportParams(dispense_id=dispense_id), "audit": period,
            "recall": ReportParams(lot_id=lot_id),
        }
        for name, params in cases.items():
            out = tmp_path / f"{name}.pdf"
            # labels are printed by those who fill (an administrator has no practice role)
            who = world.pharmacist if name == "label" else world.admin
            result = generate(sf, who, name, params, out)
            assert result.pages >= 1 and len(PdfReader(out).pages) == result.pages, name
    finally:
        read_only.dispose()


def test_a_signed_in_workstations_reports_read_the_reporting_host(pg_world, replica, tmp_path):
    url, world, _patient, _dispense = pg_world
    u = sa.engine.make_url(url)
    target = DatabaseTarget(url=url, profile="pharmacy", label="Pharmacy",
                            reporting_url=u.set(host=replica.host, port=replica.port)
                            .render_as_string(hide_password=False))
    connector = Connector()
    try:
        opened, actor = connector.sign_in(target, world.admin.username, PASSWORD)
        assert opened.report_sf is opened.reporting_sf
        with replica.counting() as n:
            generate(opened.report_sf, actor, "inventory", ReportParams(),
                     tmp_path / "inventory.pdf")
        assert n[0] >= 1  # the report went to the reporting host
        with replica.counting() as n:  # (its pooled connection stays open and quiet)
            generate(opened.sf, actor, "inventory", ReportParams(), tmp_path / "again.pdf")
        assert n[0] == 0  # and the database itself is not behind the proxy
        # signed in there as the staff member's own login, not another
        with opened.reporting_engine.connect() as c:
            assert c.exec_driver_sql("SELECT current_user").scalar() == actor.username
    finally:
        connector.close_all()
    replica.wait_connections(0)  # close_all disposed the reporting engine too


def test_getmeds_admin_report_uses_the_reporting_host_unless_told_otherwise(
        pg_world, replica, tmp_path, monkeypatch, capsys):
    url, _world, _patient, _dispense = pg_world
    u = sa.engine.make_url(url)
    site = tmp_path / "getmeds.toml"
    site.write_text(f"""
default_profile = "pharmacy"
[profiles.pharmacy]
host = "{u.host}"
port = {u.port or 5432}
database = "{u.database}"
username = "{u.username}"
reporting_host = "{replica.host}"
reporting_port = {replica.port}
""", encoding="utf-8")
    monkeypatch.setenv("GETMEDS_SITE_CONFIG", str(site))
    monkeypatch.delenv("GETMEDS_DATABASE_URL", raising=False)
    if u.password:  # the CI server's throwaway password, as libpq reads it
        monkeypatch.setenv("PGPASSWORD", u.password)
    target = config.resolve_database()
    assert target.reporting_url and f":{replica.port}/" in target.reporting_url
    with replica.counting() as n:
        code = cli.main(["report", "inventory", "--out", str(tmp_path / "r.pdf")])
    assert code == 0, capsys.readouterr().err
    assert n[0] >= 1
    replica.wait_connections(0)  # (the replica connection's goodbye counted before)
    with replica.counting() as n:
        code = cli.main(["report", "inventory", "--primary", "--out", str(tmp_path / "p.pdf")])
    assert code == 0, capsys.readouterr().err
    assert n[0] == 0
    assert Path(tmp_path / "r.pdf").is_file() and Path(tmp_path / "p.pdf").is_file()
