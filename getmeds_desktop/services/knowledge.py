"""Licensed clinical knowledge in the pharmacy's database: a drug-drug
interaction knowledge base imported as CSV (docs/screening.md), laid over the
shipped, cited defaults for every screening on every workstation.

The file is checked whole by the screening's reader before anything is
written (every problem with its line; a file with any problem changes
nothing) and kept as it was imported, with its checksum. Each process compiles
an import once (by its id); the screening reads which import is active in the
same statement as the patient, so an import costs no round trip per fill.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import tempfile
import threading
import uuid
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from .. import db
from .. import screening as sc
from ..models import KnowledgeImport, table_of
from . import clock, uow
from .context import Actor, Perm, require
from .errors import DomainError

__all__ = ["ACTIVE_INTERACTIONS", "ImportInfo", "import_interactions", "knowledge_for",
           "list_imports", "use_shipped"]

KIND_INTERACTIONS = "interactions"
_k = table_of(KnowledgeImport)
#: The active interactions import's id (a scalar subquery other reads embed).
ACTIVE_INTERACTIONS = (
    sa.select(_k.c.id).where(_k.c.kind == KIND_INTERACTIONS, _k.c.active)
    .order_by(_k.c.imported_at.desc()).limit(1).scalar_subquery()
)


@dataclasses.dataclass(frozen=True)
class ImportInfo:
    id: uuid.UUID
    file_name: str
    sha256: str
    rule_count: int
    source_label: str
    imported_at: dt.datetime
    imported_by: str
    active: bool


def _info(k: KnowledgeImport) -> ImportInfo:
    return ImportInfo(k.id, k.file_name, k.sha256, k.rule_count, k.source_label,
                      k.imported_at, k.imported_by, k.active)


def import_interactions(sf: sessionmaker[Session], actor: Actor, path: Path | str, *,
                        source_label: str | None = None) -> ImportInfo:
    """Check an interactions CSV and make it the pharmacy's (the earlier import,
    if any, is kept but no longer used). Raises ValidationError naming every
    problem of a file that cannot be used; then nothing changes."""
    require(actor, Perm.SETTINGS)
    path = Path(path)
    imported = sc.read_interactions_csv(path, source_label=source_label)
    content = path.read_bytes()  # read_interactions_csv checked size and type
    digest = hashlib.sha256(content).hexdigest()
    label = (source_label or path.name)[:200]

    def body(w: uow.Work) -> ImportInfo:
        s = w.session
        s.execute(sa.update(KnowledgeImport).where(
            KnowledgeImport.kind == KIND_INTERACTIONS, KnowledgeImport.active)
            .values(active=False))
        row = KnowledgeImport(
            id=uuid.uuid4(), kind=KIND_INTERACTIONS, file_name=path.name[:255],
            sha256=digest, rule_count=len(imported.rules), source_label=label,
            content=content, imported_at=clock.now(), imported_by=w.actor.username,
            active=True)
        s.add(row)
        s.flush()
        return _info(row)

    return uow.write(sf, actor, Perm.SETTINGS, body)


def use_shipped(sf: sessionmaker[Session], actor: Actor) -> int:
    """Go back to the shipped interactions only; returns how many imports were
    active (0 or 1). The imports are kept."""

    def body(w: uow.Work) -> int:
        n = w.conn.execute(sa.update(_k).where(_k.c.kind == KIND_INTERACTIONS, _k.c.active)
                           .values(active=False)).rowcount
        w.touched_all("knowledge_imports")
        return int(n or 0)

    return uow.write(sf, actor, Perm.SETTINGS, body)


def list_imports(sf: sessionmaker[Session]) -> list[ImportInfo]:
    """Every import, newest first (without their content)."""
    with db.read_session(sf) as s:
        rows = s.execute(sa.select(
            _k.c.id, _k.c.file_name, _k.c.sha256, _k.c.rule_count, _k.c.source_label,
            _k.c.imported_at, _k.c.imported_by, _k.c.active)
            .order_by(_k.c.imported_at.desc())).all()
        return [ImportInfo(*r) for r in rows]


_compiled: dict[uuid.UUID, sc.Knowledge] = {}
_lock = threading.Lock()


def knowledge_for(conn: sa.Connection, import_id: uuid.UUID | None) -> sc.Knowledge:
    """The knowledge a screening uses: the shipped defaults with the active
    import laid over them (compiled once per process and import)."""
    if import_id is None:
        return sc.default_knowledge()
    with _lock:
        found = _compiled.get(import_id)
    if found is not None:
        return found
    row = conn.execute(sa.select(_k.c.content, _k.c.source_label, _k.c.file_name)
                       .where(_k.c.id == import_id)).first()
    if row is None:  # deactivated and gone between two statements: the defaults
        return sc.default_knowledge()
    content, label, name = row
    with tempfile.TemporaryDirectory(prefix="getmeds-knowledge-") as tmp:
        file = Path(tmp) / (Path(name).name or "interactions.csv")
        file.write_bytes(content)
        try:
            imported = sc.read_interactions_csv(file, source_label=label)
        except sc.InteractionFileError as exc:
            raise DomainError(
                f"The imported interaction knowledge base {name} can no longer be read "
                f"({exc}); import it again, or go back to the shipped data with "
                "'getmeds-admin knowledge use-shipped'.") from None
    knowledge = sc.merge_interactions(sc.default_knowledge(), imported)
    with _lock:
        _compiled[import_id] = knowledge
    return knowledge
