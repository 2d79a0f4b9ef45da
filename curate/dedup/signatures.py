"""MinHash signatures (rensa, from vectorised shingle hashes; datasketch as the fallback backend) and
the shingle arrays they are computed from.

Signatures come from rensa when it is installed (7.8-13x datasketch's bulk API here, see
bench/bench_dedup.py), otherwise from datasketch's ``MinHash`` (the design card's library; also chosen
with ``TAMIS_MINHASH=datasketch``). Both are MinHash over the same shingle hashes, so Jaccard
estimates mean the same; the exact permutations differ, so an incremental index records its backend.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from curate.configs.dedup import DEFAULT_LATIN, DEFAULT_LATIN_NGRAM  # noqa: F401  (re-exported)
from curate.dedup.shingle_store import ShingleStore
from curate.dedup.text import doc_keys, normalise, shingles, tokenize

MINHASH_BACKENDS = ("rensa", "datasketch")


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
    from datasketch import MinHash  # the fallback backend: its import (scipy included) takes ~0.5 s

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


def signatures_for(raw_texts, config, **kwargs) -> tuple[SignatureSet, np.ndarray]:
    """:func:`signatures` of raw texts (a polars Series, normalised chunk by chunk) with the shingle
    and MinHash settings of a :class:`~curate.dedup.engine.DedupConfig`."""
    return signatures(
        raw_texts,
        config.ngram,
        config.num_perm,
        config.seed,
        chunk=config.chunk,
        normalised=False,
        latin=config.latin,
        latin_ngram=config.latin_ngram,
        **kwargs,
    )
