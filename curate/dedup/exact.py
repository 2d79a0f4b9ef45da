"""Exact duplicates after normalisation (NFKC, width, case, whitespace, punctuation); see
:mod:`curate.dedup.text` for the normalisation and :mod:`curate.dedup.engine` for the stage."""

from __future__ import annotations

from dataclasses import replace

import polars as pl

from curate.dedup.engine import DedupConfig, DedupResult
from curate.dedup.engine import run as _run


def run(frame: pl.DataFrame, config: DedupConfig | None = None, **kw) -> DedupResult:
    """The exact-duplicate stage alone: ``run(frame, config) -> StageResult``."""
    return _run(frame, replace(config or DedupConfig(), methods=("exact",)), **kw)
