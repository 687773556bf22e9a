"""Reading the files people bring in (CSV tables, the FDA NDC Directory) safely.

A file is checked before anything is taken from it and is read as a stream,
never whole: it must be a regular file of at most ``max_bytes``; it must be
text (no NUL bytes) in UTF-8 (with or without a byte-order mark) or, failing
that, Windows-1252; no line may be longer than ``max_line`` characters. So a
truncated download, a spreadsheet saved as .xlsx, /dev/zero or a 2 GB log file
gets one sentence saying what is wrong, quickly and in flat memory.
"""

from __future__ import annotations

import codecs
import dataclasses
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from .errors import ValidationError

CHUNK = 1 << 20
MAX_LINE = 100_000


@dataclasses.dataclass(frozen=True)
class TextFile:
    path: Path
    size: int
    encoding: str  # "utf-8-sig" or "cp1252"
    ends_with_newline: bool


def inspect(path: Path, *, max_bytes: int, what: str = "a text file") -> TextFile:
    """Check ``path`` (a regular, readable text file of at most ``max_bytes``) and
    find its encoding, in one streaming pass. ``what`` names the kind of file
    with its article ("a CSV file")."""
    path = Path(path)
    try:
        st = os.stat(path)
    except OSError as exc:
        raise ValidationError(f"{path} cannot be read: {exc.strerror}.") from None
    if not stat.S_ISREG(st.st_mode):
        raise ValidationError(f"{path} is not {what}: it is not a regular file.")
    if st.st_size > max_bytes:
        raise ValidationError(
            f"{path.name} is {_size(st.st_size)}; {what} may be at most {_size(max_bytes)}. "
            "Split it into smaller files.")
    utf8 = codecs.getincrementaldecoder("utf-8")()
    is_utf8 = True
    last = b""
    read = 0
    try:
        with open(path, "rb") as fh:
            while chunk := fh.read(CHUNK):
                read += len(chunk)
                if read > max_bytes:  # it grew while we read it
                    raise ValidationError(
                        f"{path.name} is larger than {_size(max_bytes)}; split it.")
                if b"\x00" in chunk:
                    raise ValidationError(
                        f"{path.name} is not {what}: it holds binary data (is it a "
                        "spreadsheet or a compressed file? Save or extract it as text).")
                if is_utf8:
                    try:
                        utf8.decode(chunk)
                    except UnicodeDecodeError:
                        is_utf8 = False
                last = chunk[-1:]
            if is_utf8:
                try:
                    utf8.decode(b"", final=True)
                except UnicodeDecodeError:
                    is_utf8 = False
    except OSError as exc:
        raise ValidationError(f"{path} cannot be read: {exc.strerror}.") from None
    if read == 0:
        raise ValidationError(f"{path.name} is empty.")
    return TextFile(path, read, "utf-8-sig" if is_utf8 else "cp1252", last in (b"\n", b"\r"))


def open_text(f: TextFile) -> TextIO:
    """The file as text (newlines kept as they are, for the csv module)."""
    try:
        return open(f.path, encoding=f.encoding, errors="replace", newline="")
    except OSError as exc:
        raise ValidationError(f"{f.path} cannot be read: {exc.strerror}.") from None


@dataclasses.dataclass(frozen=True)
class Line:
    number: int
    text: str  # without its line end
    terminated: bool  # False for a last line the file ends in the middle of
    too_long: bool = False  # longer than the limit: ``text`` is empty


def lines(fh: TextIO, *, max_line: int = MAX_LINE) -> Iterator[Line]:
    """Physical lines, each at most ``max_line`` characters read into memory; a
    longer one is skipped (up to its end) and reported as ``too_long``."""
    number = 0
    while True:
        piece = fh.readline(max_line + 1)
        if not piece:
            return
        number += 1
        if len(piece) > max_line and not piece.endswith(("\n", "\r")):
            while piece and not piece.endswith(("\n", "\r")):  # skip the rest of it
                piece = fh.readline(CHUNK)
            yield Line(number, "", True, too_long=True)
            continue
        terminated = piece.endswith(("\n", "\r"))
        yield Line(number, piece.rstrip("\r\n"), terminated)


def limited(fh: TextIO, name: str, *, max_line: int = MAX_LINE) -> Iterator[str]:
    """The file's lines with their line ends (what ``csv.reader`` takes); a line
    longer than ``max_line`` refuses the file."""
    for line in lines(fh, max_line=max_line):
        if line.too_long:
            raise ValidationError(
                f"{name}, line {line.number}: the line is longer than {max_line:,} characters. "
                "This does not look like a table; check that it is the right file.")
        yield line.text + ("\n" if line.terminated else "")


def _size(n: int) -> str:
    if n >= 1 << 30:
        return f"{n / (1 << 30):.1f} GB"
    if n >= 1 << 20:
        return f"{n / (1 << 20):.0f} MB"
    return f"{n / 1024:.0f} KB"
