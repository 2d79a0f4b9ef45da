"""Semantic near-duplicates, the search: cosine similarity of sentence embeddings (see
:mod:`curate.embed`).

Neighbours are found by blocked matrix products (queries x corpus in tiles of at most
``block_q x block_c``), so memory stays ``O(block_q * block_c)`` instead of ``n^2``; every pair with
cosine >= threshold is returned.

Default thresholds per embedder were measured on labelled paraphrase sets (LCQMC, AFQMC, PAWS-X zh,
MRPC; see docs/dedup.md): the threshold at which at least 90 % of flagged pairs are true paraphrases.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from curate.core import vocab

# Measured on ../shared/data paraphrase sets (bench/bench_dedup.py --only paraphrase; docs/dedup.md):
# the lowest threshold at which >= 0.9 of flagged pairs are true paraphrases. USE: LCQMC (zh) precision
# 0.83 at 0.90 and 0.92 at 0.95; MRPC (en) 0.95 at 0.90. MiniLM never reaches 0.9 on Chinese (0.66 at
# 0.95) and reaches 0.93 on MRPC at 0.95.
DEFAULT_THRESHOLDS = {
    "use": {"zh": 0.95, "other": 0.90},
    "minilm": {"zh": 0.97, "other": 0.95},
}
FALLBACK = {"zh": 0.95, "other": 0.95}
CJK_PATTERN = vocab.CJK_PATTERN


def thresholds_for(embedder_name: str) -> dict[str, float]:
    name = embedder_name.lower()
    if name.startswith("use"):
        return DEFAULT_THRESHOLDS["use"]
    if "minilm" in name:
        return DEFAULT_THRESHOLDS["minilm"]
    return FALLBACK


def default_threshold(embedder_name: str) -> float:
    return thresholds_for(embedder_name)["other"]


# is_cjk's threshold: a row takes the embedder's "zh" similarity threshold when at least 30% of its
# letters and digits are CJK characters
CJK_ROW_SHARE = 0.3


def is_cjk(texts: pl.Series, share: float = CJK_ROW_SHARE) -> np.ndarray:
    """Rows whose letters/digits are at least ``share`` CJK characters.

    Not :func:`curate.core.vocab.han_share` ("is this Chinese"): the question here is which similarity
    threshold fits the embedder, and embedders score every unspaced script alike, so kana counts with
    Han (vocab.CJK_PATTERN), per character against every word character, digits included."""
    cjk = texts.fill_null("").str.count_matches(CJK_PATTERN).to_numpy()
    word = texts.fill_null("").str.count_matches(r"\w").to_numpy()
    return cjk >= share * np.maximum(word, 1)


def neighbour_pairs(
    queries: np.ndarray,
    corpus: np.ndarray,
    threshold: float,
    query_offset: int = 0,
    block_q: int = 1024,
    block_c: int = 32768,
) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (query_offset + i, j) with cos(queries[i], corpus[j]) >= threshold and j != query_offset + i.

    ``queries`` are rows ``query_offset ..`` of the corpus when searching a set against itself (plus
    earlier rows); each unordered pair is returned once, as (min, max)."""
    found_a, found_b, found_s = [], [], []
    nq, nc = queries.shape[0], corpus.shape[0]
    for qs in range(0, nq, block_q):
        q = queries[qs : qs + block_q]
        for cs in range(0, nc, block_c):
            c = corpus[cs : cs + block_c]
            sims = q @ c.T
            ii, jj = np.nonzero(sims >= threshold)
            if len(ii) == 0:
                continue
            a = ii + qs + query_offset
            b = jj + cs
            keep = a != b
            found_a.append(a[keep])
            found_b.append(b[keep])
            found_s.append(sims[ii[keep], jj[keep]])
    if not found_a:
        return np.zeros((0, 2), dtype=np.int64), np.zeros(0, dtype=np.float32)
    a = np.concatenate(found_a).astype(np.int64)
    b = np.concatenate(found_b).astype(np.int64)
    s = np.concatenate(found_s).astype(np.float32)
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    code = lo * nc + hi
    code, first = np.unique(code, return_index=True)
    return np.stack([code // nc, code % nc], axis=1), s[first]
