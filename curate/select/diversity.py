"""Step 3: diverse selection (DEITA, Liu et al. 2024): candidates ranked by quality, each taken only
when its embedding is far enough from every row already taken, with near-duplicates told apart from
rows that only share a template, per-stratum shares, until the target."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import polars as pl

from curate.augment.common import char_ngrams, jaccard
from curate.select.conditions import column_values
from curate.select.config import QUALITY_COLUMNS, SelectConfig

TOO_SIMILAR = "select: too similar to a selected row"  # a near-duplicate of a row already taken
SAME_TEMPLATE = "select: same template as a selected row"  # close embeddings, different text
# character 5-gram Jaccard at or above which a "too similar" row is a near-duplicate rather than a row
# sharing a template (measured in bench/bench_select_templates.py)
NEAR_DUP_OVERLAP = 0.5


def _quality_order(
    frame: pl.DataFrame, by: str | None, skip: set[str] = frozenset()
) -> tuple[np.ndarray, str | None]:
    """Row order by ``by`` (or the first quality column present that is not in ``skip``), best first."""
    n = frame.height
    if by is None:
        by = next((c for c in QUALITY_COLUMNS if c in frame.columns and c not in skip), None)
        if by is None:
            return np.arange(n), None
    asc = by.startswith("-")
    col = by.lstrip("-+")
    vals = column_values(frame, col)
    arr = np.array(
        [float(v) if isinstance(v, int | float) and v is not None else np.nan for v in vals], dtype=np.float64
    )
    key = np.where(np.isnan(arr), np.inf, arr if asc else -arr)  # missing scores last
    return np.argsort(key, kind="stable"), by


def _quotas(strata: list[Any], target: int) -> dict[Any, int]:
    """Largest-remainder shares of ``target`` proportional to stratum sizes."""
    sizes: dict[Any, int] = {}
    for s in strata:
        sizes[s] = sizes.get(s, 0) + 1
    total = sum(sizes.values())
    exact = {s: target * c / total for s, c in sizes.items()}
    q = {s: min(sizes[s], int(math.floor(v))) for s, v in exact.items()}
    left = target - sum(q.values())
    for s in sorted(exact, key=lambda s: exact[s] - math.floor(exact[s]), reverse=True):
        if left <= 0:
            break
        if q[s] < sizes[s]:
            q[s] += 1
            left -= 1
    return q


def diverse_take(
    emb: np.ndarray | None,
    order: np.ndarray,
    target: int | None,
    threshold: float | None,
    strata: list[Any] | None = None,
    block: int = 256,
    classify: Callable[[int, int, float], tuple[str, dict] | None] | None = None,
) -> tuple[list[int], dict[int, tuple[str, dict]]]:
    """Greedy DEITA-style pass -> (taken indices in order, {index: (reason, detail)} for the rest).

    ``classify(row, nearest taken row, cosine)`` decides a row whose cosine reaches ``threshold``:
    ``(reason, extra detail)`` drops it, None keeps it (default: every such row is too similar)."""
    n = len(order)
    target = target or n
    quotas = _quotas([strata[i] for i in order], target) if strata is not None else None
    taken: list[int] = []
    taken_emb: list[np.ndarray] = []
    reasons: dict[int, tuple[str, dict]] = {}
    counts: dict[Any, int] = {}
    passes = [True, False] if quotas is not None else [False]
    remaining = list(order)
    for use_quota in passes:
        later: list[int] = []
        for s in range(0, len(remaining), block):
            chunk = remaining[s : s + block]
            if len(taken) >= target:
                later.extend(chunk)
                continue
            if threshold is not None and emb is not None:
                e = emb[chunk]
                prev = np.vstack(taken_emb) if taken_emb else np.zeros((0, emb.shape[1]), dtype=emb.dtype)
                sim_prev = e @ prev.T if len(prev) else np.zeros((len(chunk), 0), dtype=emb.dtype)
                sim_in = e @ e.T
            accepted_local: list[int] = []
            for li, i in enumerate(chunk):
                if len(taken) >= target:
                    later.append(i)
                    continue
                if use_quota and counts.get(strata[i], 0) >= quotas.get(strata[i], 0):
                    later.append(i)
                    reasons[i] = ("select: stratum share full", {"stratum": strata[i]})
                    continue
                if threshold is not None and emb is not None:
                    best, best_j = -2.0, None
                    if sim_prev.shape[1]:
                        j = int(np.argmax(sim_prev[li]))
                        best, best_j = float(sim_prev[li, j]), taken[j]
                    for lj in accepted_local:
                        if sim_in[li, lj] > best:
                            best, best_j = float(sim_in[li, lj]), chunk[lj]
                    if best >= threshold:
                        verdict = (TOO_SIMILAR, {}) if classify is None else classify(i, int(best_j), best)
                        if verdict is not None:
                            reasons[i] = (
                                verdict[0],
                                {"nearest": int(best_j), "cosine": round(best, 4), "threshold": threshold}
                                | verdict[1],
                            )
                            continue
                accepted_local.append(li)
                taken.append(i)
                reasons.pop(i, None)
                if strata is not None:
                    counts[strata[i]] = counts.get(strata[i], 0) + 1
            if threshold is not None and emb is not None and accepted_local:
                taken_emb.append(e[accepted_local])
        remaining = later
    for i in remaining:
        if i not in reasons or len(taken) >= target:
            reasons[i] = ("select: target reached", {"target": target})
    return taken, reasons


def row_texts(frame: pl.DataFrame) -> list[str]:
    """What the diversity pass compares: the question and the answer (or chosen / text)."""
    return [
        "\n".join(x for x in (q or "", a or c or t or "") if x)
        for q, a, c, t in zip(
            frame["question"].to_list(),
            frame["answer"].to_list(),
            frame["chosen"].to_list(),
            frame["text"].to_list(),
            strict=True,
        )
    ]


def embed_rows(frame: pl.DataFrame, embedder, progress=None) -> np.ndarray:
    texts = row_texts(frame)
    return embedder.encode(texts, progress=progress("select: embed rows", len(texts)) if progress else None)


def template_classifier(train: pl.DataFrame, template_threshold: float | None):
    """Tell near-duplicates from rows that only share a template, for :func:`diverse_take`.

    The embedding cosine cannot: answers written from one template ('首先…其次…', the same law
    citations and closing) embed close together while saying different things. So a row whose cosine
    to a taken row reaches ``--diversity`` is checked on its text: character 5-gram Jaccard with that
    row. At or above :data:`NEAR_DUP_OVERLAP` it is a near-duplicate (dropped, "too similar to a
    selected row"); below, it only shares a template, and it is dropped ("same template as a selected
    row") only when its cosine also reaches ``template_threshold`` (None: template rows are kept).
    Measured in ``bench/bench_select_templates.py``: planted near-copies overlap 0.82+, while on
    lawyer-llama's GPT-4 consultations every neighbour pair at cosine >= 0.9 overlaps under 0.5
    (median 0.04). Returns ``(classify, counts)``; counts fill ``stats["diversity_drops"]``."""
    texts = row_texts(train)
    grams: dict[int, set[str]] = {}
    counts = {"near_duplicate": 0, "template": 0, "template_kept": 0}

    def of(i: int) -> set[str]:
        if i not in grams:
            grams[i] = char_ngrams(texts[i])
        return grams[i]

    def classify(i: int, nearest: int, cosine: float) -> tuple[str, dict] | None:
        overlap = round(jaccard(of(i), of(nearest)), 4)
        if overlap >= NEAR_DUP_OVERLAP:
            counts["near_duplicate"] += 1
            return TOO_SIMILAR, {"text_overlap": overlap}
        if template_threshold is not None and cosine >= template_threshold:
            counts["template"] += 1
            return SAME_TEMPLATE, {"text_overlap": overlap, "template_threshold": template_threshold}
        counts["template_kept"] += 1
        return None

    return classify, counts


def select_diverse(
    train: pl.DataFrame,
    config: SelectConfig,
    skip: set[str],
    embedder,
    progress,
    stats: dict[str, Any],
) -> tuple[list[int], dict[int, tuple[str, dict]]]:
    """Rank the train candidates (``by``, or the first quality column not in ``skip``), embed them when
    a diversity threshold is set, and take rows with :func:`diverse_take`. -> (taken local indices,
    {local index: (reason, detail)} for the rest); fills the ranking and diversity stats."""
    order, by = _quality_order(train, config.by, skip)
    stats["by"] = by
    emb = embed_rows(train, embedder, progress) if config.diversity is not None and train.height else None
    if emb is not None:
        stats["embed_cache_hits"] = int(getattr(embedder, "last_cache_hits", 0))
    strata = (
        [str(v) for v in column_values(train, config.stratify)] if config.stratify and train.height else None
    )
    classify, counts = (
        template_classifier(train, config.template_diversity) if emb is not None else (None, None)
    )
    taken, why = diverse_take(emb, order, config.target, config.diversity, strata, classify=classify)
    stats["diversity"] = config.diversity
    if counts is not None:
        stats["template_diversity"] = config.template_diversity
        stats["diversity_drops"] = counts
    stats["selected"] = len(taken)
    if strata is not None:
        per: dict[str, int] = {}
        for i in taken:
            per[strata[i]] = per.get(strata[i], 0) + 1
        stats["per_stratum"] = dict(sorted(per.items()))
    return taken, why
