"""Incremental refresh: process only rows not seen before and publish a new dataset version.

State directory::

    <state>/CURRENT                    the committed version: {"version": N, ...} (replaced atomically)
    <state>/.lock                      flock: one refresh at a time (a second one exits with code 3)
    <state>/versions/v000001/          one folder per version, complete before it is named:
        delta.parquet                  new rows that passed the incremental stages in this version
        dropped.parquet                new rows those stages dropped (stage, reason, detail)
        rejects.parquet                input rows that could not be read
        data.parquet                   the dataset of this version (after select/augment/pairs/export)
        tail_dropped.parquet           rows the whole-set stages left out of this version
        changelog.json, manifest.json
    <state>/index/<gen>/<dedup-step>/  the incremental dedup index (signatures of every row seen);
                                       a new generation <gen> is started by --rebuild

A refresh runs in three parts. Rows whose id was seen in any earlier version are skipped. The leading
row- and set-scoped stages of the recipe (dedup against everything seen, decontaminate, filter, score)
run on the new rows only; then the whole-set stages (augment, select, pairs, export) run again on the
pool of all rows that ever passed the first part, which gives the new dataset version. A changelog
compares it with the previous version (added, removed, changed, each with the reason).

Crash safety: a version folder is written under a temporary name and renamed when complete; CURRENT is
replaced last (the commit). A refresh killed at any point, SIGKILL included, leaves CURRENT and the
version it names untouched; the next refresh first removes whatever an uncommitted run left behind
(version folders above CURRENT, dedup index batches past the committed count) and then computes exactly
what the interrupted run would have: nothing lost, nothing duplicated.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from curate import ioerrors, staging
from curate.pipeline import publish
from curate.pipeline import stages as registry
from curate.pipeline.recipe import Recipe, RecipeError, canonical_json
from curate.pipeline.run import (
    Planned,
    Reporter,
    execute,
    ingest,
    input_label,
    now_iso,
    plan,
    sha256_file,
    versions,
)
from curate.stage import drop_counts
from curate.staging import Staging

EXIT_LOCKED = 3
# tests: "kill:<point>" makes the process SIGKILL itself at that point, "sleep:<point>:<seconds>" pauses
FAULT_ENV = "TAMIS_REFRESH_FAULT"
FAULT_POINTS = (
    "after-lock",
    "after-ingest",
    "after-head",
    "after-tail",
    "before-version-rename",
    "after-version-rename",
    "after-index",
    "before-commit",
    "after-commit",
    "after-publish",
)


class Locked(RuntimeError):
    """Another refresh holds the state's lock."""


def _fault(point: str) -> None:
    """Test hook (TAMIS_REFRESH_FAULT): SIGKILL this process, no cleanup, or pause, at ``point``."""
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return
    parts = spec.split(":")
    if len(parts) >= 2 and parts[1] == point:
        if parts[0] == "kill":
            import signal

            os.kill(os.getpid(), signal.SIGKILL)
        elif parts[0] == "sleep":
            time.sleep(float(parts[2]) if len(parts) > 2 else 5.0)


class StateLock:
    def __init__(self, state_dir: Path):
        self.path = state_dir / ".lock"
        self.fd: int | None = None

    def __enter__(self) -> StateLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                holder = os.read(fd, 200).decode("utf-8", "replace").strip()
            except OSError:
                holder = ""
            os.close(fd)
            raise Locked(
                f"another refresh of {self.path.parent} is running ({holder or 'holder unknown'}); "
                f"this one exits without changing anything"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} since {now_iso()}".encode())
        self.fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


def _vname(n: int) -> str:
    return f"v{n:06d}"


def read_current(state_dir: Path) -> dict[str, Any] | None:
    p = state_dir / "CURRENT"
    if not p.is_file():
        return None
    return json.loads(p.read_text(encoding="utf-8"))


def version_dir(state_dir: Path, n: int) -> Path:
    return state_dir / "versions" / _vname(n)


def list_versions(state_dir: Path, upto: int | None = None) -> list[dict[str, Any]]:
    """The changelogs of the committed versions (or of versions 1..``upto``)."""
    cur = read_current(state_dir) if upto is None else {"version": upto}
    if cur is None:
        return []
    out = []
    for n in range(1, cur["version"] + 1):
        p = version_dir(state_dir, n) / "changelog.json"
        if p.is_file():
            out.append(json.loads(p.read_text(encoding="utf-8")))
    return out


def _cleanup(state_dir: Path, current: int, index_batches: dict[str, int], gen: str) -> list[str]:
    """Remove what an interrupted refresh left behind; returns what was removed (for the log)."""
    removed = []
    vroot = state_dir / "versions"
    if vroot.is_dir():
        for d in vroot.iterdir():
            if d.name.startswith(".tmp-") or (
                d.name.startswith("v") and d.name[1:].isdigit() and int(d.name[1:]) > current
            ):
                shutil.rmtree(d, ignore_errors=True)
                removed.append(str(d))
    iroot = state_dir / "index"
    if iroot.is_dir():
        for g in iroot.iterdir():
            if g.name != gen:  # an older generation (after a committed --rebuild) or an uncommitted new one
                shutil.rmtree(g, ignore_errors=True)
                removed.append(str(g))
                continue
            for idx in g.iterdir():
                if idx.is_dir():
                    removed += _truncate_index(idx, index_batches.get(idx.name, 0))
    return removed


def _truncate_index(path: Path, keep: int) -> list[str]:
    """Drop dedup index batches past ``keep`` (written by a run that never committed)."""
    removed = []
    mpath = path / "manifest.json"
    if mpath.is_file():
        m = json.loads(mpath.read_text(encoding="utf-8"))
        if len(m.get("batches", [])) > keep:
            m["batches"] = m["batches"][:keep]
            if keep == 0:
                m["params"] = None
            tmp = path / f".manifest.{os.getpid()}.tmp"
            tmp.write_text(json.dumps(m, ensure_ascii=False, indent=2), encoding="utf-8")
            os.replace(tmp, mpath)
            removed.append(f"{mpath} (batches > {keep})")
    for d in path.iterdir():
        name = d.name
        if name.startswith("batch-") and name[6:].isdigit() and int(name[6:]) > keep:
            shutil.rmtree(d, ignore_errors=True)
            removed.append(str(d))
        elif name.startswith(".batch-") or (name.startswith(".manifest.") and name.endswith(".tmp")):
            if d.is_dir():
                shutil.rmtree(d, ignore_errors=True)
            else:
                d.unlink(missing_ok=True)
            removed.append(str(d))
    return removed


def split_plan(planned: list[Planned]) -> tuple[list[Planned], list[Planned]]:
    """(incremental head, whole-set tail): the head is the leading run of row/set-scoped stages."""
    head: list[Planned] = []
    i = 1  # planned[0] is ingest
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


def ingest_settings(recipe: Recipe) -> dict[str, Any]:
    """How the recipe reads each of its inputs (format, column map, sheet), by input label. Changing
    it for an input changes the rows (and so the ids) read from its next exports: rows seen before
    would come back as new ones, so a refresh refuses it (adding a new input is fine)."""
    return {
        input_label(recipe, s.path): {
            "format": s.format,
            "map": s.mapping,
            "sheet": s.sheet,
            **({"encoding": s.encoding} if s.encoding else {}),
        }
        for s in recipe.inputs
    }


def _ingest_changes(before: dict[str, Any] | None, now: dict[str, Any]) -> list[str]:
    if not before:
        return []
    return sorted(k for k in now if k in before and canonical_json(before[k]) != canonical_json(now[k]))


def row_hashes(frame: pl.DataFrame) -> pl.DataFrame:
    """id -> hash of everything else in the row (to find rows whose scores or content changed)."""
    if frame.height == 0:
        return pl.DataFrame({"id": [], "h": []}, schema={"id": pl.Utf8, "h": pl.UInt64})
    cols = [c for c in frame.columns if c != "id"]
    return frame.select("id", pl.struct(cols).hash(seed=7).alias("h"))


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
        _fault("after-lock")
        stage_outputs = Staging(())  # claims the published outputs once a new version is under way
        staging.activate(stage_outputs)
        try:
            return _refresh_locked(recipe, new_inputs, stage_outputs, quiet=quiet, rebuild=rebuild)
        except BaseException:
            stage_outputs.discard()  # the version was not committed: nothing of it is published
            raise
        finally:
            staging.activate(None)


def _refresh_locked(
    recipe: Recipe, new_inputs, stage_outputs: Staging, *, quiet: bool, rebuild: bool
) -> RefreshResult:
    t_start = time.perf_counter()
    phases: dict[str, float] = {}
    last = [t_start]

    names = {
        "after-ingest": "read",
        "after-head": "new_row_stages",
        "after-tail": "whole_set_stages",
        "before-version-rename": "write_version",
        "after-version-rename": "name_version",
        "after-index": "index_append",
        "before-commit": "outputs",
    }

    def mark(point: str) -> None:
        now = time.perf_counter()
        phases[names.get(point, point)] = round(now - last[0], 3)
        last[0] = now
        _fault(point)

    rep = Reporter(quiet)
    state = recipe.state_dir
    ingest_now = ingest_settings(recipe)  # the recipe's own inputs, not this batch's files
    if new_inputs:
        recipe = _with_inputs(recipe, new_inputs)
    ctx = registry.StageContext(
        base=recipe.base,
        progress=rep.progress_factory(),
        extra={"work_dir": recipe.work_dir, "export_memo_dir": state / "memo"},
        engine=recipe.engine,
    )
    planned = plan(recipe, ctx)
    head, tail = split_plan(planned)
    sig = head_signature(head)

    cur = read_current(state)
    cur_n = cur["version"] if cur else 0
    index_batches = dict(cur.get("index_batches", {})) if cur else {}
    gen = cur.get("index_generation", "g1") if cur else "g1"
    removed = _cleanup(state, cur_n, index_batches, gen)
    if removed:
        rep.note(f"  cleaned up after an interrupted refresh: {len(removed)} item(s)")
    published = publish.published_paths(recipe, planned)
    recovered = publish.recover(state, cur_n, version_dir(state, cur_n), published)
    warnings: list[str] = list(recovered.warnings) if recovered else []
    if recovered and recovered.done:
        rep.note(
            f"  finished publishing {_vname(cur_n)} after an interrupted refresh: {len(recovered.done)} item(s)"
        )
    if cur and cur.get("head_signature") != sig and not rebuild:
        raise RecipeError(
            f"the recipe's incremental stages ({', '.join(p.step.id for p in head) or 'none'}) changed since "
            f"{_vname(cur_n)}; rows already seen were processed with the old settings. Run "
            f"`curate refresh --rebuild` to reprocess every row, or use a new state directory."
        )
    changed_inputs = _ingest_changes(cur.get("ingest") if cur else None, ingest_now)
    if changed_inputs and not rebuild:
        raise RecipeError(
            f"how {', '.join(changed_inputs)} is read (format/map/sheet) changed since {_vname(cur_n)}; "
            "rows read before would come back with new ids as new rows. Run `curate refresh --rebuild` "
            "to reprocess every row, or use a new state directory."
        )
    new_n = cur_n + 1
    # read-only work that can overlap with reading the new input: the dedup indexes of earlier rows
    from concurrent.futures import ThreadPoolExecutor

    pool_ex = ThreadPoolExecutor(max_workers=2)
    prior_futures = {}
    if not rebuild:
        for p in head:
            if registry.incremental(p.spec):
                prior_futures[p.step.id] = pool_ex.submit(
                    _load_prior, state / "index" / gen / p.step.id, p.config
                )
    rep.note(f"[bold]curate refresh[/] {recipe.name} (current version: {_vname(cur_n) if cur_n else 'none'})")

    # ---- what is already known
    prev_dirs = [version_dir(state, n) for n in range(1, cur_n + 1)]
    seen_parts = []
    for d in prev_dirs:
        for name in ("delta.parquet", "dropped.parquet"):
            if (d / name).is_file():
                seen_parts.append(pl.read_parquet(d / name, columns=["id"]))
    seen = pl.concat(seen_parts)["id"] if seen_parts else pl.Series("id", [], dtype=pl.Utf8)

    # ---- read the new inputs
    t0 = time.perf_counter()
    hashes = [sha256_file(s.path) for s in recipe.inputs]
    frame, rejects, ing = ingest(recipe)
    # rows seen in an earlier version are skipped (counted); rows repeated within this input go on to
    # dedup, which drops them as exact duplicates naming the survivor (or, with no dedup stage, they
    # are dropped here with that reason), so every row read is accounted for
    is_seen = frame["id"].is_in(seen.implode()) if frame.height else pl.Series([], dtype=pl.Boolean)
    skipped_seen = int(is_seen.sum()) if frame.height else 0
    new = frame.filter(~is_seen) if frame.height else frame
    skipped_repeat = int(new.height - new["id"].n_unique()) if new.height else 0
    if rebuild and cur_n:
        # every row seen so far goes through the stages again (as it was read: the columns stages
        # added are removed), in the order it first arrived, then the new rows
        from curate.records import SCHEMA

        old = []
        for d in prev_dirs:
            for name in ("delta.parquet", "dropped.parquet"):
                if (d / name).is_file():
                    f = pl.read_parquet(d / name)
                    old.append(f.select([c for c in f.columns if c in SCHEMA]))
        if old:
            old_frame = pl.concat(old, how="diagonal_relaxed")
            new = pl.concat([old_frame, new], how="diagonal_relaxed")
        index_batches = {}
        gen = f"g{new_n}"  # a fresh index generation; the committed one stays until the commit
        shutil.rmtree(state / "index" / gen, ignore_errors=True)
        prev_dirs_for_pool: list[Path] = []
    else:
        prev_dirs_for_pool = prev_dirs
    t_ingest = time.perf_counter() - t0
    stages_log: list[dict[str, Any]] = [
        {
            "id": "ingest",
            "part": "new rows",
            "read": ing["in"],
            "in": new.height + rejects.height,
            "kept": new.height,
            "rejected": rejects.height,
            "skipped_seen": skipped_seen,
            "repeated_in_batch": skipped_repeat,
            "seconds": round(t_ingest, 3),
        }
    ]
    rep.note(
        f"  read {ing['in']:,} rows ({rejects.height:,} rejected): {skipped_seen:,} seen before, "
        f"{new.height:,} new ({skipped_repeat:,} of them repeated within this input)"
    )
    mark("after-ingest")

    if new.height == 0 and not rebuild and cur_n:
        summary = {
            "status": "unchanged",
            "version": _vname(cur_n),
            "state": str(state),
            "input_rows": ing["in"],
            "rejected": rejects.height,
            "new_rows": 0,
            "skipped_seen": skipped_seen,
            "seconds": round(time.perf_counter() - t_start, 3),
        }
        pool_ex.shutdown(wait=False, cancel_futures=True)
        rejects_path = _write_rejects(recipe, rejects)
        if rejects_path:
            summary["rejects"] = rejects_path
        if warnings:
            summary["warnings"] = warnings
        rep.note(f"  no new rows: the dataset stays at {_vname(cur_n)}")
        return RefreshResult(summary, 1 if rejects.height else 0)

    # from here to the commit every published output is staged beside its target, renamed after it
    stage_outputs.claimed = {Path(os.path.abspath(p)) for p in published}

    # the pool of earlier rows is read while the new rows go through the head
    pool_future = pool_ex.submit(_read_pool, prev_dirs_for_pool)

    # ---- the incremental head: new rows only
    dropped_parts: list[pl.DataFrame] = []
    cur_frame = new
    index_appends: list[tuple[Any, Any, Any, Any]] = []
    for p in head:
        t1 = time.perf_counter()
        hctx = ctx
        index = None
        if registry.incremental(p.spec):
            from curate.dedup.index import DedupIndex

            index = DedupIndex(state / "index" / gen / p.step.id)
            if p.step.id in prior_futures:
                prior = prior_futures[p.step.id].result()
            else:
                prior = _load_prior(index.path, p.config)
            hctx = registry.StageContext(
                base=ctx.base, progress=ctx.progress, prior=prior, extra=ctx.extra, engine=ctx.engine
            )
        result, acct = execute(p, cur_frame, hctx)
        if index is not None:
            index_appends.append((index, cur_frame, result, p))
        if result.dropped.height:
            dropped_parts.append(result.dropped)
        cur_frame = result.kept
        acct["seconds"] = round(time.perf_counter() - t1, 3)
        stages_log.append(
            {"id": p.step.id, "part": "new rows", **{k: v for k, v in acct.items() if k != "stage_stats"}}
        )
        rep.stage(p.step.id, acct, False, acct["seconds"])
    delta = cur_frame
    if delta.height and delta["id"].n_unique() < delta.height:
        # no dedup stage caught them: the same id twice in one input is the same row twice
        from curate.stage import mark_dropped

        rep_mask = ~delta.select(pl.col("id").is_first_distinct()).to_series()
        dropped_parts.append(mark_dropped(delta.filter(rep_mask), "refresh", "same id earlier in this input"))
        delta = delta.filter(~rep_mask)
    dropped_new = pl.concat(dropped_parts, how="diagonal_relaxed") if dropped_parts else None
    mark("after-head")

    # ---- the whole-set tail: on the pool of every row that passed the head
    pool_parts = pool_future.result()
    pool = pl.concat([*pool_parts, delta], how="diagonal_relaxed") if pool_parts else delta
    data = pool
    tail_dropped_parts = []
    for p in tail:
        t1 = time.perf_counter()
        result, acct = execute(p, data, ctx)
        if result.dropped.height:
            tail_dropped_parts.append(result.dropped)
        data = result.kept
        acct["seconds"] = round(time.perf_counter() - t1, 3)
        stages_log.append(
            {"id": p.step.id, "part": "whole set", **{k: v for k, v in acct.items() if k != "stage_stats"}}
        )
        rep.stage(p.step.id, acct, False, acct["seconds"])
    tail_dropped = pl.concat(tail_dropped_parts, how="diagonal_relaxed") if tail_dropped_parts else None
    mark("after-tail")

    # the recipe's outputs are derived files (rewritten by the next run if we die before the commit):
    # write them on a second thread while this one builds the changelog and the version folder
    outputs_future = pool_ex.submit(_write_outputs, recipe, data, state, new_n)

    # ---- the version folder is written under a temporary name (complete before it gets its name);
    # the big dataset file is written on the second thread while the changelog is computed
    vroot = state / "versions"
    vroot.mkdir(parents=True, exist_ok=True)
    tmp = vroot / f".tmp-{_vname(new_n)}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    data_future = pool_ex.submit(_write_parquet, data, tmp / "data.parquet")

    # ---- changelog against the previous version
    data_hashes = row_hashes(data)
    changelog = make_changelog(
        version_dir(state, cur_n) if cur_n else None,
        data,
        data_hashes,
        new,
        dropped_new,
        tail_dropped,
        cur_n,
        new_n,
    )
    changelog.update(
        {
            "recipe": recipe.name,
            "created": now_iso(),
            "inputs": [
                {"path": f["path"], "sha256": h, "rows": f["rows"], "rejected": f["rejected"]}
                for f, h in zip(ing["files"], hashes, strict=False)
            ],
            "input_rows": ing["in"],
            "rejected": rejects.height,
            "skipped_seen": skipped_seen,
            "repeated_in_batch": skipped_repeat,
            "new_rows": new.height,
            "rebuild": bool(rebuild),
            "pool_rows": pool.height,
            "rows": data.height,
            "stages": stages_log,
        }
    )

    # ---- the rest of the version folder
    _write_parquet(delta, tmp / "delta.parquet")
    _write_parquet(data_hashes, tmp / "hashes.parquet")
    if dropped_new is not None:
        _write_parquet(dropped_new, tmp / "dropped.parquet")
    if rejects.height:
        _write_parquet(rejects, tmp / "rejects.parquet")
    data_future.result()
    if tail_dropped is not None:
        _write_parquet(tail_dropped, tmp / "tail_dropped.parquet")
    _write_json(tmp / "changelog.json", changelog)
    manifest = {
        "version": new_n,
        "recipe": str(recipe.path) if recipe.path else None,
        "recipe_sha256": recipe.text_sha256,
        "config": recipe.resolved(),
        "versions": versions(),
        "models": [m for p in planned for m in p.models],
        "head_signature": sig,
        "created": changelog["created"],
    }
    _write_json(tmp / "manifest.json", manifest)
    for f in tmp.iterdir():
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
    mark("before-version-rename")
    os.replace(tmp, version_dir(state, new_n))
    mark("after-version-rename")

    # ---- dedup index batches (truncated again by the next run if we die before the commit)
    for index, batch_frame, result, p in index_appends:
        if getattr(result, "batch", None) is not None:
            index.append(
                batch_frame, result.batch, p.config, [i["path"] for i in ing["files"]], label=_vname(new_n)
            )
        index_batches[p.step.id] = index.next_batch() - 1
    mark("after-index")

    # ---- the recipe's outputs (started above)
    outputs = outputs_future.result()
    pool_ex.shutdown()
    rejects_path = _write_rejects(recipe, rejects)
    if rejects_path:
        outputs["rejects"] = rejects_path
    from curate.io import atomic_write_text

    current_record = {
        "version": new_n,
        "dir": f"versions/{_vname(new_n)}",
        "committed": now_iso(),
        "head_signature": sig,
        "ingest": ingest_now,
        "index_batches": index_batches,
        "index_generation": gen,
        "rows": data.height,
    }
    # the report and manifest of the new version, staged like the data (renamed after the commit)
    if recipe.outputs.get("report") is not None:
        from curate.pipeline.report import write_report

        write_report(state, recipe.outputs["report"], current=current_record)
        outputs["report"] = str(recipe.outputs["report"])
    if recipe.outputs.get("manifest") is not None:
        atomic_write_text(
            recipe.outputs["manifest"], json.dumps(manifest, ensure_ascii=False, indent=1, default=str)
        )
        outputs["manifest"] = str(recipe.outputs["manifest"])
    from curate.pipeline import outputguard

    outputguard.record(recipe, published, existing_only=False)  # what this and the next run may replace
    publish.write_journal(version_dir(state, new_n), stage_outputs)
    mark("before-commit")

    # ---- commit
    atomic_write_text(state / "CURRENT", json.dumps(current_record, indent=1))
    _fault("after-commit")
    staging.activate(None)  # the commit is made: what follows is published at once
    try:
        done = publish.complete(state, new_n, version_dir(state, new_n))
        warnings += done.warnings
    except Exception as exc:  # noqa: BLE001 - the version is committed whatever happens here
        warnings.append(f"{_vname(new_n)} is committed, but publishing its outputs failed: {exc}")
    _fault("after-publish")

    summary = {
        "status": "ok",
        "version": _vname(new_n),
        "previous": _vname(cur_n) if cur_n else None,
        "state": str(state),
        "input_rows": ing["in"],
        "rejected": rejects.height,
        "skipped_seen": skipped_seen,
        "new_rows": new.height,
        "new_kept": delta.height,
        "new_dropped": 0 if dropped_new is None else dropped_new.height,
        "new_dropped_by_reason": {} if dropped_new is None else drop_counts(dropped_new),
        "rows": data.height,
        "added": changelog["added"]["count"],
        "removed": changelog["removed"]["count"],
        "changed": changelog["changed"]["count"],
        "outputs": outputs,
        "seconds": round(time.perf_counter() - t_start, 3),
        "phase_seconds": phases,
    }
    if warnings:
        summary["warnings"] = warnings  # the version stands; the next refresh finishes publishing it
    rep.note(
        f"  {_vname(new_n)}: {data.height:,} rows (+{summary['added']:,} added, -{summary['removed']:,} removed, "
        f"{summary['changed']:,} changed); {summary['new_dropped']:,} new rows dropped; {summary['seconds']:.2f}s"
    )
    return RefreshResult(summary, 1 if rejects.height else 0)


def _write_parquet(frame: pl.DataFrame, path: Path) -> None:
    with ioerrors.writing(path):  # a full disk names the file, not just "No space left on device"
        frame.write_parquet(path)


def _write_json(path: Path, obj: Any) -> None:
    with ioerrors.writing(path):
        path.write_text(json.dumps(obj, ensure_ascii=False, indent=1, default=str), encoding="utf-8")


def _load_prior(path: Path, config: Any):
    """The dedup index of every row seen so far (None when empty); checks its parameters first."""
    from curate.dedup.index import DedupIndex

    index = DedupIndex(path)
    index.path.mkdir(parents=True, exist_ok=True)
    index.check(config)
    return index.load()


def _read_pool(dirs: list[Path]) -> list[pl.DataFrame]:
    return [pl.read_parquet(d / "delta.parquet") for d in dirs if (d / "delta.parquet").is_file()]


def _with_inputs(recipe: Recipe, paths) -> Recipe:
    from copy import copy

    from curate.pipeline.recipe import InputSpec

    def suffixes(path: Path) -> str:
        return "".join(path.suffixes[-2:]).lower()

    r = copy(recipe)
    specs = []
    for p in paths:
        if isinstance(p, InputSpec):
            specs.append(p)
            continue
        path = Path(p).resolve()
        # a new export of the same kind of file as a recipe input gets that input's format/map/sheet
        like = next((s for s in recipe.inputs if suffixes(s.path) == suffixes(path)), None)
        if like is not None:
            specs.append(InputSpec(path, like.format, dict(like.mapping), like.sheet, like.encoding))
        else:
            specs.append(InputSpec(path))
    r.inputs = specs
    return r


def _write_rejects(recipe: Recipe, rejects: pl.DataFrame) -> str | None:
    """The unreadable rows of this refresh's inputs, beside the data file (as `curate run` writes
    them); a rejects file left by an earlier refresh is removed when this one has none, so the file
    always describes the latest batch (every batch's rejects stay in its version folder)."""
    from curate.io import write_frame
    from curate.pipeline.run import default_outputs

    path = default_outputs(recipe)["rejects"]
    if rejects.height:
        write_frame(rejects, path)
        return str(path)
    if path.is_file():
        staging.unlink(path)  # after the commit when this refresh makes a new version
    return None


def _write_outputs(recipe: Recipe, data: pl.DataFrame, state: Path, n: int) -> dict[str, str]:
    from curate.io import write_frame

    out = {}
    if "data" in recipe.outputs:
        write_frame(data, recipe.outputs["data"])
        out["data"] = str(recipe.outputs["data"])
    out["version_data"] = str(version_dir(state, n) / "data.parquet")
    return out


def _reason_table(dropped: pl.DataFrame | None) -> dict[str, int]:
    if dropped is None or dropped.height == 0:
        return {}
    g = (
        dropped.with_columns((pl.col("drop_stage") + ": " + pl.col("drop_reason")).alias("why"))
        .group_by("why")
        .agg(pl.len())
        .sort(["len", "why"], descending=[True, False])
    )
    return dict(zip(g["why"].to_list(), g["len"].to_list(), strict=True))


def make_changelog(
    prev_dir: Path | None,
    data: pl.DataFrame,
    data_hashes: pl.DataFrame,
    new: pl.DataFrame,
    dropped_new: pl.DataFrame | None,
    tail_dropped: pl.DataFrame | None,
    prev_n: int,
    new_n: int,
    sample: int = 20,
) -> dict[str, Any]:
    """What changed between two dataset versions, and why. The previous version is read through its
    row hashes (id -> hash of the row); only removed and changed rows are read in full."""
    prev_hashes = None
    if prev_dir is not None:
        hp = prev_dir / "hashes.parquet"
        prev_hashes = (
            pl.read_parquet(hp) if hp.is_file() else row_hashes(pl.read_parquet(prev_dir / "data.parquet"))
        )

    def prev_rows(ids: pl.Series) -> pl.DataFrame:
        return pl.scan_parquet(prev_dir / "data.parquet").filter(pl.col("id").is_in(ids.implode())).collect()

    prev_ids = prev_hashes["id"] if prev_hashes is not None else pl.Series("id", [], dtype=pl.Utf8)
    ids = data["id"]
    new_ids = set(new["id"].to_list())
    added = data.filter(~pl.col("id").is_in(prev_ids.implode()))
    removed_ids = prev_ids.filter(~prev_ids.is_in(ids.implode()))
    removed = prev_rows(removed_ids) if removed_ids.len() else data.head(0)
    # why was an old row removed: the whole-set stage that left it out this time
    why_removed: dict[str, str] = {}
    if tail_dropped is not None and removed.height:
        td = tail_dropped.filter(pl.col("id").is_in(removed["id"].implode()))
        for rid, st, rs in td.select("id", "drop_stage", "drop_reason").iter_rows():
            why_removed.setdefault(rid, f"{st}: {rs}")
    removed_why = [why_removed.get(r, "no longer in the stages' output") for r in removed["id"].to_list()]
    added_why = ["new row" if r in new_ids else "re-selected (seen before)" for r in added["id"].to_list()]
    changed_ids: list[str] = []
    changed_cols: dict[str, int] = {}
    if prev_hashes is not None and prev_hashes.height and data.height:
        j = prev_hashes.join(data_hashes, on="id", suffix="_new")
        ch = j.filter(pl.col("h") != pl.col("h_new"))["id"]
        changed_ids = ch.to_list()
        if changed_ids:
            pa = prev_rows(ch).sort("id")
            pb = data.filter(pl.col("id").is_in(ch.implode())).sort("id")
            common = [c for c in data.columns if c in pa.columns and c != "id"]
            for c in common:
                try:
                    n = int((pa[c].hash(1) != pb[c].hash(1)).sum())
                except Exception:
                    n = 0
                if n:
                    changed_cols[c] = n
            for c in set(data.columns) ^ set(pa.columns):
                changed_cols[c + " (column added or removed)"] = len(changed_ids)

    def rows(frame: pl.DataFrame, why: list[str]) -> list[dict[str, Any]]:
        out = []
        for r, w in zip(frame.head(sample).iter_rows(named=True), why, strict=False):
            q = r.get("question") if r.get("question") is not None else r.get("text")
            out.append({"id": r["id"], "question": (q or "")[:160], "why": w})
        return out

    by_why_added: dict[str, int] = {}
    for w in added_why:
        by_why_added[w] = by_why_added.get(w, 0) + 1
    by_why_removed: dict[str, int] = {}
    for w in removed_why:
        by_why_removed[w] = by_why_removed.get(w, 0) + 1
    return {
        "version": _vname(new_n),
        "previous": _vname(prev_n) if prev_n else None,
        "added": {"count": added.height, "why": by_why_added, "sample": rows(added, added_why)},
        "removed": {"count": removed.height, "why": by_why_removed, "sample": rows(removed, removed_why)},
        "changed": {"count": len(changed_ids), "columns": changed_cols, "ids": changed_ids[:sample]},
        "new_rows_dropped": {
            "count": 0 if dropped_new is None else dropped_new.height,
            "why": _reason_table(dropped_new),
        },
        "left_out_by_whole_set_stages": {
            "count": 0 if tail_dropped is None else tail_dropped.height,
            "why": _reason_table(tail_dropped),
        },
    }
