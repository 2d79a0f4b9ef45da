"""Threshold conditions: ``--where`` expressions (``"ifd < 1 and reward >= 0.2"``, ``col is [not]
null``), ``--min``/``--max`` assignments, and column values read from a column, ``source`` or
``meta.KEY``."""

from __future__ import annotations

import json
import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from curate.core.errors import UsageError

OPS: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "=": operator.eq,
    "!=": operator.ne,
}
_COND = re.compile(r"^\s*([A-Za-z_][\w.]*)\s*(<=|>=|==|!=|<|>|=)\s*([^<>=!\s].*?)\s*$")
_NULL = re.compile(r"^\s*([A-Za-z_][\w.]*)\s+is\s+(not\s+)?null\s*$", re.IGNORECASE)


class SelectError(UsageError):
    """A condition or setting of select that cannot be used (a user error: exit 2)."""


@dataclass
class Condition:
    column: str
    op: str
    value: Any
    text: str
    # overrides the run's ``missing`` policy for this condition ("keep" or "drop"); None: the run's
    missing: str | None = None

    def mask(self, frame: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """(passes, missing) as boolean arrays."""
        values = column_values(frame, self.column)
        if self.op in ("is null", "is not null"):
            missing = np.array([v is None for v in values], dtype=bool)
            return (missing if self.op == "is null" else ~missing), np.zeros(len(values), dtype=bool)
        fn = OPS[self.op]
        passes = np.zeros(len(values), dtype=bool)
        missing = np.zeros(len(values), dtype=bool)
        for i, v in enumerate(values):
            if v is None or (isinstance(v, float) and math.isnan(v)):
                missing[i] = True
                continue
            try:
                passes[i] = bool(fn(v, self.value))
            except TypeError:
                passes[i] = bool(fn(str(v), str(self.value)))
        return passes, missing


def column_values(frame: pl.DataFrame, column: str) -> list[Any]:
    """A column, ``source`` (the file), or ``meta.KEY`` (a key of the meta JSON) as Python values."""
    if column in frame.columns:
        col = frame[column]
        if column == "source" and isinstance(col.dtype, pl.Struct):
            return col.struct.field("file").to_list()
        return col.to_list()
    key = column[5:] if column.startswith("meta.") else column
    metas = frame["meta"].to_list() if "meta" in frame.columns else []
    # a bare name falls back to a meta key (a raw file's "reward" field lands in meta when read)
    if column.startswith("meta.") or any(m and f'"{key}":' in m for m in metas):
        out = []
        for m in metas or [None] * frame.height:
            try:
                d = json.loads(m) if m else {}
            except json.JSONDecodeError:
                d = {}
            v = d.get(key) if isinstance(d, dict) else None
            out.append(v if not isinstance(v, dict | list) else json.dumps(v, ensure_ascii=False))
        return out
    raise SelectError(
        f"no column {column!r} in the data and no such key in meta (columns: {', '.join(frame.columns)})"
    )


def _literal(text: str) -> Any:
    t = text.strip()
    if len(t) >= 2 and t[0] == t[-1] and t[0] in "'\"":
        return t[1:-1]
    if t.lower() in ("true", "false"):
        return t.lower() == "true"
    try:
        return int(t)
    except ValueError:
        pass
    try:
        return float(t)
    except ValueError:
        return t


def parse_where(expr: str) -> list[Condition]:
    """``"ifd < 1 and reward >= 0.2"`` -> conditions (all must hold). Also ``col is [not] null``."""
    conds = []
    for part in re.split(r"\s+and\s+|\s*&&\s*|\s*,\s*", expr.strip(), flags=re.IGNORECASE):
        if not part:
            continue
        m = _NULL.match(part)
        if m:
            conds.append(
                Condition(m.group(1), "is not null" if m.group(2) else "is null", None, part.strip())
            )
            continue
        m = _COND.match(part)
        if not m:
            raise SelectError(
                f"{expr!r}: cannot read {part!r}; write COLUMN OP VALUE with OP one of "
                "< <= > >= == != (several joined by 'and'), or COLUMN is [not] null"
            )
        col, op, val = m.groups()
        conds.append(Condition(col, "==" if op == "=" else op, _literal(val), part.strip()))
    if not conds:
        raise SelectError(f"{expr!r}: empty expression")
    return conds


def parse_assign(item: str) -> tuple[str, float]:
    """``"reward=0.5"`` -> ("reward", 0.5) (the settings min, max and their quantiles)."""
    if "=" not in item:
        raise SelectError(f"{item!r}: expected COLUMN=VALUE")
    col, val = item.split("=", 1)
    try:
        return col.strip(), float(val)
    except ValueError:
        raise SelectError(f"{item!r}: {val!r} is not a number") from None
