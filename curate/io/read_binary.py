"""Binary inputs -> raw rows: XLSX workbooks (each sheet with its own header row; image-only cells noted),
Parquet files and ``datasets`` ``save_to_disk`` folders."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl

from curate.io.decode import InputError
from curate.io.rawrows import RawReject, RawRow
from curate.io.read_tables import unique_headers


def read_xlsx(path: Path, only_sheet: str | None) -> Iterator[RawRow | RawReject]:
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


def read_saved_dataset(path: Path) -> Iterator[RawRow | RawReject]:
    """``Dataset.save_to_disk`` / ``DatasetDict.save_to_disk`` folders: Arrow files read through
    ``datasets``; the split name of a DatasetDict is the row's ``sheet``, the row index its line."""
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


def read_parquet(path: Path) -> Iterator[RawRow | RawReject]:
    try:
        frame = pl.read_parquet(path)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except Exception as exc:
        raise InputError(f"{path}: not a readable Parquet file ({exc})") from None
    for i, row in enumerate(frame.iter_rows(named=True), start=1):
        yield RawRow(row, i)
