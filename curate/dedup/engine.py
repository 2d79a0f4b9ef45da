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
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from curate.dedup import cluster as cl
from curate.dedup.decisions import (
    SURVIVOR_KEYS,
    Decisions,
    dropped_frame,
    resolve_survivors,
)
from curate.dedup.lsh import bands_for
from curate.dedup.passes import Embedded, exact_pass, keys_pass, minhash_pass, semantic_pass
from curate.dedup.signatures import DEFAULT_LATIN, DEFAULT_LATIN_NGRAM
from curate.dedup.text import LATIN_UNITS, compare_text, fields_for, fields_setting
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

DEFAULT_MEMORY_BUDGET = 1 << 30  # bench/bench_dedup_memory.py: 1M rows of any shape fit an 8 GB machine
DEFAULT_NGRAM = 5

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


@dataclass
class DedupConfig:
    """Options of the dedup stage: the recipe keys, and (field metadata) the `curate dedup` options."""

    methods: tuple[str, ...] = field(
        default=("exact", "minhash"),
        metadata={
            "flags": ("--method",),
            "multiple": False,
            "help": "Comma-separated: exact, minhash, semantic (run in that order, each on the previous "
            "one's survivors).",
        },
    )
    fields: tuple[str, ...] = fields_setting(
        "What is compared: the question (with earlier turns), the answer (chosen for preference rows), "
        "or both. Plain-text rows always compare their text."
    )
    threshold: float = field(default=0.8, metadata={"help": "MinHash: Jaccard similarity threshold."})
    num_perm: int = field(default=128, metadata={"help": "MinHash: permutations per signature."})
    ngram: int = field(
        default=DEFAULT_NGRAM,
        metadata={
            "help": "MinHash: shingle size in CJK characters (Latin text: 7-character shingles across "
            "words). Shorter texts are one shingle."
        },
    )
    # shingle units of Latin-script (non-CJK) text: "chars" (character n-grams across words, catches
    # typos) or "words" (word n-grams, the behaviour before index format 3)
    latin: str = field(
        default=DEFAULT_LATIN,
        metadata={
            "choices": LATIN_UNITS,
            "help": "MinHash: shingle units of Latin-script text: characters across words (finds "
            "typo'd copies) or words.",
        },
    )
    latin_ngram: int = field(  # units per shingle starting in Latin text ("chars" mode)
        default=DEFAULT_LATIN_NGRAM,
        metadata={
            "min": 1,
            "max": 100,
            "help": "MinHash: characters per shingle starting in Latin-script text (--latin chars).",
        },
    )
    bands: int | None = field(  # rows per band follow; default derived from the threshold
        default=None,
        metadata={
            "help": "MinHash: LSH bands, 1 to --num-perm (default: derived from --threshold); rows per "
            "band = num_perm // bands, leftover columns unused for banding."
        },
    )
    seed: int = field(default=42, metadata={"help": "MinHash: seed of the permutations."})
    verify: str = field(  # "estimate": trust the MinHash estimate (faster, less precise)
        default="exact",
        metadata={
            "choices": ("exact", "estimate"),
            "help": "MinHash: confirm candidates by exact Jaccard of the shingle sets, or trust the "
            "signature estimate.",
        },
    )
    semantic_threshold: float | None = field(  # default per embedder
        default=None,
        metadata={
            "help": "Semantic: cosine threshold. Default per model and language (measured): use 0.95 "
            "for Chinese rows, 0.90 otherwise; minilm 0.97 / 0.95."
        },
    )
    embed_model: str = field(
        default="use", metadata={"help": "Semantic: use, minilm, or a local sentence-transformers dir."}
    )
    keep: str = field(
        default="first",
        metadata={"help": "Survivor of a cluster: first, longest, or best:<numeric column> (highest wins)."},
    )
    chunk: int = field(
        default=5_000,
        metadata={
            "min": 1,
            "help": "Rows tokenised and hashed per step (memory vs overhead; results do not depend on it).",
        },
    )
    # bytes for MinHash's working memory besides the signatures and the rows themselves: stored
    # shingles (then spilled to ``spill_dir``), the shingle sets being verified, candidate pairs; a
    # size ("1GB", "512M") or a number of bytes
    memory_budget: int | str = field(
        default=DEFAULT_MEMORY_BUDGET,
        metadata={
            "type": "text",
            "show_default": "1GB",
            "help": "MinHash: working memory besides the rows and signatures (stored shingles spill to "
            "the temp dir beyond a quarter of it).",
        },
    )
    spill_dir: str | None = field(  # default: the system temp dir
        default=None,
        metadata={
            "path": "dir",
            "help": "MinHash: where stored shingles spill past a quarter of --memory-budget (default: "
            "the temp dir).",
        },
    )

    def __post_init__(self) -> None:
        if isinstance(self.methods, str):
            self.methods = tuple(m.strip() for m in self.methods.split(",") if m.strip())
        bad = [m for m in self.methods if m not in METHODS]
        if bad or not self.methods:
            raise ValueError(f"unknown dedup method(s) {bad}: choose from {', '.join(METHODS)}")
        self.methods = tuple(m for m in METHODS if m in self.methods)
        self.fields = fields_for(self.fields)
        if not 0 < self.threshold <= 1:
            raise ValueError(f"--threshold must be in (0, 1], got {self.threshold}")
        if self.latin not in LATIN_UNITS:
            raise ValueError(f"latin units must be one of {', '.join(LATIN_UNITS)}, got {self.latin!r}")
        if self.ngram < 1:
            raise ValueError("--ngram must be at least 1")
        if not 1 <= self.latin_ngram <= 100:
            raise ValueError(f"latin_ngram must be between 1 and 100, got {self.latin_ngram}")
        if self.num_perm < 16 or self.num_perm > 1024:
            raise ValueError("--num-perm must be between 16 and 1024")
        if self.verify not in ("exact", "estimate"):
            raise ValueError("verify must be 'exact' or 'estimate'")
        if self.bands is not None and not 1 <= self.bands <= self.num_perm:
            raise ValueError(f"--bands must be between 1 and --num-perm ({self.num_perm}), got {self.bands}")
        if self.semantic_threshold is not None and not 0 < self.semantic_threshold <= 1:
            raise ValueError(f"--semantic-threshold must be in (0, 1], got {self.semantic_threshold}")
        cl.parse_keep(self.keep)
        if isinstance(self.memory_budget, str):
            self.memory_budget = parse_size(self.memory_budget)
        if self.memory_budget < 64 << 20:
            raise ValueError(f"--memory-budget must be at least 64MB, got {self.memory_budget:,} bytes")

    def lsh_shape(self) -> tuple[int, int]:
        """(bands, rows per band). With ``--bands`` the rows are ``num_perm // bands``; the last
        ``num_perm % bands`` signature columns are then not used for banding (still for verification)."""
        if self.bands is not None:
            return self.bands, self.num_perm // self.bands
        return bands_for(self.threshold, self.num_perm)


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
        raise ValueError(f"--memory-budget {text!r}: expected a size such as 2GB or 512MB")
    return int(float(m.group(1)) * 1024 ** "_kmgt".index(m.group(2) or "_"))
