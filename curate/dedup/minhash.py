"""MinHash near duplicates: signatures (rensa, from vectorised shingle hashes), LSH banding, candidate
verification, and the MinHash stage alone (:func:`run`).

The implementation lives in one module per step; this module gathers their names (the import path
callers and tests use):

- :mod:`curate.dedup.signatures`: shingles -> MinHash signatures (rensa, or datasketch), exact keys;
- :mod:`curate.dedup.shingle_store`: every row's shingles, kept for verification within a memory budget;
- :mod:`curate.dedup.lsh`: bands and rows from the threshold, band buckets -> candidate pairs;
- :mod:`curate.dedup.verification`: exact Jaccard of candidate pairs;
- :mod:`curate.dedup.stream`: candidates streamed band by band into a union-find (bounded memory).

Bands and rows are derived from the Jaccard threshold so that a pair at the threshold becomes a
candidate with probability >= 0.995 (few misses), and every candidate is then verified with the exact
Jaccard of the two shingle sets, so false positives of the banding never reach the output.
"""

from __future__ import annotations

from dataclasses import replace

from curate.dedup.engine import DedupConfig, DedupResult
from curate.dedup.engine import run as _run
from curate.dedup.lsh import (
    CANDIDATE_RECALL,
    EXTRA_ORDERS,
    GROUP_MAX,
    WINDOW,
    band_hashes,
    band_hashes_of_columns,
    band_pair_batches,
    bands_for,
    bucket_runs,
    candidate_pairs,
    candidate_probability,
    extra_columns,
    large_bucket_pair_batches,
    large_bucket_pairs,
    star_window,
)
from curate.dedup.shingle_store import ShingleStore, canonical_rows, gather_rows, sorted_unique
from curate.dedup.signatures import (
    DEFAULT_LATIN,
    DEFAULT_LATIN_NGRAM,
    MINHASH_BACKENDS,
    SignatureSet,
    datasketch_signatures,
    minhash_backend,
    minhash_stats,
    shingle_arrays,
    shingle_sets_of,
    signatures,
    signatures_of_chunk,
)
from curate.dedup.stream import PairSet, UnionFind, stream_clusters
from curate.dedup.verification import VERIFY_BLOCK, ShingleArrays, ShingleSets, estimated_jaccard, verify

__all__ = [
    "CANDIDATE_RECALL",
    "DEFAULT_LATIN",
    "DEFAULT_LATIN_NGRAM",
    "EXTRA_ORDERS",
    "GROUP_MAX",
    "MINHASH_BACKENDS",
    "VERIFY_BLOCK",
    "WINDOW",
    "PairSet",
    "ShingleArrays",
    "ShingleSets",
    "ShingleStore",
    "SignatureSet",
    "UnionFind",
    "band_hashes",
    "band_hashes_of_columns",
    "band_pair_batches",
    "bands_for",
    "bucket_runs",
    "candidate_pairs",
    "candidate_probability",
    "canonical_rows",
    "datasketch_signatures",
    "estimated_jaccard",
    "extra_columns",
    "gather_rows",
    "large_bucket_pair_batches",
    "large_bucket_pairs",
    "minhash_backend",
    "minhash_stats",
    "run",
    "shingle_arrays",
    "shingle_sets_of",
    "signatures",
    "signatures_of_chunk",
    "star_window",
    "sorted_unique",
    "stream_clusters",
    "verify",
]


def run(frame, config: DedupConfig | None = None, **kw) -> DedupResult:
    """The MinHash near-duplicate stage alone: ``run(frame, config) -> StageResult``."""
    return _run(frame, replace(config or DedupConfig(), methods=("minhash",)), **kw)
