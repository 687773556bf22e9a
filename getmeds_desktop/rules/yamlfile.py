"""Reading a hand-written YAML file without trusting it.

A case file is typed by a pharmacist, or arrives from anywhere: it may be
huge, binary, in the wrong encoding, nested a million levels deep, or an
alias bomb. This reader never builds Python objects from tags and never
follows an alias; it walks PyYAML's event stream (no recursion) and makes
plain values:

* a mapping is a :class:`YMap` (a ``dict`` that knows its line and the line of
  each key); duplicate keys are refused;
* a sequence is a :class:`YSeq` (a ``list`` that knows the line of each item);
* every scalar is a ``str`` (or ``None`` for an empty plain value, ``~`` or
  ``null``): nothing is guessed, so ``00071015523`` stays an NDC, ``no`` stays
  a word, and the vocabulary converts each value itself with a message.

Every problem is a :class:`YamlProblem` whose message is a sentence.
"""

from __future__ import annotations

import codecs
from pathlib import Path
from typing import Any

import yaml

MAX_BYTES = 1_000_000  # a case file is a page or two; this is a hundred times that
MAX_DEPTH = 24
MAX_NODES = 100_000
MAX_DOCUMENTS = 200
MAX_SCALAR = 10_000  # characters in one value

_NULLS = {"", "~", "null", "Null", "NULL"}


class YamlProblem(Exception):
    """The file cannot be read as a case file. ``line`` is 1-based, or None."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


class YMap(dict[str, Any]):
    """A mapping read from the file, with where it and each key were written."""

    __slots__ = ("flow", "key_lines", "line")

    def __init__(self, line: int, flow: bool = False) -> None:
        super().__init__()
        self.line = line
        self.flow = flow  # written {a: b, c: d}
        self.key_lines: dict[str, int] = {}

    def line_of(self, key: str) -> int:
        return self.key_lines.get(key, self.line)


class YSeq(list[Any]):
    """A sequence read from the file, with the line of each item."""

    __slots__ = ("item_lines", "line")

    def __init__(self, line: int) -> None:
        super().__init__()
        self.line = line
        self.item_lines: list[int] = []

    def line_of(self, index: int) -> int:
        return self.item_lines[index] if 0 <= index < len(self.item_lines) else self.line


def read_text(path: Path) -> str:
    """The file's text: UTF-8 (with or without a byte-order mark), not binary,
    not larger than :data:`MAX_BYTES`."""
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_BYTES + 1)
    except IsADirectoryError:
        raise YamlProblem("is a folder, not a file") from None
    except FileNotFoundError:
        raise YamlProblem("does not exist") from None
    except PermissionError:
        raise YamlProblem("cannot be read (permission denied)") from None
    except OSError as exc:
        raise YamlProblem(f"cannot be read ({exc.strerror or exc})") from None
    if len(raw) > MAX_BYTES:
        raise YamlProblem(f"is larger than {MAX_BYTES // 1000:,} kB: a case file is a page or "
                          "two of text; split it, or check that this is the right file")
    return decode(raw)


def decode(raw: bytes) -> str:
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise YamlProblem("is UTF-16 text: save it as UTF-8")
    if b"\x00" in raw:
        raise YamlProblem("is a binary file, not YAML text")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise YamlProblem("is not UTF-8 text (a byte that is not UTF-8 is on this line): "
                          "save it as UTF-8", line) from None


# libyaml's parser where PyYAML has it (every wheel does) reads a case file some
# thirty times faster than PyYAML's own. The two disagree on a few odd texts and
# word their errors differently, so when libyaml refuses a file, PyYAML's parser
# decides: it alone says what a file means and what is wrong with it.
_FAST: Any = getattr(yaml, "CSafeLoader", None)


def _line(event: Any) -> int:
    mark = getattr(event, "start_mark", None)
    return mark.line + 1 if mark is not None else 0


def _problem_of(exc: yaml.YAMLError, text: str) -> YamlProblem:
    if isinstance(exc, yaml.reader.ReaderError):
        line = text[:max(exc.position, 0)].count("\n") + 1
        what = (f" (#x{exc.character:04x})" if isinstance(exc.character, int) else "")
        return YamlProblem(f"contains a control character{what} that YAML does not allow",
                           line)
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None)
    context = getattr(exc, "context", None)
    words = (f"{context}, {problem}" if context and problem else problem or context
             or (str(exc).splitlines() or ["unreadable"])[0])
    return YamlProblem(f"is not valid YAML: {words}", mark.line + 1 if mark else None)


def documents(text: str) -> list[tuple[Any, int]]:
    """Each YAML document of ``text`` as (value, line where it starts)."""
    try:
        if _FAST is not None:
            try:
                return _documents(text, _FAST)
            except yaml.YAMLError:
                pass  # PyYAML's parser decides (see _FAST)
        return _documents(text, yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise _problem_of(exc, text) from None
    except RecursionError:  # not expected (no recursion here); never a traceback
        raise YamlProblem(f"is nested too deeply (more than {MAX_DEPTH} levels)") from None


def _documents(text: str, loader: Any) -> list[tuple[Any, int]]:
    out: list[tuple[Any, int]] = []
    stack: list[YMap | YSeq] = []
    pending_key: list[str | None] = []  # per open mapping: the key waiting for its value
    nodes = 0
    doc_line = 1

    def add(value: Any, line: int) -> None:
        if not stack:
            out.append((value, doc_line))
            return
        top = stack[-1]
        if isinstance(top, YSeq):
            top.append(value)
            top.item_lines.append(line)
            return
        key = pending_key[-1]
        if key is None:  # this value is a key
            if not isinstance(value, str):
                raise YamlProblem("a key must be a plain word, not a list, a mapping or "
                                  "nothing", line)
            if value in top:
                raise YamlProblem(f"'{value}' is given twice in the same place (first on "
                                  f"line {top.key_lines[value]})", line)
            pending_key[-1] = value
            top.key_lines[value] = line
        else:
            top[key] = value
            pending_key[-1] = None

    for event in yaml.parse(text, Loader=loader):
        line = _line(event)
        if isinstance(event, (yaml.StreamStartEvent, yaml.StreamEndEvent,
                              yaml.DocumentEndEvent)):
            continue
        if isinstance(event, yaml.DocumentStartEvent):
            doc_line = line
            if len(out) >= MAX_DOCUMENTS:
                raise YamlProblem(f"has more than {MAX_DOCUMENTS} documents (cases); "
                                  "split it into several files", line)
            continue
        if isinstance(event, yaml.AliasEvent):
            raise YamlProblem("uses an alias (*name): aliases are not allowed in case "
                              "files; write the value out in full", line)
        anchor = getattr(event, "anchor", None)
        if anchor is not None:
            raise YamlProblem(f"uses an anchor (&{anchor}): anchors and aliases are not "
                              "allowed in case files; write the value out in full", line)
        tag = getattr(event, "tag", None)
        if tag is not None and tag != "!":
            raise YamlProblem(f"uses the tag {tag}: tags are not allowed in case files",
                              line)
        if isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            done = stack.pop()
            pending_key.pop()
            add(done, done.line)
            continue
        nodes += 1
        if nodes > MAX_NODES:
            raise YamlProblem(f"has more than {MAX_NODES:,} values: a case file is much "
                              "smaller; split it, or check that this is the right file",
                              line)
        if isinstance(event, yaml.ScalarEvent):
            value = event.value
            if len(value) > MAX_SCALAR:
                raise YamlProblem(f"has a value longer than {MAX_SCALAR:,} characters",
                                  line)
            plain = event.style is None or event.style == ""
            add(None if plain and value in _NULLS else value, line)
        elif isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            if len(stack) >= MAX_DEPTH:
                raise YamlProblem(f"is nested more than {MAX_DEPTH} levels deep: a case "
                                  "file needs a handful", line)
            if stack and isinstance(stack[-1], YMap) and pending_key[-1] is None:
                raise YamlProblem("a key must be a plain word, not a list or a mapping",
                                  line)
            stack.append(YMap(line, bool(event.flow_style))
                         if isinstance(event, yaml.MappingStartEvent) else YSeq(line))
            pending_key.append(None)
    return out


__all__ = ["MAX_BYTES", "YMap", "YSeq", "YamlProblem", "decode", "documents", "read_text"]
