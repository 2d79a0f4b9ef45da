"""The Ray engine: the same stage functions over Ray Data blocks, on a local or a remote Ray cluster.

- Row stages run as ``map_batches`` tasks over Arrow blocks: Arrow -> polars -> ``stage_fn`` ->
  kept and dropped rows stacked in one Arrow block with a flag column, split again on the driver.
- Model stages run in an actor pool (class-based ``map_batches`` with ``concurrency``): each actor
  builds its scorer once (``factory(config)``) and scores many batches; one GPU per actor when the
  cluster has GPUs.
- Dedup runs the distributed algorithm of :mod:`curate.engines.ray_dedup`.
- Global stages (select, pairs, export) run once, on the driver.
- Ingest (:func:`load`) reads each input file in its own Ray task.

Order is preserved (``DataContext.execution_options.preserve_order``), so kept rows come back in the
order the local engine gives them.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from typing import Any

import polars as pl

from curate.engines import EngineSpec
from curate.engines.ray_cluster import (
    BLOCKS_PER_CPU,
    MAX_BLOCK_ROWS,
    MIN_BLOCK_ROWS,
    RayEngineError,
    block_rows_for,
    cluster_cpus,
    configure_data,
    ensure_ray,
    shutdown,
    split_frame,
    to_arrow,
)
from curate.engines.ray_dedup import run_dedup
from curate.io import InputError, LoadResult
from curate.io import load as io_load
from curate.stage import DROP_COLUMNS, StageResult, empty_dropped
from curate.stages import for_function

KEPT_COL = "__tamis_kept"
INFO_COL = "__tamis_info"

# the Ray session's names, imported from here by commands and tests (defined in ray_cluster)
__all__ = [
    "BLOCKS_PER_CPU",
    "MAX_BLOCK_ROWS",
    "MIN_BLOCK_ROWS",
    "RayEngineError",
    "block_rows_for",
    "cluster_cpus",
    "configure_data",
    "ensure_ray",
    "load",
    "merge_stats",
    "run_rows",
    "run_stage",
    "shutdown",
    "split_frame",
    "to_arrow",
]


# ----------------------------------------------------------------------------------------------------
# row and model stages


def _pack(result: StageResult, n_in: int) -> Any:
    """Kept and dropped rows of one batch as one Arrow table: a flag column says which is which, and
    the first row carries the batch's stats and column lists (a batch is never empty)."""
    kept, dropped, stats = result.kept, result.dropped, result.stats
    info = json.dumps(
        {"stats": stats, "kept_cols": kept.columns, "dropped_cols": dropped.columns, "rows": n_in},
        default=str,
        ensure_ascii=False,
    )
    parts = []
    if kept.height or dropped.height == 0:
        parts.append(kept.with_columns(pl.lit(True).alias(KEPT_COL)))
    if dropped.height:
        parts.append(dropped.with_columns(pl.lit(False).alias(KEPT_COL)))
    out = pl.concat(parts, how="diagonal_relaxed") if len(parts) > 1 else parts[0]
    infos = [info] + [None] * (out.height - 1) if out.height else []
    out = out.with_columns(pl.Series(INFO_COL, infos, dtype=pl.Utf8))
    return to_arrow(out)


def _row_batch(table, stage_fn: Callable, config: Any, stage_kwargs: dict[str, Any]):
    frame = pl.from_arrow(table)
    return _pack(stage_fn(frame, config, **stage_kwargs), frame.height)


class _ModelActor:
    """One actor of a model stage's pool: builds the scorer once, then scores batch after batch."""

    def __init__(
        self, stage_fn: Callable, config: Any, factory: Callable | None, stage_kwargs: dict[str, Any]
    ):
        if factory is not None:
            self.fn = factory(config)
        else:
            self.fn = lambda frame: stage_fn(frame, config, **stage_kwargs)

    def __call__(self, table):
        frame = pl.from_arrow(table)
        return _pack(self.fn(frame), frame.height)


def _unpack(
    tables: list, template: pl.DataFrame, baseline: dict[str, Any] | None = None, merge=None
) -> StageResult:
    kept_parts, dropped_parts, stats_parts = [], [], []
    kept_cols: list[str] = []
    dropped_cols: list[str] = []
    for t in tables:
        f = pl.from_arrow(t)
        if f.height == 0:
            continue
        info = json.loads(f[INFO_COL][0])
        stats_parts.append((info["stats"], info["rows"]))
        kept_cols += [c for c in info["kept_cols"] if c not in kept_cols]
        dropped_cols += [c for c in info["dropped_cols"] if c not in dropped_cols]
        flag = f[KEPT_COL]
        k = f.filter(flag)
        d = f.filter(~flag)
        if k.height:
            kept_parts.append(k.select([c for c in info["kept_cols"]]))
        if d.height:
            dropped_parts.append(d.select([c for c in info["dropped_cols"]]))
    kept_schema = template if not kept_cols else None
    kept = _concat(kept_parts, kept_cols, kept_schema)
    if not dropped_cols:
        dropped_cols = kept_cols + [c for c in DROP_COLUMNS if c not in kept_cols]
    dropped = _concat(dropped_parts, dropped_cols, None)
    if dropped.height == 0 and not dropped_parts:
        dropped = empty_dropped(kept.head(0))
    result = StageResult(kept, dropped, {})
    result.stats = merge(stats_parts, result) if merge else merge_stats(stats_parts, baseline)
    return result


def _concat(parts: list[pl.DataFrame], cols: list[str], template: pl.DataFrame | None) -> pl.DataFrame:
    if not parts:
        if template is not None:
            return template.head(0)
        return pl.DataFrame()
    out = pl.concat(parts, how="diagonal_relaxed") if len(parts) > 1 else parts[0]
    return out.select([c for c in cols if c in out.columns])


def merge_stats(
    parts: list[tuple[dict[str, Any], int]], baseline: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Stats of the whole input from per-batch ``(stats, rows)``: counts (ints) and seconds add up,
    rates and means (floats) are averaged weighted by rows, equal strings are kept, dicts merge key by key,
    lists are joined without repeats. ``baseline`` is the stage's stats on an empty frame: a number
    that has the same value there and in every batch is a setting (a threshold, ``num_perm``) and is
    kept as is instead of added up. A stage can take over with a ``merge_stats(parts, result)``
    function attribute (``parts``: the per-batch ``(stats, rows)``; ``result``: the merged result)."""
    if not parts:
        return {}
    if len(parts) == 1:
        return parts[0][0]
    out: dict[str, Any] = {}
    keys: list[str] = []
    for s, _ in parts:
        keys += [k for k in s if k not in keys]
    baseline = baseline or {}
    for k in keys:
        vals = [(s[k], w) for s, w in parts if k in s]
        if "second" in k and all(isinstance(v, int | float) and not isinstance(v, bool) for v, _ in vals):
            out[k] = round(sum(v for v, _ in vals), 3)  # time spent adds up over batches
        else:
            out[k] = _merge_values(vals, baseline.get(k, _MISSING))
    return out


_MISSING = object()


def _merge_values(vals: list[tuple[Any, int]], base: Any = _MISSING) -> Any:
    xs = [v for v, _ in vals]
    if base is not _MISSING and not isinstance(base, dict | list) and all(v == base for v in xs):
        return base
    if all(isinstance(v, dict) for v in xs):
        return merge_stats([(v, w) for v, w in vals], base if isinstance(base, dict) else None)
    if all(isinstance(v, bool) for v in xs) or all(isinstance(v, str) for v in xs):
        return xs[0] if all(v == xs[0] for v in xs) else sorted(set(xs), key=xs.index)
    if all(isinstance(v, int) and not isinstance(v, bool) for v in xs):
        return sum(xs)
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in xs):
        if all(v == xs[0] for v in xs):
            return xs[0]
        total = sum(w for _, w in vals)
        return sum(float(v) * w for v, w in vals) / total if total else xs[0]
    if all(isinstance(v, list) for v in xs):
        merged: list[Any] = []
        for v in xs:
            merged += [x for x in v if x not in merged]
        return merged
    return xs[0] if all(v == xs[0] for v in xs) else xs


def _declared(stage_fn: Callable, capability: str) -> Any:
    """A capability of the stage ``stage_fn`` belongs to (its declaration in curate.stages), if any."""
    stage = for_function(stage_fn)
    return getattr(stage, capability, None) if stage is not None else None


def run_rows(
    stage_fn: Callable,
    frame: pl.DataFrame,
    config: Any,
    spec: EngineSpec,
    *,
    model: bool = False,
    factory: Callable | None = None,
    **stage_kwargs: Any,
) -> StageResult:
    """A row-local stage over Ray Data blocks (``model``: in an actor pool)."""
    ray = ensure_ray(spec)  # ray.data imported there

    stage_kwargs.pop("progress", None)  # progress bars live on the driver, not in workers
    if frame.height == 0:
        return stage_fn(frame, config, **stage_kwargs)
    t0 = time.perf_counter()
    rows = block_rows_for(frame.height, spec)
    ds = ray.data.from_arrow(split_frame(frame, rows))
    if model:
        gpus = int(ray.cluster_resources().get("GPU", 0))
        pool = spec.actors or (gpus if gpus else cluster_cpus())
        out = ds.map_batches(
            _ModelActor,
            fn_constructor_args=(stage_fn, config, factory, stage_kwargs),
            batch_size=rows,
            batch_format="pyarrow",
            zero_copy_batch=True,
            compute=ray.data.ActorPoolStrategy(size=pool),
            num_gpus=1 if gpus else 0,
            num_cpus=1,
        )
    else:
        out = ds.map_batches(
            _row_batch,
            fn_args=(stage_fn, config, stage_kwargs),
            batch_size=None,
            batch_format="pyarrow",
            zero_copy_batch=True,
        )
    tables = ray.get(out.to_arrow_refs())
    merge = getattr(stage_fn, "merge_stats", None) or _declared(stage_fn, "merge_stats")
    baseline = None
    if not model and merge is None:
        # the stage on no rows tells its settings (kept as is) from its counts (added up)
        baseline = stage_fn(frame.head(0), config, **stage_kwargs).stats
    result = _unpack(tables, frame, baseline, merge)
    result.stats = dict(result.stats)
    result.stats["engine"] = {
        "name": "ray",
        "kind": "model" if model else "row",
        "blocks": math.ceil(frame.height / rows),
        "block_rows": rows,
        **({"actors": pool} if model else {}),
        "seconds": round(time.perf_counter() - t0, 3),
    }
    return result


def run_stage(
    stage_fn: Callable,
    frame: pl.DataFrame,
    config: Any,
    spec: EngineSpec,
    *,
    kind: str,
    factory: Callable | None = None,
    **stage_kwargs: Any,
) -> StageResult:
    if kind == "row":
        return run_rows(stage_fn, frame, config, spec, **stage_kwargs)
    if kind == "model":
        factory = factory or _declared(stage_fn, "actor_factory")
        return run_rows(stage_fn, frame, config, spec, model=True, factory=factory, **stage_kwargs)
    if kind == "dedup":
        return run_dedup(frame, config, spec, **stage_kwargs)
    # global: the whole set at once, on the driver (Ray is not needed for it)
    t0 = time.perf_counter()
    result = stage_fn(frame, config, **stage_kwargs)
    result.stats = dict(result.stats)
    result.stats["engine"] = {
        "name": "ray",
        "kind": "global",
        "note": "global stage: ran once on the driver",
        "seconds": round(time.perf_counter() - t0, 3),
    }
    return result


# ----------------------------------------------------------------------------------------------------
# ingest


def _load_one(path: str, fmt, mapping, sheet, load_kwargs):
    try:
        return io_load([path], fmt=fmt, mapping=mapping, sheet=sheet, **load_kwargs)
    except InputError as exc:  # travels back as a value: the driver re-raises it unchanged
        return exc


def load(paths, fmt=None, mapping=None, sheet=None, spec: EngineSpec | None = None, **load_kwargs):
    """:func:`curate.io.load` with one Ray task per input file; the same LoadResult, in input order.

    Unreadable input raises :class:`curate.io.InputError` as locally (the first failing file, in
    input order)."""
    paths = [str(p) for p in paths]
    if not paths:
        raise InputError("no input files given")
    if len(paths) == 1:  # nothing to spread: read here, skip the cluster start
        return io_load(paths, fmt=fmt, mapping=mapping, sheet=sheet, **load_kwargs)
    ray = ensure_ray(spec)
    task = ray.remote(_load_one)
    refs = [task.remote(p, fmt, mapping, sheet, load_kwargs) for p in paths]
    results = ray.get(refs)
    for r in results:
        if isinstance(r, InputError):
            raise r
    frames = [r.frame for r in results]
    frame = pl.concat(frames, how="diagonal_relaxed") if len(frames) > 1 else frames[0]
    out = LoadResult(frame, pl.concat([r.rejects for r in results]))
    for r in results:
        out.explanations += r.explanations
        out.input_rows += r.input_rows
        out.repaired += r.repaired
        out.encoding_guessed += r.encoding_guessed
        out.files += r.files
    return out
