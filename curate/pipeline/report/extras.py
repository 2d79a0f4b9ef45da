"""Report sections that answer "where did my rows go" beyond the stage funnel: a funnel per input
file, the cut-off values of the select thresholds (drawn on the score histograms), the train/eval split,
the rule that dropped most (and how to turn it off), and which scores came from the shipped demo
models."""

from __future__ import annotations

import re
from typing import Any

import polars as pl

from curate.augment.common import eval_mask
from curate.score.demo import demo_columns
from curate.select import PAPER_DEFAULTS

# the option that turns off a drop reason, by stage: (command line, recipe); duplicates have none
_DISABLE = {
    "filter": ("curate filter --disable {rule}", "disable: [{rule}] under the filter stage"),
    "select": (
        "curate select --no-defaults (paper defaults) or other thresholds",
        "defaults: false / where: of select",
    ),
}


def _file_of(frame: pl.DataFrame | None) -> pl.Series | None:
    if frame is None or frame.height == 0 or "source" not in frame.columns:
        return None
    col = frame["source"]
    if isinstance(col.dtype, pl.Struct):
        return col.struct.field("file").fill_null("(no file)")
    return col.cast(pl.Utf8).fill_null("(no file)")


def source_funnel(
    kept: pl.DataFrame, dropped: pl.DataFrame | None, rejects: pl.DataFrame | None
) -> list[dict[str, Any]]:
    """One row per input file: rows read from it, rejected (unreadable), dropped by each stage, kept.
    Rows a stage added (augment variants) count under the file of their origin row."""
    per: dict[str, dict[str, Any]] = {}

    def entry(f: str) -> dict[str, Any]:
        return per.setdefault(
            f, {"file": f, "input": 0, "rejected": 0, "kept": 0, "dropped": 0, "by_stage": {}}
        )

    files = _file_of(kept)
    if files is not None:
        for f, n in files.value_counts().rows():
            entry(f)["kept"] += n
    files = _file_of(dropped)
    if files is not None:
        stages = (
            dropped["drop_stage"].fill_null("?")
            if "drop_stage" in dropped.columns
            else pl.Series(["?"] * dropped.height)
        )
        counts = pl.DataFrame({"f": files, "s": stages}).group_by("f", "s").len().rows()
        for f, s, n in counts:
            e = entry(f)
            e["dropped"] += n
            e["by_stage"][s] = e["by_stage"].get(s, 0) + n
    if rejects is not None and rejects.height and "file" in rejects.columns:
        for f, n in rejects["file"].cast(pl.Utf8).fill_null("(no file)").value_counts().rows():
            entry(f)["rejected"] += n
    for e in per.values():
        e["input"] = e["kept"] + e["dropped"] + e["rejected"]
    return sorted(per.values(), key=lambda e: (-e["input"], e["file"]))


def split_counts(kept: pl.DataFrame) -> dict[str, int] | None:
    """Train and eval rows of the kept set (``split`` column / held-out meta), None when no split."""
    if kept.height == 0:
        return None
    ev = int(eval_mask(kept).sum())
    if ev == 0 and "split" not in kept.columns:
        return None
    return {"train": kept.height - ev, "eval": ev}


_CMP = re.compile(r"^\s*([A-Za-z_][\w.]*)\s*(<=|>=|<|>|==|=)\s*(-?[\d.eE+-]+)\s*$")


def cutoffs(stages: list[dict[str, Any]] | None) -> dict[str, list[dict[str, Any]]]:
    """Threshold values of the select stages, by score column (drawn as lines on the histograms)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for st in stages or []:
        if st.get("stage") != "select":
            continue
        cfg, stats = st.get("config") or {}, st.get("stats") or {}

        def add(col: str, value: float, label: str) -> None:
            out.setdefault(col, []).append({"value": float(value), "label": label})

        ignored = set(stats.get("demo_scores_ignored") or [])
        if cfg.get("defaults", True) and "ifd" not in ignored:
            for col, op, val, _ in PAPER_DEFAULTS:
                add(col, val, f"select default: keep {col} {op} {val}")
        for expr in cfg.get("where") or ():
            for part in re.split(r"\s+and\s+|\s*&&\s*|\s*,\s*", str(expr)):
                m = _CMP.match(part)
                if m:
                    try:
                        add(m.group(1), float(m.group(3)), f"select: keep {part.strip()}")
                    except ValueError:
                        pass
        for what, op in (("min", ">="), ("max", "<=")):
            for item in cfg.get(what) or ():
                col, _, v = str(item).partition("=")
                try:
                    add(col.strip(), float(v), f"select: keep {col.strip()} {op} {v}")
                except ValueError:
                    pass
        for label in stats.get("thresholds") or {}:  # quantile cuts: their value is in the label
            m = re.match(r"^(min|max) quantile (\S+)=\S+ \(([-\d.eE+]+)\)$", label)
            if m:
                add(m.group(2), float(m.group(3)), f"select: {label}")
    return out


def top_drop(drops: list[dict[str, Any]], total_in: int) -> dict[str, Any] | None:
    """The reason that dropped most rows, with how to turn it off."""
    if not drops:
        return None
    d = max(drops, key=lambda x: x.get("count", 0))
    stage, reason = d.get("stage") or "", d.get("reason") or ""
    rule = reason if stage == "filter" else None
    cli, recipe = _DISABLE.get(stage, (None, None))
    out: dict[str, Any] = {
        "stage": stage,
        "reason": reason,
        "count": int(d.get("count", 0)),
        "share": round(d.get("count", 0) / total_in, 4) if total_in else None,
    }
    if cli:
        out["disable"] = cli.format(rule=rule or reason)
        out["disable_recipe"] = recipe.format(rule=rule or reason)
    return out


def top_drop_line(manifest: dict[str, Any]) -> str | None:
    """One line for the end of `curate run`: the reason that dropped most rows and how to turn it off."""
    drops = [
        {"stage": st.get("stage"), "reason": reason, "count": n}
        for st in manifest.get("stages") or []
        for reason, n in (st.get("dropped_by_reason") or {}).items()
    ]
    top = top_drop(drops, (manifest.get("rows") or {}).get("input", 0))
    if top is None:
        return None
    share = f" ({100 * top['share']:.1f}% of the input)" if top.get("share") is not None else ""
    line = f"most drops: {top['stage']} · {top['reason']}: {top['count']:,}{share}"
    return line + (f"; to keep them: {top['disable']}" if top.get("disable") else "")


def demo_scores(kept: pl.DataFrame, dropped: pl.DataFrame | None) -> list[str]:
    """Score columns whose values came from the shipped demo models (curate.score.demo)."""
    cols = demo_columns(kept)
    if dropped is not None:
        cols |= demo_columns(dropped)
    return sorted(c for c in cols if c in kept.columns or (dropped is not None and c in dropped.columns))


def payload(
    kept: pl.DataFrame,
    dropped: pl.DataFrame | None,
    rejects: pl.DataFrame | None,
    drops: list[dict[str, Any]],
    total_in: int,
    stages: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    return {
        "sources": source_funnel(kept, dropped, rejects),
        "split": split_counts(kept),
        "cutoffs": cutoffs(stages),
        "top_drop": top_drop(drops, total_in),
        "demo_scores": demo_scores(kept, dropped),
    }
