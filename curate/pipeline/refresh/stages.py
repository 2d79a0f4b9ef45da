"""Running the recipe's stages in a refresh: the leading row- and set-scoped stages (the *head*) on the
new rows only, against the incremental state of every row seen (the ``incremental`` capability, e.g.
dedup's index), then the whole-set stages (the *tail*) on the pool of every row that ever passed the
head."""

from __future__ import annotations

import concurrent.futures
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from curate.pipeline import stages as registry
from curate.pipeline.planning import Planned
from curate.pipeline.recipe import Recipe, canonical_json
from curate.pipeline.reporter import Reporter
from curate.pipeline.run import execute
from curate.stage import mark_dropped


def split_plan(planned: list[Planned]) -> tuple[list[Planned], list[Planned]]:
    """(incremental head, whole-set tail): the head is the leading run of row/set-scoped stages."""
    head: list[Planned] = []
    i = 1  # planned[0] is the source stage (Scope.SOURCE): it reads the inputs
    while i < len(planned) and planned[i].spec.scope in ("row", "set"):
        head.append(planned[i])
        i += 1
    return head, planned[i:]


def head_signature(head: list[Planned]) -> str:
    return hashlib.sha256(
        canonical_json(
            [
                # config and models, not code: upgrading tamis does not invalidate published versions
                [p.step.id, registry.key_config(p.spec, p.config), [m["fingerprint"] for m in p.models]]
                for p in head
            ]
        ).encode()
    ).hexdigest()[:16]


def roll_back(head: list[Planned], root: Path, batches: dict[str, int]) -> list[str]:
    """Each incremental state of the head (``<root>/<step id>``) back to the batches the committed
    version covers: a refresh that died after committing its states but before its own commit added
    batches no version describes. Returns what was removed (for the log)."""
    removed: list[str] = []
    for p in head:
        path = root / p.step.id
        if registry.incremental(p.spec) and path.is_dir():
            removed += p.spec.stage.state(path, p.config).rollback(batches.get(p.step.id, 0))
    return removed


class IncrementalStates:
    """The state of each head stage that keeps one across batches (found by the ``incremental``
    capability; ``<root>/<step id>``), in the stage's own cycle: opened (locked, checked, the earlier
    rows loaded as ``prior``), the new batch staged after the stage ran, committed once the version it
    describes is written; a batch not committed when the refresh ends (an error, an interrupt) is
    discarded. Opening can run on a worker thread while the new input is read."""

    def __init__(self, head: list[Planned], root: Path, pool: concurrent.futures.Executor | None = None):
        self.states: dict[str, Any] = {}
        self.opening: dict[str, concurrent.futures.Future] = {}
        for p in head:
            if registry.incremental(p.spec):
                state = p.spec.stage.state(root / p.step.id, p.config)
                self.states[p.step.id] = state
                self.opening[p.step.id] = (
                    pool.submit(state.__enter__) if pool is not None else _done(state.__enter__)
                )

    def prior(self, step_id: str) -> Any:
        self.opening[step_id].result()  # the state's own error (parameters differ, locked) is raised here
        return self.states[step_id].prior

    def stage(self, step_id: str, frame: pl.DataFrame, result: Any, inputs: list[str], label: str) -> None:
        if getattr(result, "batch", None) is not None:
            self.states[step_id].stage(frame, result.batch, inputs, label)

    def commit(self) -> dict[str, int]:
        """Commit every staged batch; returns the number of batches each state now holds."""
        out = {}
        for step_id, state in self.states.items():
            self.opening[step_id].result()
            state.commit()
            out[step_id] = state.batches()
        return out

    def close(self, *exc) -> None:
        """Discard what was not committed and release each state (once its opening is over)."""
        for step_id, state in self.states.items():
            concurrent.futures.wait([self.opening[step_id]])
            state.__exit__(*exc)


def _done(fn: Callable[[], Any]) -> concurrent.futures.Future:
    """``fn()`` run now, as a finished future (its exception kept for ``result()``)."""
    fut: concurrent.futures.Future = concurrent.futures.Future()
    try:
        fut.set_result(fn())
    except BaseException as exc:  # noqa: BLE001 - raised again by result()
        fut.set_exception(exc)
    return fut


@dataclass
class StagesRun:
    """What a part (head or tail) of the stages did: the rows it kept, the rows it dropped, one log
    entry per stage."""

    kept: pl.DataFrame
    dropped: pl.DataFrame | None
    log: list[dict[str, Any]]


def run_head(
    head: list[Planned],
    new: pl.DataFrame,
    ctx: registry.StageContext,
    states: IncrementalStates,
    rep: Reporter,
    inputs: list[str],
    label: str,
    recipe: Recipe | None = None,
) -> StagesRun:
    """The incremental head on the new rows only; each incremental stage runs against its state's
    earlier rows and stages its batch. ``recipe``: where a setting refused at run time is spelled."""
    dropped_parts: list[pl.DataFrame] = []
    log: list[dict[str, Any]] = []
    cur_frame = new
    for p in head:
        t1 = time.perf_counter()
        hctx = ctx
        if p.step.id in states.states:
            hctx = registry.StageContext(
                base=ctx.base,
                progress=ctx.progress,
                prior=states.prior(p.step.id),
                extra=ctx.extra,
                engine=ctx.engine,
            )
        result, acct = execute(p, cur_frame, hctx, recipe)
        if p.step.id in states.states:
            states.stage(p.step.id, cur_frame, result, inputs, label)
        if result.dropped.height:
            dropped_parts.append(result.dropped)
        cur_frame = result.kept
        _log(log, p, acct, "new rows", t1, rep)
    delta = cur_frame
    if delta.height and delta["id"].n_unique() < delta.height:
        # no dedup stage caught them: the same id twice in one input is the same row twice
        rep_mask = ~delta.select(pl.col("id").is_first_distinct()).to_series()
        dropped_parts.append(mark_dropped(delta.filter(rep_mask), "refresh", "same id earlier in this input"))
        delta = delta.filter(~rep_mask)
    dropped = pl.concat(dropped_parts, how="diagonal_relaxed") if dropped_parts else None
    return StagesRun(delta, dropped, log)


def run_tail(
    tail: list[Planned],
    pool: pl.DataFrame,
    ctx: registry.StageContext,
    rep: Reporter,
    recipe: Recipe | None = None,
) -> StagesRun:
    """The whole-set tail on the pool of every row that passed the head (``recipe``: as in run_head)."""
    data = pool
    dropped_parts = []
    log: list[dict[str, Any]] = []
    for p in tail:
        t1 = time.perf_counter()
        result, acct = execute(p, data, ctx, recipe)
        if result.dropped.height:
            dropped_parts.append(result.dropped)
        data = result.kept
        _log(log, p, acct, "whole set", t1, rep)
    dropped = pl.concat(dropped_parts, how="diagonal_relaxed") if dropped_parts else None
    return StagesRun(data, dropped, log)


def _log(
    log: list[dict[str, Any]], p: Planned, acct: dict[str, Any], part: str, t1: float, rep: Reporter
) -> None:
    acct["seconds"] = round(time.perf_counter() - t1, 3)
    log.append({"id": p.step.id, "part": part, **{k: v for k, v in acct.items() if k != "stage_stats"}})
    rep.stage(p.step.id, acct, False, acct["seconds"])
