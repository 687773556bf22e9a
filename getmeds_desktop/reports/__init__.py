"""PDF reports made locally with ReportLab. No Qt here.

``generate(sf, actor, name, params, out)`` checks the permission and the
parameters, streams the rows from the database and writes the PDF.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from reportlab.platypus import Flowable
from sqlalchemy.orm import Session, sessionmaker

from .. import db
from ..enums import PaperSize
from ..services import clock, outfile
from ..services.context import Actor, Perm, require
from ..services.errors import NotFound, ValidationError
from . import data
from .base import Layout, ReportDoc, ReportMeta
from .catalog import (
    ReportParams,
    audit_report,
    controlled_register,
    dea41_worksheet,
    dea106_worksheet,
    demographics,
    dispensing_log,
    expiry_report,
    inventory_report,
    patient_history,
    recall_report,
    reorder_report,
    staff_report,
)
from .data import Pharmacy
from .dea_inventory import dea_inventory_report

Builder = Callable[[Session, ReportParams, Layout], Iterator[Flowable]]


@dataclasses.dataclass(frozen=True)
class ReportSpec:
    name: str
    title: str
    description: str
    perm: Perm
    needs: frozenset[str]  # parameters that must be given: period, days, schedule, ...
    builder: Builder | None
    landscape: bool = False


REPORTS: dict[str, ReportSpec] = {r.name: r for r in (
    ReportSpec("inventory", "Inventory valuation", "On hand and value at cost by category "
               "and product.", Perm.REPORTS, frozenset(), inventory_report),
    ReportSpec("reorder", "Reorder list", "Products at or below their reorder level with a "
               "suggested order.", Perm.REPORTS, frozenset(), reorder_report),
    ReportSpec("expiry", "Expiry report", "Expired lots on hand and lots expiring soon, with "
               "value at risk.", Perm.REPORTS, frozenset({"days"}), expiry_report),
    ReportSpec("dispensing-log", "Dispensing log", "Every dispense in a period.",
               Perm.REPORTS, frozenset({"period"}), dispensing_log, landscape=True),
    ReportSpec("controlled-register", "Controlled substance register", "Receipts, dispenses, "
               "adjustments and counts with running balances (II or III-V).", Perm.REPORTS,
               frozenset({"period", "schedule"}), controlled_register, landscape=True),
    ReportSpec("patient-history", "Medication history", "One patient's medicines, to hand to "
               "the patient.", Perm.READ_DISPENSES, frozenset({"patient"}), patient_history),
    ReportSpec("demographics", "Patient demographics", "Patients by age band and sex.",
               Perm.REPORTS, frozenset(), demographics),
    ReportSpec("staff", "Staff list", "Staff by role with license and DEA numbers.",
               Perm.REPORTS, frozenset(), staff_report),
    ReportSpec("label", "Prescription label", "The label for one dispense (4 x 2.5 in).",
               Perm.DISPENSE, frozenset({"dispense"}), None),
    ReportSpec("recall", "Recall worklist", "Every patient who received a lot, with contact "
               "details and the notices so far.", Perm.READ_DISPENSES, frozenset({"lot"}),
               recall_report, landscape=True),
    ReportSpec("dea-inventory", "DEA inventory", "An initial, biennial or newly-controlled "
               "inventory of the controlled substances (21 CFR 1304.11), Schedule II apart.",
               Perm.REPORTS, frozenset(), dea_inventory_report),
    ReportSpec("dea-41", "DEA Form 41 worksheet", "A destruction record's fields for DEA "
               "Form 41 (controlled substances destroyed).", Perm.REPORTS,
               frozenset({"form"}), dea41_worksheet),
    ReportSpec("dea-106", "DEA Form 106 worksheet", "A theft or loss record's fields for "
               "DEA Form 106 (filed online).", Perm.REPORTS, frozenset({"form"}),
               dea106_worksheet, landscape=True),
    ReportSpec("audit", "Audit trail", "Every change in a period (administrators only).",
               Perm.READ_AUDIT, frozenset({"period"}), audit_report, landscape=True),
)}


@dataclasses.dataclass(frozen=True)
class ReportResult:
    path: Path
    pages: int
    seconds: float


def _check(spec: ReportSpec, p: ReportParams) -> None:
    if "period" in spec.needs:
        if p.start is None or p.end is None:
            raise ValidationError(f"The {spec.name} report needs a period: --from and --to.",
                                  field="period")
        if p.end < p.start:
            raise ValidationError("The end of the period is before its start.", field="period")
    if "days" in spec.needs and p.days is not None and not 0 < p.days <= 3650:
        raise ValidationError("Days must be between 1 and 3650.", field="days")
    if "schedule" in spec.needs and p.schedule not in ("II", "III-V"):
        raise ValidationError("Choose the register: schedule II or III-V.", field="schedule")
    if "patient" in spec.needs and p.patient_id is None:
        raise ValidationError("Choose the patient (--patient ID).", field="patient")
    if "lot" in spec.needs and p.lot_id is None:
        raise ValidationError("Choose the lot (--lot ID).", field="lot")
    if "form" in spec.needs and p.form_id is None:
        raise ValidationError("Choose the DEA form record (--form ID).", field="form")
    if "dispense" in spec.needs and p.dispense_id is None:
        raise ValidationError("Choose the dispense (--dispense ID).", field="dispense")


def _parameters(spec: ReportSpec, p: ReportParams, s: Session) -> tuple[str, ...]:
    out = []
    if "period" in spec.needs:
        out.append(f"Period: {p.start:%Y-%m-%d} to {p.end:%Y-%m-%d}")
    if "days" in spec.needs:
        out.append(f"Expiring within {p.days or 90} days; expired lots on hand")
    if "schedule" in spec.needs:
        out.append(f"Register: Schedule {p.schedule}")
    if "patient" in spec.needs:
        from ..models import Patient

        pat = s.get(Patient, p.patient_id)
        if pat is None:
            raise NotFound("That patient does not exist.", field="patient")
        out.append(f"Patient: {pat.first_name} {pat.last_name}, born {pat.date_of_birth}")
    if "lot" in spec.needs:
        out.append(f"As of {clock.local(clock.now()):%Y-%m-%d %H:%M}")
    if "form" in spec.needs:
        from ..models import DeaFormRecord

        record = s.get(DeaFormRecord, p.form_id)
        if record is None:
            raise NotFound("That DEA form record does not exist.", field="form")
        out.append(f"Record of {clock.local(record.filed_at):%Y-%m-%d %H:%M}")
    if not out:
        out.append(f"As of {clock.today():%Y-%m-%d}")
    return tuple(out)


# [pharmacy] keys of the site file (IT's getmeds.toml) -> Pharmacy fields
SITE_PHARMACY_KEYS = {"name": "name", "address": "address", "phone": "phone",
                      "dea_number": "dea_number", "npi": "npi"}


@dataclasses.dataclass(frozen=True)
class SiteOverrides:
    """What the workstation's site file presets for reports: it wins over the
    pharmacy settings in the database."""

    pharmacy: Mapping[str, str] = dataclasses.field(default_factory=dict)
    paper_size: str | None = None


def pharmacy_of(s: Session, site: SiteOverrides | None = None) -> tuple[Pharmacy, PaperSize]:
    from ..services.settings import load

    row = load(s)
    pharmacy = Pharmacy(row.pharmacy_name, row.address, row.phone, row.dea_number, row.npi)
    paper = row.paper_size
    if site is not None:
        preset = {SITE_PHARMACY_KEYS[k]: v for k, v in site.pharmacy.items()
                  if k in SITE_PHARMACY_KEYS and v}
        pharmacy = dataclasses.replace(pharmacy, **preset)
        if site.paper_size:
            try:
                paper = PaperSize(str(site.paper_size).lower())
            except ValueError:
                raise ValidationError(
                    f"The site configuration's paper_size '{site.paper_size}' is not one of "
                    f"{', '.join(p.value for p in PaperSize)}.") from None
    return pharmacy, paper


def generate(
    sf: sessionmaker[Session],
    actor: Actor,
    name: str,
    params: ReportParams,
    out: Path,
    *,
    progress: Callable[[int], None] | None = None,
    generated_by: str | None = None,
    site: SiteOverrides | None = None,
) -> ReportResult:
    """Write the report ``name`` to ``out`` (written to a temporary file first, so
    a failure never leaves a half-written PDF behind)."""
    import time

    from .. import __version__

    spec = REPORTS.get(name)
    if spec is None:
        raise ValidationError(
            f"There is no report '{name}'. Reports: {', '.join(sorted(REPORTS))}.")
    require(actor, spec.perm)
    _check(spec, params)
    started = time.perf_counter()
    out = Path(out)
    with outfile.replacing(out) as tmp, db.read_session(sf) as s:
        if spec.name == "label":
            from .label import draw_label

            pages = draw_label(tmp, label_data(s, params.dispense_id, site))
        else:
            pharmacy, paper = pharmacy_of(s, site)
            meta = ReportMeta(
                title=spec.title, parameters=_parameters(spec, params, s),
                pharmacy=pharmacy, generated_by=generated_by or
                f"{actor.full_name} ({actor.username})", generated_at=clock.now(),
                paper=paper, version=__version__, landscape=spec.landscape)
            doc = ReportDoc(str(tmp), meta, progress=progress)
            assert spec.builder is not None
            pages = doc.build_story(spec.builder(s, params, doc.layout))
    return ReportResult(out, pages, round(time.perf_counter() - started, 2))


def label_data(s: Session, dispense_id: uuid.UUID | None,
               site: SiteOverrides | None = None) -> data.LabelData:
    if dispense_id is None:
        raise NotFound("That dispense does not exist.", field="dispense")
    pharmacy, _ = pharmacy_of(s, site)
    return data.label_data(s, dispense_id, pharmacy)


__all__ = ["REPORTS", "ReportParams", "ReportResult", "ReportSpec", "generate"]
