"""The export stage inside a recipe, memoised per row.

Converting a canonical row into a trainer format is a pure function of the row's content and the export
options, so the pipeline keeps each row's converted JSON line in a memo file keyed by a hash of the row
and the options. A refresh that adds 1% new rows converts only those rows and writes the file by joining
the cached lines, instead of converting all of them again (per-row conversion is most of the export's
cost). The conversion itself, the choice of kind, the drop reasons and LLaMA-Factory's
``dataset_info.json`` entry are those of :mod:`curate.export`; the result equals ``curate.export.run``
(a test checks it).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import polars as pl

from curate.augment.common import eval_mask
from curate.io import atomic_path
from curate.pipeline.fingerprint import code_fingerprint
from curate.records import SCHEMA, RecordError
from curate.stage import StageResult, empty_dropped, mark_dropped

MEMO_SCHEMA = {"h": pl.UInt64, "line": pl.Utf8, "err_field": pl.Utf8, "err_reason": pl.Utf8}


def _row_hash(frame: pl.DataFrame, keep_meta: bool) -> pl.Series:
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


def run(mod, frame: pl.DataFrame, config: Any, memo_dir: Path) -> StageResult:
    kind = mod.choose_kind(frame, config.kind)
    n = frame.height
    hashes = _row_hash(frame, config.keep_meta) if n else pl.Series("h", [], dtype=pl.UInt64)
    d = memo_dir_for(memo_dir, config)
    memo, chunks = _read_memo(d)
    memo = memo.unique("h", keep="first")
    is_kind = (frame["kind"] == kind) if n else pl.Series([], dtype=pl.Boolean)
    known = hashes.is_in(memo["h"].implode()) if memo.height else pl.Series([False] * n, dtype=pl.Boolean)
    todo = (is_kind & ~known).arg_true().to_list() if n else []
    new_entries = []
    for h, row in zip(
        hashes.gather(todo).to_list(), frame[todo].iter_rows(named=True) if todo else [], strict=True
    ):
        try:
            rec = mod.convert_row(row, config.format, config.keep_meta)
            new_entries.append((h, json.dumps(rec, ensure_ascii=False, default=str), None, None))
        except RecordError as exc:
            new_entries.append((h, None, exc.field, exc.reason))
    if new_entries:
        add = pl.DataFrame(new_entries, schema=MEMO_SCHEMA, orient="row").unique("h", keep="first")
        memo = pl.concat([memo, add]).unique("h", keep="first")
        if len(chunks) + 1 > MAX_CHUNKS:
            # compact: one chunk with the current dataset's rows, then the old ones go
            keep = _write_chunk(d, memo.filter(pl.col("h").is_in(hashes.implode())))
            for c in chunks:
                if c != keep:
                    c.unlink(missing_ok=True)
        else:
            _write_chunk(d, add)

    looked = pl.DataFrame({"h": hashes}).join(memo, on="h", how="left", maintain_order="left")
    ok = is_kind & looked["line"].is_not_null() if n else is_kind
    kept = frame.filter(ok) if n else frame
    lines = looked.filter(ok)["line"].to_list() if n else []
    bad = frame.filter(~ok) if n else frame.head(0)
    if bad.height:
        lk = looked.filter(~ok)
        reasons, details = [], []
        for k, f, r in zip(
            bad["kind"].to_list(), lk["err_field"].to_list(), lk["err_reason"].to_list(), strict=True
        ):
            if k != kind:
                reasons.append(f"export: {k} row in a {kind} export")
                details.append({"hint": f"export them separately with --kind {k}"})
            else:
                reasons.append(f"export: cannot write as {config.format}")
                details.append({"field": f, "reason": r})
        dropped = mark_dropped(bad, mod.STAGE, reasons, details)
    else:
        dropped = empty_dropped(frame)
    held_out = eval_mask(kept).to_list()  # the rows `augment` leaves alone: export.convert's split
    train = [ln for ln, e in zip(lines, held_out, strict=True) if not e]
    ev = [ln for ln, e in zip(lines, held_out, strict=True) if e]
    stats: dict[str, Any] = {
        "format": config.format,
        "kind": kind,
        "rows": len(train),
        "eval_rows": len(ev),
        "hint": mod.epochs_hint(len(train), kind),
        "converted": len(todo),
        "from_memo": len(lines) - sum(1 for e in new_entries if e[1] is not None),
    }
    if config.output:
        stats["outputs"] = _write(mod, train, ev, kind, config, Path(config.output))
    return StageResult(kept, dropped, stats)


def _has_tools(lines: list[str]) -> bool:
    return any('"tools"' in ln and "tools" in json.loads(ln) for ln in lines)


def _write(mod, train: list[str], ev: list[str], kind: str | None, config: Any, out: Path) -> dict[str, str]:
    # the export's own writer: one path to the disk for the command, the stage and this memo
    return mod.write_lines(train, ev, kind, config, out, _has_tools(train) or _has_tools(ev))
