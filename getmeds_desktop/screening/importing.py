"""Importing a licensed drug interaction knowledge base from a CSV file.

The format (docs/screening.md) follows the W3C HCLS minimal information model
for potential drug-drug interactions: the two drugs (an ingredient or a class
each), the severity, the clinical consequence, the management and the source.

::

    ingredient_or_class_a,ingredient_or_class_b,severity,clinical_consequence,management,source
    warfarin,class:Nonsteroidal Anti-inflammatory Drug,major,Bleeding,Monitor INR,Vendor KB 5

* a drug column holds one or more names separated by ";". A name matches an
  ingredient or a class; prefix it with ``ingredient:`` or ``class:`` to say
  which only;
* severity is contraindicated, major, moderate or minor;
* management may be empty; every other column is required.

The file is checked whole before anything is used (a regular UTF-8 or
Windows-1252 text file, at most 50 MB, no binary data, quotes closed, every
row complete); every problem is reported with its line, and a file with any
problem is refused. :func:`merge_interactions` then lays the rules over the
shipped defaults: a rule for the same two drug sets replaces the default.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TextIO

from .. import textfile
from ..errors import ValidationError
from . import names
from .knowledge import InteractionRule, InteractionSeverity, Knowledge, Members, Source

__all__ = ["COLUMNS", "MAX_BYTES", "MAX_ROWS", "ImportedInteractions", "InteractionFileError",
           "merge_interactions", "read_interactions_csv"]

COLUMNS = ("ingredient_or_class_a", "ingredient_or_class_b", "severity",
           "clinical_consequence", "management", "source")
_ALIASES = {
    "ingredient_or_class_a": ("drug_a", "a", "object", "object_drug", "drug1"),
    "ingredient_or_class_b": ("drug_b", "b", "precipitant", "precipitant_drug", "drug2"),
    "severity": ("seriousness",),
    "clinical_consequence": ("consequence", "clinical_consequences", "effect"),
    "management": ("management_options", "recommendation"),
    "source": ("evidence_source", "reference"),
}
_OPTIONAL = frozenset({"management"})
MAX_BYTES = 50 << 20
MAX_ROWS = 200_000
MAX_PROBLEMS = 50
_MAX_NAME = 500
_MAX_TEXT = 2000


class InteractionFileError(ValidationError):
    """The file was refused; ``problems`` lists (line, sentence) for each one."""

    def __init__(self, message: str, problems: Sequence[tuple[int, str]] = ()) -> None:
        super().__init__(message)
        self.problems = tuple(problems)


@dataclasses.dataclass(frozen=True)
class ImportedInteractions:
    file: Path
    rules: tuple[InteractionRule, ...]
    sha256: str  # of the file, to record which knowledge base was loaded

    @property
    def label(self) -> str:
        return f"{self.file.name} ({len(self.rules)} rules, sha256 {self.sha256[:12]})"


def _header_key(text: str) -> str:
    return "_".join(text.strip().lstrip("\ufeff").lower().replace("-", " ").split())


def _columns(header: Sequence[str], name: str) -> dict[str, int]:
    found: dict[str, int] = {}
    problems = []
    for i, h in enumerate(header):
        k = _header_key(h)
        for col in COLUMNS:
            if k == col or k in _ALIASES[col]:
                if col in found:
                    problems.append(f"the column {col} appears twice")
                found[col] = i
    missing = [c for c in COLUMNS if c not in found and c not in _OPTIONAL]
    if missing:
        problems.append("missing column" + ("s " if len(missing) > 1 else " ")
                        + ", ".join(missing) + f" (the columns are: {', '.join(COLUMNS)})")
    if problems:
        raise InteractionFileError(f"{name}, line 1: " + "; ".join(problems) + ".",
                                   [(1, p) for p in problems])
    return found


def _side(value: str) -> tuple[Members, str | None]:
    ingredients: list[str] = []
    classes: list[str] = []
    for part in value.split(";"):
        part = part.strip()
        if not part:
            continue
        kind, _, rest = part.partition(":")
        kind = kind.strip().lower()
        if rest and kind in ("class", "ingredient"):
            target = rest.strip()
            if not any(ch.isalpha() for ch in target):
                return Members(), f"{part!r} is not a drug name"
            (classes if kind == "class" else ingredients).append(target)
        elif not any(ch.isalpha() for ch in part):
            return Members(), f"{part!r} is not a drug name"
        else:  # either: the name is looked for among ingredients and classes
            ingredients.append(part)
            classes.append(part)
    members = Members.of(ingredients, classes)
    if not members:
        return members, "no drug is named"
    return members, None


def _rows(fh: TextIO, name: str, delimiter: str) -> Iterator[tuple[int, list[str]]]:
    reader = csv.reader(textfile.limited(fh, name), delimiter=delimiter, strict=True)
    start = 1
    try:
        for values in reader:
            line, start = start, reader.line_num + 1
            yield line, values
    except csv.Error as exc:
        message = str(exc)
        if "unexpected end of data" in message:
            message = ("a quoted value is never closed (is the file cut short?)")
        elif "expected after" in message:
            message = "a quote inside a value must be doubled (\"\")"
        raise InteractionFileError(f"{name}, line {start}: {message}.",
                                   [(start, message)]) from None


def read_interactions_csv(path: Path | str, *, source_label: str | None = None
                          ) -> ImportedInteractions:
    """Read and check an interactions CSV (see the module docstring). Raises
    :class:`InteractionFileError` naming every problem with its line."""
    path = Path(path)
    try:
        return _read(path, source_label)
    except InteractionFileError:
        raise
    except ValidationError as exc:  # the safe reader's refusals (binary, too big, ...)
        raise InteractionFileError(str(exc)) from None
    except OSError as exc:
        raise InteractionFileError(f"{path} cannot be read: {exc.strerror}.") from None


def _read(path: Path, source_label: str | None) -> ImportedInteractions:
    f = textfile.inspect(path, max_bytes=MAX_BYTES, what="a CSV file")
    digest = hashlib.sha256()
    with open(path, "rb") as raw:
        for chunk in iter(lambda: raw.read(1 << 20), b""):
            digest.update(chunk)
    with textfile.open_text(f) as fh:
        first = next(textfile.lines(fh), None)
    head = first.text if first is not None else ""
    delimiter = max((",", ";", "\t"), key=head.count)
    problems: list[tuple[int, str]] = []
    rules: list[InteractionRule] = []
    seen: dict[frozenset[Members], int] = {}
    label = source_label or path.name
    with textfile.open_text(f) as fh:
        rows = _rows(fh, path.name, delimiter)
        header_row = next(rows, None)
        if header_row is None:
            raise InteractionFileError(f"{path.name} is empty.")
        cols = _columns(header_row[1], path.name)
        width = len(header_row[1])
        count = 0
        for line, values in rows:
            if not any(v.strip() for v in values):
                continue
            count += 1
            if count > MAX_ROWS:
                raise InteractionFileError(f"{path.name} has more than {MAX_ROWS:,} rows; "
                                           "split it.", problems)
            if len(problems) >= MAX_PROBLEMS:
                continue
            if len(values) != width:
                problems.append((line, f"the row has {len(values)} values and the header "
                                       f"{width} (is the file cut short, or a value not quoted?)"))
                continue
            v = {c: " ".join(values[i].split()) for c, i in cols.items()}
            row_problems = [f"{c} is empty" for c in COLUMNS
                            if c not in _OPTIONAL and not v.get(c)]
            for c, text in v.items():
                limit = _MAX_NAME if c.startswith("ingredient_or_class") else _MAX_TEXT
                if len(text) > limit:
                    row_problems.append(f"{c} is longer than {limit:,} characters")
            if row_problems:
                problems.append((line, "; ".join(row_problems)))
                continue
            a, a_problem = _side(v["ingredient_or_class_a"])
            b, b_problem = _side(v["ingredient_or_class_b"])
            try:
                severity = InteractionSeverity(v["severity"].lower())
            except ValueError:
                severity = None
            for p in (a_problem and f"drug A: {a_problem}", b_problem and f"drug B: {b_problem}",
                      None if severity else f"severity {v['severity']!r} is not one of "
                                            "contraindicated, major, moderate, minor"):
                if p:
                    row_problems.append(p)
            if row_problems or severity is None:
                problems.append((line, "; ".join(row_problems)))
                continue
            pair = frozenset((a, b))
            if pair in seen:
                problems.append((line, f"the same two drugs are already on line {seen[pair]}"))
                continue
            seen[pair] = line
            rid = "kb-" + hashlib.sha1(
                "|".join(sorted(names.key(x) for x in (v["ingredient_or_class_a"],
                                                       v["ingredient_or_class_b"]))
                         ).encode()).hexdigest()[:10]
            rules.append(InteractionRule(
                rid, a, b, severity, v["clinical_consequence"], v.get("management", ""),
                Source(f"import:{label}", v["source"], ""), f"(imported from {label}, line "
                                                             f"{line})"))
    if problems:
        shown = "; ".join(f"line {n}: {p}" for n, p in problems[:5])
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise InteractionFileError(
            f"{path.name} was not imported: {shown}{more}.", problems)
    if not rules:
        raise InteractionFileError(f"{path.name} has a header but no interactions.")
    return ImportedInteractions(path, tuple(rules), digest.hexdigest())


def merge_interactions(base: Knowledge, imported: ImportedInteractions) -> Knowledge:
    """``base`` with the imported rules laid over its interactions."""
    return base.with_interactions(imported.rules, imported.label)
