"""I/O failures that name their file.

A full disk or a file-size limit surfaces from the writer libraries without a path: polars raises
``OSError('No space left on device (os error 28)')`` or ``ComputeError('parquet: ... underlying IO error:
...')``, pyarrow ``... 11445 requested and 9184 written``, xlsxwriter ``FileCreateError(OSError(...))``.
The CLI then says ``error: No space left on device`` and the user cannot tell which file. :func:`named`
turns such an exception into an ``OSError`` whose ``filename`` is the file being written (exit 2 with
``error: <file>: No space left on device``); anything that is not an I/O failure is left alone.
"""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_OS_ERROR = re.compile(r"\(os error (\d+)\)|\[Errno (\d+)\]")
_IO_WORDS = re.compile(r"os error \d+|IO error|I/O error|requested and \d+ written|No space left", re.I)


def named(exc: BaseException, path: Path | str) -> OSError | None:
    """An OSError naming ``path`` for an I/O failure that names no file (None: leave ``exc`` alone)."""
    if not isinstance(exc, Exception):
        return None  # KeyboardInterrupt, SystemExit: never re-labelled
    if isinstance(exc, OSError):
        if exc.filename is not None:
            return None
        code = exc.errno
        reason = exc.strerror or _OS_ERROR.sub("", str(exc)).strip() or type(exc).__name__
    else:
        inner = next((a for a in exc.args if isinstance(a, OSError)), None) or (
            exc.__cause__ if isinstance(exc.__cause__, OSError) else None
        )
        text = str(exc)
        if inner is None and not _IO_WORDS.search(text):
            return None
        code = getattr(inner, "errno", None)
        reason = getattr(inner, "strerror", None) or _OS_ERROR.sub("", text).strip()
    if code is None:
        m = _OS_ERROR.search(str(exc))
        code = int(m.group(1) or m.group(2)) if m else errno.EIO
    if reason and code and reason.rstrip(". ") == os.strerror(code):
        reason = os.strerror(code)
    return OSError(code, reason or os.strerror(code), str(path))


@contextmanager
def writing(path: Path | str) -> Iterator[None]:
    """Re-raise an I/O failure inside the block as an OSError naming ``path``."""
    try:
        yield
    except Exception as exc:
        better = named(exc, path)
        if better is None:
            raise
        raise better from exc
