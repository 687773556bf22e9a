"""Retrying work whose connection dropped (server restart, network cut,
``pg_terminate_backend``) without ever doing it twice.

The caller's work must be safe to repeat: reads, and writes that carry a
request id or a client-chosen id (every write the GUI makes does), so that
whether or not the lost attempt committed, exactly one result exists.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

import sqlalchemy as sa

from ..errors import DatabaseUnavailable

log = logging.getLogger(__name__)
T = TypeVar("T")


# SQLSTATEs of a connection that went away: class 08, and the server shutting
# down or terminating the backend (pg_terminate_backend, restart, failover).
_GONE_STATES = ("57P01", "57P02", "57P03")
RECONNECT_DELAYS = (0.25, 0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 5.0, 5.0)  # about 26 s in all


def is_disconnect(exc: BaseException) -> bool:
    """Did this error happen because the connection to the server was lost
    (or could not be made), rather than because of what the statement did?"""
    if not isinstance(exc, sa.exc.DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    if not isinstance(exc, sa.exc.OperationalError):
        return False
    state = getattr(exc.orig, "sqlstate", None)
    return state is None or state.startswith("08") or state in _GONE_STATES


def call_with_reconnect(fn: Callable[[], T], *, on_lost: Callable[[], None] | None = None,
                        delays: Sequence[float] = RECONNECT_DELAYS,
                        sleep: Callable[[float], None] = time.sleep) -> T:
    """Call ``fn``; if the connection drops, call it again after a pause.

    Only for work that is safe to repeat: reads, and writes that carry a
    request id (or a client-chosen id), so that whether or not the lost attempt
    committed, exactly one result exists. The pool's pre-ping replaces dead
    connections on the next attempt. After the last attempt the error is a
    :class:`DatabaseUnavailable` with a message for the user.
    """
    for attempt in range(len(delays) + 1):
        try:
            return fn()
        except sa.exc.DBAPIError as exc:
            if not is_disconnect(exc):
                raise
            if on_lost is not None:
                on_lost()
            if attempt == len(delays):
                raise gave_up() from None
            log.info("connection lost; trying again in %.2f s", delays[attempt])
            sleep(delays[attempt])
    raise AssertionError("unreachable")


LOST_FOR_GOOD = ("The connection to the database was lost and has not come back. "
                 "Nothing was saved twice: try again when the status bar shows Connected.")


def gave_up() -> DatabaseUnavailable:
    """The error after the last attempt."""
    return DatabaseUnavailable(LOST_FOR_GOOD)
