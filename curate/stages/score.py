"""score: perplexity/IFD, reward model and fastText quality columns (row scope; loads models)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from curate.core.coerce import dataclass_config
from curate.core.stage import Scope, Stage, StageContext


class Score(Stage):
    name = "score"
    suffix = "scored"
    scope = Scope.ROW
    help = "Score rows: perplexity/IFD, reward model, fastText quality."
    module = "curate.score"
    config = "curate.configs.score:ScoreConfig"
    command = "curate.commands.score:score"
    code = ("curate.score",)
    # transformers, tokenizers and fastText refuse a model or a chat template the user named with
    # ValueError (an unknown architecture, a template that does not render)
    user_errors = ("builtins:ValueError",)
    path_options = (
        "lm",
        "reward_model",
        "quality_model",
        "lm_chat_template",
        "reward_chat_template",
        "cache",
    )
    model_options = ("lm", "reward_model", "quality_model")
    key_exclude = ("cache", "progress", "device", "token_budget", "max_batch")
    internal = ("progress",)  # set by the caller (progress bars), not a user setting

    @classmethod
    def build_config(cls, options: dict[str, Any], ctx: StageContext) -> Any:
        opts = dict(options)
        # one score cache per work directory: a re-run after a config change elsewhere, or a refresh,
        # scores only rows (and models) it has not seen
        if "cache" not in opts and ctx.extra.get("work_dir") is not None:
            opts["cache"] = str(Path(ctx.extra["work_dir"]) / "scores.sqlite")
        return dataclass_config(cls.config_class(), opts)

    def models(self) -> list[str]:
        from curate.score.common import embedded_model

        config = self.config_value
        want = []
        scorers = set(getattr(config, "scorers", ()))
        if scorers & {"ppl", "ifd"}:
            want.append(config.lm or str(embedded_model("lm")))
        if "reward" in scorers:
            want.append(config.reward_model or str(embedded_model("reward")))
        if "quality" in scorers:
            want.append(config.quality_model or str(embedded_model("quality")))
        return want

    @classmethod
    def actor_factory(cls, config: Any) -> Callable:
        """Load the models once per actor, then score batch after batch."""
        from curate.score import build_scorers
        from curate.score import run as score_run

        scorers = build_scorers(config)
        return lambda frame: score_run(frame, config, scorers)

    @staticmethod
    def merge_stats(parts: list[tuple[dict[str, Any], int]], result) -> dict[str, Any]:
        return _merge_score_stats(parts, result)


def _merge_score_stats(parts: list[tuple[dict[str, Any], int]], result) -> dict[str, Any]:
    """Score stats of the whole input: counts and seconds add up; the distribution of every score
    column (mean, p10, p50, p90) is recomputed from the merged frame, as the score stage computes it."""
    stats: dict[str, Any] = {"score_models": parts[0][0].get("score_models", {})}
    frame = result.kept
    for name in [k for k in parts[0][0] if k != "score_models"]:
        per = [s[name] for s, _ in parts if name in s]
        merged: dict[str, Any] = {}
        for key in per[0]:
            vals = [p[key] for p in per if key in p]
            if isinstance(vals[0], dict) and key in frame.columns:
                col = frame[key].drop_nulls()
                merged[key] = {
                    "mean": round(float(col.mean()), 4),
                    "p10": round(float(col.quantile(0.1)), 4),
                    "p50": round(float(col.median()), 4),
                    "p90": round(float(col.quantile(0.9)), 4),
                }
            elif isinstance(vals[0], dict):
                total: dict[str, int] = {}
                for v in vals:
                    for r, c in v.items():
                        total[r] = total.get(r, 0) + c
                merged[key] = dict(sorted(total.items(), key=lambda kv: -kv[1])[:10])
            elif isinstance(vals[0], int | float) and not isinstance(vals[0], bool):
                merged[key] = round(sum(vals), 3) if isinstance(vals[0], float) else sum(vals)
            else:
                merged[key] = vals[0]
        stats[name] = merged
    if (
        any(stats[n].get("truncated") for n in stats if isinstance(stats[n], dict))
        and "flags" in frame.columns
    ):
        # the stage gives every row a flags list once any row is flagged; batches without a flagged
        # row kept their nulls
        import polars as pl

        result.kept = frame.with_columns(pl.col("flags").fill_null(pl.lit([], dtype=pl.List(pl.Utf8))))
    return stats
