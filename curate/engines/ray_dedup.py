"""Dedup on Ray: the same decisions as :func:`curate.dedup.engine.run`, with no single-machine index.

The per-row work reuses the dedup stage's own functions (``compare_text``, ``normalise``,
``policy_key``, ``signatures``, ``band_hashes``, ``verify``, ``group_labels``, ``survivors``,
``ShingleSets``); only the steps that need the whole set are distributed here:

1. **Signatures** (Ray Data ``map_batches``): compared text, exact key, survivor rank, MinHash
   signature and shingle set of every row, per block. Blocks stay in the object store.
2. **Exact duplicates**: shuffle ``(key, row, rank)`` by key hash into P partitions; each partition
   groups its keys and picks survivors.
3. **LSH banding as a shuffle**: every active row emits ``(band, band hash, row)``, partitioned by
   band hash; each partition sorts its buckets and emits the candidate pairs exactly as the local
   banding does (each member with the bucket's first member and its next ``WINDOW`` members). The
   members of large buckets go to the blocks holding them, which add their extra signature columns
   and send them back to the bucket's partition for :func:`curate.dedup.minhash.large_bucket_pairs`.
4. **Verification as a two-sided join**: pairs go to the block holding their first row, which
   attaches that row's signature and shingles and forwards them to the block holding the second row,
   where :func:`curate.dedup.minhash.verify` decides.
5. **Connected components**: min-label propagation with pointer jumping over hash-partitioned edge
   lists (Ray tasks, one per partition per round), then survivors per component by the keep policy.

Only the decisions (row -> survivor, similarity) come back to the driver, which builds kept/dropped
frames, ``dup_*`` columns and the cluster list in exactly the local format.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from curate.engines import EngineSpec

ROW = "__tamis_row"
MAX_PARTITIONS = 64


@dataclass
class SigBlock:
    """One block of rows after the signature pass (rows ascending, contiguous)."""

    rows: np.ndarray  # int64 global row numbers
    keys: np.ndarray  # uint64 exact keys (0 = empty text)
    rank: np.ndarray  # float64 keep-policy key (lower wins)
    ss: Any  # curate.dedup.minhash.SignatureSet, or None without minhash


# ----------------------------------------------------------------------------------------------------
# 1. signatures (Ray Data map_batches)


def _signature_batch(table, fields, keep, minhash, ngram, num_perm, seed, chunk, latin, latin_ngram):
    import pyarrow as pa

    from curate.dedup import cluster as cl
    from curate.dedup.minhash import signatures
    from curate.dedup.text import compare_text, content_lengths, doc_keys, normalise, tokenize

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


def _to_sigblock(table, num_perm: int, minhash: bool):
    """Arrow block -> SigBlock (numpy), plus (first row, last row, rows, empty texts)."""
    import pyarrow.compute as pc

    from curate.dedup.minhash import SignatureSet

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


def _split(part: np.ndarray, n_parts: int, *arrays: np.ndarray) -> list[tuple[np.ndarray, ...]]:
    order = np.argsort(part, kind="stable")
    bounds = np.searchsorted(part[order], np.arange(n_parts + 1))
    out = []
    for p in range(n_parts):
        sel = order[bounds[p] : bounds[p + 1]]
        out.append(tuple(a[sel] for a in arrays))
    return out


def _ret(parts: list) -> Any:
    return parts[0] if len(parts) == 1 else tuple(parts)


def _exact_map(sb: SigBlock, n_parts: int):
    m = sb.keys != 0
    keys, rows, rank = sb.keys[m], sb.rows[m], sb.rank[m]
    return _ret(_split((keys % np.uint64(n_parts)).astype(np.int64), n_parts, keys, rows, rank))


def _exact_reduce(*parts):
    from curate.dedup import cluster as cl

    keys = np.concatenate([p[0] for p in parts])
    rows = np.concatenate([p[1] for p in parts])
    rank = np.concatenate([p[2] for p in parts])
    order = np.argsort(rows, kind="stable")
    keys, rows, rank = keys[order], rows[order], rank[order]
    labels = cl.group_labels(keys, keys != 0)
    surv = cl.survivors(labels, rank)
    inside = labels >= 0
    return rows[inside], rows[surv[inside]]


def _band_map(sb: SigBlock, dropped: np.ndarray, bands: int, rows_per_band: int, n_parts: int):
    from curate.dedup.minhash import band_hashes

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
    parts = _split((h_a % np.uint64(n_parts)).astype(np.int64), n_parts, band_a, h_a, r_a)
    return (*parts, stats)


def _band_reduce(starts: np.ndarray, *parts):
    """Candidate pairs of the buckets in this partition, exactly as the local banding emits them,
    split by the block that holds the pair's first row; then the members of large buckets (band, hash,
    row), split by the block that holds the row (which adds their extra signature columns)."""
    from curate.dedup.minhash import WINDOW, _star_window

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
        found = _star_window(bucket, members)
        sizes = np.bincount(bucket)
        big = np.flatnonzero(sizes[bucket] > WINDOW + 1)
        large = (band[big].astype(np.int64), h[big], members[big])
    pairs = np.concatenate(found) if found else np.zeros((0, 2), dtype=np.int64)
    pairs.sort(axis=1)
    if len(pairs):
        pairs = np.unique(pairs, axis=0)
    blk = np.searchsorted(starts, pairs[:, 0], side="right") - 1
    pair_parts = [p[0] for p in _split(blk, n_blocks, pairs)]
    lblk = np.searchsorted(starts, large[2], side="right") - 1
    return _ret(pair_parts + _split(lblk, n_blocks, *large))


def _large_columns(sb: SigBlock, rows_per_band: int, n_parts: int, *requests):
    """The extra signature columns (:func:`curate.dedup.minhash.extra_columns`) of this block's rows
    that are members of large buckets, sent back to the bucket's partition."""
    from curate.dedup.minhash import extra_columns

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
    return _ret(_split((h % np.uint64(n_parts)).astype(np.int64), n_parts, band, h, rows, vals))


def _large_reduce(starts: np.ndarray, *parts):
    """Extra candidates of the large buckets of one partition (as the local banding finds them),
    split by the block of the pair's first row."""
    from curate.dedup.minhash import large_bucket_pairs

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
    return _ret([p[0] for p in _split(blk, len(starts), pairs)])


def _side_a(sb: SigBlock, starts: np.ndarray, *pair_parts):
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
    for (sub,) in _split(blk, n_blocks, pairs):
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


def _side_b(sb: SigBlock, op: str, threshold: float, exact: bool, *msgs):
    """Second side of the join: ``verify`` (edges at or above the threshold) or ``jaccard`` (exact
    Jaccard of each pair). Returns (a, b, rank_a, rank_b, similarity)."""
    from curate.dedup.minhash import ShingleSets, SignatureSet, verify

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


def _cc_edges_map(edges, n_parts: int):
    a, b, ra, rb, _ = edges
    u = np.concatenate([a, b])
    v = np.concatenate([b, a])
    ru = np.concatenate([ra, rb])
    return _ret(_split((u % n_parts).astype(np.int64), n_parts, u, v, ru))


def _cc_init(*parts):
    u = np.concatenate([p[0] for p in parts])
    v = np.concatenate([p[1] for p in parts])
    ru = np.concatenate([p[2] for p in parts])
    nodes, first = np.unique(u, return_index=True)
    return {"nodes": nodes, "rank": ru[first], "label": nodes.copy(), "u": np.searchsorted(nodes, u), "v": v}


def _cc_propagate_map(state, n_parts: int):
    v = state["v"]
    lab = state["label"][state["u"]]
    return _ret(_split((v % n_parts).astype(np.int64), n_parts, v, lab))


def _cc_lower(state, *msgs):
    """Lower each node's label to the smallest label it was sent; returns (state, labels changed)."""
    nodes = np.concatenate([m[0] for m in msgs])
    labs = np.concatenate([m[1] for m in msgs])
    if len(nodes) == 0:
        return state, 0
    new = state["label"].copy()
    np.minimum.at(new, np.searchsorted(state["nodes"], nodes), labs)
    changed = int((new < state["label"]).sum())
    return {**state, "label": new}, changed


def _cc_jump_ask(state, n_parts: int):
    m = state["label"] != state["nodes"]
    lab, node = state["label"][m], state["nodes"][m]
    return _ret(_split((lab % n_parts).astype(np.int64), n_parts, lab, node))


def _cc_jump_answer(state, n_parts: int, *asks):
    lab = np.concatenate([a[0] for a in asks])
    node = np.concatenate([a[1] for a in asks])
    their = state["label"][np.searchsorted(state["nodes"], lab)]
    return _ret(_split((node % n_parts).astype(np.int64), n_parts, node, their))


def _cc_final_map(state, n_parts: int):
    lab, node, rank = state["label"], state["nodes"], state["rank"]
    return _ret(_split((lab % n_parts).astype(np.int64), n_parts, lab, node, rank))


def _cc_final_reduce(*parts):
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


# ----------------------------------------------------------------------------------------------------
# driver


class _Plan:
    """Remote functions and the block directory of one dedup run."""

    def __init__(self, ray, blocks: list, infos: list[tuple[int, int, int, int]], n_parts: int):
        self.ray = ray
        order = sorted(range(len(blocks)), key=lambda i: infos[i][0])
        self.blocks = [blocks[i] for i in order if infos[i][2]]
        infos = [infos[i] for i in order if infos[i][2]]
        self.starts = np.array([i[0] for i in infos], dtype=np.int64)
        for (_, hi, _, _), nxt in zip(infos, infos[1:], strict=False):
            if nxt[0] != hi + 1:
                raise RuntimeError("ray dedup: blocks do not cover consecutive rows")  # a Ray Data change
        self.n_parts = n_parts
        self.B = len(self.blocks)

    def remote(self, fn, num_returns: int = 1):
        return self.ray.remote(num_returns=num_returns)(fn) if num_returns != 1 else self.ray.remote(fn)

    def as_list(self, refs, n: int) -> list:
        return [refs] if n == 1 else list(refs)

    def block_of(self, rows: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.starts, rows, side="right") - 1

    def pair_join(self, pair_parts_per_block: list[list], op: str, threshold: float, exact: bool):
        """Pairs (grouped by the block of their first row) through side A and side B; returns the
        concatenated (a, b, rank_a, rank_b, sim) refs per block and the unique pair count."""
        B = self.B
        side_a = self.remote(_side_a, num_returns=B + 1)
        fwd = []
        counts = []
        for i in range(B):
            res = side_a.remote(self.blocks[i], self.starts, *pair_parts_per_block[i])
            res = list(res)
            fwd.append(res[:B])
            counts.append(res[B])
        side_b = self.remote(_side_b)
        outs = [
            side_b.remote(self.blocks[j], op, threshold, exact, *[fwd[i][j] for i in range(B)])
            for j in range(B)
        ]
        return outs, int(sum(self.ray.get(counts)))

    def components(self, edge_refs: list) -> tuple[np.ndarray, np.ndarray, int]:
        """Connected components of the verified edges; (node rows, survivor rows, rounds)."""
        P = self.n_parts
        emap = self.remote(_cc_edges_map, num_returns=P)
        mapped = [self.as_list(emap.remote(e, P), P) for e in edge_refs]
        cc_init = self.remote(_cc_init)
        states = [cc_init.remote(*[m[q] for m in mapped]) for q in range(P)]
        pmap = self.remote(_cc_propagate_map, num_returns=P)
        lower = self.remote(_cc_lower, num_returns=2)
        ask = self.remote(_cc_jump_ask, num_returns=P)
        answer = self.remote(_cc_jump_answer, num_returns=P)
        rounds = 0
        while True:
            rounds += 1
            msgs = [self.as_list(pmap.remote(s, P), P) for s in states]
            res = [lower.remote(states[q], *[m[q] for m in msgs]) for q in range(P)]
            states = [r[0] for r in res]
            if sum(self.ray.get([r[1] for r in res])) == 0:
                break
            asks = [self.as_list(ask.remote(s, P), P) for s in states]
            answers = [self.as_list(answer.remote(states[q], P, *[a[q] for a in asks]), P) for q in range(P)]
            states = [lower.remote(states[q], *[a[q] for a in answers])[0] for q in range(P)]
        fmap = self.remote(_cc_final_map, num_returns=P)
        fm = [self.as_list(fmap.remote(s, P), P) for s in states]
        fred = self.remote(_cc_final_reduce)
        outs = self.ray.get([fred.remote(*[m[q] for m in fm]) for q in range(P)])
        node = np.concatenate([o[0] for o in outs]) if outs else np.zeros(0, np.int64)
        surv = np.concatenate([o[1] for o in outs]) if outs else np.zeros(0, np.int64)
        order = np.argsort(node, kind="stable")
        return node[order], surv[order], rounds

    def similarities(self, rows: np.ndarray, surv: np.ndarray) -> np.ndarray:
        """Exact Jaccard of each row with its survivor (1.0 for the survivor itself)."""
        sim = np.ones(len(rows), dtype=np.float32)
        m = rows != surv
        if not m.any():
            return sim
        pairs = np.stack([rows[m], surv[m]], axis=1)
        blk = self.block_of(pairs[:, 0])
        per_block = [[self.ray.put(p[0])] for p in _split(blk, self.B, pairs)]
        outs, _ = self.pair_join(per_block, "jaccard", 0.0, True)
        res = self.ray.get(outs)
        a = np.concatenate([r[0] for r in res])
        b = np.concatenate([r[1] for r in res])
        s = np.concatenate([r[4] for r in res])
        lookup = {(int(x), int(y)): float(z) for x, y, z in zip(a, b, s, strict=True)}
        sim[m] = np.array([lookup[(int(x), int(y))] for x, y in pairs], dtype=np.float32)
        return sim


def _fallback(frame, config, spec, reason: str, **kwargs):
    from curate.dedup.engine import run

    result = run(frame, config, **kwargs)
    result.stats = dict(result.stats)
    result.stats["engine"] = {"name": "ray", "kind": "dedup", "note": f"ran on the driver: {reason}"}
    return result


def run_dedup(
    frame: pl.DataFrame,
    config=None,
    spec: EngineSpec | None = None,
    *,
    prior=None,
    progress=None,
    embedder=None,
):
    """:func:`curate.dedup.engine.run` on Ray: same kept rows, dropped rows, clusters and counts."""
    from curate.dedup import cluster as cl
    from curate.dedup.engine import DedupConfig
    from curate.engines.ray import block_rows_for, cluster_cpus, ensure_ray, split_frame

    config = config or DedupConfig()
    spec = spec or EngineSpec("ray")
    if prior is not None:
        return _fallback(
            frame, config, spec, "incremental state (--state) is a driver-side index", prior=prior
        )
    if "semantic" in config.methods:
        return _fallback(frame, config, spec, "semantic dedup is not distributed yet", embedder=embedder)
    if frame.height == 0:
        return _fallback(frame, config, spec, "empty input")
    cl.policy_key(frame.head(1), config.keep, np.zeros(1))  # a bad --keep column fails here, not in a worker

    ray = ensure_ray(spec)  # ray.data imported there

    t0 = time.perf_counter()
    n = frame.height
    minhash = "minhash" in config.methods
    needed = [c for c in ("kind", "history", "question", "answer", "chosen", "text") if c in frame.columns]
    mode, col = cl.parse_keep(config.keep)
    if mode == "best" and col not in needed:
        needed.append(col)
    work = frame.select(needed).with_row_index(ROW).with_columns(pl.col(ROW).cast(pl.Int64))
    rows_per_block = block_rows_for(n, spec)
    n_parts = max(1, min(MAX_PARTITIONS, 2 * cluster_cpus()))

    # 1. signatures
    tm = time.perf_counter()
    ds = ray.data.from_arrow(split_frame(work, rows_per_block)).map_batches(
        _signature_batch,
        fn_args=(
            config.fields,
            config.keep,
            minhash,
            config.ngram,
            config.num_perm,
            config.seed,
            config.chunk,
            config.latin,
            config.latin_ngram,
        ),
        batch_size=None,
        batch_format="pyarrow",
    )
    to_sb = ray.remote(num_returns=2)(_to_sigblock)
    conv = [to_sb.remote(ref, config.num_perm, minhash) for ref in ds.to_arrow_refs()]
    infos = ray.get([c[1] for c in conv])
    plan = _Plan(ray, [c[0] for c in conv], infos, n_parts)
    t_sig = time.perf_counter() - tm
    n_empty = sum(i[3] for i in infos)

    stats: dict[str, Any] = {"methods": ",".join(config.methods), "fields": ",".join(config.fields)}
    stats["empty_not_compared"] = n_empty
    decisions: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]] = []  # method, rows, survivor, sim
    exact_dropped = np.zeros(0, dtype=np.int64)
    P, B = n_parts, plan.B

    # 2. exact
    if "exact" in config.methods:
        decision, exact_dropped, stats["exact"] = _exact_step(ray, plan, P)
        decisions.append(decision)

    # 3-5. minhash
    rounds = 0
    if minhash:
        decision, stats["minhash"], rounds = _minhash_step(ray, plan, config, exact_dropped, n, t_sig)
        decisions.append(decision)

    result = _assemble(frame, config, decisions, stats)
    result.stats["seconds_total"] = round(time.perf_counter() - t0, 3)
    result.stats["engine"] = {
        "name": "ray",
        "kind": "dedup",
        "blocks": B,
        "partitions": P,
        "block_rows": rows_per_block,
        **({"component_rounds": rounds} if minhash else {}),
    }
    return result


def _exact_step(ray, plan: _Plan, P: int):
    """Exact duplicates: keys shuffled to partitions, one survivor per key."""
    tm = time.perf_counter()
    emap = plan.remote(_exact_map, num_returns=P)
    mapped = [plan.as_list(emap.remote(b, P), P) for b in plan.blocks]
    ered = plan.remote(_exact_reduce)
    outs = ray.get([ered.remote(*[m[q] for m in mapped]) for q in range(P)])
    rows = np.concatenate([o[0] for o in outs])
    surv = np.concatenate([o[1] for o in outs])
    order = np.argsort(rows, kind="stable")
    rows, surv = rows[order], surv[order]
    lost = rows != surv
    exact_dropped = rows[lost]
    decision = ("exact", rows, surv, np.ones(len(rows), dtype=np.float32))
    stats = {
        "clusters": int(len(np.unique(surv))) if lost.any() else 0,
        "dropped": int(lost.sum()),
        "seconds": round(time.perf_counter() - tm, 3),
    }
    return decision, exact_dropped, stats


def _minhash_step(ray, plan: _Plan, config, exact_dropped: np.ndarray, n: int, t_sig: float):
    """Near duplicates: LSH banding as a shuffle, large buckets, verified pairs, connected components."""
    from curate.dedup.minhash import minhash_stats

    P, B = plan.n_parts, plan.B
    tm = time.perf_counter()
    bands, rpb = config.lsh_shape()
    bmap = plan.remote(_band_map, num_returns=P + 1)
    dropped_by_block = _split(plan.block_of(exact_dropped), B, exact_dropped)
    mapped = (
        [list(bmap.remote(plan.blocks[i], dropped_by_block[i][0], bands, rpb, P)) for i in range(B)]
        if B
        else []
    )
    short_texts = sum(s[0] for s in ray.get([m[P] for m in mapped]))
    bred = plan.remote(_band_reduce, num_returns=2 * B)
    reduced = [plan.as_list(bred.remote(plan.starts, *[m[q] for m in mapped]), 2 * B) for q in range(P)]
    # large buckets: their members' extra signature columns, then the extra candidates
    lcols = plan.remote(_large_columns, num_returns=P)
    cols = [
        plan.as_list(lcols.remote(plan.blocks[i], rpb, P, *[reduced[q][B + i] for q in range(P)]), P)
        for i in range(B)
    ]
    lred = plan.remote(_large_reduce, num_returns=B)
    extra = [plan.as_list(lred.remote(plan.starts, *[c[q] for c in cols]), B) for q in range(P)]
    per_block = [[reduced[q][i] for q in range(P)] + [extra[q][i] for q in range(P)] for i in range(B)]
    edge_refs, n_cand = plan.pair_join(per_block, "verify", config.threshold, config.verify == "exact")
    n_edges = sum(ray.get([plan.remote(_count).remote(e) for e in edge_refs]))
    rounds = 0
    if n_edges:
        rows, surv, rounds = plan.components(edge_refs)
        sim = plan.similarities(rows, surv)
    else:
        rows = surv = np.zeros(0, dtype=np.int64)
        sim = np.zeros(0, dtype=np.float32)
    lost = rows != surv
    decision = ("minhash", rows, surv, sim)
    clusters = len(np.unique(surv)) if lost.any() else 0
    stats = minhash_stats(
        config, bands, rpb, short_texts, n_cand, n_edges, clusters, lost.sum(), t_sig, n, tm
    )
    return decision, stats, rounds


def _count(edges) -> int:
    return len(edges[0])


def _assemble(frame: pl.DataFrame, config, decisions, stats):
    """Kept/dropped frames, drop details, ``dup_*`` columns and the cluster list, in the local
    engine's format (see ``settle`` and ``resolve_survivors`` in :mod:`curate.dedup.engine`)."""
    from curate.dedup.engine import (
        METHODS,
        PREVIEW,
        DedupResult,
        _source_str,
        dropped_frame,
        resolve_survivors,
    )
    from curate.dedup.text import compare_text, display_text

    n = frame.height
    drop_method: dict[int, str] = {}
    drop_info: dict[int, dict[str, Any]] = {}
    matched: dict[int, tuple[str, int]] = {}
    clusters_out: list[dict[str, Any]] = []
    involved = (
        np.unique(np.concatenate([np.concatenate([d[1], d[2]]) for d in decisions])) if decisions else []
    )
    involved = np.asarray(involved, dtype=np.int64)
    sub = frame[involved] if len(involved) else frame.head(0)
    raw = compare_text(sub, config.fields).to_list() if len(involved) else []
    ids = sub["id"].to_list() if "id" in sub.columns else [str(int(i)) for i in involved]
    if "source" in sub.columns and len(involved):
        src = sub["source"].struct.unnest()
        sources = [
            _source_str(f, ln, sh) for f, ln, sh in zip(src["file"], src["line"], src["sheet"], strict=True)
        ]
    else:
        sources = [None] * len(involved)
    pos = {int(r): k for k, r in enumerate(involved)}

    def describe(i: int) -> dict[str, Any]:
        k = pos[i]
        return {
            "id": ids[k],
            "source": sources[k],
            "batch": None,
            "text": display_text(raw[k])[:PREVIEW],
            "row": i,
        }

    for method, rows, surv, sim in decisions:
        if not (rows != surv).any():
            continue
        cluster_no = {int(s): k for k, s in enumerate(np.unique(surv).tolist())}
        sim_of = dict(zip(rows.tolist(), sim.tolist(), strict=True))
        members_by: dict[int, list[int]] = {}
        for r, s in zip(rows.tolist(), surv.tolist(), strict=True):
            members_by.setdefault(s, []).append(r)
        for s_row in sorted(members_by, key=lambda s: members_by[s][0]):
            members = members_by[s_row]
            cid = f"{method}-{cluster_no[s_row]:06d}"
            s_desc = describe(s_row)
            out_members = []
            for r in members:
                d = describe(r)
                d["similarity"] = round(float(sim_of[r]), 4)
                d["kept"] = r == s_row
                out_members.append(d)
                if r != s_row:
                    drop_method[r] = method
                    drop_info[r] = {
                        "method": method,
                        "cluster": cid,
                        "survivor_id": s_desc["id"],
                        "survivor_source": s_desc["source"],
                        "similarity": d["similarity"],
                    }
                    matched[r] = ("new", s_row)
            clusters_out.append(
                {
                    "cluster": cid,
                    "method": method,
                    "size": len(members),
                    "survivor": s_desc,
                    "min_similarity": min(m["similarity"] for m in out_members),
                    "members": out_members,
                }
            )

    resolve_survivors(drop_info, matched, clusters_out, describe)
    dropped_idx = np.array(sorted(drop_method), dtype=np.int64)
    kept_mask = np.ones(n, dtype=bool)
    kept_mask[dropped_idx] = False
    kept = frame.filter(pl.Series(kept_mask))
    dframe = dropped_frame(frame, dropped_idx, drop_method, drop_info)
    clusters_out.sort(key=lambda c: (METHODS.index(c["method"]), c["cluster"]))
    return DedupResult(kept, dframe, dict(stats), clusters_out, None)
