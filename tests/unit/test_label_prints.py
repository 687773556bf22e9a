"""Every label printed is recorded; a reprint needs its reason; the records stay."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa

from getmeds_desktop import db
from getmeds_desktop.models import AuditEntry, LabelPrint
from getmeds_desktop.services import dispensing
from getmeds_desktop.services.errors import PermissionDenied, ValidationError
from tests.fixtures.data import NO_SCAN


def _filled(world):
    p = world.product("Labeldrug")
    world.receive(p.id, 50)
    rx = world.rx(world.patient().id, p.id)
    return dispensing.dispense(world.sf, world.pharmacist, dispensing.DispenseRequest(
        rx.id, uuid.uuid4(), no_scan_reason=NO_SCAN))


def test_prints_and_reprints_are_recorded_with_the_reason(world):
    d = _filled(world)
    first = dispensing.record_label(world.sf, world.pharmacist, d.dispense_id)
    assert (first.reprint, first.prints) == (False, 1)
    # printed already: another "first" print is a reprint in disguise
    with pytest.raises(ValidationError, match="needs its reason"):
        dispensing.record_label(world.sf, world.pharmacist, d.dispense_id)
    for thin in (None, "", "  ", "x"):
        with pytest.raises(ValidationError, match="again"):
            dispensing.record_label(world.sf, world.pharmacist, d.dispense_id, reprint=True,
                                    reason=thin)
    again = dispensing.record_label(world.sf, world.pharmacist, d.dispense_id, reprint=True,
                                    reason="Label smudged by a wet counter")
    assert (again.reprint, again.prints, again.reason) == (
        True, 2, "Label smudged by a wet counter")
    with pytest.raises(PermissionDenied):
        dispensing.record_label(world.sf, world.clerk, d.dispense_id)
    with db.read_session(world.sf) as s:
        rows = s.scalars(sa.select(LabelPrint).order_by(LabelPrint.printed_at)).all()
        assert [(r.reprint, r.printed_by) for r in rows] == [
            (False, world.pharmacist.staff_id), (True, world.pharmacist.staff_id)]
        assert s.scalar(sa.select(sa.func.count()).select_from(AuditEntry).where(
            AuditEntry.table_name == "label_prints")) == 2
    # permanent: nobody changes or removes them
    with pytest.raises(sa.exc.DBAPIError, match="permanent"), world.sf.begin() as s:
        s.execute(sa.update(LabelPrint).values(reason="rewritten"))


def test_a_print_sent_again_with_its_request_id_is_recorded_once(world):
    """A retry after a dropped link, or a print made offline replayed: one record,
    the first answer."""
    d = _filled(world)
    rid = uuid.uuid4()
    first = dispensing.record_label(world.sf, world.pharmacist, d.dispense_id, request_id=rid)
    again = dispensing.record_label(world.sf, world.pharmacist, d.dispense_id, request_id=rid)
    assert again == first and first.prints == 1
    with db.read_session(world.sf) as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(LabelPrint).where(
            LabelPrint.dispense_id == d.dispense_id)) == 1
