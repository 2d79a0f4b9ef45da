"""Read any supported input into one canonical frame, accounting for every row.

``input_rows == frame.height + rejects.height`` always holds.

Reading a file is: the raw rows and the rows that could not be parsed (:mod:`curate.io.readers`), the
format and column roles of each file or sheet (:mod:`curate.io.plan`), then the row-by-row conversion
to canonical records and the frame built from them in blocks (here). Canonical files written by a
stage are read back by :mod:`curate.io.canonical`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from curate.io.accounting import (
    REJECT_SCHEMA,
    LoadResult,
    raw_text,
    reject,
    rejects_frame,
    row_error,
)
from curate.io.canonical import fast_canonical, fast_result, load_canonical, read_jsonl_frame
from curate.io.decode import InputError, repair_mojibake
from curate.io.formats import FORMAT_ALIASES, FORMATS, convert
from curate.io.plan import Plan, expected_vs_found, plan_segment, row_format, segments
from curate.io.rawrows import RawReject, RawRow, ReadInfo
from curate.io.readers import read_rows
from curate.io.sources import Source, expand
from curate.records import RecordError, empty_frame, to_frame

__all__ = [
    "REJECT_SCHEMA",
    "TEXT_FIELDS",
    "LoadResult",
    "load",
    "load_sources",
    "read_frame",
    "read_jsonl_frame",
]

TEXT_FIELDS = ("system", "question", "answer", "chosen", "rejected", "text")


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
    fmt = _known_format(fmt)  # before the paths are looked at, as always
    return load_sources(
        expand([Path(p) for p in paths]), fmt, mapping, sheet, repair=repair, encoding=encoding
    )


def load_sources(
    sources: list[Source],
    fmt: str | None = None,
    mapping: dict[str, list[str]] | None = None,
    sheet: str | None = None,
    *,
    repair: bool = True,
    encoding: str | None = None,
) -> LoadResult:
    """:func:`load` of sources already expanded (:func:`curate.io.sources.expand`): a recipe reads
    each source of a folder or dataset_info.json input on its own, to label its rows."""
    fmt = _known_format(fmt)
    frames, rejects, explanations, files = [], [], [], []
    total = repaired = 0
    for source in sources:
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


def _known_format(fmt: str | None) -> str | None:
    if fmt is not None:
        fmt = FORMAT_ALIASES.get(fmt, fmt)
        if fmt not in FORMATS:
            raise InputError(f"unknown --format {fmt!r}; choose from {', '.join(FORMATS)}")
    return fmt


def read_frame(path: Path | str) -> pl.DataFrame:
    """Read a canonical file written by a curate stage (strict: rejects are an error here)."""
    res = load([path], fmt="canonical")
    if res.rejects.height:
        first = res.rejects.row(0, named=True)
        raise InputError(f"{path}: line {first['line']}: {first['reason']}")
    return res.frame


# one file or XLSX sheet: its name, its raw rows, and its plan (or why none fits)
_Segment = tuple[str | None, list[RawRow], Plan | InputError]


def _load_one(source: Source, fmt, mapping, sheet, repair, encoding) -> LoadResult:
    path = source.path
    if fmt in (None, "canonical") and not mapping and source.fmt is None:
        fast = fast_canonical(path)
        if fast is not None:
            return fast_result(path, fast)
    info, rows_iter = read_rows(path, sheet=sheet, encoding=encoding)
    raw_rows: list[RawRow] = []
    rejects: list[dict[str, Any]] = []
    for item in rows_iter:
        if isinstance(item, RawReject):
            rejects.append(reject(path, item.line, item.sheet, item.field, item.reason, item.raw))
        else:
            raw_rows.append(item)
    if source.rename and not mapping:  # a dataset_info.json entry's column names
        rename = source.rename
        for r in raw_rows:
            r.values = {rename.get(k, k): v for k, v in r.values.items()}
    given = "given by --format"
    if fmt is None and not mapping and source.fmt is not None:
        fmt, given = source.fmt, "as dataset_info.json describes it"
    desc = _describe(source, info)
    explanations = [f"{path}: warning: {note}" for note in info.notes or []]
    n_input = len(raw_rows) + len(rejects)
    if not raw_rows:
        explanations.insert(0, f"{path}: {desc}: no readable rows")
        entry: dict[str, Any] = {"file": str(path), "format": None, "rows": n_input}
        if info.encoding_guess:
            entry["encoding_guess"] = info.encoding_guess
        return LoadResult(empty_frame(), rejects_frame(rejects), explanations, n_input, 0, [entry])

    plans = _plans(path, raw_rows, info, fmt, mapping, desc, given)
    if len(plans) == 1 and plans[0][2].fmt == "canonical":  # type: ignore[union-attr]
        return load_canonical(
            path,
            raw_rows,
            rejects,
            desc,
            explanations,
            n_input,
            typed=info.kind in ("jsonl", "json", "parquet"),
            guarded=info.kind in ("csv", "tsv"),
        )
    retry = fmt is None and not mapping
    frame, n_repaired, formats_used = _convert_rows(path, info, plans, rejects, explanations, retry, repair)
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
    return LoadResult(frame, rejects_frame(rejects), explanations, n_input, n_repaired, files)


def _describe(source: Source, info: ReadInfo) -> str:
    """How the file was read, for the explanations: kind, dataset, compression, encoding."""
    desc = info.kind
    if source.dataset:
        desc = f"dataset {source.dataset} ({desc})"
    if info.compression:
        desc += f", {info.compression}"
    if info.encoding:
        desc += f", {info.encoding}"
    return desc


def _plans(path, raw_rows, info: ReadInfo, fmt, mapping, desc, given) -> list[_Segment]:
    """The plan of each segment (one, or one per XLSX sheet). A sheet whose columns say nothing gets
    its error instead of a plan (its rows are rejected); an error when no segment has a plan."""
    segs = segments(raw_rows, info.kind)
    if len(segs) == 1 or fmt is not None:
        segs = [(None, raw_rows)]
    plans: list[_Segment] = []
    for sheet_name, rows in segs:
        try:
            plan: Plan | InputError = plan_segment(
                path, sheet_name, rows, fmt, mapping, desc, info.kind, given
            )
        except InputError as exc:
            if len(segs) == 1:
                if info.parse_error:  # the salvaged items say nothing: the file's own error is the news
                    raise InputError(f"{path}: {info.parse_error}") from None
                raise
            plan = exc
        plans.append((sheet_name, rows, plan))
    if all(isinstance(p, InputError) for _, _, p in plans):
        raise plans[0][2]  # type: ignore[misc]
    return plans


def _convert_rows(
    path, info: ReadInfo, plans: list[_Segment], rejects: list, explanations: list, retry: bool, repair: bool
) -> tuple[pl.DataFrame, int, dict[str, int]]:
    """Every planned row converted to a canonical record: the frame, the rows repaired, and the rows
    read per format. A row that cannot be converted goes to ``rejects``; rows no output can hold are
    listed after the others. ``retry``: a row the file's format cannot read is read in the format its
    own keys name (a file that mixes formats)."""
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
            unheld.append(reject(path, r.line, r.sheet, reason[0], reason[1], raw_text(r, info)))
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
            rejects += [reject(path, r.line, r.sheet, None, reason, raw_text(r, info)) for r in rows]
            explanations.append(f"{path}: sheet {sheet_name}: {reason}")
            continue
        explanations.append(plan.explanation)
        for k, r in enumerate(rows):
            rows[k] = None  # type: ignore[call-overload]  # released with its block (see flush)
            try:
                rec, used = _convert_row(r, plan, by_keys if retry else None)
                rec.source_file, rec.source_line, rec.source_sheet = str(path), r.line, r.sheet
                if repair:
                    n_repaired += _repair_record(rec)
                row = rec.as_row()
            except RecordError as exc:
                reason = expected_vs_found(exc.reason, plan, r.values)
                rejects.append(reject(path, r.line, r.sheet, exc.field, reason, raw_text(r, info)))
                continue
            except Exception as exc:  # anything one row's content can raise costs that row only
                rejects.append(reject(path, r.line, r.sheet, None, row_error(exc), raw_text(r, info)))
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
    return frame, n_repaired, formats_used


def _convert_row(r: RawRow, plan: Plan, by_keys: dict | None):
    """(record, the format that read it). ``by_keys``: the per-row detection cache when a row the
    file's format cannot read may be read in the format its own keys name, else None."""
    try:
        return convert(r.values, plan.fmt, plan.ctx), plan.fmt
    except RecordError:
        # a file that mixes formats (merged exports): a row the file's format cannot read is read in
        # the format its own keys name
        other = row_format(r.values, by_keys) if by_keys is not None else None
        if other is None or other[0] == plan.fmt:
            raise
        return convert(r.values, other[0], other[1]), other[0]


# rows converted per block of the frame (see _convert_rows): small enough that a block's Python dicts
# are a fraction of the frame, big enough that building a block costs no more than building it whole
_FRAME_BLOCK = 20_000


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
