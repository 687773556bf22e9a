"""getmeds-admin: the scripting tool for IT and managers.

Every command takes ``--database URL`` (after the command) or reads
GETMEDS_DATABASE_URL; without either it uses the configured default profile or
the embedded database. Errors print one line and exit non-zero; a traceback
goes to the log file only.
"""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import re
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

import sqlalchemy as sa

from . import __version__, config, db, logs
from .enums import Role
from .errors import GetMedsError
from .services.context import SYSTEM

log = logging.getLogger("getmeds.cli")

EXIT_ERROR = 1
EXIT_USAGE = 2


class CliError(GetMedsError):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit 2
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _db_options() -> _Parser:
    parent = _Parser(add_help=False)
    parent.add_argument(
        "--database", metavar="URL",
        help="SQLAlchemy database URL (default: GETMEDS_DATABASE_URL, the default profile, "
             "or the embedded database)")
    parent.add_argument("--profile", help="connection profile from the configuration file")
    return parent


def build_parser() -> argparse.ArgumentParser:
    dbopt = _db_options()
    p = _Parser(prog="getmeds-admin", description="GetMeds Desktop administration.")
    p.add_argument("--version", action="version", version=f"getmeds-admin {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    dbp = sub.add_parser("db", help="database schema")
    dbs = dbp.add_subparsers(dest="action", metavar="ACTION", parser_class=_Parser)
    dbs.required = True
    upg = dbs.add_parser("upgrade", parents=[dbopt], help="bring the schema to this version")
    upg.add_argument("--role-prefix", default=None,
                     help="PostgreSQL: prefix of this pharmacy's group roles (default "
                          "getmeds_; set it when several pharmacies share a server)")
    dbs.add_parser("status", parents=[dbopt], help="show the current and the head revision")
    tz = dbs.add_parser("time-zone", parents=[dbopt],
                        help="show or set the pharmacy's time zone (a server database: the "
                             "zone its rules judge dates in and every workstation shows)")
    tz.add_argument("zone", nargs="?", help="an IANA name, such as America/Chicago")

    up = sub.add_parser("user", help="staff accounts")
    us = up.add_subparsers(dest="action", metavar="ACTION", parser_class=_Parser)
    us.required = True
    add = us.add_parser("add", parents=[dbopt], help="add a staff member")
    add.add_argument("username")
    add.add_argument("--role", required=True, choices=[r.value for r in Role])
    add.add_argument("--also", choices=["pharmacist", "technician", "clerk"],
                     help="an administrator's practice role (fills, verifies or hands out "
                          "prescriptions only with one)")
    add.add_argument("--full-name", help="full name (default: the username)")
    add.add_argument("--licence-number")
    add.add_argument("--dea-number")
    add.add_argument("--password-stdin", action="store_true",
                     help="read the password from the first line of standard input")
    for name, helptext in (("disable", "stop a staff member signing in"),
                           ("enable", "let a disabled staff member sign in again")):
        x = us.add_parser(name, parents=[dbopt], help=helptext)
        x.add_argument("username")
    rp = us.add_parser("reset-password", parents=[dbopt],
                       help="set a new password (changed at next sign-in)")
    rp.add_argument("username")
    rp.add_argument("--password-stdin", action="store_true")
    us.add_parser("list", parents=[dbopt], help="list staff")

    rp_ = sub.add_parser("report", parents=[dbopt], help="write a PDF report")
    rp_.add_argument("name", help="inventory, reorder, expiry, dispensing-log, "
                     "controlled-register, patient-history, demographics, staff, label, audit, "
                     "recall, dea-inventory, dea-41, dea-106")
    rp_.add_argument("--from", dest="start", type=_date, help="first day (YYYY-MM-DD)")
    rp_.add_argument("--to", dest="end", type=_date, help="last day (YYYY-MM-DD)")
    rp_.add_argument("--days", type=int, help="expiry window in days (default 90)")
    rp_.add_argument("--schedule", choices=["II", "III-V"], help="controlled register")
    rp_.add_argument("--patient", type=_uuid, help="patient id (patient-history)")
    rp_.add_argument("--dispense", type=_uuid, help="dispense id (label)")
    rp_.add_argument("--lot", type=_uuid, help="lot id (recall worklist)")
    rp_.add_argument("--inventory", type=_uuid,
                     help="inventory id (dea-inventory; default the latest)")
    rp_.add_argument("--form", type=_uuid, help="DEA form record id (dea-41, dea-106)")
    rp_.add_argument("--out", required=True, metavar="FILE.pdf")
    rp_.add_argument("--primary", action="store_true",
                     help="read the database itself, not the profile's reporting_host "
                          "(the read replica)")

    imp = sub.add_parser("import", help="bring data in: FDA NDC Directory, CSV, GetMeds web")
    ims = imp.add_subparsers(dest="source", metavar="SOURCE", parser_class=_Parser)
    ims.required = True
    ndc = ims.add_parser("ndc", parents=[dbopt],
                         help="the FDA NDC Directory (product.txt and package.txt)")
    ndc.add_argument("product_txt", metavar="PRODUCT_TXT")
    ndc.add_argument("package_txt", metavar="PACKAGE_TXT")
    ndc.add_argument("--dry-run", action="store_true", help="check and count; write nothing")
    icsv = ims.add_parser("csv", parents=[dbopt], help="patients or products from a CSV file")
    icsv.add_argument("kind", choices=["patients", "products"])
    icsv.add_argument("file", metavar="FILE")
    icsv.add_argument("--dry-run", action="store_true", help="list every error; write nothing")
    icsv.add_argument("--map", action="append", default=[], metavar="FIELD=COLUMN",
                      help="which column feeds a field, when the header does not say "
                           "(repeatable; 'FIELD=' leaves a field out)")
    iweb = ims.add_parser("getmeds-web", parents=[dbopt],
                          help="the GetMeds web app's database (SQLite file or PostgreSQL URL)")
    iweb.add_argument("url", metavar="URL", help="SQLAlchemy URL or path of its db.sqlite3")
    iweb.add_argument("--dry-run", action="store_true",
                      help="list what would be imported and every problem; write nothing")

    exp = sub.add_parser("export", parents=[dbopt], help="a table to a CSV file")
    exp.add_argument("kind", choices=["products", "patients", "lots", "dispenses"])
    exp.add_argument("--out", required=True, metavar="FILE.csv")

    dp = sub.add_parser("demo", help="demo data")
    ds = dp.add_subparsers(dest="action", metavar="ACTION", parser_class=_Parser)
    ds.required = True
    seed = ds.add_parser("seed", parents=[dbopt], help="fill an empty database with demo data")
    seed.add_argument("--products", type=_count, default=600)
    seed.add_argument("--patients", type=_count, default=400)
    seed.add_argument("--prescriptions", type=_count, default=500)
    seed.add_argument("--lots-per-product", type=float, default=1.6)
    seed.add_argument("--seed", type=int, default=1)
    seed.add_argument("--history-days", type=int, default=90)
    seed.add_argument("--logins", action="store_true",
                      help="PostgreSQL: also create database logins for the demo accounts "
                           "(server-wide roles: not on a production server)")

    rup = sub.add_parser("rules", help="pharmacy rules written as YAML cases "
                         "(docs/rules-format.md)")
    rus = rup.add_subparsers(dest="action", metavar="ACTION", parser_class=_Parser)
    rus.required = True
    chk = rus.add_parser(
        "check", help="run case files, each on a fresh scratch database: PASS or FAIL per case")
    chk.add_argument("paths", nargs="*", metavar="PATH",
                     help="case files (.yaml) or folders of them (default: the case library "
                          "shipped with this version)")
    chk.add_argument("--database", metavar="URL",
                     help="a PostgreSQL server to make the scratch databases on (one per case, "
                          "dropped after it; the login must be allowed to create databases and "
                          "roles). Default: embedded SQLite databases in a temporary folder")

    kp = sub.add_parser("knowledge", help="licensed clinical knowledge for the screening "
                        "(docs/screening.md)")
    ks = kp.add_subparsers(dest="action", metavar="ACTION", parser_class=_Parser)
    ks.required = True
    ki = ks.add_parser("import", parents=[dbopt],
                       help="check a knowledge file and make it the pharmacy's")
    ki.add_argument("kind", choices=["interactions"])
    ki.add_argument("file", metavar="FILE.csv")
    ki.add_argument("--source", metavar="LABEL",
                    help="how findings cite it (default: the file name), e.g. 'Vendor KB 2026.2'")
    ks.add_parser("status", parents=[dbopt], help="what the screening uses now, and earlier "
                  "imports")
    ks.add_parser("use-shipped", parents=[dbopt],
                  help="screen with the shipped, cited data only (imports are kept)")

    up = sub.add_parser("update", help="new versions of GetMeds (the site file's [updates])")
    ups = up.add_subparsers(dest="action", metavar="ACTION", parser_class=_Parser)
    ups.required = True
    uc = ups.add_parser("check", help="fetch and verify the release manifest, and download "
                        "this platform's new version")
    uc.add_argument("--manifest-url", help="default: updates.manifest_url of the site file")
    uc.add_argument("--pin", metavar="VERSION", help="default: updates.pin of the site file")
    uc.add_argument("--download-dir", metavar="DIR",
                    help="where the verified download goes (default: the data folder's updates)")

    bp = sub.add_parser("backup", help="backups to S3 and restores; the embedded database's copies")
    bs = bp.add_subparsers(dest="action", metavar="ACTION", parser_class=_Parser)
    bs.required = True
    aws = _Parser(add_help=False)
    aws.add_argument("--bucket", required=True)
    aws.add_argument("--prefix", default="backups", help="key prefix (default backups)")
    aws.add_argument("--endpoint-url", help="S3 endpoint (a local test endpoint)")
    aws.add_argument("--region", help="AWS region (default: the AWS configuration)")
    bs.add_parser("run", parents=[dbopt, aws],
                  help="back up the PostgreSQL database to S3 now")
    bl = bs.add_parser("list", parents=[aws], help="list the backups in a bucket")
    bl.add_argument("--database-name", help="only this database's backups")
    br = bs.add_parser("restore", parents=[aws],
                       help="restore a backup into a new, empty PostgreSQL database")
    br.add_argument("key", help="the backup's key, as 'backup list' shows it")
    br.add_argument("--target-database", required=True, metavar="URL",
                    help="the new, empty database to restore into")
    bcl = bs.add_parser("create-login", parents=[dbopt],
                        help="PostgreSQL: create the read-only login backups use "
                             "(run as the database owner)")
    bcl.add_argument("username")
    bcl.add_argument("--password-stdin", action="store_true")
    bs.add_parser("local", parents=[dbopt], help="embedded database: make a copy now")
    bs.add_parser("local-list", parents=[dbopt], help="embedded database: list the copies")
    blr = bs.add_parser("local-restore", parents=[dbopt],
                        help="embedded database: put a copy back (the app must be closed)")
    blr.add_argument("file", help="a copy's file name, as 'backup local-list' shows it")
    return p


def _date(text: str) -> Any:
    import datetime as dt

    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a date (YYYY-MM-DD)") from None


def _uuid(text: str) -> Any:
    import uuid

    try:
        return uuid.UUID(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not an id") from None


def _count(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
    if n < 0:
        raise argparse.ArgumentTypeError("must not be negative")
    return n


# ------------------------------------------------------------------ helpers


def _target(args: argparse.Namespace) -> config.DatabaseTarget:
    return config.resolve_database(getattr(args, "database", None), getattr(args, "profile", None))


def _engine(args: argparse.Namespace, *, check: bool = True, create: bool = False
            ) -> sa.Engine:
    """The database of the command. Only ``db upgrade`` (``create``) makes a new
    embedded database file; every other command refuses a path with nothing
    there, and creates nothing."""
    target = _target(args)
    url = db.normalize_url(target.url)
    if (url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:"
            and not create):
        from pathlib import Path

        path = Path(url.database)
        if not path.exists():
            raise CliError(f"There is no database at {path} (nothing was created there). "
                           "Check the path, or make a new one with 'getmeds-admin db upgrade "
                           f"--database sqlite:///{path}'.")
        if not path.is_file():
            raise CliError(f"{path} is not a database file (it is a folder or a device).")
    engine = db.make_engine(target.url)
    try:
        db.connect_check(engine)
        if check:
            db.check_schema(engine)
            # dates (reports, labels) are the pharmacy's, as in the app
            from .services import clock

            clock.set_zone(db.pharmacy_time_zone(engine))  # an unknown zone is logged
    except BaseException:
        engine.dispose()
        raise
    return engine


def _read_password(args: argparse.Namespace, username: str) -> str:
    if args.password_stdin:
        line = sys.stdin.readline()
        if not line:
            raise CliError("No password on standard input.")
        return line.rstrip("\r\n")
    if not sys.stdin.isatty():
        raise CliError("Standard input is not a terminal: use --password-stdin.")
    first = getpass.getpass(f"Password for {username}: ")
    second = getpass.getpass("Repeat the password: ")
    if first != second:
        raise CliError("The two passwords differ.")
    return first


_stdout_closed = False


def _out(text: str = "") -> None:
    """A line of output. When the reader has gone (``... | head -1``) the rest is
    dropped quietly and the command still finishes its work."""
    global _stdout_closed
    if _stdout_closed:
        return
    try:
        print(text, flush=True)
    except BrokenPipeError:
        _stdout_closed = True
        _silence_stdout()


def _silence_stdout() -> None:
    # WORKAROUND for Python's "Exception ignored ... BrokenPipeError" when it
    # flushes a closed stdout at exit: https://docs.python.org/3/library/signal.html#note-on-sigpipe
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


# ----------------------------------------------------------------- commands


def cmd_db(args: argparse.Namespace) -> int:
    engine = _engine(args, check=False, create=args.action == "upgrade")
    try:
        if args.action == "status":
            current, head, state = db.schema_state(engine)
            words = {"current": "up to date", "empty": "empty database (run db upgrade)",
                     "older": "older than this version (run db upgrade)",
                     "newer": "newer than this version (install the newer GetMeds)",
                     "foreign": "not a GetMeds database"}
            _out(f"database: {db.describe_url(engine.url)}")
            _out(f"current:  {current or '-'}")
            _out(f"head:     {head}")
            _out(f"state:    {words[state]}")
            return 0 if state == "current" else EXIT_ERROR
        if args.action == "time-zone":
            if args.zone:
                try:
                    db.set_pharmacy_time_zone(engine, args.zone.strip())
                except ValueError as exc:
                    raise CliError(f"{str(exc)[:1].upper()}{str(exc)[1:]}.") from None
            zone = db.pharmacy_time_zone(engine)
            _out(f"time zone: {zone}" if zone else
                 "time zone: this workstation's own (an embedded database)")
            return 0
        before, head, _ = db.schema_state(engine)
        db.upgrade(engine, role_prefix=args.role_prefix)
        _out(f"Database upgraded from {before or 'empty'} to {head}." if before != head
             else f"Database already at {head}.")
        return 0
    finally:
        engine.dispose()


def cmd_user(args: argparse.Namespace) -> int:
    from .services import staff

    engine = _engine(args)
    sf = db.session_factory(engine)
    try:
        if args.action == "add":
            username = staff.clean_username(args.username)
            password = _read_password(args, username)
            # PostgreSQL: the staff row and its database login are made together
            # by one database function (getmeds_add_staff), or not at all
            info = staff.create_staff(
                sf, SYSTEM, username=username, full_name=args.full_name or username,
                role=args.role, password=password, licence_number=args.licence_number,
                dea_number=args.dea_number, practice_role=args.also)
            login = " with a database login" if engine.dialect.name == "postgresql" else ""
            _out(f"Added {info.role_label.lower()} {info.username}{login}.")
        elif args.action in ("disable", "enable"):
            info = staff.find_by_username(sf, args.username)
            staff.set_active(sf, SYSTEM, info.id, args.action == "enable")
            _out(f"{info.username} {'enabled' if args.action == 'enable' else 'disabled'}.")
        elif args.action == "reset-password":
            info = staff.find_by_username(sf, args.username)
            password = _read_password(args, info.username)
            staff.reset_password(sf, SYSTEM, info.id, password, must_change=True)
            _out(f"Password of {info.username} reset; it must be changed at the next sign-in.")
        elif args.action == "list":
            rows = staff.list_staff(sf, SYSTEM)
            _out(f"{'USERNAME':<20} {'ROLE':<11} {'ACTIVE':<6} NAME")
            for r in rows:
                _out(f"{r.username:<20} {r.role.value:<11} {'yes' if r.active else 'no':<6} "
                     f"{r.full_name}")
        return 0
    finally:
        engine.dispose()


def cmd_demo(args: argparse.Namespace) -> int:
    from .services.demo import DEMO_ACCOUNTS, DEMO_PASSWORD, seed_demo

    engine = _engine(args)
    try:
        summary = seed_demo(engine, products=args.products, patients=args.patients,
                            prescriptions=args.prescriptions,
                            lots_per_product=args.lots_per_product, seed=args.seed,
                            history_days=args.history_days, progress=_progress)
        if args.logins:
            from .services.demo import create_demo_logins

            create_demo_logins(db.session_factory(engine))
        _end_progress()
        _out(f"Demo pharmacy created in {summary.seconds:.1f} s: {summary.products} products, "
             f"{summary.lots} lots, {summary.patients} patients, {summary.prescriptions} "
             f"prescriptions, {summary.dispenses} dispenses.")
        if engine.dialect.name == "postgresql" and not args.logins:
            _out("The demo staff have no database logins; add --logins to create them, or "
                 "create real ones with getmeds-admin user add.")
        else:
            _out("Sign in as " + ", ".join(u for u, _, _ in DEMO_ACCOUNTS)
                 + f" with the password {DEMO_PASSWORD}")
        return 0
    finally:
        engine.dispose()


def cmd_report(args: argparse.Namespace) -> int:
    import getpass as gp
    from pathlib import Path

    from .reports import ReportParams, SiteOverrides, generate

    cfg = config.load_config()
    target = _target(args)
    if target.reporting_url and not args.primary:
        # the read replica (a physical copy: same logins, same schema)
        engine = db.make_engine(target.reporting_url)
        try:
            db.connect_check(engine)
            db.check_schema(engine)
        except BaseException:
            engine.dispose()
            raise
    else:
        engine = _engine(args)
    try:
        sf = db.session_factory(engine)
        try:
            who = gp.getuser()
        except Exception:
            who = "unknown"
        result = generate(
            sf, SYSTEM, args.name,
            ReportParams(start=args.start, end=args.end, days=args.days, schedule=args.schedule,
                         patient_id=args.patient, dispense_id=args.dispense,
                         lot_id=args.lot, inventory_id=args.inventory, form_id=args.form),
            Path(args.out), generated_by=f"getmeds-admin ({who})",
            site=SiteOverrides(dict(cfg.pharmacy), cfg.paper_size))
        _out(f"Wrote {result.path} ({result.pages} page(s), {result.seconds:.1f} s).")
        return 0
    finally:
        engine.dispose()


def _progress(msg: str, frac: float | None) -> None:
    if sys.stderr.isatty():
        pct = f"{frac:4.0%} " if frac is not None else ""
        print(f"\r{pct}{msg:<50}", end="", file=sys.stderr, flush=True)


def _end_progress() -> None:
    if sys.stderr.isatty():
        print(file=sys.stderr)


def _print_problems(problems: Sequence[Any], limit: int = 200) -> None:
    for p in problems[:limit]:
        _out(f"  {p}")
    if len(problems) > limit:
        _out(f"  … and {len(problems) - limit:,} more")


def cmd_import(args: argparse.Namespace) -> int:
    from pathlib import Path

    if args.source == "getmeds-web":
        return _import_web(args)
    engine = _engine(args)
    try:
        sf = db.session_factory(engine)
        if args.source == "ndc":
            from .services.ndc_import import import_directory

            r = import_directory(sf, SYSTEM, Path(args.product_txt), Path(args.package_txt),
                                 dry_run=args.dry_run, progress=_progress)
            _end_progress()
            verb = "would be" if r.dry_run else "were"
            _out(f"{r.created:,} new products and {r.updated:,} updated products {verb} "
                 f"imported in {r.seconds:.1f} s.")
            if r.problems:
                _out(f"{len(r.problems):,} rows were skipped:")
                _print_problems(r.problems)
            return 0
        from .services import csv_io

        data = csv_io.read_csv(Path(args.file))
        mapping = csv_io.guess_mapping(data.headers, args.kind)
        for item in args.map:
            field, sep, column = item.partition("=")
            if not sep or field not in mapping:
                fields = ", ".join(f.key for f in csv_io.FIELDS[args.kind])
                raise CliError(f"--map takes FIELD=COLUMN with FIELD one of {fields}.")
            mapping[field] = column or None
        rc = csv_io.import_csv(sf, SYSTEM, args.kind, data, mapping,
                               dry_run=args.dry_run, progress=_progress)
        _end_progress()
        if rc.problems:
            _out(f"{len(rc.problems):,} rows of {data.path.name} have errors; nothing was "
                 "imported:")
            _print_problems(rc.problems)
            return EXIT_ERROR
        verb = "would be" if rc.dry_run else "were"
        _out(f"{rc.created:,} new and {rc.updated:,} existing {args.kind} {verb} imported "
             f"from {data.path.name}.")
        return 0
    finally:
        engine.dispose()


def _import_web(args: argparse.Namespace) -> int:
    from .services import web_import

    engine = _engine(args)
    try:
        sf = db.session_factory(engine)
        r = web_import.import_web(sf, args.url, dry_run=args.dry_run, progress=_progress)
        _end_progress()
        _out("Would import:" if r.dry_run else "Imported:")
        for line in r.summary_lines():
            _out(f"  {line}")
        if r.problems:
            _out(f"{len(r.problems):,} things to know:")
            _print_problems(r.problems)
        return 0
    finally:
        engine.dispose()


def cmd_export(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .services import csv_io

    engine = _engine(args)
    try:
        n = csv_io.export_table(db.session_factory(engine), SYSTEM, args.kind,
                                Path(args.out))
        _out(f"Wrote {n:,} {args.kind} to {args.out}.")
        return 0
    finally:
        engine.dispose()


def cmd_rules(args: argparse.Namespace) -> int:
    from pathlib import Path

    from . import rules

    paths = [Path(p) for p in args.paths] or [rules.LIBRARY]
    if not args.paths:
        _out(f"Running the case library of this version ({rules.LIBRARY}).")
    # never the configured database: the cases run on scratch databases only
    return rules.check(paths, database=args.database, out=_out)


def cmd_knowledge(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .services import knowledge

    engine = _engine(args)
    try:
        sf = db.session_factory(engine)
        if args.action == "import":
            info = knowledge.import_interactions(sf, SYSTEM, Path(args.file),
                                                 source_label=args.source)
            noun = "interaction" if info.rule_count == 1 else "interactions"
            _out(f"{info.rule_count:,} {noun} from {info.file_name} (sha256 "
                 f"{info.sha256[:12]}...) are now screened on every workstation, over the "
                 "shipped ones.")
            return 0
        if args.action == "use-shipped":
            n = knowledge.use_shipped(sf, SYSTEM)
            _out("The screening uses the shipped interactions only." if n else
                 "The screening already used the shipped interactions only.")
            return 0
        imports = knowledge.list_imports(sf)
        active = next((i for i in imports if i.active), None)
        _out("Interactions: the shipped, cited list" + (
            f", with {active.rule_count:,} from {active.file_name} ({active.source_label}), "
            f"imported {active.imported_at:%Y-%m-%d %H:%M} UTC by {active.imported_by}"
            if active else " only") + ".")
        for i in imports:
            if i is not active:
                _out(f"  earlier: {i.file_name}, {i.rule_count:,} rules, imported "
                     f"{i.imported_at:%Y-%m-%d} by {i.imported_by} (not used)")
        return 0
    finally:
        engine.dispose()


def _s3(args: argparse.Namespace) -> Any:
    import boto3

    return boto3.session.Session(region_name=args.region).client(
        "s3", endpoint_url=args.endpoint_url)


def _sqlite_path(args: argparse.Namespace) -> Any:
    from pathlib import Path

    url = db.normalize_url(_target(args).url)
    if url.get_backend_name() != "sqlite" or not url.database:
        raise CliError("This is for the embedded database; a PostgreSQL database is backed "
                       "up with 'backup run'.")
    return Path(url.database)


def cmd_backup(args: argparse.Namespace) -> int:
    from .backup import core

    try:
        return _backup(args, core)
    except core.BackupError as exc:
        raise CliError(str(exc)) from None


def _backup(args: argparse.Namespace, core: Any) -> int:
    if args.action == "run":
        url = _target(args).url
        if db.normalize_url(url).get_backend_name() == "sqlite":
            raise CliError("The embedded database is copied every day into its data folder "
                           "('backup local' makes a copy now); 'backup run' is for PostgreSQL.")
        info = core.run_backup(core.params_from_url(url), _s3(args), args.bucket,
                               prefix=args.prefix)
        rows = sum(info.row_counts.values())
        _out(f"Backed up {info.database} to s3://{args.bucket}/{info.key} "
             f"({info.size_label}, {rows:,} rows in the main tables, sha256 {info.sha256[:12]}…).")
        return 0
    if args.action == "list":
        backups = core.list_backups(_s3(args), args.bucket, prefix=args.prefix,
                                    database=args.database_name)
        if not backups:
            _out(f"No backups in s3://{args.bucket}/{args.prefix.strip('/')}/.")
            return 0
        _out(f"{'time (UTC)':<20} {'size':>10}  {'database':<20} key")
        for b in backups:
            _out(f"{b.created_at:%Y-%m-%d %H:%M:%S} {b.size_label:>11}  {b.database:<20} {b.key}")
        return 0
    if args.action == "restore":
        result = core.restore_backup(_s3(args), args.bucket, args.key,
                                     core.params_from_url(args.target_database))
        _out(f"Restored {args.key} into {result.database} in {result.seconds:.1f} s; row counts "
             "match the backup:")
        for table, n in result.row_counts.items():
            _out(f"  {table:<22} {n:>10,}")
        _out("Staff sign in to the restored database with their logins on this server; on "
             "another server, re-create them with 'user reset-password'.")
        return 0
    if args.action == "create-login":
        engine = _engine(args)
        try:
            from .services import staff

            if engine.dialect.name != "postgresql":
                raise CliError("Backup logins are for PostgreSQL databases.")
            login = staff.clean_username(args.username)
            password = _read_password(args, login)
            staff.check_password_policy(login, password)
            with db.session_factory(engine)() as s, s.begin():
                group = f"{staff.role_prefix(s)}backup"
                verifier = staff._verifier(s, login, password)
                if not re.fullmatch(r"SCRAM-SHA-256\$[A-Za-z0-9+/=:$]+", verifier):
                    raise CliError("Could not prepare the password.")
                s.connection().exec_driver_sql(
                    f'CREATE ROLE "{login}" LOGIN PASSWORD \'{verifier}\' IN ROLE "{group}"')
        finally:
            engine.dispose()
        _out(f"Created the backup login {login} (member of {group}; reads everything, "
             "changes nothing). Store its password in the backup secret.")
        return 0
    from .backup import local

    path = _sqlite_path(args)
    if args.action == "local-list":
        copies = local.list_local(path)
        if not copies:
            _out(f"No copies yet in {local.backup_folder(path)}.")
        for c in copies:
            _out(f"{c.created_at:%Y-%m-%d %H:%M:%S} UTC {c.size / 1024 / 1024:8.1f} MB  {c.name}")
        return 0
    engine = db.make_engine(f"sqlite:///{path}")
    try:
        if args.action == "local":
            made = local.backup_now(engine, path)
            _out(f"Copied the embedded database to {made.path}.")
            return 0
        chosen = local.backup_folder(path) / args.file
        if not chosen.is_file():
            raise CliError(f"There is no copy named {args.file} (see 'backup local-list').")
        aside = local.restore_local(engine, path, chosen)
        _out(f"Restored {args.file}. The contents before the restore are in {aside}.")
        return 0
    finally:
        engine.dispose()


def cmd_update(args: argparse.Namespace) -> int:
    """Exit 0 when the check could be made (a new version ready, or none), 1 when
    the manifest or the download was refused or the bucket could not be read."""
    import dataclasses
    from pathlib import Path

    from . import updates

    settings = updates.UpdateSettings.from_config(config.load_config().updates)
    if args.manifest_url or args.pin:
        try:
            updates.check_settings({k: v for k, v in (("manifest_url", args.manifest_url),
                                                      ("pin", args.pin)) if v},
                                   "getmeds-admin update check")
        except ValueError as exc:
            raise CliError(f"{exc}.") from None
        settings = dataclasses.replace(settings, enabled=True,
                                       manifest_url=args.manifest_url or settings.manifest_url,
                                       pin=args.pin or settings.pin)
    folder = Path(args.download_dir) if args.download_dir else config.updates_dir()
    status = updates.check_for_update(settings, current_version=__version__,
                                      download_dir=folder, database_schema=db.head_revision())
    _out(status.message)
    return EXIT_ERROR if status.state in ("refused", "unavailable") else 0


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "update": cmd_update,
    "report": cmd_report,
    "backup": cmd_backup,
    "db": cmd_db,
    "user": cmd_user,
    "demo": cmd_demo,
    "import": cmd_import,
    "export": cmd_export,
    "rules": cmd_rules,
    "knowledge": cmd_knowledge,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    log_path = logs.setup()
    try:
        return COMMANDS[args.command](args)
    except GetMedsError as exc:
        print(f"getmeds-admin: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except sa.exc.DBAPIError as exc:
        log.exception("database error")
        err = db.describe_operational_error(exc)
        print(f"getmeds-admin: error: {err}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("getmeds-admin: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output the reader did not want (e.g. --help | head)
        _silence_stdout()
        return 0
    except Exception:  # a bug: details to the log, one line to the user
        log.exception("unexpected error in getmeds-admin %s", args.command)
        print(f"getmeds-admin: unexpected error; details are in {log_path}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["main", "os"]
