"""What a recipe may overwrite: only files it wrote before, each with the extension its role implies.

A recipe names its outputs (``outputs.report: ../victim.sh`` is a path like any other), so before any
stage runs (``curate run`` and ``curate refresh`` both plan first) every file the run will write is
checked:

- its extension fits its role: data, dropped and rejects files a data format (.jsonl, .json, .parquet,
  .csv, .tsv, .xlsx); the report .html; the manifest .json; an export .jsonl or .json, its
  dataset_info .json and its dataset card README.md;
- if it exists, this recipe wrote it: the paths a recipe wrote are recorded in ``<work_dir>/written.json``
  (reports also in ``<work_dir>/outputs.json``, and, for work directories made before that record
  existed, in the run manifests and refresh versions there). Shared files that an export merges its entry into (``dataset_info.json``, the dataset card) are
  exempt: the export reads and keeps what is in them, and refuses a file it cannot merge into.

Stage caches (``cache:``) are not outputs: one teacher cache serves many recipes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from curate.core.vocab import TRAINER_EXTENSIONS, WRITABLE_EXTENSIONS
from curate.io import atomic_write_text
from curate.pipeline import stages as registry
from curate.pipeline.recipe import RecipeError, default_outputs

RECORD = "written.json"
REPORT_RECORD = "outputs.json"  # written by run.write_run_report: {report path: {key, stamp}}
DATA_ROLES = ("outputs.data", "outputs.dropped", "outputs.rejects")
MERGED_KINDS = ("dataset_info", "dataset_card")  # files an export merges into, never replaces whole


class OutputRefused(RecipeError):
    """An output path the recipe may not write (exit 2 before any stage runs)."""


def recipe_writes(
    recipe: Any, planned: list[Any], extra: dict[str, Path] | None = None, *, caches: bool = False
) -> dict[str, Path]:
    """Every file a run of ``recipe`` writes, by role (``outputs.report``, ``<step>.output``, ...);
    with ``caches``, the stage caches it writes into too (not outputs, but never an input either)."""
    writes: dict[str, Path] = {f"outputs.{k}": Path(v) for k, v in default_outputs(recipe).items()}
    extra = {k: Path(v) for k, v in (extra or {}).items() if v is not None}
    if "--report" in extra:
        writes.pop("outputs.report", None)
    writes.update(extra)
    for p in planned:
        spec = getattr(p, "spec", None)
        if spec is None:
            continue
        cfg = registry.config_to_dict(p.config)
        if not isinstance(cfg, dict):
            continue
        for kind, target in registry.side_outputs(spec, p.config).items():  # an export's files
            writes[f"{p.step.id}.{kind}"] = Path(target)
        for k in spec.output_options:
            v = cfg.get(k)
            if (caches or k != "cache") and isinstance(v, str) and v:
                writes.setdefault(f"{p.step.id}.{k}", Path(v))
    return writes


def allowed_extensions(role: str) -> tuple[str, ...] | None:
    """The extensions a file of ``role`` may have (None: the role does not restrict it)."""
    if role in DATA_ROLES:
        return WRITABLE_EXTENSIONS
    if role in ("outputs.report", "--report"):
        return (".html", ".htm")
    if role == "outputs.manifest":
        return (".json",)
    kind = role.rpartition(".")[2]
    if kind in ("output", "eval"):  # the trainer files export writes
        return TRAINER_EXTENSIONS
    if kind == "dataset_info":
        return (".json",)
    if kind == "dataset_card":
        return (".md",)
    return None


def _key(path: Path, work_dir: Path) -> str:
    """How the record names a path: relative to the work directory, so a project folder that is moved
    or copied with its work directory keeps its record."""
    return os.path.relpath(os.path.abspath(path), os.path.abspath(work_dir))


def read_record(work_dir: Path) -> dict[str, Any]:
    try:
        data = json.loads((work_dir / RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    files = data.get("files") if isinstance(data, dict) else None
    return files if isinstance(files, dict) else {}


def _recorded(work_dir: Path) -> set[str]:
    out = set(read_record(work_dir))
    try:
        reports = json.loads((work_dir / REPORT_RECORD).read_text(encoding="utf-8"))
        out |= {_key(Path(p), work_dir) for p in reports} if isinstance(reports, dict) else set()
    except (OSError, ValueError):
        pass
    return out


def _named_in_older_records(recipe: Any, path: Path) -> bool:
    """For work directories from before the record: a run manifest or a refresh version naming it."""
    needle = json.dumps(os.path.abspath(path))[1:-1]
    dirs = [Path(recipe.work_dir) / "runs", Path(recipe.state_dir) / "versions"]
    for d in dirs:
        if not d.is_dir():
            continue
        for m in [*d.glob("*/manifest.json"), *d.glob("*/publish.json")]:
            try:
                if needle in m.read_text(encoding="utf-8"):
                    return True
            except OSError:
                continue
    return False


def check(recipe: Any, writes: dict[str, Path]) -> None:
    """Raise :class:`OutputRefused` for the first output that fails its role's extension or would
    replace a file this recipe did not write."""
    where = str(recipe.path or "<recipe>")
    recorded = _recorded(Path(recipe.work_dir))
    for role, target in writes.items():
        ext = "".join(target.suffixes[-1:]).lower()
        allowed = allowed_extensions(role)
        if allowed is not None and ext not in allowed:
            raise OutputRefused(
                f"{where}: {role} {target}: a {role.rpartition('.')[2]} file must end in "
                f"{' or '.join(allowed)}, not {ext or 'no extension'}; nothing was run"
            )
        if role.rpartition(".")[2] in MERGED_KINDS:
            continue
        if (target.exists() or target.is_symlink()) and _key(target, recipe.work_dir) not in recorded:
            if target.is_file() and not target.is_symlink() and _named_in_older_records(recipe, target):
                continue
            raise OutputRefused(
                f"{where}: {role} {target} already exists and this recipe did not write it (no record in "
                f"{Path(recipe.work_dir) / RECORD}); a recipe only replaces its own outputs: move or delete "
                f"that file, or choose another path; nothing was run"
            )


def record(recipe: Any, paths: list[Path] | dict[str, Path], *, existing_only: bool = True) -> None:
    """Remember the outputs this recipe has written (those that exist now; all of them with
    ``existing_only=False``: a refresh records what it publishes before its commit)."""
    items = paths.items() if isinstance(paths, dict) else [("", p) for p in paths]
    files = read_record(Path(recipe.work_dir))
    changed = False
    for role, p in items:
        p = Path(p)
        if role.rpartition(".")[2] in MERGED_KINDS or (existing_only and not p.is_file()):
            continue
        if _key(p, recipe.work_dir) not in files:
            files[_key(p, recipe.work_dir)] = {"role": role}
            changed = True
    if changed:
        work = Path(recipe.work_dir)
        atomic_write_text(work / RECORD, json.dumps({"files": files}, ensure_ascii=False, indent=1))
