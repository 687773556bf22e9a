"""The rules conformance runner: pharmacy rules written as YAML cases, each run
on a fresh scratch database through the real services (no Qt here).

Public interface (docs/rules-format.md describes the file format)::

    from getmeds_desktop import rules

    code = rules.check([Path("cases/")])            # getmeds-admin rules check
    report = rules.run([Path("x.yaml")], out=print)  # PASS/FAIL lines, then a Report
    cases, invalid = rules.load_paths([Path("x.yaml")])  # read and check only

``LIBRARY`` is the folder of cases shipped with this version (one file per rule,
each with its citation). New step kinds go in ``rules/steps.py`` (one decorated
function each), new expectations in ``rules/expect.py``.
"""

from __future__ import annotations

from pathlib import Path

from .case import Case, Invalid, Step, load_file, load_paths
from .runner import Report, Result, check, run
from .scratch import ScratchError
from .steps import STEP_KINDS
from .vocabulary import REFUSAL_KINDS, CaseError, warning_kinds

LIBRARY = Path(__file__).with_name("cases")

__all__ = [
    "LIBRARY",
    "REFUSAL_KINDS",
    "STEP_KINDS",
    "Case",
    "CaseError",
    "Invalid",
    "Report",
    "Result",
    "ScratchError",
    "Step",
    "check",
    "load_file",
    "load_paths",
    "run",
    "warning_kinds",
]
