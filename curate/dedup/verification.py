"""Verification of candidate pairs: a cheap filter on the MinHash estimate, then the exact Jaccard of
the two shingle sets (Python sets for a few pairs, scipy sparse rows for blocks of many), so false
positives of the banding never reach the output."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from curate.dedup.shingle_store import canonical_rows
from curate.dedup.signatures import SignatureSet

VERIFY_BLOCK = 50_000  # candidate pairs verified at a time (their shingle sets are fetched together)


def estimated_jaccard(sigs: np.ndarray, pairs: np.ndarray, block: int = 200_000) -> np.ndarray:
    out = np.empty(len(pairs), dtype=np.float32)
    for s in range(0, len(pairs), block):
        p = pairs[s : s + block]
        out[s : s + block] = (sigs[p[:, 0]] == sigs[p[:, 1]]).mean(axis=1)
    return out


class ShingleSets:
    """Exact Jaccard between rows, with a cache of Python sets. Rows come from a SignatureSet with
    stored shingles, or from ``fetch(rows) -> list[frozenset]`` (computed in one batch on demand).
    With ``max_items`` the cache holds at most about that many shingles: the oldest sets are evicted
    before new ones come in (never those of the current request)."""

    def __init__(
        self,
        ss: SignatureSet | None = None,
        fetch: Callable[[np.ndarray], list] | None = None,
        max_items: int | None = None,
    ):
        self.ss = ss
        self.fetch = fetch
        self.cache: dict[int, frozenset] = {}
        self.max_items = max_items
        self.items = 0

    def prefetch(self, rows: np.ndarray) -> None:
        rows = np.unique(np.asarray(rows, dtype=np.int64))
        rows = np.array([r for r in rows.tolist() if r not in self.cache], dtype=np.int64)
        if len(rows) == 0:
            return
        if self.fetch is not None:
            fetched = self.fetch(rows)
        else:
            fetched = [self.ss.shingle_set(r) for r in rows.tolist()]
        if self.max_items is not None:
            incoming = sum(len(st) for st in fetched)
            keep = set(rows.tolist())
            while self.cache and self.items + incoming > self.max_items:
                old = next(iter(self.cache))
                if old in keep:  # cannot happen: rows are the missing ones
                    break
                self.items -= len(self.cache.pop(old))
            self.items += incoming
        for r, st in zip(rows.tolist(), fetched, strict=True):
            self.cache[r] = st

    def get(self, i: int) -> frozenset:
        s = self.cache.get(i)
        if s is None:
            self.prefetch(np.array([i]))
            s = self.cache[i]
        return s

    def jaccard(self, a: int, b: int) -> float:
        sa, sb = self.get(a), self.get(b)
        if not sa and not sb:
            return 1.0
        inter = len(sa & sb)
        return inter / (len(sa) + len(sb) - inter)


class ShingleArrays:
    """Exact Jaccard of many pairs at once, in numpy/scipy: ``get(rows)`` returns the shingles of the
    (sorted, unique) rows as flat uint32 + offsets; each row's set becomes a sparse 0/1 row and a pair's
    intersection is the sum of the element-wise product of its two rows. Gives the values of
    :meth:`ShingleSets.jaccard` (float32 of ``|a & b| / |a | b|``, 1.0 for two empty sets) with no
    Python object per shingle, so memory stays with the block of pairs asked about."""

    def __init__(self, get: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]], canonical: bool = False):
        self.get = get
        self.canonical = canonical  # get() already returns sorted distinct values per row

    def jaccard_many(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        from scipy.sparse import csr_matrix

        if len(a) == 0:
            return np.zeros(0, dtype=np.float32)
        both = np.concatenate([a, b])
        order = np.argsort(both, kind="stable")
        ordered = both[order]
        first = np.ones(len(both), dtype=bool)
        first[1:] = ordered[1:] != ordered[:-1]
        rows = ordered[first]
        inv = np.empty(len(both), dtype=np.int64)
        inv[order] = np.cumsum(first) - 1
        flat, indptr = self.get(rows)
        if not self.canonical:
            flat, indptr = canonical_rows(flat, indptr)
        sizes = np.diff(indptr).astype(np.float64)
        v = flat.astype(np.int64)
        m = csr_matrix((np.ones(len(v), dtype=np.int32), v, indptr), shape=(len(rows), 1 << 32))
        ia, ib = inv[: len(a)], inv[len(a) :]
        inter = np.asarray(m[ia].multiply(m[ib]).sum(axis=1), dtype=np.float64).ravel()
        union = sizes[ia] + sizes[ib] - inter
        with np.errstate(invalid="ignore", divide="ignore"):
            jac = np.where(union > 0, inter / np.where(union > 0, union, 1), 1.0)
        return jac.astype(np.float32)


def verify(
    ss: SignatureSet,
    pairs: np.ndarray,
    threshold: float,
    exact: bool = True,
    sets: ShingleSets | ShingleArrays | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Keep candidate pairs whose Jaccard is >= threshold; returns (pairs, jaccard).

    A cheap filter on the estimated Jaccard (signature agreement) first removes pairs far below the
    threshold (more than ~3.5 standard deviations of the estimate at the threshold), then the exact
    Jaccard of the shingle sets decides."""
    if len(pairs) == 0:
        return pairs, np.zeros(0, dtype=np.float32)
    est = estimated_jaccard(ss.sigs, pairs)
    num_perm = ss.sigs.shape[1]
    margin = 3.5 * math.sqrt(threshold * (1 - threshold) / num_perm) + 1.0 / num_perm
    keep = est >= threshold - margin
    pairs, est = pairs[keep], est[keep]
    if not exact:
        ok = est >= threshold
        return pairs[ok], est[ok]
    sets = sets or ShingleSets(ss)
    if isinstance(sets, ShingleArrays):
        jac = sets.jaccard_many(pairs[:, 0], pairs[:, 1])
    else:
        sets.prefetch(pairs.ravel())
        jac = np.fromiter(
            (sets.jaccard(int(a), int(b)) for a, b in pairs), dtype=np.float32, count=len(pairs)
        )
    ok = jac >= threshold - 1e-9
    return pairs[ok], jac[ok]
