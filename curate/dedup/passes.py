"""The passes of one local dedup run, in order: exact keys (and MinHash signatures) of every row, then
exact, MinHash and semantic duplicates, each over the rows the previous one kept and against the
rows of earlier batches (a :class:`~curate.dedup.types.Prior`). Each method's clusters go to
:meth:`Decisions.settle <curate.dedup.decisions.Decisions.settle>`; each pass returns its stats."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from curate.core.errors import UsageError
from curate.dedup import cluster as cl
from curate.dedup.decisions import Decisions, Nodes
from curate.dedup.neighbours import is_cjk, neighbour_pairs, thresholds_for
from curate.dedup.shingle_store import ShingleStore, gather_rows
from curate.dedup.signatures import SignatureSet, minhash_stats, signatures_for
from curate.dedup.stream import stream_clusters
from curate.dedup.text import display_series, doc_keys, normalise, tokenize
from curate.dedup.types import ProgressFactory
from curate.dedup.verification import VERIFY_BLOCK, ShingleArrays
from curate.embed import get_embedder


@dataclass
class Keys:
    """The first pass over every row: exact keys (0: empty text) and, with MinHash, signatures and
    the store of every row's shingles."""

    keys: np.ndarray
    sigs: SignatureSet | None
    store: ShingleStore | None
    seconds: float


@dataclass
class Embedded:
    """What the semantic pass leaves for the index: the rows it embedded and their embeddings."""

    rows: np.ndarray
    emb: np.ndarray | None
    model: str | None


def keys_pass(raw: pl.Series, config: Any, progress: ProgressFactory | None) -> Keys:
    """Exact keys and (when needed) signatures, in one chunked pass."""
    n = len(raw)
    ss_all: SignatureSet | None = None
    store: ShingleStore | None = None
    tm = time.perf_counter()
    if "minhash" in config.methods:
        tick = progress("signatures", n) if progress else None
        # every row's shingles, kept for verification (in memory up to a quarter of the budget, then
        # in a temporary file) instead of being recomputed for each candidate
        store = ShingleStore(config.memory_budget // 4, config.spill_dir)
        ss_all, keys = signatures_for(raw, config, progress=tick, keep_shingles=False, store=store)
    else:
        parts = [
            doc_keys(tokenize(normalise(raw[s : s + config.chunk]).to_list(), config.latin))
            for s in range(0, n, config.chunk)
        ]
        keys = np.concatenate(parts) if parts else np.zeros(0, dtype=np.uint64)
    return Keys(keys, ss_all, store, time.perf_counter() - tm)


def exact_pass(dec: Decisions, keys: np.ndarray) -> dict[str, Any]:
    """Identical normalised texts: one group per exact key, earlier batches' keys included."""
    tm = time.perf_counter()
    prior = dec.prior
    new_idx = np.flatnonzero(dec.active)
    p_idx = np.arange(prior.n) if prior is not None else np.zeros(0, dtype=np.int64)
    nodes = Nodes(p_idx, new_idx)
    node_keys = np.concatenate([prior.keys if prior is not None else np.zeros(0, np.uint64), keys[new_idx]])
    labels = cl.group_labels(node_keys, node_keys != 0)
    c, d = dec.settle("exact", nodes, labels, lambda a, b: np.ones(len(a), dtype=np.float32))
    return {"clusters": c, "dropped": d, "seconds": round(time.perf_counter() - tm, 3)}


def minhash_pass(
    dec: Decisions, config: Any, first: Keys, progress: ProgressFactory | None
) -> tuple[dict[str, Any], np.ndarray, SignatureSet]:
    """Near duplicates among the rows still active and earlier batches' signatures: streamed LSH
    candidates, verified, joined in a union-find. Returns (stats, rows with signatures, signatures)."""
    tm = time.perf_counter()
    bands, rows = config.lsh_shape()
    prior, store = dec.prior, first.store
    new_idx = np.flatnonzero(dec.active)
    mh_new = _compact(first.sigs, new_idx)
    first.sigs = None
    if prior is not None and prior.mh is not None and prior.mh.n:
        if prior.mh.sigs.shape[1] != config.num_perm:
            raise UsageError(
                f"the index was built with num_perm={prior.mh.sigs.shape[1]}; use the same or a new --state"
            )
        p_idx = prior.mh_rows
        both = SignatureSet.concat([prior.mh, mh_new], config.num_perm)
    else:
        p_idx = np.zeros(0, dtype=np.int64)
        both = mh_new
    nodes = Nodes(p_idx, new_idx)
    is_new = np.zeros(nodes.n, dtype=bool)
    is_new[nodes.p :] = True
    eligible = ~both.empty
    prior_mh = prior.mh if nodes.p else None
    sets = ShingleArrays(_shingle_fetcher(nodes, prior_mh, store), canonical=prior_mh is None)
    # pairs verified together: about 64 bytes per shingle of both sides in a quarter of the budget
    mean = max(1.0, store.mean_size(dec.n))
    block = int(max(1_000, min(VERIFY_BLOCK, config.memory_budget // 4 // (128 * mean))))
    tc = progress("near-duplicate candidates", 1) if progress else None
    labels, counts = stream_clusters(
        both.sigs,
        bands,
        rows,
        eligible,
        config.threshold,
        sets,
        is_new=is_new,
        exact=config.verify == "exact",
        budget=config.memory_budget,
        verify_block=block,
    )
    if tc:
        tc(1)

    def mh_sim(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        out = np.empty(len(a), dtype=np.float32)
        for s in range(0, len(a), block):
            out[s : s + block] = sets.jaccard_many(a[s : s + block], b[s : s + block])
        return out

    c, d = dec.settle("minhash", nodes, labels, mh_sim)
    store.close()
    stats = minhash_stats(
        config,
        bands,
        rows,
        mh_new.short.sum(),
        counts["candidate_pairs"],
        counts["verified_pairs"],
        c,
        d,
        first.seconds,
        dec.n,
        tm,
    )
    if not counts["candidates_exact"]:
        # more unique candidates than the budget remembers: repeats were verified again (same
        # decisions), so the count includes them
        stats["candidate_pairs_upper_bound"] = True
    return stats, new_idx, mh_new


def _shingle_fetcher(nodes: Nodes, prior_mh: SignatureSet | None, store: ShingleStore):
    """Shingles of sorted node ids: earlier batches' from the index, new rows' from the store."""
    p, new = nodes.p, nodes.new_idx

    def fetch(node_ids: np.ndarray):
        old, fresh = node_ids[node_ids < p], node_ids[node_ids >= p]
        parts = []
        if len(old):
            parts.append(gather_rows(prior_mh.shingles, prior_mh.offsets, old))
        if len(fresh):
            parts.append(store.arrays(new[fresh - p]))
        if len(parts) == 1:
            return parts[0]
        (fa, oa), (fb, ob) = parts
        return np.concatenate([fa, fb]), np.concatenate([oa, ob[1:] + oa[-1]])

    return fetch


def _compact(ss: SignatureSet, rows: np.ndarray) -> SignatureSet:
    """``ss.take(rows)`` for increasing ``rows`` without a second copy of the signatures: they are
    moved forward in place, chunk by chunk (each chunk reads rows at or after the ones it writes)."""
    if len(rows) == ss.n:
        return ss
    sigs = ss.sigs
    for s in range(0, len(rows), 65_536):
        chunk = rows[s : s + 65_536]
        sigs[s : s + len(chunk)] = sigs[chunk]
    return SignatureSet(sigs[: len(rows)], None, None, ss.short[rows], ss.empty[rows])


def semantic_pass(
    dec: Decisions,
    config: Any,
    stats: dict[str, Any],
    embedder: Any = None,
    progress: ProgressFactory | None = None,
) -> tuple[dict[str, Any], Embedded]:
    """Sentence embeddings of the rows still active, neighbours over the cosine threshold of their
    language (a pair must pass the stricter of its two rows), earlier batches' embeddings of the same
    model included. Warnings about earlier rows it cannot compare go to ``stats["warnings"]``."""
    prior, raw, n = dec.prior, dec.raw, dec.n
    tm = time.perf_counter()
    emb = embedder or get_embedder(config.embed_model)
    emb_model = emb.fingerprint
    new_idx = np.flatnonzero(dec.active)
    if config.semantic_threshold:
        by_lang = {"zh": config.semantic_threshold, "other": config.semantic_threshold}
    else:
        by_lang = thresholds_for(emb.name)
    # per-row threshold by language (measured defaults); a pair must pass the stricter of its two
    row_thr = np.where(is_cjk(raw[new_idx] if n else raw), by_lang["zh"], by_lang["other"]).astype(np.float32)
    tick = progress(f"embeddings ({emb.name})", len(new_idx)) if progress else None
    emb_new = emb.encode(display_series(raw.gather(new_idx)).to_list() if len(new_idx) else [], progress=tick)
    if prior is not None and prior.n:
        stats.setdefault("warnings", []).extend(prior.embedding_warnings(emb_model))
    if prior is not None and emb_model in prior.emb and len(prior.emb[emb_model][0]):
        p_idx, p_emb = prior.emb[emb_model]
        corpus = np.concatenate([p_emb, emb_new])
    else:
        p_idx, corpus = np.zeros(0, dtype=np.int64), emb_new
    nodes = Nodes(p_idx, new_idx)
    thr = float(min(by_lang.values()))
    pairs, sims = neighbour_pairs(emb_new, corpus, thr, query_offset=nodes.p)
    if len(pairs) and by_lang["zh"] != by_lang["other"]:
        node_thr = np.full(nodes.n, max(by_lang.values()), dtype=np.float32)
        node_thr[nodes.p :] = row_thr  # earlier batches: the stricter threshold
        ok = sims >= np.maximum(node_thr[pairs[:, 0]], node_thr[pairs[:, 1]])
        pairs = pairs[ok]
    labels = cl.components(nodes.n, pairs[:, 0], pairs[:, 1]) if len(pairs) else np.full(nodes.n, -1)

    def sem_sim(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.einsum("ij,ij->i", corpus[a], corpus[b]).astype(np.float32)

    c, d = dec.settle("semantic", nodes, labels, sem_sim)
    sem_stats = {
        "model": emb.name,
        "threshold": by_lang["other"]
        if by_lang["zh"] == by_lang["other"]
        else f"zh {by_lang['zh']}, other {by_lang['other']}",
        "cjk_rows": int(is_cjk(raw[new_idx]).sum()) if len(new_idx) else 0,
        "pairs": int(len(pairs)),
        "clusters": c,
        "dropped": d,
        "seconds": round(time.perf_counter() - tm, 3),
    }
    return sem_stats, Embedded(new_idx, emb_new, emb_model)
