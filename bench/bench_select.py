"""Diverse selection (DEITA-style greedy): the blocked implementation in curate.select against a naive
one-row-at-a-time loop, in the same process on the same synthetic embeddings. Prints the speed ratio
and checks that both select exactly the same rows.

    python bench/bench_select.py [--n 20000] [--dim 512] [--target 5000] [--threshold 0.9]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from curate.select import diverse_take


def synthetic(n: int, dim: int, seed: int = 0) -> np.ndarray:
    """n unit vectors: a third are near-copies of others (cosine ~0.95), the rest spread out."""
    rng = np.random.default_rng(seed)
    base = rng.standard_normal((n, dim)).astype(np.float32)
    k = n // 3
    src = rng.integers(0, n - k, size=k)
    base[n - k :] = base[src] + 0.23 * rng.standard_normal((k, dim)).astype(np.float32)
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    return base


def naive(emb: np.ndarray, order: np.ndarray, target: int, threshold: float) -> list[int]:
    """One matrix-vector product per candidate against a preallocated matrix of the rows taken."""
    taken: list[int] = []
    mat = np.empty((target, emb.shape[1]), dtype=emb.dtype)
    for i in order:
        if len(taken) >= target:
            break
        if len(taken) and float((mat[: len(taken)] @ emb[i]).max()) >= threshold:
            continue
        mat[len(taken)] = emb[i]
        taken.append(int(i))
    return taken


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20_000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--target", type=int, default=5_000)
    ap.add_argument("--threshold", type=float, default=0.9)
    a = ap.parse_args()
    emb = synthetic(a.n, a.dim)
    order = np.random.default_rng(1).permutation(a.n)
    t = time.perf_counter()
    ref = naive(emb, order, a.target, a.threshold)
    t_naive = time.perf_counter() - t
    t = time.perf_counter()
    got, _ = diverse_take(emb, order, a.target, a.threshold)
    t_fast = time.perf_counter() - t
    assert got == ref, "the blocked selection differs from the naive one"
    print(f"rows {a.n:,} dim {a.dim} target {a.target:,} threshold {a.threshold}: selected {len(got):,}")
    print(f"naive loop {t_naive:.2f}s  blocked {t_fast:.2f}s  ratio {t_naive / t_fast:.1f}x (same rows)")


if __name__ == "__main__":
    main()
