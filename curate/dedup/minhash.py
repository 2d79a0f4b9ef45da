"""MinHash signatures (rensa, from vectorised shingle hashes), LSH banding, candidate verification.

Signatures come from rensa when it is installed (7.8-13x datasketch's bulk API here, see
bench/bench_dedup.py), otherwise from datasketch's ``MinHash`` (the design card's library; also chosen
with ``TAMIS_MINHASH=datasketch``). Both are MinHash over the same shingle hashes, so Jaccard
estimates mean the same; the exact permutations differ, so an incremental index records its backend.

Bands and rows are derived from the Jaccard threshold so that a pair at the threshold becomes a
candidate with probability >= 0.995 (few misses), and every candidate is then verified with the exact
Jaccard of the two shingle sets, so false positives of the banding never reach the output. Banding is
done here in numpy (sort by band hash), so any ``bands x rows <= num_perm`` works, unlike rensa's own
LSH which needs ``num_perm % bands == 0``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from curate.dedup.text import fmix64, shingles, tokenize

DEFAULT_LATIN = "chars"  # Latin-script shingle units (see curate.dedup.text.tokenize; bench_dedup_shingles)
DEFAULT_LATIN_NGRAM = 7  # characters per shingle starting in Latin-script text (bench_dedup_shingles)

MINHASH_BACKENDS = ("rensa", "datasketch")
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


@dataclass
class SignatureSet:
    """Signatures (uint32, n x num_perm) of a set of rows, and optionally their uint32 shingle sets
    (flat + offsets; ``None`` when they are recomputed on demand for the few rows that need them)."""

    sigs: np.ndarray
    shingles: np.ndarray
    offsets: np.ndarray
    short: np.ndarray
    empty: np.ndarray

    @property
    def n(self) -> int:
        return self.sigs.shape[0]

    def take(self, rows: np.ndarray) -> SignatureSet:
        if self.shingles is None:
            return SignatureSet(self.sigs[rows], None, None, self.short[rows], self.empty[rows])
        starts, ends = self.offsets[rows], self.offsets[rows + 1]
        lens = ends - starts
        offsets = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lens, out=offsets[1:])
        if len(rows):
            idx = np.repeat(starts - offsets[:-1], lens) + np.arange(offsets[-1], dtype=np.int64)
            sh = self.shingles[idx]
        else:
            sh = self.shingles[:0]
        return SignatureSet(self.sigs[rows], sh, offsets, self.short[rows], self.empty[rows])

    def shingle_set(self, i: int) -> frozenset:
        return frozenset(self.shingles[self.offsets[i] : self.offsets[i + 1]].tolist())

    @staticmethod
    def concat(parts: list[SignatureSet], num_perm: int) -> SignatureSet:
        parts = [p for p in parts if p is not None]
        if not parts:
            return SignatureSet(
                np.zeros((0, num_perm), dtype=np.uint32),
                np.zeros(0, dtype=np.uint32),
                np.zeros(1, dtype=np.int64),
                np.zeros(0, dtype=bool),
                np.zeros(0, dtype=bool),
            )
        sigs = np.concatenate([p.sigs for p in parts])
        short = np.concatenate([p.short for p in parts])
        empty = np.concatenate([p.empty for p in parts])
        if any(p.shingles is None for p in parts):
            return SignatureSet(sigs, None, None, short, empty)
        offsets = [np.zeros(1, dtype=np.int64)]
        base = 0
        for p in parts:
            offsets.append(p.offsets[1:] + base)
            base += int(p.offsets[-1])
        return SignatureSet(
            sigs, np.concatenate([p.shingles for p in parts]), np.concatenate(offsets), short, empty
        )


def minhash_backend() -> str:
    """``rensa`` when importable, else ``datasketch``; ``TAMIS_MINHASH`` picks one explicitly."""
    want = os.environ.get("TAMIS_MINHASH", "").strip().lower()
    if want:
        if want not in MINHASH_BACKENDS:
            raise ValueError(f"TAMIS_MINHASH={want!r}: choose {' or '.join(MINHASH_BACKENDS)}")
        return want
    try:
        import rensa  # noqa: F401
    except ImportError:
        return "datasketch"
    return "rensa"


def _identity(value):
    return int(value)


def datasketch_signatures(hashes: np.ndarray, offsets: np.ndarray, num_perm: int, seed: int) -> np.ndarray:
    """datasketch ``MinHash`` signatures of flat shingle hashes (already hashes, so datasketch's hash
    function is the identity); one row per document, uint32 like rensa's."""
    from datasketch import MinHash

    proto = MinHash(num_perm=num_perm, seed=seed, hashfunc=_identity)
    n = len(offsets) - 1
    out = np.empty((n, num_perm), dtype=np.uint32)
    # datasketch's default scheme takes 32-bit hash values: the low 32 bits of the 64-bit shingle
    # hashes (what the exact-Jaccard verification compares too)
    values = (hashes.astype(np.uint64) & np.uint64(0xFFFFFFFF)).tolist()
    for i in range(n):
        m = MinHash(
            num_perm=num_perm,
            seed=seed,
            hashfunc=_identity,
            permutations=proto.permutations,
            scheme=proto.scheme,
        )
        m.update_batch(values[offsets[i] : offsets[i + 1]])
        out[i] = m.hashvalues
    return out


def signatures_of_chunk(
    norm_texts: list[str],
    ngram: int,
    num_perm: int,
    seed: int,
    keep_shingles: bool = True,
    latin: str = DEFAULT_LATIN,
    latin_ngram: int = DEFAULT_LATIN_NGRAM,
) -> tuple[SignatureSet, np.ndarray]:
    """Signatures of normalised texts, plus their exact-match keys (uint64; 0 = empty)."""
    from curate.dedup.text import doc_keys

    tok = tokenize(norm_texts, latin)
    keys = doc_keys(tok)
    sh = shingles(tok, ngram, latin_ngram)
    n = len(norm_texts)
    empty = np.diff(sh.offsets) == 0
    if n and minhash_backend() == "datasketch":
        sigs = datasketch_signatures(sh.hashes, sh.offsets, num_perm, seed)
    elif n:
        from rensa import RMinHash

        dm = RMinHash.digest_matrix_from_flat_token_hashes(
            sh.hashes, sh.offsets.astype(np.uint64), num_perm, seed
        )
        sigs = np.array(dm.to_rows(), dtype=np.uint32).reshape(n, num_perm)
    else:
        sigs = np.zeros((0, num_perm), dtype=np.uint32)
    if not keep_shingles:
        return SignatureSet(sigs, None, None, sh.short, empty), keys
    return SignatureSet(sigs, sh.hashes.astype(np.uint32), sh.offsets, sh.short, empty), keys


def shingle_arrays(
    raw_texts,
    ngram: int,
    chunk: int = 5_000,
    latin: str = DEFAULT_LATIN,
    latin_ngram: int = DEFAULT_LATIN_NGRAM,
) -> tuple[np.ndarray, np.ndarray]:
    """Flat uint32 shingles and offsets of raw texts (a polars Series), computed chunk by chunk."""
    from curate.dedup.text import normalise

    parts, offs, base = [], [np.zeros(1, dtype=np.int64)], 0
    for start in range(0, len(raw_texts), chunk):
        sh = shingles(
            tokenize(normalise(raw_texts[start : start + chunk]).to_list(), latin), ngram, latin_ngram
        )
        parts.append(sh.hashes.astype(np.uint32))
        offs.append(sh.offsets[1:] + base)
        base += int(sh.offsets[-1])
    flat = np.concatenate(parts) if parts else np.zeros(0, dtype=np.uint32)
    return flat, np.concatenate(offs)


def shingle_sets_of(
    norm_texts: list[str], ngram: int, latin: str = DEFAULT_LATIN, latin_ngram: int = DEFAULT_LATIN_NGRAM
) -> list[frozenset]:
    """The uint32 shingle sets of normalised texts (what verification compares)."""
    sh = shingles(tokenize(norm_texts, latin), ngram, latin_ngram)
    h = sh.hashes.astype(np.uint32)
    return [frozenset(h[sh.offsets[i] : sh.offsets[i + 1]].tolist()) for i in range(len(norm_texts))]


def signatures(
    texts,
    ngram: int,
    num_perm: int,
    seed: int,
    chunk: int = 5_000,
    progress: Callable[[int], None] | None = None,
    keep_shingles: bool = True,
    normalised: bool = True,
    latin: str = DEFAULT_LATIN,
    latin_ngram: int = DEFAULT_LATIN_NGRAM,
) -> tuple[SignatureSet, np.ndarray]:
    """Signatures of ``texts`` (a list of normalised strings, or with ``normalised=False`` a polars
    Series of raw text normalised chunk by chunk, so no full normalised copy is held in memory)."""
    from curate.dedup.text import normalise

    n = len(texts)
    sigs = np.empty((n, num_perm), dtype=np.uint32)
    keys = np.empty(n, dtype=np.uint64)
    short = np.empty(n, dtype=bool)
    empty = np.empty(n, dtype=bool)
    sh_parts, off_parts = [], [np.zeros(1, dtype=np.int64)]
    base = 0
    for start in range(0, n, chunk):
        part = texts[start : start + chunk]
        if not normalised:
            part = normalise(part).to_list()
        s, k = signatures_of_chunk(part, ngram, num_perm, seed, keep_shingles, latin, latin_ngram)
        end = start + len(part)
        sigs[start:end], keys[start:end], short[start:end], empty[start:end] = s.sigs, k, s.short, s.empty
        if keep_shingles:
            sh_parts.append(s.shingles)
            off_parts.append(s.offsets[1:] + base)
            base += int(s.offsets[-1])
        if progress:
            progress(len(part))
    if keep_shingles:
        shingles_all = np.concatenate(sh_parts) if sh_parts else np.zeros(0, dtype=np.uint32)
        return SignatureSet(sigs, shingles_all, np.concatenate(off_parts), short, empty), keys
    return SignatureSet(sigs, None, None, short, empty), keys


def band_hashes(sigs: np.ndarray, band: int, rows: int) -> np.ndarray:
    cols = sigs[:, band * rows : (band + 1) * rows].astype(np.uint64)
    h = np.full(sigs.shape[0], np.uint64(band + 1), dtype=np.uint64)
    for c in range(cols.shape[1]):
        h = fmix64(h ^ cols[:, c])
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


def _star_window(key: np.ndarray, members: np.ndarray, max_size: int | None = None) -> list[np.ndarray]:
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
    if len(rows) < 2:
        return []
    order = np.lexsort((rows, h, band))
    band, h, rows, vals = band[order], h[order], rows[order], vals[order]
    new_bucket = np.ones(len(rows), dtype=bool)
    new_bucket[1:] = (band[1:] != band[:-1]) | (h[1:] != h[:-1])
    bucket = (np.cumsum(new_bucket) - 1).astype(np.uint64)
    found: list[np.ndarray] = []
    for j in range(vals.shape[1]):
        key = (bucket << np.uint64(32)) | vals[:, j].astype(np.uint64)
        o = np.argsort(key, kind="stable")  # row order inside a group
        found += _star_window(key[o], rows[o], GROUP_MAX)
    return found


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
        found += _star_window(hs, members)
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
    pairs.sort(axis=1)
    if is_new is not None:
        pairs = pairs[is_new[pairs[:, 0]] | is_new[pairs[:, 1]]]
    code = np.unique(pairs[:, 0] * n_all + pairs[:, 1])
    return np.stack([code // n_all, code % n_all], axis=1)


def estimated_jaccard(sigs: np.ndarray, pairs: np.ndarray, block: int = 200_000) -> np.ndarray:
    out = np.empty(len(pairs), dtype=np.float32)
    for s in range(0, len(pairs), block):
        p = pairs[s : s + block]
        out[s : s + block] = (sigs[p[:, 0]] == sigs[p[:, 1]]).mean(axis=1)
    return out


class ShingleSets:
    """Exact Jaccard between rows, with a cache of Python sets. Rows come from a SignatureSet with
    stored shingles, or from ``fetch(rows) -> list[frozenset]`` (computed in one batch on demand)."""

    def __init__(self, ss: SignatureSet | None = None, fetch: Callable[[np.ndarray], list] | None = None):
        self.ss = ss
        self.fetch = fetch
        self.cache: dict[int, frozenset] = {}

    def prefetch(self, rows: np.ndarray) -> None:
        rows = np.unique(np.asarray(rows, dtype=np.int64))
        rows = np.array([r for r in rows.tolist() if r not in self.cache], dtype=np.int64)
        if len(rows) == 0:
            return
        if self.fetch is not None:
            for r, st in zip(rows.tolist(), self.fetch(rows), strict=True):
                self.cache[r] = st
        else:
            for r in rows.tolist():
                self.cache[r] = self.ss.shingle_set(r)

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


def verify(
    ss: SignatureSet, pairs: np.ndarray, threshold: float, exact: bool = True, sets: ShingleSets | None = None
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
    sets.prefetch(pairs.ravel())
    jac = np.fromiter((sets.jaccard(int(a), int(b)) for a, b in pairs), dtype=np.float32, count=len(pairs))
    ok = jac >= threshold - 1e-9
    return pairs[ok], jac[ok]


def run(frame, config=None, **kw):
    """The MinHash near-duplicate stage alone: ``run(frame, config) -> StageResult``."""
    from dataclasses import replace

    from curate.dedup.engine import DedupConfig
    from curate.dedup.engine import run as _run

    return _run(frame, replace(config or DedupConfig(), methods=("minhash",)), **kw)
