"""Clinical screening against the database: reads what the screening needs about
a patient and a product (one statement), runs :mod:`getmeds_desktop.screening`
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
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any, TypeVar

import sqlalchemy as sa

from .. import screening as sc
from ..enums import (
    AllergyStatus,
    OverrideReason,
    Role,
    RxStatus,
    Schedule,
    Severity,
    Sex,
    WarningKind,
)
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
from . import clock, knowledge
from .context import Actor
from .errors import NotFound, PermissionDenied, ValidationError
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
    role = Role.PHARMACIST if actor.system else actor.practice
    for w in warnings:
        override = Override.of(given.get(w.key))
        if override is None:
            missing.append(w)
            continue
        decision = sc.decide_override(w.finding, role, override.reason, override.note,
                                      settings=settings)
        if not decision.accepted:
            problem = decision.problem or ""
            label = _label(w.kind)
            # a role that may not acknowledge it is refused as such (the rules
            # runner's "permission"); a missing or thin reason is a validation error
            error = PermissionDenied if decision.by_role else ValidationError
            raise error(problem if problem.startswith(label) else f"{label}: {problem}",
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

def _typed(value: Any, type_: Any) -> sa.ColumnElement[Any]:
    # a placeholder is a typed NULL in the SQL (PostgreSQL types a union's
    # columns from its first select); a column keeps its own type
    return sa.cast(sa.null(), type_) if value is _NONE else sa.type_coerce(value, type_)


_UUID, _INT, _TEXT, _DATE = sa.Uuid(), sa.Integer(), sa.String(), sa.Date()
_S = TypeVar("_S", bound=sa.sql.expression.ClauseElement)
_STAMP = _d.c.dispensed_at.type
_NONE = sa.null()


def _row(kind: str, *, id1: object = _NONE, id2: object = _NONE, n1: object = _NONE,
         n2: object = _NONE, n3: object = _NONE, n4: object = _NONE, n5: object = _NONE,
         n6: object = _NONE, t1: object = _NONE, t2: object = _NONE, t3: object = _NONE,
         t4: object = _NONE, t5: object = _NONE, d1: object = _NONE, ts1: object = _NONE
         ) -> list[sa.ColumnElement[Any]]:
    """One select's columns of the screening statement: every select of the
    union has the same typed columns (text for the enums, read back in Python)."""
    return [sa.literal(kind, _TEXT).label("k"),
            _typed(id1, _UUID).label("id1"), _typed(id2, _UUID).label("id2"),
            *(_typed(v, _INT).label(f"n{i}") for i, v in enumerate((n1, n2, n3, n4, n5, n6), 1)),
            *(_typed(v, _TEXT).label(f"t{i}") for i, v in enumerate((t1, t2, t3, t4, t5), 1)),
            _typed(d1, _DATE).label("d1"), _typed(ts1, _STAMP).label("ts1")]


def _text(col: Any) -> sa.ColumnElement[Any]:
    return sa.cast(col, sa.String)


_pid = sa.bindparam("patient_id", type_=_UUID)
# Every product the screening may need: the one screened and those of the
# patient's prescriptions.
_products_of_patient = sa.union(
    sa.select(sa.bindparam("product_id", type_=_UUID)),
    sa.select(_rx.c.product_id).where(_rx.c.patient_id == _pid))
# Everything a screening reads, in one statement (one round trip): the patient
# and the active knowledge import, each allergy, the prescriptions that could
# still be open and the fills of the window, and the facts (row, ingredients,
# classes) of every product among them.
_Q_SCREENING = sa.union_all(
    sa.select(*_row("patient", id1=knowledge.ACTIVE_INTERACTIONS, d1=_p.c.date_of_birth,
                    t1=_text(_p.c.sex), t2=_text(_p.c.allergy_status),
                    n1=sa.cast(_p.c.pregnant, sa.Integer),
                    n2=sa.cast(_p.c.breastfeeding, sa.Integer)))
    .where(_p.c.id == _pid),
    sa.select(*_row("allergy", t1=_a.c.allergen, t2=_text(_a.c.severity), t3=_a.c.reaction,
                    n1=sa.cast(_a.c.intolerance, sa.Integer)))
    .where(_a.c.patient_id == _pid),
    sa.select(*_row("fill", id1=_rx.c.id, id2=_rx.c.product_id, n1=_rx.c.rx_number,
                    t1=_text(_rx.c.status), d1=_rx.c.date_written, ts1=_d.c.dispensed_at,
                    n2=_d.c.days_supply, n3=_d.c.quantity, n4=_rx.c.refills_authorized,
                    n5=_d.c.fill_number, n6=_d.c.part))
    .select_from(_d.join(_rx, _rx.c.id == _d.c.prescription_id))
    .where(_rx.c.patient_id == _pid, _d.c.status != "returned",  # a returned fill: no supply
           _d.c.dispensed_at >= sa.bindparam("since", type_=_STAMP)),
    sa.select(*_row("rx", id1=_rx.c.id, id2=_rx.c.product_id, n1=_rx.c.rx_number,
                    t1=_text(_rx.c.status), t2=_text(_rx.c.not_before),
                    d1=_rx.c.date_written, n2=_rx.c.days_supply,
                    n3=_rx.c.quantity, n4=_rx.c.refills_authorized,
                    n5=sa.select(sa.func.max(_d.c.fill_number))
                    .where(_d.c.prescription_id == _rx.c.id, _d.c.status != "returned")
                    .correlate(_rx)
                    .scalar_subquery()))
    .where(_rx.c.patient_id == _pid,
           _rx.c.status.in_([s.value for s in (*OPEN_STATUSES, RxStatus.ON_HOLD,
                                               RxStatus.DISPENSED)])),
    sa.select(*_row("product", id1=_pr.c.id, t1=_pr.c.name, t2=_pr.c.strength,
                    t3=_pr.c.dosage_form, t4=_pr.c.unit, t5=_text(_pr.c.schedule),
                    n1=_pr.c.max_units_per_day))
    .where(_pr.c.id.in_(_products_of_patient)),
    sa.select(*_row("ingredient", id1=_ing.c.product_id, t1=_ing.c.name, t2=_ing.c.strength,
                    n1=_ing.c.position))
    .where(_ing.c.product_id.in_(_products_of_patient)),
    sa.select(*_row("class", id1=_cls.c.product_id, t1=_cls.c.name))
    .where(_cls.c.product_id.in_(_products_of_patient)),
)


@dataclasses.dataclass(frozen=True)
class ScreeningInput:
    """What one screening needs besides the quantity and days supply."""

    patient: sc.Patient
    product: sc.Product
    medications: tuple[sc.Medication, ...]
    allergies: tuple[str, ...]  # as the GUI lists them ("Penicillins (hives, severe)")
    knowledge: sc.Knowledge  # the shipped data, with the pharmacy's import laid over


def _patient(rows: Sequence[Any]) -> tuple[sc.Patient, tuple[str, ...], uuid.UUID | None]:
    first = next((r for r in rows if r.k == "patient"), None)
    if first is None:
        raise NotFound("That patient does not exist.")
    allergies = tuple(
        sc.Allergy(r.t1, Severity(r.t2 or Severity.UNKNOWN), r.t3, bool(r.n1))
        for r in sorted((r for r in rows if r.k == "allergy"), key=lambda r: r.t1))
    status = AllergyStatus(first.t2)
    if allergies:
        status = AllergyStatus.RECORDED
    elif status is AllergyStatus.RECORDED:
        status = AllergyStatus.NOT_ASKED  # allergies recorded, then all removed
    shown = tuple(a.name + (f" ({', '.join(extra)})" if extra else "")
                  for a in allergies
                  for extra in [[x for x in (a.reaction, a.severity.value
                                             if a.severity is not Severity.UNKNOWN else None,
                                             "intolerance" if a.intolerance else None) if x]])
    return (sc.Patient(date_of_birth=first.d1, sex=Sex(first.t1), pregnant=bool(first.n1),
                       breastfeeding=bool(first.n2), allergy_status=status,
                       allergies=allergies), shown, first.id1)


def _products(rows: Sequence[Any]) -> dict[uuid.UUID, tuple[sc.Product, Schedule]]:
    ingredients: dict[uuid.UUID, list[tuple[int, sc.Ingredient]]] = {}
    classes: dict[uuid.UUID, list[str]] = {}
    for r in rows:
        if r.k == "ingredient":
            ingredients.setdefault(r.id1, []).append((r.n1 or 0,
                                                      sc.Ingredient.parse(r.t1, r.t2)))
        elif r.k == "class":
            classes.setdefault(r.id1, []).append(r.t1)
    out = {}
    for r in rows:
        if r.k != "product":
            continue
        pid, name, strength = r.id1, r.t1, r.t2
        ing = tuple(i for _, i in sorted(ingredients.get(pid, []), key=lambda x: x[0]))
        if not ing:  # a product without ingredients on file: its name stands for it
            ing = (sc.Ingredient.parse(name, strength),)
        elif len(ing) == 1 and ing[0].strength is None and strength:
            # one ingredient without its own strength: the product's strength is its
            ing = (sc.Ingredient.parse(ing[0].name, strength),)
        schedule = Schedule(r.t5)
        out[pid] = (sc.Product(
            name=" ".join(x for x in (name, strength) if x) if strength and strength not in name
            else name,
            ingredients=ing, classes=tuple(sorted(classes.get(pid, []))), dosage_form=r.t3,
            unit=r.t4 or "each", controlled=schedule.controlled,
            schedule_ii=schedule is Schedule.II,
            max_units_per_day=Decimal(r.n1) if r.n1 else None), schedule)
    return out


def of_prescription(stmt: _S) -> _S:
    """``stmt`` with the patient and the product taken from the prescription
    being filled (``rx_id``), or the product from ``substitute_id`` when one is
    given: a fill's reads then need nothing from each other and can be sent
    together (db.together)."""
    filled = _rx.alias("filled")
    rx = sa.bindparam("rx_id", type_=_UUID)
    patient = sa.select(filled.c.patient_id).where(filled.c.id == rx).scalar_subquery()
    product = sa.func.coalesce(
        sa.bindparam("substitute_id", type_=_UUID),
        sa.select(filled.c.product_id).where(filled.c.id == rx).scalar_subquery())

    def swap(element: Any, **_kw: Any) -> Any:
        if isinstance(element, sa.BindParameter):
            if element.key == "patient_id":
                return patient
            if element.key == "product_id":
                return product
        return None

    return sa.sql.visitors.replacement_traverse(stmt, {}, swap)  # type: ignore[return-value]


_Q_SCREENING_OF_RX = of_prescription(_Q_SCREENING)


def screening_read(*, at: dt.datetime, settings: sc.ScreeningSettings,
                   patient_id: uuid.UUID | None = None, product_id: uuid.UUID | None = None,
                   rx_id: uuid.UUID | None = None, substitute_id: uuid.UUID | None = None
                   ) -> tuple[sa.CompoundSelect[Any], dict[str, Any]]:
    """The statement (and its parameters) that reads what a screening needs:
    for ``patient_id`` and ``product_id``, or for the prescription ``rx_id``
    (its patient, and its product or ``substitute_id``). :func:`gathered` makes
    the input of the screening from its rows."""
    since = at - dt.timedelta(days=settings.early_refill_window_days)
    if patient_id is None:
        return _Q_SCREENING_OF_RX, {"rx_id": rx_id, "substitute_id": substitute_id,
                                    "since": since}
    return _Q_SCREENING, {"patient_id": patient_id, "product_id": product_id, "since": since}


def gather(conn: sa.Connection, *, patient_id: uuid.UUID, product_id: uuid.UUID,
           rx_id: uuid.UUID | None, at: dt.datetime, settings: sc.ScreeningSettings,
           rx_months: int, controlled_months: int) -> ScreeningInput:
    """The patient, the product and the patient's other medications, read in
    one statement. ``rx_id`` (the prescription being filled) is left out as a
    prescription; its own fills stay in as supply on hand."""
    stmt, params = screening_read(at=at, settings=settings, patient_id=patient_id,
                                  product_id=product_id)
    return gathered(conn, conn.execute(stmt, params).all(), product_id=product_id,
                    rx_id=rx_id, at=at, rx_months=rx_months,
                    controlled_months=controlled_months)


def gathered(conn: sa.Connection, rows: Sequence[Any], *, product_id: uuid.UUID,
             rx_id: uuid.UUID | None, at: dt.datetime, rx_months: int,
             controlled_months: int) -> ScreeningInput:
    """The input of a screening from the rows of :func:`screening_read`
    (``conn`` reads an imported knowledge base the first time it is used)."""
    patient, shown, import_id = _patient(rows)
    products = _products(rows)
    if product_id not in products:
        raise NotFound("That product does not exist.")
    today = clock.local(at).date()
    out: list[sc.Medication] = []
    for m in rows:
        if m.k not in ("rx", "fill") or m.id2 not in products:
            continue
        product, schedule = products[m.id2]
        status = RxStatus(m.t1)
        name = f"Rx {m.n1}"
        if m.k == "rx":
            if m.id1 == rx_id:
                continue
            if m.t2 and dt.date.fromisoformat(m.t2[:10]) > today:
                # not to be filled before a later day (21 CFR 1306.12(b)): not yet
                # a medication the patient has
                continue
            if status is RxStatus.DISPENSED:
                state = RxState(rx_number=m.n1, status=status, schedule=schedule,
                                quantity=0, refills_authorized=m.n4, date_written=m.d1,
                                owed_quantity=0,
                                validity_months=validity_months(schedule, rx_months,
                                                                controlled_months),
                                last_fill=m.n5)
                if state.finished_on(today):
                    continue  # no refills left: only its fills' supply counts
            started = dt.datetime.combine(m.d1, dt.time(12), tzinfo=dt.UTC)
            out.append(sc.Medication(product, sc.MedicationSource.PRESCRIPTION, name, started,
                                     int(m.n2), Decimal(m.n3), prescription=name,
                                     status=status.label.lower()))
        else:
            fill = f"{name} fill {m.n5 + 1}" + (f" part {m.n6}" if m.n6 > 1 else "")
            out.append(sc.Medication(product, sc.MedicationSource.FILL, fill, m.ts1,
                                     int(m.n2), Decimal(m.n3), prescription=name,
                                     status="dispensed"))
    # fills in time order, then prescriptions, as the screening's messages list them
    out.sort(key=lambda m: (m.source is not sc.MedicationSource.FILL, m.started, m.reference))
    return ScreeningInput(patient, products[product_id][0], tuple(out), shown,
                          knowledge.knowledge_for(conn, import_id))


def screen(inp: ScreeningInput, *, quantity: int, days_supply: int, at: dt.datetime,
           settings: sc.ScreeningSettings, checks: frozenset[sc.FindingKind],
           prescription: str | None = None, lot_expiry: dt.date | None = None
           ) -> sc.Screening:
    return sc.screen(sc.ScreeningRequest(
        patient=inp.patient, product=inp.product, quantity=Decimal(quantity),
        days_supply=days_supply, at=at, medications=inp.medications,
        prescription=prescription, lot_expiry=lot_expiry, settings=settings, checks=checks,
        zone=clock.zone()), inp.knowledge)


def data_versions(result: sc.Screening) -> str:
    """The data files' versions as stored with a fill ("allergy 2026.1, ...")."""
    return ", ".join(f"{name} {version}" for name, version in result.data_versions)[:200]

