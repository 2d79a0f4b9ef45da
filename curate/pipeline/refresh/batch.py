"""What is new in a refresh batch: the rows read from the inputs whose ids no earlier version has seen
(with --rebuild: every row seen so far, then the new ones), and how the recipe reads its inputs."""

from __future__ import annotations

from copy import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from curate import staging
from curate.io import write_frame
from curate.io.sources import fingerprint
from curate.pipeline.planning import default_outputs, input_label
from curate.pipeline.recipe import InputSpec, Recipe, canonical_json
from curate.pipeline.run import ingest
from curate.records import SCHEMA

# the version files that hold the rows a version read (kept and dropped by the incremental stages)
SEEN_FILES = ("delta.parquet", "dropped.parquet")


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


def ingest_changes(before: dict[str, Any] | None, now: dict[str, Any]) -> list[str]:
    if not before:
        return []
    return sorted(k for k in now if k in before and canonical_json(before[k]) != canonical_json(now[k]))


def with_inputs(recipe: Recipe, paths) -> Recipe:
    """The recipe reading ``paths`` instead of its own inputs."""

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


@dataclass
class Batch:
    """The rows of this refresh that go through the incremental stages, and how they were counted."""

    new: pl.DataFrame  # rows not seen before (with --rebuild: every row seen so far, then these)
    rejects: pl.DataFrame  # input rows that could not be read
    ingest: dict[str, Any]  # ingest's stats: "in", "files"
    hashes: list[str]  # sha256 of each input (of its files, for a folder: curate.io.sources.fingerprint)
    skipped_seen: int  # rows whose id an earlier version has
    skipped_repeat: int  # new rows whose id came earlier in this input


def seen_ids(prev_dirs: list[Path]) -> pl.Series:
    """The ids of every row an earlier version read."""
    parts = []
    for d in prev_dirs:
        for name in SEEN_FILES:
            if (d / name).is_file():
                parts.append(pl.read_parquet(d / name, columns=["id"]))
    return pl.concat(parts)["id"] if parts else pl.Series("id", [], dtype=pl.Utf8)


def read_batch(recipe: Recipe, prev_dirs: list[Path], rebuild: bool) -> Batch:
    """Read the inputs and keep the rows not seen before. Rows seen in an earlier version are skipped
    (counted); rows repeated within this input go on to dedup, which drops them as exact duplicates
    naming the survivor (or, with no dedup stage, they are dropped after the incremental stages with
    that reason), so every row read is accounted for."""
    seen = seen_ids(prev_dirs)
    hashes = [fingerprint(s.path) for s in recipe.inputs]
    frame, rejects, ing = ingest(recipe)
    is_seen = frame["id"].is_in(seen.implode()) if frame.height else pl.Series([], dtype=pl.Boolean)
    skipped_seen = int(is_seen.sum()) if frame.height else 0
    new = frame.filter(~is_seen) if frame.height else frame
    skipped_repeat = int(new.height - new["id"].n_unique()) if new.height else 0
    if rebuild and prev_dirs:
        old = earlier_rows(prev_dirs)
        if old is not None:
            new = pl.concat([old, new], how="diagonal_relaxed")
    return Batch(new, rejects, ing, hashes, skipped_seen, skipped_repeat)


def earlier_rows(prev_dirs: list[Path]) -> pl.DataFrame | None:
    """Every row seen so far, as it was read (the columns stages added are removed), in the order it
    first arrived: --rebuild sends them through the stages again."""
    old = []
    for d in prev_dirs:
        for name in SEEN_FILES:
            if (d / name).is_file():
                f = pl.read_parquet(d / name)
                old.append(f.select([c for c in f.columns if c in SCHEMA]))
    return pl.concat(old, how="diagonal_relaxed") if old else None


def read_pool(dirs: list[Path]) -> list[pl.DataFrame]:
    """The rows of earlier versions that passed the incremental stages."""
    return [pl.read_parquet(d / "delta.parquet") for d in dirs if (d / "delta.parquet").is_file()]


def write_rejects(recipe: Recipe, rejects: pl.DataFrame) -> str | None:
    """The unreadable rows of this refresh's inputs, beside the data file (as `curate run` writes
    them); a rejects file left by an earlier refresh is removed when this one has none, so the file
    always describes the latest batch (every batch's rejects stay in its version folder)."""
    path = default_outputs(recipe)["rejects"]
    if rejects.height:
        write_frame(rejects, path)
        return str(path)
    if path.is_file():
        staging.unlink(path)  # after the commit when this refresh makes a new version
    return None
