"""The report's statistics of a dataset: length and score histograms (kept vs dropped), the language
mix, drops by reason with examples, duplicate clusters, and the sample rows to browse."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import polars as pl

from curate.core import vocab
from curate.records import SCHEMA
from curate.stats import language_expr

SAMPLE_ROWS = 400
EXAMPLES_PER_REASON = 3
MAX_CLUSTERS = 25
BINS = 24
TEXT_LIMIT = 600


def _main_text(frame: pl.DataFrame) -> pl.Expr:
    if "question" in frame.columns and "text" in frame.columns:
        return pl.coalesce(pl.col("question"), pl.col("text"))
    return pl.col("question") if "question" in frame.columns else pl.col("text")


def _answer_text(frame: pl.DataFrame) -> pl.Expr:
    cols = [c for c in vocab.RESPONSE_FIELDS if c in frame.columns]
    return pl.coalesce([pl.col(c) for c in cols]) if cols else pl.lit(None, dtype=pl.Utf8)


def score_columns(frame: pl.DataFrame) -> list[str]:
    out = []
    for c, dt in frame.schema.items():
        if c in SCHEMA or c.startswith(("drop_", "dup_")) or c in ("label",):
            continue
        if dt.is_numeric() and frame[c].drop_nulls().len() > 0:
            out.append(c)
    return out


def _edges(values: list[pl.Series], log: bool = False) -> list[float] | None:
    vals = (
        pl.concat(
            [v.drop_nulls().drop_nans() if v.dtype.is_float() else v.drop_nulls() for v in values if v.len()]
        )
        if any(v.len() for v in values)
        else None
    )
    if vals is None or vals.len() == 0:
        return None
    lo, hi = float(vals.quantile(0.005, "nearest")), float(vals.quantile(0.995, "nearest"))
    if log:
        lo, hi = math.log10(max(lo, 1)), math.log10(max(hi, 1))
    if hi <= lo:
        hi = lo + 1
    step = (hi - lo) / BINS
    edges = [lo + i * step for i in range(BINS + 1)]
    return [10**e for e in edges] if log else edges


def histogram(series: dict[str, pl.Series], log: bool = False) -> dict[str, Any] | None:
    """Shared bins for several series (kept vs dropped); values outside the 0.5-99.5% range are
    counted in the first/last bin."""
    edges = _edges(list(series.values()), log)
    if edges is None:
        return None
    out: dict[str, Any] = {"edges": [round(e, 4) for e in edges], "log": log, "series": {}}
    for name, s in series.items():
        s = s.drop_nulls()
        if s.dtype.is_float():
            s = s.drop_nans()
        if s.len() == 0:
            continue
        arr = s.cast(pl.Float64).to_numpy()
        inner = np.asarray(edges[1:-1])
        idx = np.searchsorted(inner, arr, side="right")
        counts = np.bincount(idx, minlength=BINS)[:BINS]
        out["series"][name] = {
            "counts": counts.tolist(),
            "n": int(s.len()),
            "mean": round(float(arr.mean()), 4),
            "p50": round(float(np.median(arr)), 4),
        }
    return out


def languages(frame: pl.DataFrame) -> dict[str, int]:
    if frame.height == 0:
        return {}
    f = frame.with_columns(_main_text(frame).alias("_t"))
    vc = f.select(language_expr("_t").alias("lang"))["lang"].value_counts().sort("count", descending=True)
    return dict(zip(vc["lang"].to_list(), vc["count"].to_list(), strict=True))


def _clip(s: Any, n: int = TEXT_LIMIT) -> Any:
    if isinstance(s, str) and len(s) > n:
        return s[:n] + "…"
    return s


def _flags(v: Any) -> list[str]:
    if v is None:
        return []
    if isinstance(v, list):
        return [str(x) for x in v]
    if isinstance(v, str):
        try:
            x = json.loads(v)
            return [str(i) for i in x] if isinstance(x, list) else [v]
        except json.JSONDecodeError:
            return [v]
    return [str(v)]


def _row_view(r: dict[str, Any], status: str, scores: list[str], lang: str | None) -> dict[str, Any]:
    q = r.get("question") if r.get("question") is not None else r.get("text")
    a = r.get("answer")
    if a is None and r.get("chosen") is not None:
        a = f"[chosen] {r.get('chosen')}\n[rejected] {r.get('rejected')}"
    src = r.get("source") or {}
    where = src.get("file") or ""
    if src.get("sheet"):
        where += f"[{src['sheet']}]"
    if src.get("line") is not None:
        where += f":{src['line']}"
    return {
        "status": status,
        "stage": r.get("drop_stage"),
        "reason": r.get("drop_reason"),
        "detail": _clip(r.get("drop_detail"), 300),
        "id": r.get("id"),
        "kind": r.get("kind"),
        "lang": lang,
        "source": where,
        "question": _clip(q),
        "answer": _clip(a),
        "scores": {
            c: (
                None
                if r.get(c) is None or (isinstance(r.get(c), float) and math.isnan(r[c]))
                else round(float(r[c]), 4)
            )
            for c in scores
            if c in r
        },
        "flags": _flags(r.get("flags")),
    }


def _lang_col(frame: pl.DataFrame) -> list[str]:
    if frame.height == 0:
        return []
    return frame.with_columns(_main_text(frame).alias("_t")).select(language_expr("_t"))[:, 0].to_list()


def sample_rows(
    kept: pl.DataFrame, dropped: pl.DataFrame | None, scores: list[str], n: int = SAMPLE_ROWS
) -> list[dict]:
    """A browsable sample: kept rows and dropped rows (every reason represented), deterministic."""
    out = []
    n_drop = 0 if dropped is None else min(dropped.height, n // 2)
    n_kept = min(kept.height, n - n_drop)
    ks = kept.sample(n_kept, seed=0) if kept.height > n_kept else kept
    for r, lang in zip(ks.iter_rows(named=True), _lang_col(ks), strict=True):
        out.append(_row_view(r, "kept", scores, lang))
    if dropped is not None and n_drop:
        # round-robin over reasons so rare rules show up too
        parts = dropped.with_row_index("_i").with_columns(
            pl.col("_i").rank("ordinal").over("drop_reason").alias("_r")
        )
        ds = parts.sort(["_r", "_i"]).head(n_drop).drop("_i", "_r")
        for r, lang in zip(ds.iter_rows(named=True), _lang_col(ds), strict=True):
            out.append(_row_view(r, "dropped", scores, lang))
    return out


def drops_by_reason(dropped: pl.DataFrame | None) -> list[dict[str, Any]]:
    if dropped is None or dropped.height == 0:
        return []
    d = dropped.with_columns(
        pl.col("drop_stage").fill_null("?"),
        pl.col("drop_reason").fill_null("?"),
        _main_text(dropped).alias("_q"),
        _answer_text(dropped).alias("_a"),
    )
    g = (
        d.group_by("drop_stage", "drop_reason")
        .agg(pl.len().alias("n"))
        .sort(["n", "drop_stage", "drop_reason"], descending=[True, False, False])
    )
    out = []
    for st, rs, n in g.iter_rows():
        ex = d.filter((pl.col("drop_stage") == st) & (pl.col("drop_reason") == rs)).head(EXAMPLES_PER_REASON)
        out.append(
            {
                "stage": st,
                "reason": rs,
                "count": n,
                "examples": [
                    {
                        "id": r["id"],
                        "question": _clip(r["_q"], 240),
                        "answer": _clip(r["_a"], 240),
                        "detail": _clip(r.get("drop_detail"), 300),
                    }
                    for r in ex.iter_rows(named=True)
                ],
            }
        )
    return out


def clusters_from(
    dropped: pl.DataFrame | None,
    kept: pl.DataFrame,
    stored: list[dict] | None,
    pool: pl.DataFrame | None = None,
) -> list[dict[str, Any]]:
    """Duplicate clusters: from the dedup stage's own cluster list when the run kept it, else rebuilt
    from the dropped rows' ``dup_cluster``/``dup_of`` columns."""
    if stored:
        big = sorted(stored, key=lambda c: (-int(c.get("size", 0)), str(c.get("cluster"))))[:MAX_CLUSTERS]
        out = []
        for c in big:
            out.append(
                {
                    "cluster": c.get("cluster"),
                    "method": c.get("method"),
                    "size": c.get("size"),
                    "min_similarity": c.get("min_similarity"),
                    "members": [
                        {
                            "id": m.get("id"),
                            "source": m.get("source"),
                            "text": _clip(m.get("text"), 240),
                            "similarity": m.get("similarity"),
                            "kept": bool(m.get("kept")),
                        }
                        for m in (c.get("members") or [])[:8]
                    ],
                }
            )
        return out
    if dropped is None or "dup_of" not in dropped.columns or dropped.height == 0:
        return []
    d = dropped.filter(pl.col("dup_of").is_not_null()).with_columns(_main_text(dropped).alias("_q"))
    if d.height == 0:
        return []
    # a cluster is its survivor: cluster numbers restart in every batch (refresh versions)
    has_method = "dup_method" in d.columns
    g = (
        d.group_by("dup_of")
        .agg(
            pl.len().alias("n"),
            pl.first("dup_cluster").alias("cid"),
            (pl.first("dup_method") if has_method else pl.lit(None)).alias("m"),
            (pl.first("dup_of_source") if "dup_of_source" in d.columns else pl.lit(None)).alias("src"),
        )
        .sort(["n", "dup_of"], descending=[True, False])
        .head(MAX_CLUSTERS)
    )
    parts = [kept.select("id", _main_text(kept).alias("_q")), d.select("id", "_q")]
    if pool is not None and pool.height:
        parts.append(pool.select("id", _main_text(pool).alias("_q")))
    everything = pl.concat(parts, how="vertical_relaxed")
    text_of = dict(zip(everything["id"].to_list(), everything["_q"].to_list(), strict=False))
    out = []
    for of, n, cid, m, src in g.iter_rows():
        members = [
            {"id": of, "text": _clip(text_of.get(of), 240), "kept": True, "similarity": 1.0, "source": src}
        ]
        for r in d.filter(pl.col("dup_of") == of).head(7).iter_rows(named=True):
            members.append(
                {
                    "id": r["id"],
                    "text": _clip(r["_q"], 240),
                    "kept": False,
                    "similarity": r.get("dup_similarity"),
                }
            )
        out.append({"cluster": cid, "survivor": of, "method": m, "size": n + 1, "members": members})
    return out


def dataset_profile(kept: pl.DataFrame, dropped: pl.DataFrame | None) -> dict[str, Any]:
    scores = score_columns(kept) + [
        c for c in (score_columns(dropped) if dropped is not None else []) if c not in score_columns(kept)
    ]
    k = kept.with_columns(
        _main_text(kept).str.len_chars().alias("_ql"), _answer_text(kept).str.len_chars().alias("_al")
    )
    series_q = {"kept": k["_ql"]}
    series_a = {"kept": k["_al"]}
    if dropped is not None and dropped.height:
        dd = dropped.with_columns(
            _main_text(dropped).str.len_chars().alias("_ql"),
            _answer_text(dropped).str.len_chars().alias("_al"),
        )
        series_q["dropped"] = dd["_ql"]
        series_a["dropped"] = dd["_al"]
    hists = []
    h = histogram(series_q, log=True)
    if h:
        hists.append({"title": "Question length (characters, log scale)", **h})
    h = histogram(series_a, log=True)
    if h:
        hists.append({"title": "Answer length (characters, log scale)", **h})
    for c in scores:
        ser = {"kept": kept[c]} if c in kept.columns else {}
        if dropped is not None and c in dropped.columns:
            ser["dropped"] = dropped[c]
        h = histogram({n: s.cast(pl.Float64) for n, s in ser.items()})
        if h:
            hists.append({"title": f"Score: {c}", **h})
    return {
        "histograms": hists,
        "languages": {"kept": languages(kept), "dropped": languages(dropped) if dropped is not None else {}},
        "kinds": dict(kept["kind"].value_counts().sort("kind").rows()) if kept.height else {},
        "scores": scores,
    }
