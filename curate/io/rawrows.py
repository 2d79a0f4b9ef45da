"""What every raw reader yields: ``RawRow(values, line, sheet)`` for a parsed row, ``RawReject`` for one
that could not be parsed, and ``ReadInfo`` about the file; plus the text a reject's ``raw`` may hold."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass
class RawRow:
    values: dict[str, Any]
    line: int
    sheet: str | None = None


@dataclass
class RawReject:
    line: int | None
    reason: str
    raw: str | None = None
    field: str | None = None
    sheet: str | None = None


@dataclass
class ReadInfo:
    kind: str  # jsonl, json, csv, tsv, xlsx, parquet, txt
    encoding: str | None = None
    compression: str | None = None
    truncated: bool = False
    notes: list[str] | None = None
    # JSONL: the file's lines, so a row rejected after parsing keeps its exact source text as ``raw``;
    # a line that parsed is None there when ``reread`` can give the lines again (see read_jsonl)
    lines: list[str | None] | None = None
    reread: Callable[[], list[str]] | None = None
    # JSON: the parse error of a damaged document whose complete items were salvaged
    parse_error: str | None = None
    # the encoding was a statistical guess: {encoding, confidence, alternatives}
    encoding_guess: dict | None = None


TOO_DEEP = "nested deeper than the JSON reader allows (about 1,000 levels)"


def safe_json(value: Any) -> str:
    """``value`` as JSON text for a reject's ``raw``, whatever it holds: too deep a nesting or a lone
    surrogate must not turn one rejected row into a failed file."""
    try:
        text = json.dumps(value, ensure_ascii=False, default=str)
    except (RecursionError, ValueError):
        return "<a value nested too deeply to show>"
    return encodable(text)


def encodable(text: str) -> str:
    """Text that UTF-8 can hold: lone surrogates (from ``\\ud800`` escapes) written as escapes."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text
