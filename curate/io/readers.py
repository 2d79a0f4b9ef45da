"""Raw readers: a file -> rows (dicts) with their location, plus the rows that could not be parsed.

Every reader yields ``RawRow(values, line, sheet)`` for parsed rows and ``RawReject`` for the rest, so the
caller can account for every input row. ``line`` is the 1-based line of the row's start (JSONL, CSV,
TSV, TXT, JSON items), the spreadsheet row number (XLSX, header = row 1) or the row index + 1 (Parquet).

The readers of each family live in :mod:`curate.io.read_json`, :mod:`curate.io.read_tables` and
:mod:`curate.io.read_binary`; the row types in :mod:`curate.io.rawrows`. This module picks the reader
for a file and accounts for a truncated compressed file.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from curate.io.decode import Decoded, InputError, decode_file, split_compression
from curate.io.rawrows import TOO_DEEP, RawReject, RawRow, ReadInfo, encodable, safe_json
from curate.io.read_binary import read_parquet, read_saved_dataset, read_xlsx
from curate.io.read_json import read_json, read_jsonl
from curate.io.read_tables import looks_tabular, read_delimited, read_txt, unique_headers

__all__ = [
    "BINARY_KINDS",
    "TEXT_KINDS",
    "TOO_DEEP",
    "RawReject",
    "RawRow",
    "ReadInfo",
    "encodable",
    "file_kind",
    "read_rows",
    "safe_json",
    "unique_headers",
]


TEXT_KINDS = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".csv": "csv",
    ".tsv": "tsv",
    ".txt": "txt",
}

BINARY_KINDS = {".xlsx": "xlsx", ".xlsm": "xlsx", ".parquet": "parquet", ".pq": "parquet"}


def file_kind(path: Path) -> str:
    _, ext = split_compression(path)
    if ext in TEXT_KINDS:
        return TEXT_KINDS[ext]
    if ext in BINARY_KINDS:
        return BINARY_KINDS[ext]
    if ext == ".xls":
        raise InputError(f"{path}: legacy .xls is not supported; save it as .xlsx or .csv")
    raise InputError(
        f"{path}: unknown file type {ext or '(no extension)'}; "
        "expected .jsonl .json .csv .tsv .txt .xlsx .parquet (optionally .gz/.zst)"
    )


def read_rows(
    path: Path, *, sheet: str | None = None, encoding: str | None = None, header: bool | None = None
) -> tuple[ReadInfo, Iterator[RawRow | RawReject]]:
    if path.is_dir():  # a datasets save_to_disk folder (sources.expand let nothing else through)
        return ReadInfo("dataset", notes=[]), read_saved_dataset(path)
    kind = file_kind(path)
    if kind == "xlsx":
        return ReadInfo("xlsx", notes=[]), read_xlsx(path, sheet)
    if kind == "parquet":
        return ReadInfo("parquet", notes=[]), read_parquet(path)
    dec = decode_file(path, encoding)
    info = ReadInfo(kind, dec.encoding, dec.compression, dec.truncated, [m for _, m in dec.warnings])
    info.encoding_guess = dec.guess
    if kind == "jsonl" and path.is_file():  # a regular file reads the same again (see ReadInfo.lines)
        info.reread = lambda: decode_file(path, encoding).text.split("\n")
    ends_with_newline = dec.text.endswith("\n")
    info, rows = _read_text_kind(dec, path, kind, info, header)
    if dec.truncated:
        rows = _account_truncation(rows, ends_with_newline)
    return info, rows


def _account_truncation(
    rows: Iterator[RawRow | RawReject], ends_with_newline: bool
) -> Iterator[RawRow | RawReject]:
    """A truncated archive lost data. When the text stops inside a row, that (last) row is the cut one
    and is rejected, whatever the reader made of it; when the cut fell on a line boundary, one reject
    says data was lost after the last line. Either way the run exits 1 instead of passing off a
    partial file as complete."""
    last_line, prev = 0, None
    for row in rows:
        if prev is not None:
            yield prev
        prev = row
        if row.line:
            last_line = max(last_line, row.line)
    if prev is not None and not ends_with_newline:
        if isinstance(prev, RawRow):
            raw = safe_json(prev.values)
            prev = RawReject(
                prev.line, "last row cut off by the truncated compressed file", raw, sheet=prev.sheet
            )
        elif "truncated" not in prev.reason:
            prev = RawReject(
                prev.line,
                "last row cut off by the truncated compressed file: " + prev.reason,
                prev.raw,
                prev.field,
                prev.sheet,
            )
        yield prev
        return
    if prev is not None:
        yield prev
    yield RawReject(
        last_line + 1, f"the compressed file is truncated after line {last_line}: whatever followed is lost"
    )


def _read_text_kind(
    dec: Decoded, path: Path, kind: str, info: ReadInfo, header: bool | None
) -> tuple[ReadInfo, Iterator[RawRow | RawReject]]:
    if kind == "jsonl":
        info.lines = dec.text.split("\n")
        # the lines are the text from here on: holding both costs a second copy of the file while
        # the rows are parsed
        dec.text = ""
        return info, read_jsonl(dec, info.lines, release=info.reread is not None)
    if kind == "json":
        return info, read_json(dec, path, info)
    if kind == "txt":
        if looks_tabular(dec.text):
            info.kind = "tsv"
            info.notes.append("the .txt file holds tab-separated columns; read as TSV")
            return info, read_delimited(dec, path, "tsv", header)
        return info, read_txt(dec)
    return info, read_delimited(dec, path, kind, header)
