"""Canonical records read back: files a curate stage wrote (JSONL, Parquet, and CSV/TSV/XLSX exports
of them), with polars directly when the file has the stage's own shape, else row by row."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import polars as pl

from curate.core import vocab
from curate.io.accounting import LoadResult, raw_json, reject, rejects_frame
from curate.io.decode import InputError
from curate.io.formats.common import _label
from curate.io.writers import unguard_formulas
from curate.records import SCHEMA, RecordError, conform, empty_frame, is_canonical


def fast_canonical(path: Path) -> pl.DataFrame | None:
    """Canonical .parquet/.jsonl written by a stage: read with polars directly (fast, keeps dtypes)."""
    name = path.name.lower()
    try:
        if name.endswith(".parquet"):
            frame = pl.read_parquet(path)
        elif name.endswith(".jsonl"):
            with open(path, "rb") as fh:
                head = fh.read(4096)
            if b'"kind"' not in head or b'"id"' not in head:
                return None
            frame = read_jsonl_frame(path, conformed=False)
            if frame is None:
                return None
        else:
            return None
    except Exception:
        return None
    if not is_canonical(frame.columns) or frame.height == 0:
        return None
    if frame["kind"].null_count() or frame["id"].null_count():
        return None
    if not frame["kind"].is_in(list(vocab.KINDS)).all():
        return None
    return conform(frame)


def read_jsonl_frame(path: Path | str, *, conformed: bool = True) -> pl.DataFrame | None:
    """A JSONL file written by a curate stage, read with polars: ``meta`` written as a JSON object (the
    last key of each line) comes back as the exact JSON text it was written from; old files with
    ``meta`` as a JSON string read as they are. None when the file does not have that shape (the
    row-by-row reader takes it then)."""
    raw = Path(path).read_bytes()
    if b',"meta":{' not in raw and b',"meta":null}' not in raw:
        frame = pl.read_ndjson(io.BytesIO(raw), infer_schema_length=None)
        return conform(frame) if conformed else frame
    # one string per line (JSON text holds no raw control characters, so \x01 never splits a line)
    lines = pl.read_csv(
        io.BytesIO(raw),
        has_header=False,
        separator="\x01",
        quote_char=None,
        new_columns=["line"],
        infer_schema=False,
    )["line"].drop_nulls()
    lines = lines.filter(lines.str.strip_chars() != "")
    parts = lines.str.splitn(',"meta":', 2).struct.unnest()
    if parts.width < 2 or parts[:, 1].null_count() or not lines.str.ends_with("}").all():
        return None
    meta = parts[:, 1].str.head(-1)
    if not (meta.str.starts_with("{") | (meta == "null")).all():
        return None
    rest = io.BytesIO()
    pl.DataFrame({"line": parts[:, 0] + "}"}).write_csv(rest, include_header=False, quote_style="never")
    rest.seek(0)
    try:
        frame = pl.read_ndjson(rest, infer_schema_length=None)
    except Exception:
        return None
    meta = pl.select(pl.when(meta == "null").then(None).otherwise(meta)).to_series().alias("meta")
    frame = frame.with_columns(meta)
    return conform(frame) if conformed else frame


def fast_result(path: Path, frame: pl.DataFrame) -> LoadResult:
    """The LoadResult of a canonical file :func:`fast_canonical` read whole."""
    entry = {
        "file": str(path),
        "format": "canonical",
        "rows": frame.height,
        "kept": frame.height,
        "rejected": 0,
    }
    return LoadResult(frame, rejects_frame([]), [f"{path}: canonical records"], frame.height, 0, [entry])


def load_canonical(
    path, raw_rows, rejects, desc, explanations, n_input, typed=True, guarded=False
) -> LoadResult:
    """Canonical records read back. ``typed`` is False for CSV/TSV/XLSX, whose cells are text: the label
    and score columns are then parsed back to booleans and numbers (a cell that does not parse rejects
    its row, naming the field) instead of being cast to null."""
    good = []
    for r in raw_rows:
        v, problem = _canonical_values(r.values)
        if problem:
            rejects.append(reject(path, r.line, r.sheet, problem[0], problem[1], raw_json(v)))
            continue
        good.append(v)
    if not good:
        frame = empty_frame()
    else:
        try:
            frame = pl.DataFrame(good, infer_schema_length=None)
        except Exception:
            frame = pl.from_dicts(good, infer_schema_length=None, strict=False)
        if guarded:  # cells the CSV writer protected from spreadsheets' formula evaluation
            frame = unguard_formulas(frame)
        if not typed:
            frame = _numbers_from_text(frame)
        try:
            frame = conform(frame)
        except Exception as exc:  # a column whose values cannot take the canonical type
            raise InputError(f"{path}: not readable as canonical records: {exc}") from None
    explanations.append(f"{path}: {desc}: canonical records")
    files = [
        {
            "file": str(path),
            "format": "canonical",
            "rows": n_input,
            "kept": frame.height,
            "rejected": len(rejects),
        }
    ]
    return LoadResult(frame, rejects_frame(rejects), explanations, n_input, 0, files)


def _canonical_values(v: dict) -> tuple[dict, tuple[str, str] | None]:
    """One canonical row's values as the frame takes them (label a boolean, meta JSON text, history and
    source parsed from the JSON text a CSV/XLSX cell holds), or the (field, reason) that rejects it."""
    if v.get("label") is not None and not isinstance(v["label"], bool):
        if isinstance(v["label"], str) and not v["label"].strip():
            v = {**v, "label": None}
        else:
            try:
                v = {**v, "label": _label(v["label"], "label")}
            except RecordError as exc:
                return v, ("label", str(exc))
    if v.get("kind") not in vocab.KINDS or not v.get("id"):
        return v, ("kind", "not a canonical record (id/kind missing)")
    if isinstance(v.get("meta"), dict):
        v = {**v, "meta": json.dumps(v["meta"], ensure_ascii=False, sort_keys=True)}
    for col, shape in (("history", list), ("source", dict)):
        cell = v.get(col)
        if isinstance(cell, str):  # CSV/XLSX exports hold nested values as JSON text
            if not cell.strip():  # an empty cell is how a CSV writes a missing value
                v = {**v, col: None}
                continue
            try:
                cell = json.loads(cell)
            except json.JSONDecodeError as exc:
                return v, (col, f"not valid JSON ({exc.msg} at column {exc.colno})")
            v = {**v, col: cell}
        if cell is not None and not isinstance(cell, shape):
            return v, (col, f"expected a JSON {'list of turns' if shape is list else 'object'}")
        if col == "history" and cell and not all(isinstance(t, dict) for t in cell):
            return v, (col, "expected a list of {role, content} turns")
    return v, None


# the score columns tamis writes, with their types (restored whatever the cells look like)
_SCORE_TYPES = {
    "ppl": pl.Float64,
    "ppl_tokens": pl.Int64,
    "ppl_answer": pl.Float64,
    "ifd": pl.Float64,
    "reward": pl.Float64,
    "reward_chosen": pl.Float64,
    "reward_rejected": pl.Float64,
    "reward_margin": pl.Float64,
    "quality": pl.Float64,
}
# a number as a writer prints one: no leading zeros, at most 15 significant digits, no padding zeros
# after the point ("1.10" is a version, "007" a code, "123456789012345678901" an id: they stay text)
_CLEAN_NUMBER = re.compile(r"-?(?:0|[1-9]\d{0,14})(?:\.(?:0|\d{0,14}[1-9]))?(?:[eE][-+]?\d{1,3})?")


def _numbers_from_text(frame: pl.DataFrame) -> pl.DataFrame:
    """Score columns exported to CSV/XLSX come back as text: restore them to numbers (empty cells are
    null). Other non-canonical columns are restored only when every cell is a cleanly written number."""
    casts = []
    for name in frame.columns:
        if name in SCHEMA or frame[name].dtype != pl.Utf8:
            continue
        stripped = frame[name].str.strip_chars()
        values = pl.select(pl.when(stripped != "").then(stripped)).to_series().alias(name)
        if name in _SCORE_TYPES:
            dtype = _SCORE_TYPES[name]
            cast = values.cast(pl.Float64, strict=False)
            if cast.null_count() == values.null_count():
                casts.append(cast.cast(dtype) if dtype == pl.Int64 else cast)
            continue
        present = values.drop_nulls()
        if present.len() == 0:
            continue
        if not present.str.contains(f"^{_CLEAN_NUMBER.pattern}$").all():
            continue
        for dtype in (pl.Int64, pl.Float64):
            cast = values.cast(dtype, strict=False)
            if cast.null_count() == values.null_count():
                casts.append(cast.alias(name))
                break
    return frame.with_columns(casts) if casts else frame
