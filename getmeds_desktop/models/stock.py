"""Stock: lots, the append-only movement ledger, the controlled-substance register
and stocktakes.

Quantity on hand is the sum of a lot's movements. ``stock_lots.on_hand`` and
``product_stock`` are caches maintained by database triggers on the ledger (so a
write that bypasses the application maintains them too); CHECK constraints on
the caches make the database itself refuse a movement that would take a lot
below zero. ``services.ledger.verify`` proves the caches equal the ledger.
"""

from __future__ import annotations

import datetime as dt
import decimal
import uuid

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, BigIntPK, ChangeStamped, Tracked, UUIDPk, Versioned, str_enum, utcnow
from .enums import LotStatus, MovementKind, Schedule, StocktakeScope, StocktakeStatus


class ProductStock(ChangeStamped, Base):
    """Per-product cache of the ledger: total on hand and the nearest expiry."""

    __tablename__ = "product_stock"
    __table_args__ = (
        sa.CheckConstraint("on_hand >= 0", name="on_hand_nonneg"),
        sa.Index("ix_product_stock_on_hand", "on_hand", "product_id"),
        sa.Index("ix_product_stock_nearest_expiry", "nearest_expiry", "product_id"),
    )

    product_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("products.id", ondelete="CASCADE"), primary_key=True
    )
    on_hand: Mapped[int] = mapped_column(sa.Integer, default=0, server_default="0")
    nearest_expiry: Mapped[dt.date | None] = mapped_column(sa.Date)


class StockLot(UUIDPk, Versioned, ChangeStamped, Base):
    __tablename__ = "stock_lots"
    __table_args__ = (
        sa.UniqueConstraint("product_id", "lot_number"),
        sa.CheckConstraint("length(lot_number) > 0", name="lot_number_present"),
        sa.CheckConstraint("on_hand >= 0", name="on_hand_nonneg"),
        sa.CheckConstraint("unit_cost >= 0", name="unit_cost_nonneg"),
        sa.Index("ix_stock_lots_product_expiry", "product_id", "expiry_date"),
        sa.Index("ix_stock_lots_expiry", "expiry_date"),
    )

    product_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("products.id", ondelete="RESTRICT")
    )
    lot_number: Mapped[str] = mapped_column(sa.String(40))
    expiry_date: Mapped[dt.date] = mapped_column(sa.Date)
    status: Mapped[LotStatus] = mapped_column(
        str_enum(LotStatus, "lot_status"), default=LotStatus.AVAILABLE
    )
    status_reason: Mapped[str | None] = mapped_column(sa.String(300))
    received_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    supplier_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("suppliers.id", ondelete="RESTRICT")
    )
    unit_cost: Mapped[decimal.Decimal] = mapped_column(sa.Numeric(12, 4), default=0)
    # Cache of the ledger sum, maintained by trigger. Never written by the app.
    on_hand: Mapped[int] = mapped_column(sa.Integer, default=0, server_default="0")


class StockMovement(UUIDPk, ChangeStamped, Base):
    """One line of the append-only stock ledger. Never updated, never deleted."""

    __tablename__ = "stock_movements"
    __table_args__ = (
        sa.CheckConstraint(
            "(kind IN ('receipt', 'restock') AND quantity > 0)"
            " OR (kind IN ('dispense', 'return', 'write_off') AND quantity < 0)"
            " OR (kind IN ('adjustment', 'count', 'transfer') AND quantity <> 0)"
            # a count that matches is still in the register (migration 0021)
            " OR (kind = 'count' AND quantity = 0 AND stocktake_id IS NOT NULL)",
            name="quantity_sign",
        ),
        sa.CheckConstraint(
            "kind NOT IN ('adjustment', 'count', 'write_off', 'return', 'restock')"
            " OR (reason IS NOT NULL AND length(reason) > 0)",
            name="reason_required",
        ),
        sa.CheckConstraint(
            "(kind IN ('dispense', 'restock')) = (dispense_id IS NOT NULL)",
            name="dispense_reference",
        ),
        sa.Index("ix_stock_movements_lot", "lot_id", "created_at"),
        sa.Index("ix_stock_movements_created_at", "created_at"),
    )

    lot_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("stock_lots.id", ondelete="RESTRICT"))
    kind: Mapped[MovementKind] = mapped_column(str_enum(MovementKind, "movement_kind"))
    quantity: Mapped[int] = mapped_column(sa.Integer)
    reason: Mapped[str | None] = mapped_column(sa.String(300))
    reference: Mapped[str | None] = mapped_column(sa.String(100))  # invoice, return note
    staff_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("staff.id", ondelete="RESTRICT"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    dispense_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("dispenses.id", ondelete="RESTRICT"), index=True
    )
    supplier_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("suppliers.id", ondelete="RESTRICT")
    )
    stocktake_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("stocktakes.id", ondelete="RESTRICT")
    )
    request_id: Mapped[uuid.UUID | None] = mapped_column(unique=True)
    # migration 0022: a receipt's DEA Form 222 serial or CSOS order number (21 CFR
    # 1305.13(e), 1305.22(g)) and the supplier's DEA registration number as it was
    # at the receipt (21 CFR 1304.22(c)); the DEA form record a destruction or a
    # theft or loss was posted from
    order_form: Mapped[str | None] = mapped_column(sa.String(40))
    supplier_dea: Mapped[str | None] = mapped_column(sa.String(9))
    dea_form_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("dea_forms.id", ondelete="RESTRICT"), index=True
    )


FORM_41_COMPLETE = (
    "form <> '41' OR (destroyed_on IS NOT NULL AND length(method) > 0 AND length(place) > 0"
    " AND witness1_id IS NOT NULL AND witness2_id IS NOT NULL AND witness1_id <> witness2_id)")
FORM_106_COMPLETE = (
    "form <> '106' OR (discovered_on IS NOT NULL AND loss_type IS NOT NULL"
    " AND police_notified IS NOT NULL"
    " AND (NOT police_notified OR length(police_department) > 0)"
    " AND (loss_type <> 'lost_in_transit' OR length(carrier) > 0)"
    " AND (loss_type <> 'other' OR length(loss_detail) > 0)"
    " AND (occurred_on IS NULL OR occurred_on <= discovered_on))")


class DeaFormRecord(UUIDPk, ChangeStamped, Base):
    """A DEA Form 41 (controlled substances destroyed: 21 CFR 1304.21(e),
    1317.95(d)) or Form 106 (theft or significant loss: 21 CFR 1301.76(b)) as the
    pharmacy's record (migration 0022). Its lines are the ledger movements
    posted from it (``stock_movements.dea_form_id``), so the form, the ledger
    and the register always agree. Permanent: a correction is a new record
    naming the one it corrects."""

    __tablename__ = "dea_forms"
    __table_args__ = (
        sa.CheckConstraint("form IN ('41', '106')", name="form_known"),
        sa.CheckConstraint("loss_type IS NULL OR loss_type IN ('night_break_in', "
                           "'armed_robbery', 'employee_pilferage', 'customer_theft', "
                           "'lost_in_transit', 'other')", name="loss_type_known"),
        sa.CheckConstraint(FORM_41_COMPLETE, name="form_41_complete"),
        sa.CheckConstraint(FORM_106_COMPLETE, name="form_106_complete"),
        sa.CheckConstraint("(corrects_id IS NULL) = (correction_note IS NULL)",
                           name="correction_explained"),
        sa.Index("ix_dea_forms_filed_at", "filed_at"),
    )

    form: Mapped[str] = mapped_column(sa.String(3))
    corrects_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("dea_forms.id", ondelete="RESTRICT"))
    correction_note: Mapped[str | None] = mapped_column(sa.String(300))
    filed_by: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("staff.id", ondelete="RESTRICT"))
    filed_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # Form 41 (section C, D)
    destroyed_on: Mapped[dt.date | None] = mapped_column(sa.Date)
    method: Mapped[str | None] = mapped_column(sa.String(200))
    place: Mapped[str | None] = mapped_column(sa.String(300))
    witness1_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("staff.id", ondelete="RESTRICT"))
    witness2_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("staff.id", ondelete="RESTRICT"))
    # Form 106 (items 4, 7, 8, 10, 14, 17 and the date of discovery)
    discovered_on: Mapped[dt.date | None] = mapped_column(sa.Date)
    occurred_on: Mapped[dt.date | None] = mapped_column(sa.Date)
    loss_type: Mapped[str | None] = mapped_column(sa.String(20))
    loss_detail: Mapped[str | None] = mapped_column(sa.String(500))
    police_notified: Mapped[bool | None] = mapped_column(sa.Boolean)
    police_department: Mapped[str | None] = mapped_column(sa.String(200))
    carrier: Mapped[str | None] = mapped_column(sa.String(200))
    security_measures: Mapped[str | None] = mapped_column(sa.String(500))


class ControlledRegisterEntry(ChangeStamped, Base):
    """The controlled-substance register (21 CFR 1304), written by trigger.

    Every movement of a scheduled product gets one entry with the product's
    running balance. Schedule II and III-V are separate registers.
    """

    __tablename__ = "controlled_register"
    __table_args__ = (
        sa.CheckConstraint("balance_after >= 0", name="balance_nonneg"),
        sa.CheckConstraint("register IN ('II', 'III-V')", name="register_valid"),
        sa.CheckConstraint("schedule <> 'none'", name="schedule_controlled"),
        sa.Index("ix_controlled_register_product", "register", "product_id", "id"),
        sa.Index("ix_controlled_register_recorded_at", "recorded_at"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    movement_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("stock_movements.id", ondelete="RESTRICT"), unique=True
    )
    product_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("products.id", ondelete="RESTRICT"))
    lot_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("stock_lots.id", ondelete="RESTRICT"))
    schedule: Mapped[Schedule] = mapped_column(str_enum(Schedule, "register_schedule"))
    register: Mapped[str] = mapped_column(sa.String(5))
    kind: Mapped[MovementKind] = mapped_column(str_enum(MovementKind, "register_kind"))
    quantity: Mapped[int] = mapped_column(sa.Integer)
    balance_after: Mapped[int] = mapped_column(sa.Integer)
    staff_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("staff.id", ondelete="RESTRICT"))
    recorded_at: Mapped[dt.datetime] = mapped_column()


class Stocktake(UUIDPk, Versioned, ChangeStamped, Base):
    __tablename__ = "stocktakes"
    __table_args__ = (
        sa.CheckConstraint(
            "(scope = 'category') = (category_id IS NOT NULL)", name="category_scope"
        ),
    )

    scope: Mapped[StocktakeScope] = mapped_column(str_enum(StocktakeScope, "stocktake_scope"))
    category_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("categories.id", ondelete="RESTRICT")
    )
    status: Mapped[StocktakeStatus] = mapped_column(
        str_enum(StocktakeStatus, "stocktake_status"), default=StocktakeStatus.OPEN
    )
    started_by: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("staff.id", ondelete="RESTRICT"))
    posted_by: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("staff.id", ondelete="RESTRICT")
    )
    posted_at: Mapped[dt.datetime | None]
    note: Mapped[str | None] = mapped_column(sa.String(300))


class StocktakeLine(UUIDPk, ChangeStamped, Base):
    __tablename__ = "stocktake_lines"
    __table_args__ = (
        sa.UniqueConstraint("stocktake_id", "lot_id"),
        sa.CheckConstraint("expected_quantity >= 0", name="expected_nonneg"),
        sa.CheckConstraint(
            "counted_quantity IS NULL OR counted_quantity >= 0", name="counted_nonneg"
        ),
    )

    stocktake_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("stocktakes.id", ondelete="CASCADE")
    )
    lot_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("stock_lots.id", ondelete="RESTRICT"))
    expected_quantity: Mapped[int] = mapped_column(sa.Integer)
    counted_quantity: Mapped[int | None] = mapped_column(sa.Integer)
    reason: Mapped[str | None] = mapped_column(sa.String(300))
    counted_by: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("staff.id", ondelete="RESTRICT")
    )
    movement_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("stock_movements.id", ondelete="RESTRICT")
    )


class RecallNotice(UUIDPk, ChangeStamped, Base):
    """A patient told about a recalled lot they received: who told them, when,
    how and what came of it (migration 0017). Permanent, like the fills."""

    __tablename__ = "recall_notices"
    __table_args__ = (
        sa.CheckConstraint("method IN ('phone', 'letter', 'in_person', 'email', 'other')",
                           name="recall_method"),
        sa.CheckConstraint("length(outcome) > 0", name="outcome_present"),
        sa.Index("ix_recall_notices_lot", "lot_id", "dispense_id"),
    )

    lot_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("stock_lots.id", ondelete="RESTRICT"))
    dispense_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("dispenses.id", ondelete="RESTRICT"))
    method: Mapped[str] = mapped_column(sa.String(10))
    outcome: Mapped[str] = mapped_column(sa.String(300))
    notified_by: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("staff.id", ondelete="RESTRICT"))
    notified_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


__all__ = [
    "ControlledRegisterEntry",
    "DeaFormRecord",
    "ProductStock",
    "RecallNotice",
    "StockLot",
    "StockMovement",
    "Stocktake",
    "StocktakeLine",
    "Tracked",
]
