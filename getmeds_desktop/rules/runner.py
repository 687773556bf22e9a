"""Running cases: each on a fresh scratch database, its clock frozen to the
case's day, its setup made through the services, then each step as the staff
member it names, compared with what it expects."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import sqlalchemy as sa

from .. import db
from ..services import clock
from ..services.errors import DomainError
from .case import Case, Invalid, Step, load_paths
from .expect import EXPECTATIONS, Mismatch, Outcome, Refusal, check_refused
from .scratch import Scratch, open_scratch
from .setup import SetupFailed, World, build
from .steps import Refused, RunProblem, refusal_kind

log = logging.getLogger("getmeds.rules")

STEP_MINUTE = dt.timedelta(minutes=1)  # each step happens a minute after the one before


@dataclasses.dataclass(frozen=True)
class Result:
    name: str
    status: str  # "pass", "fail" or "known_bug"
    detail: str | None = None  # "step N: expected ..., got ..." or "setup: ..."
    case: Case | None = None
    seconds: float = 0.0

    @property
    def failed(self) -> bool:
        return self.status == "fail"

    def line(self) -> str:
        if self.status == "pass":
            return f"PASS {self.name}"
        if self.status == "known_bug":
            bug = self.case.known_bug if self.case else ""
            return f"KNOWN BUG {self.name}: {self.detail} (known bug: {bug})"
        return f"FAIL {self.name}: {self.detail}"


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:300] if lines else "no message"


def _mismatch(step: Step, m: Mismatch) -> str:
    return f"step {step.number}: expected {m.expected}, got {m.got}"


def run_step(world: World, step: Step) -> Outcome:
    """Carry out one step on the world's clock; a refusal is an outcome."""
    actor = world.staff[step.actor] if step.actor else world.setup_actor
    assert step.kind.run is not None
    try:
        return step.kind.run(world, step.args, actor)
    except Refused as exc:
        return Outcome(refusal=Refusal(refusal_kind(exc.error, step.kind, step.args, world),
                                       str(exc.error)), warnings=exc.warnings)
    except DomainError as exc:
        return Outcome(refusal=Refusal(refusal_kind(exc, step.kind, step.args, world),
                                       str(exc)))


def check_step(world: World, step: Step, out: Outcome) -> str | None:
    """The first expectation of ``step`` that ``out`` does not meet, in words."""
    m = check_refused(step.expect.get("refused"), out)
    if m is not None:
        return _mismatch(step, m)
    for name, expected in step.expect.items():
        if name == "refused":
            continue
        m = EXPECTATIONS[name].check(expected, out, world)
        if m is not None:
            return _mismatch(step, m)
    return None


def _outcome(case: Case, detail: str | None, started: float) -> Result:
    seconds = round(time.perf_counter() - started, 3)
    if case.known_bug:
        if detail is None:
            return Result(case.name, "fail", "it passes now, but it is marked known_bug: "
                          "remove known_bug if the bug is fixed", case, seconds)
        return Result(case.name, "known_bug", detail, case, seconds)
    return Result(case.name, "pass" if detail is None else "fail", detail, case, seconds)


def run_case(case: Case, scratch: Scratch) -> Result:
    started = time.perf_counter()
    url = scratch.new()
    engine = db.make_engine(url, poolclass=sa.NullPool)
    where = "setup"
    try:
        sf = db.session_factory(engine)
        try:
            world = build(sf, case.setup, case.today)
        except SetupFailed as exc:
            return _outcome(case, f"setup: {exc.what}: {exc.message}", started)
        for step in case.steps:
            where = f"step {step.number}"
            world.now += STEP_MINUTE
            with clock.travel(world.now):
                try:
                    out = run_step(world, step)
                except RunProblem as exc:
                    return _outcome(case, f"{where}: {exc}", started)
            with clock.travel(world.now):  # after the step: a travel's new day
                detail = check_step(world, step, out)
            if detail is not None:
                return _outcome(case, detail, started)
        return _outcome(case, None, started)
    except Exception as exc:  # a bug (of the app or of the runner): never a traceback
        log.exception("rules case %r: unexpected error at %s", case.name, where)
        return Result(case.name, "fail", f"{where}: unexpected error ({type(exc).__name__}: "
                      f"{_first_line(exc)}); details are in the log", case,
                      round(time.perf_counter() - started, 3))
    finally:
        engine.dispose()
        scratch.drop(url)


@dataclasses.dataclass(frozen=True)
class Report:
    results: tuple[Result, ...]
    invalid: tuple[Invalid, ...]
    seconds: float

    @property
    def ok(self) -> bool:
        return not self.invalid and not any(r.failed for r in self.results) and bool(
            self.results)

    def summary(self) -> str:
        count = {s: sum(1 for r in self.results if r.status == s)
                 for s in ("pass", "fail", "known_bug")}
        parts = [f"{count['pass']} passed", f"{count['fail']} failed"]
        if count["known_bug"]:
            parts.append(f"{count['known_bug']} known bug{'s' if count['known_bug'] > 1 else ''}")
        if self.invalid:
            parts.append(f"{len(self.invalid)} could not be read")
        return ", ".join(parts) + f" ({self.seconds:.1f} s)"


def run(paths: Iterable[Path], *, database: str | None = None,
        out: Callable[[str], None] = print) -> Report:
    """Load every case of ``paths`` (files or folders), then run the valid ones,
    printing one line per case (and per file or case that could not be read)."""
    started = time.perf_counter()
    cases, invalid = load_paths(paths)
    for bad in invalid:
        out(f"ERROR {bad}")
    results: list[Result] = []
    if cases:
        scratch = open_scratch(database)
        try:
            for case in cases:
                result = run_case(case, scratch)
                results.append(result)
                out(result.line())
        finally:
            scratch.close()
    return Report(tuple(results), tuple(invalid), round(time.perf_counter() - started, 1))


def check(paths: Iterable[Path], *, database: str | None = None,
          out: Callable[[str], None] = print) -> int:
    """``getmeds-admin rules check``: 0 when every case passes, 1 otherwise."""
    paths = list(paths)
    report = run(paths, database=database, out=out)
    if not report.results and not report.invalid:
        out("No cases to run.")
        return 1
    out(report.summary())
    return 0 if report.ok else 1


__all__ = ["Report", "Result", "check", "run", "run_case"]
