"""Dispensing: FEFO lot allocation, safety warnings, and the one transaction that
writes the fill, its ledger movements, the controlled register and the audit.

Never oversells: the available lots are locked (SELECT ... FOR UPDATE on
PostgreSQL; SQLite's single writer holds the write lock from BEGIN IMMEDIATE)
before they are counted, and the database's CHECK on the lot balance refuses
anything that would still go below zero.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import uuid
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from .. import db
from .. import screening as sc
from ..enums import AllergyStatus, PartialReason
from ..models import (
    AppSettings,
    Dispense,
    DispenseWarning,
    LabelPrint,
    LotStatus,
    MovementKind,
    PatientAllergy,
    Prescription,
    PrescriptionTransfer,
    Product,
    ProductDrugClass,
    ProductIngredient,
    RxStatus,
    Schedule,
    Staff,
    StockLot,
    StockMovement,
    table_of,
)
from . import barcodes, clinical, clock, ledger, uow
from ._common import text, whole_number
from .clinical import Override, SafetyWarning
from .context import Actor, Perm, require
from .errors import (
    DomainError,
    InsufficientStock,
    InvalidState,
    NotFound,
    StaleEdit,
    ValidationError,
    WarningsNeedAcknowledgement,
)
from .identifiers import format_ndc
from .prescriptions import PrescriptionInfo, local_day, rx_info_of, rx_info_read
from .rxstate import RxState, proportional_days, substitution_allowed, validity_months


@dataclasses.dataclass(frozen=True)
class Allocation:
    lot_id: uuid.UUID
    lot_number: str
    expiry_date: dt.date
    quantity: int


@dataclasses.dataclass(frozen=True)
class Substitute:
    """Another package of the prescribed drug: the same ingredients and
    strengths, dosage form and strength, another NDC."""

    product_id: uuid.UUID
    name: str
    ndc: str | None
    available: int

    @property
    def description(self) -> str:
        return f"{self.name} (NDC {format_ndc(self.ndc) or 'none'}, {self.available} available)"


@dataclasses.dataclass(frozen=True)
class DispensePreview:
    prescription: PrescriptionInfo
    fill_number: int
    part: int
    quantity: int
    available: int
    allocations: tuple[Allocation, ...]
    warnings: tuple[SafetyWarning, ...]
    allergies: tuple[str, ...]
    problem: str | None  # why it cannot be filled at all, or None
    scanned: str | None = None  # the scan, in words, when it is the prescribed product
    scan_problem: str | None = None  # why the scanned package may not be dispensed
    scan_required: bool = False
    allergy_status: AllergyStatus = AllergyStatus.NOT_ASKED
    # when short: other packages of the same drug with stock (never for DAW)
    substitutes: tuple[Substitute, ...] = ()
    substitute: Substitute | None = None  # the one this preview dispenses instead
    # what was wrong when this fill was last refused at verification (0015)
    refused_note: str | None = None

    @property
    def stops(self) -> tuple[SafetyWarning, ...]:
        """The severe warnings: only a pharmacist may go ahead, with a note."""
        return tuple(w for w in self.warnings if w.is_stop)

    @property
    def short(self) -> int:
        return max(self.quantity - self.available, 0)


@dataclasses.dataclass(frozen=True)
class DispenseRequest:
    prescription_id: uuid.UUID
    request_id: uuid.UUID
    quantity: int | None = None  # default: the prescribed (or owed) quantity
    allow_partial: bool = False
    # warning key -> why it is dispensed despite: an Override (coded reason and
    # note) or text (clinical.Override.of says how text is read)
    acknowledgements: Mapping[str, Override | str] = dataclasses.field(default_factory=dict)
    expected_version: int | None = None
    notes: str | None = None
    # What the scanner sent for the package (checked and stored with the fill),
    # or, when nothing could be scanned, why (stored too; a setting may forbid it).
    scan: str | None = None
    no_scan_reason: str | None = None
    # dispense another package of the same drug (preview.substitutes) instead
    substitute_product_id: uuid.UUID | None = None
    # why the fill leaves some owed (needed for Schedule II, 21 CFR 1306.13);
    # a Schedule II fill short of stock with allow_partial and no reason: shortage
    partial_reason: PartialReason | None = None
    # a fill made offline and sent later (sync.outbox): when the patient was
    # handed the medicine. The fill is decided and recorded as of then (the
    # prescription's validity, the lots' expiry, the screening, its time on the
    # record), within OFFLINE_FILL_MAX_AGE.
    handed_out_at: dt.datetime | None = None


@dataclasses.dataclass(frozen=True)
class ScanCheck:
    """What the service made of a scan at fill."""

    scan: barcodes.Scan
    ndc: str | None  # the product's NDC when the scan matched by NDC
    lot_id: uuid.UUID | None  # the lot the scan names, when it names one

    @property
    def description(self) -> str:
        return self.scan.description


@dataclasses.dataclass(frozen=True)
class DispenseResult:
    dispense_id: uuid.UUID
    prescription_id: uuid.UUID
    rx_number: int
    fill_number: int
    part: int
    quantity: int
    owed_after: int
    allocations: tuple[Allocation, ...]
    acknowledged: tuple[str, ...]
    dispensed_at: dt.datetime
    pharmacist: str
    replayed: bool = False  # True when the request id had already been carried out
    days_supply: int = 0  # this fill's own (a part's is proportional to its quantity)
    partial_reason: str | None = None  # why it left some owed (enums.PartialReason)


@dataclasses.dataclass
class _Ctx:
    """Everything one fill needs about its prescription, read in one query."""

    rx_id: uuid.UUID
    rx_number: int
    patient_id: uuid.UUID
    product_id: uuid.UUID
    status: RxStatus
    quantity: int
    days_supply: int
    refills_authorized: int
    date_written: dt.date
    owed_quantity: int
    version: int
    updated_by: str | None
    updated_at: dt.datetime
    product_name: str
    unit: str
    schedule: Schedule
    rx_months: int
    controlled_months: int
    early_percent: int
    controlled_early_percent: int
    geriatric_age: int
    product_ndc: str | None
    product_gtin: str | None
    scan_required: bool
    daw_code: int  # the NCPDP product-selection code (rxstate.substitution_allowed)
    # transferred out to another pharmacy (0020): where, when
    transferred_to: str | None = None
    transferred_at: dt.datetime | None = None
    last_fill: int | None = None
    last_part: int | None = None
    not_before: dt.date | None = None
    partial_reason: str | None = None  # of the latest fill's first part
    partial_started: dt.datetime | None = None
    remainder_void_at: dt.datetime | None = None
    # the latest fill was refused at verification: what was wrong (0015)
    refused_note: str | None = None
    schedule_ii_max_days: int | None = None  # a longer Schedule II supply is a stop (0023)

    @property
    def state(self) -> RxState:
        return RxState(
            rx_number=self.rx_number, status=self.status, schedule=self.schedule,
            quantity=self.quantity, refills_authorized=self.refills_authorized,
            date_written=self.date_written, owed_quantity=self.owed_quantity,
            validity_months=validity_months(self.schedule, self.rx_months,
                                            self.controlled_months),
            last_fill=self.last_fill, last_part=self.last_part, not_before=self.not_before,
            partial_reason=PartialReason(self.partial_reason) if self.partial_reason else None,
            partial_started=self.partial_started, remainder_void_at=self.remainder_void_at,
            transferred_to=self.transferred_to,
            transferred_on=local_day(self.transferred_at))

    @property
    def screening_settings(self) -> sc.ScreeningSettings:
        return sc.ScreeningSettings(early_refill_percent=self.early_percent,
                                    controlled_early_refill_percent=self.controlled_early_percent,
                                    geriatric_age=self.geriatric_age,
                                    schedule_ii_max_days=self.schedule_ii_max_days)


# Statements of the hot path are built once, with bind parameters, and run on
# the session's Core connection: no per-call expression building, no ORM
# overhead, and SQLAlchemy's compiled cache is always hit.
_rx = table_of(Prescription)
_pr = table_of(Product)
_st = table_of(AppSettings)
_dsp = table_of(Dispense)
_ing = table_of(ProductIngredient)
_cls = table_of(ProductDrugClass)
_alg = table_of(PatientAllergy)
_lot = table_of(StockLot)
_wrn = table_of(DispenseWarning)
_trf = table_of(PrescriptionTransfer)
_TRANSFERRED_OUT = (sa.select(_trf.c.pharmacy_name)
                    .where(_trf.c.prescription_id == _rx.c.id, _trf.c.direction == "out")
                    .limit(1).correlate(_rx))

_Q_CTX = (
    sa.select(
        _rx.c.id, _rx.c.rx_number, _rx.c.patient_id, _rx.c.product_id, _rx.c.status,
        _rx.c.quantity, _rx.c.days_supply, _rx.c.refills_authorized, _rx.c.date_written,
        _rx.c.owed_quantity, _rx.c.version, _rx.c.updated_by, _rx.c.updated_at, _pr.c.name,
        _pr.c.unit, _pr.c.schedule, _st.c.rx_validity_months, _st.c.controlled_validity_months,
        _st.c.early_refill_percent, _st.c.controlled_early_refill_percent,
        _st.c.geriatric_age, _pr.c.ndc,
        _pr.c.gtin, _st.c.scan_required, _rx.c.daw_code,
        # transferred out to another pharmacy: closed here (0020)
        _TRANSFERRED_OUT.scalar_subquery(),
        _TRANSFERRED_OUT.with_only_columns(_trf.c.transferred_at).scalar_subquery(),
        # the latest fill and part, in the same round trip
        sa.select(_dsp.c.fill_number).where(_dsp.c.prescription_id == _rx.c.id,
                                            _dsp.c.status != "returned")
        .order_by(_dsp.c.fill_number.desc(), _dsp.c.part.desc()).limit(1)
        .correlate(_rx).scalar_subquery(),
        sa.select(_dsp.c.part).where(_dsp.c.prescription_id == _rx.c.id,
                                     _dsp.c.status != "returned")
        .order_by(_dsp.c.fill_number.desc(), _dsp.c.part.desc()).limit(1)
        .correlate(_rx).scalar_subquery(),
        # the earliest fill date, and the first part of the latest fill (21 CFR 1306.13)
        _rx.c.not_before,
        sa.select(_dsp.c.partial_reason).where(_dsp.c.prescription_id == _rx.c.id,
                                               _dsp.c.part == 1, _dsp.c.status != "returned")
        .order_by(_dsp.c.fill_number.desc()).limit(1).correlate(_rx).scalar_subquery(),
        sa.select(_dsp.c.dispensed_at).where(_dsp.c.prescription_id == _rx.c.id,
                                             _dsp.c.part == 1, _dsp.c.status != "returned")
        .order_by(_dsp.c.fill_number.desc()).limit(1).correlate(_rx).scalar_subquery(),
        _rx.c.remainder_void_at,
        sa.select(sa.case((_dsp.c.return_reason == "verification_refused",
                           _dsp.c.return_note)))
        .where(_dsp.c.prescription_id == _rx.c.id)
        .order_by(_dsp.c.dispensed_at.desc()).limit(1).correlate(_rx).scalar_subquery(),
        _st.c.schedule_ii_max_days)
    .select_from(_rx.join(_pr, _pr.c.id == _rx.c.product_id).join(_st, _st.c.id == 1))
    .where(_rx.c.id == sa.bindparam("rx_id"))
)
_Q_CTX_LOCK = _Q_CTX.with_for_update(of=_rx)  # serialises fills of one prescription
_Q_LOTS = (
    sa.select(_lot.c.id, _lot.c.lot_number, _lot.c.expiry_date, _lot.c.on_hand)
    .where(
        _lot.c.product_id == sa.bindparam("product_id"),
        _lot.c.status == LotStatus.AVAILABLE.value,
        _lot.c.expiry_date >= sa.bindparam("day", type_=sa.Date),
        _lot.c.on_hand > 0,
    )
    .order_by(_lot.c.expiry_date, _lot.c.lot_number, _lot.c.id)
)
# The dispensable lots of the prescription's product (or of ``substitute_id``),
# so that they can be read together with the prescription (db.together).
_Q_LOTS_OF_RX = clinical.of_prescription(_Q_LOTS)
_Q_BY_REQUEST = sa.select(_dsp.c.id).where(_dsp.c.request_id == sa.bindparam("request_id"))
# The confirm's prescription, with an earlier attempt of the same request.
_Q_CTX_AND_REQUEST = _Q_CTX.add_columns(_Q_BY_REQUEST.scalar_subquery())
# ... and locked, with the lots, for a fill decided under its locks
_Q_CTX_AND_REQUEST_LOCK = _Q_CTX_LOCK.add_columns(_Q_BY_REQUEST.scalar_subquery())
_Q_LOTS_OF_RX_LOCK = _Q_LOTS_OF_RX.with_for_update()
# The first write of a fill on PostgreSQL (migration 0025): under its locks,
# what the fill was decided from is still so.
_Q_FILL_UNCHANGED = sa.select(sa.func.getmeds_fill_unchanged(
    sa.bindparam("rx_id", type_=sa.Uuid), sa.bindparam("rx_version", type_=sa.Integer),
    sa.bindparam("lots", type_=sa.ARRAY(sa.Uuid)),
    sa.bindparam("takes", type_=sa.ARRAY(sa.Integer)), sa.bindparam("day", type_=sa.Date),
    sa.bindparam("at", type_=sa.DateTime(timezone=True))))
_UPDATE_RX = (
    sa.update(_rx)
    .where(_rx.c.id == sa.bindparam("rx_id"), _rx.c.version == sa.bindparam("old_version"))
    .values(owed_quantity=sa.bindparam("owed"), status=sa.bindparam("new_status"),
            updated_by=sa.bindparam("by"), updated_at=sa.bindparam("at"),
            version=sa.bindparam("new_version"))
)
_INSERT_DISPENSE = sa.insert(_dsp)
_INSERT_WARNING = sa.insert(_wrn)
# PostgreSQL: the fill's time as getmeds_fill_unchanged took it, under the locks
_FILL_AT = sa.cast(sa.func.current_setting("getmeds.fill_at"),
                   sa.DateTime(timezone=True))
_INSERT_DISPENSE_AT = sa.insert(_dsp).values(dispensed_at=_FILL_AT)
_UPDATE_RX_AT = _UPDATE_RX.values(updated_at=_FILL_AT)


def screen_fill(conn: sa.Connection, ctx: _Ctx, part: int, quantity: int, now: dt.datetime,
                allocations: list[Allocation], rows: list[Any] | None = None
                ) -> tuple[clinical.ScreeningInput, sc.Screening]:
    """The full clinical screening of one fill (clinical.py, screening/): every
    check; completing a partial fill (part 2 and later) is not an early refill.
    ``rows``: what :func:`clinical.screening_read` read for it, else it is read."""
    settings = ctx.screening_settings
    if rows is None:
        inp = clinical.gather(conn, patient_id=ctx.patient_id, product_id=ctx.product_id,
                              rx_id=ctx.rx_id, at=now, settings=settings,
                              rx_months=ctx.rx_months, controlled_months=ctx.controlled_months)
    else:
        inp = clinical.gathered(conn, rows, product_id=ctx.product_id, rx_id=ctx.rx_id, at=now,
                                rx_months=ctx.rx_months,
                                controlled_months=ctx.controlled_months)
    checks = sc.FILL_CHECKS if part == 1 else sc.FILL_CHECKS - {sc.FindingKind.EARLY_REFILL}
    expiry = min((a.expiry_date for a in allocations), default=None)
    days = proportional_days(ctx.days_supply, ctx.quantity, quantity)
    return inp, clinical.screen(inp, quantity=quantity, days_supply=days, at=now,
                                settings=settings, checks=checks,
                                prescription=f"Rx {ctx.rx_number}", lot_expiry=expiry)


# ----------------------------------------------------------------- allocation


@dataclasses.dataclass
class _Lot:
    id: uuid.UUID
    lot_number: str
    expiry_date: dt.date
    on_hand: int


def allocate_fefo(lots: list[_Lot], quantity: int, first: uuid.UUID | None = None
                  ) -> tuple[list[Allocation], int]:
    """First-expiring-first-out over dispensable lots, after the lot ``first``
    (the scanned package's) when there is one. Returns (allocations, available)."""
    allocations: list[Allocation] = []
    left = quantity
    available = 0
    if first is not None:
        lots = sorted(lots, key=lambda lot: lot.id != first)  # stable: FEFO after it
    for lot in lots:
        available += lot.on_hand
        if left > 0:
            take = min(lot.on_hand, left)
            allocations.append(Allocation(lot.id, lot.lot_number, lot.expiry_date, take))
            left -= take
    return allocations, available


_Q_LOT_NAMED = (
    sa.select(_lot.c.lot_number, _lot.c.expiry_date, _lot.c.status, _lot.c.on_hand)
    .where(_lot.c.product_id == sa.bindparam("product_id"),
           sa.func.upper(_lot.c.lot_number) == sa.bindparam("lot"))
)


def check_scan(conn: sa.Connection, ctx: _Ctx, raw: str, lots: list[_Lot], today: dt.date
               ) -> ScanCheck:
    """Is the scanned package the prescribed product, and, when the scan names a
    lot, a lot that may be dispensed now? A refusal says what was scanned."""
    scan = barcodes.parse_scan(raw)
    if not scan.matches(ctx.product_ndc, ctx.product_gtin):
        raise ValidationError(
            f"Wrong product: scanned {scan.description}, but Rx {ctx.rx_number} is for "
            f"{ctx.product_name} (NDC {format_ndc(ctx.product_ndc) or 'none on file'}). "
            "Do not dispense this package.", field="scan")
    ndc = ctx.product_ndc if ctx.product_ndc in scan.ndc_candidates else None
    if scan.expiry is not None and scan.expiry < today:
        raise ValidationError(f"The scanned package expired on {scan.expiry:%Y-%m-%d}: do not "
                              "dispense it.", field="scan")
    if not scan.lot:
        return ScanCheck(scan, ndc, None)
    wanted = scan.lot.strip().upper()
    lot = next((x for x in lots if x.lot_number.strip().upper() == wanted), None)
    if lot is None:
        row = conn.execute(_Q_LOT_NAMED, {"product_id": ctx.product_id, "lot": wanted}).first()
        if row is None:
            raise ValidationError(
                f"Lot {scan.lot} of {ctx.product_name} is not in stock here: receive it "
                "first, or scan another package.", field="scan")
        number, expiry, status, _on_hand = row
        if LotStatus(status) is not LotStatus.AVAILABLE:
            raise InvalidState(f"Lot {number} is {LotStatus(status).value}: it cannot be "
                               "dispensed. Put the package aside.", field="scan")
        if expiry < today:
            raise InvalidState(f"Lot {number} expired on {expiry:%Y-%m-%d}: it cannot be "
                               "dispensed. Put the package aside.", field="scan")
        raise InvalidState(f"Lot {number} has nothing left on hand here: check the stock "
                           "records before dispensing this package.", field="scan")
    if scan.expiry is not None and scan.expiry != lot.expiry_date:
        raise ValidationError(
            f"The package says expiry {scan.expiry:%Y-%m-%d}, but lot {lot.lot_number} is "
            f"recorded with {lot.expiry_date:%Y-%m-%d}: check the package.", field="scan")
    return ScanCheck(scan, ndc, lot.id)


_ing_sub = _ing.alias("sub_ing")


def _signature(conn: sa.Connection, ids: list[uuid.UUID]
               ) -> dict[uuid.UUID, tuple[str, str, tuple[tuple[str, str], ...]]]:
    """What makes two products the same drug: dosage form, strength and the
    ingredients with their strengths (case and spaces aside). The database's
    getmeds_equivalent_products (migration 0012) is the same rule for staff logins."""
    def norm(text: str | None) -> str:
        return re.sub(r"\s", "", (text or "").lower())

    rows = conn.execute(
        sa.select(_pr.c.id, _pr.c.dosage_form, _pr.c.strength, _ing.c.name, _ing.c.strength)
        .select_from(_pr.outerjoin(_ing, _ing.c.product_id == _pr.c.id))
        .where(_pr.c.id.in_(ids))).all()
    out: dict[uuid.UUID, tuple[str, str, list[tuple[str, str]]]] = {}
    for pid, form, strength, iname, istrength in rows:
        entry = out.setdefault(pid, ((form or "").strip().lower(), norm(strength), []))
        if iname is not None:
            entry[2].append((iname.strip().lower(), norm(istrength)))
    return {k: (f, st, tuple(sorted(i))) for k, (f, st, i) in out.items()}


def substitutes(conn: sa.Connection, ctx: _Ctx, day: dt.date) -> tuple[Substitute, ...]:
    """Active products that are the same drug as the prescribed one, with
    dispensable stock (none for a prescription marked dispense as written)."""
    if not substitution_allowed(ctx.daw_code):
        return ()
    mine = _signature(conn, [ctx.product_id]).get(ctx.product_id)
    if mine is None or not mine[2]:
        return ()  # without ingredients on file, nothing is known to be the same
    stock = (sa.select(sa.func.coalesce(sa.func.sum(_lot.c.on_hand), 0))
             .where(_lot.c.product_id == _pr.c.id, _lot.c.status == LotStatus.AVAILABLE.value,
                    _lot.c.expiry_date >= day, _lot.c.on_hand > 0)
             .correlate(_pr).scalar_subquery())
    rows = conn.execute(
        sa.select(_pr.c.id, _pr.c.name, _pr.c.strength, _pr.c.dosage_form, _pr.c.ndc,
                  stock.label("available"))
        .where(_pr.c.id != ctx.product_id, _pr.c.active.is_(True),
               _pr.c.schedule == ctx.schedule.value,
               _pr.c.id.in_(sa.select(_ing_sub.c.product_id).where(
                   sa.func.lower(_ing_sub.c.name) == mine[2][0][0])))
        .order_by(_pr.c.name, _pr.c.ndc)).all()
    found = [r for r in rows if r.available > 0]
    if not found:
        return ()
    sigs = _signature(conn, [r.id for r in found])
    return tuple(Substitute(r.id, " ".join(x for x in (r.name, r.strength, r.dosage_form) if x),
                            r.ndc, int(r.available))
                 for r in found if sigs.get(r.id) == mine)


def _substituted(conn: sa.Connection, ctx: _Ctx, product_id: uuid.UUID) -> _Ctx:
    """The fill's context with another package of the same drug as the product:
    its lots, its NDC for the scan, its name on the label."""
    if product_id == ctx.product_id:
        return ctx
    if not substitution_allowed(ctx.daw_code):
        raise InvalidState(f"Rx {ctx.rx_number} is marked dispense as written (DAW code "
                           f"{ctx.daw_code}): no other product may be dispensed for it.",
                           field="substitute")
    row = conn.execute(sa.select(_pr.c.id, _pr.c.name, _pr.c.unit, _pr.c.schedule, _pr.c.ndc,
                                 _pr.c.gtin, _pr.c.active)
                       .where(_pr.c.id == product_id)).first()
    sigs = _signature(conn, [ctx.product_id, product_id])
    same = (row is not None and row.active and Schedule(row.schedule) is ctx.schedule
            and sigs.get(product_id) == sigs.get(ctx.product_id)
            and bool(sigs.get(product_id, ("", "", ()))[2]))
    if row is None or not same:
        raise ValidationError(
            f"Only a product with the same ingredients, strength and dosage form as "
            f"{ctx.product_name} may be dispensed for Rx {ctx.rx_number}.", field="substitute")
    return dataclasses.replace(ctx, product_id=row.id, product_name=row.name, unit=row.unit,
                               product_ndc=row.ndc, product_gtin=row.gtin)


# How far back a fill's screening reads the patient's fills: not a pharmacy
# setting (_Ctx.screening_settings leaves it at the screening's default), so the
# read need not wait for the settings.
_SCREENING_WINDOW = sc.ScreeningSettings()


def _fill_reads(rx_id: uuid.UUID, substitute: uuid.UUID | None, day: dt.date,
                now: dt.datetime, ctx_query: Any, request_id: uuid.UUID | None = None,
                lots_query: Any = _Q_LOTS_OF_RX) -> list[tuple[Any, dict[str, Any]]]:
    """The reads of a fill that need only the prescription (and a substitute):
    its context, its product's dispensable lots and everything its screening
    needs, to be sent together (db.together: one round trip on a server)."""
    return [(ctx_query, {"rx_id": rx_id, "request_id": request_id}),
            (lots_query, {"rx_id": rx_id, "substitute_id": substitute, "day": day}),
            clinical.screening_read(at=now, settings=_SCREENING_WINDOW, rx_id=rx_id,
                                    substitute_id=substitute)]


def preview_dispense(
    sf: sessionmaker[Session],
    actor: Actor,
    prescription_id: uuid.UUID,
    quantity: int | None = None,
    *,
    scan: str | None = None,
    substitute: uuid.UUID | None = None,
) -> DispensePreview:
    """What a dispense would do now: allocation, warnings, and any blocking problem;
    with ``scan``, what the service makes of the scanned package; with
    ``substitute``, dispensing that package of the same drug instead."""
    require(actor, Perm.DISPENSE)
    # Outside a transaction on a server, its reads sent together (one round
    # trip): a preview is advice; the confirm checks everything again.
    with db.quick_read(sf) as s:
        conn = s.connection()
        now = clock.now()
        today = clock.local(now).date()
        ctx_rows, lot_rows, screening_rows, info_rows = db.together(conn, [
            *_fill_reads(prescription_id, substitute, today, now, _Q_CTX),
            rx_info_read(prescription_id)])
        if not ctx_rows:
            raise NotFound("That prescription does not exist.")
        prescribed = _Ctx(*ctx_rows[0])
        ctx = (prescribed if substitute is None
               else _substituted(conn, prescribed, substitute))
        info = rx_info_of(info_rows)
        state = ctx.state
        qty = state.default_quantity() if quantity is None else quantity
        fill, part = state.next_fill()
        lots = [_Lot(*r) for r in lot_rows]
        scanned = scan_problem = None
        first = None
        if scan is not None and scan.strip():
            try:
                check = check_scan(conn, ctx, scan, lots, today)
            except DomainError as exc:
                scan_problem = str(exc)
            else:
                scanned, first = check.description, check.lot_id
        allocations, available = allocate_fefo(lots, qty, first)
        inp, result = screen_fill(conn, ctx, part, qty, now, allocations, screening_rows)
        options = (substitutes(conn, prescribed, today)
                   if available < qty or substitute is not None else ())

        return DispensePreview(
            prescription=info, fill_number=fill, part=part, quantity=qty, available=available,
            allocations=tuple(allocations), warnings=clinical.warnings_of(result),
            allergies=inp.allergies, allergy_status=inp.patient.allergy_status,
            problem=state.problem(today, now), scanned=scanned, scan_problem=scan_problem,
            scan_required=ctx.scan_required, substitutes=options,
            substitute=next((o for o in options if o.product_id == substitute), None),
            refused_note=prescribed.refused_note,
        )


def _result(s: Session, dispense_id: uuid.UUID, replayed: bool) -> DispenseResult:
    d = s.get(Dispense, dispense_id)
    assert d is not None
    rx = s.get(Prescription, d.prescription_id)
    pharmacist = s.get(Staff, d.pharmacist_id)
    assert rx is not None and pharmacist is not None
    moves = s.execute(
        sa.select(StockMovement.lot_id, StockLot.lot_number, StockLot.expiry_date,
                  StockMovement.quantity)
        .join(StockLot, StockLot.id == StockMovement.lot_id)
        .where(StockMovement.dispense_id == d.id)
        .order_by(StockLot.expiry_date, StockLot.lot_number)
    ).all()
    acks = tuple(s.scalars(sa.select(DispenseWarning.key).where(
        DispenseWarning.dispense_id == d.id).order_by(DispenseWarning.key)))
    return DispenseResult(
        dispense_id=d.id, prescription_id=rx.id, rx_number=rx.rx_number,
        fill_number=d.fill_number, part=d.part, quantity=d.quantity, owed_after=d.owed_after,
        allocations=tuple(Allocation(lot, num, exp, -q) for lot, num, exp, q in moves),
        acknowledged=acks, dispensed_at=d.dispensed_at, pharmacist=pharmacist.username,
        replayed=replayed, days_supply=d.days_supply, partial_reason=d.partial_reason,
    )


@dataclasses.dataclass
class _Read:
    """What a confirm read before it decided (one round trip on a server)."""

    ctx: _Ctx
    lots: list[_Lot]
    screening: list[Any]
    now: dt.datetime


def dispense(sf: sessionmaker[Session], actor: Actor, req: DispenseRequest) -> DispenseResult:
    """Fill a prescription (or the owed part of a partial fill) in one transaction.

    It reads, decides and writes: on a PostgreSQL server the reads go in one
    round trip and lock nothing, and the writes go with BEGIN and COMMIT in a
    second, whose first statement checks under its locks that the prescription
    and the lots are as they were read (migration 0025). If they changed (a
    workstation took the stock or filled the prescription meanwhile) the fill
    is read and decided again, with every rule and check, so what it writes was
    decided from what is so. On SQLite the write lock is taken before the reads.
    """
    if req.quantity is not None:
        whole_number(req.quantity, "quantity", "Quantity", minimum=1)
    notes = text(req.notes, "notes", "Notes", required=False, max_len=1000)
    no_scan = text(req.no_scan_reason, "no_scan_reason", "The reason nothing was scanned",
                   required=False, max_len=300)
    if not db.pipelines(sf):  # the write lock is taken first: nothing can change
        return _dispense_once(sf, actor, req, notes, no_scan, locked=True)
    try:
        return _dispense_once(sf, actor, req, notes, no_scan, locked=False)
    except uow.Changed:
        # Another workstation took the stock or filled the prescription between
        # the reads and the writes: decide again, this time under the locks
        # (the reads wait for them), so a busy product cannot starve a fill.
        return _dispense_once(sf, actor, req, notes, no_scan, locked=True)


# How old a fill made offline may be when the server is told of it, and how far
# a workstation's clock may run ahead of the server's.
OFFLINE_FILL_MAX_AGE = dt.timedelta(days=14)
CLOCK_AHEAD = dt.timedelta(minutes=5)


def _handed_out(req: DispenseRequest) -> dt.datetime | None:
    at = req.handed_out_at
    if at is None:
        return None
    if at.tzinfo is None:
        raise ValidationError("The time a fill was handed out must say its time zone.",
                              field="handed_out_at")
    now = clock.now()
    if at > now + CLOCK_AHEAD:
        raise ValidationError("This fill says it was handed out in the future: check the "
                              "workstation's clock.", field="handed_out_at")
    if at < now - OFFLINE_FILL_MAX_AGE:
        raise ValidationError(
            f"This fill was handed out more than {OFFLINE_FILL_MAX_AGE.days} days ago: enter "
            "it by hand with the pharmacist, it is too old to be recorded as it was.",
            field="handed_out_at")
    return at


def _dispense_once(sf: sessionmaker[Session], actor: Actor, req: DispenseRequest,
                   notes: str | None, no_scan: str | None, *, locked: bool
                   ) -> DispenseResult:
    read: list[_Read] = []
    ctx_query = _Q_CTX_AND_REQUEST_LOCK if locked else _Q_CTX_AND_REQUEST
    lots_query = _Q_LOTS_OF_RX_LOCK if locked else _Q_LOTS_OF_RX

    def earlier(w: uow.Work) -> DispenseResult | None:
        """A fill already made for this request id (a retry), or None; and
        everything the fill is decided from, read in the same round trip."""
        now = _handed_out(req) or clock.now()
        today = clock.local(now).date()
        ctx_rows, lot_rows, screening_rows = db.together(w.conn, _fill_reads(
            req.prescription_id, req.substitute_product_id, today, now, ctx_query,
            req.request_id, lots_query))
        if ctx_rows:
            row = tuple(ctx_rows[0])
            done = row[-1]
            read.append(_Read(_Ctx(*row[:-1]), [_Lot(*r) for r in lot_rows],
                              screening_rows, now))
        else:
            done = w.conn.execute(_Q_BY_REQUEST, {"request_id": req.request_id}).scalar()
            if done is None:
                raise NotFound("That prescription does not exist.")
        return _result(w.session, done, True) if done is not None else None

    return uow.write(sf, actor, Perm.DISPENSE,
                     lambda w: _dispense(w, req, notes, no_scan, read[-1]),
                     request_id=req.request_id, earlier=earlier, pipelined=not locked)


def _dispense(w: uow.Work, req: DispenseRequest, notes: str | None, no_scan: str | None,
              read: _Read) -> DispenseResult:
    conn = w.conn
    ctx = read.ctx
    prescribed_product = ctx.product_id
    if req.expected_version is not None and ctx.version != req.expected_version:
        raise StaleEdit("prescription", ctx.updated_by, ctx.updated_at)
    now = read.now
    today = clock.local(now).date()
    state = ctx.state
    problem = state.problem(today, now)
    if problem:
        raise InvalidState(problem)

    fill, part = state.next_fill()
    wanted = state.default_quantity()
    qty = wanted if req.quantity is None else req.quantity
    if qty > wanted:
        raise ValidationError(
            f"Rx {ctx.rx_number} is for {wanted} {ctx.unit}; more cannot be dispensed.",
            field="quantity")

    if req.substitute_product_id is not None:
        ctx = _substituted(conn, ctx, req.substitute_product_id)
    lots = read.lots  # of the substitute, when there is one (_fill_reads)
    check = None
    if req.scan is not None and req.scan.strip():
        check = check_scan(conn, ctx, req.scan, lots, today)
        no_scan = None
    elif ctx.scan_required:
        raise InvalidState("Scan the package: this pharmacy requires a scan for every fill.",
                           field="scan")
    elif not no_scan:
        raise ValidationError("Scan the package, or give the reason it cannot be scanned.",
                              field="scan")
    allocations, available = allocate_fefo(lots, qty, check.lot_id if check else None)
    if available < qty:
        if not req.allow_partial or available == 0:
            raise InsufficientStock(
                f"Not enough stock of {ctx.product_name}: {available} {ctx.unit} "
                f"available in dispensable lots, {qty} needed."
                + (" A partial fill is possible." if available else ""),
                available=available, requested=qty)
        qty = available  # the allocations already take everything available
        if req.partial_reason is None and state.partial_reason_needed(wanted - qty):
            req = dataclasses.replace(req, partial_reason=PartialReason.SHORTAGE)
    partial_reason = _partial_reason(state, part, wanted - qty, req.partial_reason)
    _inp, screened = screen_fill(conn, ctx, part, qty, now, allocations, read.screening)
    warnings = clinical.warnings_of(screened)
    missing, accepted = clinical.decide(warnings, w.actor, req.acknowledgements,
                                        ctx.screening_settings)
    if missing:
        raise WarningsNeedAcknowledgement(missing)
    owed_after = wanted - qty
    dispense_id = uuid.uuid4()
    staff = w.staff_id
    # The writes (on a server: queued, and sent with BEGIN and COMMIT at the end
    # of the unit of work in one round trip). The first, on a server, checks
    # under its locks that the prescription and the lots are as they were read,
    # and times the fill once it holds them (0025); on SQLite the write lock is
    # held already, so the time is taken now. Either way dispense times show the
    # order in which stock was actually taken.
    handed_out = _handed_out(req)  # a fill made offline: its own time
    now = handed_out or clock.now()
    taken: dict[uuid.UUID, int] = {}
    for a in allocations:
        taken[a.lot_id] = taken.get(a.lot_id, 0) + a.quantity
    fill_time = db.begin_writes(w.session, (_Q_FILL_UNCHANGED, {
        "rx_id": ctx.rx_id, "rx_version": ctx.version, "lots": list(taken),
        "takes": list(taken.values()), "day": today,
        "at": clock.now if handed_out is None else handed_out}))
    at: dt.datetime | sa.ColumnElement[dt.datetime] = now
    if fill_time is not None:
        at = _FILL_AT
        w.after_commit(lambda r: dataclasses.replace(r, dispensed_at=fill_time()))
    conn.execute(_INSERT_DISPENSE if fill_time is None else _INSERT_DISPENSE_AT, dict(
        id=dispense_id, prescription_id=ctx.rx_id, fill_number=fill, part=part,
        quantity=qty, owed_after=owed_after,
        days_supply=proportional_days(ctx.days_supply, ctx.quantity, qty),
        partial_reason=partial_reason,
        pharmacist_id=staff, request_id=req.request_id,
        **({"dispensed_at": now} if fill_time is None else {}),
        notes=notes, no_scan_reason=no_scan, screening_data=clinical.data_versions(screened),
        dispensed_product_id=req.substitute_product_id
        if req.substitute_product_id not in (None, prescribed_product) else None,
        **_scan_columns(check)))
    on_hand = {lot.id: lot.on_hand for lot in lots}
    ledger.post(w, [
        ledger.Movement(ledger.Lot(a.lot_id, ctx.product_id, a.lot_number, on_hand[a.lot_id]),
                        MovementKind.DISPENSE, -a.quantity, reference=f"Rx {ctx.rx_number}",
                        dispense_id=dispense_id)
        for a in allocations], at=at)
    if accepted:  # one statement for all of them
        conn.execute(_INSERT_WARNING, [dict(
            id=uuid.uuid4(), dispense_id=dispense_id, kind=a.warning.kind,
            key=a.warning.key[:100], detail=a.warning.message[:500],
            severity=a.warning.severity, reason_code=a.reason, reason=a.stored_reason,
            acknowledged_by=staff) for a in accepted])
    updated = conn.execute(_UPDATE_RX if fill_time is None else _UPDATE_RX_AT, dict(
        rx_id=ctx.rx_id, old_version=ctx.version, owed=owed_after,
        new_status=RxStatus.PARTIALLY_DISPENSED if owed_after else RxStatus.DISPENSED,
        by=w.actor.username, new_version=ctx.version + 1,
        **({"at": now} if fill_time is None else {}))).rowcount
    # -1: queued on a server, where getmeds_fill_unchanged has checked the
    # version under the prescription's lock
    if updated not in (1, -1):
        raise StaleEdit("prescription", ctx.updated_by, ctx.updated_at)
    w.touched("dispenses", dispense_id)
    w.touched("prescriptions", ctx.rx_id)
    w.touched("patients", ctx.patient_id)
    return DispenseResult(
        dispense_id=dispense_id, prescription_id=ctx.rx_id, rx_number=ctx.rx_number,
        fill_number=fill, part=part, quantity=qty, owed_after=owed_after,
        allocations=tuple(allocations), acknowledged=tuple(sorted(x.key for x in warnings)),
        dispensed_at=now, pharmacist=w.actor.username,
        days_supply=proportional_days(ctx.days_supply, ctx.quantity, qty),
        partial_reason=partial_reason,
    )


def _partial_reason(state: RxState, part: int, owed_after: int,
                    asked: PartialReason | None) -> str | None:
    """The reason a fill that leaves ``owed_after`` owed records: the one asked,
    or for a later part the first part's (whose reason sets the time limit of
    the rest); a Schedule II partial fill must have one (21 CFR 1306.13)."""
    if owed_after <= 0:
        return None
    reason = state.partial_reason if part > 1 and state.partial_reason else asked
    if reason is None and state.partial_reason_needed(owed_after):
        raise ValidationError(
            f"Rx {state.rx_number} is Schedule II: say why it is filled in part (not enough "
            "in stock; requested by the patient or the prescriber; long-term care or "
            "terminal illness). 21 CFR 1306.13.", field="partial_reason")
    return None if reason is None else PartialReason(reason).value


def _scan_columns(check: ScanCheck | None) -> dict[str, object]:
    if check is None:
        return {"scan_text": None, "scan_ndc": None, "scan_gtin": None, "scan_lot": None,
                "scan_expiry": None}
    scan = check.scan
    shown = scan.raw.replace(barcodes.GS, "<GS>")
    return {"scan_text": shown if len(shown) <= 200 else shown[:199] + "…",
            "scan_ndc": check.ndc, "scan_gtin": scan.gtin.zfill(14) if scan.gtin else None,
            "scan_lot": (scan.lot or "")[:40] or None, "scan_expiry": scan.expiry}


@dataclasses.dataclass(frozen=True)
class LabelPrintInfo:
    dispense_id: uuid.UUID
    printed_at: dt.datetime
    reprint: bool
    reason: str | None
    prints: int  # labels printed for the dispense, this one included
    label_id: uuid.UUID | None = None


def record_label(sf: sessionmaker[Session], actor: Actor, dispense_id: uuid.UUID, *,
                 reprint: bool = False, reason: str | None = None,
                 request_id: uuid.UUID | None = None) -> LabelPrintInfo:
    """Record that a dispense's label is printed (before it is). A reprint, at
    any time from the fill history, needs its reason; both are kept for good.
    With ``request_id`` a repeat (a retry, an offline print replayed) records
    nothing more and answers as the first time."""
    why = text(reason, "reason", "The reason for printing the label again",
               required=reprint, max_len=300)
    if reprint and why is not None and len(why) < 3:
        raise ValidationError("Say why the label is printed again (for example \"label "
                              "smudged\" or \"patient lost the bottle\").", field="reason")

    def body(w: uow.Work) -> LabelPrintInfo:
        s = w.session
        d = s.execute(sa.select(Dispense).where(Dispense.id == dispense_id)
                      .with_for_update()).scalar_one_or_none()  # one print at a time
        if d is None:
            raise NotFound("That dispense does not exist.", field="dispense")
        if d.status == "returned":
            raise InvalidState("This fill went back to stock: it has no label to print.",
                               field="dispense")
        earlier = s.scalar(sa.select(sa.func.count()).select_from(LabelPrint).where(
            LabelPrint.dispense_id == dispense_id)) or 0
        if earlier and not reprint:
            raise ValidationError("This fill's label was printed already: printing it again "
                                  "is a reprint, and needs its reason.", field="reason")
        row = LabelPrint(id=uuid.uuid4(), dispense_id=dispense_id, printed_by=w.staff_id,
                         printed_at=clock.now(), reprint=reprint, reason=why)
        s.add(row)
        s.flush()
        return _label_info(s, row)

    def replay(w: uow.Work, label_id: str) -> LabelPrintInfo:
        return _label_info(w.session, w.session.get(LabelPrint, uuid.UUID(label_id)))

    return uow.write(sf, actor, Perm.DISPENSE, body, request_id=request_id,
                     operation="label_prints.print", replay=replay,
                     key=lambda info: info.label_id)


def _label_info(s: Session, row: Any) -> LabelPrintInfo:
    count = s.scalar(sa.select(sa.func.count()).select_from(LabelPrint).where(
        LabelPrint.dispense_id == row.dispense_id, LabelPrint.printed_at <= row.printed_at)) or 0
    return LabelPrintInfo(row.dispense_id, row.printed_at, row.reprint, row.reason, int(count),
                          row.id)


def patient_of(sf: sessionmaker[Session], prescription_id: uuid.UUID) -> uuid.UUID:
    with db.read_session(sf) as s:
        pid = s.scalar(sa.select(Prescription.patient_id).where(
            Prescription.id == prescription_id))
        if pid is None:
            raise NotFound("That prescription does not exist.")
        return pid


__all__ = [
    "Allocation",
    "DispensePreview",
    "DispenseRequest",
    "DispenseResult",
    "LabelPrintInfo",
    "Override",
    "SafetyWarning",
    "Substitute",
    "allocate_fefo",
    "dispense",
    "preview_dispense",
    "record_label",
]
