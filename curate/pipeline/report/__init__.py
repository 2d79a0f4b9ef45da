"""The HTML report: one self-contained file (inline CSS, JS and SVG charts; no network) showing the
funnel of rows through the stages, drops by rule with examples, duplicate clusters, length and score
histograms (kept vs dropped), the language mix, before/after between dataset versions, and a table to
browse sample rows with their scores and flags.

``write_report(target, out)`` accepts a run manifest, a run directory, a work directory (its latest
successful run), a recipe file, a refresh state directory (its current version and the versions
before it), or a curated data file (with its ``.dropped.jsonl`` side file, if present).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import polars as pl

from curate.records import SCHEMA

SAMPLE_ROWS = 400
EXAMPLES_PER_REASON = 3
MAX_CLUSTERS = 25
BINS = 24
TEXT_LIMIT = 600


class ReportError(ValueError):
    pass


# ----------------------------------------------------------------------------------------------------
# statistics


def _main_text(frame: pl.DataFrame) -> pl.Expr:
    if "question" in frame.columns and "text" in frame.columns:
        return pl.coalesce(pl.col("question"), pl.col("text"))
    return pl.col("question") if "question" in frame.columns else pl.col("text")


def _answer_text(frame: pl.DataFrame) -> pl.Expr:
    cols = [c for c in ("answer", "chosen", "text") if c in frame.columns]
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
        import numpy as np

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
    from curate.stats import language_expr

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
    from curate.stats import language_expr

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


# ----------------------------------------------------------------------------------------------------
# sources


def _concat(frames: list[pl.DataFrame]) -> pl.DataFrame | None:
    frames = [f for f in frames if f is not None and f.height]
    if not frames:
        return None
    return pl.concat(frames, how="diagonal_relaxed")


def from_manifest(path: Path) -> dict[str, Any]:
    m = json.loads(path.read_text(encoding="utf-8"))
    stages = m.get("stages") or []
    kept = None
    data_out = (m.get("outputs") or {}).get("data", {}).get("path")
    if stages:
        last = Path(stages[-1]["cache_entry"]) / "kept.parquet"
        if last.is_file():
            kept = pl.read_parquet(last)
    if kept is None and data_out and Path(data_out).is_file():
        from curate.io import read_frame

        kept = read_frame(data_out)
    if kept is None:
        raise ReportError(f"{path}: the run's data is gone (neither its cache entry nor {data_out} exists)")
    dropped_parts, stored_clusters = [], []
    for s in stages:
        e = Path(s["cache_entry"])
        if (e / "dropped.parquet").is_file():
            dropped_parts.append(pl.read_parquet(e / "dropped.parquet"))
        if (e / "clusters.json").is_file():
            stored_clusters += json.loads((e / "clusters.json").read_text(encoding="utf-8"))
    rejects = None
    if stages and (Path(stages[0]["cache_entry"]) / "rejects.parquet").is_file():
        rejects = pl.read_parquet(Path(stages[0]["cache_entry"]) / "rejects.parquet")
    funnel = [
        {
            "stage": s["id"],
            "in": s.get("in") or 0,
            "kept": s.get("kept") or 0,
            "dropped": s.get("dropped") or 0,
            "rejected": s.get("rejected") or 0,
            "added": s.get("added") or 0,
            "seconds": s.get("compute_seconds"),
            "cached": s.get("cached"),
        }
        for s in stages
    ]
    # ingest: "in" counts raw rows, "kept" the readable ones
    info = {
        "kind": "run",
        "title": f"{m.get('name')} — run {m.get('run_id')}",
        "source": str(path),
        "meta": {
            "recipe": m.get("recipe"),
            "run": m.get("run_id"),
            "started": m.get("started"),
            "seconds": m.get("seconds"),
            "status": m.get("status"),
            "tamis": m.get("tamis"),
            "inputs": ", ".join(
                f"{i['path']} ({i.get('rows', '?')} rows, sha256 {i['sha256'][:12]}…)"
                for i in m.get("inputs", [])
            ),
            "models": ", ".join(f"{x['model']} ({x['fingerprint']})" for x in m.get("models", [])) or "none",
        },
    }
    return _assemble(
        info, kept, _concat(dropped_parts), rejects, funnel, stored_clusters, versions=None, stages=stages
    )


def from_state(state: Path, current: dict[str, Any] | None = None) -> dict[str, Any]:
    """The report of the committed version, or of ``current``, the CURRENT record a refresh is about
    to commit (it writes the report of the new version before the commit)."""
    from curate.pipeline.refresh import list_versions, read_current, version_dir

    cur = read_current(state) if current is None else current
    if cur is None:
        raise ReportError(f"{state}: no committed dataset version yet (run `curate refresh`)")
    n = cur["version"]
    kept = pl.read_parquet(version_dir(state, n) / "data.parquet")
    dropped_parts, rejects_parts = [], []
    for i in range(1, n + 1):
        d = version_dir(state, i)
        if (d / "dropped.parquet").is_file():
            dropped_parts.append(pl.read_parquet(d / "dropped.parquet"))
        if (d / "rejects.parquet").is_file():
            rejects_parts.append(pl.read_parquet(d / "rejects.parquet"))
    cur_dir = version_dir(state, n)
    if (cur_dir / "tail_dropped.parquet").is_file():
        dropped_parts.append(pl.read_parquet(cur_dir / "tail_dropped.parquet"))
    logs = list_versions(state, upto=n)
    # funnel over every version: the incremental stages summed, the whole-set stages of the latest
    funnel_map: dict[str, dict[str, Any]] = {}
    order: list[str] = []
    for lg in logs:
        for s in lg.get("stages", []):
            if s.get("part") == "whole set":
                if s["id"] not in order:
                    order.append(s["id"])
                continue
            sid = s["id"]
            if sid not in funnel_map:
                funnel_map[sid] = {
                    "stage": sid,
                    "in": 0,
                    "kept": 0,
                    "dropped": 0,
                    "rejected": 0,
                    "added": 0,
                    "seconds": 0.0,
                }
                order.append(sid)
            f = funnel_map[sid]
            for k in ("in", "kept", "dropped", "rejected", "added"):
                f[k] += s.get(k) or 0
            f["seconds"] = round(f["seconds"] + (s.get("seconds") or 0), 3)
    latest = logs[-1] if logs else {}
    for s in latest.get("stages", []):  # whole-set stages: this version's numbers only
        if s.get("part") == "whole set":
            funnel_map[s["id"]] = {
                "stage": s["id"],
                **{k: s.get(k) or 0 for k in ("in", "kept", "dropped", "rejected", "added")},
                "seconds": s.get("seconds"),
            }
    versions_view = []
    prev_frame = None
    for lg in logs:
        versions_view.append(
            {
                "version": lg["version"],
                "created": lg.get("created"),
                "rows": lg.get("rows"),
                "new_rows": lg.get("new_rows"),
                "added": lg["added"]["count"],
                "removed": lg["removed"]["count"],
                "changed": lg["changed"]["count"],
                "new_dropped": lg["new_rows_dropped"]["count"],
                "added_why": lg["added"]["why"],
                "removed_why": lg["removed"]["why"],
                "dropped_why": lg["new_rows_dropped"]["why"],
                "removed_sample": lg["removed"]["sample"][:5],
                "added_sample": lg["added"]["sample"][:5],
            }
        )
    compare = None
    if n >= 2:
        prev_frame = pl.read_parquet(version_dir(state, n - 1) / "data.parquet")
        compare = compare_versions(prev_frame, kept, f"v{n - 1:06d}", f"v{n:06d}")
    info = {
        "kind": "state",
        "title": f"dataset versions in {state.name} — current v{n:06d}",
        "source": str(state),
        "meta": {
            "state": str(state),
            "current": f"v{n:06d}",
            "committed": cur.get("committed"),
            "versions": n,
            "recipe": (logs[-1].get("recipe") if logs else None),
        },
    }
    payload = _assemble(
        info,
        kept,
        _concat(dropped_parts),
        _concat(rejects_parts),
        [funnel_map[s] for s in order if s in funnel_map],
        None,
        versions=versions_view,
        pool=_concat(
            [
                pl.read_parquet(version_dir(state, i) / "delta.parquet")
                for i in range(1, n + 1)
                if (version_dir(state, i) / "delta.parquet").is_file()
            ]
        ),
    )
    payload["compare"] = compare
    return payload


def compare_versions(before: pl.DataFrame, after: pl.DataFrame, a: str, b: str) -> dict[str, Any]:
    scores = [c for c in score_columns(after) if c in before.columns]
    qa = {
        a: before.select(_main_text(before).str.len_chars())[:, 0],
        b: after.select(_main_text(after).str.len_chars())[:, 0],
    }
    an = {
        a: before.select(_answer_text(before).str.len_chars())[:, 0],
        b: after.select(_answer_text(after).str.len_chars())[:, 0],
    }
    hists = []
    for title, ser, log in (
        ("Question length (characters, log scale)", qa, True),
        ("Answer length (characters, log scale)", an, True),
    ):
        h = histogram(ser, log=log)
        if h:
            hists.append({"title": title, **h})
    for c in scores:
        h = histogram({a: before[c].cast(pl.Float64), b: after[c].cast(pl.Float64)})
        if h:
            hists.append({"title": f"Score: {c}", **h})
    return {
        "before": a,
        "after": b,
        "rows": {a: before.height, b: after.height},
        "languages": {a: languages(before), b: languages(after)},
        "histograms": hists,
    }


def from_data(path: Path) -> dict[str, Any]:
    from curate.core.vocab import side_path
    from curate.io import load

    res = load([path])
    kept = res.frame
    dropped = None
    side = side_path(path, "dropped")
    if side.is_file():
        from curate.io.load import read_jsonl_frame

        dropped = read_jsonl_frame(side)  # meta is a JSON object in curate's JSONL outputs
    n_drop = 0 if dropped is None else dropped.height
    rejects = res.rejects
    side_rej = side_path(path, "rejects")
    if side_rej.is_file():  # rows the command that wrote this file could not read
        try:
            rejects = pl.concat([rejects, pl.read_ndjson(side_rej)], how="diagonal_relaxed")
        except Exception:
            pass
    n_rej = rejects.height
    total = kept.height + n_drop + n_rej
    funnel = [
        {"stage": "input", "in": total, "kept": total - n_rej, "dropped": 0, "rejected": n_rej, "added": 0}
    ]
    if dropped is not None:
        cur = total - n_rej
        stages = dropped["drop_stage"].fill_null("?").unique(maintain_order=True).to_list()
        for st in stages:
            k = int((dropped["drop_stage"] == st).sum())
            funnel.append({"stage": st, "in": cur, "kept": cur - k, "dropped": k, "rejected": 0, "added": 0})
            cur -= k
    info = {
        "kind": "data",
        "title": f"{path.name}",
        "source": str(path),
        "meta": {
            "file": str(path),
            "rows": kept.height,
            "dropped file": str(side) if dropped is not None else "none",
        },
    }
    return _assemble(info, kept, dropped, rejects if rejects.height else None, funnel, None, versions=None)


def _assemble(
    info, kept, dropped, rejects, funnel, stored_clusters, versions, pool=None, stages=None
) -> dict[str, Any]:
    from curate.pipeline.report import extras

    prof = dataset_profile(kept, dropped)
    n_in = funnel[0]["in"] if funnel else kept.height
    drops = drops_by_reason(dropped)
    more = extras.payload(kept, dropped, rejects, drops, n_in, stages)
    for h in prof["histograms"]:  # the select thresholds, drawn as lines on their score's histogram
        col = h["title"].removeprefix("Score: ") if h["title"].startswith("Score: ") else None
        if col in more["cutoffs"]:
            h["cutoffs"] = more["cutoffs"][col]
    return {
        **more,
        **info,
        "summary": {
            "input": n_in,
            "rejected": rejects.height if rejects is not None else 0,
            "kept": kept.height,
            "dropped": 0 if dropped is None else dropped.height,
            "added": sum(f.get("added") or 0 for f in funnel),
        },
        "funnel": funnel,
        "drops": drops,
        "rejects": []
        if rejects is None
        else [
            {"file": r.get("file"), "line": r.get("line"), "field": r.get("field"), "reason": r.get("reason")}
            for r in rejects.head(50).iter_rows(named=True)
        ],
        "clusters": clusters_from(dropped, kept, stored_clusters, pool),
        "profile": prof,
        "rows": sample_rows(kept, dropped, prof["scores"]),
        "versions": versions,
    }


def build_payload(target: Path | str) -> dict[str, Any]:
    from curate.pipeline.run import find_manifest

    target = Path(target)
    if not target.exists():
        raise ReportError(f"{target}: not found")
    if target.is_dir():
        if (target / "CURRENT").is_file():
            return from_state(target)
        m = find_manifest(target)
        if m is not None:
            return from_manifest(m)
        if (target / "state" / "CURRENT").is_file():
            return from_state(target / "state")
        raise ReportError(
            f"{target}: neither a run directory, a work directory with runs, nor a refresh state"
        )
    if target.name == "manifest.json" or (
        target.suffix == ".json" and '"run_id"' in target.read_text(encoding="utf-8", errors="replace")[:4000]
    ):
        return from_manifest(target)
    if target.suffix in (".yaml", ".yml"):
        from curate.pipeline.recipe import load_recipe

        r = load_recipe(target)
        m = find_manifest(r.work_dir)
        if m is not None:
            return from_manifest(m)
        if (r.state_dir / "CURRENT").is_file():
            return from_state(r.state_dir)
        raise ReportError(f"{target}: the recipe has not been run yet (curate run {target})")
    return from_data(target)


def report_sources(target: Path | str) -> tuple[dict[Path, str], list[Path]]:
    """What a report of ``target`` reads, so that ``-o`` can be checked against it before anything is
    written: (resolved file -> what it is, directories whose files it reads). Covers the data file and
    its side files, a manifest with the recipe, inputs and outputs it names, a recipe with its inputs
    and outputs, and the run, cache and state directories."""
    from curate.core.vocab import side_path
    from curate.pipeline.run import find_manifest

    target = Path(target)
    files: dict[Path, str] = {}
    dirs: list[Path] = []

    def add(p: Any, what: str) -> None:
        if p:
            files.setdefault(Path(p).resolve(), what)

    def add_manifest(m_path: Path) -> None:
        add(m_path, "the run manifest")
        dirs.append(m_path.parent.resolve())
        try:
            m = json.loads(m_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return
        if not isinstance(m, dict):
            return
        add(m.get("recipe"), "the recipe")
        cfg = m.get("config") or {}
        for i in cfg.get("inputs") or []:
            if isinstance(i, dict):
                add(i.get("path"), "an input of the run")
        for kind, o in (m.get("outputs") or {}).items():
            if kind != "report" and isinstance(o, dict):
                add(o.get("path"), f"the run's {kind} output")
        for st in m.get("stages") or []:
            if st.get("cache_entry"):
                dirs.append(Path(st["cache_entry"]).resolve())
            for k, v in ((st.get("stats") or {}).get("outputs") or {}).items():
                if k != "dataset_name" and isinstance(v, str):
                    add(v, f"the {k} file of stage {st.get('id')}")

    def add_state(state: Path) -> None:
        dirs.append(state.resolve())

    if target.is_dir():
        if (target / "CURRENT").is_file():
            add_state(target)
        else:
            m = find_manifest(target)
            if m is not None:
                add_manifest(m)
            if (target / "state" / "CURRENT").is_file():
                add_state(target / "state")
            dirs.append(target.resolve() / "runs")
            dirs.append(target.resolve() / "cache")
            add(target / "outputs.json", "the work directory's output record")
        return files, dirs
    add(target, "the report's source")
    if target.suffix in (".yaml", ".yml"):
        from curate.pipeline.recipe import RecipeError, load_recipe
        from curate.pipeline.run import default_outputs

        try:
            r = load_recipe(target)
        except RecipeError:
            return files, dirs
        for spec in r.inputs:
            add(spec.path, "an input of the recipe")
        for kind, o in default_outputs(r).items():
            if kind != "report":
                add(o, f"the recipe's {kind} output")
        m = find_manifest(r.work_dir)
        if m is not None:
            add_manifest(m)
        add(r.work_dir / "outputs.json", "the work directory's output record")
        add_state(r.state_dir)
        return files, dirs
    if target.suffix == ".json":
        try:
            head = target.read_text(encoding="utf-8", errors="replace")[:4000]
        except OSError:
            head = ""
        if target.name == "manifest.json" or '"run_id"' in head:
            add_manifest(target)
    for kind in ("dropped", "rejects"):
        add(side_path(target, kind), f"the {kind} rows file it reads")
    return files, dirs


def render(payload: dict[str, Any]) -> str:
    from curate.pipeline.report.template import CSS, JS, PAGE

    data = json.dumps(payload, ensure_ascii=False, default=str, allow_nan=False)
    # safe inside <script>: no "</script>", no "<!--"
    data = data.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    data = data.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    title = (payload.get("title") or "tamis report").replace("&", "&amp;").replace("<", "&lt;")
    return (
        PAGE.replace("%%TITLE%%", title)
        .replace("%%CSS%%", CSS)
        .replace("%%JS%%", JS)
        .replace("%%DATA%%", data)
    )


def _nan_safe(obj: Any) -> Any:
    if isinstance(obj, float):
        return None if (math.isnan(obj) or math.isinf(obj)) else obj
    if isinstance(obj, dict):
        return {k: _nan_safe(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_nan_safe(v) for v in obj]
    return obj


def write_report(target: Path | str, out: Path | str, *, current: dict[str, Any] | None = None) -> Path:
    """Write the report of ``target``; with ``current``: of that version of the state ``target``."""
    from curate.io import atomic_write_text

    payload = _nan_safe(build_payload(target) if current is None else from_state(Path(target), current))
    out = Path(out)
    atomic_write_text(out, render(payload))
    return out
