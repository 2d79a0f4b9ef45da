"""The commit of a refresh and the publication of its outputs (see :mod:`curate.pipeline.publish`).

Until the commit every published output (data, rejects, report, manifest, the exports) is staged beside
its target; the pending moves are recorded in the new version's folder (``publish.json``); replacing
``CURRENT`` is the commit; then the staged files are renamed into place. A refresh killed at any point
leaves CURRENT and the version it names untouched, and the next one finishes or discards the rest."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from curate import stages as declared
from curate import staging
from curate.io import atomic_write_text
from curate.pipeline import outputguard, publish
from curate.pipeline.history import now_iso
from curate.pipeline.recipe import Recipe
from curate.pipeline.report import write_report
from curate.pipeline.state import fault, version_dir, vname
from curate.staging import Staging


def current_record(
    new_n: int, sig: str, ingest_now: dict[str, Any], index_batches: dict[str, int], gen: str, rows: int
) -> dict[str, Any]:
    """What CURRENT says about the committed version."""
    return {
        "version": new_n,
        "dir": f"versions/{vname(new_n)}",
        "committed": now_iso(),
        "head_signature": sig,
        declared.source().name: ingest_now,  # what the source stage read, for the next refresh
        "index_batches": index_batches,
        "index_generation": gen,
        "rows": rows,
    }


def stage_reports(
    recipe: Recipe, state: Path, record: dict[str, Any], manifest: dict[str, Any], outputs: dict[str, str]
) -> None:
    """The report and manifest of the new version, staged like the data (renamed after the commit)."""
    if recipe.outputs.get("report") is not None:
        write_report(state, recipe.outputs["report"], current=record)
        outputs["report"] = str(recipe.outputs["report"])
    if recipe.outputs.get("manifest") is not None:
        atomic_write_text(
            recipe.outputs["manifest"], json.dumps(manifest, ensure_ascii=False, indent=1, default=str)
        )
        outputs["manifest"] = str(recipe.outputs["manifest"])


def commit(
    recipe: Recipe,
    state: Path,
    record: dict[str, Any],
    published: list[Path],
    stage_outputs: Staging,
    mark: Callable[[str], None],
) -> list[str]:
    """Record the pending moves, replace CURRENT (the commit), then publish; returns the warnings of a
    publication that failed after the commit (the version stands; the next refresh finishes it)."""
    new_n = record["version"]
    outputguard.record(recipe, published, existing_only=False)  # what this and the next run may replace
    publish.write_journal(version_dir(state, new_n), stage_outputs)
    mark("before-commit")

    atomic_write_text(state / "CURRENT", json.dumps(record, indent=1))
    fault("after-commit")
    staging.activate(None)  # the commit is made: what follows is published at once
    warnings: list[str] = []
    try:
        done = publish.complete(state, new_n, version_dir(state, new_n))
        warnings += done.warnings
    except Exception as exc:  # noqa: BLE001 - the version is committed whatever happens here
        warnings.append(f"{vname(new_n)} is committed, but publishing its outputs failed: {exc}")
    fault("after-publish")
    return warnings
