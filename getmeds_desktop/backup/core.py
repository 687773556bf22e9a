"""Backups of a PostgreSQL database to S3, and restores proven by row counts.

Plain Python, boto3, psycopg and the PostgreSQL client programs: the same code
runs in the backup Lambda (cloud/backup_lambda), in ``getmeds-admin backup``
and behind the Administration screen.

A backup is one consistent snapshot: a read-only REPEATABLE READ transaction
exports its snapshot, counts the rows of the main tables in it, and
``pg_dump --snapshot`` dumps exactly that snapshot, so the counts stored with
the backup are the counts a restore must reproduce. The dump is streamed to S3
under ``<prefix>/.incoming/`` while its SHA-256 is computed, then copied to its
final key ``<prefix>/<database>/<UTC time>.dump`` with the checksum and counts
as object metadata; an interrupted backup never appears under a final key.

A restore downloads the object, checks the SHA-256, refuses a target database
that already has tables, restores in a single transaction, and compares the row
counts; on any failure the target is left empty again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

from ..enums import DATABASE_GROUPS

MAIN_TABLES = ("staff", "patients", "patient_allergies", "prescribers", "products",
               "stock_lots", "stock_movements", "controlled_register", "prescriptions",
               "dispenses", "audit_log")
INCOMING = ".incoming"
CHUNK = 1024 * 1024
Progress = Callable[[str, float | None], None]


class BackupError(Exception):
    """A backup or restore that could not be done; the message says why in one line."""


@dataclasses.dataclass(frozen=True)
class BackupInfo:
    key: str
    database: str
    created_at: dt.datetime
    size: int
    sha256: str
    server_version: str
    schema_revision: str
    row_counts: dict[str, int]

    @property
    def size_label(self) -> str:
        size = float(self.size)
        for unit in ("bytes", "KB", "MB", "GB"):
            if size < 1024 or unit == "GB":
                return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
            size /= 1024
        return f"{self.size} bytes"


@dataclasses.dataclass(frozen=True)
class RestoreResult:
    key: str
    database: str
    row_counts: dict[str, int]
    seconds: float


# ---------------------------------------------------------------- connections


def conninfo(params: Mapping[str, Any]) -> tuple[str, dict[str, str]]:
    """A libpq connection string without the password, and the environment
    that carries it (so it never appears in a command line or a log)."""
    from psycopg.conninfo import make_conninfo

    # an empty host/hostaddr stays: written out, libpq's PGHOST/PGHOSTADDR cannot fill it in
    p = {k: str(v) for k, v in params.items()
         if k != "password" and (v not in (None, "") or k in ("host", "hostaddr"))}
    env = {"PGPASSWORD": str(params["password"])} if params.get("password") else {}
    return make_conninfo(**p), env


def params_from_url(url: str) -> dict[str, Any]:
    """libpq parameters from a postgresql:// URL (SQLAlchemy's +psycopg allowed)."""
    from sqlalchemy.engine import make_url

    u = make_url(url)
    if not u.get_backend_name().startswith("postgresql"):
        raise BackupError("Backups are for PostgreSQL databases; the embedded database has "
                          "its own daily copies.")
    from ..db import final_connect_params, normalize_url
    from ..errors import GetMedsError

    try:
        # the parameters SQLAlchemy would hand psycopg (several hosts included)
        u = normalize_url(u)
        cargs, cparams = u.get_dialect()().create_connect_args(u)
        out = {k: v for k, v in cparams.items() if k != "context"}
        # A workstation's URL follows the app's TLS rule (a remote host gets
        # verify-full; less than require is refused), applied to the parameters
        # pg_dump and psycopg will really use. (The backup function reads its
        # settings from its secret, which says verify-full.)
        return dict(final_connect_params(*cargs, **out))
    except GetMedsError as exc:
        raise BackupError(str(exc)) from None


def params_from_secret(secret: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON of the backup role's Secrets Manager secret."""
    try:
        return {"host": secret["host"], "port": secret.get("port", 5432),
                "dbname": secret.get("dbname") or secret["database"],
                "user": secret["username"], "password": secret["password"],
                "sslmode": secret.get("sslmode", "verify-full"),
                "sslrootcert": secret.get("sslrootcert")}
    except KeyError as exc:
        raise BackupError(f"The database secret has no {exc.args[0]!r} field.") from None


def _connect(params: Mapping[str, Any]) -> Any:
    import psycopg

    info, env = conninfo(params)
    try:
        return psycopg.connect(info, password=env.get("PGPASSWORD"), connect_timeout=15)
    except psycopg.OperationalError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BackupError(f"Cannot connect to the database: {first}") from None


def find_program(name: str) -> str:
    """pg_dump / pg_restore: GETMEDS_PG_BIN, then PATH (a Lambda layer puts
    them in /opt/bin)."""
    folders = [os.environ.get("GETMEDS_PG_BIN"), "/opt/bin"]
    for folder in folders:
        if folder and (Path(folder) / name).is_file():
            return str(Path(folder) / name)
    found = shutil.which(name)
    if not found:
        raise BackupError(f"{name} was not found: install the PostgreSQL client programs "
                          "(the same major version as the server or newer) or set "
                          "GETMEDS_PG_BIN to their folder.")
    return found


# ---------------------------------------------------------------------- S3


def _s3_error(exc: BaseException, bucket: str) -> BackupError:
    from botocore.exceptions import ClientError, NoCredentialsError, NoRegionError

    if isinstance(exc, NoCredentialsError):
        return BackupError("No AWS credentials were found: configure a profile or the "
                           "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY variables.")
    if isinstance(exc, NoRegionError):
        return BackupError("No AWS region is set: use --region or AWS_DEFAULT_REGION.")
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        if code in ("NoSuchBucket", "404") and "Key" not in str(exc):
            return BackupError(f"The bucket {bucket} does not exist.")
        if code in ("AccessDenied", "403", "AllAccessDisabled", "InvalidAccessKeyId",
                    "SignatureDoesNotMatch"):
            return BackupError(f"Access to the bucket {bucket} was refused ({code}).")
        return BackupError(f"S3 refused the request: {code or exc}.")
    return BackupError(f"S3 could not be reached: {exc}")


class _Hashing:
    """A read-only stream that hashes and counts what passes through it."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.sha = hashlib.sha256()
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n if n and n > 0 else CHUNK)
        self.sha.update(data)
        self.size += len(data)
        return data

    def readable(self) -> bool:
        return True


def _key_time(now: dt.datetime) -> str:
    return now.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ")


def _meta(info: BackupInfo) -> dict[str, str]:
    return {
        "getmeds-backup": "1", "database": info.database, "sha256": info.sha256,
        "size": str(info.size), "created-at": info.created_at.isoformat(),
        "server-version": info.server_version, "schema-revision": info.schema_revision,
        "row-counts": json.dumps(info.row_counts, separators=(",", ":"), sort_keys=True),
    }


def _from_meta(key: str, meta: Mapping[str, str]) -> BackupInfo:
    try:
        return BackupInfo(
            key=key, database=meta["database"],
            created_at=dt.datetime.fromisoformat(meta["created-at"]),
            size=int(meta["size"]), sha256=meta["sha256"],
            server_version=meta.get("server-version", ""),
            schema_revision=meta.get("schema-revision", ""),
            row_counts={k: int(v) for k, v in json.loads(meta["row-counts"]).items()})
    except (KeyError, ValueError) as exc:
        raise BackupError(f"{key} is not a GetMeds backup (its metadata is missing "
                          f"{exc.args[0] if exc.args else 'fields'}).") from None


# ------------------------------------------------------------------ backup


def _first_error(stderr: str, code: int) -> str:
    """The line of a PostgreSQL program's output that says what went wrong."""
    lines = [x.strip() for x in stderr.splitlines() if x.strip()]
    errors = [x for x in lines if "error:" in x.lower() or "fatal:" in x.lower()]
    return (errors or lines or [f"exit code {code}"])[0]


def _snapshot(conn: Any) -> tuple[str, str, str, str, dict[str, int]]:
    from psycopg import IsolationLevel

    conn.isolation_level = IsolationLevel.REPEATABLE_READ
    conn.read_only = True
    snapshot = conn.execute("SELECT pg_export_snapshot()").fetchone()[0]
    database, version = conn.execute(
        "SELECT current_database(), current_setting('server_version')").fetchone()
    try:
        revision = conn.execute("SELECT version_num FROM alembic_version").fetchone()[0]
    except Exception:
        raise BackupError(f"The database {database} has no GetMeds schema.") from None
    counts = {}
    for table in MAIN_TABLES:
        counts[table] = conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]
    return snapshot, database, version, revision, counts


def run_backup(params: Mapping[str, Any], s3: Any, bucket: str, *, prefix: str = "backups",
               now: dt.datetime | None = None, progress: Progress | None = None,
               pg_dump: str | None = None) -> BackupInfo:
    """Dump the database to ``s3://bucket/<prefix>/<database>/<time>.dump``."""
    program = pg_dump or find_program("pg_dump")
    started = now or dt.datetime.now(dt.UTC)
    prefix = prefix.strip("/")
    say = progress or (lambda _m, _f: None)
    conn = _connect(params)
    try:
        say("Reading the database…", None)
        snapshot, database, version, revision, counts = _snapshot(conn)
        staging = f"{prefix}/{INCOMING}/{database}-{_key_time(started)}-{os.getpid()}.dump"
        final = f"{prefix}/{database}/{_key_time(started)}.dump"
        info, env = conninfo(params)
        cmd = [program, "--format=custom", "--compress=6", "--no-password",
               "--enable-row-security", f"--snapshot={snapshot}", f"--dbname={info}"]
        say("Dumping and uploading…", None)
        with tempfile.TemporaryFile() as errors:
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=errors,
                                    env={**os.environ, **env})
            assert proc.stdout is not None
            stream = _Hashing(proc.stdout)
            try:
                # a checksum with every part: a bucket with S3 Object Lock requires one
                s3.upload_fileobj(stream, bucket, staging,
                                  ExtraArgs={"ServerSideEncryption": "AES256",
                                             "ChecksumAlgorithm": "SHA256"})
            except Exception as exc:
                proc.kill()
                proc.wait()
                raise _s3_error(exc, bucket) from None
            finally:
                proc.stdout.close()
            code = proc.wait()
            errors.seek(0)
            err = errors.read().decode("utf-8", "replace").strip()
        if code != 0 or stream.size == 0:
            with contextlib.suppress(Exception):
                s3.delete_object(Bucket=bucket, Key=staging)
            raise BackupError(f"pg_dump failed: {_first_error(err, code)}")
    finally:
        conn.close()
    result = BackupInfo(final, database, started, stream.size, stream.sha.hexdigest(),
                        version, revision, counts)
    say("Recording the checksum…", None)
    try:
        s3.copy({"Bucket": bucket, "Key": staging}, bucket, final, ExtraArgs={
            "Metadata": _meta(result), "MetadataDirective": "REPLACE",
            "ServerSideEncryption": "AES256", "ContentType": "application/octet-stream"})
        s3.delete_object(Bucket=bucket, Key=staging)
    except Exception as exc:
        raise _s3_error(exc, bucket) from None
    return result


# -------------------------------------------------------------------- list


def list_backups(s3: Any, bucket: str, *, prefix: str = "backups",
                 database: str | None = None) -> list[BackupInfo]:
    """Finished backups, newest first."""
    prefix = prefix.strip("/")
    where = f"{prefix}/{database}/" if database else f"{prefix}/"
    out: list[BackupInfo] = []
    try:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=where):
            for obj in page.get("Contents", []):
                key = obj["Key"]
                if f"/{INCOMING}/" in key or not key.endswith(".dump"):
                    continue
                head = s3.head_object(Bucket=bucket, Key=key)
                with contextlib.suppress(BackupError):
                    out.append(_from_meta(key, head.get("Metadata", {})))
    except Exception as exc:
        raise _s3_error(exc, bucket) from None
    return sorted(out, key=lambda b: b.created_at, reverse=True)


# ----------------------------------------------------------------- restore


def _target_tables(conn: Any) -> int:
    return conn.execute(
        "SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', "
        "'information_schema')").fetchone()[0]


def _role_prefix(program: str, dump: Path) -> str:
    """The group-role prefix recorded in the dump (db_security), read without restoring."""
    out = subprocess.run([program, "--data-only", "--table=db_security", "--file=-", str(dump)],
                         capture_output=True, text=True, check=False)
    match = re.search(r"^1\t([a-z][a-z0-9_]{0,30})$", out.stdout, re.MULTILINE)
    return match.group(1) if match else "getmeds_"


def _ensure_roles(conn: Any, prefix: str) -> None:
    """The group roles the dump grants to must exist (roles are server-wide,
    not in a dump). On the server the backup came from they already do."""
    missing = [r for r in (f"{prefix}{g}" for g in DATABASE_GROUPS)
               if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (r,)).fetchone()
               is None]
    for role in missing:
        try:
            conn.execute(f'CREATE ROLE "{role}" NOLOGIN')
        except Exception:
            raise BackupError(
                f"The group role {role} does not exist on this server and this login may not "
                "create roles: restore as the database owner (on RDS, the master user).") \
                from None


def _empty_again(conn: Any) -> None:
    with contextlib.suppress(Exception):
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")


def restore_backup(s3: Any, bucket: str, key: str, target: Mapping[str, Any], *,
                   progress: Progress | None = None, pg_restore: str | None = None,
                   workdir: Path | None = None) -> RestoreResult:
    """Restore a backup into a new, empty database and prove it by row counts."""
    program = pg_restore or find_program("pg_restore")
    say = progress or (lambda _m, _f: None)
    started = time.perf_counter()
    try:
        head = s3.head_object(Bucket=bucket, Key=key)
    except Exception as exc:
        from botocore.exceptions import ClientError

        if isinstance(exc, ClientError) and exc.response.get("Error", {}).get("Code") in (
                "404", "NoSuchKey"):
            raise BackupError(f"There is no backup {key} in {bucket}.") from None
        raise _s3_error(exc, bucket) from None
    info = _from_meta(key, head.get("Metadata", {}))

    conn = _connect(target)
    conn.autocommit = True
    try:
        database = conn.execute("SELECT current_database()").fetchone()[0]
        if _target_tables(conn):
            raise BackupError(f"The database {database} already has tables: restore into a "
                              "new, empty database (nothing was changed).")
        with tempfile.TemporaryDirectory(dir=workdir) as tmp:
            dump = Path(tmp) / "restore.dump"
            say("Downloading…", 0.0)
            sha = hashlib.sha256()
            size = 0
            try:
                body = s3.get_object(Bucket=bucket, Key=key)["Body"]
                with open(dump, "wb") as fh:
                    for chunk in iter(lambda: body.read(CHUNK), b""):
                        sha.update(chunk)
                        size += len(chunk)
                        fh.write(chunk)
                        if info.size:
                            say("Downloading…", min(size / info.size, 1.0) * 0.5)
            except Exception as exc:
                raise _s3_error(exc, bucket) from None
            if sha.hexdigest() != info.sha256 or size != info.size:
                raise BackupError(f"The backup {key} is damaged: its SHA-256 does not match "
                                  "the one recorded when it was made. Nothing was restored.")
            _ensure_roles(conn, _role_prefix(program, dump))
            say("Restoring…", 0.5)
            tinfo, env = conninfo(target)
            proc = subprocess.run(
                [program, "--no-owner", "--exit-on-error", "--single-transaction",
                 "--no-password", f"--dbname={tinfo}", str(dump)],
                capture_output=True, text=True, env={**os.environ, **env}, check=False)
            if proc.returncode != 0:
                _empty_again(conn)
                raise BackupError(
                    f"pg_restore failed: {_first_error(proc.stderr, proc.returncode)}")
        say("Checking…", 0.95)
        counts = {t: conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0]
                  for t in info.row_counts}
        if counts != info.row_counts:
            wrong = ", ".join(f"{t} {counts[t]} (expected {n})"
                              for t, n in info.row_counts.items() if counts[t] != n)
            _empty_again(conn)
            raise BackupError(f"The restored row counts do not match the backup ({wrong}); "
                              "the database was emptied again.")
        prefix = conn.execute("SELECT role_prefix FROM db_security").fetchone()[0]
        groups = ", ".join(f'"{prefix}{g}"' for g in DATABASE_GROUPS)
        conn.execute(f'GRANT CONNECT ON DATABASE "{database}" TO {groups}')
        # database privileges are not in a dump: only this pharmacy's groups may
        # connect, and nobody but the owner creates temporary tables
        if conn.execute("SELECT to_regprocedure('getmeds_restrict_database()')").fetchone()[0]:
            conn.execute("SELECT getmeds_restrict_database()")
    finally:
        conn.close()
    say("Done", 1.0)
    return RestoreResult(key, database, counts, time.perf_counter() - started)
