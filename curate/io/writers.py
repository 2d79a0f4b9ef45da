"""Writers: canonical frames to .jsonl/.json/.parquet/.csv/.tsv/.xlsx, always atomically.

A file is written to a temporary name in the same directory, flushed and fsynced, then renamed over the
target, so a reader (or a crash) never sees half a file.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from pathlib import Path

import polars as pl

from curate import staging
from curate.core import vocab
from curate.io.decode import InputError
from curate.ioerrors import named
from curate.names import STAGE_SUFFIX

WRITABLE = vocab.WRITABLE_EXTENSIONS


def _file_mode() -> int:
    """The mode ``open()`` would give a new file: 0o666 less the process umask (mkstemp makes 0o600)."""
    try:  # Linux: read it without changing it (os.umask sets the umask of every thread)
        with open("/proc/self/status", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


@contextmanager
def atomic_path(path: Path):
    """Yield a temporary path next to ``path``; on success it replaces ``path`` (or, for an output a
    refresh is staging, stays pending until its commit: see :mod:`curate.staging`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, _file_mode())  # an ordinary file for other readers, not mkstemp's private 0o600
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        pending = staging.claimed(path)
        if pending is not None:
            pending.defer(Path(tmp), path)
        else:
            os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass

        better = named(exc, path)  # a full disk: the error names the file being written
        if better is not None:
            raise better from exc
        raise


def atomic_write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _flat(frame: pl.DataFrame) -> pl.DataFrame:
    """Nested columns (history, source, lists of flags) as JSON text, for CSV/TSV/XLSX."""
    out = []
    for name in frame.columns:
        col = frame[name]
        if isinstance(col.dtype, pl.Struct | pl.List | pl.Array):
            out.append(
                pl.Series(
                    name,
                    [None if v is None else json.dumps(v, ensure_ascii=False) for v in col.to_list()],
                    dtype=pl.Utf8,
                )
            )
        else:
            out.append(col)
    return pl.DataFrame(out)


def _meta_value(meta: str | None):
    """``meta`` (JSON text in the frame) as the JSON object it holds, for .json outputs."""
    if meta is None:
        return None
    try:
        return json.loads(meta)
    except json.JSONDecodeError:
        return meta


def write_ndjson_meta_object(frame: pl.DataFrame, path: Path) -> None:
    """JSON Lines with ``meta`` written as a JSON object, not a JSON string (readers parse it once, as
    ``datasets`` and every JSON tool expect). The frame holds meta as JSON text, so it is spliced in as
    the last key of each line (vectorised; :func:`curate.io.load.read_jsonl_frame` reads it back
    byte for byte). Old files with meta as a string stay readable."""
    if "meta" not in frame.columns or frame["meta"].dtype != pl.Utf8 or frame.width < 2 or frame.height == 0:
        frame.write_ndjson(path)
        return
    # in slices: the encoded lines are a second copy of the data, so the whole frame at once doubled
    # the peak memory of every command that writes JSONL (0.2 GB per 100k rows)
    with open(path, "wb") as fh:
        for part in frame.iter_slices(n_rows=_SPLICE_ROWS):
            _meta_object_lines(part).write_csv(fh, include_header=False, quote_style="never")


_SPLICE_ROWS = 20_000


def _meta_object_lines(frame: pl.DataFrame) -> pl.DataFrame:
    lines = frame.drop("meta").select(pl.struct(pl.all()).struct.json_encode()).to_series()
    meta = frame["meta"]
    as_object = meta.str.starts_with("{") & meta.str.ends_with("}")
    # anything else (never written by curate, but possible in a foreign canonical file) as a JSON string
    as_string = frame.select(pl.struct("meta").struct.json_encode())
    as_string = as_string.to_series().str.slice(8).str.head(-1)  # '{"meta":"x"}' -> '"x"'
    value = pl.select(
        pl.when(meta.is_null()).then(pl.lit("null")).when(as_object).then(meta).otherwise(as_string)
    ).to_series()
    return pl.DataFrame({"line": lines.str.head(-1) + ',"meta":' + value + "}"})


XLSX_CELL_LIMIT = 32_767  # characters in one Excel cell


def _warn_cut_cells(frame: pl.DataFrame, path: Path) -> None:
    """Excel holds at most 32,767 characters per cell and the writer cuts longer text: say so (with
    the way to keep it) rather than let a spreadsheet output lose text silently."""
    long = [
        (name, int(frame[name].str.len_chars().gt(XLSX_CELL_LIMIT).sum()))
        for name, dtype in frame.schema.items()
        if dtype == pl.Utf8
    ]
    long = [(name, n) for name, n in long if n]
    if long:
        where = ", ".join(f"{n} in {name}" for name, n in long)
        sys.stderr.write(
            f"warning: {path}: {sum(n for _, n in long)} cells are longer than Excel's {XLSX_CELL_LIMIT:,} "
            f"characters and are cut in the workbook ({where}); write .jsonl or .parquet to keep them whole\n"
        )


def write_frame(frame: pl.DataFrame, path: Path | str) -> Path:
    path = Path(path)
    ext = path.suffix.lower()
    if ext not in WRITABLE:
        raise InputError(
            f"{path}: cannot write {ext or 'files without an extension'}; use one of {' '.join(WRITABLE)}"
        )
    with atomic_path(path) as tmp:
        if ext == ".jsonl":
            write_ndjson_meta_object(frame, tmp)
        elif ext == ".json":
            rows = frame.to_dicts()
            if "meta" in frame.columns and frame["meta"].dtype == pl.Utf8:
                rows = [{**r, "meta": _meta_value(r["meta"])} for r in rows]
            tmp.write_text(json.dumps(rows, ensure_ascii=False, indent=1, default=str), encoding="utf-8")
        elif ext == ".parquet":
            frame.write_parquet(tmp)
        elif ext in (".csv", ".tsv"):
            flat = _flat(frame)
            if formula_guard_on():
                flat = guard_formulas(flat)
            flat.write_csv(tmp, separator="\t" if ext == ".tsv" else ",")
        elif ext == ".xlsx":
            flat = _flat(frame)
            _warn_cut_cells(flat, path)
            flat.write_excel(tmp, worksheet="data")
    return path


# Cells a spreadsheet would run as a formula (CSV injection): = + - @ and a leading tab or CR. OWASP's
# advice is a leading apostrophe, which Excel and LibreOffice show as text. A cell that already starts
# with apostrophes before such a character gets one more, so reading back (strip one) is lossless.
FORMULA_START = r"^'*[=+\-@\t\r]"


def formula_guard_on() -> bool:
    """On unless ``curate --no-csv-formula-guard`` (or TAMIS_CSV_FORMULA_GUARD=0) turned it off."""
    return os.environ.get("TAMIS_CSV_FORMULA_GUARD", "1").strip().lower() not in ("0", "false", "no", "off")


def guard_formulas(frame: pl.DataFrame) -> pl.DataFrame:
    """Text cells that start like a formula get a leading ``'`` (vectorised, text columns only)."""
    exprs = [
        pl.when(pl.col(name).str.contains(FORMULA_START))
        .then(pl.lit("'") + pl.col(name))
        .otherwise(pl.col(name))
        .alias(name)
        for name, dtype in frame.schema.items()
        if dtype == pl.Utf8
    ]
    return frame.with_columns(exprs) if exprs else frame


def unguard_formulas(frame: pl.DataFrame) -> pl.DataFrame:
    """The inverse of :func:`guard_formulas`, for canonical records read back from a CSV/TSV."""
    exprs = [
        pl.col(name).str.replace(r"^'('*[=+\-@\t\r])", "$1").alias(name)
        for name, dtype in frame.schema.items()
        if dtype == pl.Utf8
    ]
    return frame.with_columns(exprs) if exprs else frame


def write_records(rows: Iterable[dict], path: Path | str) -> Path:
    """Write plain dicts (exports in foreign formats) as .jsonl or .json."""
    path = Path(path)
    rows = list(rows)
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as fh:
            if path.suffix.lower() == ".json":
                json.dump(rows, fh, ensure_ascii=False, indent=1, default=str)
            else:
                for r in rows:
                    fh.write(json.dumps(r, ensure_ascii=False, default=str) + "\n")
    return path


def write_rejects(rejects: pl.DataFrame, path: Path | str) -> Path:
    return write_frame(rejects, Path(path))


def default_output(input_path: Path, stage: str, ext: str = ".jsonl") -> Path:
    """data.csv -> data.<stage suffix>.jsonl next to the input (compression suffixes dropped), e.g.
    ``curate score data.csv`` writes data.scored.jsonl.

    The suffixes come from the stage registry (:mod:`curate.stages`, a layer above this one, fills
    :data:`curate.names.STAGE_SUFFIX` when imported): a stage it does not name is a KeyError, never a
    guessed name (data.dedup.jsonl instead of data.deduped.jsonl, and no known suffix stripped)."""
    if stage not in STAGE_SUFFIX:
        why = "the stage registry (curate.stages) is not imported" if not STAGE_SUFFIX else "unknown stage"
        raise KeyError(f"no default output suffix for stage {stage!r}: {why}")
    name = input_path.name
    for suffix in vocab.COMPRESSED_EXTENSIONS:
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
    stem = name.rsplit(".", 1)[0] if "." in name else name
    # data.deduped.jsonl -> data.filtered.jsonl rather than data.deduped.filtered.jsonl
    for known in (*STAGE_SUFFIX.values(), *STAGE_SUFFIX):
        if stem.endswith("." + known):
            stem = stem[: -len(known) - 1]
            break
    return input_path.with_name(f"{stem}.{STAGE_SUFFIX[stage]}{ext}")


def default_report_output(target: Path) -> Path:
    """Where ``curate report TARGET`` writes unless told: report.html inside a directory, else
    <name>.report.html beside the file, <name> being its name up to the first dot
    (data.curated.jsonl -> data.report.html; recipe.yaml -> recipe.report.html)."""
    if target.is_dir():
        return target / "report.html"
    return target.with_name(f"{target.name.split('.')[0]}.report.html")


Writer = Callable[[pl.DataFrame, Path], Path]
