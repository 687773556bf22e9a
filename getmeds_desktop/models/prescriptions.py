"""Prescriptions, their dispenses (fills) and the warnings acknowledged at each fill."""

from __future__ import annotations

import datetime as dt
import uuid

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, ChangeStamped, UUIDPk, Versioned, str_enum, utcnow
from .enums import (
    Counseling,
    FillStatus,
    OverrideReason,
    ReturnReason,
    RxStatus,
    Severity,
    WarningKind,
)

RX_NUMBER_START = 100001


class Prescription(UUIDPk, Versioned, ChangeStamped, Base):
    __tablename__ = "prescriptions"
    __table_args__ = (
        sa.CheckConstraint("quantity > 0", name="quantity_positive"),
        sa.CheckConstraint("days_supply > 0", name="days_supply_positive"),
        sa.CheckConstraint("refills_authorized BETWEEN 0 AND 99", name="refills_range"),
        sa.CheckConstraint("owed_quantity >= 0", name="owed_nonneg"),
        sa.CheckConstraint("length(sig) > 0", name="sig_present"),
        sa.CheckConstraint("rx_number > 0", name="rx_number_positive"),
        sa.CheckConstraint("daw_code BETWEEN 0 AND 9", name="daw_code_range"),
        sa.CheckConstraint("daw = (daw_code IN (1, 2, 7, 9))", name="daw_matches_code"),
        sa.Index("ix_prescriptions_status", "status", "created_at"),
        sa.Index("ix_prescriptions_patient", "patient_id", "date_written"),
        sa.Index("ix_prescriptions_product", "product_id"),
        sa.Index("ix_prescriptions_prescriber", "prescriber_id"),
    )

    # Human number from a database sequence (PostgreSQL) or max+1 under SQLite's
    # single-writer lock; UNIQUE backs both.
    rx_number: Mapped[int] = mapped_column(sa.BigInteger, unique=True)
    patient_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("patients.id", ondelete="RESTRICT"))
    prescriber_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("prescribers.id", ondelete="RESTRICT")
    )
    product_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("products.id", ondelete="RESTRICT"))
    sig: Mapped[str] = mapped_column(sa.Text)
    quantity: Mapped[int] = mapped_column(sa.Integer)
    days_supply: Mapped[int] = mapped_column(sa.Integer)
    refills_authorized: Mapped[int] = mapped_column(sa.Integer, default=0)
    # True when daw_code forbids substituting another product (kept equal by the
    # database: migration 0016); the code is what the services read
    daw: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    # the NCPDP product-selection (DAW) code 0-9 (services/rxstate.py: DAW_CODES)
    daw_code: Mapped[int] = mapped_column(sa.SmallInteger, default=0, server_default="0")
    # the earliest day it may be filled (21 CFR 1306.12(b)(1)(ii)); None: any day
    not_before: Mapped[dt.date | None] = mapped_column(sa.Date)
    # arrived as an electronic prescription (False: paper, fax or phone)
    electronic: Mapped[bool] = mapped_column(sa.Boolean, default=True, server_default=sa.false())
    # a Schedule II remainder declared void (21 CFR 1306.13(a)): when, by whom
    # (a staff id; no foreign key, see migration 0012), how the prescriber was told
    remainder_void_at: Mapped[dt.datetime | None] = mapped_column()
    remainder_void_by: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid)
    prescriber_notice: Mapped[str | None] = mapped_column(sa.String(500))
    date_written: Mapped[dt.date] = mapped_column(sa.Date)
    status: Mapped[RxStatus] = mapped_column(str_enum(RxStatus, "rx_status"), default=RxStatus.NEW)
    owed_quantity: Mapped[int] = mapped_column(sa.Integer, default=0)
    notes: Mapped[str | None] = mapped_column(sa.Text)
    # Free text kept from a migrated system when no product could be matched.
    legacy_text: Mapped[str | None] = mapped_column(sa.Text)
    created_by: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("staff.id", ondelete="RESTRICT"))
    request_id: Mapped[uuid.UUID | None] = mapped_column(unique=True)


class Dispense(UUIDPk, ChangeStamped, Base):
    """One fill (or one part of a partial fill) of a prescription.

    What was filled never changes; only its way to the patient does (status
    filled -> verified -> released, or -> returned, each step with who and
    when: migration 0015). A returned fill no longer counts: its fill number
    and part may be filled again (the unique index covers fills not returned).
    """

    __tablename__ = "dispenses"
    __table_args__ = (
        sa.Index("ux_dispenses_fill_part", "prescription_id", "fill_number", "part",
                 unique=True, sqlite_where=sa.text("status <> 'returned'"),
                 postgresql_where=sa.text("status <> 'returned'")),
        sa.Index("ix_dispenses_status", "status", "dispensed_at"),
        # a prescription's latest fill by time (0025: without it the planner
        # walked the whole time index for a prescription never filled)
        sa.Index("ix_dispenses_prescription_dispensed_at", "prescription_id", "dispensed_at"),
        sa.CheckConstraint(
            "status = 'filled' OR (verified_by IS NOT NULL AND verified_at IS NOT NULL)"
            " OR (status = 'returned' AND return_reason = 'verification_refused')",
            name="verified_recorded"),
        sa.CheckConstraint(
            "status <> 'released' OR (released_by IS NOT NULL AND released_at IS NOT NULL)",
            name="released_recorded"),
        sa.CheckConstraint(
            "(status = 'returned') = (returned_by IS NOT NULL AND returned_at IS NOT NULL"
            " AND return_reason IS NOT NULL)", name="returned_recorded"),
        sa.CheckConstraint("quantity > 0", name="quantity_positive"),
        sa.CheckConstraint("fill_number >= 0", name="fill_number_nonneg"),
        sa.CheckConstraint("part >= 1", name="part_positive"),
        sa.CheckConstraint("owed_after >= 0", name="owed_nonneg"),
        sa.CheckConstraint(
            "partial_reason IN ('shortage', 'patient_request', 'long_term_care',"
            " 'terminally_ill')",
            name="partial_reason_known"),
        sa.Index("ix_dispenses_dispensed_at", "dispensed_at"),
    )

    prescription_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("prescriptions.id", ondelete="RESTRICT")
    )
    fill_number: Mapped[int] = mapped_column(sa.Integer)  # 0 = original fill, then refills
    part: Mapped[int] = mapped_column(sa.Integer, default=1)  # >1 completes a partial fill
    quantity: Mapped[int] = mapped_column(sa.Integer)
    owed_after: Mapped[int] = mapped_column(sa.Integer, default=0)
    days_supply: Mapped[int] = mapped_column(sa.Integer)
    pharmacist_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("staff.id", ondelete="RESTRICT")
    )
    dispensed_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    request_id: Mapped[uuid.UUID] = mapped_column(unique=True)
    notes: Mapped[str | None] = mapped_column(sa.Text)
    # What was scanned at fill (the package's barcode), or why nothing was.
    scan_text: Mapped[str | None] = mapped_column(sa.String(200))
    scan_ndc: Mapped[str | None] = mapped_column(sa.String(11))
    scan_gtin: Mapped[str | None] = mapped_column(sa.String(14))
    scan_lot: Mapped[str | None] = mapped_column(sa.String(40))
    scan_expiry: Mapped[dt.date | None] = mapped_column(sa.Date)
    no_scan_reason: Mapped[str | None] = mapped_column(sa.String(300))
    # the versions of the screening data files the fill was screened with
    screening_data: Mapped[str | None] = mapped_column(sa.String(200))
    # the product dispensed when it is not the prescribed one (the same drug in
    # another package: same ingredients, strength and form); None: as prescribed
    # (no foreign key: see migration 0012)
    dispensed_product_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid)
    # why this fill left some owed (enums.PartialReason; 21 CFR 1306.13); None: it
    # did not, or a partial fill that needs no reason (not Schedule II)
    partial_reason: Mapped[str | None] = mapped_column(sa.String(20))
    # the way to the patient (0015); who and when of each step
    status: Mapped[FillStatus] = mapped_column(str_enum(FillStatus, "fill_status"),
                                               default=FillStatus.FILLED)
    verified_by: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("staff.id", ondelete="RESTRICT"))
    verified_at: Mapped[dt.datetime | None]
    released_by: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("staff.id", ondelete="RESTRICT"))
    released_at: Mapped[dt.datetime | None]
    counseling: Mapped[Counseling | None] = mapped_column(str_enum(Counseling, "counseling"))
    id_checked: Mapped[str | None] = mapped_column(sa.String(100))  # what ID was seen
    returned_by: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("staff.id", ondelete="RESTRICT"))
    returned_at: Mapped[dt.datetime | None]
    return_reason: Mapped[ReturnReason | None] = mapped_column(
        str_enum(ReturnReason, "return_reason"))
    return_note: Mapped[str | None] = mapped_column(sa.String(300))


class DispenseWarning(UUIDPk, ChangeStamped, Base):
    """A safety warning shown at a fill and the pharmacist's reason for proceeding."""

    __tablename__ = "dispense_warnings"
    __table_args__ = (sa.CheckConstraint("length(reason) > 0", name="reason_present"),)

    dispense_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("dispenses.id", ondelete="RESTRICT"), index=True
    )
    kind: Mapped[WarningKind] = mapped_column(str_enum(WarningKind, "warning_kind"))
    key: Mapped[str] = mapped_column(sa.String(100))
    detail: Mapped[str] = mapped_column(sa.String(500))
    severity: Mapped[Severity] = mapped_column(
        str_enum(Severity, "warning_severity"), default=Severity.UNKNOWN)
    # the coded reason (None on warnings written before reasons were coded);
    # ``reason`` is the note, or the reason's label when no note was needed
    reason_code: Mapped[OverrideReason | None] = mapped_column(
        str_enum(OverrideReason, "warning_reason_code"))
    reason: Mapped[str] = mapped_column(sa.String(500))
    acknowledged_by: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("staff.id", ondelete="RESTRICT")
    )


class LabelPrint(UUIDPk, ChangeStamped, Base):
    """A label printed for a dispense: who, when, and why when it was printed again."""

    __tablename__ = "label_prints"
    __table_args__ = (
        sa.CheckConstraint("NOT reprint OR length(reason) > 0", name="reprint_reason"),
    )

    dispense_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("dispenses.id", ondelete="RESTRICT"), index=True)
    printed_by: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("staff.id", ondelete="RESTRICT"))
    printed_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    reprint: Mapped[bool] = mapped_column(sa.Boolean)
    reason: Mapped[str | None] = mapped_column(sa.String(300))


class PrescriptionTransfer(UUIDPk, ChangeStamped, Base):
    """A prescription's transfer to or from another pharmacy (21 CFR 1306.25,
    1306.08(e)-(i); state law for other prescriptions). Permanent: nobody
    changes or removes one (migration 0020).

    ``out``: this pharmacy's prescription went to ``pharmacy_*``; it is closed
    here (status transferred). ``in``: the prescription was entered here from
    the other pharmacy's, with the original's details."""

    __tablename__ = "prescription_transfers"
    __table_args__ = (
        sa.CheckConstraint("direction IN ('out', 'in')", name="direction_known"),
        sa.CheckConstraint("length(pharmacy_name) > 0 AND length(pharmacy_address) > 0"
                           " AND length(other_pharmacist) > 0", name="parties_present"),
        sa.CheckConstraint(
            "direction = 'out' OR (original_rx_number IS NOT NULL AND length(original_rx_number)"
            " > 0 AND refills_authorized_original IS NOT NULL AND refills_remaining IS NOT NULL)",
            name="original_recorded"),
        sa.CheckConstraint(
            "refills_remaining IS NULL OR (refills_remaining >= 0 AND refills_remaining <="
            " refills_authorized_original)", name="refills_range"),
        sa.Index("ux_prescription_transfers_one", "prescription_id", "direction", unique=True),
    )

    prescription_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("prescriptions.id", ondelete="RESTRICT"))
    direction: Mapped[str] = mapped_column(sa.String(3))
    # the other pharmacy: where it went (out) or where it came from (in)
    pharmacy_name: Mapped[str] = mapped_column(sa.String(200))
    pharmacy_address: Mapped[str] = mapped_column(sa.String(300))
    pharmacy_dea: Mapped[str | None] = mapped_column(sa.String(9))
    # the pharmacist there: receiving (out) or transferring (in)
    other_pharmacist: Mapped[str] = mapped_column(sa.String(200))
    # the pharmacist here (the signed-in one): transferring (out) or receiving (in)
    pharmacist_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("staff.id",
                                                                   ondelete="RESTRICT"))
    transferred_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # in: the original prescription (1306.25(b)(3))
    original_rx_number: Mapped[str | None] = mapped_column(sa.String(40))
    original_dispensed_on: Mapped[dt.date | None] = mapped_column(sa.Date)
    refills_authorized_original: Mapped[int | None] = mapped_column(sa.Integer)
    refills_remaining: Mapped[int | None] = mapped_column(sa.Integer)
    # dates and locations of previous refills; the pharmacy that filled it first
    # when that is not the transferring one (1306.25(b)(3)(iv), (vii))
    previous_refills: Mapped[str | None] = mapped_column(sa.String(1000))
    original_pharmacy: Mapped[str | None] = mapped_column(sa.String(500))
    request_id: Mapped[uuid.UUID] = mapped_column(unique=True)
