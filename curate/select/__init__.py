"""The select stage: thresholds on score columns, a held-out eval split by near-duplicate cluster, and a
diverse, high-quality subset of a target size.

Order of work:

1. **Thresholds.** Paper defaults first (``defaults=True``): rows with ``ifd >= 1`` are dropped when an
   ``ifd`` column exists (Li et al. 2023, *From Quantity to Quality*: an IFD at or above 1 means the
   instruction does not help the model produce the answer). A row without an IFD value (plain text for
   continued pretraining, or a row the scorer could not measure) passes the default whatever
   ``missing`` says: the default judges instructions, not the absence of a score. Then ``where`` expressions
   (``"ifd < 1"``, ``"reward >= 0.2 and ppl < 80"``), ``min``/``max`` (``reward=0.2``) and quantiles
   (``min_quantile reward=0.25`` drops the bottom quarter). A row without a value for a column a
   threshold needs is dropped (``missing="drop"``, SQL semantics) or kept (``missing="keep"``).
2. **Eval split** (``eval_size``: a fraction below 1 or a row count). Rows are grouped into clusters of
   near-duplicates with the dedup engine (exact, MinHash at ``split_threshold`` Jaccard and embedding
   cosine >= ``split_semantic`` on the question), and whole clusters go to eval, so no near-duplicate
   of an eval row stays in train. Eval rows are kept with ``split = "eval"``; train rows get ``split =
   "train"``; both get ``cluster``.
3. **Diverse selection** (DEITA, Liu et al. 2024): train candidates sorted by ``by`` (default: the
   first of ``quality``, ``reward`` present; ``-ppl`` sorts ascending), each taken only when its
   embedding's cosine to every row already taken is below ``diversity``, until ``target`` rows;
   ``stratify`` (``source``, a column, or ``meta.KEY``) gives every stratum a share of the target
   proportional to its size (a share a stratum cannot fill goes to the others).

Scores from the shipped demo models on data that is not a shipped sample (the ``demo_scores`` column
that ``curate score`` writes, see :mod:`curate.score.demo`) decide nothing by default: the paper-default
IFD cut and the default ranking column skip them (``stats["demo_scores_ignored"]``) unless
``allow_demo_scores``; thresholds and ``by`` the user names explicitly still apply.

Every row not kept is in ``dropped`` with the reason (the threshold, the nearest selected row and its
cosine, "target reached"...).
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
import polars as pl

from curate.embed import get_embedder
from curate.score.demo import demo_columns
from curate.select.conditions import OPS, Condition, SelectError, column_values, parse_assign, parse_where
from curate.select.config import PAPER_DEFAULTS, QUALITY_COLUMNS, TEMPLATE_COSINE, SelectConfig
from curate.select.diversity import (
    NEAR_DUP_OVERLAP,
    SAME_TEMPLATE,
    TOO_SIMILAR,
    diverse_take,
    embed_rows,
    row_texts,
    select_diverse,
    template_classifier,
)
from curate.select.split import eval_split
from curate.select.thresholds import apply_thresholds, threshold_conditions
from curate.stage import StageResult, empty_dropped, mark_dropped

STAGE = "select"


def ignored_demo_columns(frame: pl.DataFrame, config: SelectConfig, stats: dict[str, Any]) -> set[str]:
    """Score columns written by the shipped demo models, which the defaults skip (unless
    ``allow_demo_scores``); warns once on stderr and records them in ``stats["demo_scores_ignored"]``."""
    demo = set() if config.allow_demo_scores else demo_columns(frame)
    if demo:
        # the defaults never decide on demo-model scores; an explicit --where/--min/--by still may
        ignored = sorted(demo & ({c for c, *_ in PAPER_DEFAULTS} | set(QUALITY_COLUMNS)) & set(frame.columns))
        if ignored:
            stats["demo_scores_ignored"] = ignored
            print(
                f"warning: select: {', '.join(ignored)} came from the shipped demo models (demo_scores "
                "column): the default IFD cut and ranking skip them; pass real models to `curate score`, "
                "or --allow-demo-scores (recipe: allow_demo_scores: true) to use them anyway",
                file=sys.stderr,
                flush=True,
            )
    return demo


def run(
    frame: pl.DataFrame, config: SelectConfig | None = None, *, embedder=None, progress=None
) -> StageResult:
    """``progress``: a factory ``progress(description, total) -> tick`` (curate.progress) for the
    embedding passes, the long part on a real set (vectors come from the embedding cache when seen)."""
    config = config or SelectConfig()
    n = frame.height
    stats: dict[str, Any] = {"input": n}
    demo = ignored_demo_columns(frame, config, stats)
    # 1. thresholds
    alive, reason, detail = apply_thresholds(frame, config, stats)

    cand = np.flatnonzero(alive)
    sub = frame[cand] if len(cand) else frame.head(0)
    need_emb = (config.diversity is not None) or (config.eval_size and config.split_semantic)
    if need_emb and embedder is None and sub.height:
        embedder = get_embedder(config.embed_model)

    # 2. eval split
    split = np.array(["train"] * len(cand), dtype=object)
    cluster = None
    if config.eval_size and sub.height:
        is_ev, labels, st = eval_split(sub, config, embedder, progress)
        split[is_ev] = "eval"
        cluster = labels
        stats["split"] = st

    # 3. diverse selection among train candidates
    train_local = np.flatnonzero(split == "train")
    train = sub[train_local] if len(train_local) else sub.head(0)
    taken, why = select_diverse(train, config, demo, embedder, progress, stats)
    train_ids = train["id"].to_list() if train.height else []
    for li, (r, d) in why.items():
        gi = int(cand[train_local[li]])
        if "nearest" in d:
            d = {**d, "nearest_id": train_ids[d.pop("nearest")]}
        reason[gi], detail[gi] = r, d

    keep_global = [int(cand[train_local[i]]) for i in taken]
    eval_global = [int(cand[i]) for i in np.flatnonzero(split == "eval")]
    kept = frame[keep_global + eval_global] if keep_global or eval_global else frame.head(0)
    if config.eval_size:
        pos = {int(g): k for k, g in enumerate(cand)}
        kept = kept.with_columns(
            pl.Series("split", ["train"] * len(keep_global) + ["eval"] * len(eval_global), dtype=pl.Utf8),
            pl.Series(
                "cluster",
                [f"c{int(cluster[pos[g]])}" for g in keep_global + eval_global]
                if cluster is not None
                else None,
                dtype=pl.Utf8,
            ),
        )
    stats["kept_train"] = len(keep_global)
    stats["kept_eval"] = len(eval_global)
    drop_idx = [i for i in range(n) if reason[i] is not None]
    if drop_idx:
        dropped = mark_dropped(
            frame[drop_idx], STAGE, [reason[i] for i in drop_idx], [detail[i] for i in drop_idx]
        )
    else:
        dropped = empty_dropped(frame)
    return StageResult(kept, dropped, stats)


__all__ = [
    "NEAR_DUP_OVERLAP",
    "OPS",
    "PAPER_DEFAULTS",
    "QUALITY_COLUMNS",
    "SAME_TEMPLATE",
    "STAGE",
    "TEMPLATE_COSINE",
    "TOO_SIMILAR",
    "Condition",
    "SelectConfig",
    "SelectError",
    "column_values",
    "diverse_take",
    "embed_rows",
    "eval_split",
    "parse_assign",
    "parse_where",
    "row_texts",
    "run",
    "template_classifier",
    "threshold_conditions",
]
