"""Step 1: every threshold (paper defaults, ``where``, ``min``/``max``, quantiles) as a condition,
and the rows each one drops, with the reason."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import polars as pl

from curate.core.coerce import OptionError
from curate.score.demo import demo_columns
from curate.select.conditions import Condition, column_values, parse_assign, parse_where
from curate.select.config import PAPER_DEFAULTS, SelectConfig


def threshold_conditions(frame: pl.DataFrame, config: SelectConfig) -> list[tuple[Condition, str]]:
    """Every threshold as (condition, label for the drop reason); quantiles become values here."""
    conds: list[tuple[Condition, str]] = []
    if config.defaults:
        demo = set() if config.allow_demo_scores else demo_columns(frame)
        for col, op, val, why in PAPER_DEFAULTS:
            if col in frame.columns and col not in demo:
                # only rows with a value are judged: plain text and unscored rows have no IFD
                cond = Condition(col, op, val, f"{col} {op} {val}", missing="keep")
                conds.append((cond, f"paper default: {why}"))
    for expr in config.where:
        for c in parse_where(expr):
            conds.append((c, f"where {c.text}"))
    for item in config.min:
        col, v = parse_assign(item)
        conds.append((Condition(col, ">=", v, f"{col} >= {v}"), f"min {col}={v}"))
    for item in config.max:
        col, v = parse_assign(item)
        conds.append((Condition(col, "<=", v, f"{col} <= {v}"), f"max {col}={v}"))
    for what, op in (("min_quantile", ">="), ("max_quantile", "<=")):
        for item in getattr(config, what):
            col, q = parse_assign(item)
            vals = np.array(
                [v for v in column_values(frame, col) if isinstance(v, int | float) and not math.isnan(v)],
                dtype=np.float64,
            )
            if not len(vals):
                raise OptionError(what, f"{item}: column {col!r} has no numeric values")
            cut = float(np.quantile(vals, q))
            conds.append(
                (
                    Condition(col, op, cut, f"{col} {op} {cut:.6g}"),
                    f"{what.replace('_', ' ')} {col}={q} ({cut:.6g})",
                )
            )
    return conds


def apply_thresholds(
    frame: pl.DataFrame, config: SelectConfig, stats: dict[str, Any]
) -> tuple[np.ndarray, list[str | None], list[Any]]:
    """-> (alive mask, drop reason per row, drop detail per row); fills ``stats["thresholds"]`` (rows
    each threshold dropped) and ``stats["after_thresholds"]``. A row is judged by the first threshold
    it fails only."""
    n = frame.height
    alive = np.ones(n, dtype=bool)
    reason: list[str | None] = [None] * n
    detail: list[Any] = [None] * n
    thr_stats: dict[str, int] = {}
    for cond, label in threshold_conditions(frame, config) if n else []:
        passes, missing = cond.mask(frame)
        if (cond.missing or config.missing) == "keep":
            passes = passes | missing
        fail = alive & ~passes
        for i in np.flatnonzero(fail):
            if missing[i]:
                reason[i] = f"select: no {cond.column} value"
                detail[i] = {"condition": cond.text}
            else:
                reason[i] = f"select: {label}"
                detail[i] = {"condition": cond.text, "value": column_values(frame[int(i)], cond.column)[0]}
        thr_stats[label] = int(fail.sum())
        alive &= ~fail
    stats["thresholds"] = thr_stats
    stats["after_thresholds"] = int(alive.sum())
    return alive, reason, detail
