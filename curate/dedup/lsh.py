"""LSH banding: bands and rows from the threshold, band hashes, and the candidate pairs of every band
bucket (star + window pairs, plus extra grouping inside large buckets), all in numpy.

Bands and rows are derived from the Jaccard threshold so that a pair at the threshold becomes a
candidate with probability >= 0.995 (few misses). Banding is done here (sort by band hash), so any
``bands x rows <= num_perm`` works, unlike rensa's own LSH which needs ``num_perm % bands == 0``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from curate.dedup.shingle_store import sorted_unique
from curate.dedup.text import fmix64

CANDIDATE_RECALL = 0.995
WINDOW = 8  # in a band bucket, each member is compared with its next WINDOW members and the first one
EXTRA_ORDERS = 32  # a larger bucket is also grouped by this many single signature columns
GROUP_MAX = 32  # ... and groups of 2..GROUP_MAX members there get the star + window pairs


def bands_for(threshold: float, num_perm: int, target: float = CANDIDATE_RECALL) -> tuple[int, int]:
    """(bands, rows): the most rows per band (fewest spurious candidates) for which a pair with
    Jaccard == threshold is still a candidate with probability >= target."""
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    if num_perm < 2:
        raise ValueError("num_perm must be at least 2")
    best = (num_perm, 1)
    for r in range(1, num_perm + 1):
        b = num_perm // r
        if b < 1:
            break
        p = 1.0 - (1.0 - threshold**r) ** b
        if p >= target:
            best = (b, r)
    return best


def candidate_probability(j: float, bands: int, rows: int) -> float:
    return 1.0 - (1.0 - j**rows) ** bands


def band_hashes(sigs: np.ndarray, band: int, rows: int) -> np.ndarray:
    return band_hashes_of_columns(sigs[:, band * rows : (band + 1) * rows], band)


def band_hashes_of_columns(cols: np.ndarray, band: int) -> np.ndarray:
    """One hash per row of the signature columns of ``band`` (seeded with the band number)."""
    h = np.full(cols.shape[0], np.uint64(band + 1), dtype=np.uint64)
    for c in range(cols.shape[1]):
        h = fmix64(h ^ cols[:, c].astype(np.uint64))
    return h


def extra_columns(band: int, rows: int, num_perm: int, k: int | None = None) -> np.ndarray:
    """The signature columns a large bucket of ``band`` is also grouped by: ``k`` (``EXTRA_ORDERS``)
    columns outside the band, spread evenly over the rest of the signature and shifted per band, so
    the buckets of different bands mostly use different columns."""
    k = EXTRA_ORDERS if k is None else k
    rest = num_perm - rows
    if rest <= 0 or k <= 0:
        return np.zeros(0, dtype=np.int64)
    k = min(k, rest)
    stride = rest // k
    offset = band % stride
    return (band * rows + rows + offset + stride * np.arange(k, dtype=np.int64)) % num_perm


def star_window(key: np.ndarray, members: np.ndarray, max_size: int | None = None) -> list[np.ndarray]:
    """Pairs inside runs of equal ``key`` (``key`` sorted, runs in member order): every member with the
    run's first member and with its next ``WINDOW`` members. Runs of one member, and with ``max_size``
    runs larger than that, give nothing."""
    m = len(key)
    if m < 2:
        return []
    start = np.ones(m, dtype=bool)
    start[1:] = key[1:] != key[:-1]
    run_id = np.cumsum(start) - 1
    sizes = np.bincount(run_id)
    ok = sizes[run_id] > 1
    if max_size is not None:
        ok &= sizes[run_id] <= max_size
    pos = np.flatnonzero(ok)
    if len(pos) == 0:
        return []
    found = []
    firsts = np.flatnonzero(start)[run_id[pos]]
    star = pos != firsts
    found.append(np.stack([members[firsts[star]], members[pos[star]]], axis=1))
    for d in range(1, WINDOW + 1):
        left = pos[pos + d < m]
        left = left[run_id[left] == run_id[left + d]]
        if len(left) == 0:
            break
        found.append(np.stack([members[left], members[left + d]], axis=1))
    return found


def large_bucket_pairs(
    band: np.ndarray, h: np.ndarray, rows: np.ndarray, vals: np.ndarray
) -> list[np.ndarray]:
    """Extra candidates inside large buckets (more than ``WINDOW + 1`` members), where the window alone
    would miss pairs: the members of each bucket are also grouped by each of ``EXTRA_ORDERS`` other
    signature columns (``vals``, one column per order, see :func:`extra_columns`), and every group of
    2..``GROUP_MAX`` members gets the star + window pairs. A near duplicate in a bucket of templated
    rows shares many non-template signature values with its original, so some column puts the two in a
    small group; the template's own value (shared by most of the bucket) is a group too large to
    emit. Shared by the local banding and the Ray reduce, so both find the same candidates."""
    found: list[np.ndarray] = []
    for part in large_bucket_pair_batches(band, h, rows, lambda sel, j: vals[sel, j], vals.shape[1]):
        found.append(part)
    return found


def large_bucket_pair_batches(
    band: np.ndarray, h: np.ndarray, rows: np.ndarray, column: Callable[[np.ndarray, int], np.ndarray], k: int
) -> Iterator[np.ndarray]:
    """:func:`large_bucket_pairs` one signature column at a time (``column(order, j)``: the ``j``-th
    extra column's values of the members in ``order``), so only one column's pairs are in memory."""
    if len(rows) < 2:
        return
    order = np.lexsort((rows, h, band))
    band, h, rows = band[order], h[order], rows[order]
    new_bucket = np.ones(len(rows), dtype=bool)
    new_bucket[1:] = (band[1:] != band[:-1]) | (h[1:] != h[:-1])
    bucket = (np.cumsum(new_bucket) - 1).astype(np.uint64)
    for j in range(k):
        key = (bucket << np.uint64(32)) | column(order, j).astype(np.uint64)
        o = np.argsort(key, kind="stable")  # row order inside a group
        parts = star_window(key[o], rows[o], GROUP_MAX)
        if parts:
            yield np.concatenate(parts)


def bucket_runs(h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For a sorted array of band hashes: run id per position and size per run."""
    start = np.ones(len(h), dtype=bool)
    start[1:] = h[1:] != h[:-1]
    run_id = np.cumsum(start) - 1
    return run_id, np.bincount(run_id)


def candidate_pairs(
    sigs: np.ndarray, bands: int, rows: int, eligible: np.ndarray, is_new: np.ndarray | None = None
) -> np.ndarray:
    """Unique candidate pairs (int64 array k x 2, a < b) among ``eligible`` rows that share a band;
    when ``is_new`` is given, only pairs with at least one new row.

    In a bucket every member pairs with the bucket's first member and its next ``WINDOW`` members (a
    bucket of thousands of copies costs linear, not quadratic, work); large buckets get the extra
    candidates of :func:`large_bucket_pairs`, so recall does not fall with bucket size."""
    idx = np.flatnonzero(eligible)
    n_all, num_perm = sigs.shape
    found: list[np.ndarray] = []
    if len(idx) < 2:
        return np.zeros((0, 2), dtype=np.int64)
    sub = sigs[idx]
    lb_band, lb_h, lb_rows, lb_vals = [], [], [], []
    for band in range(bands):
        h = band_hashes(sub, band, rows)
        order = np.argsort(h, kind="stable")
        hs = h[order]
        members = idx[order]
        found += star_window(hs, members)
        run_id, sizes = bucket_runs(hs)
        big = np.flatnonzero(sizes[run_id] > WINDOW + 1)
        if len(big):
            lb_band.append(np.full(len(big), band, dtype=np.int64))
            lb_h.append(hs[big])
            lb_rows.append(members[big])
            lb_vals.append(sub[order[big]][:, extra_columns(band, rows, num_perm)])
    if lb_rows:
        found += large_bucket_pairs(
            np.concatenate(lb_band), np.concatenate(lb_h), np.concatenate(lb_rows), np.concatenate(lb_vals)
        )
    if not found:
        return np.zeros((0, 2), dtype=np.int64)
    pairs = np.concatenate(found)
    pairs = np.stack([pairs.min(axis=1), pairs.max(axis=1)], axis=1)  # sort(axis=1) is 10x slower
    if is_new is not None:
        pairs = pairs[is_new[pairs[:, 0]] | is_new[pairs[:, 1]]]
    code = sorted_unique(pairs[:, 0] * n_all + pairs[:, 1])
    return np.stack([code // n_all, code % n_all], axis=1)


def band_pair_batches(sigs: np.ndarray, bands: int, rows: int, eligible: np.ndarray) -> Iterator[np.ndarray]:
    """The candidate pairs of :func:`candidate_pairs` (not yet unique, ``a < b`` not guaranteed), one
    band and one large-bucket column at a time: the same pairs, never all in memory at once. Band
    hashes are computed from column slices of ``sigs`` (no copy of the signatures)."""
    idx = np.flatnonzero(eligible)
    num_perm = sigs.shape[1]
    if len(idx) < 2:
        return
    whole = len(idx) == sigs.shape[0]
    for band in range(bands):
        cols = sigs[:, band * rows : (band + 1) * rows]
        h = band_hashes_of_columns(cols if whole else cols[idx], band)
        order = np.argsort(h, kind="stable")
        hs = h[order]
        members = idx[order]
        del h
        parts = star_window(hs, members)
        if parts:
            yield np.concatenate(parts)
        run_id, sizes = bucket_runs(hs)
        big = np.flatnonzero(sizes[run_id] > WINDOW + 1)
        if len(big):
            extra = extra_columns(band, rows, num_perm)
            big_rows = members[big]
            yield from large_bucket_pair_batches(
                np.zeros(len(big), dtype=np.int64),
                hs[big],
                big_rows,
                lambda sel, j, _r=big_rows, _c=extra: sigs[_r[sel], _c[j]],
                len(extra),
            )
