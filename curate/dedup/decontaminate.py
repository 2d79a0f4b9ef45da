"""Decontamination: drop training rows that share n-grams with evaluation or benchmark items.

Text is tokenised as for dedup (CJK characters one unit each, other scripts by word, after NFKC and
lower-casing, punctuation ignored), so ``n`` counts characters in Chinese and words in English. An eval
item shorter than ``n`` units (but at least ``min_units``) is matched as a whole: a training row that
contains its full unit sequence is a hit. N-grams that occur in more than ``common`` distinct eval
texts (after normalisation; the same prompt repeated over many eval rows counts once) are boilerplate
("according to article ...") and are ignored. Each dropped row names the eval item it hit
most (file, line, id, text) and how many of its n-grams matched.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from curate.configs.dedup import DecontamConfig
from curate.dedup.text import (
    compare_text,
    doc_keys,
    ngram_hashes,
    normalise,
    tokenize,
)
from curate.stage import StageResult, empty_dropped, mark_dropped

STAGE = "decontaminate"
REASON = "overlaps evaluation set"


@dataclass
class EvalIndex:
    hashes: np.ndarray  # sorted uint64
    item: np.ndarray  # eval item per hash
    lengths: list[int]  # n-gram sizes to look for (ngram, plus whole-item sizes of short items)
    items: pl.DataFrame  # eval_id, eval_source, eval_text
    stats: dict[str, Any]


def _source(file: Any, line: Any) -> str | None:
    return None if file is None else (f"{file}:{line}" if line is not None else str(file))


def build_eval_index(evals: pl.DataFrame, config: DecontamConfig) -> EvalIndex:
    """Index every eval field separately (an eval question is matched on its own, whatever its answer)."""
    raw = compare_text(evals, config.eval_fields, sep="\n")
    hs, items, texts = [], [], []
    lengths = {config.ngram}
    too_short = 0
    for fld in config.eval_fields:
        norm = normalise(compare_text(evals, (fld,), sep="\n")).to_list()
        for s in range(0, len(norm), config.chunk):
            tok = tokenize(norm[s : s + config.chunk])
            text_key = doc_keys(tok)  # the normalised text of each eval field
            h, d = ngram_hashes(tok, config.ngram)
            hs.append(h)
            items.append(d + s)
            texts.append(text_key[d])
            short = np.flatnonzero((tok.counts < config.ngram) & (tok.counts >= config.min_units))
            too_short += int(((tok.counts < config.min_units) & (tok.counts > 0)).sum())
            for m in np.unique(tok.counts[short]).tolist():
                docs = short[tok.counts[short] == m]
                h2, d2 = ngram_hashes(tok, int(m))
                keep = np.isin(d2, docs)
                hs.append(h2[keep])
                items.append(d2[keep] + s)
                texts.append(text_key[d2[keep]])
                lengths.add(int(m))
    h = np.concatenate(hs) if hs else np.zeros(0, dtype=np.uint64)
    it = np.concatenate(items) if items else np.zeros(0, dtype=np.int64)
    tk = np.concatenate(texts) if texts else np.zeros(0, dtype=np.uint64)
    # n-grams found in too many distinct eval texts are boilerplate (the same prompt in many eval rows,
    # e.g. one question with several reference answers, is one text)
    per_text = np.unique(np.stack([h, tk], axis=1), axis=0) if len(h) else np.zeros((0, 2), np.uint64)
    common_h, n_texts = np.unique(per_text[:, 0], return_counts=True)
    common_h = common_h[n_texts > config.common]
    n_common = len(common_h)
    # drop repeats inside one item, then the boilerplate n-grams
    code = (
        np.unique(np.stack([h, it.astype(np.uint64)], axis=1), axis=0)
        if len(h)
        else np.zeros((0, 2), np.uint64)
    )
    h, it = code[:, 0], code[:, 1].astype(np.int64)
    common = np.isin(h, common_h)
    h, it = h[~common], it[~common]
    order = np.argsort(h, kind="stable")
    src = evals["source"].struct.unnest() if "source" in evals.columns and evals.height else None
    items_frame = pl.DataFrame(
        {
            "eval_id": evals["id"]
            if "id" in evals.columns
            else pl.Series([str(i) for i in range(evals.height)]),
            "eval_source": [_source(f, ln) for f, ln in zip(src["file"], src["line"], strict=True)]
            if src is not None
            else [None] * evals.height,
            "eval_text": raw.str.slice(0, 160),
        }
    )
    return EvalIndex(
        hashes=h[order],
        item=it[order],
        lengths=sorted(lengths),
        items=items_frame,
        stats={
            "eval_items": evals.height,
            "eval_ngrams": int(len(h)),
            "eval_fields_too_short": too_short,
            "common_ngrams_ignored": n_common,
        },
    )


def run(frame: pl.DataFrame, index: EvalIndex, config: DecontamConfig | None = None) -> StageResult:
    config = config or DecontamConfig()
    t0 = time.perf_counter()
    n = frame.height
    raw = compare_text(frame, config.fields, sep="\n") if n else pl.Series([], dtype=pl.Utf8)
    norm = normalise(raw).to_list() if n else []
    hits = np.zeros(n, dtype=np.int64)
    totals = np.zeros(n, dtype=np.int64)
    best_item = np.full(n, -1, dtype=np.int64)
    best_count = np.zeros(n, dtype=np.int64)
    for s in range(0, n, config.chunk):
        tok = tokenize(norm[s : s + config.chunk])
        rows_h, rows_d = [], []
        for m in index.lengths:
            h, d = ngram_hashes(tok, m)
            if m == config.ngram:
                totals[s : s + len(tok.counts)] += np.bincount(d, minlength=len(tok.counts))
            rows_h.append(h)
            rows_d.append(d)
        h = np.concatenate(rows_h)
        d = np.concatenate(rows_d) + s
        if len(index.hashes) == 0 or len(h) == 0:
            continue
        pos = np.searchsorted(index.hashes, h)
        pos_c = np.minimum(pos, len(index.hashes) - 1)
        found = index.hashes[pos_c] == h
        if not found.any():
            continue
        # every eval item owning a matched hash (a hash can belong to several items)
        fh, fd, fp = h[found], d[found], pos_c[found]
        right = np.searchsorted(index.hashes, fh, side="right")
        reps = right - fp
        row_of = np.repeat(fd, reps)
        item_of = index.item[
            np.repeat(fp, reps) + (np.arange(reps.sum()) - np.repeat(np.cumsum(reps) - reps, reps))
        ]
        hit_rows, hit_n = np.unique(fd, return_counts=True)
        hits[hit_rows] += hit_n
        pair, cnt = np.unique(np.stack([row_of, item_of], axis=1), axis=0, return_counts=True)
        order = np.lexsort((-cnt, pair[:, 0]))
        pair, cnt = pair[order], cnt[order]
        first = np.ones(len(pair), dtype=bool)
        first[1:] = pair[1:, 0] != pair[:-1, 0]
        r, it, c = pair[first, 0], pair[first, 1], cnt[first]
        better = c > best_count[r]
        best_item[r[better]] = it[better]
        best_count[r[better]] = c[better]
    overlap = np.where(
        totals > 0, np.minimum(hits, np.maximum(totals, 1)) / np.maximum(totals, 1), (hits > 0) * 1.0
    )
    drop = (hits >= config.min_hits) & (overlap >= config.min_overlap) & (best_item >= 0)
    drop_idx = np.flatnonzero(drop)
    kept = frame.filter(pl.Series(~drop)) if n else frame
    if len(drop_idx):
        details = []
        items = index.items
        for i in drop_idx.tolist():
            e = items.row(int(best_item[i]), named=True)
            details.append(
                {
                    "eval_id": e["eval_id"],
                    "eval_source": e["eval_source"],
                    "eval_text": e["eval_text"],
                    "matched_ngrams": int(hits[i]),
                    "overlap": round(float(overlap[i]), 4),
                    "ngram": config.ngram,
                }
            )
        dropped = mark_dropped(frame[drop_idx], STAGE, REASON, details).with_columns(
            pl.Series("contam_eval_id", [d["eval_id"] for d in details], dtype=pl.Utf8),
            pl.Series("contam_eval_source", [d["eval_source"] for d in details], dtype=pl.Utf8),
            pl.Series("contam_overlap", [d["overlap"] for d in details], dtype=pl.Float64),
        )
    else:
        dropped = empty_dropped(frame)
    eval_hit = int(len(np.unique(best_item[drop_idx]))) if len(drop_idx) else 0
    top: dict[str, int] = {}
    if len(drop_idx):
        items_hit, counts = np.unique(best_item[drop_idx], return_counts=True)
        for k in np.argsort(-counts, kind="stable")[:10]:
            e = index.items.row(int(items_hit[k]), named=True)
            top[str(e["eval_source"] or e["eval_id"])] = int(counts[k])
    stats = dict(index.stats)
    stats.update(
        {
            "ngram": config.ngram,
            "contaminated_rows": int(len(drop_idx)),
            "eval_items_hit": eval_hit,
            "most_hit_eval_items": top,
            "seconds_scan": round(time.perf_counter() - t0, 3),
        }
    )
    return StageResult(kept, dropped, stats)
