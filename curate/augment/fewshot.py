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

from curate.augment.common import char_ngrams, containment, is_eval, is_variant, norm_key, variant_row

ANSWER_EMBED_CHARS = 400


def _first_occurrence(rows: list[dict[str, Any]]) -> list[bool]:
    """An exact duplicate (same id) is augmented once: its variants would be identical."""
    seen: set[str] = set()
    out = []
    for r in rows:
        out.append(r["id"] not in seen)
        seen.add(r["id"])
    return out


def _candidates(sims_row: np.ndarray, m: int) -> np.ndarray:
    if m >= len(sims_row):
        return np.argsort(-sims_row, kind="stable")
    part = np.argpartition(-sims_row, m)[:m]
    return part[np.argsort(-sims_row[part], kind="stable")]


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
        raise ValueError("--fewshot K must be at least 1")
    rows = frame.to_dicts()
    first = _first_occurrence(rows)
    usable = np.array(
        [
            r["kind"] == "sft"
            and bool((r.get("question") or "").strip())
            and bool((r.get("answer") or "").strip())
            and not is_eval(r)
            and not is_variant(r)
            and first[k]
            for k, r in enumerate(rows)
        ],
        dtype=bool,
    )
    stats: dict[str, Any] = {"k": k, "near_dup": near_dup, "answer_overlap": answer_overlap}
    idx = np.flatnonzero(usable)
    if len(idx) < 2:
        stats["variants"] = 0
        return [], [], stats
    if embedder is None:
        from curate.embed import get_embedder

        embedder = get_embedder(embed_model)
    stats["embedder"] = getattr(embedder, "name", str(embed_model))
    tick = progress("few-shot: embed", 2 * len(idx)) if progress else None
    q_emb = embedder.encode([rows[i]["question"] for i in idx], progress=tick)
    # the start of an answer is enough to spot a near-duplicate (and far cheaper to embed); the whole
    # answer is compared by character 5-gram containment below
    a_emb = embedder.encode([rows[i]["answer"][:ANSWER_EMBED_CHARS] for i in idx], progress=tick)
    q_keys = [norm_key(rows[i]["question"]) for i in idx]
    a_keys = [norm_key(rows[i]["answer"]) for i in idx]
    clusters = [rows[i].get("cluster") for i in idx]
    # a row identical to a held-out row is that row: never a demonstration
    held_out = {r["id"] for r in rows if is_eval(r)}
    demo_ok = [rows[i]["id"] not in held_out for i in idx]
    grams: dict[int, set[str]] = {}

    def ngrams(j: int) -> set[str]:
        if j not in grams:
            grams[j] = char_ngrams(rows[idx[j]]["answer"])
        return grams[j]

    variants: list[dict[str, Any]] = []
    skipped: list[tuple[dict[str, Any], str, dict]] = []
    excluded = {
        "held-out duplicate": 0,
        "self/same text": 0,
        "near-duplicate question": 0,
        "near-duplicate answer": 0,
        "same cluster": 0,
    }
    m0 = min(len(idx), 4 * k + 16)
    block = 512
    tick = progress("few-shot: retrieve", len(idx)) if progress else None
    for s in range(0, len(idx), block):
        sims = q_emb[s : s + block] @ q_emb.T
        for bi in range(sims.shape[0]):
            i = s + bi
            row = rows[idx[i]]
            chosen: list[tuple[int, float]] = []
            m = m0
            seen = 0
            while len(chosen) < k and seen < len(idx):
                order = _candidates(sims[bi], m)
                for j in order[seen:]:
                    j = int(j)
                    sim = float(sims[bi, j])
                    if min_similarity is not None and sim < min_similarity:
                        seen = len(idx)
                        break
                    if not demo_ok[j]:
                        excluded["held-out duplicate"] += 1
                        continue
                    if j == i or q_keys[j] == q_keys[i] or a_keys[j] == a_keys[i]:
                        excluded["self/same text"] += 1
                        continue
                    if sim >= near_dup:
                        excluded["near-duplicate question"] += 1
                        continue
                    if clusters[i] is not None and clusters[j] == clusters[i]:
                        excluded["same cluster"] += 1
                        continue
                    if (
                        float(a_emb[i] @ a_emb[j]) >= near_dup
                        or containment(ngrams(i), ngrams(j)) >= answer_overlap
                    ):
                        excluded["near-duplicate answer"] += 1
                        continue
                    chosen.append((j, sim))
                    if len(chosen) == k:
                        break
                seen = max(seen, min(m, len(idx)))
                m *= 4
            if tick:
                tick(1)
            if len(chosen) < k:
                skipped.append(
                    (row, "fewshot: not enough safe demonstrations", {"found": len(chosen), "k": k})
                )
                continue
            demos = list(reversed(chosen))  # most similar last, next to the question
            history = []
            for j, _ in demos:
                d = rows[idx[j]]
                history.append({"role": "user", "content": d["question"], "extra": None})
                history.append({"role": "assistant", "content": d["answer"], "extra": None})
            history += list(row.get("history") or [])
            variants.append(
                variant_row(
                    row,
                    "fewshot",
                    {
                        "fewshot_ids": [rows[idx[j]]["id"] for j, _ in demos],
                        "fewshot_similarity": [round(sim, 4) for _, sim in demos],
                    },
                    history=history,
                )
            )
    stats["variants"] = len(variants)
    stats["no_variant"] = len(skipped)
    stats["candidates_excluded"] = excluded
    return variants, skipped, stats
