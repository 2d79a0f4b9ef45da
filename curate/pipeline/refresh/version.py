"""Writing a dataset version: its folder is written under a temporary name and renamed when complete
(so a version folder that has its name is whole), and the recipe's data output."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

import polars as pl

from curate import ioerrors
from curate.io import write_frame
from curate.pipeline.recipe import Recipe
from curate.pipeline.state import version_dir, vname


def write_parquet(frame: pl.DataFrame, path: Path) -> None:
    with ioerrors.writing(path):  # a full disk names the file, not just "No space left on device"
        frame.write_parquet(path)


def write_json(path: Path, obj: Any) -> None:
    with ioerrors.writing(path):
        path.write_text(json.dumps(obj, ensure_ascii=False, indent=1, default=str), encoding="utf-8")


def temporary_dir(state: Path, n: int) -> Path:
    """The folder version ``n`` is written to before it gets its name."""
    vroot = state / "versions"
    vroot.mkdir(parents=True, exist_ok=True)
    tmp = vroot / f".tmp-{vname(n)}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    return tmp


def fill(tmp: Path, frames: dict[str, pl.DataFrame | None], documents: dict[str, Any]) -> None:
    """Write the version's row files (``None``: not written) and its JSON documents into ``tmp``, then
    flush every file of the folder to disk (the rename that names it must not outrun its contents)."""
    for name, frame in frames.items():
        if frame is not None:
            write_parquet(frame, tmp / name)
    for name, obj in documents.items():
        write_json(tmp / name, obj)
    for f in tmp.iterdir():
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())


def name_version(tmp: Path, state: Path, n: int) -> None:
    os.replace(tmp, version_dir(state, n))


def write_outputs(recipe: Recipe, data: pl.DataFrame, state: Path, n: int) -> dict[str, str]:
    """The recipe's data output (a derived file, rewritten by the next run if this one dies before its
    commit; staged until the commit)."""
    out = {}
    if "data" in recipe.outputs:
        write_frame(data, recipe.outputs["data"])
        out["data"] = str(recipe.outputs["data"])
    out["version_data"] = str(version_dir(state, n) / "data.parquet")
    return out
