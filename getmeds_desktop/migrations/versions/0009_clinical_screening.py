"""clinical screening at prescribing and fill: what the patient record says, and
what was overridden, with which reason

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 12:00:00

* ``patients``: ``allergy_status`` (not asked / no known allergies / recorded),
  who set it and when; ``pregnant`` and ``breastfeeding`` as structured fields
  (the screening warns on products whose labelling contraindicates them).
  Patients with allergy rows are ``recorded``; the rest ``not_asked`` (nobody
  recorded that they were asked).
* ``patient_allergies.intolerance``: a side effect recorded as such (warns
  mildly on the same ingredient or class, never through cross-sensitivity).
* ``dispense_warnings``: the new finding kinds (interaction, dose, age,
  pregnancy, beyond use, allergies not asked), the finding's ``severity`` and
  the coded override reason (``reason_code``; ``reason`` keeps the note).
  Warnings written before this revision have severity ``unknown`` and no code.
* ``dispenses.screening_data``: the versions of the screening data files the
  fill was screened with.
* ``app_settings.controlled_early_refill_percent``: the (stricter) early-refill
  threshold of Schedule II-V products; ``early_refill_percent`` now applies to
  every product. ``app_settings.geriatric_age``: from this age the age list's
  geriatric entries apply.
* SQLite: the audit triggers of the changed tables list their columns, so they
  are made again; ``dispense_warnings`` is rebuilt for its new CHECK, with its
  permanent-row triggers.
"""

from __future__ import annotations

from collections.abc import Sequence

import contextlib
import warnings
from collections.abc import Iterator

import sqlalchemy as sa
from alembic import op

from getmeds_desktop.migrations import sqlite_triggers

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_KINDS = ("allergy", "duplicate_therapy", "early_refill")
KINDS = OLD_KINDS + ("interaction", "dose", "age", "pregnancy", "beyond_use",
                     "allergies_not_asked")
ALLERGY_STATUSES = ("not_asked", "no_known_allergies", "recorded")
SEVERITIES = ("mild", "moderate", "severe", "unknown")
REASON_CODES = ("prescriber_consulted", "patient_tolerated_before", "benefit_outweighs_risk",
                "allergy_record_outdated", "other")

PATIENT_COLUMNS = ("first_name", "last_name", "date_of_birth", "sex", "phone", "email",
                   "address_line", "city", "state", "postal_code", "notes", "legacy_ref",
                   "active", "allergy_status", "allergy_status_by", "allergy_status_at",
                   "pregnant", "breastfeeding", "id", "created_at", "updated_at",
                   "updated_by", "version")
ALLERGY_COLUMNS = ("patient_id", "allergen", "reaction", "severity", "intolerance",
                   "recorded_at", "id")
WARNING_COLUMNS = ("dispense_id", "kind", "key", "detail", "severity", "reason_code",
                   "reason", "acknowledged_by", "id")
DISPENSE_COLUMNS = ("prescription_id", "fill_number", "part", "quantity", "owed_after",
                    "days_supply", "pharmacist_id", "dispensed_at", "request_id", "notes",
                    "scan_text", "scan_ndc", "scan_gtin", "scan_lot", "scan_expiry",
                    "no_scan_reason", "screening_data", "id")
SETTINGS_COLUMNS = ("id", "pharmacy_name", "address", "phone", "dea_number", "npi",
                    "paper_size", "auto_lock_minutes", "controlled_validity_months",
                    "rx_validity_months", "early_refill_percent",
                    "controlled_early_refill_percent", "geriatric_age", "scan_required",
                    "created_at", "updated_at", "updated_by", "version")

NEW_COLUMNS = {
    "patients": ("allergy_status", "allergy_status_by", "allergy_status_at", "pregnant",
                 "breastfeeding"),
    "patient_allergies": ("intolerance",),
    "dispense_warnings": ("severity", "reason_code"),
    "dispenses": ("screening_data",),
    "app_settings": ("controlled_early_refill_percent", "geriatric_age"),
}
AUDITED = {"patients": PATIENT_COLUMNS, "patient_allergies": ALLERGY_COLUMNS,
           "dispense_warnings": WARNING_COLUMNS, "dispenses": DISPENSE_COLUMNS,
           "app_settings": SETTINGS_COLUMNS}


def _in(column: str, values: Sequence[str]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def upgrade() -> None:
    bind = op.get_bind()
    sqlite = bind.dialect.name != "postgresql"
    # Plain ADD COLUMN (with its CHECK as a column constraint) on both backends:
    # SQLite would otherwise rebuild the tables and lose their expression indexes.
    false = "0" if sqlite else "false"
    stamp = "DATETIME" if sqlite else "TIMESTAMP WITH TIME ZONE"
    for table, column in (
            ("patients", "allergy_status VARCHAR(18) DEFAULT 'not_asked' NOT NULL"
                         " CONSTRAINT ck_patients_allergy_status CHECK ("
                         + _in("allergy_status", ALLERGY_STATUSES) + ")"),
            ("patients", "allergy_status_by VARCHAR(64)"),
            ("patients", f"allergy_status_at {stamp}"),
            ("patients", f"pregnant BOOLEAN DEFAULT {false} NOT NULL"),
            ("patients", f"breastfeeding BOOLEAN DEFAULT {false} NOT NULL"),
            ("patient_allergies", f"intolerance BOOLEAN DEFAULT {false} NOT NULL"),
            ("dispenses", "screening_data VARCHAR(200)"),
            ("app_settings", "controlled_early_refill_percent INTEGER DEFAULT 90 NOT NULL"
                             " CONSTRAINT ck_app_settings_controlled_early_refill_percent_range"
                             " CHECK (controlled_early_refill_percent BETWEEN 1 AND 100)"),
            ("app_settings", "geriatric_age INTEGER DEFAULT 65 NOT NULL"
                             " CONSTRAINT ck_app_settings_geriatric_age_range"
                             " CHECK (geriatric_age BETWEEN 40 AND 120)")):
        op.execute(f"ALTER TABLE {table} ADD COLUMN {column}")
    op.execute("UPDATE patients SET allergy_status = 'recorded' WHERE EXISTS"
               " (SELECT 1 FROM patient_allergies AS a WHERE a.patient_id = patients.id)")
    if sqlite:
        for table in ("dispense_warnings",):
            for trigger in ("no_update", "no_delete"):
                op.execute(f"DROP TRIGGER IF EXISTS {table}_{trigger}")
    with _rebuilt_warnings(), op.batch_alter_table(
            "dispense_warnings", recreate="always" if sqlite else "auto") as b:
        b.drop_constraint(op.f("ck_dispense_warnings_warning_kind"), type_="check")
        b.alter_column("kind", type_=sa.String(19), existing_type=sa.String(17),
                       existing_nullable=False)
        b.create_check_constraint("warning_kind", _in("kind", KINDS))
        b.add_column(sa.Column("severity", sa.String(8), nullable=False,
                               server_default="unknown"))
        b.add_column(sa.Column("reason_code", sa.String(24), nullable=True))
        b.create_check_constraint("warning_severity", _in("severity", SEVERITIES))
        b.create_check_constraint(
            "warning_reason_code", "reason_code IS NULL OR " + _in("reason_code", REASON_CODES))
    if sqlite:
        sqlite_triggers.permanent("dispense_warnings")
        for table, cols in AUDITED.items():
            sqlite_triggers.audit(table, cols, uuid_key=table != "app_settings")


def downgrade() -> None:
    bind = op.get_bind()
    sqlite = bind.dialect.name != "postgresql"
    if sqlite:
        for table in AUDITED:
            for action in ("insert", "update", "delete"):
                op.execute(f"DROP TRIGGER IF EXISTS {table}_audit_{action}")
        for trigger in ("no_update", "no_delete"):
            op.execute(f"DROP TRIGGER IF EXISTS dispense_warnings_{trigger}")
    with _rebuilt_warnings(), op.batch_alter_table(
            "dispense_warnings", recreate="always" if sqlite else "auto") as b:
        b.drop_constraint(op.f("ck_dispense_warnings_warning_reason_code"), type_="check")
        b.drop_constraint(op.f("ck_dispense_warnings_warning_severity"), type_="check")
        b.drop_column("reason_code")
        b.drop_column("severity")
        b.drop_constraint(op.f("ck_dispense_warnings_warning_kind"), type_="check")
        b.create_check_constraint("warning_kind", _in("kind", OLD_KINDS))
    for table, columns in reversed(NEW_COLUMNS.items()):
        if table == "dispense_warnings":
            continue
        with op.batch_alter_table(table) as b:
            for name in reversed(columns):
                b.drop_column(name)
    if sqlite:
        sqlite_triggers.permanent("dispense_warnings")
        for table, cols in AUDITED.items():
            old = tuple(c for c in cols if c not in NEW_COLUMNS[table])
            sqlite_triggers.audit(table, old, uuid_key=table != "app_settings")


@contextlib.contextmanager
def _rebuilt_warnings() -> Iterator[None]:
    """SQLite rebuilds dispense_warnings from its reflection, which reflects the
    tables it refers to as well; their expression indexes are not reflected
    (and not touched), which SQLAlchemy warns about."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Skipped unsupported reflection", sa.exc.SAWarning)
        yield
