"""What changed between two dataset versions, and why: rows added, removed and changed (with the
columns that changed), the new rows the incremental stages dropped and the rows the whole-set stages
left out, by reason."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from curate.pipeline.state import vname


def row_hashes(frame: pl.DataFrame) -> pl.DataFrame:
    """id -> hash of everything else in the row (to find rows whose scores or content changed)."""
    if frame.height == 0:
        return pl.DataFrame({"id": [], "h": []}, schema={"id": pl.Utf8, "h": pl.UInt64})
    cols = [c for c in frame.columns if c != "id"]
    return frame.select("id", pl.struct(cols).hash(seed=7).alias("h"))


def reason_table(dropped: pl.DataFrame | None) -> dict[str, int]:
    if dropped is None or dropped.height == 0:
        return {}
    g = (
        dropped.with_columns((pl.col("drop_stage") + ": " + pl.col("drop_reason")).alias("why"))
        .group_by("why")
        .agg(pl.len())
        .sort(["len", "why"], descending=[True, False])
    )
    return dict(zip(g["why"].to_list(), g["len"].to_list(), strict=True))


def make_changelog(
    prev_dir: Path | None,
    data: pl.DataFrame,
    data_hashes: pl.DataFrame,
    new: pl.DataFrame,
    dropped_new: pl.DataFrame | None,
    tail_dropped: pl.DataFrame | None,
    prev_n: int,
    new_n: int,
    sample: int = 20,
) -> dict[str, Any]:
    """What changed between two dataset versions, and why. The previous version is read through its
    row hashes (id -> hash of the row); only removed and changed rows are read in full."""
    prev_hashes = None
    if prev_dir is not None:
        hp = prev_dir / "hashes.parquet"
        prev_hashes = (
            pl.read_parquet(hp) if hp.is_file() else row_hashes(pl.read_parquet(prev_dir / "data.parquet"))
        )

    def prev_rows(ids: pl.Series) -> pl.DataFrame:
        return pl.scan_parquet(prev_dir / "data.parquet").filter(pl.col("id").is_in(ids.implode())).collect()

    prev_ids = prev_hashes["id"] if prev_hashes is not None else pl.Series("id", [], dtype=pl.Utf8)
    ids = data["id"]
    new_ids = set(new["id"].to_list())
    added = data.filter(~pl.col("id").is_in(prev_ids.implode()))
    removed_ids = prev_ids.filter(~prev_ids.is_in(ids.implode()))
    removed = prev_rows(removed_ids) if removed_ids.len() else data.head(0)
    # why was an old row removed: the whole-set stage that left it out this time
    why_removed: dict[str, str] = {}
    if tail_dropped is not None and removed.height:
        td = tail_dropped.filter(pl.col("id").is_in(removed["id"].implode()))
        for rid, st, rs in td.select("id", "drop_stage", "drop_reason").iter_rows():
            why_removed.setdefault(rid, f"{st}: {rs}")
    removed_why = [why_removed.get(r, "no longer in the stages' output") for r in removed["id"].to_list()]
    added_why = ["new row" if r in new_ids else "re-selected (seen before)" for r in added["id"].to_list()]
    changed_ids: list[str] = []
    changed_cols: dict[str, int] = {}
    if prev_hashes is not None and prev_hashes.height and data.height:
        j = prev_hashes.join(data_hashes, on="id", suffix="_new")
        ch = j.filter(pl.col("h") != pl.col("h_new"))["id"]
        changed_ids = ch.to_list()
        if changed_ids:
            pa = prev_rows(ch).sort("id")
            pb = data.filter(pl.col("id").is_in(ch.implode())).sort("id")
            common = [c for c in data.columns if c in pa.columns and c != "id"]
            for c in common:
                try:
                    n = int((pa[c].hash(1) != pb[c].hash(1)).sum())
                except Exception:
                    n = 0
                if n:
                    changed_cols[c] = n
            for c in set(data.columns) ^ set(pa.columns):
                changed_cols[c + " (column added or removed)"] = len(changed_ids)

    def rows(frame: pl.DataFrame, why: list[str]) -> list[dict[str, Any]]:
        out = []
        for r, w in zip(frame.head(sample).iter_rows(named=True), why, strict=False):
            q = r.get("question") if r.get("question") is not None else r.get("text")
            out.append({"id": r["id"], "question": (q or "")[:160], "why": w})
        return out

    by_why_added: dict[str, int] = {}
    for w in added_why:
        by_why_added[w] = by_why_added.get(w, 0) + 1
    by_why_removed: dict[str, int] = {}
    for w in removed_why:
        by_why_removed[w] = by_why_removed.get(w, 0) + 1
    return {
        "version": vname(new_n),
        "previous": vname(prev_n) if prev_n else None,
        "added": {"count": added.height, "why": by_why_added, "sample": rows(added, added_why)},
        "removed": {"count": removed.height, "why": by_why_removed, "sample": rows(removed, removed_why)},
        "changed": {"count": len(changed_ids), "columns": changed_cols, "ids": changed_ids[:sample]},
        "new_rows_dropped": {
            "count": 0 if dropped_new is None else dropped_new.height,
            "why": reason_table(dropped_new),
        },
        "left_out_by_whole_set_stages": {
            "count": 0 if tail_dropped is None else tail_dropped.height,
            "why": reason_table(tail_dropped),
        },
    }
