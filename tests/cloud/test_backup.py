"""Backups to S3 and restores, against moto (S3, SNS, SQS, Secrets Manager) and
the real local PostgreSQL with pg_dump and pg_restore."""

from __future__ import annotations

import importlib.util
import itertools
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import boto3
import pytest
import sqlalchemy as sa
from moto import mock_aws

from getmeds_desktop import db
from getmeds_desktop.backup import core
from getmeds_desktop.models import Schedule
from getmeds_desktop.services import dispensing
from getmeds_desktop.services.dispensing import DispenseRequest
from tests.fixtures.data import NO_SCAN, PASSWORD, build_world
from tests.fixtures.database import _pg_admin_engine, pg_admin_url, role_prefix

ROOT = Path(__file__).resolve().parents[2]
BUCKET = "rivera-pharmacy-backups"
_n = itertools.count(1)


def load_handler():
    spec = importlib.util.spec_from_file_location(
        "backup_handler", ROOT / "cloud" / "backup_lambda" / "handler.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def aws_env(monkeypatch) -> None:
    for var in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")


@pytest.fixture
def aws(aws_env) -> Iterator[SimpleNamespace]:
    with mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        sns = boto3.client("sns")
        topic = sns.create_topic(Name="getmeds-backup-alerts")["TopicArn"]
        sqs = boto3.client("sqs")
        queue = sqs.create_queue(QueueName="alerts")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])[
            "Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)

        def alerts() -> list[dict]:
            msgs = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
            return [json.loads(m["Body"]) for m in msgs]

        yield SimpleNamespace(s3=s3, sns=sns, topic=topic, alerts=alerts,
                              secrets=boto3.client("secretsmanager"))


@pytest.fixture
def databases() -> Iterator[SimpleNamespace]:
    """New empty databases for restores (dropped afterwards)."""
    made: list[str] = []

    def new() -> dict:
        name = f"{role_prefix()}restore_{next(_n)}_{uuid.uuid4().hex[:6]}"
        with _pg_admin_engine().connect() as c:
            c.exec_driver_sql(f'CREATE DATABASE "{name}"')
        made.append(name)
        return core.params_from_url(
            pg_admin_url().set(database=name).render_as_string(hide_password=False))

    yield SimpleNamespace(new=new)
    with _pg_admin_engine().connect() as c:
        for name in made:
            c.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def source(pg_fresh_db) -> Iterator[SimpleNamespace]:
    """A pharmacy with data, and the read-only backup login of migration 0005."""
    engine = db.make_engine(pg_fresh_db)
    world = build_world(db.session_factory(engine))
    for i in range(3):
        p = world.product(f"Backupamol {i}", schedule=Schedule.II if i == 0 else Schedule.NONE)
        world.receive(p.id, 40 + i, lot=f"BK-{i}")
        pat = world.patient(f"Bea{i}", "Backup", allergies=("Latex",))
        rx = world.rx(pat.id, p.id, quantity=10)
        dispensing.dispense(world.sf, world.pharmacist,
                            DispenseRequest(prescription_id=rx.id, request_id=uuid.uuid4(),
                                            no_scan_reason=NO_SCAN))
    login = f"{role_prefix()}bk{next(_n)}"
    with _pg_admin_engine().connect() as c:
        c.exec_driver_sql(f"CREATE ROLE \"{login}\" LOGIN PASSWORD 'backup pass 123' "
                          f'IN ROLE "{role_prefix()}backup"')
    url = sa.engine.make_url(pg_fresh_db)
    secret = {"host": url.host, "port": url.port or 5432, "dbname": url.database,
              "username": login, "password": "backup pass 123", "sslmode": "disable"}
    yield SimpleNamespace(url=pg_fresh_db, engine=engine, world=world, secret=secret,
                          database=url.database)
    engine.dispose()


def _tables(url_or_params) -> list[str]:
    engine = _engine_for(url_or_params)
    with engine.connect() as c:
        names = c.execute(sa.text("SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                                  "ORDER BY tablename")).scalars().all()
    engine.dispose()
    return list(names)


def _engine_for(url_or_params) -> sa.Engine:
    if isinstance(url_or_params, dict):
        url = pg_admin_url().set(database=url_or_params["dbname"])
    else:
        url = url_or_params
    return db.make_engine(url, poolclass=sa.NullPool)


def checksums(url_or_params) -> dict[str, tuple[int, str]]:
    """Rows and an md5 of every table's full content (as the superuser: no RLS)."""
    out = {}
    engine = _engine_for(url_or_params)
    with engine.connect() as c:
        for t in _tables(url_or_params):
            n, digest = c.execute(sa.text(
                f'SELECT count(*), md5(coalesce(string_agg(x::text, E\'\\n\' ORDER BY x::text), '
                f"'')) FROM \"{t}\" x")).one()
            out[t] = (n, digest)
    engine.dispose()
    return out


def _handler_env(monkeypatch, aws, source) -> None:
    arn = aws.secrets.create_secret(Name="getmeds/backup",
                                    SecretString=json.dumps(source.secret))["ARN"]
    monkeypatch.setenv("DB_SECRET_ARN", arn)
    monkeypatch.setenv("BACKUP_BUCKET", BUCKET)
    monkeypatch.setenv("ALERT_TOPIC_ARN", aws.topic)
    monkeypatch.setenv("BACKUP_PREFIX", "backups")


def test_lambda_backup_then_restore_gives_the_same_database(aws, source, databases,
                                                             monkeypatch):
    _handler_env(monkeypatch, aws, source)
    result = load_handler().handler({}, None)
    assert result["key"].startswith(f"backups/{source.database}/")
    head = aws.s3.head_object(Bucket=BUCKET, Key=result["key"])
    assert head["ServerSideEncryption"] == "AES256"
    meta = head["Metadata"]
    assert meta["sha256"] == result["sha256"] and int(meta["size"]) == head["ContentLength"]
    assert meta["schema-revision"] == db.head_revision()
    assert meta["server-version"].startswith("15") or meta["server-version"][:2].isdigit()
    counts = json.loads(meta["row-counts"])
    assert counts["dispenses"] == 3 and counts["patients"] == 3 and counts["stock_movements"] == 6
    # nothing half-written is left behind
    keys = [o["Key"] for o in aws.s3.list_objects_v2(Bucket=BUCKET)["Contents"]]
    assert keys == [result["key"]]
    assert aws.alerts() == []

    listed = core.list_backups(aws.s3, BUCKET)
    assert [b.key for b in listed] == [result["key"]] and listed[0].row_counts == counts

    target = databases.new()
    restored = core.restore_backup(aws.s3, BUCKET, result["key"], target)
    assert restored.row_counts == counts
    assert checksums(target) == checksums(source.url)


def test_a_tampered_backup_is_refused(aws, source, databases, monkeypatch):
    _handler_env(monkeypatch, aws, source)
    key = load_handler().handler({}, None)["key"]
    obj = aws.s3.get_object(Bucket=BUCKET, Key=key)
    body = bytearray(obj["Body"].read())
    body[len(body) // 2] ^= 0xFF
    aws.s3.put_object(Bucket=BUCKET, Key=key, Body=bytes(body), Metadata=obj["Metadata"])
    target = databases.new()
    with pytest.raises(core.BackupError, match="damaged"):
        core.restore_backup(aws.s3, BUCKET, key, target)
    assert _tables(target) == []


def test_a_failing_pg_dump_is_published_and_leaves_no_backup(aws, source, monkeypatch):
    _handler_env(monkeypatch, aws, source)
    with source.engine.begin() as c:  # the backup login loses one table: pg_dump fails
        c.exec_driver_sql(f'REVOKE SELECT ON suppliers FROM "{role_prefix()}backup"')
    with pytest.raises(core.BackupError, match="pg_dump failed.*suppliers"):
        load_handler().handler({}, None)
    alerts = aws.alerts()
    assert len(alerts) == 1
    assert alerts[0]["Subject"] == "GetMeds backup failed"
    assert "permission denied for table suppliers" in alerts[0]["Message"]
    assert "backup pass 123" not in alerts[0]["Message"]
    assert aws.s3.list_objects_v2(Bucket=BUCKET).get("KeyCount", 0) == 0


def test_restore_into_a_database_with_data_is_refused(aws, source, monkeypatch):
    _handler_env(monkeypatch, aws, source)
    key = load_handler().handler({}, None)["key"]
    before = checksums(source.url)
    with pytest.raises(core.BackupError, match="already has tables"):
        core.restore_backup(aws.s3, BUCKET, key, core.params_from_url(source.url))
    assert checksums(source.url) == before


def test_missing_programs_and_buckets_are_clear(aws, source, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("GETMEDS_PG_BIN", str(tmp_path))
    with pytest.raises(core.BackupError, match="pg_dump was not found"):
        core.find_program("pg_dump")
    monkeypatch.undo()
    with pytest.raises(core.BackupError, match="does not exist"):
        core.list_backups(aws.s3, "no-such-bucket")
    with pytest.raises(core.BackupError, match="no backup"):
        core.restore_backup(aws.s3, BUCKET, "backups/x/20260101T000000Z.dump",
                            core.params_from_url(source.url))


# ------------------------------------------------------------- getmeds-admin


@pytest.fixture
def moto_server(aws_env) -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    boto3.client("s3", endpoint_url=url).create_bucket(Bucket=BUCKET)
    yield url
    server.stop()


def test_admin_backup_run_list_restore(moto_server, source, databases, capsys):
    from getmeds_desktop.cli import main

    aws = ["--bucket", BUCKET, "--endpoint-url", moto_server]
    assert main(["backup", "run", "--database", source.url, *aws]) == 0
    out = capsys.readouterr().out
    assert f"Backed up {source.database} to s3://{BUCKET}/backups/{source.database}/" in out
    assert main(["backup", "list", *aws]) == 0
    listing = capsys.readouterr().out
    key = listing.strip().splitlines()[-1].split()[-1]
    assert key.startswith(f"backups/{source.database}/") and source.database in listing

    target = databases.new()
    target_url = pg_admin_url().set(database=target["dbname"]).render_as_string(
        hide_password=False)
    assert main(["backup", "restore", key, "--target-database", target_url, *aws]) == 0
    assert "row counts match the backup" in capsys.readouterr().out
    assert checksums(target) == checksums(source.url)
    # a second restore into the same database is refused, in one line
    assert main(["backup", "restore", key, "--target-database", target_url, *aws]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("getmeds-admin: error:") and "already has tables" in err
    assert len(err.splitlines()) == 1


def test_admin_backup_errors_are_one_line(moto_server, source, capsys, monkeypatch, tmp_path):
    from getmeds_desktop.cli import main

    assert main(["backup", "list", "--bucket", "not-a-bucket",
                 "--endpoint-url", moto_server]) == 1
    assert "The bucket not-a-bucket does not exist" in capsys.readouterr().err
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(var)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    assert main(["backup", "list", "--bucket", BUCKET, "--endpoint-url", moto_server]) == 1
    assert "No AWS credentials" in capsys.readouterr().err


def test_admin_creates_the_backup_login(source, capsys, monkeypatch):
    import io

    from getmeds_desktop.cli import main

    login = f"{role_prefix()}nightly{next(_n)}"
    monkeypatch.setattr("sys.stdin", io.StringIO("long backup secret 42\n"))
    assert main(["backup", "create-login", login, "--password-stdin",
                 "--database", source.url]) == 0
    assert f"Created the backup login {login}" in capsys.readouterr().out
    with _pg_admin_engine().connect() as c:
        member = c.execute(sa.text(
            "SELECT r.rolname FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid "
            "JOIN pg_roles u ON u.oid = m.member WHERE u.rolname = :u"), {"u": login}).scalar()
    assert member == f"{role_prefix()}backup"


def test_an_administrator_backs_up_with_their_own_login(aws, source, databases):
    """The Administration screen backs up as the signed-in administrator: the
    grants of migration 0005 let pg_dump read everything, and nothing more."""
    from getmeds_desktop.services import backups

    u = sa.engine.make_url(source.url)
    as_admin = db.make_engine(u.set(username=source.world.admin.username, password=PASSWORD))
    info = backups.back_up_server(source.world.admin, as_admin, aws.s3, BUCKET)
    as_admin.dispose()
    assert info.row_counts["dispenses"] == 3
    target = databases.new()
    backups.restore_server(source.world.admin, aws.s3, BUCKET, info.key,
                           pg_admin_url().set(database=target["dbname"]).render_as_string(
                               hide_password=False))
    assert checksums(target) == checksums(source.url)
    with pytest.raises(Exception, match="make and restore backups"):
        backups.server_backups(source.world.pharmacist, aws.s3, BUCKET)
