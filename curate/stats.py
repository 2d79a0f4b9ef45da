"""Dataset statistics: rows, languages (script-based), lengths, turns, sources, kinds."""

from __future__ import annotations

from typing import Any

import polars as pl

from curate.core import vocab

# language_expr's thresholds on vocab.han_share: a row is zh when clearly Chinese, en when clearly not,
# and mixed in between (a statistic reports the middle, where augment must choose one template)
ZH_SHARE = 0.7
EN_SHARE = 0.3


def language_expr(col: str) -> pl.Expr:
    """zh / en / mixed / other from :func:`curate.core.vocab.han_share` (Han characters among Han
    characters plus Latin words), vectorised: the same patterns, counted by polars."""
    text = pl.col(col).fill_null("")
    han = text.str.count_matches(vocab.HAN_PATTERN)
    total = han + text.str.count_matches(vocab.LATIN_WORD_PATTERN)
    share = pl.when(total > 0).then(han / total).otherwise(None)
    return (
        pl.when(total == 0)
        .then(pl.lit("other"))
        .when(share >= ZH_SHARE)
        .then(pl.lit("zh"))
        .when(share <= EN_SHARE)
        .then(pl.lit("en"))
        .otherwise(pl.lit("mixed"))
    )


def _percentiles(s: pl.Series) -> dict[str, Any]:
    s = s.drop_nulls()
    if s.len() == 0:
        return {}
    return {
        "min": int(s.min()),
        "p10": int(s.quantile(0.10, "nearest")),
        "p50": int(s.quantile(0.50, "nearest")),
        "p90": int(s.quantile(0.90, "nearest")),
        "p99": int(s.quantile(0.99, "nearest")),
        "max": int(s.max()),
        "mean": round(float(s.mean()), 1),
    }


def compute(frame: pl.DataFrame, tokenizer: Any = None) -> dict[str, Any]:
    out: dict[str, Any] = {"rows": frame.height}
    if frame.height == 0:
        return out
    out["kinds"] = dict(frame["kind"].value_counts().sort("kind").rows())
    text_fields = [c for c in vocab.TEXT_FIELDS if frame[c].null_count() < frame.height]
    # each row's own main text: the question, or the text of a plain-text row (a mixed file holds both)
    langs = frame.select(pl.coalesce(pl.col("question"), pl.col("text")).alias("_main")).select(
        language_expr("_main").alias("lang")
    )
    out["languages"] = dict(langs["lang"].value_counts().sort("count", descending=True).rows())
    out["chars"] = {f: _percentiles(frame[f].str.len_chars()) for f in text_fields}
    if tokenizer is not None:
        out["tokens"] = {}
        for f in text_fields:
            vals = [v for v in frame[f].to_list() if v is not None]
            lens = [len(x) for x in tokenizer(vals, add_special_tokens=False)["input_ids"]] if vals else []
            out["tokens"][f] = _percentiles(pl.Series(lens, dtype=pl.Int64))
    # turns: conversations only (sft, preference, kto), not plain-text rows
    convo = frame.filter(pl.col("kind").is_in(list(vocab.CONVERSATION_KINDS)))
    turns = convo["history"].list.len().fill_null(0) // 2 + 1
    out["turns"] = {int(k): int(v) for k, v in turns.value_counts().sort("history").rows()}
    out["with_system"] = int(frame["system"].is_not_null().sum())
    src = frame["source"].struct.field("file")
    out["sources"] = dict(src.value_counts().sort("count", descending=True).rows())
    out["unique_ids"] = frame["id"].n_unique()
    return out
