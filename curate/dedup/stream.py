"""Near-duplicate clusters in bounded memory: candidate pairs streamed band by band, made unique
against the pairs already seen (:class:`PairSet`), verified in blocks and joined in a numpy
:class:`UnionFind`."""

from __future__ import annotations

import numpy as np

from curate.dedup.lsh import band_pair_batches
from curate.dedup.shingle_store import sorted_unique
from curate.dedup.signatures import SignatureSet
from curate.dedup.verification import VERIFY_BLOCK, ShingleArrays, ShingleSets, verify


class PairSet:
    """The candidate pairs seen so far (sorted int64 codes ``a * n + b``), so a pair found in several
    bands is verified once. Past ``max_codes`` it stops remembering (pairs are then verified again,
    which changes no decision, and ``exact`` becomes False: the candidate count is an upper bound)."""

    def __init__(self, max_codes: int):
        self.codes = np.zeros(0, dtype=np.int64)
        self.max_codes = max_codes
        self.exact = True

    def new(self, codes: np.ndarray) -> np.ndarray:
        """The unique codes of ``codes`` not seen before, now remembered."""
        codes = sorted_unique(codes)
        if not self.exact:
            return codes
        if len(self.codes):
            pos = np.searchsorted(self.codes, codes)
            pos[pos == len(self.codes)] = 0
            codes = codes[self.codes[pos] != codes]
        if len(self.codes) + len(codes) > self.max_codes:
            self.exact = False
            self.codes = np.zeros(0, dtype=np.int64)
        elif len(codes):
            self.codes = np.sort(np.concatenate([self.codes, codes]))  # disjoint: no unique needed
        return codes


class UnionFind:
    """Union-find over ``n`` nodes in numpy: edges arrive in batches (streamed from the bands), roots
    are always the smallest node of their tree, and :meth:`labels` gives the connected components of
    every edge seen (the components of :func:`curate.dedup.cluster.components`, other label values)."""

    def __init__(self, n: int):
        self.parent = np.arange(n, dtype=np.int64)
        self.touched = np.zeros(n, dtype=bool)

    def find(self, x: np.ndarray) -> np.ndarray:
        r = self.parent[x]
        while True:
            up = self.parent[r]
            if np.array_equal(up, r):
                break
            r = up
        self.parent[x] = r  # path compression for the nodes asked about
        return r

    def union(self, a: np.ndarray, b: np.ndarray) -> None:
        if len(a) == 0:
            return
        self.touched[a] = True
        self.touched[b] = True
        ra, rb = self.find(a), self.find(b)
        while True:
            differ = ra != rb
            if not differ.any():
                return
            ra, rb = ra[differ], rb[differ]
            # hook the larger root under the smaller one (the smallest wins where a root has several)
            np.minimum.at(self.parent, np.maximum(ra, rb), np.minimum(ra, rb))
            ra, rb = self.find(ra), self.find(rb)

    def labels(self) -> np.ndarray:
        p = self.parent
        while True:
            up = p[p]
            if np.array_equal(up, p):
                break
            p = up
        self.parent = p
        return np.where(self.touched, p, -1)


def stream_clusters(
    sigs: np.ndarray,
    bands: int,
    rows: int,
    eligible: np.ndarray,
    threshold: float,
    sets: ShingleSets | ShingleArrays,
    is_new: np.ndarray | None = None,
    exact: bool = True,
    budget: int = 1 << 30,
    verify_block: int = VERIFY_BLOCK,
) -> tuple[np.ndarray, dict[str, int | bool]]:
    """Connected components of the verified candidate pairs, as :func:`candidate_pairs` +
    :func:`verify` + :func:`~curate.dedup.cluster.components` give them, in memory bounded by
    ``budget`` bytes (besides the signatures): candidates are generated one band (and one large-bucket
    column) at a time, made unique against the pairs already seen, verified in blocks whose shingle
    sets fit the budget (``verify_block`` pairs at a time) and streamed into a union-find. Returns
    (labels, counts)."""
    n_all = sigs.shape[0]
    seen = PairSet(max(1_000_000, budget // 4 // 8))  # a quarter of the budget for pair codes
    flush_codes = max(100_000, budget // 16 // 8)  # codes gathered before they are verified
    uf = UnionFind(n_all)
    counts = {"candidate_pairs": 0, "verified_pairs": 0}
    pending: list[np.ndarray] = []
    n_pending = 0

    def flush() -> None:
        nonlocal n_pending
        if not pending:
            return
        codes = seen.new(np.concatenate(pending))
        pending.clear()
        n_pending = 0
        counts["candidate_pairs"] += len(codes)
        for s in range(0, len(codes), verify_block):
            block = codes[s : s + verify_block]
            pairs = np.stack([block // n_all, block % n_all], axis=1)
            ok, _ = verify(
                SignatureSet(sigs, None, None, None, None), pairs, threshold, exact=exact, sets=sets
            )
            counts["verified_pairs"] += len(ok)
            uf.union(ok[:, 0], ok[:, 1])

    for pairs in band_pair_batches(sigs, bands, rows, eligible):
        lo, hi = np.minimum(pairs[:, 0], pairs[:, 1]), np.maximum(pairs[:, 0], pairs[:, 1])
        if is_new is not None:
            keep = is_new[lo] | is_new[hi]
            lo, hi = lo[keep], hi[keep]
        if len(lo) == 0:
            continue
        pending.append(lo * n_all + hi)  # made unique at the flush
        n_pending += len(pending[-1])
        if n_pending >= flush_codes:
            flush()
    flush()
    counts["candidates_exact"] = seen.exact
    return uf.labels(), counts
