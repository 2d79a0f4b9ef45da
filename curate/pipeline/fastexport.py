"""The export stage's per-row memo inside a recipe (the ``row_memo`` capability of its declaration).

Converting a canonical row into a trainer format is a pure function of the row's content and the export
options, so the pipeline keeps each row's converted JSON line in a memo file keyed by a hash of the row
and the options. A refresh that adds 1% new rows converts only those rows and writes the file by joining
the cached lines, instead of converting all of them again (per-row conversion is most of the export's
cost). This module is a cache only: the conversion, the choice of kind, the drop reasons, the stats and
the writing are :mod:`curate.export`'s (:func:`curate.export.export_rows` calls :class:`RowMemo`), so
the result equals an export without the memo (tests/core/test_drift.py checks it).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl

from curate.export import Converted
from curate.io import atomic_path
from curate.pipeline.fingerprint import code_fingerprint
from curate.records import SCHEMA

MEMO_SCHEMA = {"h": pl.UInt64, "line": pl.Utf8, "err_field": pl.Utf8, "err_reason": pl.Utf8}


def _row_hash(frame: pl.DataFrame) -> pl.Series:
    # meta is part of the key even for a uniform export: the tool roles and ``tools`` live there
    cols = [c for c in SCHEMA if c in frame.columns and c != "source"]
    return frame.select(pl.struct(cols).hash(seed=20261128).alias("h"))["h"]


# the modules whose code converts a row: editing them invalidates every memoised line
CONVERTER_CODE = ("curate.export", "curate.configs.export", "curate.io.formats", "curate.records")


def memo_dir_for(memo_dir: Path, config: Any) -> Path:
    key = json.dumps(
        {
            "format": config.format,
            "keep_meta": config.keep_meta,
            "v": 3,
            "code": code_fingerprint(CONVERTER_CODE),
        },
        sort_keys=True,
    )
    return memo_dir / f"export-{hashlib.sha256(key.encode()).hexdigest()[:16]}"


MAX_CHUNKS = 16


def _read_memo(d: Path) -> tuple[pl.DataFrame, list[Path]]:
    chunks = sorted(d.glob("chunk-*.parquet")) if d.is_dir() else []
    parts = []
    for c in chunks:
        try:
            parts.append(pl.read_parquet(c))
        except Exception:  # a damaged chunk is only a lost speed-up
            continue
    memo = pl.concat(parts) if parts else pl.DataFrame(schema=MEMO_SCHEMA)
    return memo, chunks


def _write_chunk(d: Path, frame: pl.DataFrame) -> Path:
    """Content-addressed, written atomically: a crash leaves either the whole chunk or none."""
    d.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(frame["h"].sort().to_numpy().tobytes()).hexdigest()[:20]
    path = d / f"chunk-{digest}.parquet"
    if not path.exists():
        with atomic_path(path) as tmp:
            frame.write_parquet(tmp)
    return path


class RowMemo:
    """The export's rows converted before, keyed by the row's hash and the export settings (parquet
    chunks under ``memo_dir``): :func:`curate.export.export_rows` asks it for a row's line and it
    converts only the rows it has not seen, with the function it is given (it has no conversion of
    its own)."""

    def __init__(self, memo_dir: Path, config: Any):
        self.dir = memo_dir_for(memo_dir, config)
        self.converted = 0  # rows converted this time
        self.new_lines = 0  # of which could be written

    def convert(
        self, frame: pl.DataFrame, rows: list[int], convert: Callable[[dict[str, Any]], Converted]
    ) -> list[Converted]:
        """Each of ``rows`` (indices into ``frame``) as ``convert`` makes it: from the memo when seen."""
        part = frame[rows] if rows else frame.head(0)
        every = _row_hash(frame) if frame.height else pl.Series("h", [], dtype=pl.UInt64)
        hashes = every.gather(rows)
        memo, chunks = _read_memo(self.dir)
        memo = memo.unique("h", keep="first")
        known = hashes.is_in(memo["h"].implode()) if memo.height else pl.Series([False] * part.height)
        todo = (~known).arg_true().to_list() if part.height else []
        new_entries = [
            (h, *convert(row))
            for h, row in zip(
                hashes.gather(todo).to_list(), part[todo].iter_rows(named=True) if todo else [], strict=True
            )
        ]
        self.converted = len(todo)
        self.new_lines = sum(1 for e in new_entries if e[1] is not None)
        if new_entries:
            add = pl.DataFrame(new_entries, schema=MEMO_SCHEMA, orient="row").unique("h", keep="first")
            memo = pl.concat([memo, add]).unique("h", keep="first")
            if len(chunks) + 1 > MAX_CHUNKS:
                # compact: one chunk with the current dataset's rows, then the old ones go
                keep = _write_chunk(self.dir, memo.filter(pl.col("h").is_in(every.implode())))
                for c in chunks:
                    if c != keep:
                        c.unlink(missing_ok=True)
            else:
                _write_chunk(self.dir, add)
        looked = pl.DataFrame({"h": hashes}).join(memo, on="h", how="left", maintain_order="left")
        cols = (looked["line"].to_list(), looked["err_field"].to_list(), looked["err_reason"].to_list())
        return list(zip(*cols, strict=True))

    def stats(self, lines: int) -> dict[str, int]:
        return {"converted": self.converted, "from_memo": lines - self.new_lines}


def run(mod, frame: pl.DataFrame, config: Any, memo_dir: Path):
    """The export module's ``run`` with this memo (what a recipe's export step does)."""
    return mod.run(frame, config, memo=RowMemo(memo_dir, config))
