"""Workstations in sync: the LISTEN/NOTIFY listener, connection health, and
retrying work whose connection dropped (no Qt)."""

from .listener import EVERYTHING, Change, ChangeListener, affected, group, parse_payload
from .retry import call_with_reconnect, is_disconnect

__all__ = ["EVERYTHING", "Change", "ChangeListener", "affected", "call_with_reconnect", "group",
           "is_disconnect", "parse_payload"]
