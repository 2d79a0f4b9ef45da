"""Clusters from match pairs (union-find via connected components) and the survivor policy."""

from __future__ import annotations

import numpy as np
import polars as pl

from curate.core.coerce import OptionError

KEEP_HELP = "first (input order), longest (longest compared text), best:<column> (highest value wins)"


def parse_keep(keep: str) -> tuple[str, str | None]:
    if keep in ("first", "longest"):
        return keep, None
    if keep.startswith("best:") and keep[5:].strip():
        return "best", keep[5:].strip()
    raise OptionError("keep", f"{keep!r}: expected {KEEP_HELP}")


def policy_key(frame: pl.DataFrame, keep: str, lengths: np.ndarray) -> np.ndarray:
    """Lower is better: the survivor of a cluster is the member with the lowest key (ties: first row)."""
    mode, col = parse_keep(keep)
    n = frame.height
    if mode == "first":
        return np.zeros(n, dtype=np.float64)
    if mode == "longest":
        return -lengths.astype(np.float64)
    if col not in frame.columns:
        raise OptionError(
            "keep", f"best:{col}: no column {col!r} in the input (columns: {', '.join(frame.columns)})"
        )
    try:
        values = frame[col].cast(pl.Float64, strict=False)
    except Exception as exc:  # noqa: BLE001 - polars raises several types for odd dtypes
        raise OptionError("keep", f"best:{col}: column {col!r} is not numeric ({frame[col].dtype})") from exc
    arr = values.fill_nan(None).to_numpy().astype(np.float64)
    arr = np.where(np.isnan(arr), np.inf, -arr)  # missing scores lose
    return arr


def components(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Connected components of the graph with edges (a[i], b[i]); -1 for nodes without edges."""
    labels = np.full(n, -1, dtype=np.int64)
    if len(a) == 0:
        return labels
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    g = coo_matrix((np.ones(len(a), dtype=np.int8), (a, b)), shape=(n, n))
    _, comp = connected_components(g, directed=False)
    touched = np.zeros(n, dtype=bool)
    touched[a] = True
    touched[b] = True
    labels[touched] = comp[touched]
    return labels


def group_labels(keys: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Label rows that share a key with at least one other valid row (-1 otherwise)."""
    n = len(keys)
    labels = np.full(n, -1, dtype=np.int64)
    idx = np.flatnonzero(valid)
    if len(idx) < 2:
        return labels
    k = keys[idx]
    order = np.argsort(k, kind="stable")
    ks = k[order]
    new_group = np.ones(len(ks), dtype=bool)
    new_group[1:] = ks[1:] != ks[:-1]
    gid = np.cumsum(new_group) - 1
    sizes = np.bincount(gid)
    multi = sizes[gid] > 1
    labels[idx[order][multi]] = gid[multi]
    return labels


def survivors(labels: np.ndarray, rank: np.ndarray, tier: np.ndarray | None = None) -> np.ndarray:
    """For every row, the index of its cluster's survivor: the lowest ``tier`` (when given), then the
    lowest ``rank`` (ties: lowest index); rows outside clusters survive themselves. Ranks are compared
    as they are (no clipping), so any float policy key orders correctly."""
    n = len(labels)
    surv = np.arange(n, dtype=np.int64)
    idx = np.flatnonzero(labels >= 0)
    if len(idx) == 0:
        return surv
    keys = (idx, rank[idx]) + ((tier[idx],) if tier is not None else ()) + (labels[idx],)
    order = np.lexsort(keys)
    ordered = idx[order]
    lab = labels[ordered]
    first = np.ones(len(ordered), dtype=bool)
    first[1:] = lab[1:] != lab[:-1]
    head = ordered[first]
    group = np.cumsum(first) - 1
    surv[ordered] = head[group]
    return surv
