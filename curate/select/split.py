"""Step 2: the held-out eval split. Rows are grouped into clusters of near-duplicate questions (dedup
engine plus embedding cosine, variants linked to their origin) and whole clusters go to eval."""

from __future__ import annotations

import json
import random
from typing import Any

import numpy as np
import polars as pl

from curate.augment.common import norm_key
from curate.dedup.cluster import components
from curate.dedup.engine import DedupConfig
from curate.dedup.engine import run as dedup_run
from curate.dedup.semantic import neighbour_pairs
from curate.select.config import SelectConfig


def _cluster_labels(
    frame: pl.DataFrame, config: SelectConfig, embedder, progress=None
) -> tuple[np.ndarray, dict]:
    """Near-duplicate clusters of the question (with earlier turns and system prompt).

    Textual: the dedup engine (exact + MinHash LSH at ``split_threshold``) over the question normalised
    hard (NFKC, lower case, no whitespace or punctuation) and spelled out one character per unit, so the
    shingles are character 5-grams: an inserted space or comma inside a word does not hide a copy.
    Semantic: every pair of question embeddings with cosine >= ``split_semantic``. Clusters are the
    connected components of both kinds of edges."""
    n = frame.height
    texts = _prompt_texts(frame)
    spelled = [" ".join(norm_key(t)) for t in texts]
    tmp = frame.select("id").with_columns(
        pl.lit("sft").alias("kind"), pl.Series("question", spelled, dtype=pl.Utf8), pl.lit("").alias("answer")
    )
    dc = DedupConfig(methods=("exact", "minhash"), fields=("question",), threshold=config.split_threshold)
    res = dedup_run(tmp, dc)
    a, b = [], []
    for c in res.clusters:
        rows = [m["row"] for m in c["members"] if m.get("row") is not None]
        a += [rows[0]] * (len(rows) - 1)
        b += rows[1:]
    st: dict[str, Any] = {"text_pairs": len(a)}
    # a variant (curate augment) is one cluster with its origin, whatever its surface form
    first_of: dict[str, int] = {}
    for i, rid in enumerate(frame["id"].to_list()):
        first_of.setdefault(rid, i)
    linked = 0
    for i, m in enumerate(frame["meta"].to_list() if "meta" in frame.columns else []):
        if m and '"origin_id"' in m:
            try:
                origin = json.loads(m).get("origin_id")
            except (json.JSONDecodeError, AttributeError):
                continue
            if origin in first_of:
                a.append(first_of[origin])
                b.append(i)
                linked += 1
    st["variant_links"] = linked
    if config.split_semantic and n > 1:
        emb = embedder.encode(
            texts, progress=progress("select: embed questions", len(texts)) if progress else None
        )
        pairs, _ = neighbour_pairs(emb, emb, config.split_semantic)
        a += pairs[:, 0].tolist()
        b += pairs[:, 1].tolist()
        st["semantic_pairs"] = int(len(pairs))
    labels = components(n, np.array(a, dtype=np.int64), np.array(b, dtype=np.int64))
    st["multi_row_clusters"] = int(len(np.unique(labels[labels >= 0])))
    singles = labels < 0
    labels[singles] = labels.max(initial=-1) + 1 + np.arange(int(singles.sum()))
    st["clusters"] = int(len(np.unique(labels)))
    return labels, st


def _prompt_texts(frame: pl.DataFrame) -> list[str]:
    out = []
    for hist, q, t in zip(
        frame["history"].to_list(),
        frame["question"].to_list(),
        frame["text"].to_list(),
        strict=True,
    ):
        parts = [h["content"] or "" for h in hist or [] if h["role"] == "user"]
        parts.append(q if q is not None else (t or ""))
        out.append("\n".join(p for p in parts if p))
    return out


def eval_split(
    frame: pl.DataFrame, config: SelectConfig, embedder=None, progress=None
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """-> (is_eval mask, cluster labels, stats): whole clusters drawn at random until eval_size rows."""
    n = frame.height
    size = config.eval_size or 0
    want = int(round(size * n)) if size < 1 else int(size)
    want = min(want, n)
    labels, st = _cluster_labels(frame, config, embedder, progress)
    order = np.unique(labels)
    rng = random.Random(config.seed)
    order = order.tolist()
    rng.shuffle(order)
    counts = np.bincount(labels)
    is_eval = np.zeros(n, dtype=bool)
    got = 0
    for lab in order:
        if got >= want:
            break
        if got + counts[lab] > want and counts[lab] > 1 and got > 0:
            continue  # a big cluster would overshoot: try smaller ones
        is_eval[labels == lab] = True
        got += int(counts[lab])
    st.update({"eval_rows": int(is_eval.sum()), "eval_requested": want})
    return is_eval, labels, st
