"""Business rules and use cases. No Qt here.

Every function takes a session factory, returns frozen dataclasses (never live
ORM objects) and raises :class:`~getmeds_desktop.services.errors.DomainError`
subclasses whose message a person can act on.
"""

from .context import Actor, Perm
from .errors import DomainError

__all__ = ["Actor", "DomainError", "Perm"]
