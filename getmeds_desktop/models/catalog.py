"""The catalogue: categories, suppliers and products with their ingredients."""

from __future__ import annotations

import decimal
import uuid

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Base, ChangeStamped, UUIDPk, Versioned, str_enum
from .enums import Schedule, StorageCondition


class Category(UUIDPk, ChangeStamped, Base):
    __tablename__ = "categories"
    __table_args__ = (sa.CheckConstraint("length(name) > 0", name="name_present"),)

    name: Mapped[str] = mapped_column(sa.String(100), unique=True)


class Supplier(UUIDPk, Versioned, ChangeStamped, Base):
    __tablename__ = "suppliers"
    __table_args__ = (
        sa.CheckConstraint("length(name) > 0", name="name_present"),
        sa.CheckConstraint("dea_number IS NULL OR length(dea_number) = 9", name="dea_format"),
    )

    name: Mapped[str] = mapped_column(sa.String(200), unique=True)
    dea_number: Mapped[str | None] = mapped_column(sa.String(9))
    account_number: Mapped[str | None] = mapped_column(sa.String(64))
    phone: Mapped[str | None] = mapped_column(sa.String(32))
    email: Mapped[str | None] = mapped_column(sa.String(254))
    address: Mapped[str | None] = mapped_column(sa.String(300))
    active: Mapped[bool] = mapped_column(sa.Boolean, default=True)


class Product(UUIDPk, Versioned, ChangeStamped, Base):
    __tablename__ = "products"
    __table_args__ = (
        sa.CheckConstraint("length(name) > 0", name="name_present"),
        sa.CheckConstraint("ndc IS NULL OR length(ndc) = 11", name="ndc_11_digits"),
        sa.CheckConstraint("gtin IS NULL OR length(gtin) = 14", name="gtin_14_digits"),
        sa.CheckConstraint("pack_size > 0", name="pack_size_positive"),
        sa.CheckConstraint("reorder_level >= 0", name="reorder_level_nonneg"),
        sa.CheckConstraint("reorder_quantity >= 0", name="reorder_quantity_nonneg"),
        sa.CheckConstraint("unit_price >= 0", name="unit_price_nonneg"),
        sa.CheckConstraint("max_units_per_day IS NULL OR max_units_per_day >= 1",
                           name="max_units_per_day_positive"),
        sa.Index("ix_products_name", "name", "id"),
        sa.Index("ix_products_category", "category_id", "name"),
    )

    name: Mapped[str] = mapped_column(sa.String(200))
    strength: Mapped[str | None] = mapped_column(sa.String(100))
    dosage_form: Mapped[str | None] = mapped_column(sa.String(80))
    route: Mapped[str | None] = mapped_column(sa.String(80))
    ndc: Mapped[str | None] = mapped_column(sa.String(11), unique=True)
    gtin: Mapped[str | None] = mapped_column(sa.String(14), index=True)
    manufacturer: Mapped[str | None] = mapped_column(sa.String(200))
    category_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("categories.id", ondelete="RESTRICT")
    )
    storage: Mapped[StorageCondition] = mapped_column(
        str_enum(StorageCondition, "storage_condition"), default=StorageCondition.ROOM
    )
    schedule: Mapped[Schedule] = mapped_column(
        str_enum(Schedule, "controlled_schedule"), default=Schedule.NONE
    )
    unit: Mapped[str] = mapped_column(sa.String(30), default="each")
    pack_size: Mapped[int] = mapped_column(sa.Integer, default=1)
    reorder_level: Mapped[int] = mapped_column(sa.Integer, default=0)
    reorder_quantity: Mapped[int] = mapped_column(sa.Integer, default=0)
    unit_price: Mapped[decimal.Decimal] = mapped_column(sa.Numeric(12, 4), default=0)
    # the most units a patient may take in a day (screening warns above it)
    max_units_per_day: Mapped[int | None] = mapped_column(sa.Integer)
    active: Mapped[bool] = mapped_column(sa.Boolean, default=True)

    category: Mapped[Category | None] = relationship(lazy="raise")
    ingredients: Mapped[list[ProductIngredient]] = relationship(
        cascade="all, delete-orphan", lazy="raise", order_by="ProductIngredient.position"
    )
    drug_classes: Mapped[list[ProductDrugClass]] = relationship(
        cascade="all, delete-orphan", lazy="raise"
    )


class ProductIngredient(UUIDPk, ChangeStamped, Base):
    __tablename__ = "product_ingredients"
    __table_args__ = (
        sa.CheckConstraint("length(name) > 0", name="name_present"),
        sa.UniqueConstraint("product_id", "name"),
        sa.Index("ix_product_ingredients_name", "name"),
    )

    product_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("products.id", ondelete="CASCADE")
    )
    position: Mapped[int] = mapped_column(sa.SmallInteger, default=0)
    name: Mapped[str] = mapped_column(sa.String(200))
    strength: Mapped[str | None] = mapped_column(sa.String(100))


class ProductDrugClass(ChangeStamped, Base):
    __tablename__ = "product_drug_classes"
    __table_args__ = (sa.CheckConstraint("length(name) > 0", name="name_present"),)

    product_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("products.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(sa.String(200), primary_key=True)
