"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-26 20:11:09.580460
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('app_settings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('pharmacy_name', sa.String(length=200), nullable=False),
    sa.Column('address', sa.String(length=300), nullable=True),
    sa.Column('phone', sa.String(length=32), nullable=True),
    sa.Column('dea_number', sa.String(length=9), nullable=True),
    sa.Column('npi', sa.String(length=10), nullable=True),
    sa.Column('paper_size', sa.Enum('letter', 'a4', name='paper_size', native_enum=False, create_constraint=True), nullable=False),
    sa.Column('auto_lock_minutes', sa.Integer(), nullable=False),
    sa.Column('controlled_validity_months', sa.Integer(), nullable=False),
    sa.Column('rx_validity_months', sa.Integer(), nullable=False),
    sa.Column('early_refill_percent', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_by', sa.String(length=64), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.CheckConstraint('auto_lock_minutes BETWEEN 1 AND 240', name=op.f('ck_app_settings_auto_lock_range')),
    sa.CheckConstraint('controlled_validity_months BETWEEN 1 AND 12', name=op.f('ck_app_settings_controlled_validity_range')),
    sa.CheckConstraint('dea_number IS NULL OR length(dea_number) = 9', name=op.f('ck_app_settings_dea_format')),
    sa.CheckConstraint('early_refill_percent BETWEEN 1 AND 100', name=op.f('ck_app_settings_early_refill_percent_range')),
    sa.CheckConstraint('id = 1', name=op.f('ck_app_settings_single_row')),
    sa.CheckConstraint('rx_validity_months BETWEEN 1 AND 24', name=op.f('ck_app_settings_rx_validity_range')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_app_settings'))
    )
    op.create_table('audit_log',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=63), nullable=True),
    sa.Column('db_user', sa.String(length=63), nullable=False),
    sa.Column('action', sa.String(length=6), nullable=False),
    sa.Column('table_name', sa.String(length=63), nullable=False),
    sa.Column('row_id', sa.String(length=64), nullable=False),
    sa.Column('before', sa.JSON().with_variant(postgresql.JSONB(), 'postgresql'), nullable=True),
    sa.Column('after', sa.JSON().with_variant(postgresql.JSONB(), 'postgresql'), nullable=True),
    sa.CheckConstraint("action IN ('INSERT', 'UPDATE', 'DELETE')", name=op.f('ck_audit_log_action_valid')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_log'))
    )
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.create_index('ix_audit_log_occurred_at', ['occurred_at'], unique=False)
        batch_op.create_index('ix_audit_log_row', ['table_name', 'row_id'], unique=False)

    op.create_table('categories',
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.CheckConstraint('length(name) > 0', name=op.f('ck_categories_name_present')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_categories')),
    sa.UniqueConstraint('name', name=op.f('uq_categories_name'))
    )
    op.create_table('patients',
    sa.Column('first_name', sa.String(length=100), nullable=False),
    sa.Column('last_name', sa.String(length=100), nullable=False),
    sa.Column('date_of_birth', sa.Date(), nullable=False),
    sa.Column('sex', sa.Enum('female', 'male', 'other', 'unknown', name='patient_sex', native_enum=False, create_constraint=True), nullable=False),
    sa.Column('phone', sa.String(length=32), nullable=True),
    sa.Column('email', sa.String(length=254), nullable=True),
    sa.Column('address_line', sa.String(length=200), nullable=True),
    sa.Column('city', sa.String(length=100), nullable=True),
    sa.Column('state', sa.String(length=50), nullable=True),
    sa.Column('postal_code', sa.String(length=20), nullable=True),
    sa.Column('notes', sa.Text(), nullable=True),
    sa.Column('legacy_ref', sa.String(length=64), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_by', sa.String(length=64), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.CheckConstraint('length(first_name) > 0', name=op.f('ck_patients_first_name_present')),
    sa.CheckConstraint('length(last_name) > 0', name=op.f('ck_patients_last_name_present')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_patients')),
    sa.UniqueConstraint('legacy_ref', name=op.f('uq_patients_legacy_ref'))
    )
    with op.batch_alter_table('patients', schema=None) as batch_op:
        batch_op.create_index('ix_patients_date_of_birth', ['date_of_birth'], unique=False)
        batch_op.create_index('ix_patients_name', ['last_name', 'first_name', 'id'], unique=False)
        batch_op.create_index('ix_patients_phone', ['phone'], unique=False)

    op.create_table('prescribers',
    sa.Column('first_name', sa.String(length=100), nullable=False),
    sa.Column('last_name', sa.String(length=100), nullable=False),
    sa.Column('credentials', sa.String(length=20), nullable=True),
    sa.Column('npi', sa.String(length=10), nullable=True),
    sa.Column('licence_number', sa.String(length=64), nullable=True),
    sa.Column('dea_number', sa.String(length=9), nullable=True),
    sa.Column('phone', sa.String(length=32), nullable=True),
    sa.Column('address', sa.String(length=300), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_by', sa.String(length=64), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.CheckConstraint('dea_number IS NULL OR length(dea_number) = 9', name=op.f('ck_prescribers_dea_format')),
    sa.CheckConstraint('length(last_name) > 0', name=op.f('ck_prescribers_last_name_present')),
    sa.CheckConstraint('npi IS NOT NULL OR licence_number IS NOT NULL', name=op.f('ck_prescribers_npi_or_licence')),
    sa.CheckConstraint('npi IS NULL OR length(npi) = 10', name=op.f('ck_prescribers_npi_format')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_prescribers')),
    sa.UniqueConstraint('npi', name=op.f('uq_prescribers_npi'))
    )
    op.create_table('request_log',
    sa.Column('request_id', sa.Uuid(), nullable=False),
    sa.Column('operation', sa.String(length=60), nullable=False),
    sa.Column('entity_id', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('request_id', name=op.f('pk_request_log'))
    )
    op.create_table('suppliers',
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('dea_number', sa.String(length=9), nullable=True),
    sa.Column('account_number', sa.String(length=64), nullable=True),
    sa.Column('phone', sa.String(length=32), nullable=True),
    sa.Column('email', sa.String(length=254), nullable=True),
    sa.Column('address', sa.String(length=300), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_by', sa.String(length=64), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.CheckConstraint('dea_number IS NULL OR length(dea_number) = 9', name=op.f('ck_suppliers_dea_format')),
    sa.CheckConstraint('length(name) > 0', name=op.f('ck_suppliers_name_present')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_suppliers')),
    sa.UniqueConstraint('name', name=op.f('uq_suppliers_name'))
    )
    op.create_table('patient_allergies',
    sa.Column('patient_id', sa.Uuid(), nullable=False),
    sa.Column('allergen', sa.String(length=120), nullable=False),
    sa.Column('reaction', sa.String(length=200), nullable=True),
    sa.Column('severity', sa.Enum('mild', 'moderate', 'severe', 'unknown', name='allergy_severity', native_enum=False, create_constraint=True), nullable=False),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.CheckConstraint('length(allergen) > 0', name=op.f('ck_patient_allergies_allergen_present')),
    sa.ForeignKeyConstraint(['patient_id'], ['patients.id'], name=op.f('fk_patient_allergies_patient_id_patients'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_patient_allergies')),
    sa.UniqueConstraint('patient_id', 'allergen', name=op.f('uq_patient_allergies_patient_id_allergen'))
    )
    with op.batch_alter_table('patient_allergies', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_patient_allergies_patient_id'), ['patient_id'], unique=False)

    op.create_table('patient_conditions',
    sa.Column('patient_id', sa.Uuid(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('notes', sa.String(length=500), nullable=True),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.CheckConstraint('length(name) > 0', name=op.f('ck_patient_conditions_name_present')),
    sa.ForeignKeyConstraint(['patient_id'], ['patients.id'], name=op.f('fk_patient_conditions_patient_id_patients'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_patient_conditions')),
    sa.UniqueConstraint('patient_id', 'name', name=op.f('uq_patient_conditions_patient_id_name'))
    )
    with op.batch_alter_table('patient_conditions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_patient_conditions_patient_id'), ['patient_id'], unique=False)

    op.create_table('products',
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('strength', sa.String(length=100), nullable=True),
    sa.Column('dosage_form', sa.String(length=80), nullable=True),
    sa.Column('route', sa.String(length=80), nullable=True),
    sa.Column('ndc', sa.String(length=11), nullable=True),
    sa.Column('gtin', sa.String(length=14), nullable=True),
    sa.Column('manufacturer', sa.String(length=200), nullable=True),
    sa.Column('category_id', sa.Uuid(), nullable=True),
    sa.Column('storage', sa.Enum('room', 'refrigerated', 'frozen', name='storage_condition', native_enum=False, create_constraint=True), nullable=False),
    sa.Column('schedule', sa.Enum('none', 'II', 'III', 'IV', 'V', name='controlled_schedule', native_enum=False, create_constraint=True), nullable=False),
    sa.Column('unit', sa.String(length=30), nullable=False),
    sa.Column('pack_size', sa.Integer(), nullable=False),
    sa.Column('reorder_level', sa.Integer(), nullable=False),
    sa.Column('reorder_quantity', sa.Integer(), nullable=False),
    sa.Column('unit_price', sa.Numeric(precision=12, scale=4), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_by', sa.String(length=64), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.CheckConstraint('gtin IS NULL OR length(gtin) = 14', name=op.f('ck_products_gtin_14_digits')),
    sa.CheckConstraint('length(name) > 0', name=op.f('ck_products_name_present')),
    sa.CheckConstraint('ndc IS NULL OR length(ndc) = 11', name=op.f('ck_products_ndc_11_digits')),
    sa.CheckConstraint('pack_size > 0', name=op.f('ck_products_pack_size_positive')),
    sa.CheckConstraint('reorder_level >= 0', name=op.f('ck_products_reorder_level_nonneg')),
    sa.CheckConstraint('reorder_quantity >= 0', name=op.f('ck_products_reorder_quantity_nonneg')),
    sa.CheckConstraint('unit_price >= 0', name=op.f('ck_products_unit_price_nonneg')),
    sa.ForeignKeyConstraint(['category_id'], ['categories.id'], name=op.f('fk_products_category_id_categories'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_products')),
    sa.UniqueConstraint('ndc', name=op.f('uq_products_ndc'))
    )
    with op.batch_alter_table('products', schema=None) as batch_op:
        batch_op.create_index('ix_products_category', ['category_id', 'name'], unique=False)
        batch_op.create_index(batch_op.f('ix_products_gtin'), ['gtin'], unique=False)
        batch_op.create_index('ix_products_name', ['name', 'id'], unique=False)

    op.create_table('staff',
    sa.Column('username', sa.String(length=63), nullable=False),
    sa.Column('full_name', sa.String(length=200), nullable=False),
    sa.Column('role', sa.Enum('admin', 'pharmacist', 'clerk', 'doctor', name='staff_role', native_enum=False, create_constraint=True), nullable=False),
    sa.Column('licence_number', sa.String(length=64), nullable=True),
    sa.Column('dea_number', sa.String(length=9), nullable=True),
    sa.Column('prescriber_id', sa.Uuid(), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_by', sa.String(length=64), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.CheckConstraint('dea_number IS NULL OR length(dea_number) = 9', name=op.f('ck_staff_dea_format')),
    sa.CheckConstraint('length(full_name) > 0', name=op.f('ck_staff_full_name_present')),
    sa.CheckConstraint('length(username) >= 2', name=op.f('ck_staff_username_length')),
    sa.CheckConstraint('username = lower(username)', name=op.f('ck_staff_username_lowercase')),
    sa.ForeignKeyConstraint(['prescriber_id'], ['prescribers.id'], name=op.f('fk_staff_prescriber_id_prescribers'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_staff')),
    sa.UniqueConstraint('prescriber_id', name=op.f('uq_staff_prescriber_id')),
    sa.UniqueConstraint('username', name=op.f('uq_staff_username'))
    )
    op.create_table('patient_feedback',
    sa.Column('patient_id', sa.Uuid(), nullable=False),
    sa.Column('feedback', sa.Text(), nullable=False),
    sa.Column('received_by', sa.Uuid(), nullable=True),
    sa.Column('reply', sa.Text(), nullable=True),
    sa.Column('replied_by', sa.Uuid(), nullable=True),
    sa.Column('replied_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_by', sa.String(length=64), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.CheckConstraint('(reply IS NULL AND replied_by IS NULL AND replied_at IS NULL) OR (reply IS NOT NULL AND replied_by IS NOT NULL AND replied_at IS NOT NULL)', name=op.f('ck_patient_feedback_reply_complete')),
    sa.CheckConstraint('length(feedback) > 0', name=op.f('ck_patient_feedback_feedback_present')),
    sa.ForeignKeyConstraint(['patient_id'], ['patients.id'], name=op.f('fk_patient_feedback_patient_id_patients'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['received_by'], ['staff.id'], name=op.f('fk_patient_feedback_received_by_staff'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['replied_by'], ['staff.id'], name=op.f('fk_patient_feedback_replied_by_staff'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_patient_feedback'))
    )
    with op.batch_alter_table('patient_feedback', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_patient_feedback_patient_id'), ['patient_id'], unique=False)

    op.create_table('prescriptions',
    sa.Column('rx_number', sa.BigInteger(), nullable=False),
    sa.Column('patient_id', sa.Uuid(), nullable=False),
    sa.Column('prescriber_id', sa.Uuid(), nullable=False),
    sa.Column('product_id', sa.Uuid(), nullable=False),
    sa.Column('sig', sa.Text(), nullable=False),
    sa.Column('quantity', sa.Integer(), nullable=False),
    sa.Column('days_supply', sa.Integer(), nullable=False),
    sa.Column('refills_authorized', sa.Integer(), nullable=False),
    sa.Column('daw', sa.Boolean(), nullable=False),
    sa.Column('date_written', sa.Date(), nullable=False),
    sa.Column('status', sa.Enum('new', 'in_progress', 'ready_for_check', 'partially_dispensed', 'dispensed', 'on_hold', 'cancelled', name='rx_status', native_enum=False, create_constraint=True), nullable=False),
    sa.Column('owed_quantity', sa.Integer(), nullable=False),
    sa.Column('notes', sa.Text(), nullable=True),
    sa.Column('legacy_text', sa.Text(), nullable=True),
    sa.Column('created_by', sa.Uuid(), nullable=False),
    sa.Column('request_id', sa.Uuid(), nullable=True),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_by', sa.String(length=64), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.CheckConstraint('days_supply > 0', name=op.f('ck_prescriptions_days_supply_positive')),
    sa.CheckConstraint('length(sig) > 0', name=op.f('ck_prescriptions_sig_present')),
    sa.CheckConstraint('owed_quantity >= 0', name=op.f('ck_prescriptions_owed_nonneg')),
    sa.CheckConstraint('quantity > 0', name=op.f('ck_prescriptions_quantity_positive')),
    sa.CheckConstraint('refills_authorized BETWEEN 0 AND 99', name=op.f('ck_prescriptions_refills_range')),
    sa.CheckConstraint('rx_number > 0', name=op.f('ck_prescriptions_rx_number_positive')),
    sa.ForeignKeyConstraint(['created_by'], ['staff.id'], name=op.f('fk_prescriptions_created_by_staff'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['patient_id'], ['patients.id'], name=op.f('fk_prescriptions_patient_id_patients'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['prescriber_id'], ['prescribers.id'], name=op.f('fk_prescriptions_prescriber_id_prescribers'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['product_id'], ['products.id'], name=op.f('fk_prescriptions_product_id_products'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_prescriptions')),
    sa.UniqueConstraint('request_id', name=op.f('uq_prescriptions_request_id')),
    sa.UniqueConstraint('rx_number', name=op.f('uq_prescriptions_rx_number'))
    )
    with op.batch_alter_table('prescriptions', schema=None) as batch_op:
        batch_op.create_index('ix_prescriptions_patient', ['patient_id', 'date_written'], unique=False)
        batch_op.create_index('ix_prescriptions_prescriber', ['prescriber_id'], unique=False)
        batch_op.create_index('ix_prescriptions_product', ['product_id'], unique=False)
        batch_op.create_index('ix_prescriptions_status', ['status', 'created_at'], unique=False)

    op.create_table('product_drug_classes',
    sa.Column('product_id', sa.Uuid(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.CheckConstraint('length(name) > 0', name=op.f('ck_product_drug_classes_name_present')),
    sa.ForeignKeyConstraint(['product_id'], ['products.id'], name=op.f('fk_product_drug_classes_product_id_products'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('product_id', 'name', name=op.f('pk_product_drug_classes'))
    )
    op.create_table('product_ingredients',
    sa.Column('product_id', sa.Uuid(), nullable=False),
    sa.Column('position', sa.SmallInteger(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('strength', sa.String(length=100), nullable=True),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.CheckConstraint('length(name) > 0', name=op.f('ck_product_ingredients_name_present')),
    sa.ForeignKeyConstraint(['product_id'], ['products.id'], name=op.f('fk_product_ingredients_product_id_products'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_product_ingredients')),
    sa.UniqueConstraint('product_id', 'name', name=op.f('uq_product_ingredients_product_id_name'))
    )
    with op.batch_alter_table('product_ingredients', schema=None) as batch_op:
        batch_op.create_index('ix_product_ingredients_name', ['name'], unique=False)

    op.create_table('product_stock',
    sa.Column('product_id', sa.Uuid(), nullable=False),
    sa.Column('on_hand', sa.Integer(), server_default='0', nullable=False),
    sa.Column('nearest_expiry', sa.Date(), nullable=True),
    sa.CheckConstraint('on_hand >= 0', name=op.f('ck_product_stock_on_hand_nonneg')),
    sa.ForeignKeyConstraint(['product_id'], ['products.id'], name=op.f('fk_product_stock_product_id_products'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('product_id', name=op.f('pk_product_stock'))
    )
    with op.batch_alter_table('product_stock', schema=None) as batch_op:
        batch_op.create_index('ix_product_stock_nearest_expiry', ['nearest_expiry', 'product_id'], unique=False)
        batch_op.create_index('ix_product_stock_on_hand', ['on_hand', 'product_id'], unique=False)

    op.create_table('staff_credentials',
    sa.Column('staff_id', sa.Uuid(), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=False),
    sa.Column('must_change', sa.Boolean(), nullable=False),
    sa.Column('changed_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['staff_id'], ['staff.id'], name=op.f('fk_staff_credentials_staff_id_staff'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('staff_id', name=op.f('pk_staff_credentials'))
    )
    op.create_table('login_throttle',
    sa.Column('username', sa.String(length=200), nullable=False),
    sa.Column('failed_attempts', sa.Integer(), nullable=False),
    sa.Column('locked_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_failure_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('failed_attempts >= 0', name=op.f('ck_login_throttle_failed_nonneg')),
    sa.PrimaryKeyConstraint('username', name=op.f('pk_login_throttle'))
    )
    op.create_table('stock_lots',
    sa.Column('product_id', sa.Uuid(), nullable=False),
    sa.Column('lot_number', sa.String(length=40), nullable=False),
    sa.Column('expiry_date', sa.Date(), nullable=False),
    sa.Column('status', sa.Enum('available', 'quarantined', 'recalled', name='lot_status', native_enum=False, create_constraint=True), nullable=False),
    sa.Column('status_reason', sa.String(length=300), nullable=True),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('supplier_id', sa.Uuid(), nullable=True),
    sa.Column('unit_cost', sa.Numeric(precision=12, scale=4), nullable=False),
    sa.Column('on_hand', sa.Integer(), server_default='0', nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_by', sa.String(length=64), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.CheckConstraint('length(lot_number) > 0', name=op.f('ck_stock_lots_lot_number_present')),
    sa.CheckConstraint('on_hand >= 0', name=op.f('ck_stock_lots_on_hand_nonneg')),
    sa.CheckConstraint('unit_cost >= 0', name=op.f('ck_stock_lots_unit_cost_nonneg')),
    sa.ForeignKeyConstraint(['product_id'], ['products.id'], name=op.f('fk_stock_lots_product_id_products'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['supplier_id'], ['suppliers.id'], name=op.f('fk_stock_lots_supplier_id_suppliers'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_stock_lots')),
    sa.UniqueConstraint('product_id', 'lot_number', name=op.f('uq_stock_lots_product_id_lot_number'))
    )
    with op.batch_alter_table('stock_lots', schema=None) as batch_op:
        batch_op.create_index('ix_stock_lots_expiry', ['expiry_date'], unique=False)
        batch_op.create_index('ix_stock_lots_product_expiry', ['product_id', 'expiry_date'], unique=False)

    op.create_table('stocktakes',
    sa.Column('scope', sa.Enum('all', 'category', 'controlled', name='stocktake_scope', native_enum=False, create_constraint=True), nullable=False),
    sa.Column('category_id', sa.Uuid(), nullable=True),
    sa.Column('status', sa.Enum('open', 'posted', 'cancelled', name='stocktake_status', native_enum=False, create_constraint=True), nullable=False),
    sa.Column('started_by', sa.Uuid(), nullable=False),
    sa.Column('posted_by', sa.Uuid(), nullable=True),
    sa.Column('posted_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('note', sa.String(length=300), nullable=True),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_by', sa.String(length=64), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.CheckConstraint("(scope = 'category') = (category_id IS NOT NULL)", name=op.f('ck_stocktakes_category_scope')),
    sa.ForeignKeyConstraint(['category_id'], ['categories.id'], name=op.f('fk_stocktakes_category_id_categories'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['posted_by'], ['staff.id'], name=op.f('fk_stocktakes_posted_by_staff'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['started_by'], ['staff.id'], name=op.f('fk_stocktakes_started_by_staff'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_stocktakes'))
    )
    op.create_table('dispenses',
    sa.Column('prescription_id', sa.Uuid(), nullable=False),
    sa.Column('fill_number', sa.Integer(), nullable=False),
    sa.Column('part', sa.Integer(), nullable=False),
    sa.Column('quantity', sa.Integer(), nullable=False),
    sa.Column('owed_after', sa.Integer(), nullable=False),
    sa.Column('days_supply', sa.Integer(), nullable=False),
    sa.Column('pharmacist_id', sa.Uuid(), nullable=False),
    sa.Column('dispensed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('request_id', sa.Uuid(), nullable=False),
    sa.Column('notes', sa.Text(), nullable=True),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.CheckConstraint('fill_number >= 0', name=op.f('ck_dispenses_fill_number_nonneg')),
    sa.CheckConstraint('owed_after >= 0', name=op.f('ck_dispenses_owed_nonneg')),
    sa.CheckConstraint('part >= 1', name=op.f('ck_dispenses_part_positive')),
    sa.CheckConstraint('quantity > 0', name=op.f('ck_dispenses_quantity_positive')),
    sa.ForeignKeyConstraint(['pharmacist_id'], ['staff.id'], name=op.f('fk_dispenses_pharmacist_id_staff'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['prescription_id'], ['prescriptions.id'], name=op.f('fk_dispenses_prescription_id_prescriptions'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dispenses')),
    sa.UniqueConstraint('prescription_id', 'fill_number', 'part', name=op.f('uq_dispenses_prescription_id_fill_number_part')),
    sa.UniqueConstraint('request_id', name=op.f('uq_dispenses_request_id'))
    )
    with op.batch_alter_table('dispenses', schema=None) as batch_op:
        batch_op.create_index('ix_dispenses_dispensed_at', ['dispensed_at'], unique=False)

    op.create_table('dispense_warnings',
    sa.Column('dispense_id', sa.Uuid(), nullable=False),
    sa.Column('kind', sa.Enum('allergy', 'duplicate_therapy', 'early_refill', name='warning_kind', native_enum=False, create_constraint=True), nullable=False),
    sa.Column('key', sa.String(length=100), nullable=False),
    sa.Column('detail', sa.String(length=500), nullable=False),
    sa.Column('reason', sa.String(length=500), nullable=False),
    sa.Column('acknowledged_by', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.CheckConstraint('length(reason) > 0', name=op.f('ck_dispense_warnings_reason_present')),
    sa.ForeignKeyConstraint(['acknowledged_by'], ['staff.id'], name=op.f('fk_dispense_warnings_acknowledged_by_staff'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['dispense_id'], ['dispenses.id'], name=op.f('fk_dispense_warnings_dispense_id_dispenses'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dispense_warnings'))
    )
    with op.batch_alter_table('dispense_warnings', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_dispense_warnings_dispense_id'), ['dispense_id'], unique=False)

    op.create_table('stock_movements',
    sa.Column('lot_id', sa.Uuid(), nullable=False),
    sa.Column('kind', sa.Enum('receipt', 'dispense', 'adjustment', 'return', 'write_off', 'count', 'transfer', name='movement_kind', native_enum=False, create_constraint=True), nullable=False),
    sa.Column('quantity', sa.Integer(), nullable=False),
    sa.Column('reason', sa.String(length=300), nullable=True),
    sa.Column('reference', sa.String(length=100), nullable=True),
    sa.Column('staff_id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('dispense_id', sa.Uuid(), nullable=True),
    sa.Column('supplier_id', sa.Uuid(), nullable=True),
    sa.Column('stocktake_id', sa.Uuid(), nullable=True),
    sa.Column('request_id', sa.Uuid(), nullable=True),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.CheckConstraint("(kind = 'dispense') = (dispense_id IS NOT NULL)", name=op.f('ck_stock_movements_dispense_reference')),
    sa.CheckConstraint("(kind = 'receipt' AND quantity > 0) OR (kind IN ('dispense', 'return', 'write_off') AND quantity < 0) OR (kind IN ('adjustment', 'count', 'transfer') AND quantity <> 0)", name=op.f('ck_stock_movements_quantity_sign')),
    sa.CheckConstraint("kind NOT IN ('adjustment', 'count', 'write_off', 'return') OR (reason IS NOT NULL AND length(reason) > 0)", name=op.f('ck_stock_movements_reason_required')),
    sa.ForeignKeyConstraint(['dispense_id'], ['dispenses.id'], name=op.f('fk_stock_movements_dispense_id_dispenses'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['lot_id'], ['stock_lots.id'], name=op.f('fk_stock_movements_lot_id_stock_lots'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['staff_id'], ['staff.id'], name=op.f('fk_stock_movements_staff_id_staff'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['stocktake_id'], ['stocktakes.id'], name=op.f('fk_stock_movements_stocktake_id_stocktakes'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['supplier_id'], ['suppliers.id'], name=op.f('fk_stock_movements_supplier_id_suppliers'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_stock_movements')),
    sa.UniqueConstraint('request_id', name=op.f('uq_stock_movements_request_id'))
    )
    with op.batch_alter_table('stock_movements', schema=None) as batch_op:
        batch_op.create_index('ix_stock_movements_created_at', ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_stock_movements_dispense_id'), ['dispense_id'], unique=False)
        batch_op.create_index('ix_stock_movements_lot', ['lot_id', 'created_at'], unique=False)

    op.create_table('controlled_register',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('movement_id', sa.Uuid(), nullable=False),
    sa.Column('product_id', sa.Uuid(), nullable=False),
    sa.Column('lot_id', sa.Uuid(), nullable=False),
    sa.Column('schedule', sa.Enum('none', 'II', 'III', 'IV', 'V', name='register_schedule', native_enum=False, create_constraint=True), nullable=False),
    sa.Column('register', sa.String(length=5), nullable=False),
    sa.Column('kind', sa.Enum('receipt', 'dispense', 'adjustment', 'return', 'write_off', 'count', 'transfer', name='register_kind', native_enum=False, create_constraint=True), nullable=False),
    sa.Column('quantity', sa.Integer(), nullable=False),
    sa.Column('balance_after', sa.Integer(), nullable=False),
    sa.Column('staff_id', sa.Uuid(), nullable=False),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("register IN ('II', 'III-V')", name=op.f('ck_controlled_register_register_valid')),
    sa.CheckConstraint("schedule <> 'none'", name=op.f('ck_controlled_register_schedule_controlled')),
    sa.CheckConstraint('balance_after >= 0', name=op.f('ck_controlled_register_balance_nonneg')),
    sa.ForeignKeyConstraint(['lot_id'], ['stock_lots.id'], name=op.f('fk_controlled_register_lot_id_stock_lots'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['movement_id'], ['stock_movements.id'], name=op.f('fk_controlled_register_movement_id_stock_movements'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['product_id'], ['products.id'], name=op.f('fk_controlled_register_product_id_products'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['staff_id'], ['staff.id'], name=op.f('fk_controlled_register_staff_id_staff'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_controlled_register')),
    sa.UniqueConstraint('movement_id', name=op.f('uq_controlled_register_movement_id'))
    )
    with op.batch_alter_table('controlled_register', schema=None) as batch_op:
        batch_op.create_index('ix_controlled_register_product', ['register', 'product_id', 'id'], unique=False)
        batch_op.create_index('ix_controlled_register_recorded_at', ['recorded_at'], unique=False)

    op.create_table('stocktake_lines',
    sa.Column('stocktake_id', sa.Uuid(), nullable=False),
    sa.Column('lot_id', sa.Uuid(), nullable=False),
    sa.Column('expected_quantity', sa.Integer(), nullable=False),
    sa.Column('counted_quantity', sa.Integer(), nullable=True),
    sa.Column('reason', sa.String(length=300), nullable=True),
    sa.Column('counted_by', sa.Uuid(), nullable=True),
    sa.Column('movement_id', sa.Uuid(), nullable=True),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.CheckConstraint('counted_quantity IS NULL OR counted_quantity >= 0', name=op.f('ck_stocktake_lines_counted_nonneg')),
    sa.CheckConstraint('expected_quantity >= 0', name=op.f('ck_stocktake_lines_expected_nonneg')),
    sa.ForeignKeyConstraint(['counted_by'], ['staff.id'], name=op.f('fk_stocktake_lines_counted_by_staff'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['lot_id'], ['stock_lots.id'], name=op.f('fk_stocktake_lines_lot_id_stock_lots'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['movement_id'], ['stock_movements.id'], name=op.f('fk_stocktake_lines_movement_id_stock_movements'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['stocktake_id'], ['stocktakes.id'], name=op.f('fk_stocktake_lines_stocktake_id_stocktakes'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_stocktake_lines')),
    sa.UniqueConstraint('stocktake_id', 'lot_id', name=op.f('uq_stocktake_lines_stocktake_id_lot_id'))
    )
    _create_database_logic()


def downgrade() -> None:
    _drop_database_logic()
    op.drop_table('stocktake_lines')
    with op.batch_alter_table('controlled_register', schema=None) as batch_op:
        batch_op.drop_index('ix_controlled_register_recorded_at')
        batch_op.drop_index('ix_controlled_register_product')

    op.drop_table('controlled_register')
    with op.batch_alter_table('stock_movements', schema=None) as batch_op:
        batch_op.drop_index('ix_stock_movements_lot')
        batch_op.drop_index(batch_op.f('ix_stock_movements_dispense_id'))
        batch_op.drop_index('ix_stock_movements_created_at')

    op.drop_table('stock_movements')
    with op.batch_alter_table('dispense_warnings', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_dispense_warnings_dispense_id'))

    op.drop_table('dispense_warnings')
    with op.batch_alter_table('dispenses', schema=None) as batch_op:
        batch_op.drop_index('ix_dispenses_dispensed_at')

    op.drop_table('dispenses')
    op.drop_table('stocktakes')
    with op.batch_alter_table('stock_lots', schema=None) as batch_op:
        batch_op.drop_index('ix_stock_lots_product_expiry')
        batch_op.drop_index('ix_stock_lots_expiry')

    op.drop_table('stock_lots')
    op.drop_table('login_throttle')
    op.drop_table('staff_credentials')
    with op.batch_alter_table('product_stock', schema=None) as batch_op:
        batch_op.drop_index('ix_product_stock_on_hand')
        batch_op.drop_index('ix_product_stock_nearest_expiry')

    op.drop_table('product_stock')
    with op.batch_alter_table('product_ingredients', schema=None) as batch_op:
        batch_op.drop_index('ix_product_ingredients_name')

    op.drop_table('product_ingredients')
    op.drop_table('product_drug_classes')
    with op.batch_alter_table('prescriptions', schema=None) as batch_op:
        batch_op.drop_index('ix_prescriptions_status')
        batch_op.drop_index('ix_prescriptions_product')
        batch_op.drop_index('ix_prescriptions_prescriber')
        batch_op.drop_index('ix_prescriptions_patient')

    op.drop_table('prescriptions')
    with op.batch_alter_table('patient_feedback', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_patient_feedback_patient_id'))

    op.drop_table('patient_feedback')
    op.drop_table('staff')
    with op.batch_alter_table('products', schema=None) as batch_op:
        batch_op.drop_index('ix_products_name')
        batch_op.drop_index(batch_op.f('ix_products_gtin'))
        batch_op.drop_index('ix_products_category')

    op.drop_table('products')
    with op.batch_alter_table('patient_conditions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_patient_conditions_patient_id'))

    op.drop_table('patient_conditions')
    with op.batch_alter_table('patient_allergies', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_patient_allergies_patient_id'))

    op.drop_table('patient_allergies')
    op.drop_table('suppliers')
    op.drop_table('request_log')
    op.drop_table('prescribers')
    with op.batch_alter_table('patients', schema=None) as batch_op:
        batch_op.drop_index('ix_patients_phone')
        batch_op.drop_index('ix_patients_name')
        batch_op.drop_index('ix_patients_date_of_birth')

    op.drop_table('patients')
    op.drop_table('categories')
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_log_row')
        batch_op.drop_index('ix_audit_log_occurred_at')

    op.drop_table('audit_log')
    op.drop_table('app_settings')
    if op.get_bind().dialect.name == "postgresql":
        _post_drop_postgresql()


# --------------------------------------------------------------------------
# Database-side logic. Written out in full here (not generated from the
# models) so that this revision never changes once released.
# --------------------------------------------------------------------------

# Tables whose every change is audited, with their columns (SQLite needs the
# list; PostgreSQL uses to_jsonb). The first element of each key's tuple is the
# column naming the row in audit_log.row_id.
AUDITED = {
    "categories": ("id", ("name", "id")),
    "suppliers": ("id", ("name", "dea_number", "account_number", "phone", "email", "address", "active", "id", "created_at", "updated_at", "updated_by", "version")),  # noqa: E501
    "products": ("id", ("name", "strength", "dosage_form", "route", "ndc", "gtin", "manufacturer", "category_id", "storage", "schedule", "unit", "pack_size", "reorder_level", "reorder_quantity", "unit_price", "active", "id", "created_at", "updated_at", "updated_by", "version")),  # noqa: E501
    "product_ingredients": ("id", ("product_id", "position", "name", "strength", "id")),
    "product_drug_classes": ("product_id", ("product_id", "name")),
    "staff": ("id", ("username", "full_name", "role", "licence_number", "dea_number", "prescriber_id", "active", "id", "created_at", "updated_at", "updated_by", "version")),  # noqa: E501
    "prescribers": ("id", ("first_name", "last_name", "credentials", "npi", "licence_number", "dea_number", "phone", "address", "active", "id", "created_at", "updated_at", "updated_by", "version")),  # noqa: E501
    "patients": ("id", ("first_name", "last_name", "date_of_birth", "sex", "phone", "email", "address_line", "city", "state", "postal_code", "notes", "legacy_ref", "active", "id", "created_at", "updated_at", "updated_by", "version")),  # noqa: E501
    "patient_allergies": ("id", ("patient_id", "allergen", "reaction", "severity", "recorded_at", "id")),  # noqa: E501
    "patient_conditions": ("id", ("patient_id", "name", "notes", "recorded_at", "id")),
    "patient_feedback": ("id", ("patient_id", "feedback", "received_by", "reply", "replied_by", "replied_at", "id", "created_at", "updated_at", "updated_by", "version")),  # noqa: E501
    "stock_lots": ("id", ("product_id", "lot_number", "expiry_date", "status", "status_reason", "received_at", "supplier_id", "unit_cost", "id", "created_at", "updated_at", "updated_by", "version")),  # noqa: E501  (on_hand is a cache: not audited)
    "stock_movements": ("id", ("lot_id", "kind", "quantity", "reason", "reference", "staff_id", "created_at", "dispense_id", "supplier_id", "stocktake_id", "request_id", "id")),  # noqa: E501
    "stocktakes": ("id", ("scope", "category_id", "status", "started_by", "posted_by", "posted_at", "note", "id", "created_at", "updated_at", "updated_by", "version")),  # noqa: E501
    "stocktake_lines": ("id", ("stocktake_id", "lot_id", "expected_quantity", "counted_quantity", "reason", "counted_by", "movement_id", "id")),  # noqa: E501
    "prescriptions": ("id", ("rx_number", "patient_id", "prescriber_id", "product_id", "sig", "quantity", "days_supply", "refills_authorized", "daw", "date_written", "status", "owed_quantity", "notes", "legacy_text", "created_by", "request_id", "id", "created_at", "updated_at", "updated_by", "version")),  # noqa: E501
    "dispenses": ("id", ("prescription_id", "fill_number", "part", "quantity", "owed_after", "days_supply", "pharmacist_id", "dispensed_at", "request_id", "notes", "id")),  # noqa: E501
    "dispense_warnings": ("id", ("dispense_id", "kind", "key", "detail", "reason", "acknowledged_by", "id")),  # noqa: E501
    "app_settings": ("id", ("id", "pharmacy_name", "address", "phone", "dea_number", "npi", "paper_size", "auto_lock_minutes", "controlled_validity_months", "rx_validity_months", "early_refill_percent", "created_at", "updated_at", "updated_by", "version")),  # noqa: E501
}
# Columns left out of the audit (caches maintained by triggers).
NOT_AUDITED = {"stock_lots": ("on_hand",)}

# Rows that are history: no UPDATE, no DELETE, no TRUNCATE, for anybody.
PERMANENT = ("stock_movements", "dispenses", "dispense_warnings", "controlled_register", "audit_log")

# Columns holding UUIDs (SQLite stores them as 32 hex digits; the audit row id
# is written with dashes on both backends).
UUID_ID_TABLES = {t for t, (key, _) in AUDITED.items() if t != "app_settings"}

TRGM_INDEXES = {
    "gx_products_name_trgm": "products USING gin (lower(name) gin_trgm_ops)",
    "gx_patients_name_trgm": (
        "patients USING gin ((lower(last_name || ' ' || first_name)) gin_trgm_ops)"
    ),
    "gx_prescribers_name_trgm": (
        "prescribers USING gin ((lower(last_name || ' ' || first_name)) gin_trgm_ops)"
    ),
}


def _create_database_logic() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _postgresql()
    else:
        _sqlite()
    op.execute(
        "INSERT INTO app_settings (id, pharmacy_name, paper_size, auto_lock_minutes,"
        " controlled_validity_months, rx_validity_months, early_refill_percent,"
        " created_at, updated_at, version)"
        " VALUES (1, 'GetMeds Pharmacy', 'letter', 5, 6, 12, 75,"
        " CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, 1)"
    )


def _drop_database_logic() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        for table in PERMANENT:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_permanent_row ON {table}")
            op.execute(f"DROP TRIGGER IF EXISTS {table}_permanent_truncate ON {table}")
        for name in TRGM_INDEXES:
            op.execute(f"DROP INDEX IF EXISTS {name}")
        # Functions go after the tables (CASCADE drops their triggers).
    else:
        for table in PERMANENT:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_update")
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_delete")


def _post_drop_postgresql() -> None:
    for fn in ("getmeds_forbid_change", "getmeds_apply_movements", "getmeds_audit",
               "getmeds_audit_row", "getmeds_product_stock_row"):
        op.execute(f"DROP FUNCTION IF EXISTS {fn}() CASCADE")
    op.execute("DROP SEQUENCE IF EXISTS rx_number_seq")


# ------------------------------------------------------------------ PostgreSQL


def _postgresql() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for name, spec in TRGM_INDEXES.items():
        op.execute(f"CREATE INDEX {name} ON {spec}")
    op.execute("CREATE SEQUENCE rx_number_seq START WITH 100001")
    # Balance caches are updated on every movement: leave room on each page so
    # the updates stay HOT (no index maintenance, no bloat).
    op.execute("ALTER TABLE stock_lots SET (fillfactor = 80)")
    op.execute("ALTER TABLE product_stock SET (fillfactor = 70)")

    op.execute(
        """
        CREATE FUNCTION getmeds_forbid_change() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'rows of % are permanent records and cannot be changed or removed',
                TG_TABLE_NAME
                USING ERRCODE = 'integrity_constraint_violation',
                      HINT = 'Correct a mistake with a new entry.';
        END $$
        """
    )
    for table in PERMANENT:
        op.execute(
            f"CREATE TRIGGER {table}_permanent_row BEFORE UPDATE OR DELETE ON {table}"
            " FOR EACH ROW EXECUTE FUNCTION getmeds_forbid_change()"
        )
        op.execute(
            f"CREATE TRIGGER {table}_permanent_truncate BEFORE TRUNCATE ON {table}"
            " FOR EACH STATEMENT EXECUTE FUNCTION getmeds_forbid_change()"
        )

    # Every product has its stock cache row from the start.
    op.execute(
        """
        CREATE FUNCTION getmeds_product_stock_row() RETURNS trigger
        LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
        BEGIN
            INSERT INTO product_stock (product_id, on_hand)
            SELECT id, 0 FROM new_products
            ON CONFLICT (product_id) DO NOTHING;
            RETURN NULL;
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER products_stock_row AFTER INSERT ON products"
        " REFERENCING NEW TABLE AS new_products"
        " FOR EACH STATEMENT EXECUTE FUNCTION getmeds_product_stock_row()"
    )

    # The ledger drives the caches and the controlled-substance register.
    # Statement level with a transition table: one UPDATE per statement, so a
    # bulk COPY of receipts costs about as much as a single row.
    op.execute(
        """
        CREATE FUNCTION getmeds_apply_movements() RETURNS trigger
        LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
        BEGIN
            UPDATE stock_lots AS l
               SET on_hand = l.on_hand + d.q
              FROM (SELECT lot_id, sum(quantity) AS q
                      FROM new_movements GROUP BY lot_id) AS d
             WHERE l.id = d.lot_id;

            UPDATE product_stock AS ps
               SET on_hand = ps.on_hand + d.q,
                   nearest_expiry = (SELECT min(x.expiry_date) FROM stock_lots AS x
                                      WHERE x.product_id = d.product_id AND x.on_hand > 0)
              FROM (SELECT l.product_id, sum(m.quantity) AS q
                      FROM new_movements AS m JOIN stock_lots AS l ON l.id = m.lot_id
                     GROUP BY l.product_id) AS d
             WHERE ps.product_id = d.product_id;

            INSERT INTO controlled_register
                   (movement_id, product_id, lot_id, schedule, register, kind,
                    quantity, balance_after, staff_id, recorded_at)
            SELECT m.id, l.product_id, m.lot_id, p.schedule,
                   CASE WHEN p.schedule = 'II' THEN 'II' ELSE 'III-V' END,
                   m.kind, m.quantity,
                   ps.on_hand - coalesce(sum(m.quantity) OVER (
                       PARTITION BY l.product_id ORDER BY m.created_at, m.id
                       ROWS BETWEEN 1 FOLLOWING AND UNBOUNDED FOLLOWING), 0),
                   m.staff_id, m.created_at
              FROM new_movements AS m
              JOIN stock_lots AS l ON l.id = m.lot_id
              JOIN products AS p ON p.id = l.product_id
              JOIN product_stock AS ps ON ps.product_id = l.product_id
             WHERE p.schedule <> 'none'
             ORDER BY l.product_id, m.created_at, m.id;
            RETURN NULL;
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER stock_movements_apply AFTER INSERT ON stock_movements"
        " REFERENCING NEW TABLE AS new_movements"
        " FOR EACH STATEMENT EXECUTE FUNCTION getmeds_apply_movements()"
    )

    # Audit: statement-level, set-based. TG_ARGV[0] names the row-id column,
    # the rest are columns left out. SECURITY DEFINER so that nobody needs (or
    # gets) INSERT on audit_log; session_user cannot be forged by a client.
    op.execute(
        """
        CREATE FUNCTION getmeds_audit() RETURNS trigger
        LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
        DECLARE
            who text := nullif(current_setting('getmeds.actor', true), '');
            key text := TG_ARGV[0];
            skip text[] := coalesce(TG_ARGV[1:], '{}');
        BEGIN
            IF TG_OP = 'INSERT' THEN
                INSERT INTO audit_log (occurred_at, actor, db_user, action, table_name,
                                       row_id, before, after)
                SELECT now(), who, session_user, 'INSERT', TG_TABLE_NAME,
                       n.j ->> key, NULL, n.j
                  FROM (SELECT to_jsonb(t) - skip AS j FROM new_rows AS t) AS n;
            ELSIF TG_OP = 'UPDATE' THEN
                INSERT INTO audit_log (occurred_at, actor, db_user, action, table_name,
                                       row_id, before, after)
                SELECT now(), who, session_user, 'UPDATE', TG_TABLE_NAME,
                       n.j ->> key, o.j, n.j
                  FROM (SELECT to_jsonb(t) - skip AS j FROM old_rows AS t) AS o
                  JOIN (SELECT to_jsonb(t) - skip AS j FROM new_rows AS t) AS n
                    ON (o.j ->> key) = (n.j ->> key)
                 WHERE o.j IS DISTINCT FROM n.j;
            ELSE
                INSERT INTO audit_log (occurred_at, actor, db_user, action, table_name,
                                       row_id, before, after)
                SELECT now(), who, session_user, 'DELETE', TG_TABLE_NAME,
                       o.j ->> key, o.j, NULL
                  FROM (SELECT to_jsonb(t) - skip AS j FROM old_rows AS t) AS o;
            END IF;
            RETURN NULL;
        END $$
        """
    )
    # Tables with a cache column (on_hand) get a row-level UPDATE trigger limited
    # to the real columns, so the ledger's balance updates cost no audit work.
    op.execute(
        """
        CREATE FUNCTION getmeds_audit_row() RETURNS trigger
        LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
        DECLARE
            skip text[] := coalesce(TG_ARGV[1:], '{}');
            o jsonb := to_jsonb(OLD) - skip;
            n jsonb := to_jsonb(NEW) - skip;
        BEGIN
            IF o IS DISTINCT FROM n THEN
                INSERT INTO audit_log (occurred_at, actor, db_user, action, table_name,
                                       row_id, before, after)
                VALUES (now(), nullif(current_setting('getmeds.actor', true), ''),
                        session_user, 'UPDATE', TG_TABLE_NAME, n ->> TG_ARGV[0], o, n);
            END IF;
            RETURN NULL;
        END $$
        """
    )
    for table, (key, cols) in AUDITED.items():
        skip = NOT_AUDITED.get(table, ())
        args = ", ".join(f"'{a}'" for a in (key, *skip))
        for action, ref in (
            ("INSERT", "NEW TABLE AS new_rows"),
            ("UPDATE", "OLD TABLE AS old_rows NEW TABLE AS new_rows"),
            ("DELETE", "OLD TABLE AS old_rows"),
        ):
            if action == "UPDATE" and skip:
                columns = ", ".join(c for c in cols if c not in skip)
                op.execute(
                    f"CREATE TRIGGER {table}_audit_update AFTER UPDATE OF {columns} ON {table}"
                    f" FOR EACH ROW EXECUTE FUNCTION getmeds_audit_row({args})"
                )
                continue
            op.execute(
                f"CREATE TRIGGER {table}_audit_{action.lower()} AFTER {action} ON {table}"
                f" REFERENCING {ref} FOR EACH STATEMENT EXECUTE FUNCTION getmeds_audit({args})"
            )


# ---------------------------------------------------------------------- SQLite


def _sqlite_uuid(expr: str) -> str:
    """32 hex digits -> the canonical 8-4-4-4-12 form."""
    return (
        f"lower(substr({expr},1,8)||'-'||substr({expr},9,4)||'-'||substr({expr},13,4)"
        f"||'-'||substr({expr},17,4)||'-'||substr({expr},21,12))"
    )


def _sqlite() -> None:
    for table in PERMANENT:
        for action in ("update", "delete"):
            op.execute(
                f"CREATE TRIGGER {table}_no_{action} BEFORE {action.upper()} ON {table}"
                f" BEGIN SELECT RAISE(ABORT, 'rows of {table} are permanent records and"
                " cannot be changed or removed'); END"
            )

    op.execute(
        "CREATE TRIGGER products_stock_row AFTER INSERT ON products BEGIN"
        " INSERT INTO product_stock (product_id, on_hand) VALUES (NEW.id, 0); END"
    )
    op.execute(
        """
        CREATE TRIGGER stock_movements_apply AFTER INSERT ON stock_movements BEGIN
            UPDATE stock_lots SET on_hand = on_hand + NEW.quantity WHERE id = NEW.lot_id;
            UPDATE product_stock
               SET on_hand = on_hand + NEW.quantity,
                   nearest_expiry = (SELECT min(x.expiry_date) FROM stock_lots AS x
                                      WHERE x.product_id = product_stock.product_id
                                        AND x.on_hand > 0)
             WHERE product_id = (SELECT product_id FROM stock_lots WHERE id = NEW.lot_id);
            INSERT INTO controlled_register
                   (movement_id, product_id, lot_id, schedule, register, kind,
                    quantity, balance_after, staff_id, recorded_at)
            SELECT NEW.id, l.product_id, NEW.lot_id, p.schedule,
                   CASE WHEN p.schedule = 'II' THEN 'II' ELSE 'III-V' END,
                   NEW.kind, NEW.quantity, ps.on_hand, NEW.staff_id, NEW.created_at
              FROM stock_lots AS l
              JOIN products AS p ON p.id = l.product_id
              JOIN product_stock AS ps ON ps.product_id = l.product_id
             WHERE l.id = NEW.lot_id AND p.schedule <> 'none';
        END
        """
    )

    now = "strftime('%Y-%m-%d %H:%M:%f', 'now')"
    for table, (key, cols) in AUDITED.items():
        skip = NOT_AUDITED.get(table, ())
        cols = tuple(c for c in cols if c not in skip)

        def obj(prefix: str, cols: tuple[str, ...] = cols) -> str:
            return "json_object(" + ", ".join(f"'{c}', {prefix}.{c}" for c in cols) + ")"

        def rid(prefix: str, table: str = table, key: str = key) -> str:
            col = f"{prefix}.{key}"
            return _sqlite_uuid(col) if table in UUID_ID_TABLES else f"CAST({col} AS TEXT)"

        insert = (
            "INSERT INTO audit_log (occurred_at, actor, db_user, action, table_name, row_id,"
            " before, after) VALUES "
        )
        op.execute(
            f"CREATE TRIGGER {table}_audit_insert AFTER INSERT ON {table} BEGIN {insert}"
            f"({now}, getmeds_actor(), 'embedded', 'INSERT', '{table}', {rid('NEW')},"
            f" NULL, {obj('NEW')}); END"
        )
        changed = " OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in cols)
        op.execute(
            f"CREATE TRIGGER {table}_audit_update AFTER UPDATE ON {table} WHEN {changed}"
            f" BEGIN {insert}({now}, getmeds_actor(), 'embedded', 'UPDATE', '{table}',"
            f" {rid('NEW')}, {obj('OLD')}, {obj('NEW')}); END"
        )
        op.execute(
            f"CREATE TRIGGER {table}_audit_delete AFTER DELETE ON {table} BEGIN {insert}"
            f"({now}, getmeds_actor(), 'embedded', 'DELETE', '{table}', {rid('OLD')},"
            f" {obj('OLD')}, NULL); END"
        )
