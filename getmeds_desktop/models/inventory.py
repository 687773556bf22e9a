"""DEA inventories (21 CFR 1304.11): the record of a controlled count, kept
apart from the stocktake it was counted in (migration 0021). Permanent rows."""

from __future__ import annotations

import datetime as dt
import uuid

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, ChangeStamped, UUIDPk


class DeaInventory(UUIDPk, ChangeStamped, Base):
    """An initial, biennial or newly-controlled inventory: its date, as of the
    opening or the close of business, who took it (21 CFR 1304.11(a)-(d))."""

    __tablename__ = "dea_inventories"
    __table_args__ = (
        sa.CheckConstraint("kind IN ('initial', 'biennial', 'newly_controlled')",
                           name="inventory_kind"),
        sa.CheckConstraint("business IN ('opening', 'close')", name="business_valid"),
        sa.Index("ix_dea_inventories_taken_on", "taken_on", "id"),
    )

    kind: Mapped[str] = mapped_column(sa.String(16))
    business: Mapped[str] = mapped_column(sa.String(7))
    taken_on: Mapped[dt.date] = mapped_column(sa.Date)
    taken_by: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("staff.id", ondelete="RESTRICT"))
    taken_at: Mapped[dt.datetime] = mapped_column()
    stocktake_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("stocktakes.id", ondelete="RESTRICT"), unique=True)
    request_id: Mapped[uuid.UUID | None] = mapped_column(unique=True)
    note: Mapped[str | None] = mapped_column(sa.String(300))
    # PostgreSQL: the transaction that wrote it (set by the server)
    txn: Mapped[int | None] = mapped_column(sa.BigInteger)


class DeaInventoryLine(UUIDPk, ChangeStamped, Base):
    """One product (one lot of it) in an inventory, as it was: an exact count,
    or the estimate of an opened container of Schedule III-V holding at most
    1,000 units (21 CFR 1304.11(e)(3))."""

    __tablename__ = "dea_inventory_lines"
    __table_args__ = (
        sa.CheckConstraint("schedule IN ('II', 'III', 'IV', 'V')", name="schedule_controlled"),
        sa.CheckConstraint("quantity >= 0", name="quantity_nonneg"),
        sa.CheckConstraint("container_units IS NULL OR container_units > 0",
                           name="container_positive"),
        sa.CheckConstraint("exact OR (schedule <> 'II' AND container_units IS NOT NULL AND "
                           "container_units <= 1000)", name="estimate_allowed"),
        sa.Index("ix_dea_inventory_lines_inventory", "inventory_id", "schedule"),
        sa.Index("ix_dea_inventory_lines_product", "product_id"),
    )

    inventory_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("dea_inventories.id", ondelete="RESTRICT"))
    product_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("products.id", ondelete="RESTRICT"))
    lot_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("stock_lots.id", ondelete="RESTRICT"))
    schedule: Mapped[str] = mapped_column(sa.String(3))
    product_name: Mapped[str] = mapped_column(sa.String(200))
    strength: Mapped[str | None] = mapped_column(sa.String(100))
    dosage_form: Mapped[str | None] = mapped_column(sa.String(80))
    ndc: Mapped[str | None] = mapped_column(sa.String(11))
    lot_number: Mapped[str | None] = mapped_column(sa.String(40))
    quantity: Mapped[int] = mapped_column(sa.Integer)
    exact: Mapped[bool] = mapped_column(sa.Boolean)
    container_units: Mapped[int | None] = mapped_column(sa.Integer)
    movement_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("stock_movements.id", ondelete="RESTRICT"))


__all__ = ["DeaInventory", "DeaInventoryLine"]
