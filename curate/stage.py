"""The contract that holds the curation stages together.

A stage is a plain function ``run(frame, config) -> StageResult`` over a canonical polars frame (see
:mod:`curate.records`). It does no I/O of its own: the CLI and the pipeline read, write and cache. It
never loses a row: every input row is either in ``kept`` or in ``dropped`` with a reason, so
``len(kept) + len(dropped) == len(frame)`` (stages that add rows, such as augmentation, report them in
``stats["added"]``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import polars as pl

# Columns every dropped frame carries in addition to the input's columns.
DROP_COLUMNS = {"drop_stage": pl.Utf8, "drop_reason": pl.Utf8, "drop_detail": pl.Utf8}


@dataclass
class StageResult:
    kept: pl.DataFrame
    dropped: pl.DataFrame
    stats: dict[str, Any] = field(default_factory=dict)

    def __iter__(self):
        # allows `kept, dropped, stats = stage.run(frame, config)`
        return iter((self.kept, self.dropped, self.stats))


class AccountingError(RuntimeError):
    """A stage lost or invented rows (kept + dropped + rejected != in + added): a bug, never bad input.
    Raised, not asserted, so that it holds under ``python -O`` too."""


def check_accounting(
    what: str, n_in: int, kept: int, dropped: int, added: int = 0, rejected: int = 0
) -> None:
    """The one accounting check every path runs (commands and the pipeline): every input row is kept,
    dropped with a reason or rejected as unreadable; stages that add rows say so in ``added``."""
    if kept + dropped + rejected != n_in + added:
        tail = f" + {rejected} rejected" if rejected else ""
        raise AccountingError(
            f"{what} lost rows: {n_in} in + {added} added != {kept} kept + {dropped} dropped{tail}"
        )


def mark_dropped(
    frame: pl.DataFrame, stage: str, reasons: list[str] | str, details: list[Any] | None = None
) -> pl.DataFrame:
    """Attach drop columns to ``frame``: ``reasons`` is one string or one per row; ``details`` are
    JSON-serialisable objects per row (rule spans, cluster ids, the survivor's id...)."""
    n = frame.height
    if isinstance(reasons, str):
        reasons = [reasons] * n
    detail_strs = [
        None if d is None else json.dumps(d, ensure_ascii=False, default=str) for d in (details or [None] * n)
    ]
    return frame.with_columns(
        pl.Series("drop_stage", [stage] * n, dtype=pl.Utf8),
        pl.Series("drop_reason", reasons, dtype=pl.Utf8),
        pl.Series("drop_detail", detail_strs, dtype=pl.Utf8),
    )


def empty_dropped(frame: pl.DataFrame) -> pl.DataFrame:
    return mark_dropped(frame.head(0), "", [])


def drop_counts(dropped: pl.DataFrame) -> dict[str, int]:
    if dropped.height == 0:
        return {}
    # most drops first; ties by reason, so summaries and manifests are the same on every run (group_by
    # order is not)
    counts = (
        dropped.group_by("drop_reason").agg(pl.len()).sort(["len", "drop_reason"], descending=[True, False])
    )
    return dict(zip(counts["drop_reason"].to_list(), counts["len"].to_list(), strict=True))
