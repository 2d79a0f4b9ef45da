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
from collections.abc import Callable, Iterator
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
VERIFY_BLOCK = 50_000  # candidate pairs verified at a time (their shingle sets are fetched together)


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


def sorted_unique(x: np.ndarray) -> np.ndarray:
    """``np.unique(x)`` by sorting: numpy 2.4's hash-based unique took 5 s where this takes 0.2 s
    (millions of uint64 codes)."""
    x = np.sort(x)
    if len(x) < 2:
        return x
    keep = np.ones(len(x), dtype=bool)
    keep[1:] = x[1:] != x[:-1]
    return x[keep]


def canonical_rows(flat: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's values sorted and distinct (uint32), with new offsets."""
    n = len(offsets) - 1
    row = np.repeat(np.arange(n, dtype=np.uint64), np.diff(offsets))
    code = sorted_unique((row << np.uint64(32)) | flat.astype(np.uint64))
    out = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount((code >> np.uint64(32)).astype(np.int64), minlength=n), out=out[1:])
    return (code & np.uint64(0xFFFFFFFF)).astype(np.uint32), out


def gather_rows(flat: np.ndarray, offsets: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows of a flat array with offsets: (their values concatenated, new offsets)."""
    rows = np.asarray(rows, dtype=np.int64)
    starts = offsets[rows]
    lens = offsets[rows + 1] - starts
    out_off = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(lens, out=out_off[1:])
    idx = np.repeat(starts - out_off[:-1], lens) + np.arange(out_off[-1], dtype=np.int64)
    return flat[idx], out_off


class ShingleStore:
    """The uint32 shingles of every row, appended chunk by chunk while signatures are computed, so
    verification never recomputes them: in memory up to ``max_bytes``, beyond that in a temporary
    file (``spill_dir``, default the system temp dir) read back row by row (``os.pread``)."""

    def __init__(self, max_bytes: int, spill_dir: str | None = None):
        self.max_bytes = max_bytes
        self.spill_dir = spill_dir
        self.parts: list[np.ndarray] = []
        self.offsets: list[np.ndarray] = [np.zeros(1, dtype=np.int64)]
        self.size = 0  # shingles stored
        self.flat: np.ndarray | None = None
        self.file = None

    @property
    def spilled(self) -> bool:
        return self.file is not None

    def mean_size(self, n_rows: int) -> float:
        return self.size / max(1, n_rows)

    def append(self, flat: np.ndarray, offsets: np.ndarray) -> None:
        # stored as each row's sorted distinct shingles: what set operations need, ready to use
        flat, offsets = canonical_rows(flat, offsets)
        self.offsets.append(offsets[1:] + self.size)
        self.size += len(flat)
        if self.file is None and self.size * 4 > self.max_bytes:
            import tempfile

            self.file = tempfile.TemporaryFile(dir=self.spill_dir, prefix="tamis-shingles-")
            for part in self.parts:
                self.file.write(part.tobytes())
            self.parts = []
        if self.file is not None:
            self.file.write(flat.tobytes())
        else:
            self.parts.append(flat)

    def _finish(self) -> None:
        if isinstance(self.offsets, list):
            self.offsets = np.concatenate(self.offsets)
            if self.file is not None:
                self.file.flush()
            else:
                self.flat = np.concatenate(self.parts) if self.parts else np.zeros(0, dtype=np.uint32)
                self.parts = []

    def arrays(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The shingles of ``rows`` (flat uint32, and offsets into it), gathered in one numpy step
        (from a read-only map of the file when spilled; dropped again after the call)."""
        self._finish()
        if self.file is None:
            return gather_rows(self.flat, self.offsets, rows)
        if self.size == 0:
            return np.zeros(0, dtype=np.uint32), np.zeros(len(rows) + 1, dtype=np.int64)
        mapped = np.memmap(self.file, dtype=np.uint32, mode="r", shape=(self.size,))
        flat, offsets = gather_rows(mapped, self.offsets, rows)
        flat = np.array(flat)
        del mapped
        return flat, offsets

    def sets(self, rows: np.ndarray) -> list[frozenset]:
        self._finish()
        out = []
        for r in np.asarray(rows, dtype=np.int64).tolist():
            a, b = int(self.offsets[r]), int(self.offsets[r + 1])
            if self.file is None:
                vals = self.flat[a:b]
            else:
                vals = np.frombuffer(os.pread(self.file.fileno(), 4 * (b - a), 4 * a), dtype=np.uint32)
            out.append(frozenset(vals.tolist()))
        return out

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None


def minhash_stats(
    config,
    bands: int,
    rows_per_band: int,
    short_texts: int,
    candidates: int,
    verified: int,
    clusters: int,
    dropped: int,
    t_sig: float,
    n: int,
    t_start: float,
) -> dict:
    """The MinHash step's stats, one shape for the local and the Ray engine."""
    import time

    return {
        "backend": minhash_backend(),
        "threshold": config.threshold,
        "num_perm": config.num_perm,
        "ngram": config.ngram,
        "latin_units": config.latin,
        "latin_ngram": config.latin_ngram if config.latin == "chars" else None,
        "bands": bands,
        "rows_per_band": rows_per_band,
        "short_texts": int(short_texts),
        "candidate_pairs": int(candidates),
        "verified_pairs": int(verified),
        "clusters": int(clusters),
        "dropped": int(dropped),
        "signature_seconds": round(t_sig, 3),
        "docs_per_second": round(n / t_sig) if t_sig > 0 else None,
        "seconds": round(time.perf_counter() - t_start, 3),
    }


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
    store: ShingleStore | None = None,
) -> tuple[SignatureSet, np.ndarray]:
    """Signatures of ``texts`` (a list of normalised strings, or with ``normalised=False`` a polars
    Series of raw text normalised chunk by chunk, so no full normalised copy is held in memory).
    With ``store``, every chunk's shingles are appended to it (and not kept in the result)."""
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
        s, k = signatures_of_chunk(
            part, ngram, num_perm, seed, keep_shingles or store is not None, latin, latin_ngram
        )
        if store is not None:
            store.append(s.shingles, s.offsets)
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
        parts = _star_window(key[o], rows[o], GROUP_MAX)
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
        parts = _star_window(hs, members)
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


def run(frame, config=None, **kw):
    """The MinHash near-duplicate stage alone: ``run(frame, config) -> StageResult``."""
    from dataclasses import replace

    from curate.dedup.engine import DedupConfig
    from curate.dedup.engine import run as _run

    return _run(frame, replace(config or DedupConfig(), methods=("minhash",)), **kw)
