"""``getmeds --smoke-test`` (completed in the packaging issue)."""

from __future__ import annotations


def run_smoke_test() -> int:
    print("smoke test: not available in this build", flush=True)
    return 1
