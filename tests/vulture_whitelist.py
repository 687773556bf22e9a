"""Names the dead-code finder (vulture) reports as unused that are used.

Qt, SQLAlchemy, Alembic, ReportLab, the database drivers, zipfile, keyring and
pytest call or read them by name, so no Python code of ours does. Run ``.venv/bin/vulture`` from the
repository root: the paths and the confidence are in pyproject's
``[tool.vulture]``. This file is read by vulture as code that uses each name;
nothing imports it (instance attributes are spelled on their classes).
"""

from __future__ import annotations

import sqlite3

import psycopg

import benchmarks.netdelay
import getmeds_desktop
from getmeds_desktop.models import base as model_base
from getmeds_desktop.models import catalog, legacy, patients, prescriptions, staff, stock
from getmeds_desktop.reports.base import FastTable
from getmeds_desktop.ui.lock import HiddenWindows, IdleMonitor
from getmeds_desktop.ui.tablemodels.paged import PagedTableModel
from getmeds_desktop.ui.views.dashboard import DashboardView

_USED = (
    # PEP 562: the package's __version__ is looked up through it
    getmeds_desktop.__getattr__,
    # Qt calls these overrides
    IdleMonitor.eventFilter,
    HiddenWindows.eventFilter,
    PagedTableModel.fetchMore,
    # keeps the chart's line series alive: Qt refers to them, Python would free them
    DashboardView._keep,
    # connection settings the drivers read when set (a snapshot, BEGIN by hand)
    psycopg.Connection.isolation_level,
    psycopg.Connection.read_only,
    sqlite3.Connection.isolation_level,
    # SQLAlchemy's type decorator and declarative hooks
    model_base.UTCDateTime.impl,
    model_base.UTCDateTime.cache_ok,
    model_base.UTCDateTime.process_bind_param,
    model_base.UTCDateTime.process_result_value,
    model_base.Base.type_annotation_map,
    model_base.Versioned.__mapper_args__,
    # columns of the schema that no Python code reads (history, order, audit; some
    # are filled by defaults or by SQL): dropping one is a migration, not a clean-up
    catalog.ProductIngredient.position,
    legacy.LegacyPrescription.imported_at,
    legacy.LegacyDispense.imported_at,
    patients.PatientFeedback.received_by,
    prescriptions.Prescription.legacy_text,
    prescriptions.Prescription.remainder_void_by,
    staff.LoginThrottle.last_failure_at,
    stock.Stocktake.started_by,
    stock.Stocktake.posted_by,
    stock.StocktakeLine.counted_by,
    # ReportLab reads these from the flowables and charts we configure
    FastTable.draw,
    FastTable.hAlign,
)



class _Anything:
    """Stands for an object of a library that reads attributes by name."""

    def __getattr__(self, name: str) -> object:
        return name


# ReportLab's charts and labels: set by reports/catalog.py, read by its renderer
chart = _Anything()
_USED_BY_REPORTLAB = (
    chart.categoryNames, chart.fontName, chart.fontSize, chart.valueMin,
    chart.labelTextFormat, chart.gridStrokeColor, chart.visibleGrid, chart.fillColor,
    chart.strokeColor, chart.barSpacing, chart.angle, chart.dy, chart.dx, chart.textAnchor,
)

# Alembic reads these from every module in migrations/versions/
migration = _Anything()
_USED_BY_ALEMBIC = (migration.down_revision, migration.branch_labels,
                    migration.depends_on, migration.downgrade)

# zipfile reads a ZipInfo's attributes (cloud/deploy.py builds the Lambda's archive)
zip_info = _Anything()
_USED_BY_ZIPFILE = (zip_info.external_attr, zip_info.compress_type)
tar_info = _Anything()  # packaging/artefacts.py: the tarball's members, reset
_USED_BY_TARFILE = (tar_info.gname, tar_info.mtime)

# pytest: module names it reads, and fixtures a test requests for what they set up
# (fixture functions themselves are skipped: ignore_decorators in [tool.vulture])
tests = _Anything()
_USED_BY_PYTEST = (
    tests.pytestmark, tests.pytest_plugins,
    tests.aws_env, tests.careless_umask, tests.password_checks, tests.pg_password_checks,
)

# keyring orders its backends by their priority (tests/fixtures/memkeyring.py)
backend = _Anything()
_USED_BY_KEYRING = (backend.priority,)

# SQLAlchemy's dialect reads and calls these on an engine's first connection
# (db._initialize_in_one_round_trip sets them on the dialect)
dialect = _Anything()
_USED_BY_SQLALCHEMY_DIALECT = (
    dialect._backslash_escapes, dialect._get_server_version_info,
    dialect._get_default_schema_name, dialect.get_default_isolation_level,
    dialect._set_backslash_escapes,
)

# a movement kind of the schema (CHECK constraint) that no screen writes yet
getmeds_desktop.enums.MovementKind.TRANSFER  # noqa: B018

# set by the PostgreSQL guard of migration 0021 (the transaction that wrote an inventory)
getmeds_desktop.models.inventory.DeaInventory.txn  # noqa: B018
# DEA Form 106 item 10's types (OMB 1117-0001), chosen by value in the form
getmeds_desktop.enums.LossType.ARMED_ROBBERY  # noqa: B018
getmeds_desktop.enums.LossType.EMPLOYEE_PILFERAGE  # noqa: B018
getmeds_desktop.enums.LossType.CUSTOMER_THEFT  # noqa: B018
# the rules format's key "not supported yet" (none at the moment; steps.Later)
getmeds_desktop.rules.steps.Later  # noqa: B018

# the delay proxy's process runs it by name (python -c "... import _main; _main()")
benchmarks.netdelay._main  # noqa: B018
# a tombstone's time (migration 0026), for pruning and for people reading the table
getmeds_desktop.models.audit.ChangeTombstone.deleted_at  # noqa: B018
