"""One refresh, phase by phase: recover from an interrupted one, read what is new, run the stages,
write the version, commit and publish (each phase in its own module of this package)."""

from __future__ import annotations

import os
import shutil
import time
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from curate import rejects, staging
from curate import stages as declared
from curate.pipeline import publish
from curate.pipeline import stages as registry
from curate.pipeline.history import now_iso
from curate.pipeline.planning import plan
from curate.pipeline.recipe import Recipe, RecipeError
from curate.pipeline.refresh import version
from curate.pipeline.refresh.batch import (
    Batch,
    ingest_changes,
    ingest_settings,
    read_batch,
    read_pool,
    with_inputs,
    write_rejects,
)
from curate.pipeline.refresh.changelog import make_changelog, row_hashes
from curate.pipeline.refresh.commit import commit, current_record, stage_reports
from curate.pipeline.refresh.stages import (
    IncrementalStates,
    StagesRun,
    head_signature,
    roll_back,
    run_head,
    run_tail,
    split_plan,
)
from curate.pipeline.reporter import Reporter
from curate.pipeline.run import versions
from curate.pipeline.state import StateLock, cleanup, fault, read_current, version_dir, vname
from curate.stage import drop_counts
from curate.staging import Staging

# fault point -> the name of the phase it ends (the summary's phase_seconds)
PHASES = {
    "after-ingest": "read",
    "after-head": "new_row_stages",
    "after-tail": "whole_set_stages",
    "before-version-rename": "write_version",
    "after-version-rename": "name_version",
    "after-index": "index_append",
    "before-commit": "outputs",
}


@dataclass
class RefreshResult:
    summary: dict[str, Any]
    exit_code: int


def refresh(
    recipe: Recipe,
    new_inputs: list[Path | str] | None = None,
    *,
    quiet: bool = False,
    rebuild: bool = False,
) -> RefreshResult:
    """One refresh under the state lock; raises :class:`Locked` when another one is running."""
    state = recipe.state_dir
    with StateLock(state):
        fault("after-lock")
        stage_outputs = Staging(())  # claims the published outputs once a new version is under way
        staging.activate(stage_outputs)
        try:
            return _Refresh(recipe, new_inputs, stage_outputs, quiet=quiet, rebuild=rebuild).run()
        except BaseException:
            stage_outputs.discard()  # the version was not committed: nothing of it is published
            raise
        finally:
            staging.activate(None)


class _Refresh:
    """The state of one refresh under the lock; each method is one phase."""

    def __init__(self, recipe: Recipe, new_inputs, stage_outputs: Staging, *, quiet: bool, rebuild: bool):
        self.t_start = time.perf_counter()
        self.phases: dict[str, float] = {}
        self.last = self.t_start
        self.rebuild = rebuild
        self.stage_outputs = stage_outputs
        self.rep = Reporter(quiet)
        self.state = recipe.state_dir
        self.ingest_now = ingest_settings(recipe)  # the recipe's own inputs, not this batch's files
        self.recipe = with_inputs(recipe, new_inputs) if new_inputs else recipe
        self.ctx = registry.StageContext(
            base=self.recipe.base,
            progress=self.rep.progress_factory(),
            extra={"work_dir": self.recipe.work_dir, "export_memo_dir": self.state / "memo"},
            engine=self.recipe.engine,
        )
        self.planned = plan(self.recipe, self.ctx)
        self.head, self.tail = split_plan(self.planned)
        self.sig = head_signature(self.head)
        self.warnings: list[str] = []

    def mark(self, point: str) -> None:
        now = time.perf_counter()
        self.phases[PHASES.get(point, point)] = round(now - self.last, 3)
        self.last = now
        fault(point)

    def run(self) -> RefreshResult:
        self.recover()
        pool_ex = ThreadPoolExecutor(max_workers=2)
        if self.rebuild and self.cur_n:
            self.index_batches = {}
            self.gen = f"g{self.new_n}"  # a fresh index generation; the committed one stays until the commit
            shutil.rmtree(self.state / "index" / self.gen, ignore_errors=True)
        # read-only work that overlaps with reading the new input: the incremental states of earlier rows
        states = IncrementalStates(self.head, self.state / "index" / self.gen, pool_ex)
        try:
            return self.update(pool_ex, states)
        finally:
            states.close()  # a batch staged but not committed is discarded

    def recover(self) -> None:
        """Finish or undo what an interrupted refresh left, and refuse a recipe whose incremental
        stages or input settings changed since the committed version (unless --rebuild)."""
        state, rep = self.state, self.rep
        cur = read_current(state)
        self.cur_n = cur_n = cur["version"] if cur else 0
        self.new_n = cur_n + 1
        self.index_batches = dict(cur.get("index_batches", {})) if cur else {}
        self.gen = cur.get("index_generation", "g1") if cur else "g1"
        removed = cleanup(state, cur_n, self.gen)
        removed += roll_back(self.head, state / "index" / self.gen, self.index_batches)
        if removed:
            rep.note(f"  cleaned up after an interrupted refresh: {len(removed)} item(s)")
        self.published = publish.published_paths(self.recipe, self.planned)
        recovered = publish.recover(state, cur_n, version_dir(state, cur_n), self.published)
        self.warnings += recovered.warnings if recovered else []
        if recovered and recovered.done:
            rep.note(
                f"  finished publishing {vname(cur_n)} after an interrupted refresh: {len(recovered.done)} item(s)"
            )
        if cur and cur.get("head_signature") != self.sig and not self.rebuild:
            raise RecipeError(
                f"the recipe's incremental stages ({', '.join(p.step.id for p in self.head) or 'none'}) changed "
                f"since {vname(cur_n)}; rows already seen were processed with the old settings. Run "
                f"`curate refresh --rebuild` to reprocess every row, or use a new state directory."
            )
        changed_inputs = ingest_changes(cur.get(declared.source().name) if cur else None, self.ingest_now)
        if changed_inputs and not self.rebuild:
            raise RecipeError(
                f"how {', '.join(changed_inputs)} is read (format/map/sheet) changed since {vname(cur_n)}; "
                "rows read before would come back with new ids as new rows. Run `curate refresh --rebuild` "
                "to reprocess every row, or use a new state directory."
            )

    def update(self, pool_ex: Executor, states: IncrementalStates) -> RefreshResult:
        cur_n, new_n = self.cur_n, self.new_n
        self.rep.note(
            f"[bold]curate refresh[/] {self.recipe.name} (current version: {vname(cur_n) if cur_n else 'none'})"
        )
        prev_dirs = [version_dir(self.state, n) for n in range(1, cur_n + 1)]
        batch = self.read(prev_dirs)
        if batch.new.height == 0 and not self.rebuild and cur_n:
            pool_ex.shutdown(wait=False, cancel_futures=True)
            return self.unchanged(batch)

        # from here to the commit every published output is staged beside its target, renamed after it
        self.stage_outputs.claimed = {Path(os.path.abspath(p)) for p in self.published}
        # the pool of earlier rows is read while the new rows go through the head
        pool_future = pool_ex.submit(read_pool, [] if self.rebuild and cur_n else prev_dirs)
        inputs = [i["path"] for i in batch.ingest["files"]]
        head = run_head(self.head, batch.new, self.ctx, states, self.rep, inputs, vname(new_n), self.recipe)
        self.mark("after-head")

        pool_parts = pool_future.result()
        pool = pl.concat([*pool_parts, head.kept], how="diagonal_relaxed") if pool_parts else head.kept
        tail = run_tail(self.tail, pool, self.ctx, self.rep, self.recipe)
        self.mark("after-tail")

        # the recipe's outputs are derived files (rewritten by the next run if we die before the commit):
        # write them on a second thread while this one builds the changelog and the version folder
        outputs_future = pool_ex.submit(version.write_outputs, self.recipe, tail.kept, self.state, new_n)
        tmp, changelog, manifest = self.write_version(pool_ex, batch, head, tail, pool.height)
        self.mark("before-version-rename")
        version.name_version(tmp, self.state, new_n)
        self.mark("after-version-rename")

        # the incremental states' batches (truncated again by the next run if we die before the commit)
        self.index_batches.update(states.commit())
        self.mark("after-index")

        outputs = outputs_future.result()
        pool_ex.shutdown()
        rejects_path = write_rejects(self.recipe, batch.rejects)
        if rejects_path:
            outputs["rejects"] = rejects_path
        record = current_record(
            new_n, self.sig, self.ingest_now, self.index_batches, self.gen, tail.kept.height
        )
        stage_reports(self.recipe, self.state, record, manifest, outputs)
        self.warnings += commit(
            self.recipe, self.state, record, self.published, self.stage_outputs, self.mark
        )
        return self.summary(batch, head, tail, changelog, outputs)

    def read(self, prev_dirs: list[Path]) -> Batch:
        """Read the new inputs; the rows seen in an earlier version are skipped."""
        t0 = time.perf_counter()
        batch = read_batch(self.recipe, prev_dirs, self.rebuild)
        new, rejects, ing = batch.new, batch.rejects, batch.ingest
        self.stages_log: list[dict[str, Any]] = [
            {
                "id": declared.source().name,
                "part": "new rows",
                "read": ing["in"],
                "in": new.height + rejects.height,
                "kept": new.height,
                "rejected": rejects.height,
                "skipped_seen": batch.skipped_seen,
                "repeated_in_batch": batch.skipped_repeat,
                "seconds": round(time.perf_counter() - t0, 3),
            }
        ]
        self.rep.note(
            f"  read {ing['in']:,} rows ({rejects.height:,} rejected): {batch.skipped_seen:,} seen before, "
            f"{new.height:,} new ({batch.skipped_repeat:,} of them repeated within this input)"
        )
        self.mark("after-ingest")
        return batch

    def exit_code(self, batch: Batch, summary: dict[str, Any]) -> int:
        """1 when input rows were rejected beyond the recipe's ``max_rejected`` (or --max-rejected)."""
        code = rejects.exit_code(batch.rejects.height, batch.ingest["in"], self.recipe.max_rejected)
        if batch.rejects.height and code == 0:
            summary["rejected_tolerated"] = True  # listed in the rejects file, exit 0
        return code

    def unchanged(self, batch: Batch) -> RefreshResult:
        """Nothing new: the dataset stays at the current version."""
        summary = {
            "status": "unchanged",
            "version": vname(self.cur_n),
            "state": str(self.state),
            "input_rows": batch.ingest["in"],
            "rejected": batch.rejects.height,
            "new_rows": 0,
            "skipped_seen": batch.skipped_seen,
            "seconds": round(time.perf_counter() - self.t_start, 3),
        }
        rejects_path = write_rejects(self.recipe, batch.rejects)
        if rejects_path:
            summary["rejects"] = rejects_path
        if self.warnings:
            summary["warnings"] = self.warnings
        self.rep.note(f"  no new rows: the dataset stays at {vname(self.cur_n)}")
        return RefreshResult(summary, self.exit_code(batch, summary))

    def write_version(
        self, pool_ex: Executor, batch: Batch, head: StagesRun, tail: StagesRun, pool_rows: int
    ) -> tuple[Path, dict[str, Any], dict[str, Any]]:
        """The version folder, under a temporary name (complete before it gets its name); the big
        dataset file is written on the second thread while the changelog is computed."""
        state, cur_n, new_n, data = self.state, self.cur_n, self.new_n, tail.kept
        tmp = version.temporary_dir(state, new_n)
        data_future = pool_ex.submit(version.write_parquet, data, tmp / "data.parquet")
        data_hashes = row_hashes(data)
        changelog = make_changelog(
            version_dir(state, cur_n) if cur_n else None,
            data,
            data_hashes,
            batch.new,
            head.dropped,
            tail.dropped,
            cur_n,
            new_n,
        )
        changelog.update(
            {
                "recipe": self.recipe.name,
                "created": now_iso(),
                "inputs": [
                    {"path": f["path"], "sha256": h, "rows": f["rows"], "rejected": f["rejected"]}
                    for f, h in zip(batch.ingest["files"], batch.hashes, strict=False)
                ],
                "input_rows": batch.ingest["in"],
                "rejected": batch.rejects.height,
                "skipped_seen": batch.skipped_seen,
                "repeated_in_batch": batch.skipped_repeat,
                "new_rows": batch.new.height,
                "rebuild": bool(self.rebuild),
                "pool_rows": pool_rows,
                "rows": data.height,
                "stages": self.stages_log + head.log + tail.log,
            }
        )
        manifest = {
            "version": new_n,
            "recipe": str(self.recipe.path) if self.recipe.path else None,
            "recipe_sha256": self.recipe.text_sha256,
            "config": self.recipe.resolved(),
            "versions": versions(),
            "models": [m for p in self.planned for m in p.models],
            "head_signature": self.sig,
            "created": changelog["created"],
        }
        data_future.result()
        frames = {
            "delta.parquet": head.kept,
            "hashes.parquet": data_hashes,
            "dropped.parquet": head.dropped,
            "rejects.parquet": batch.rejects if batch.rejects.height else None,
            "tail_dropped.parquet": tail.dropped,
        }
        version.fill(tmp, frames, {"changelog.json": changelog, "manifest.json": manifest})
        return tmp, changelog, manifest

    def summary(
        self,
        batch: Batch,
        head: StagesRun,
        tail: StagesRun,
        changelog: dict[str, Any],
        outputs: dict[str, str],
    ) -> RefreshResult:
        dropped_new, data = head.dropped, tail.kept
        summary = {
            "status": "ok",
            "version": vname(self.new_n),
            "previous": vname(self.cur_n) if self.cur_n else None,
            "state": str(self.state),
            "input_rows": batch.ingest["in"],
            "rejected": batch.rejects.height,
            "skipped_seen": batch.skipped_seen,
            "new_rows": batch.new.height,
            "new_kept": head.kept.height,
            "new_dropped": 0 if dropped_new is None else dropped_new.height,
            "new_dropped_by_reason": {} if dropped_new is None else drop_counts(dropped_new),
            "rows": data.height,
            "added": changelog["added"]["count"],
            "removed": changelog["removed"]["count"],
            "changed": changelog["changed"]["count"],
            "outputs": outputs,
            "seconds": round(time.perf_counter() - self.t_start, 3),
            "phase_seconds": self.phases,
        }
        if self.warnings:
            summary["warnings"] = self.warnings  # the version stands; the next refresh finishes publishing it
        self.rep.note(
            f"  {vname(self.new_n)}: {data.height:,} rows (+{summary['added']:,} added, -{summary['removed']:,} "
            f"removed, {summary['changed']:,} changed); {summary['new_dropped']:,} new rows dropped; "
            f"{summary['seconds']:.2f}s"
        )
        return RefreshResult(summary, self.exit_code(batch, summary))
