"""GetMeds Desktop: pharmacy management for the workstations of a pharmacy."""

from __future__ import annotations

from functools import cache


@cache
def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("getmeds-desktop")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "0+unknown"


def __getattr__(name: str) -> str:
    # Looked up on first use: importlib.metadata costs ~60 ms at every start.
    if name == "__version__":
        return _version()
    raise AttributeError(name)
