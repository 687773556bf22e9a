"""The one write path (services.uow): what changed, replays, SYSTEM, dry runs,
stale saves, and the one writer of the ledger."""

from __future__ import annotations

import ast
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from getmeds_desktop.models import MovementKind, RxStatus
from getmeds_desktop.services import dispensing, inventory, ledger, patients, prescriptions, uow
from getmeds_desktop.services.context import SYSTEM, Perm
from getmeds_desktop.services.dispensing import DispenseRequest
from getmeds_desktop.services.errors import PermissionDenied, StaleEdit
from getmeds_desktop.services.prescriptions import RxAction
from tests.fixtures.data import NO_SCAN
from tests.unit.helpers import nothing_written, row_counts

PACKAGE = Path(__file__).resolve().parents[2] / "getmeds_desktop"


def test_a_receipt_says_what_it_changed(world):
    p = world.product("Changol")
    with uow.collect() as got:
        m = world.receive(p.id, 10, lot="CH-1")
    changes = uow.merged(got)
    assert changes.tables["products"] == {p.id}
    assert changes.tables["stock_lots"] == {m.lot_id}
    assert changes.tables["stock_movements"] == {m.id}


def test_a_dispense_says_what_it_changed(world):
    p = world.product("Changdisp")
    world.receive(p.id, 10)
    pat = world.patient()
    rx = world.rx(pat.id, p.id, quantity=3)
    with uow.collect() as got:
        d = dispensing.dispense(world.sf, world.pharmacist, DispenseRequest(rx.id, uuid.uuid4(),
                                                                            no_scan_reason=NO_SCAN))
    changes = uow.merged(got)
    assert changes.tables["prescriptions"] == {rx.id}
    assert changes.tables["dispenses"] == {d.dispense_id}
    assert changes.tables["products"] == {p.id}
    assert changes.tables["patients"] == {pat.id}


def test_an_edit_with_its_allergies_says_the_patient_changed(world):
    pat = world.patient("Edie", "Changes", allergies=("Latex",))
    info = patients.get_patient(world.sf, world.clerk, pat.id)
    draft = patients.PatientDraft(first_name="Edie", last_name="Changes",
                                  date_of_birth=info.date_of_birth,
                                  allergies=[patients.AllergyDraft("Penicillin")])
    with uow.collect() as got:
        patients.update_patient(world.sf, world.clerk, pat.id, draft,
                                expected_version=info.version)
    assert uow.merged(got).tables == {"patients": {pat.id}}


def test_nothing_is_announced_for_a_refused_write(world):
    pat = world.patient()
    info = patients.get_patient(world.sf, world.clerk, pat.id)
    with uow.collect() as got, pytest.raises(PermissionDenied):
        patients.update_patient(world.sf, world.doctor, pat.id, info.draft(),
                                expected_version=info.version)
    assert got == []


def test_a_repeated_request_returns_the_first_result_and_writes_nothing(world):
    p = world.product("Replayol")
    rx = world.rx(world.patient().id, p.id)
    rid = uuid.uuid4()
    first = prescriptions.change_status(world.sf, world.pharmacist, rx.id, RxAction.HOLD,
                                        reason="waiting for the prescriber", request_id=rid)
    with nothing_written(world.sf), uow.collect() as got:
        again = prescriptions.change_status(world.sf, world.pharmacist, rx.id, RxAction.HOLD,
                                            reason="waiting for the prescriber",
                                            request_id=rid)
    assert again == first and again.status is RxStatus.ON_HOLD
    # the replay still tells the screens which row to show again
    assert uow.merged(got).tables == {"prescriptions": {rx.id}}


def test_system_may_do_everything_but_record_a_person(world):
    assert all(SYSTEM.can(perm) for perm in Perm)
    p = world.product("Systemol")
    lot = world.receive(p.id, 5).lot_id
    with nothing_written(world.sf), pytest.raises(PermissionDenied, match="staff member"):
        inventory.adjust_stock(world.sf, SYSTEM, lot, -1, "Damaged")


def test_a_dry_run_does_everything_and_keeps_nothing(world):
    before = row_counts(world.sf)

    def body(w: uow.Work) -> str:
        w.session.execute(sa.text("DELETE FROM request_log"))
        patients_made = patients.PatientDraft(first_name="Dry", last_name="Run",
                                              date_of_birth=world.patient().date_of_birth)
        return patients_made.first_name

    assert uow.write(world.sf, SYSTEM, None, body, dry_run=True) == "Dry"
    after = row_counts(world.sf)
    assert after["request_log"] == before["request_log"]


def test_a_stale_save_says_who_saved_first(world):
    pat = world.patient("Stella", "Stale")
    info = patients.get_patient(world.sf, world.clerk, pat.id)
    patients.update_patient(world.sf, world.pharmacist, pat.id, info.draft(),
                            expected_version=info.version)
    with pytest.raises(StaleEdit, match=f"changed by {world.pharmacist.username}"):
        patients.update_patient(world.sf, world.clerk, pat.id, info.draft(),
                                expected_version=info.version)


def test_ledger_post_refuses_to_take_a_lot_below_zero(world):
    p = world.product("Ledgerol")
    lot = world.receive(p.id, 4, lot="LG-1")

    def body(w: uow.Work) -> None:
        row, view = ledger.lock_lot(w.session, lot.lot_id)
        ledger.post(w, [ledger.Movement(view, MovementKind.ADJUSTMENT, -3, reason="Damaged"),
                        ledger.Movement(view, MovementKind.ADJUSTMENT, -2, reason="Damaged")])

    from getmeds_desktop.services.errors import InsufficientStock

    with nothing_written(world.sf), pytest.raises(InsufficientStock, match="LG-1"):
        uow.write(world.sf, world.pharmacist, Perm.ADJUST, body)


# ------------------------------------------------------ the rules that keep it so


def _calls(tree: ast.AST) -> list[tuple[str, int]]:
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
            out.append((name, node.lineno))
    return out


def _modules() -> list[Path]:
    return [p for p in PACKAGE.rglob("*.py") if "migrations" not in p.parts]


def test_only_the_ledger_writes_stock_movements():
    """No module but services/ledger.py inserts into stock_movements (the demo
    seed hands its history to ledger.load)."""
    offenders = []
    for path in _modules():
        if path.name == "ledger.py" or "models" in path.parts:
            continue
        text = path.read_text()
        for needle in ("StockMovement(", "insert(StockMovement", "insert(_mov",
                       "StockMovement.__table__", "table_of(StockMovement)",
                       "INSERT INTO stock_movements", "COPY stock_movements"):
            if needle in text:
                offenders.append(f"{path.relative_to(PACKAGE)}: {needle}")
    assert sorted(set(offenders)) == []


def test_every_service_write_goes_through_the_unit_of_work():
    """db.write_transaction (and db.pipelined_write) is opened by the unit of
    work only."""
    users = []
    for path in _modules():
        tree = ast.parse(path.read_text())
        for name, _line in _calls(tree):
            if name in ("write_transaction", "pipelined_write"):
                users.append(str(path.relative_to(PACKAGE)))
    assert set(users) == {"services/uow.py"}


def test_nobody_passes_none_for_the_actor():
    """Trusted callers act as SYSTEM; a service never skips its permission check
    because it was given None."""
    found = []
    for path in _modules():
        text = path.read_text()
        if "actor: Actor | None" in text and path.name not in ("staff.py",):
            found.append(str(path.relative_to(PACKAGE)))
        if "if actor is not None" in text and path.name not in ("staff.py",):
            found.append(str(path.relative_to(PACKAGE)))
    assert found == []
