"""What a load returns (:class:`LoadResult`) and the rows it rejects, with their file, line, field,
reason and exact source text: ``input_rows == frame.height + rejects.height`` always holds."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import polars as pl

from curate.io.rawrows import TOO_DEEP, RawRow, ReadInfo, encodable, safe_json

REJECT_SCHEMA = {
    "file": pl.Utf8,
    "line": pl.Int64,
    "sheet": pl.Utf8,
    "field": pl.Utf8,
    "reason": pl.Utf8,
    "raw": pl.Utf8,
}


@dataclass
class LoadResult:
    frame: pl.DataFrame
    rejects: pl.DataFrame
    explanations: list[str] = field(default_factory=list)
    input_rows: int = 0
    repaired: int = 0
    files: list[dict[str, Any]] = field(default_factory=list)
    # files whose encoding was a statistical guess (announced on stderr, counted in the summary)
    encoding_guessed: int = 0


def raw_json(values: dict) -> str:
    """The whole input row as JSON (never cut: a rejected row can be rebuilt from its reject)."""
    return safe_json({k: v for k, v in values.items() if k != "__images__"})


def raw_text(row: RawRow, info: ReadInfo) -> str:
    """A JSONL row's own line, exactly as it was read; other rows as JSON."""
    if info.lines is not None and row.line and 0 < row.line <= len(info.lines):
        line = info.lines[row.line - 1]
        if line is None and info.reread is not None:  # released once parsed: read the file again
            info.lines = info.reread()
            info.reread = None
            line = info.lines[row.line - 1]
        if line is not None:
            return line
    return raw_json(row.values)


def reject(path, line, sheet, field, reason, raw) -> dict[str, Any]:
    """One reject row (``raw`` made writable: lone surrogates escaped)."""
    raw = encodable(raw) if raw is not None else None
    return {"file": str(path), "line": line, "sheet": sheet, "field": field, "reason": reason, "raw": raw}


def rejects_frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=REJECT_SCHEMA) if rows else pl.DataFrame(schema=REJECT_SCHEMA)


def row_error(exc: BaseException) -> str:
    """The reason for a row whose conversion raised something other than a RecordError."""
    if isinstance(exc, RecursionError):
        return TOO_DEEP
    if isinstance(exc, UnicodeEncodeError) and "surrogate" in str(exc):
        bad = exc.object[exc.start] if isinstance(exc.object, str) else "?"
        return f"lone surrogate U+{ord(bad):04X} (an unpaired \\u{ord(bad):04x} escape): not valid Unicode"
    return f"cannot read this row ({type(exc).__name__}: {exc})"
