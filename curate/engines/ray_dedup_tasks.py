"""The tasks of the distributed dedup (:mod:`curate.engines.ray_dedup`): the functions Ray runs on
blocks and partitions, each a plain function of numpy arrays (no Ray import here), in the order the
driver calls them:

1. :func:`signature_batch` (Ray Data ``map_batches``) and :func:`to_sigblock`: per block, the exact key,
   survivor rank, MinHash signature and shingle set of every row (:class:`SigBlock`);
2. :func:`exact_map` / :func:`exact_reduce`: keys shuffled by hash, one survivor per key;
3. :func:`band_map` / :func:`band_reduce`, :func:`large_columns` / :func:`large_reduce`: LSH banding as
   a shuffle, candidate pairs exactly as the local banding emits them;
4. :func:`side_a` / :func:`side_b`: verification as a two-sided join of the blocks holding each pair's rows;
5. ``cc_*``: connected components by min-label propagation with pointer jumping, hash-partitioned by node.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from curate.dedup import cluster as cl
from curate.dedup.lsh import WINDOW, band_hashes, extra_columns, large_bucket_pairs, star_window
from curate.dedup.signatures import SignatureSet, signatures
from curate.dedup.text import compare_text, content_lengths, doc_keys, normalise, tokenize
from curate.dedup.verification import ShingleSets, verify

ROW = "__tamis_row"


@dataclass
class SigBlock:
    """One block of rows after the signature pass (rows ascending, contiguous)."""

    rows: np.ndarray  # int64 global row numbers
    keys: np.ndarray  # uint64 exact keys (0 = empty text)
    rank: np.ndarray  # float64 keep-policy key (lower wins)
    ss: SignatureSet | None  # None without minhash


# ----------------------------------------------------------------------------------------------------
# 1. signatures (Ray Data map_batches)


def signature_batch(table, fields, keep, minhash, ngram, num_perm, seed, chunk, latin, latin_ngram):
    import pyarrow as pa

    frame = pl.from_arrow(table)
    rows = frame[ROW].to_numpy().astype(np.int64)
    n = frame.height
    raw = compare_text(frame, fields)
    norm = normalise(raw).to_list()
    # as the local engine: "longest" counts question + answer, whatever is compared
    lengths = content_lengths(frame, raw, fields)
    rank = cl.policy_key(frame, keep, lengths).astype(np.float64)
    cols = {"row": pa.array(rows), "rank": pa.array(rank)}
    if minhash:
        ss, keys = signatures(norm, ngram, num_perm, seed, chunk=chunk, latin=latin, latin_ngram=latin_ngram)
        cols["key"] = pa.array(keys.astype(np.uint64))
        cols["empty"] = pa.array(ss.empty)
        cols["short"] = pa.array(ss.short)
        cols["sig"] = pa.FixedSizeListArray.from_arrays(pa.array(ss.sigs.reshape(-1)), num_perm)
        cols["sh"] = pa.LargeListArray.from_arrays(
            pa.array(ss.offsets.astype(np.int64)), pa.array(ss.shingles)
        )
    else:
        parts = [doc_keys(tokenize(norm[s : s + chunk], latin)) for s in range(0, n, chunk)]
        cols["key"] = pa.array(np.concatenate(parts).astype(np.uint64) if parts else np.zeros(0, np.uint64))
    return pa.table(cols)


def to_sigblock(table, num_perm: int, minhash: bool):
    """Arrow block -> SigBlock (numpy), plus (first row, last row, rows, empty texts)."""
    import pyarrow.compute as pc

    table = table.combine_chunks()
    rows = table.column("row").to_numpy().astype(np.int64)
    order = np.argsort(rows, kind="stable")
    if not np.array_equal(order, np.arange(len(rows))):
        table = table.take(order)
        rows = rows[order]
    keys = table.column("key").to_numpy().astype(np.uint64)
    rank = table.column("rank").to_numpy().astype(np.float64)
    ss = None
    if minhash:
        sig = table.column("sig").combine_chunks()
        sigs = sig.flatten().to_numpy().astype(np.uint32).reshape(len(rows), num_perm)
        sh = table.column("sh").combine_chunks()
        lens = pc.list_value_length(sh).to_numpy(zero_copy_only=False).astype(np.int64)
        offsets = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lens, out=offsets[1:])
        shingles = sh.flatten().to_numpy(zero_copy_only=False).astype(np.uint32)
        ss = SignatureSet(
            sigs,
            shingles,
            offsets,
            table.column("short").to_numpy(zero_copy_only=False).astype(bool),
            table.column("empty").to_numpy(zero_copy_only=False).astype(bool),
        )
    info = (
        int(rows[0]) if len(rows) else -1,
        int(rows[-1]) if len(rows) else -1,
        len(rows),
        int((keys == 0).sum()),
    )
    return SigBlock(rows, keys, rank, ss), info


# ----------------------------------------------------------------------------------------------------
# shuffles (plain Ray tasks; P partitions)


def split_parts(part: np.ndarray, n_parts: int, *arrays: np.ndarray) -> list[tuple[np.ndarray, ...]]:
    order = np.argsort(part, kind="stable")
    bounds = np.searchsorted(part[order], np.arange(n_parts + 1))
    out = []
    for p in range(n_parts):
        sel = order[bounds[p] : bounds[p + 1]]
        out.append(tuple(a[sel] for a in arrays))
    return out


def _ret(parts: list) -> Any:
    return parts[0] if len(parts) == 1 else tuple(parts)


def exact_map(sb: SigBlock, n_parts: int):
    m = sb.keys != 0
    keys, rows, rank = sb.keys[m], sb.rows[m], sb.rank[m]
    return _ret(split_parts((keys % np.uint64(n_parts)).astype(np.int64), n_parts, keys, rows, rank))


def exact_reduce(*parts):
    keys = np.concatenate([p[0] for p in parts])
    rows = np.concatenate([p[1] for p in parts])
    rank = np.concatenate([p[2] for p in parts])
    order = np.argsort(rows, kind="stable")
    keys, rows, rank = keys[order], rows[order], rank[order]
    labels = cl.group_labels(keys, keys != 0)
    surv = cl.survivors(labels, rank)
    inside = labels >= 0
    return rows[inside], rows[surv[inside]]


def band_map(sb: SigBlock, dropped: np.ndarray, bands: int, rows_per_band: int, n_parts: int):
    ss = sb.ss
    active = (sb.keys != 0) & ~np.isin(sb.rows, dropped)
    eligible = active & ~ss.empty
    stats = (int(ss.short[active].sum()),)
    idx = np.flatnonzero(eligible)
    sub = ss.sigs[idx]
    rows = sb.rows[idx]
    bs, hs, rs = [], [], []
    for band in range(bands):
        h = band_hashes(sub, band, rows_per_band)
        bs.append(np.full(len(idx), band, dtype=np.int32))
        hs.append(h)
        rs.append(rows)
    band_a = np.concatenate(bs) if bs else np.zeros(0, np.int32)
    h_a = np.concatenate(hs) if hs else np.zeros(0, np.uint64)
    r_a = np.concatenate(rs) if rs else np.zeros(0, np.int64)
    parts = split_parts((h_a % np.uint64(n_parts)).astype(np.int64), n_parts, band_a, h_a, r_a)
    return (*parts, stats)


def band_reduce(starts: np.ndarray, *parts):
    """Candidate pairs of the buckets in this partition, exactly as the local banding emits them,
    split by the block that holds the pair's first row; then the members of large buckets (band, hash,
    row), split by the block that holds the row (which adds their extra signature columns)."""
    band = np.concatenate([p[0] for p in parts])
    h = np.concatenate([p[1] for p in parts])
    rows = np.concatenate([p[2] for p in parts])
    n_blocks = len(starts)
    found: list[np.ndarray] = []
    large = (np.zeros(0, np.int64), np.zeros(0, np.uint64), np.zeros(0, np.int64))
    if len(rows) > 1:
        order = np.lexsort((rows, h, band))
        band, h, members = band[order], h[order], rows[order]
        # one key per bucket (band, hash): the position of its first member
        start = np.ones(len(h), dtype=bool)
        start[1:] = (h[1:] != h[:-1]) | (band[1:] != band[:-1])
        bucket = np.cumsum(start) - 1
        found = star_window(bucket, members)
        sizes = np.bincount(bucket)
        big = np.flatnonzero(sizes[bucket] > WINDOW + 1)
        large = (band[big].astype(np.int64), h[big], members[big])
    pairs = np.concatenate(found) if found else np.zeros((0, 2), dtype=np.int64)
    pairs.sort(axis=1)
    if len(pairs):
        pairs = np.unique(pairs, axis=0)
    blk = np.searchsorted(starts, pairs[:, 0], side="right") - 1
    pair_parts = [p[0] for p in split_parts(blk, n_blocks, pairs)]
    lblk = np.searchsorted(starts, large[2], side="right") - 1
    return _ret(pair_parts + split_parts(lblk, n_blocks, *large))


def large_columns(sb: SigBlock, rows_per_band: int, n_parts: int, *requests):
    """The extra signature columns (:func:`curate.dedup.minhash.extra_columns`) of this block's rows
    that are members of large buckets, sent back to the bucket's partition."""
    band = np.concatenate([r[0] for r in requests])
    h = np.concatenate([r[1] for r in requests])
    rows = np.concatenate([r[2] for r in requests])
    num_perm = sb.ss.sigs.shape[1]
    k = len(extra_columns(0, rows_per_band, num_perm))
    vals = np.zeros((len(rows), k), dtype=np.uint32)
    local = np.searchsorted(sb.rows, rows)
    for b in np.unique(band).tolist():
        m = band == b
        vals[m] = sb.ss.sigs[local[m]][:, extra_columns(b, rows_per_band, num_perm)]
    return _ret(split_parts((h % np.uint64(n_parts)).astype(np.int64), n_parts, band, h, rows, vals))


def large_reduce(starts: np.ndarray, *parts):
    """Extra candidates of the large buckets of one partition (as the local banding finds them),
    split by the block of the pair's first row."""
    band = np.concatenate([p[0] for p in parts])
    h = np.concatenate([p[1] for p in parts])
    rows = np.concatenate([p[2] for p in parts])
    vals = np.concatenate([p[3] for p in parts])
    found = large_bucket_pairs(band, h, rows, vals)
    pairs = np.concatenate(found) if found else np.zeros((0, 2), dtype=np.int64)
    pairs.sort(axis=1)
    if len(pairs):
        pairs = np.unique(pairs, axis=0)
    blk = np.searchsorted(starts, pairs[:, 0], side="right") - 1
    return _ret([p[0] for p in split_parts(blk, len(starts), pairs)])


def side_a(sb: SigBlock, starts: np.ndarray, *pair_parts):
    """Pairs whose first row is in this block: attach that row's signature, shingles and rank, and
    forward them to the block of the second row. The last return is the number of unique pairs."""
    n_blocks = len(starts)
    pairs = np.concatenate([p for p in pair_parts if len(p)]) if any(len(p) for p in pair_parts) else None
    if pairs is None:
        pairs = np.zeros((0, 2), dtype=np.int64)
    elif len(pair_parts) > 1:
        pairs = np.unique(pairs, axis=0)
    blk = np.searchsorted(starts, pairs[:, 1], side="right") - 1
    out = []
    for (sub,) in split_parts(blk, n_blocks, pairs):
        if len(sub) == 0:
            out.append(None)
            continue
        a_local = np.searchsorted(sb.rows, sub[:, 0])
        ua, inv = np.unique(a_local, return_inverse=True)
        out.append(
            {
                "a_rows": sb.rows[ua],
                "a_rank": sb.rank[ua],
                "a_set": sb.ss.take(ua),
                "pair_a": inv.reshape(-1).astype(np.int64),
                "b_rows": sub[:, 1],
            }
        )
    return (*out, len(pairs))


def side_b(sb: SigBlock, op: str, threshold: float, exact: bool, *msgs):
    """Second side of the join: ``verify`` (edges at or above the threshold) or ``jaccard`` (exact
    Jaccard of each pair). Returns (a, b, rank_a, rank_b, similarity)."""
    out_a, out_b, out_ra, out_rb, out_s = [], [], [], [], []
    num_perm = sb.ss.sigs.shape[1]
    for m in msgs:
        if m is None:
            continue
        b_local = np.searchsorted(sb.rows, m["b_rows"])
        ub, inv_b = np.unique(b_local, return_inverse=True)
        n_a = len(m["a_rows"])
        both = SignatureSet.concat([m["a_set"], sb.ss.take(ub)], num_perm)
        pairs = np.stack([m["pair_a"], n_a + inv_b.reshape(-1)], axis=1).astype(np.int64)
        if op == "verify":
            pairs, sim = verify(both, pairs, threshold, exact=exact)
        else:
            sets = ShingleSets(both)
            sim = np.fromiter((sets.jaccard(int(a), int(b)) for a, b in pairs), np.float32, len(pairs))
        ai, bi = pairs[:, 0], pairs[:, 1] - n_a
        out_a.append(m["a_rows"][ai])
        out_b.append(sb.rows[ub][bi])
        out_ra.append(m["a_rank"][ai])
        out_rb.append(sb.rank[ub][bi])
        out_s.append(np.asarray(sim, dtype=np.float32))
    if not out_a:
        z = np.zeros(0, np.int64)
        return z, z, np.zeros(0), np.zeros(0), np.zeros(0, np.float32)
    return tuple(np.concatenate(x) for x in (out_a, out_b, out_ra, out_rb, out_s))


# ---- connected components: min-label propagation with pointer jumping, hash-partitioned by node


def cc_edges_map(edges, n_parts: int):
    a, b, ra, rb, _ = edges
    u = np.concatenate([a, b])
    v = np.concatenate([b, a])
    ru = np.concatenate([ra, rb])
    return _ret(split_parts((u % n_parts).astype(np.int64), n_parts, u, v, ru))


def cc_init(*parts):
    u = np.concatenate([p[0] for p in parts])
    v = np.concatenate([p[1] for p in parts])
    ru = np.concatenate([p[2] for p in parts])
    nodes, first = np.unique(u, return_index=True)
    return {"nodes": nodes, "rank": ru[first], "label": nodes.copy(), "u": np.searchsorted(nodes, u), "v": v}


def cc_propagate_map(state, n_parts: int):
    v = state["v"]
    lab = state["label"][state["u"]]
    return _ret(split_parts((v % n_parts).astype(np.int64), n_parts, v, lab))


def cc_lower(state, *msgs):
    """Lower each node's label to the smallest label it was sent; returns (state, labels changed)."""
    nodes = np.concatenate([m[0] for m in msgs])
    labs = np.concatenate([m[1] for m in msgs])
    if len(nodes) == 0:
        return state, 0
    new = state["label"].copy()
    np.minimum.at(new, np.searchsorted(state["nodes"], nodes), labs)
    changed = int((new < state["label"]).sum())
    return {**state, "label": new}, changed


def cc_jump_ask(state, n_parts: int):
    m = state["label"] != state["nodes"]
    lab, node = state["label"][m], state["nodes"][m]
    return _ret(split_parts((lab % n_parts).astype(np.int64), n_parts, lab, node))


def cc_jump_answer(state, n_parts: int, *asks):
    lab = np.concatenate([a[0] for a in asks])
    node = np.concatenate([a[1] for a in asks])
    their = state["label"][np.searchsorted(state["nodes"], lab)]
    return _ret(split_parts((node % n_parts).astype(np.int64), n_parts, node, their))


def cc_final_map(state, n_parts: int):
    lab, node, rank = state["label"], state["nodes"], state["rank"]
    return _ret(split_parts((lab % n_parts).astype(np.int64), n_parts, lab, node, rank))


def cc_final_reduce(*parts):
    lab = np.concatenate([p[0] for p in parts])
    node = np.concatenate([p[1] for p in parts])
    rank = np.concatenate([p[2] for p in parts])
    if len(node) == 0:
        return node, node
    order = np.lexsort((node, rank, lab))
    lab, node = lab[order], node[order]
    first = np.ones(len(lab), dtype=bool)
    first[1:] = lab[1:] != lab[:-1]
    head = node[first][np.cumsum(first) - 1]
    return node, head


def count_edges(edges) -> int:
    return len(edges[0])
