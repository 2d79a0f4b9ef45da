"""The stage cache of a recipe's work directory: ``<work_dir>/cache/<stage-id>/<key>/`` holds a
stage's kept and dropped rows and its stats. Entries are written to a temporary directory and renamed
into place, so a killed run never leaves a half entry that a later run would trust."""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import polars as pl

from curate.pipeline.recipe import Step
from curate.redact import scrub


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
