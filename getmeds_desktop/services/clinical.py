"""Clinical screening against the database: reads what the screening needs about
a patient and a product (three statements), runs :mod:`getmeds_desktop.screening`
and decides overrides. The dispense service screens every fill with it; the
prescription service screens a prescription as it is written.

The checks themselves, their data files and their sources live in the
screening package (docs/screening.md); this module only gathers the inputs and
turns findings into the warnings a fill stores.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import Iterable, Mapping
from decimal import Decimal

import sqlalchemy as sa

from .. import screening as sc
from ..enums import AllergyStatus, OverrideReason, Role, RxStatus, Schedule, Severity, WarningKind
from ..models import (
    Dispense,
    Patient,
    PatientAllergy,
    Prescription,
    Product,
    ProductDrugClass,
    ProductIngredient,
    table_of,
)
from . import knowledge
from .context import Actor
from .errors import NotFound, ValidationError
from .rxstate import OPEN_STATUSES, RxState, validity_months

__all__ = ["Override", "SafetyWarning", "ScreeningInput", "decide", "gather", "warnings_of"]


@dataclasses.dataclass(frozen=True)
class SafetyWarning:
    """One screening finding as the GUI shows it and a fill stores it."""

    kind: WarningKind
    key: str  # stable: the acknowledgement is given for this key
    message: str
    severity: Severity = Severity.MODERATE
    why: str = ""
    sources: tuple[str, ...] = ()

    @property
    def is_stop(self) -> bool:
        """Severe: only a pharmacist may go ahead, with a note saying why."""
        return sc.severity_rank(self.severity) >= 3

    @property
    def finding(self) -> sc.Finding:
        return sc.Finding(sc.FindingKind(self.kind.value), self.severity, self.key,
                          self.message, self.why, self.sources)


@dataclasses.dataclass(frozen=True)
class Override:
    """Why a warning is dispensed despite: a coded reason and, where the rules
    ask for one, a note (severe warnings and the reason Other)."""

    reason: OverrideReason | str
    note: str = ""

    @classmethod
    def of(cls, value: Override | str | None) -> Override | None:
        """An acknowledgement as given: an Override, or text. Text that starts
        with a reason code ("prescriber_consulted: Dr Lee confirmed") gives that
        code and the rest as note; other text is the note of the reason Other."""
        if value is None or isinstance(value, Override):
            return value
        words = str(value).strip()
        if not words:
            return None
        code, sep, rest = words.partition(":")
        try:
            return cls(OverrideReason(code.strip().lower()), rest.strip() if sep else "")
        except ValueError:
            return cls(OverrideReason.OTHER, words)


@dataclasses.dataclass(frozen=True)
class Accepted:
    warning: SafetyWarning
    reason: OverrideReason
    note: str

    @property
    def stored_reason(self) -> str:
        """The text stored as the reason: the note, or the reason's label."""
        return (self.note or self.reason.label)[:500]


def warnings_of(result: sc.Screening) -> tuple[SafetyWarning, ...]:
    return tuple(SafetyWarning(WarningKind(f.kind.value), f.key, f.message, f.severity, f.why,
                               f.sources) for f in result.findings)


def decide(warnings: Iterable[SafetyWarning], actor: Actor,
           given: Mapping[str, Override | str | None],
           settings: sc.ScreeningSettings) -> tuple[list[SafetyWarning], list[Accepted]]:
    """Each warning's acknowledgement checked against the override rules
    (screening.overrides): returns the warnings nobody acknowledged and the
    accepted overrides; an acknowledgement the rules refuse raises
    ValidationError with the rule's sentence."""
    missing: list[SafetyWarning] = []
    accepted: list[Accepted] = []
    role = Role.PHARMACIST if actor.system else actor.role
    for w in warnings:
        override = Override.of(given.get(w.key))
        if override is None:
            missing.append(w)
            continue
        decision = sc.decide_override(w.finding, role, override.reason, override.note,
                                      settings=settings)
        if not decision.accepted:
            raise ValidationError(f"{_label(w.kind)}: {decision.problem}",
                                  field="acknowledgements")
        assert decision.reason is not None
        accepted.append(Accepted(w, decision.reason, decision.note))
    return missing, accepted


def _label(kind: WarningKind) -> str:
    return sc.FindingKind(kind.value).label


# ----------------------------------------------------------------- gathering

_p = table_of(Patient)
_a = table_of(PatientAllergy)
_rx = table_of(Prescription)
_d = table_of(Dispense)
_pr = table_of(Product)
_ing = table_of(ProductIngredient)
_cls = table_of(ProductDrugClass)

# The patient and each allergy, one row per allergy (or one row without).
_Q_PATIENT = (
    sa.select(_p.c.date_of_birth, _p.c.sex, _p.c.pregnant, _p.c.breastfeeding,
              _p.c.allergy_status, _a.c.allergen, _a.c.severity, _a.c.reaction,
              _a.c.intolerance, knowledge.ACTIVE_INTERACTIONS.label("knowledge"))
    .select_from(_p.outerjoin(_a, _a.c.patient_id == _p.c.id))
    .where(_p.c.id == sa.bindparam("patient_id"))
    .order_by(_a.c.allergen)
)
# The patient's other prescriptions (that could still be open) and fills of the window.
_Q_MEDICATIONS = sa.union_all(
    sa.select(sa.literal("fill").label("src"), _rx.c.id.label("rx_id"), _rx.c.rx_number,
              _rx.c.product_id, _rx.c.status, _rx.c.date_written, _d.c.dispensed_at.label("at"),
              _d.c.days_supply, _d.c.quantity, _rx.c.refills_authorized,
              _d.c.fill_number.label("fill"), _d.c.part)
    .select_from(_d.join(_rx, _rx.c.id == _d.c.prescription_id))
    .where(_rx.c.patient_id == sa.bindparam("patient_id"),
           _d.c.dispensed_at >= sa.bindparam("since", type_=_d.c.dispensed_at.type)),
    sa.select(sa.literal("rx"), _rx.c.id, _rx.c.rx_number, _rx.c.product_id, _rx.c.status,
              _rx.c.date_written, sa.null(), _rx.c.days_supply, _rx.c.quantity,
              _rx.c.refills_authorized,
              sa.select(sa.func.max(_d.c.fill_number)).where(_d.c.prescription_id == _rx.c.id)
              .correlate(_rx).scalar_subquery(), sa.null())
    .where(_rx.c.patient_id == sa.bindparam("patient_id"),
           _rx.c.status.in_([s.value for s in (*OPEN_STATUSES, RxStatus.ON_HOLD,
                                               RxStatus.DISPENSED)])),
)
# What the screening knows of each product: its row, ingredients and classes.
_Q_PRODUCTS = sa.union_all(
    sa.select(sa.literal("p").label("k"), _pr.c.id, _pr.c.name, _pr.c.strength.label("x"),
              _pr.c.dosage_form.label("y"), _pr.c.unit.label("z"), _pr.c.schedule.label("w"),
              sa.literal(0).label("pos"))
    .where(_pr.c.id.in_(sa.bindparam("ids", expanding=True))),
    sa.select(sa.literal("i"), _ing.c.product_id, _ing.c.name, _ing.c.strength, sa.null(),
              sa.null(), sa.null(), _ing.c.position)
    .where(_ing.c.product_id.in_(sa.bindparam("ids", expanding=True))),
    sa.select(sa.literal("c"), _cls.c.product_id, _cls.c.name, sa.null(), sa.null(), sa.null(),
              sa.null(), sa.literal(0))
    .where(_cls.c.product_id.in_(sa.bindparam("ids", expanding=True))),
)


@dataclasses.dataclass(frozen=True)
class ScreeningInput:
    """What one screening needs besides the quantity and days supply."""

    patient: sc.Patient
    product: sc.Product
    medications: tuple[sc.Medication, ...]
    allergies: tuple[str, ...]  # as the GUI lists them ("Penicillins (hives, severe)")
    knowledge: sc.Knowledge  # the shipped data, with the pharmacy's import laid over


def _patient(conn: sa.Connection, patient_id: uuid.UUID
             ) -> tuple[sc.Patient, tuple[str, ...], sc.Knowledge]:
    rows = conn.execute(_Q_PATIENT, {"patient_id": patient_id}).all()
    if not rows:
        raise NotFound("That patient does not exist.")
    first = rows[0]
    allergies = tuple(
        sc.Allergy(r.allergen, Severity(r.severity or Severity.UNKNOWN), r.reaction,
                   bool(r.intolerance)) for r in rows if r.allergen is not None)
    status = AllergyStatus(first.allergy_status)
    if allergies:
        status = AllergyStatus.RECORDED
    elif status is AllergyStatus.RECORDED:
        status = AllergyStatus.NOT_ASKED  # allergies recorded, then all removed
    shown = tuple(a.name + (f" ({', '.join(extra)})" if extra else "")
                  for a in allergies
                  for extra in [[x for x in (a.reaction, a.severity.value
                                             if a.severity is not Severity.UNKNOWN else None,
                                             "intolerance" if a.intolerance else None) if x]])
    return (sc.Patient(date_of_birth=first.date_of_birth, sex=first.sex,
                       pregnant=bool(first.pregnant), breastfeeding=bool(first.breastfeeding),
                       allergy_status=status, allergies=allergies), shown,
            knowledge.knowledge_for(conn, first.knowledge))


def _products(conn: sa.Connection, ids: set[uuid.UUID]
              ) -> dict[uuid.UUID, tuple[sc.Product, Schedule]]:
    rows = conn.execute(_Q_PRODUCTS, {"ids": sorted(ids)}).all()
    base = {r[1]: r for r in rows if r[0] == "p"}
    ingredients: dict[uuid.UUID, list[tuple[int, sc.Ingredient]]] = {}
    classes: dict[uuid.UUID, list[str]] = {}
    for kind, pid, name, strength, _y, _z, _w, pos in rows:
        if kind == "i":
            ingredients.setdefault(pid, []).append((pos or 0, sc.Ingredient.parse(name,
                                                                                strength)))
        elif kind == "c":
            classes.setdefault(pid, []).append(name)
    out = {}
    for pid, r in base.items():
        ing = tuple(i for _, i in sorted(ingredients.get(pid, []), key=lambda x: x[0]))
        if not ing:  # a product without ingredients on file: its name stands for it
            ing = (sc.Ingredient.parse(r.name, r.x),)
        elif len(ing) == 1 and ing[0].strength is None and r.x:
            # one ingredient without its own strength: the product's strength is its
            ing = (sc.Ingredient.parse(ing[0].name, r.x),)
        schedule = Schedule(r.w)
        out[pid] = (sc.Product(
            name=" ".join(x for x in (r.name, r.x) if x) if r.x and r.x not in r.name
            else r.name,
            ingredients=ing, classes=tuple(sorted(classes.get(pid, []))), dosage_form=r.y,
            unit=r.z or "each", controlled=schedule.controlled), schedule)
    return out


def gather(conn: sa.Connection, *, patient_id: uuid.UUID, product_id: uuid.UUID,
           rx_id: uuid.UUID | None, at: dt.datetime, settings: sc.ScreeningSettings,
           rx_months: int, controlled_months: int) -> ScreeningInput:
    """The patient, the product and the patient's other medications, read in
    three statements. ``rx_id`` (the prescription being filled) is left out as
    a prescription; its own fills stay in as supply on hand."""
    patient, shown, kb = _patient(conn, patient_id)
    since = at - dt.timedelta(days=settings.early_refill_window_days)
    meds = conn.execute(_Q_MEDICATIONS, {"patient_id": patient_id, "since": since}).all()
    products = _products(conn, {product_id} | {m.product_id for m in meds})
    if product_id not in products:
        raise NotFound("That product does not exist.")
    today = at.astimezone().date()
    out: list[sc.Medication] = []
    for m in meds:
        if m.product_id not in products:
            continue
        product, schedule = products[m.product_id]
        status = RxStatus(m.status)
        name = f"Rx {m.rx_number}"
        if m.src == "rx":
            if m.rx_id == rx_id:
                continue
            if status is RxStatus.DISPENSED:
                state = RxState(rx_number=m.rx_number, status=status, schedule=schedule,
                                quantity=0, refills_authorized=m.refills_authorized,
                                date_written=m.date_written, owed_quantity=0,
                                validity_months=validity_months(schedule, rx_months,
                                                                controlled_months),
                                last_fill=m.fill)
                if state.finished_on(today):
                    continue  # no refills left: only its fills' supply counts
            started = dt.datetime.combine(m.date_written, dt.time(12), tzinfo=dt.UTC)
            out.append(sc.Medication(product, sc.MedicationSource.PRESCRIPTION, name, started,
                                     int(m.days_supply), Decimal(m.quantity), prescription=name,
                                     status=status.label.lower()))
        else:
            fill = f"{name} fill {m.fill + 1}" + (f" part {m.part}" if m.part > 1 else "")
            out.append(sc.Medication(product, sc.MedicationSource.FILL, fill, m.at,
                                     int(m.days_supply), Decimal(m.quantity), prescription=name,
                                     status="dispensed"))
    return ScreeningInput(patient, products[product_id][0], tuple(out), shown, kb)


def screen(inp: ScreeningInput, *, quantity: int, days_supply: int, at: dt.datetime,
           settings: sc.ScreeningSettings, checks: frozenset[sc.FindingKind],
           prescription: str | None = None, lot_expiry: dt.date | None = None
           ) -> sc.Screening:
    return sc.screen(sc.ScreeningRequest(
        patient=inp.patient, product=inp.product, quantity=Decimal(quantity),
        days_supply=days_supply, at=at, medications=inp.medications,
        prescription=prescription, lot_expiry=lot_expiry, settings=settings, checks=checks),
        inp.knowledge)


def data_versions(result: sc.Screening) -> str:
    """The data files' versions as stored with a fill ("allergy 2026.1, ...")."""
    return ", ".join(f"{name} {version}" for name, version in result.data_versions)[:200]

