"""Past runs of a recipe: the manifests under ``<work_dir>/runs``, and pruning old runs and cache
entries no kept run refers to."""

from __future__ import annotations

import datetime as _dt
import json
import shutil
from pathlib import Path
from typing import Any


def now_iso() -> str:
    """Now, UTC, to the second: how manifests, versions and locks record a time."""
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


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
