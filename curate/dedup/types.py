"""The dedup stage's data: method names and reasons, what an incremental index knows about earlier
batches (:class:`Prior`), what it stores for the batch just processed (:class:`BatchData`), and the
stage's result (:class:`DedupResult`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from curate.dedup.signatures import SignatureSet
from curate.stage import StageResult

METHODS = ("exact", "minhash", "semantic")
STAGE = "dedup"
REASONS = {"exact": "exact duplicate", "minhash": "near duplicate", "semantic": "semantic duplicate"}
PREVIEW = 160

ProgressFactory = Callable[[str, int], Callable[[int], None]]


@dataclass
class Prior:
    """What an incremental index knows about earlier batches (see :mod:`curate.dedup.index`)."""

    rows: pl.DataFrame  # id, file, line, sheet, batch, kept, preview
    keys: np.ndarray  # uint64 exact keys, one per row
    mh_rows: np.ndarray  # int64 rows (into ``rows``) that have signatures
    mh: SignatureSet | None
    # embedder fingerprint -> (int64 rows into ``rows``, float32 embeddings)
    emb: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    # fingerprints whose embeddings were not loaded -> their rows
    emb_other: dict[str, np.ndarray] = field(default_factory=dict)
    # per row, the row that survives it in the end (itself for kept rows); None: every row itself
    survivor: np.ndarray | None = None

    def final_survivor(self, i: int) -> int:
        return int(self.survivor[i]) if self.survivor is not None else i

    @property
    def n(self) -> int:
        return self.rows.height

    def embedding_warnings(self, model: str) -> list[str]:
        """Earlier rows the semantic step cannot compare: embedded with another model, or never
        embedded (their batch ran without the semantic method)."""
        out = []
        embedded = np.zeros(self.n, dtype=bool)
        for rows, _ in self.emb.values():
            embedded[rows] = True
        others: dict[str, np.ndarray] = {m: r for m, (r, _) in self.emb.items() if m != model}
        others.update({m: r for m, r in self.emb_other.items() if m != model})
        for m, rows in sorted(others.items()):
            embedded[rows] = True
            out.append(
                f"{len(rows):,} earlier rows were embedded with {m}, not {model}: not compared semantically "
                "(use that --embed-model, or a new --state to compare everything with this one)"
            )
        kept = self.rows["kept"].to_numpy() & (self.keys != 0)
        missing = int((kept & ~embedded).sum())
        if missing:
            out.append(
                f"{missing:,} earlier kept rows have no embeddings (their batches ran without the semantic "
                "method): not compared semantically"
            )
        return out


@dataclass
class BatchData:
    """What the index stores for the batch just processed."""

    keys: np.ndarray
    mh_rows: np.ndarray
    mh: SignatureSet | None
    emb_rows: np.ndarray
    emb: np.ndarray | None
    emb_model: str | None
    kept: np.ndarray
    raw: pl.Series  # the compared text of every row of the batch
    ngram: int
    # per row, who survives it in the end: a row of this batch (-1: none) or of the index (-1: none);
    # a kept row is its own survivor
    survivor_new: np.ndarray | None = None
    survivor_prior: np.ndarray | None = None


@dataclass
class DedupResult(StageResult):
    clusters: list[dict[str, Any]] = field(default_factory=list)
    batch: BatchData | None = None
