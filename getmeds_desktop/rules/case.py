"""A case: its name, citation, day, setup and steps, read from a YAML file and
checked completely before anything runs."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ..enums import Role
from . import vocabulary as v
from .expect import Refs, read_expect
from .setup import Setup, read_setup
from .steps import STEP_KINDS, Names, StepKind
from .yamlfile import YamlProblem, YMap, documents, read_text

MAX_STEPS = 500  # each step is a minute of the case's day (noon onwards)
STEP_EXTRAS = ("as", "expect")


@dataclasses.dataclass(frozen=True)
class Step:
    number: int  # 1-based, as the FAIL line says it
    kind: StepKind
    args: Mapping[str, Any]
    actor: str | None  # the staff key it is done as (None: a step nobody does)
    expect: Mapping[str, Any]
    line: int


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    cite: str | None
    today: dt.date
    setup: Setup
    steps: tuple[Step, ...]
    file: Path
    line: int
    known_bug: str | None = None  # the case shows a bug that is not fixed yet


@dataclasses.dataclass(frozen=True)
class Invalid:
    """A file or case that cannot be run, and why (``line`` may be None)."""

    file: Path
    message: str
    line: int | None = None
    case: str | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else str(self.file)
        case = f" case '{self.case}':" if self.case else ""
        return f"{where}:{case} {self.message}"


CASE_KEYS = ("name", "cite", "today", "setup", "steps", "known_bug")


def read_case(value: Any, line: int, file: Path) -> Case:
    m = v.as_map(value, line, "a case")
    v.check_keys(m, "the case", CASE_KEYS, required=("name", "today", "steps"))
    name = v.required_text(m, "name", "the case", max_len=200).strip()
    if "\n" in name:
        v.fail("the case's name must be one line", m.line_of("name"))
    today = v.date(m, "today", "the case")
    assert today is not None
    setup = read_setup(m.get("setup"), m.line_of("setup"))
    names = Names(
        staff={s.key: s.role for s in setup.staff},
        products={p.key: p.schedule for p in setup.products},
        patients={p.key for p in setup.patients},
        prescribers={p.key for p in setup.prescribers},
        lots={(lot.product, lot.lot.upper()) for lot in setup.lots},
        day=today)
    items = v.as_list(m["steps"], m.line_of("steps"), "steps")
    if not items:
        v.fail("the case has no steps", m.line_of("steps"))
    if len(items) > MAX_STEPS:
        v.fail(f"the case has more than {MAX_STEPS} steps: split it", m.line_of("steps"))
    steps = tuple(read_step(item, items.line_of(i), i + 1, names)
                  for i, item in enumerate(items))
    return Case(name=name, cite=v.text(m, "cite", "the case", max_len=1000), today=today,
                setup=setup, steps=steps, file=file, line=m.line,
                known_bug=v.text(m, "known_bug", "the case", max_len=1000))


def _default_actor(names: Names) -> str | None:
    return next((k for k, r in names.staff.items() if r is Role.PHARMACIST), None)


def read_step(value: Any, line: int, number: int, names: Names) -> Step:
    what = f"step {number}"
    m = v.as_map(value, line, what)
    actions = [k for k in m if k not in STEP_EXTRAS]
    if len(actions) != 1:
        listed = ", ".join(f"'{a}'" for a in actions) or "none"
        v.fail(f"{what}: a step is one action (such as 'fill:' or 'receive:') with optional "
               f"'as:' and 'expect:'; this one has {listed}", line)
    action = actions[0]
    kind = STEP_KINDS.get(action)
    if kind is None:
        v.fail(f"{what}: '{action}' is not a step kind{v.suggest(action, STEP_KINDS)} (the "
               f"kinds are {', '.join(k for k, s in STEP_KINDS.items() if s.run)})",
               m.line_of(action))
    if kind.run is None:
        v.fail(f"{what}: '{action}' ({kind.does}) {v.NOT_YET}", m.line_of(action))
    what = f"step {number} ({action})"
    args = read_args(kind, m[action], m.line_of(action), what, names)
    if kind.check is not None:
        kind.check(args, names, m.line_of(action), what)
    actor = None
    if kind.actor:
        actor = v.text(m, "as", what, max_len=40)
        if actor is None:
            actor = _default_actor(names)
            if actor is None:
                v.fail(f"{what}: say who does it ('as: <a staff key>'): the case has no "
                       "pharmacist to do it by default", line)
        elif actor not in names.staff:
            v.fail(f"{what}: as: '{actor}' is not one of setup's staff"
                   f"{v.suggest(actor, names.staff)}", m.line_of("as"))
    elif "as" in m:
        v.fail(f"{what}: nobody does a {action} step, so it takes no 'as:'", m.line_of("as"))
    if kind.after is not None:  # what the step defines (a schedule step: the product's
        kind.after(args, names, number)  # new schedule, which its expect sees)
    refs = Refs(products=set(names.products),
                controlled={k for k, s in names.products.items() if s.controlled},
                patients=set(names.patients))
    expect = read_expect(m.get("expect"), m.line_of("expect"), what, kind.expects, refs)
    return Step(number, kind, args, actor, expect, line)


def read_args(kind: StepKind, value: Any, line: int, what: str, names: Names
              ) -> dict[str, Any]:
    if value is None:
        m = YMap(line)
    else:
        m = v.as_map(value, line, what)
    for key in m:
        if key not in kind.fields:
            v.fail(f"{what}: unknown key '{key}'{v.suggest(key, kind.fields)} (it takes "
                   f"{', '.join(kind.fields) or 'no keys'})", m.line_of(key))
    args: dict[str, Any] = {}
    for key, field in kind.fields.items():
        if key in m and (m[key] is not None or field.takes_nothing):
            args[key] = field.read(m[key], m.line_of(key), f"{what}: '{key}'", names, args)
        elif field.required:
            v.fail(f"{what} needs '{key}'", m.line_of(key) if key in m else line)
        else:
            args[key] = field.default
    return args


def load_file(path: Path) -> tuple[list[Case], list[Invalid]]:
    """The cases of one file, and what could not be read (one entry per bad case;
    a file that is not YAML at all is one entry)."""
    try:
        docs = documents(read_text(path))
    except YamlProblem as exc:
        return [], [Invalid(path, exc.message if exc.line else f"the file {exc.message}",
                            exc.line)]
    cases: list[Case] = []
    bad: list[Invalid] = []
    if not docs or all(value is None for value, _ in docs):
        return [], [Invalid(path, "the file has no case in it")]
    for value, line in docs:
        if value is None:
            continue
        name = value.get("name") if isinstance(value, YMap) else None
        try:
            cases.append(read_case(value, line, path))
        except v.CaseError as exc:
            bad.append(Invalid(path, exc.message, exc.line,
                               name.strip()[:200] if isinstance(name, str) else None))
    return cases, bad


def case_files(paths: Iterable[Path]) -> tuple[list[Path], list[Invalid]]:
    """The .yaml/.yml files of ``paths`` (folders are searched, sorted by name)."""
    files: list[Path] = []
    bad: list[Invalid] = []
    for p in paths:
        if p.is_dir():
            found = sorted(x for x in p.rglob("*") if x.suffix.lower() in (".yaml", ".yml")
                           and x.is_file())
            if not found:
                bad.append(Invalid(p, "the folder has no .yaml case files"))
            files.extend(found)
        elif p.is_file():
            files.append(p)
        elif p.exists():
            bad.append(Invalid(p, "is not a regular file"))
        else:
            bad.append(Invalid(p, "the file or folder does not exist"))
    return list(dict.fromkeys(files)), bad


def load_paths(paths: Iterable[Path]) -> tuple[list[Case], list[Invalid]]:
    """Every case of ``paths``; case names must be unique (they name the results)."""
    files, bad = case_files(paths)
    cases: list[Case] = []
    seen: dict[str, Case] = {}
    for f in files:
        found, wrong = load_file(f)
        bad.extend(wrong)
        for c in found:
            if c.name in seen:
                first = seen[c.name]
                bad.append(Invalid(f, f"another case has this name ({first.file}, line "
                                      f"{first.line}): names must be unique", c.line, c.name))
                continue
            seen[c.name] = c
            cases.append(c)
    return cases, bad


__all__ = ["Case", "Invalid", "Step", "case_files", "load_file", "load_paths", "read_case"]
