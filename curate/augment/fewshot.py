"""Few-shot variants: each row's conversation preceded by K demonstrations from the same set.

Demonstrations are retrieved by cosine similarity of question embeddings (:mod:`curate.embed`), the most
similar one placed last, next to the question (KATE, Liu et al. 2022). A candidate is never used when it
could leak the row's own answer:

- it is the row itself, or has the same normalised question or answer;
- its question is a near-duplicate of the row's (cosine >= ``near_dup``);
- its answer is a near-duplicate of the row's answer (embedding cosine >= ``near_dup``, or character
  5-gram containment >= ``answer_overlap``: one answer is mostly inside the other);
- it shares the row's dedup/split ``cluster``;
- it is held out (``split`` = eval/test), or is itself a variant.

Held-out rows and variants get no few-shot variant either.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import polars as pl

from curate.augment.common import (
    char_ngrams,
    containment,
    first_occurrence,
    is_eval,
    is_variant,
    norm_key,
    variant_row,
)
from curate.core.coerce import OptionError
from curate.embed import get_embedder

ANSWER_EMBED_CHARS = 400


def _candidates(sims_row: np.ndarray, m: int) -> np.ndarray:
    if m >= len(sims_row):
        return np.argsort(-sims_row, kind="stable")
    part = np.argpartition(-sims_row, m)[:m]
    return part[np.argsort(-sims_row[part], kind="stable")]


class _Retriever:
    """Demonstrations for the usable rows ``idx`` of ``rows``: the most similar candidates that cannot
    leak a row's answer (see the module docstring); ``excluded`` counts every candidate refused, by
    reason."""

    def __init__(self, rows, idx, q_emb, a_emb, k, near_dup, answer_overlap, min_similarity):
        self.rows, self.idx, self.q_emb, self.a_emb, self.k = rows, idx, q_emb, a_emb, k
        self.near_dup, self.answer_overlap, self.min_similarity = near_dup, answer_overlap, min_similarity
        self.q_keys = [norm_key(rows[i]["question"]) for i in idx]
        self.a_keys = [norm_key(rows[i]["answer"]) for i in idx]
        self.clusters = [rows[i].get("cluster") for i in idx]
        # a row identical to a held-out row is that row: never a demonstration
        held_out = {r["id"] for r in rows if is_eval(r)}
        self.demo_ok = [rows[i]["id"] not in held_out for i in idx]
        self.grams: dict[int, set[str]] = {}
        self.excluded = {
            "held-out duplicate": 0,
            "self/same text": 0,
            "near-duplicate question": 0,
            "near-duplicate answer": 0,
            "same cluster": 0,
        }

    def ngrams(self, j: int) -> set[str]:
        if j not in self.grams:
            self.grams[j] = char_ngrams(self.rows[self.idx[j]]["answer"])
        return self.grams[j]

    def refusal(self, i: int, j: int, sim: float) -> str | None:
        """Why candidate ``j`` cannot be a demonstration for row ``i`` (an ``excluded`` key), or None."""
        if not self.demo_ok[j]:
            return "held-out duplicate"
        if j == i or self.q_keys[j] == self.q_keys[i] or self.a_keys[j] == self.a_keys[i]:
            return "self/same text"
        if sim >= self.near_dup:
            return "near-duplicate question"
        if self.clusters[i] is not None and self.clusters[j] == self.clusters[i]:
            return "same cluster"
        if (
            float(self.a_emb[i] @ self.a_emb[j]) >= self.near_dup
            or containment(self.ngrams(i), self.ngrams(j)) >= self.answer_overlap
        ):
            return "near-duplicate answer"
        return None

    def pick(self, i: int, sims_row: np.ndarray) -> list[tuple[int, float]]:
        """Up to k demonstrations for row ``i`` (positions in ``idx``, similarity), most similar first:
        the nearest candidates, widened fourfold until k are found or every candidate was seen."""
        n = len(self.idx)
        chosen: list[tuple[int, float]] = []
        m = min(n, 4 * self.k + 16)
        seen = 0
        while len(chosen) < self.k and seen < n:
            for j in _candidates(sims_row, m)[seen:]:
                j = int(j)
                sim = float(sims_row[j])
                if self.min_similarity is not None and sim < self.min_similarity:
                    return chosen
                why = self.refusal(i, j, sim)
                if why is not None:
                    self.excluded[why] += 1
                    continue
                chosen.append((j, sim))
                if len(chosen) == self.k:
                    return chosen
            seen = max(seen, min(m, n))
            m *= 4
        return chosen

    def variant(self, row: dict[str, Any], chosen: list[tuple[int, float]]) -> dict[str, Any]:
        """The few-shot variant of ``row``: its conversation preceded by the demonstrations."""
        demos = list(reversed(chosen))  # most similar last, next to the question
        history = []
        for j, _ in demos:
            d = self.rows[self.idx[j]]
            history.append({"role": "user", "content": d["question"], "extra": None})
            history.append({"role": "assistant", "content": d["answer"], "extra": None})
        history += list(row.get("history") or [])
        meta = {
            "fewshot_ids": [self.rows[self.idx[j]]["id"] for j, _ in demos],
            "fewshot_similarity": [round(sim, 4) for _, sim in demos],
        }
        return variant_row(row, "fewshot", meta, history=history)


def _usable(rows: list[dict[str, Any]]) -> np.ndarray:
    """Rows that get a variant and may be demonstrations: SFT rows with a question and an answer, not
    held out, not variants, first of their id."""
    first = first_occurrence(rows)
    return np.array(
        [
            r["kind"] == "sft"
            and bool((r.get("question") or "").strip())
            and bool((r.get("answer") or "").strip())
            and not is_eval(r)
            and not is_variant(r)
            and first[n]
            for n, r in enumerate(rows)
        ],
        dtype=bool,
    )


def fewshot_variants(
    frame: pl.DataFrame,
    k: int,
    *,
    embedder=None,
    embed_model: str = "use",
    near_dup: float = 0.9,
    answer_overlap: float = 0.5,
    min_similarity: float | None = None,
    progress: Callable[[str, int], Callable[[int], None]] | None = None,
) -> tuple[list[dict[str, Any]], list[tuple[dict[str, Any], str, dict]], dict[str, Any]]:
    """-> (variants, skipped rows as (row, reason, detail), stats). ``skipped`` are origins that got no
    variant (not enough safe demonstrations); they are reported, the origins themselves stay kept."""
    if k < 1:
        raise OptionError("fewshot", f"must be at least 1, got {k}")
    rows = frame.to_dicts()
    stats: dict[str, Any] = {"k": k, "near_dup": near_dup, "answer_overlap": answer_overlap}
    idx = np.flatnonzero(_usable(rows))
    if len(idx) < 2:
        stats["variants"] = 0
        return [], [], stats
    if embedder is None:
        embedder = get_embedder(embed_model)
    stats["embedder"] = getattr(embedder, "name", str(embed_model))
    tick = progress("few-shot: embed", 2 * len(idx)) if progress else None
    q_emb = embedder.encode([rows[i]["question"] for i in idx], progress=tick)
    # the start of an answer is enough to spot a near-duplicate (and far cheaper to embed); the whole
    # answer is compared by character 5-gram containment (_Retriever.refusal)
    a_emb = embedder.encode([rows[i]["answer"][:ANSWER_EMBED_CHARS] for i in idx], progress=tick)
    retriever = _Retriever(rows, idx, q_emb, a_emb, k, near_dup, answer_overlap, min_similarity)

    variants: list[dict[str, Any]] = []
    skipped: list[tuple[dict[str, Any], str, dict]] = []
    block = 512
    tick = progress("few-shot: retrieve", len(idx)) if progress else None
    for s in range(0, len(idx), block):
        sims = q_emb[s : s + block] @ q_emb.T
        for bi in range(sims.shape[0]):
            row = rows[idx[s + bi]]
            chosen = retriever.pick(s + bi, sims[bi])
            if tick:
                tick(1)
            if len(chosen) < k:
                skipped.append(
                    (row, "fewshot: not enough safe demonstrations", {"found": len(chosen), "k": k})
                )
            else:
                variants.append(retriever.variant(row, chosen))
    stats["variants"] = len(variants)
    stats["no_variant"] = len(skipped)
    stats["candidates_excluded"] = retriever.excluded
    return variants, skipped, stats
