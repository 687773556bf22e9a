"""Offline continuity for a workstation on a server database (no Qt).

:class:`OfflineWork` ties together:

* the **replica** (``sync.replica``): a local copy of what the signed-in login
  may read, kept current from the server's change feed, encrypted at rest
  (SQLCipher) with a key kept only in the OS keyring (``secrets.replica_key``);
* its **outbox** (``sync.outbox``): the writes made while the server could not
  be reached, each made on the replica by the same service code as online and
  queued with its request id, and replayed on the server exactly once.

While the server answers, every read and write goes to the server, and the
replica follows it (``sync``). Once the connection is offline, the screens read
the replica and the writes the pharmacy's ``[offline]`` setting allows are made
on it and queued (``write``). When the server answers again, ``replay`` sends
the queue in order, takes the server's rows back into the replica, and leaves
what the server refused in "Needs attention".

One replica per profile and login: what a login may read (grants and row-level
security) decides what its replica holds.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from .. import db, secrets
from ..errors import GetMedsError
from ..services.context import Actor
from . import outbox as _outbox
from .outbox import Kind, OfflinePolicy, Outbox, OutboxState, Queued, ReplayResult
from .replica import PullResult, Replica, SyncResult

log = logging.getLogger(__name__)

__all__ = ["Kind", "OfflinePolicy", "OfflineUnavailable", "OfflineWork", "replica_path"]


def online_call(kind: Kind | str, sf: sessionmaker[Session], actor: Actor, request: Any) -> Any:
    """The service call a write of ``kind`` is (the same one the outbox repeats)."""
    return _outbox._SPECS[Kind(kind)].call(sf, actor, request)


class OfflineUnavailable(GetMedsError):
    """This workstation cannot work offline; the message says why."""


def replica_path(folder: Path, profile: str, login: str) -> Path:
    """Where a profile and login's replica lives (one file each)."""
    def safe(text: str) -> str:
        return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("._") or "default"

    return folder / f"{safe(profile)}--{safe(login)}.sqlite3"


class OfflineWork:
    def __init__(self, replica: Replica, outbox: Outbox, policy: OfflinePolicy,
                 reader: Engine | None = None) -> None:
        self.replica = replica
        self.outbox = outbox
        self.policy = policy
        # what the screens read offline: a connection that cannot write, so a
        # write that is not queued through the outbox is refused (uow.translate
        # says "cannot be done offline"), never kept on this workstation only
        self._reader = reader
        self._read_sf = (replica.session_factory() if reader is None
                         else db.session_factory(reader))
        self._sync_lock = threading.Lock()

    @classmethod
    def open(cls, folder: Path, profile: str, login: str,
             policy: OfflinePolicy | None = None) -> OfflineWork:
        """The replica and outbox of this profile and login, made on first use.
        :class:`OfflineUnavailable` where it cannot be (no secure keyring for the
        key, a replica the key does not open)."""
        try:
            key = secrets.replica_key(profile)
        except secrets.NoSecureKeyring as exc:
            raise OfflineUnavailable(str(exc)) from None
        path = replica_path(folder, profile, login)
        try:
            replica = Replica.open(path, key=key)
            reader = db.make_encrypted_engine(path, key, read_only=True)
        except db.WrongKey as exc:
            raise OfflineUnavailable(str(exc)) from None
        policy = policy or OfflinePolicy()
        return cls(replica, Outbox(replica.engine, policy), policy, reader)

    def close(self) -> None:
        self.replica.close()
        if self._reader is not None:
            self._reader.dispose()

    # ------------------------------------------------------------ reads

    @property
    def sf(self) -> sessionmaker[Session]:
        """What the screens read while offline (it refuses writes: those go
        through :meth:`perform`)."""
        return self._read_sf

    @property
    def made(self) -> bool:
        return self.replica.cursor is not None

    # ------------------------------------------------------------ following the server

    def sync(self, server_sf: sessionmaker[Session],
             progress: Callable[[int, int], None] | None = None,
             cancelled: Callable[[], bool] | None = None) -> SyncResult | PullResult | None:
        """Bring the replica up to date: the first sync when it was never made,
        else a pull of the changes since the last one. One at a time (a pull
        asked for during another returns at once with None)."""
        if not self._sync_lock.acquire(blocking=False):
            return None
        try:
            if not self.made:
                return self.replica.first_sync(server_sf, progress, cancelled)
            return self.replica.pull(server_sf)
        finally:
            self._sync_lock.release()

    # ------------------------------------------------------------ offline writes

    def write(self, kind: Kind | str, actor: Actor, request: Any) -> Queued:
        """Make a write on the replica and queue it for the server (the setting
        decides which are allowed: ``outbox.OfflineRefused`` says why not)."""
        if not self.made:
            raise OfflineUnavailable(
                "This workstation has no offline copy of the database yet (it is made "
                "while the server answers), so nothing can be done offline.")
        return self.outbox.run(kind, actor, request)

    def replay(self, server_sf: sessionmaker[Session], actor: Actor,
               progress: Callable[[int, int], None] | None = None) -> ReplayResult:
        """Send the queue to the server in order, over this window's login, and
        take the server's rows back into the replica. An entry made by another
        staff member stops the replay there: it is sent when they sign in (the
        server records who did what from the login)."""
        def actor_for(staff_id: Any) -> Actor | None:
            return actor if staff_id == actor.staff_id else None

        def refetch(rows: Any) -> None:
            self.replica.refetch(server_sf, rows)

        with self._sync_lock:
            result = self.outbox.replay(server_sf, actor_for, progress, refetch=refetch)
            if not result.lost_connection:
                self.replica.pull(server_sf)
        return result

    def perform(self, kind: Kind | str, sf: sessionmaker[Session], actor: Actor,
                request: Any, *, offline: bool) -> Any:
        """The write of ``kind``: on the server's ``sf`` (online), or on the
        replica and queued (``offline``), where its committed changes are handed
        to the caller's sink (uow.publishing_to) as an online write's are.
        Either way the answer is the service's own."""
        from ..services import uow

        if not offline:
            return online_call(kind, sf, actor, request)
        queued = self.write(kind, actor, request)
        uow.publish(queued.changes)
        return queued.result

    def state(self) -> OutboxState:
        return self.outbox.state()

    def pending_rows(self) -> dict[str, frozenset[Any]]:
        """The rows changed offline that the server has not confirmed yet (its
        waiting entries and those that need attention), by table: the screens
        mark them."""
        out: dict[str, set[Any]] = {}
        for entry in self.outbox.entries(("waiting", "attention")):
            for table, ids in _outbox._changes_of(entry.local_rows).items():
                out.setdefault(table, set()).update(ids)
        return {t: frozenset(ids) for t, ids in out.items()}

    def needs_attention(self) -> list[_outbox.AttentionItem]:
        return self.outbox.needs_attention()

    def resolve(self, entry_id: Any, how: str, actor: Actor) -> Any:
        return self.outbox.resolve(entry_id, how, actor)
