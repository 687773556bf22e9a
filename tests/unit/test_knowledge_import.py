"""A licensed interaction knowledge base imported into the database: used by
every fill, refused whole when broken, and reversible."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa

from getmeds_desktop import db
from getmeds_desktop.enums import WarningKind
from getmeds_desktop.models import AuditEntry, KnowledgeImport
from getmeds_desktop.services import dispensing, knowledge, prescriptions
from getmeds_desktop.services.context import SYSTEM
from getmeds_desktop.services.errors import PermissionDenied, ValidationError

HEADER = ("ingredient_or_class_a,ingredient_or_class_b,severity,clinical_consequence,"
          "management,source\n")
KB = HEADER + ("lisinopril,ingredient:spironolactone,major,Hyperkalaemia,"
               "Check potassium within a week,Vendor KB 2026.2\n")


def _pair(world):
    lis = world.product("Lisinopril", strength="10 mg", dosage_form="tablet")
    spiro = world.product("Spironolactone", strength="25 mg", dosage_form="tablet")
    for p in (lis, spiro):
        world.receive(p.id, 100)
    pat = world.patient()
    dispensing.dispense(world.sf, world.pharmacist, dispensing.DispenseRequest(
        world.rx(pat.id, lis.id).id, uuid.uuid4(), no_scan_reason="test"))
    return pat, spiro


def test_an_imported_interaction_is_screened_at_prescribing_and_fill(world, tmp_path):
    pat, spiro = _pair(world)
    rx = world.rx(pat.id, spiro.id)
    assert dispensing.preview_dispense(world.sf, world.pharmacist, rx.id).warnings == ()
    path = tmp_path / "vendor.csv"
    path.write_text(KB, encoding="utf-8")
    info = knowledge.import_interactions(world.sf, SYSTEM, path, source_label="Vendor KB")
    assert (info.rule_count, info.active, info.file_name) == (1, True, "vendor.csv")
    found = dispensing.preview_dispense(world.sf, world.pharmacist, rx.id).warnings
    assert [w.kind for w in found] == [WarningKind.INTERACTION]
    assert "Hyperkalaemia" in found[0].message and "Vendor KB" in " ".join(found[0].sources)
    advice = prescriptions.screen_draft(world.sf, world.pharmacist, pat.id, spiro.id, 30, 30)
    # (the open spironolactone prescription makes it a duplicate too)
    assert WarningKind.INTERACTION in {w.kind for w in advice.warnings}
    # back to the shipped data: the import is kept, no longer used
    assert knowledge.use_shipped(world.sf, SYSTEM) == 1
    assert dispensing.preview_dispense(world.sf, world.pharmacist, rx.id).warnings == ()
    assert [i.active for i in knowledge.list_imports(world.sf)] == [False]
    with db.read_session(world.sf) as s:  # audited, without the file's content
        rows = s.scalars(sa.select(AuditEntry).where(
            AuditEntry.table_name == "knowledge_imports")).all()
        assert {r.action for r in rows} == {"INSERT", "UPDATE"}
        assert all("content" not in (r.after or {}) for r in rows)


@pytest.mark.parametrize("content", [
    HEADER + "lisinopril,spironolactone,major\n",  # a short row (a cut file)
    HEADER + "lisinopril,spironolactone,deadly,x,y,z\n",  # no such severity
    "\x00\x01\x02binary",
    HEADER + 'lisinopril,"spironolactone,major,x,y,z\n',  # an open quote
    "",
])
def test_a_broken_file_changes_nothing(world, tmp_path, content):
    path = tmp_path / "bad.csv"
    path.write_bytes(content.encode("utf-8"))
    with pytest.raises(ValidationError):
        knowledge.import_interactions(world.sf, SYSTEM, path)
    with db.read_session(world.sf) as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(KnowledgeImport)) == 0


def test_only_an_administrator_imports(world, tmp_path):
    path = tmp_path / "vendor.csv"
    path.write_text(KB, encoding="utf-8")
    for who in (world.pharmacist, world.clerk):
        with pytest.raises(PermissionDenied):
            knowledge.import_interactions(world.sf, who, path)
    assert knowledge.import_interactions(world.sf, world.admin, path).rule_count == 1
