"""Delimited text -> raw rows: CSV (delimiter sniffed), TSV (quoting detected), a .txt file of
tab-separated columns, or plain text with one document per line; headers detected and made unique."""

from __future__ import annotations

import csv
import io
import re
import sys
from collections.abc import Iterator
from pathlib import Path

from curate.io.decode import Decoded, InputError
from curate.io.rawrows import RawReject, RawRow

# Long answers (whole documents in one cell) exceed csv's default 128 KiB field limit; the limit must fit
# a C long, which is 32-bit on Windows.
csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


def looks_tabular(text: str) -> bool:
    lines = [ln for ln in text[:50000].split("\n")[:50] if ln.strip()]
    if len(lines) < 2:
        return False
    tabs = {ln.count("\t") for ln in lines}
    return len(tabs) == 1 and tabs.pop() >= 1


_QUOTED_TSV_FIELD = re.compile(r'(?:^|\t)"(?:[^"]|"")*"(?=\t|\n|$)', re.M)


def _tsv_quoting(text: str) -> int:
    """TSV is usually unquoted (a stray ``"`` in a Chinese answer is text), but spreadsheet and polars
    exports quote fields that hold tabs, newlines or quotes. Honour quotes only when a sample holds
    a fully quoted field and parsing with quotes gives every sampled row the header's width."""
    sample = text[:200_000]
    if not _QUOTED_TSV_FIELD.search(sample):
        return csv.QUOTE_NONE
    cut = len(sample) < len(text)
    rows: list[list[str]] = []
    reader = csv.reader(io.StringIO(sample, newline=""), delimiter="\t", strict=True)
    try:
        for row in reader:
            rows.append(row)
    except csv.Error as exc:
        # only the sample ending inside a quoted (multi-line) cell is forgiven; any other quoting
        # error ('"Hi," he said' as a cell) means quotes are text in this file
        if not (cut and "unexpected end of data" in str(exc)):
            return csv.QUOTE_NONE
    if cut and rows:
        rows = rows[:-1]  # the last row may be cut by the sample boundary
    rows = [r for r in rows if r and any(c.strip() for c in r)]
    if len(rows) >= 2 and len({len(r) for r in rows}) == 1:
        return csv.QUOTE_MINIMAL
    return csv.QUOTE_NONE


def read_txt(dec: Decoded) -> Iterator[RawRow | RawReject]:
    # one document per non-empty line (the LLaMA-Factory / common pretraining convention)
    for i, line in enumerate(dec.text.split("\n"), start=1):
        if i in dec.bad_lines:
            yield RawReject(i, dec.bad_lines[i], line)
            continue
        if line.strip():
            yield RawRow({"text": line.rstrip()}, i)


def read_delimited(dec: Decoded, path: Path, kind: str, header: bool | None) -> Iterator[RawRow | RawReject]:
    text = dec.text
    if kind == "tsv":
        delimiter, quoting = "\t", _tsv_quoting(text)
    else:
        delimiter = _sniff_delimiter(text)
        quoting = csv.QUOTE_MINIMAL
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quoting=quoting, strict=False)
    try:
        first = next(reader)
    except StopIteration:
        return
    except csv.Error as exc:
        raise InputError(f"{path}: cannot parse the header row: {exc}") from None
    if header is None:
        header = _has_header(first, text, delimiter)
    if header:
        names = [h.strip().lstrip("\ufeff") for h in first]
        data_start_line = None
    else:
        names = [f"column_{i + 1}" for i in range(len(first))]
        data_start_line = 1
    names = unique_headers(names)
    width = len(names)

    def rows():
        if data_start_line is not None:
            yield 1, first
        line_before = reader.line_num
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield line_before + 1, exc
                line_before = reader.line_num
                continue
            yield line_before + 1, row
            line_before = reader.line_num

    for line, row in rows():
        if isinstance(row, Exception):
            yield RawReject(line, f"CSV parse error: {row}")
            continue
        if dec.bad_lines and any(
            ln in dec.bad_lines for ln in range(line, line + 1 + sum(c.count("\n") for c in row))
        ):
            yield RawReject(
                line, dec.bad_lines.get(line, "undecodable bytes in this row"), delimiter.join(row)
            )
            continue
        if not row or all(not c.strip() for c in row):
            continue  # blank line
        if len(row) != width:
            yield RawReject(
                line,
                f"row has {len(row)} fields, header has {width}",
                delimiter.join(row),
            )
            continue
        values = {}
        for name, cell in zip(names, row, strict=True):
            if name == "" or name.lower().startswith("unnamed:"):
                continue  # unnamed index column (pandas export)
            values[name] = cell
        yield RawRow(values, line)


def _sniff_delimiter(text: str) -> str:
    head = text[:20000]
    first_line = head.split("\n", 1)[0]
    counts = {d: first_line.count(d) for d in (",", "\t", ";", "|")}
    best = max(counts, key=counts.get)
    return best if counts[best] > 0 else ","


def _has_header(first: list[str], text: str, delimiter: str) -> bool:
    """Headerless TSVs (paraphrase sets: text, text, label) are common; a header row has short,
    distinct, non-numeric cells."""
    if not first:
        return True
    cells = [c.strip() for c in first]
    if any(not c for c in cells[1:]):
        return True
    if any(c.replace(".", "", 1).lstrip("-").isdigit() for c in cells):
        return False
    # repeated names (two "answer" columns in an export) still make a header: unique_headers renames them
    return max(len(c) for c in cells) <= 40


def unique_headers(names: list[str]) -> list[str]:
    """Repeated column names get a suffix (answer, answer_2) so that no cell overwrites another."""
    seen: dict[str, int] = {}
    taken = set(names)
    out = []
    for n in names:
        if n and n in seen:
            k = seen[n] + 1
            while f"{n}_{k}" in taken:
                k += 1
            seen[n] = k
            taken.add(f"{n}_{k}")
            out.append(f"{n}_{k}")
        else:
            seen.setdefault(n, 1)
            out.append(n)
    return out
