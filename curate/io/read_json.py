"""JSON Lines and JSON documents -> raw rows: a line or an array item per row, with its line number; a
damaged document keeps every complete item (a cut-off array, trailing commas, one bad item)."""

from __future__ import annotations

import bisect
import json
import re
from collections.abc import Iterator
from pathlib import Path

from curate.io.decode import Decoded, InputError
from curate.io.rawrows import TOO_DEEP, RawReject, RawRow, ReadInfo, safe_json


def read_jsonl(
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


def read_json(dec: Decoded, path: Path, info: ReadInfo | None = None) -> Iterator[RawRow | RawReject]:
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
                yield from read_jsonl(dec)
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
        self._bisect = bisect.bisect_right
        self._starts = [0]
        find = text.find
        i = find("\n")
        while i != -1:
            self._starts.append(i + 1)
            i = find("\n", i + 1)

    def line_of(self, pos: int) -> int:
        return self._bisect(self._starts, pos)
