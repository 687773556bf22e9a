"""Controlled-substance receipts (21 CFR 1304.22(c), 1305.13(e), 1305.22(g)) and
the DEA Form 41 and Form 106 records that post their write-offs and adjustments
(21 CFR 1304.21(e), 1317.95(d), 1301.76(b)); both databases."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid

import pytest

from getmeds_desktop.enums import DeaForm, LossType, MovementKind
from getmeds_desktop.models import Schedule
from getmeds_desktop.reports import ReportParams, data, generate
from getmeds_desktop.services import catalog, clock, deaforms, inventory, ledger
from getmeds_desktop.services.context import SYSTEM
from getmeds_desktop.services.deaforms import DestructionRequest, FormLine, TheftLossRequest
from getmeds_desktop.services.errors import (
    InsufficientStock,
    InvalidState,
    NotFound,
    PermissionDenied,
    ValidationError,
)
from tests.unit.helpers import nothing_written


def _stock(world, name="Oxycodone", schedule=Schedule.II, qty=60, **kw):
    product = world.product(name, schedule=schedule, pack_size=kw.pop("pack_size", 100))
    moved = world.receive(product.id, qty, **kw)
    return product, moved.lot_id


def _destruction(world, lot, qty=10, **kw):
    values = dict(lines=[FormLine(lot, qty)], destroyed_on=clock.today(),
                  method="Chemical digestion (denaturing kit)", place="Pharmacy back room",
                  witness1_id=world.pharmacist.staff_id, witness2_id=world.technician.staff_id)
    values.update(kw)
    return DestructionRequest(**values)


def _loss(world, lot, qty=5, **kw):
    values = dict(lines=[FormLine(lot, qty)], discovered_on=clock.today(),
                  loss_type=LossType.NIGHT_BREAK_IN, police_notified=True,
                  police_department="Springfield PD, (555) 010-2000",
                  occurred_on=clock.today() - dt.timedelta(days=1))
    values.update(kw)
    return TheftLossRequest(**values)


# ------------------------------------------------------------------ receipts


def test_a_controlled_receipt_records_the_supplier_dea_and_the_order_form(world):
    product, lot = _stock(world, order_form="231456789")
    moves = inventory.movement_history(world.sf, lot_id=lot)
    assert [m.kind for m in moves] == [MovementKind.RECEIPT]
    supplier = next(x for x in catalog.list_suppliers(world.sf) if x.id == world.supplier_id)
    with world.sf() as s:
        lo, hi = clock.day_range(clock.today(), clock.today())
        (line,) = list(data.register_lines(s, product.id, lo, hi + dt.timedelta(days=1)))
    assert (line.quantity, line.order_form, line.supplier_dea) == (
        60, "231456789", supplier.dea_number)


def test_a_schedule_ii_receipt_without_its_order_form_is_refused(world):
    product = world.product("Morphine", schedule=Schedule.II)
    with nothing_written(world.sf), pytest.raises(ValidationError, match="CSOS") as exc:
        world.receive(product.id, 10, order_form=None)
    assert exc.value.field == "order_form"
    # Schedule III-V needs none
    tram = world.product("Tramadol", schedule=Schedule.IV)
    world.receive(tram.id, 10, order_form=None)


def test_a_controlled_receipt_needs_a_supplier_with_a_dea_number(world):
    product = world.product("Lorazepam", schedule=Schedule.IV)
    plain = catalog.create_supplier(world.sf, SYSTEM, name=f"Corner {uuid.uuid4().hex[:6]}")

    def receipt(supplier):
        return inventory.ReceiptRequest(
            product_id=product.id, lot_number="LZ-1", quantity=10, supplier_id=supplier,
            expiry_date=clock.today() + dt.timedelta(days=300))

    for supplier, words in ((None, "choose the supplier"), (plain.id, "no DEA registration")):
        with nothing_written(world.sf), pytest.raises(ValidationError, match=words) as exc:
            inventory.receive_stock(world.sf, world.pharmacist, receipt(supplier))
        assert exc.value.field == "supplier_id"
    # an ordinary product: as before
    amox = world.product("Amoxicillin")
    inventory.receive_stock(world.sf, world.clerk, dataclasses.replace(
        receipt(None), product_id=amox.id))


# ------------------------------------------------------------------ Form 41


def test_a_destruction_record_posts_its_write_off(world):
    product, lot = _stock(world)
    f = deaforms.record_destruction(world.sf, world.pharmacist, _destruction(world, lot, 12))
    assert f.form is DeaForm.DESTRUCTION
    assert (f.witness1, f.witness2, f.filed_by) == (
        world.pharmacist.full_name, world.technician.full_name, world.pharmacist.full_name)
    (item,) = f.items
    assert (item.lot_id, item.quantity, item.full_packages, item.partial_count) == (
        lot, 12, 0, 12)
    assert inventory.get_lot(world.sf, lot).on_hand == 48
    (last, *_rest) = inventory.movement_history(world.sf, lot_id=lot)
    assert (last.id, last.kind, last.quantity) == (item.movement_id, MovementKind.WRITE_OFF, -12)
    assert ledger.verify(world.sf).ok
    assert [x.id for x in deaforms.forms_of_lot(world.sf, world.pharmacist, lot)] == [f.id]


@pytest.mark.parametrize("change, words", [
    ({"witness2_id": "same"}, "two different people"),
    ({"witness2_id": None}, "two witnesses"),
    ({"witness2_id": "doctor"}, "employee"),
    ({"method": ""}, "method"),
    ({"place": " "}, "destroyed"),
    ({"destroyed_on": "tomorrow"}, "future"),
    ({"lines": []}, "at least one lot"),
])
def test_an_incomplete_destruction_record_changes_nothing(world, change, words):
    _product, lot = _stock(world)
    key, value = next(iter(change.items()))
    named = {"same": world.pharmacist.staff_id, "doctor": world.doctor.staff_id,
             "tomorrow": clock.today() + dt.timedelta(days=1)}
    if isinstance(value, str) and value in named:
        value = named[value]
    with nothing_written(world.sf), pytest.raises(ValidationError, match=words):
        deaforms.record_destruction(world.sf, world.pharmacist,
                                    _destruction(world, lot, **{key: value}))


def test_only_controlled_stock_and_what_is_there(world):
    _ordinary, plain_lot = _stock(world, "Ibuprofen", Schedule.NONE)
    with nothing_written(world.sf), pytest.raises(ValidationError, match="not a controlled"):
        deaforms.record_destruction(world.sf, world.pharmacist, _destruction(world, plain_lot))
    _product, lot = _stock(world)
    with nothing_written(world.sf), pytest.raises(InsufficientStock):
        deaforms.record_destruction(world.sf, world.pharmacist, _destruction(world, lot, 61))


@pytest.mark.parametrize("who", ["clerk", "technician", "admin", "doctor"])
def test_only_a_pharmacist_files_a_record(world, who):
    _product, lot = _stock(world)
    with nothing_written(world.sf), pytest.raises(PermissionDenied):
        deaforms.record_destruction(world.sf, getattr(world, who), _destruction(world, lot))
    with pytest.raises(PermissionDenied):
        deaforms.report_theft_or_loss(world.sf, getattr(world, who), _loss(world, lot))


def test_an_administrator_who_is_also_a_pharmacist_files_one(world):
    from getmeds_desktop.enums import Role

    _product, lot = _stock(world)
    owner = dataclasses.replace(world.admin, practice_role=Role.PHARMACIST)
    f = deaforms.report_theft_or_loss(world.sf, owner, _loss(world, lot, 2))
    assert f.filed_by == world.admin.full_name


def test_a_controlled_write_off_is_its_form_41(world):
    _product, lot = _stock(world, days=400)
    inventory.set_lot_status(world.sf, world.pharmacist, lot, "recalled", "Manufacturer recall")
    with nothing_written(world.sf), pytest.raises(InvalidState, match="DEA Form 41"):
        inventory.write_off_lot(world.sf, world.pharmacist, lot)
    # an ordinary lot is written off as before
    _ordinary, plain = _stock(world, "Loratadine", Schedule.NONE)
    inventory.set_lot_status(world.sf, world.pharmacist, plain, "recalled", "Recall")
    assert inventory.write_off_lot(world.sf, world.pharmacist, plain).quantity == -60


def test_a_retry_files_once_and_a_correction_names_the_record(world):
    _product, lot = _stock(world)
    req = _destruction(world, lot, 5)
    first = deaforms.record_destruction(world.sf, world.pharmacist, req)
    assert deaforms.record_destruction(world.sf, world.pharmacist, req).id == first.id
    assert inventory.get_lot(world.sf, lot).on_hand == 55
    fixed = deaforms.record_destruction(world.sf, world.pharmacist2, _destruction(
        world, lot, lines=[], method="Incineration (reverse distributor's site)",
        corrects_id=first.id, correction_note="The method was incineration"))
    assert (fixed.corrects_id, fixed.items) == (first.id, ())
    assert deaforms.get_form(world.sf, world.pharmacist, first.id).corrected_by == (fixed.id,)
    with pytest.raises(ValidationError, match="correction changes"):
        deaforms.record_destruction(world.sf, world.pharmacist, _destruction(
            world, lot, lines=[], corrects_id=first.id))
    loss = deaforms.report_theft_or_loss(world.sf, world.pharmacist, _loss(world, lot))
    with pytest.raises(NotFound, match="Form 41"):
        deaforms.record_destruction(world.sf, world.pharmacist, _destruction(
            world, lot, lines=[], corrects_id=loss.id, correction_note="x"))


# ------------------------------------------------------------------ Form 106


def test_a_theft_or_loss_record_posts_its_adjustment(world):
    _product, lot = _stock(world, "Hydrocodone")
    f = deaforms.report_theft_or_loss(world.sf, world.pharmacist, _loss(world, lot, 7))
    assert (f.form, f.loss_type, f.police_notified, f.total_units) == (
        DeaForm.THEFT_LOSS, LossType.NIGHT_BREAK_IN, True, 7)
    assert str(f.value) == "7.00"  # at the lot's unit cost (item 12)
    (last, *_rest) = inventory.movement_history(world.sf, lot_id=lot)
    assert (last.kind, last.quantity, last.reason) == (
        MovementKind.ADJUSTMENT, -7, "Night break-in (DEA Form 106)")
    assert ledger.verify(world.sf).ok
    assert deaforms.thefts_and_losses_since(world.sf, world.pharmacist,
                                            clock.today() - dt.timedelta(days=730)) == 1


@pytest.mark.parametrize("change, field", [
    ({"police_department": None}, "police_department"),
    ({"police_notified": None}, "police_notified"),
    ({"loss_type": None}, "loss_type"),
    ({"loss_type": "stolen by aliens"}, "loss_type"),
    ({"loss_type": LossType.LOST_IN_TRANSIT}, "carrier"),
    ({"loss_type": LossType.OTHER}, "loss_detail"),
    ({"occurred_on": "after"}, "occurred_on"),
    ({"discovered_on": None}, "discovered_on"),
])
def test_an_incomplete_theft_or_loss_record_changes_nothing(world, change, field):
    _product, lot = _stock(world)
    key, value = next(iter(change.items()))
    if value == "after":
        value = clock.today() + dt.timedelta(days=1)
    with nothing_written(world.sf), pytest.raises(ValidationError) as exc:
        deaforms.report_theft_or_loss(world.sf, world.pharmacist,
                                      _loss(world, lot, **{key: value}))
    assert exc.value.field == field


def test_the_worksheets_carry_the_fields(world, tmp_path):
    from pypdf import PdfReader

    _product, lot = _stock(world)
    f41 = deaforms.record_destruction(world.sf, world.pharmacist, _destruction(world, lot))
    f106 = deaforms.report_theft_or_loss(world.sf, world.pharmacist, _loss(world, lot))
    for name, f, words in (
            ("dea-41", f41, ["official record is DEA Form 41", "online form",
                             "Chemical digestion", world.technician.full_name,
                             "Total destroyed", "Signature of second witness", "Partial"]),
            ("dea-106", f106, ["filed online only", "Night break-in", "Springfield PD",
                               "Purchase value", "Quantity lost"])):
        out = tmp_path / f"{name}.pdf"
        generate(world.sf, world.pharmacist, name, ReportParams(form_id=f.id), out)
        text = " ".join(" ".join((pg.extract_text() or "").split())
                        for pg in PdfReader(out).pages)
        for w in words:
            assert w in text, (name, w)
    with pytest.raises(ValidationError, match="not a DEA Form 41"):
        generate(world.sf, world.pharmacist, "dea-41", ReportParams(form_id=f106.id),
                 tmp_path / "x.pdf")
    with pytest.raises(ValidationError, match="--form"):
        generate(world.sf, world.pharmacist, "dea-106", ReportParams(), tmp_path / "y.pdf")
    with pytest.raises(PermissionDenied):
        generate(world.sf, world.clerk, "dea-106", ReportParams(form_id=f106.id),
                 tmp_path / "z.pdf")


@pytest.mark.slow
def test_the_migration_keeps_the_ledger_down_and_up(fresh_engine):
    """0022 down to 0019 and up again on a database with stock: the movements
    stay, their new columns come back empty (both databases)."""
    import warnings

    import sqlalchemy as sa
    from alembic import command

    from getmeds_desktop import db
    from getmeds_desktop.models import StockMovement
    from tests.fixtures.data import build_world

    sf = db.session_factory(fresh_engine)
    world = build_world(sf)
    _product, lot = _stock(world)
    deaforms.record_destruction(sf, world.pharmacist, _destruction(world, lot, 4))
    with fresh_engine.begin() as conn, warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Skipped unsupported reflection of "
                                "expression-based index")
        command.downgrade(db.alembic_config(conn), "0019")
    with fresh_engine.begin() as conn:
        command.upgrade(db.alembic_config(conn), "head")
    with fresh_engine.connect() as conn:
        rows = conn.execute(sa.select(StockMovement.quantity, StockMovement.dea_form_id)
                            .where(StockMovement.lot_id == lot)
                            .order_by(StockMovement.quantity)).all()
    assert rows == [(-4, None), (60, None)]
    assert inventory.get_lot(sf, lot).on_hand == 56
