"""a Schedule II partial fill records whether the patient is terminally ill or a long-term care facility patient

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-01 18:30:00

21 CFR 1306.13: a Schedule II prescription for a patient in a long-term care
facility (LTCF) or with a medical diagnosis documenting a terminal illness may
be filled in partial quantities for up to 60 days after it was written, and the
pharmacist records on it whether the patient is "terminally ill" or an "LTCF
patient" (a partial fill without that notation is deemed filled in violation of
the Act). Until now one reason, ``long_term_care``, stood for both; the new
reason ``terminally_ill`` records the other. ``long_term_care`` now means an
LTCF patient (what earlier fills recorded under it stays as it was).

* ``dispenses.partial_reason``: the CHECK admits ``terminally_ill``.
* PostgreSQL: ``getmeds_check_dea_schedule_ii`` (0016) gives both 60 days.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

from alembic import op

revision: str = "0024"
down_revision: str | None = "0023"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD = "partial_reason IN ('shortage', 'patient_request', 'long_term_care')"
NEW = "partial_reason IN ('shortage', 'patient_request', 'long_term_care', 'terminally_ill')"
OLD_DAYS = "CASE first.partial_reason WHEN 'long_term_care' THEN 60 ELSE 30 END"
NEW_DAYS = ("CASE WHEN first.partial_reason IN ('long_term_care', 'terminally_ill') "
            "THEN 60 ELSE 30 END")


def _m(name: str) -> Any:
    return importlib.import_module(f"getmeds_desktop.migrations.versions.{name}")


def _check_dea(days: str) -> str:
    body: str = _m("0016_dea_schedule_ii").CHECK_DEA
    if body.count(OLD_DAYS) != 1:
        raise RuntimeError("getmeds_check_dea_schedule_ii is not as revision 0016 made it")
    return body.replace(OLD_DAYS, days)


def _change(old: str, new: str, days: str) -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute("ALTER TABLE dispenses DROP CONSTRAINT ck_dispenses_partial_reason_known")
        op.execute(f"ALTER TABLE dispenses ADD CONSTRAINT ck_dispenses_partial_reason_known "
                   f"CHECK ({new})")
        n = _m("0007_database_boundary")._names()
        op.execute(n.sql(_check_dea(days)))
        return
    # SQLite: the documented way to change a CHECK (every row satisfies the new one)
    _m("0015_fill_verify_release")._loosen_sqlite("dispenses", [(old, new)])


def upgrade() -> None:
    _change(OLD, NEW, NEW_DAYS)


def downgrade() -> None:
    op.execute("UPDATE dispenses SET partial_reason = 'long_term_care' "
               "WHERE partial_reason = 'terminally_ill'")
    _change(NEW, OLD, OLD_DAYS)
