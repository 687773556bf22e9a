"""Writing a file the user asked for (an export, a report) so that a failure
never leaves half a file behind and always says what went wrong in words."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

from .errors import ValidationError


@contextlib.contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; when the block ends without an
    error it becomes ``path``. Otherwise the temporary file is removed (as far
    as the file system lets us) and an OSError becomes a ValidationError."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.part")
    try:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            yield tmp
            os.replace(tmp, path)
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ValidationError(f"{path} cannot be written: {reason}.") from None
