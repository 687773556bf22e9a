"""The migrated schema: it matches the models, the triggers keep the caches, the
register and the audit trail, and the database itself refuses bad rows."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from getmeds_desktop import db
from getmeds_desktop.models import (
    AppSettings,
    AuditEntry,
    ControlledRegisterEntry,
    Patient,
    Prescriber,
    Prescription,
    Product,
    ProductStock,
    Schedule,
    Staff,
    StockLot,
    StockMovement,
)
from getmeds_desktop.models.base import Base
from getmeds_desktop.models.enums import MovementKind, Role
from getmeds_desktop.services import clock


def test_autogenerate_finds_no_difference(shared_engine):
    def include(_obj, name, _type, _reflected, _compare_to):
        return not (name or "").startswith("gx_") and name != "alembic_version"

    import warnings

    with shared_engine.connect() as conn, warnings.catch_warnings():
        # SQLite reflection skips our hand-made expression indexes (gx_*), which
        # the comparison excludes anyway.
        warnings.filterwarnings(
            "ignore", message="Skipped unsupported reflection of expression-based index gx_")
        ctx = MigrationContext.configure(
            conn, opts={"compare_type": True, "include_object": include}
        )
        diff = compare_metadata(ctx, Base.metadata)
    assert diff == []


def test_schema_state_reports_head(shared_engine):
    current, head, state = db.schema_state(shared_engine)
    assert (current, state) == (head, "current")


def test_empty_database_is_refused_then_upgraded(empty_database):
    engine = db.make_engine(empty_database)
    try:
        with pytest.raises(db.SchemaMismatch, match="empty"):
            db.check_schema(engine)
        db.upgrade(engine)
        db.check_schema(engine)
    finally:
        engine.dispose()


def test_newer_schema_is_refused(fresh_engine):
    with fresh_engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999_future'"))
    with pytest.raises(db.SchemaMismatch, match="newer than this GetMeds"):
        db.check_schema(fresh_engine)
    with pytest.raises(db.SchemaMismatch):
        db.upgrade(fresh_engine)


# ------------------------------------------------------------------ helpers


def _staff(s) -> Staff:
    st = Staff(username=f"u{uuid.uuid4().hex[:8]}", full_name="Test User", role=Role.PHARMACIST)
    s.add(st)
    s.flush()
    return st


def _product(s, schedule: Schedule = Schedule.NONE, **kw) -> Product:
    p = Product(name=kw.pop("name", "Amoxicillin"), schedule=schedule, **kw)
    s.add(p)
    s.flush()
    return p


def _lot(s, product: Product, number: str = "L1", days: int = 365) -> StockLot:
    lot = StockLot(
        product_id=product.id,
        lot_number=number,
        expiry_date=clock.today() + dt.timedelta(days=days),
    )
    s.add(lot)
    s.flush()
    return lot


def _move(s, lot: StockLot, staff: Staff, qty: int, kind=MovementKind.RECEIPT, **kw):
    m = StockMovement(lot_id=lot.id, kind=kind, quantity=qty, staff_id=staff.id, **kw)
    s.add(m)
    s.flush()
    return m


def _refused(s, fn) -> None:
    """The statement fails in the database and the session stays usable."""
    with pytest.raises(sa.exc.DBAPIError), s.begin_nested():
        fn()


# ----------------------------------------------------------- ledger triggers


def test_movements_maintain_lot_and_product_caches(sf):
    with sf() as s, s.begin():
        staff = _staff(s)
        p = _product(s)
        a = _lot(s, p, "A", days=100)
        b = _lot(s, p, "B", days=30)
        _move(s, a, staff, 10)
        _move(s, b, staff, 5)
        _move(s, b, staff, -5, kind=MovementKind.ADJUSTMENT, reason="damaged")
        s.expire_all()
        assert s.get(StockLot, a.id).on_hand == 10
        assert s.get(StockLot, b.id).on_hand == 0
        ps = s.get(ProductStock, p.id)
        assert ps.on_hand == 10
        # lot B is empty, so the nearest expiry with stock is lot A's
        assert ps.nearest_expiry == a.expiry_date


def test_database_refuses_negative_stock(sf):
    with sf() as s, s.begin():
        staff = _staff(s)
        lot = _lot(s, _product(s))
        _move(s, lot, staff, 3)
        _refused(s, lambda: _move(s, lot, staff, -4, kind=MovementKind.ADJUSTMENT, reason="x"))
        s.expire_all()
        assert s.get(StockLot, lot.id).on_hand == 3


@pytest.mark.parametrize(
    ("kind", "qty", "extra"),
    [
        (MovementKind.RECEIPT, -1, {}),
        (MovementKind.RECEIPT, 0, {}),
        (MovementKind.WRITE_OFF, 1, {"reason": "expired"}),
        (MovementKind.ADJUSTMENT, -1, {}),  # no reason
        (MovementKind.ADJUSTMENT, -1, {"reason": ""}),
        (MovementKind.DISPENSE, -1, {}),  # no dispense reference
    ],
)
def test_database_refuses_malformed_movements(sf, kind, qty, extra):
    with sf() as s, s.begin():
        staff = _staff(s)
        lot = _lot(s, _product(s))
        _move(s, lot, staff, 10)
        _refused(s, lambda: _move(s, lot, staff, qty, kind=kind, **extra))


def test_ledger_register_and_audit_rows_are_permanent(sf):
    with sf() as s, s.begin():
        staff = _staff(s)
        lot = _lot(s, _product(s, Schedule.II, name="Oxycodone"))
        m = _move(s, lot, staff, 10)
        for table in ("stock_movements", "controlled_register", "audit_log"):
            _refused(s, lambda t=table: s.execute(sa.text(f"DELETE FROM {t}")))
        _refused(
            s,
            lambda: s.execute(
                sa.update(StockMovement).where(StockMovement.id == m.id).values(quantity=99)
            ),
        )
        _refused(s, lambda: s.execute(sa.update(AuditEntry).values(actor="forged")))


def test_controlled_movements_enter_the_register_with_running_balance(sf):
    with sf() as s, s.begin():
        staff = _staff(s)
        c2 = _product(s, Schedule.II, name="Oxycodone")
        c4 = _product(s, Schedule.IV, name="Alprazolam")
        plain = _product(s, name="Lisinopril")
        lot2a, lot2b = _lot(s, c2, "A"), _lot(s, c2, "B")
        _move(s, lot2a, staff, 100)
        _move(s, lot2b, staff, 50)
        _move(s, lot2a, staff, -7, kind=MovementKind.ADJUSTMENT, reason="broken")
        _move(s, _lot(s, c4), staff, 30)
        _move(s, _lot(s, plain), staff, 30)
        rows = s.execute(
            sa.select(ControlledRegisterEntry).order_by(ControlledRegisterEntry.id)
        ).scalars().all()
        assert [(r.register, r.quantity, r.balance_after) for r in rows] == [
            ("II", 100, 100),
            ("II", 50, 150),
            ("II", -7, 143),
            ("III-V", 30, 30),
        ]


def test_changes_are_audited_with_actor(sf):
    with sf() as s, s.begin():
        db.set_actor(s, "alice")
        p = _product(s, name="Metformin")
        p.reorder_level = 40
        s.flush()
        rows = s.execute(
            sa.select(AuditEntry)
            .where(AuditEntry.table_name == "products", AuditEntry.row_id == str(p.id))
            .order_by(AuditEntry.id)
        ).scalars().all()
        assert [r.action for r in rows] == ["INSERT", "UPDATE"]
        assert {r.actor for r in rows} == {"alice"}
        assert rows[1].before["reorder_level"] == 0
        assert rows[1].after["reorder_level"] == 40
        assert rows[0].occurred_at.tzinfo is not None


def test_lot_balance_changes_are_not_audit_noise(sf):
    with sf() as s, s.begin():
        staff = _staff(s)
        lot = _lot(s, _product(s))
        _move(s, lot, staff, 10)
        n = s.scalar(
            sa.select(sa.func.count()).select_from(AuditEntry).where(
                AuditEntry.table_name == "stock_lots", AuditEntry.action == "UPDATE"
            )
        )
        assert n == 0


# ------------------------------------------------------- other constraints


def test_database_refuses_bad_rows(sf):
    with sf() as s, s.begin():
        staff = _staff(s)
        p = _product(s, ndc="00093415001")
        _refused(s, lambda: _product(s, ndc="00093415001"))  # duplicate NDC
        _refused(s, lambda: _product(s, ndc="123"))  # not 11 digits
        _refused(s, lambda: _product(s, pack_size=0))
        _refused(s, lambda: _product(s, unit_price=-1))
        _lot(s, p, "X1")
        _refused(s, lambda: _lot(s, p, "X1"))  # same lot number twice
        _refused(s, lambda: s.execute(sa.insert(AppSettings).values(id=2)))
        _refused(s, lambda: s.execute(sa.insert(Staff).values(
            id=uuid.uuid4(), username="UPPER", full_name="X", role="pharmacist", active=True,
            created_at=dt.datetime.now(dt.UTC), updated_at=dt.datetime.now(dt.UTC), version=1)))
        # values the Python enums would refuse, sent as raw SQL to reach the database
        _refused(s, lambda: s.execute(
            sa.text("UPDATE staff SET role = 'janitor' WHERE id = :i"), {"i": staff.id}))

        patient = Patient(first_name="Ann", last_name="Lee", date_of_birth=dt.date(1970, 1, 1))
        prescriber = Prescriber(first_name="Bo", last_name="Chan", npi="1234567893")
        s.add_all([patient, prescriber])
        s.flush()

        def rx(**kw):
            values = dict(
                rx_number=kw.pop("rx_number", 500000 + len(kw)), patient_id=patient.id,
                prescriber_id=prescriber.id, product_id=p.id, sig="1 tab daily",
                quantity=30, days_supply=30, date_written=clock.today(), created_by=staff.id,
            )
            values.update(kw)
            r = Prescription(**values)
            s.add(r)
            s.flush()
            return r

        _refused(s, lambda: rx(quantity=0))
        _refused(s, lambda: rx(days_supply=0))
        _refused(s, lambda: rx(refills_authorized=-1))
        _refused(s, lambda: rx(sig=""))
        r = rx(rx_number=777777)
        _refused(s, lambda: s.execute(
            sa.text("UPDATE prescriptions SET status = 'lost' WHERE id = :i"), {"i": r.id}))
        _refused(s, lambda: rx(rx_number=777777))  # Rx numbers are unique
        # a patient with prescriptions cannot be deleted (history would be lost)
        _refused(s, lambda: s.execute(sa.delete(Patient).where(Patient.id == patient.id)))
