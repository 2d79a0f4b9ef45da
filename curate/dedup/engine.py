"""The dedup stage: exact, then MinHash LSH, then semantic, each over the rows the previous one kept,
optionally against the rows of earlier batches (an incremental :class:`~curate.dedup.index.DedupIndex`).

Rows from earlier batches always survive (they are already published); within a batch the survivor
of a cluster follows ``keep``. Every dropped row records its method, cluster id, the survivor's id and
source (and batch, for an earlier row) and its similarity to the row it matched, both in
``drop_detail`` and as ``dup_*`` columns. The survivor is always a row that is kept in the end: when
the row matched was itself dropped (by a later method, or in its own earlier batch), the chain is
followed to the kept row and the row matched is named as ``via_id``/``via_source``.

The run is split by responsibility: :mod:`curate.dedup.passes` (one function per pass: keys and
signatures, exact, MinHash, semantic), :mod:`curate.dedup.decisions` (survivors, drop details, the
cluster list, kept and dropped frames) and :mod:`curate.dedup.types` (``Prior``, ``BatchData``,
``DedupResult``); this module holds the configuration and the order of the passes.
"""

from __future__ import annotations

import re
import time
from typing import Any

import numpy as np
import polars as pl

from curate.configs.dedup import DEFAULT_MEMORY_BUDGET, DEFAULT_NGRAM, DedupConfig
from curate.core.coerce import OptionError
from curate.dedup.decisions import (
    SURVIVOR_KEYS,
    Decisions,
    dropped_frame,
    resolve_survivors,
)
from curate.dedup.passes import Embedded, exact_pass, keys_pass, minhash_pass, semantic_pass
from curate.dedup.text import compare_text
from curate.dedup.types import (
    METHODS,
    PREVIEW,
    REASONS,
    STAGE,
    BatchData,
    DedupResult,
    Prior,
    ProgressFactory,
)

# names callers import from here (the stage's module), defined where they belong
__all__ = [
    "DEFAULT_MEMORY_BUDGET",
    "DEFAULT_NGRAM",
    "METHODS",
    "PREVIEW",
    "REASONS",
    "STAGE",
    "SURVIVOR_KEYS",
    "BatchData",
    "DedupConfig",
    "DedupResult",
    "Prior",
    "ProgressFactory",
    "dropped_frame",
    "parse_size",
    "resolve_survivors",
    "run",
]


def run(
    frame: pl.DataFrame,
    config: DedupConfig | None = None,
    prior: Prior | None = None,
    progress: ProgressFactory | None = None,
    embedder=None,
) -> DedupResult:
    config = config or DedupConfig()
    t0 = time.perf_counter()
    n = frame.height
    raw = compare_text(frame, config.fields) if n else pl.Series([], dtype=pl.Utf8)
    dec = Decisions(frame, raw, config, prior)
    stats: dict[str, Any] = {"methods": ",".join(config.methods), "fields": ",".join(config.fields)}
    first = keys_pass(raw, config, progress)
    keys = first.keys
    empty = keys == 0
    stats["empty_not_compared"] = int(empty.sum())
    dec.active &= ~empty

    if "exact" in config.methods:
        stats["exact"] = exact_pass(dec, keys)
    mh_rows_new, mh_new = np.zeros(0, dtype=np.int64), None
    if "minhash" in config.methods:
        stats["minhash"], mh_rows_new, mh_new = minhash_pass(dec, config, first, progress)
    embedded = Embedded(np.zeros(0, dtype=np.int64), None, None)
    if "semantic" in config.methods:
        stats["semantic"], embedded = semantic_pass(dec, config, stats, embedder, progress)

    kept_mask, kept, dframe, survivor_new, survivor_prior = dec.finish(frame)
    stats["seconds_total"] = round(time.perf_counter() - t0, 3)
    batch = BatchData(
        keys=keys,
        mh_rows=mh_rows_new,
        mh=mh_new,
        emb_rows=embedded.rows,
        emb=embedded.emb,
        emb_model=embedded.model,
        kept=kept_mask,
        raw=raw,
        ngram=config.ngram,
        survivor_new=survivor_new,
        survivor_prior=survivor_prior,
    )
    return DedupResult(kept, dframe, stats, dec.clusters, batch)


def parse_size(text: str) -> int:
    """``"2GB"``, ``"512M"``, ``"1.5 GiB"`` or a plain number of bytes."""
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([kmgt]?)(i?b?)\s*", str(text).lower())
    if not m:
        raise OptionError("memory_budget", f"{text!r}: expected a size such as 2GB or 512MB")
    return int(float(m.group(1)) * 1024 ** "_kmgt".index(m.group(2) or "_"))
