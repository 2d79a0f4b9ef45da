"""Semantic near-duplicates: cosine similarity of sentence embeddings (see :mod:`curate.embed`), and
the semantic stage alone (:func:`run`).

The search and the measured default thresholds live in :mod:`curate.dedup.neighbours` (their names are
gathered here, the import path callers use). Neighbours are found by blocked matrix products, so
memory stays ``O(block_q * block_c)`` instead of ``n^2``; every pair with cosine >= threshold is found.
"""

from __future__ import annotations

from dataclasses import replace

from curate.dedup.engine import DedupConfig, DedupResult
from curate.dedup.engine import run as _run
from curate.dedup.neighbours import (
    CJK_PATTERN,
    DEFAULT_THRESHOLDS,
    FALLBACK,
    default_threshold,
    is_cjk,
    neighbour_pairs,
    thresholds_for,
)

__all__ = [
    "CJK_PATTERN",
    "DEFAULT_THRESHOLDS",
    "FALLBACK",
    "default_threshold",
    "is_cjk",
    "neighbour_pairs",
    "run",
    "thresholds_for",
]


def run(frame, config: DedupConfig | None = None, **kw) -> DedupResult:
    """The semantic-duplicate stage alone: ``run(frame, config) -> StageResult``."""
    return _run(frame, replace(config or DedupConfig(), methods=("semantic",)), **kw)
