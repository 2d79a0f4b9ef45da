"""Read any supported input into one canonical frame, accounting for every row.

``input_rows == frame.height + rejects.height`` always holds.
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from curate.io.decode import InputError, repair_mojibake
from curate.io.formats import FORMAT_ALIASES, FORMATS, convert, detect_format, explain_qa
from curate.io.readers import TOO_DEEP, RawReject, RawRow, ReadInfo, encodable, read_rows, safe_json
from curate.io.sources import Source, expand
from curate.records import SCHEMA, RecordError, conform, empty_frame, to_frame

REJECT_SCHEMA = {
    "file": pl.Utf8,
    "line": pl.Int64,
    "sheet": pl.Utf8,
    "field": pl.Utf8,
    "reason": pl.Utf8,
    "raw": pl.Utf8,
}

TEXT_FIELDS = ("system", "question", "answer", "chosen", "rejected", "text")


@dataclass
class LoadResult:
    frame: pl.DataFrame
    rejects: pl.DataFrame
    explanations: list[str] = field(default_factory=list)
    input_rows: int = 0
    repaired: int = 0
    files: list[dict[str, Any]] = field(default_factory=list)
    # files whose encoding was a statistical guess (announced on stderr, counted in the summary)
    encoding_guessed: int = 0


def load(
    paths: list[Path | str],
    fmt: str | None = None,
    mapping: dict[str, list[str]] | None = None,
    sheet: str | None = None,
    *,
    repair: bool = True,
    encoding: str | None = None,
) -> LoadResult:
    if not paths:
        raise InputError("no input files given")
    if fmt is not None:
        fmt = FORMAT_ALIASES.get(fmt, fmt)
        if fmt not in FORMATS:
            raise InputError(f"unknown --format {fmt!r}; choose from {', '.join(FORMATS)}")
    frames, rejects, explanations, files = [], [], [], []
    total = repaired = 0
    for source in expand([Path(p) for p in paths]):
        explanations += source.notes
        r = _load_one(source, fmt, mapping or {}, sheet, repair, encoding)
        frames.append(r.frame)
        rejects.append(r.rejects)
        explanations += r.explanations
        total += r.input_rows
        repaired += r.repaired
        files += r.files
    frame = pl.concat(frames, how="diagonal_relaxed") if len(frames) > 1 else frames[0]
    guessed = sum(1 for f in files if f.get("encoding_guess"))
    return LoadResult(frame, pl.concat(rejects), explanations, total, repaired, files, guessed)


def read_frame(path: Path | str) -> pl.DataFrame:
    """Read a canonical file written by a curate stage (strict: rejects are an error here)."""
    res = load([path], fmt="canonical")
    if res.rejects.height:
        first = res.rejects.row(0, named=True)
        raise InputError(f"{path}: line {first['line']}: {first['reason']}")
    return res.frame


def _fast_canonical(path: Path) -> pl.DataFrame | None:
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
    from curate.records import is_canonical

    if not is_canonical(frame.columns) or frame.height == 0:
        return None
    if frame["kind"].null_count() or frame["id"].null_count():
        return None
    if not frame["kind"].is_in(["sft", "preference", "kto", "text"]).all():
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


def _load_one(source: Source, fmt, mapping, sheet, repair, encoding) -> LoadResult:
    path = source.path
    if fmt in (None, "canonical") and not mapping and source.fmt is None:
        fast = _fast_canonical(path)
        if fast is not None:
            return LoadResult(
                fast,
                _rejects_frame([]),
                [f"{path}: canonical records"],
                fast.height,
                0,
                [
                    {
                        "file": str(path),
                        "format": "canonical",
                        "rows": fast.height,
                        "kept": fast.height,
                        "rejected": 0,
                    }
                ],
            )
    info, rows_iter = read_rows(path, sheet=sheet, encoding=encoding)
    raw_rows: list[RawRow] = []
    rejects: list[dict[str, Any]] = []
    for item in rows_iter:
        if isinstance(item, RawReject):
            rejects.append(_reject(path, item.line, item.sheet, item.field, item.reason, item.raw))
        else:
            raw_rows.append(item)
    if source.rename and not mapping:  # a dataset_info.json entry's column names
        rename = source.rename
        for r in raw_rows:
            r.values = {rename.get(k, k): v for k, v in r.values.items()}
    given = "given by --format"
    if fmt is None and not mapping and source.fmt is not None:
        fmt, given = source.fmt, "as dataset_info.json describes it"
    explanations = []
    desc = info.kind
    if source.dataset:
        desc = f"dataset {source.dataset} ({desc})"
    if info.compression:
        desc += f", {info.compression}"
    if info.encoding:
        desc += f", {info.encoding}"
    for note in info.notes or []:
        explanations.append(f"{path}: warning: {note}")
    n_input = len(raw_rows) + len(rejects)
    if not raw_rows:
        explanations.insert(0, f"{path}: {desc}: no readable rows")
        entry: dict[str, Any] = {"file": str(path), "format": None, "rows": n_input}
        if info.encoding_guess:
            entry["encoding_guess"] = info.encoding_guess
        return LoadResult(empty_frame(), _rejects_frame(rejects), explanations, n_input, 0, [entry])

    segments = _segments(raw_rows, info.kind)
    if len(segments) == 1 or fmt is not None:
        segments = [(None, raw_rows)]
    plans: list[tuple[str | None, list[RawRow], _Plan | InputError]] = []
    for sheet_name, rows in segments:
        try:
            plan = _plan(path, sheet_name, rows, fmt, mapping, desc, info.kind, given)
        except InputError as exc:
            if len(segments) == 1:
                if info.parse_error:  # the salvaged items say nothing: the file's own error is the news
                    raise InputError(f"{path}: {info.parse_error}") from None
                raise
            plan = exc
        plans.append((sheet_name, rows, plan))
    if all(isinstance(p, InputError) for _, _, p in plans):
        raise plans[0][2]  # type: ignore[misc]
    if len(plans) == 1 and plans[0][2].fmt == "canonical":  # type: ignore[union-attr]
        return _load_canonical(
            path,
            raw_rows,
            rejects,
            desc,
            explanations,
            n_input,
            typed=info.kind in ("jsonl", "json", "parquet"),
            guarded=info.kind in ("csv", "tsv"),
        )

    # the frame is built in blocks: each block's converted rows (and the parsed input rows behind
    # them) are released once they are columns, so a big file never holds every row as Python
    # dicts twice over (input and converted) next to its frame
    out_rows: list[dict[str, Any]] = []
    out_raw: list[RawRow] = []
    blocks: list[pl.DataFrame] = []
    unheld: list[dict[str, Any]] = []  # rows no output can hold: listed after the other rejects

    def flush() -> None:
        block, unwritable = _frame_of(out_rows)
        for i, reason in unwritable:
            r = out_raw[i]
            unheld.append(_reject(path, r.line, r.sheet, reason[0], reason[1], _raw_row(r, info)))
        blocks.append(block)
        out_rows.clear()
        out_raw.clear()

    n_repaired = 0
    formats_used: dict[str, int] = {}
    by_keys: dict[frozenset, tuple[str, dict] | None] = {}  # per-row detection, once per key set
    for sheet_name, rows, plan in plans:
        if isinstance(plan, InputError):
            # one sheet whose columns say nothing: its rows are rejected, the other sheets read
            reason = str(plan).removeprefix(f"{path}: ")
            rejects += [_reject(path, r.line, r.sheet, None, reason, _raw_row(r, info)) for r in rows]
            explanations.append(f"{path}: sheet {sheet_name}: {reason}")
            continue
        explanations.append(plan.explanation)
        retry = fmt is None and not mapping
        for k, r in enumerate(rows):
            rows[k] = None  # type: ignore[call-overload]  # released with its block (see flush)
            used = plan.fmt
            try:
                try:
                    rec = convert(r.values, plan.fmt, plan.ctx)
                except RecordError:
                    # a file that mixes formats (merged exports): a row the file's format cannot read
                    # is read in the format its own keys name
                    other = _row_format(r.values, by_keys) if retry else None
                    if other is None or other[0] == plan.fmt:
                        raise
                    used = other[0]
                    rec = convert(r.values, other[0], other[1])
                rec.source_file, rec.source_line, rec.source_sheet = str(path), r.line, r.sheet
                if repair:
                    n_repaired += _repair_record(rec)
                row = rec.as_row()
            except RecordError as exc:
                reason = _expected_vs_found(exc.reason, plan, r.values)
                rejects.append(_reject(path, r.line, r.sheet, exc.field, reason, _raw_row(r, info)))
                continue
            except Exception as exc:  # anything one row's content can raise costs that row only
                rejects.append(_reject(path, r.line, r.sheet, None, _why(exc), _raw_row(r, info)))
                continue
            formats_used[used] = formats_used.get(used, 0) + 1
            out_rows.append(row)
            out_raw.append(r)
            if len(out_rows) >= _FRAME_BLOCK:
                flush()
    flush()
    info.lines = None  # the raw lines were kept for the rejects above only
    # the blocks stay separate chunks: copying them into one would hold the frame twice at the peak
    frame = blocks[0] if len(blocks) == 1 else pl.concat(blocks, rechunk=False)
    blocks.clear()
    rejects += unheld
    main_fmt = plans[0][2].fmt if not isinstance(plans[0][2], InputError) else None
    extra = {f: n for f, n in formats_used.items() if f != main_fmt}
    if extra and fmt is None and len(plans) == 1:
        explanations.append(
            f"{path}: mixed formats: "
            + ", ".join(f"{n} rows read as {f}" for f, n in sorted(extra.items()))
            + " (detected per row)"
        )
    if n_repaired:
        explanations.append(f"{path}: repaired mojibake in {n_repaired} rows")
    if rejects:
        explanations.append(f"{path}: {len(rejects)} of {n_input} rows rejected (see the rejects file)")
    files = [
        {
            "file": str(path),
            "format": main_fmt if len(formats_used) <= 1 else max(formats_used, key=formats_used.get),
            "encoding": info.encoding,
            "rows": n_input,
            "kept": frame.height,
            "rejected": len(rejects),
        }
    ]
    if info.encoding_guess:
        files[0]["encoding_guess"] = info.encoding_guess
    if len(formats_used) > 1:
        files[0]["formats"] = formats_used
    return LoadResult(frame, _rejects_frame(rejects), explanations, n_input, n_repaired, files)


# rows converted per block of the frame (see _load_one): small enough that a block's Python dicts
# are a fraction of the frame, big enough that building a block costs no more than building it whole
_FRAME_BLOCK = 20_000


@dataclass
class _Plan:
    fmt: str
    ctx: dict[str, Any]
    explanation: str


def _segments(raw_rows: list[RawRow], kind: str) -> list[tuple[str | None, list[RawRow]]]:
    """XLSX sheets are read each with its own header, so each gets its own format and roles."""
    if kind not in ("xlsx", "dataset"):
        return [(None, raw_rows)]
    out: dict[str | None, list[RawRow]] = {}
    for r in raw_rows:
        out.setdefault(r.sheet, []).append(r)
    return list(out.items())


def _plan(path, sheet, rows, fmt, mapping, desc, kind, given="given by --format") -> _Plan:
    """Format and column roles from the keys of the first rows (of one sheet)."""
    where = f"{path}" + (f" (sheet {sheet})" if sheet is not None else "")
    keys: set[str] = set()
    for r in rows[:200]:
        keys |= set(r.values)
    keys.discard("__images__")
    file_fmt = fmt or detect_format(keys)
    if file_fmt is None and mapping:
        file_fmt = "qa" if "question" in mapping else ("text" if "text" in mapping else None)
    if file_fmt is None:
        raise InputError(
            f"{where}: cannot tell the format from its columns ({', '.join(sorted(keys)[:12])}); "
            "use --format, or --map question=COLUMN --map answer=COLUMN"
        )
    if file_fmt == "implicit-preference" and isinstance(rows[0].values.get("chosen"), str):
        file_fmt = "hh-rlhf"
    ctx: dict[str, Any] = {}
    if file_fmt == "canonical":
        return _Plan(file_fmt, ctx, "")
    if file_fmt == "qa":
        roles = explain_qa(keys, mapping)
        missing = [c for cols in roles.values() for c in cols if c not in keys]
        if missing:
            raise InputError(
                f"{where}: --map names columns that do not exist: {', '.join(missing)} "
                f"(columns: {', '.join(sorted(keys))})"
            )
        if "question" not in roles:
            raise InputError(
                f"{where}: no question column found among {', '.join(sorted(keys))}; use --map question=COLUMN"
            )
        if "answer" not in roles and "chosen" not in roles and "label" not in roles:
            raise InputError(
                f"{where}: no answer column found among {', '.join(sorted(keys))} (question-only data "
                "cannot become SFT rows); use --map answer=COLUMN"
            )
        ctx["roles"] = roles
        role_txt = "; ".join(f"{k} <- {' + '.join(v)}" for k, v in roles.items())
        other = sorted(keys - {c for cols in roles.values() for c in cols})
        text = f"{where}: {desc}: plain question/answer table: {role_txt}" + (
            f"; kept in meta: {', '.join(other)}" if other else ""
        )
    elif file_fmt == "text":
        ctx["roles"] = {"text": mapping.get("text", ["text"])}
        text = f"{where}: {desc}: plain text (one document per {'line' if kind == 'txt' else 'row'})"
    else:
        why = given if fmt else f"detected from keys {', '.join(sorted(keys)[:8])}"
        text = f"{where}: {desc}: {file_fmt} format ({why})"
    return _Plan(file_fmt, ctx, text)


def _row_format(values: dict, cache: dict) -> tuple[str, dict] | None:
    """The format one row's own keys name (with its column roles for a plain Q&A row), or None."""
    keys = frozenset(k for k in values if k != "__images__")
    if keys in cache:
        return cache[keys]
    found = detect_format(set(keys))
    result: tuple[str, dict] | None = None
    if found == "implicit-preference" and isinstance(values.get("chosen"), str):
        found = "hh-rlhf"
    if found == "qa":
        roles = explain_qa(set(keys), {})
        if "question" in roles and "answer" in roles:
            result = ("qa", {"roles": roles})
    elif found == "text":
        result = ("text", {"roles": {"text": ["text"]}})
    elif found is not None and found != "canonical":
        result = (found, {})
    cache[keys] = result
    return result


# the keys each format needs (what a reject reason names as expected)
_REQUIRED = {
    "alpaca": ("instruction", "output"),
    "sharegpt": ("conversations",),
    "openai": ("messages",),
    "llamafactory-preference": ("conversations", "chosen", "rejected"),
    "llamafactory-v1-preference": ("chosen_messages", "rejected_messages"),
    "trl-preference": ("prompt", "chosen", "rejected"),
    "implicit-preference": ("chosen", "rejected"),
    "hh-rlhf": ("chosen", "rejected"),
    "trl-prompt-completion": ("prompt", "completion"),
}


def _expected_vs_found(reason: str, plan: _Plan, values: dict) -> str:
    """A row that fits no format says what the file's format expects and what the row holds."""
    if plan.fmt in ("qa", "text"):
        need = tuple(c for cols in plan.ctx.get("roles", {}).values() for c in cols)
    else:
        need = _REQUIRED.get(plan.fmt, ())
    if plan.fmt == "alpaca" and "chosen" in values and "rejected" in values:
        need = ("instruction", "chosen", "rejected")
    missing = [k for k in need if k not in values]
    if not missing:
        return reason
    found = ", ".join(sorted(str(k) for k in values if k != "__images__")[:12]) or "no fields"
    return f"{reason}: fits no known format (expected {plan.fmt} fields {', '.join(need)}; found {found})"


def _why(exc: BaseException) -> str:
    if isinstance(exc, RecursionError):
        return TOO_DEEP
    if isinstance(exc, UnicodeEncodeError) and "surrogate" in str(exc):
        bad = exc.object[exc.start] if isinstance(exc.object, str) else "?"
        return f"lone surrogate U+{ord(bad):04X} (an unpaired \\u{ord(bad):04x} escape): not valid Unicode"
    return f"cannot read this row ({type(exc).__name__}: {exc})"


def _frame_of(rows: list[dict[str, Any]]) -> tuple[pl.DataFrame, list[tuple[int, tuple[str | None, str]]]]:
    """The canonical frame of the converted rows, and the rows that no output could hold (index,
    (field, reason)): text with a lone surrogate (a ``\\ud800`` escape in JSON) is not Unicode that
    UTF-8 can write. Checked row by row only when building the frame at once fails."""
    try:
        return to_frame(rows), []
    except Exception:
        pass
    good, bad = [], []
    for i, row in enumerate(rows):
        problem = _unwritable(row)
        if problem is None:
            try:
                to_frame([row])
            except Exception as exc:
                problem = (None, f"cannot hold this row ({type(exc).__name__}: {exc})")
        if problem is None:
            good.append(row)
        else:
            bad.append((i, problem))
    return to_frame(good), bad


def _unwritable(row: dict[str, Any]) -> tuple[str, str] | None:
    for name, value in row.items():
        texts = [t.get("content") for t in value] if name == "history" and value else [value]
        for text in texts:
            if isinstance(text, str):
                try:
                    text.encode("utf-8")
                except UnicodeEncodeError as exc:
                    bad = text[exc.start]
                    return name, (
                        f"lone surrogate U+{ord(bad):04X} (an unpaired \\u{ord(bad):04x} escape) in {name}: "
                        "not valid Unicode, no output can hold it"
                    )
    return None


def _repair_record(rec) -> int:
    """Repair mojibake in place; the text as read goes to ``meta._original`` (field -> text, ``history``
    -> {turn index: text}) so that writing the row back in its own format gives the input again."""
    original: dict[str, Any] = {}
    for f in TEXT_FIELDS:
        v = getattr(rec, f)
        if v:
            fixed, did = repair_mojibake(v)
            if did:
                setattr(rec, f, fixed)
                original[f] = v
    for i, t in enumerate(rec.history):
        if t.content:
            fixed, did = repair_mojibake(t.content)
            if did:
                original.setdefault("history", {})[str(i)] = t.content
                t.content = fixed
    if original:
        rec.meta.setdefault("_repaired", "mojibake")
        rec.meta["_original"] = original
    return int(bool(original))


def _load_canonical(
    path, raw_rows, rejects, desc, explanations, n_input, typed=True, guarded=False
) -> LoadResult:
    """Canonical records read back. ``typed`` is False for CSV/TSV/XLSX, whose cells are text: the label
    and score columns are then parsed back to booleans and numbers (a cell that does not parse rejects
    its row, naming the field) instead of being cast to null."""
    from curate.io.formats import _label

    good = []
    for r in raw_rows:
        v = r.values
        if v.get("label") is not None and not isinstance(v["label"], bool):
            if isinstance(v["label"], str) and not v["label"].strip():
                v = {**v, "label": None}
            else:
                try:
                    v = {**v, "label": _label(v["label"], "label")}
                except RecordError as exc:
                    rejects.append(_reject(path, r.line, r.sheet, "label", str(exc), _raw(v)))
                    continue
        if v.get("kind") not in ("sft", "preference", "kto", "text") or not v.get("id"):
            rejects.append(
                _reject(path, r.line, r.sheet, "kind", "not a canonical record (id/kind missing)", _raw(v))
            )
            continue
        if isinstance(v.get("meta"), dict):
            v = {**v, "meta": json.dumps(v["meta"], ensure_ascii=False, sort_keys=True)}
        problem = None
        for col, shape in (("history", list), ("source", dict)):
            cell = v.get(col)
            if isinstance(cell, str):  # CSV/XLSX exports hold nested values as JSON text
                if not cell.strip():  # an empty cell is how a CSV writes a missing value
                    v = {**v, col: None}
                    continue
                try:
                    cell = json.loads(cell)
                except json.JSONDecodeError as exc:
                    problem = (col, f"not valid JSON ({exc.msg} at column {exc.colno})")
                    break
                v = {**v, col: cell}
            if cell is not None and not isinstance(cell, shape):
                problem = (col, f"expected a JSON {'list of turns' if shape is list else 'object'}")
                break
            if col == "history" and cell and not all(isinstance(t, dict) for t in cell):
                problem = (col, "expected a list of {role, content} turns")
                break
        if problem:
            rejects.append(_reject(path, r.line, r.sheet, problem[0], problem[1], _raw(v)))
            continue
        good.append(v)
    if not good:
        frame = empty_frame()
    else:
        extra_keys: dict[str, None] = {}
        for v in good:
            for k in v:
                if k not in SCHEMA:
                    extra_keys[k] = None
        try:
            frame = pl.DataFrame(good, infer_schema_length=None)
        except Exception:
            frame = pl.from_dicts(good, infer_schema_length=None, strict=False)
        if guarded:  # cells the CSV writer protected from spreadsheets' formula evaluation
            from curate.io.writers import unguard_formulas

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
    return LoadResult(frame, _rejects_frame(rejects), explanations, n_input, 0, files)


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


def _raw(values: dict) -> str:
    """The whole input row as JSON (never cut: a rejected row can be rebuilt from its reject)."""
    return safe_json({k: v for k, v in values.items() if k != "__images__"})


def _raw_row(row: RawRow, info: ReadInfo) -> str:
    """A JSONL row's own line, exactly as it was read; other rows as JSON."""
    if info.lines is not None and row.line and 0 < row.line <= len(info.lines):
        line = info.lines[row.line - 1]
        if line is None and info.reread is not None:  # released once parsed: read the file again
            info.lines = info.reread()
            info.reread = None
            line = info.lines[row.line - 1]
        if line is not None:
            return line
    return _raw(row.values)


def _reject(path, line, sheet, field, reason, raw) -> dict[str, Any]:
    raw = encodable(raw) if raw is not None else None
    return {"file": str(path), "line": line, "sheet": sheet, "field": field, "reason": reason, "raw": raw}


def _rejects_frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=REJECT_SCHEMA) if rows else pl.DataFrame(schema=REJECT_SCHEMA)
