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

from curate.core.vocab import side_path
from curate.io import atomic_write_text, load, read_frame
from curate.io.load import read_jsonl_frame
from curate.pipeline.history import find_manifest
from curate.pipeline.planning import default_outputs
from curate.pipeline.recipe import RecipeError, load_recipe
from curate.pipeline.report import extras
from curate.pipeline.report.profile import (  # noqa: F401  (re-exported: the report's statistics)
    BINS,
    EXAMPLES_PER_REASON,
    MAX_CLUSTERS,
    SAMPLE_ROWS,
    TEXT_LIMIT,
    _answer_text,
    _main_text,
    clusters_from,
    dataset_profile,
    drops_by_reason,
    histogram,
    languages,
    sample_rows,
    score_columns,
)
from curate.pipeline.report.template import CSS, JS, PAGE
from curate.pipeline.state import list_versions, read_current, version_dir


class ReportError(ValueError):
    pass


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
    res = load([path])
    kept = res.frame
    dropped = None
    side = side_path(path, "dropped")
    if side.is_file():
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
    payload = _nan_safe(build_payload(target) if current is None else from_state(Path(target), current))
    out = Path(out)
    atomic_write_text(out, render(payload))
    return out
