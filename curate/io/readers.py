"""Raw readers: a file -> rows (dicts) with their location, plus the rows that could not be parsed.

Every reader yields ``RawRow(values, line, sheet)`` for parsed rows and ``RawReject`` for the rest, so the
caller can account for every input row. ``line`` is the 1-based line of the row's start (JSONL, CSV,
TSV, TXT, JSON items), the spreadsheet row number (XLSX, header = row 1) or the row index + 1 (Parquet).
"""

from __future__ import annotations

import csv
import io
import json
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from curate.io.decode import Decoded, InputError, decode_file, split_compression

# Long answers (whole documents in one cell) exceed csv's default 128 KiB field limit; the limit must fit
# a C long, which is 32-bit on Windows.
csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


@dataclass
class RawRow:
    values: dict[str, Any]
    line: int
    sheet: str | None = None


@dataclass
class RawReject:
    line: int | None
    reason: str
    raw: str | None = None
    field: str | None = None
    sheet: str | None = None


@dataclass
class ReadInfo:
    kind: str  # jsonl, json, csv, tsv, xlsx, parquet, txt
    encoding: str | None = None
    compression: str | None = None
    truncated: bool = False
    notes: list[str] | None = None
    # JSONL: the file's lines, so a row rejected after parsing keeps its exact source text as ``raw``;
    # a line that parsed is None there when ``reread`` can give the lines again (see _read_jsonl)
    lines: list[str | None] | None = None
    reread: Callable[[], list[str]] | None = None
    # JSON: the parse error of a damaged document whose complete items were salvaged
    parse_error: str | None = None
    # the encoding was a statistical guess: {encoding, confidence, alternatives}
    encoding_guess: dict | None = None


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
        return ReadInfo("dataset", notes=[]), _read_saved_dataset(path)
    kind = file_kind(path)
    if kind == "xlsx":
        return ReadInfo("xlsx", notes=[]), _read_xlsx(path, sheet)
    if kind == "parquet":
        return ReadInfo("parquet", notes=[]), _read_parquet(path)
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
        return info, _read_jsonl(dec, info.lines, release=info.reread is not None)
    if kind == "json":
        return info, _read_json(dec, path, info)
    if kind == "txt":
        if _looks_tabular(dec.text):
            info.kind = "tsv"
            info.notes.append("the .txt file holds tab-separated columns; read as TSV")
            return info, _read_delimited(dec, path, "tsv", header)
        return info, _read_txt(dec)
    return info, _read_delimited(dec, path, kind, header)


def _read_jsonl(
    dec: Decoded, lines: list[str | None] | None = None, release: bool = False
) -> Iterator[RawRow | RawReject]:
    """``release``: a line that parses is dropped from ``lines`` (its row holds the same text parsed),
    so a big file is not held twice, as lines and as rows, at once."""
    lines = dec.text.split("\n") if lines is None else lines
    last = len(lines)
    while last > 0 and not lines[last - 1].strip():  # type: ignore[union-attr]
        last -= 1
    for i in range(1, last + 1):
        line: str = lines[i - 1]  # type: ignore[assignment]
        if i in dec.bad_lines:
            yield RawReject(i, dec.bad_lines[i], line)
            continue
        s = line.strip()
        if not s:
            continue
        try:
            obj = json.loads(s)
        except json.JSONDecodeError as exc:
            reason = f"invalid JSON at column {exc.colno}: {exc.msg}"
            if dec.truncated and i == last:
                reason = "last line cut off by the truncated compressed file: " + reason
            yield RawReject(i, reason, line)
            continue
        except RecursionError:
            yield RawReject(i, TOO_DEEP, line)
            continue
        if not isinstance(obj, dict):
            yield RawReject(i, f"expected a JSON object per line, got {type(obj).__name__}", line)
            continue
        if release:
            lines[i - 1] = None
        yield RawRow(obj, i)


def _read_json(dec: Decoded, path: Path, info: ReadInfo | None = None) -> Iterator[RawRow | RawReject]:
    text = dec.text
    decoder = json.JSONDecoder()
    start = len(text) - len(text.lstrip())
    if start >= len(text):
        return
    # A .json file that is really JSON Lines.
    first_line = text[start:].split("\n", 1)[0].strip()
    if first_line.startswith("{") and first_line.endswith("}") and text.count("\n") > 1:
        try:
            json.loads(first_line)
            obj, end = decoder.raw_decode(text, start)
            if text[end:].strip():
                yield from _read_jsonl(dec)
                return
        except (json.JSONDecodeError, RecursionError):
            pass
    try:
        obj = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        # A cut-off array, trailing commas or one item nested too deeply: keep every complete item
        array_at = _array_start(text, start)
        if array_at is None:
            if isinstance(exc, RecursionError):
                raise InputError(f"{path}: {TOO_DEEP}") from None
            raise InputError(
                f"{path}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
            ) from None
        if info is not None:
            info.parse_error = (
                TOO_DEEP
                if isinstance(exc, RecursionError)
                else f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
            )
            info.notes.append(f"{info.parse_error}; every complete item of the array is kept")
        yield from _without_undecodable(_salvage_array(text, array_at, _LineIndex(text)), dec)
        return
    line_index = _LineIndex(text)
    # Item line numbers: re-scan the top-level array with raw_decode (cheap, exact).
    if isinstance(obj, dict):
        lists = [k for k, v in obj.items() if isinstance(v, list) and v and isinstance(v[0], (dict, list))]
        if len(lists) == 1 and not _looks_like_record(obj):
            items = obj[lists[0]]
            yield from _without_undecodable(_flatten(items, [1] * len(items), path), dec)
            return
        yield RawRow(obj, line_index.line_of(start))
        return
    if not isinstance(obj, list):
        raise InputError(f"{path}: top-level JSON is a {type(obj).__name__}, expected an array or object")
    positions = _array_item_positions(text, start, decoder)
    lines = [line_index.line_of(p) for p in positions] if len(positions) == len(obj) else [None] * len(obj)
    yield from _without_undecodable(_flatten(obj, lines, path), dec)


TOO_DEEP = "nested deeper than the JSON reader allows (about 1,000 levels)"
# an array at the top, or the one array of a wrapping object ({"data": [...]})
_WRAPPED_ARRAY = re.compile(r'\{\s*"(?:[^"\\]|\\.)*"\s*:\s*\[')
# JSON tokens for skipping one value without parsing it: a string (group 1 empty when unterminated),
# a bracket, or a run of anything else
_JSON_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*("?)|[\[\]{}]|[^"\[\]{}]+', re.S)


def _array_start(text: str, start: int) -> int | None:
    if text[start] == "[":
        return start
    m = _WRAPPED_ARRAY.match(text, start)
    return m.end() - 1 if m else None


def _skip_value(text: str, pos: int) -> int | None:
    """The end of the JSON value starting at ``pos`` (brackets matched, strings skipped), or None when
    the text ends inside it. Used only for items the parser refused, to find where the next one starts."""
    depth = 0
    for m in _JSON_TOKEN.finditer(text, pos):
        t = m.group()
        if t in "[{":
            depth += 1
        elif t in "]}":
            depth -= 1
            if depth <= 0:
                return m.end()
        elif t[0] == '"':
            if not m.group(1):
                return None
            if depth == 0:
                return m.end()
        elif depth == 0:  # a scalar item: it ends at the next separator
            cut = min(i for i in (t.find(","), len(t)) if i >= 0)
            return m.start() + cut
    return None


def _salvage_array(text: str, at: int, lines: _LineIndex) -> Iterator[RawRow | RawReject]:
    """Read a JSON array item by item after the whole document failed to parse: complete items are
    kept; an invalid or too-deep item is rejected and reading goes on after it; an item the text ends
    inside (a cut-off file) is rejected and so is the missing rest; trailing commas are tolerated."""
    decoder = json.JSONDecoder()
    n, pos, idx = len(text), at + 1, 0
    while True:
        while pos < n and text[pos] in " \t\n\r,":
            pos += 1
        if pos >= n:
            yield RawReject(
                lines.line_of(n - 1) + 1,
                f"the JSON array is cut off after item {idx}: it never closes, whatever followed is lost",
            )
            return
        if text[pos] == "]":
            return
        line = lines.line_of(pos)
        try:
            obj, end = decoder.raw_decode(text, pos)
        except (json.JSONDecodeError, RecursionError) as exc:
            end = _skip_value(text, pos)
            if end is None:
                yield RawReject(
                    line, f"item {idx} is cut off: the JSON array ends inside it", text[pos:].rstrip()
                )
                return
            reason = TOO_DEEP if isinstance(exc, RecursionError) else f"invalid JSON: {exc.msg}"
            yield RawReject(line, f"item {idx}: {reason}", text[pos:end])
            pos, idx = end, idx + 1
            continue
        if isinstance(obj, dict):
            yield RawRow(obj, line)
        elif isinstance(obj, list) and all(isinstance(sub, dict) for sub in obj):
            for sub in obj:
                yield RawRow(sub, line)
        else:
            yield RawReject(line, f"item {idx} is a {type(obj).__name__}, not an object", text[pos:end])
        pos, idx = end, idx + 1


def safe_json(value: Any) -> str:
    """``value`` as JSON text for a reject's ``raw``, whatever it holds: too deep a nesting or a lone
    surrogate must not turn one rejected row into a failed file."""
    try:
        text = json.dumps(value, ensure_ascii=False, default=str)
    except (RecursionError, ValueError):
        return "<a value nested too deeply to show>"
    return encodable(text)


def encodable(text: str) -> str:
    """Text that UTF-8 can hold: lone surrogates (from ``\\ud800`` escapes) written as escapes."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def _without_undecodable(rows: Iterator[RawRow | RawReject], dec: Decoded) -> Iterator[RawRow | RawReject]:
    """A JSON document with undecodable bytes (decoded with U+FFFD in their place, lines listed in
    ``dec.bad_lines``): every record holding a replacement character is rejected, never kept mangled."""
    if not dec.bad_lines:
        yield from rows
        return
    reason = next(iter(dec.bad_lines.values()))
    for row in rows:
        if isinstance(row, RawRow):
            raw = safe_json(row.values)
            if "\ufffd" in raw:
                yield RawReject(
                    row.line, f"undecodable bytes in this record ({reason})", raw, sheet=row.sheet
                )
                continue
        yield row


def _looks_like_record(obj: dict) -> bool:
    keys = set(obj)
    return bool(keys & {"messages", "conversations", "chosen", "instruction", "question", "prompt"})


def _flatten(items: list, lines: list, path: Path, prefix: str = "") -> Iterator[RawRow | RawReject]:
    for idx, (item, line) in enumerate(zip(items, lines, strict=True)):
        if isinstance(item, dict):
            yield RawRow(item, line or idx + 1)
        elif isinstance(item, list):
            # nested arrays (e.g. [[{...}], [{...}]]): every object inside is a row
            for sub in item:
                if isinstance(sub, dict):
                    yield RawRow(sub, line or idx + 1)
                else:
                    yield RawReject(
                        line,
                        f"item {prefix}{idx}: nested value is a {type(sub).__name__}, not an object",
                        safe_json(sub),
                    )
        else:
            yield RawReject(
                line,
                f"item {prefix}{idx} is a {type(item).__name__}, not an object",
                safe_json(item),
            )


def _array_item_positions(text: str, start: int, decoder: json.JSONDecoder) -> list[int]:
    if text[start] != "[":
        return []
    pos = start + 1
    out = []
    n = len(text)
    while True:
        while pos < n and text[pos] in " \t\n\r,":
            pos += 1
        if pos >= n or text[pos] == "]":
            return out
        out.append(pos)
        try:
            _, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError:
            return []


class _LineIndex:
    def __init__(self, text: str):
        import bisect

        self._bisect = bisect.bisect_right
        self._starts = [0]
        find = text.find
        i = find("\n")
        while i != -1:
            self._starts.append(i + 1)
            i = find("\n", i + 1)

    def line_of(self, pos: int) -> int:
        return self._bisect(self._starts, pos)


def _looks_tabular(text: str) -> bool:
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


def _read_txt(dec: Decoded) -> Iterator[RawRow | RawReject]:
    # one document per non-empty line (the LLaMA-Factory / common pretraining convention)
    for i, line in enumerate(dec.text.split("\n"), start=1):
        if i in dec.bad_lines:
            yield RawReject(i, dec.bad_lines[i], line)
            continue
        if line.strip():
            yield RawRow({"text": line.rstrip()}, i)


def _read_delimited(dec: Decoded, path: Path, kind: str, header: bool | None) -> Iterator[RawRow | RawReject]:
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


def _read_xlsx(path: Path, only_sheet: str | None) -> Iterator[RawRow | RawReject]:
    try:
        import openpyxl
    except ImportError:  # pragma: no cover
        raise InputError("reading .xlsx needs openpyxl") from None
    try:
        wb = openpyxl.load_workbook(path, data_only=True)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except Exception as exc:  # zipfile.BadZipFile, KeyError, InvalidFileException...
        raise InputError(f"{path}: not a readable .xlsx workbook ({type(exc).__name__}: {exc})") from None
    names = wb.sheetnames
    if only_sheet is not None:
        if only_sheet not in names:
            raise InputError(f"{path}: no sheet named {only_sheet!r}; sheets: {', '.join(names)}")
        names = [only_sheet]
    for name in names:
        ws = wb[name]
        image_cells = _image_anchors(ws)
        rows = ws.iter_rows(values_only=True)
        header_row = None
        header_idx = 0
        for header_idx, values in enumerate(rows, start=1):  # noqa: B007 (used after the loop)
            if values and any(v is not None and str(v).strip() for v in values):
                header_row = values
                break
        if header_row is None:
            continue
        headers = unique_headers([str(h).strip() if h is not None else "" for h in header_row])
        for r_idx, values in enumerate(rows, start=header_idx + 1):
            if values is None or all(v is None or (isinstance(v, str) and not v.strip()) for v in values):
                if any((r_idx, c) in image_cells for c in range(1, len(headers) + 1)):
                    yield RawReject(r_idx, "row holds only an image (no text)", sheet=name)
                continue
            row: dict[str, Any] = {}
            for c_idx, (h, v) in enumerate(zip(headers, values, strict=False), start=1):
                if h == "" or h.lower().startswith("unnamed:"):
                    continue
                if v is None and (r_idx, c_idx) in image_cells:
                    row.setdefault("__images__", []).append(h)
                row[h] = _cell_text(v)
            yield RawRow(row, r_idx, name)


# OOXML strings hold control characters as _xHHHH_ escapes (and Excel writes a literal "_xHHHH_" as
# "_x005F_xHHHH_"); openpyxl hands them over undecoded. Only these two forms are decoded: writers that
# do not escape a literal "_x0041_" (xlsxwriter) must not see it turned into "A".
_OOXML_ESCAPE = re.compile(r"_x005[Ff](_x[0-9A-Fa-f]{4}_)|_x(00[01][0-9A-Fa-f])_")


def _ooxml_unescape(m: re.Match) -> str:
    return m.group(1) if m.group(1) is not None else chr(int(m.group(2), 16))


def _cell_text(v: Any) -> Any:
    if v is None:
        return None
    if isinstance(v, str):
        return _OOXML_ESCAPE.sub(_ooxml_unescape, v) if "_x" in v else v
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if isinstance(v, (int, float, bool)):
        return str(v)
    return str(v)


def _image_anchors(ws) -> set[tuple[int, int]]:
    cells = set()
    for img in getattr(ws, "_images", []):
        anchor = getattr(img, "anchor", None)
        frm = getattr(anchor, "_from", None)
        if frm is not None:
            cells.add((frm.row + 1, frm.col + 1))
    return cells


def _read_saved_dataset(path: Path) -> Iterator[RawRow | RawReject]:
    """``Dataset.save_to_disk`` / ``DatasetDict.save_to_disk`` folders: Arrow files read through
    ``datasets``; the split name of a DatasetDict is the row's ``sheet``, the row index its line."""
    import polars as pl

    try:
        from datasets import Dataset, load_from_disk

        saved = load_from_disk(str(path))
    except Exception as exc:
        raise InputError(f"{path}: not a readable saved dataset ({type(exc).__name__}: {exc})") from None
    parts = [(None, saved)] if isinstance(saved, Dataset) else list(saved.items())
    for split, ds in parts:
        frame = pl.from_arrow(ds.data.table)
        for i, row in enumerate(frame.iter_rows(named=True), start=1):
            yield RawRow(row, i, split)


def _read_parquet(path: Path) -> Iterator[RawRow | RawReject]:
    import polars as pl

    try:
        frame = pl.read_parquet(path)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except Exception as exc:
        raise InputError(f"{path}: not a readable Parquet file ({exc})") from None
    for i, row in enumerate(frame.iter_rows(named=True), start=1):
        yield RawRow(row, i)
