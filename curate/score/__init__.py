"""The score stage: perplexity/IFD, reward and fastText quality as columns; nothing is dropped.

``run(frame, ScoreConfig) -> StageResult`` follows the stage contract (scorers only write scores;
selection reads them). For each scorer the frame gains its value columns plus ``<scorer>_error`` (null
when scored, else the reason: a scorer that cannot produce a score writes a null and a reason, never a
default number); truncated rows get ``ppl_truncated`` / ``reward_truncated`` in ``flags``.

Columns:

=================  ====================================================================================
ppl                perplexity of the answer given the question (chat template, loss on answer tokens)
ppl_answer         perplexity of the same answer tokens without the question (``ifd`` scorer)
ifd                ppl / ppl_answer: < 1 the question helps; >= 1 it does not (``ifd`` scorer)
ppl_tokens         answer tokens scored (after truncation)
reward             reward model scalar for (question, answer)
reward_chosen      preference rows: reward of chosen, of rejected, and chosen - rejected
reward_rejected
reward_margin
quality            fastText P(good)
=================  ====================================================================================

Scores are cached by (row key, scorer, model fingerprint) in a SQLite file (``cache``), so a re-run on a
grown file scores only the new rows and an interrupted run resumes. Only deterministic per-row errors
are cached; a row whose batch failed (``model error: ...``, e.g. out of memory) is scored again by the
next run. ``stats["score_models"]`` names
every model used (path, fingerprint, device, dtype, limits).
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl

from curate.configs.score import SCORERS, ScoreConfig
from curate.core.vocab import output_stem
from curate.progress import Progress, reporter
from curate.score import demo
from curate.score.cache import ScoreCache
from curate.score.common import ScoreError, embedded_model, row_key
from curate.score.perplexity import PerplexityScorer, PplConfig
from curate.score.quality import QualityScorer
from curate.score.reward import RewardConfig, RewardScorer
from curate.stage import StageResult, empty_dropped

VALUE_COLUMNS = {
    "ppl": {"ppl": pl.Float64, "ppl_tokens": pl.Int64},
    "ifd": {"ppl_answer": pl.Float64, "ifd": pl.Float64},
    "reward": {
        "reward": pl.Float64,
        "reward_chosen": pl.Float64,
        "reward_rejected": pl.Float64,
        "reward_margin": pl.Float64,
    },
    "quality": {"quality": pl.Float64},
}

__all__ = ["SCORERS", "ScoreConfig", "ScoreError", "build_scorers", "run", "score_frame"]


_LOADED: dict[tuple, Any] = {}


def build_scorers(config: ScoreConfig) -> list[Any]:
    """Load the models the config asks for (once per process; a second run reuses them)."""
    out: list[Any] = []
    wanted = set(config.scorers)
    if wanted & {"ppl", "ifd"}:
        lm = config.lm or str(embedded_model("lm"))
        settings = PplConfig(lm, **_model_settings(config, config.lm_chat_template), ifd="ifd" in wanted)
        out.append(_loaded(PerplexityScorer, settings))
    if "reward" in wanted:
        rm = config.reward_model or str(embedded_model("reward"))
        out.append(
            _loaded(RewardScorer, RewardConfig(rm, **_model_settings(config, config.reward_chat_template)))
        )
    if "quality" in wanted:
        qm = config.quality_model or str(embedded_model("quality"))
        out.append(QualityScorer(qm))
    return out


def _model_settings(config: ScoreConfig, chat_template: str | None) -> dict[str, Any]:
    """The settings every model scorer takes from the score stage's config (ModelSettings, less the model)."""
    return {
        "device": config.device,
        "dtype": config.dtype,
        "max_tokens": config.max_tokens,
        "token_budget": config.token_budget,
        "max_batch": config.max_batch,
        "chat_template": chat_template,
        "trust_remote_code": config.trust_remote_code,
    }


def _loaded(scorer: type, settings: Any) -> Any:
    """The scorer for these settings, loaded once per process."""
    key = (scorer.__name__, *dataclasses.astuple(settings))
    if key not in _LOADED:
        _LOADED[key] = scorer(settings)
    return _LOADED[key]


def score_frame(
    frame: pl.DataFrame,
    scorer: Any,
    cache=None,
    *,
    progress: Callable[[str, int], Any] | None = None,
    chunk_rows: int | None = None,
) -> tuple[pl.DataFrame, dict[str, Any]]:
    """Add one scorer's columns to ``frame`` (cached rows reused; new rows scored in chunks, each chunk
    committed to the cache as soon as it is done, so an interrupted run resumes).

    ``chunk_rows=None`` sizes the chunks by time: the first holds :data:`FIRST_CHUNK` rows, each next
    one what the measured rate scores in about :data:`COMMIT_SECONDS` (at most :data:`MAX_CHUNK`), so
    Ctrl-C loses at most a few seconds of work however slow the model is; an int fixes the size."""
    name = scorer.name
    rows = frame.select(
        [
            c
            for c in ("id", "kind", "system", "history", "question", "answer", "chosen", "rejected", "text")
            if c in frame.columns
        ]
    ).to_dicts()
    keys = [row_key(r.get("id"), scorer.payload(r)) for r in rows]
    cached = cache.get_many(keys, name, scorer.fingerprint) if cache is not None else {}
    cached = {k: v for k, v in cached.items() if cacheable(v)}  # caches written before this rule
    todo: dict[str, int] = {}
    for i, k in enumerate(keys):
        if k not in cached and k not in todo:
            todo[k] = i
    values: dict[str, dict[str, Any]] = dict(cached)
    started = time.perf_counter()
    todo_items = list(todo.items())
    bar = progress(name, len(todo_items)) if progress else Progress(False)(name, 0)
    with bar as advance:
        start, size = 0, chunk_rows or FIRST_CHUNK
        while start < len(todo_items):
            chunk = todo_items[start : start + size]
            start += len(chunk)
            t0 = time.perf_counter()
            results = scorer.score_rows([rows[i] for _, i in chunk], advance)
            if chunk_rows is None:
                rate = len(chunk) / max(time.perf_counter() - t0, 1e-6)
                size = int(min(MAX_CHUNK, max(MIN_CHUNK, rate * COMMIT_SECONDS)))
            fresh = {k: res for (k, _), res in zip(chunk, results, strict=True)}
            if cache is not None:
                # a transient failure (out of memory, a model error) is not the row's score: it is
                # reported now and the row is scored again next run
                cache.put_many({k: v for k, v in fresh.items() if cacheable(v)}, name, scorer.fingerprint)
            values.update(fresh)
    seconds = time.perf_counter() - started

    columns = dict(VALUE_COLUMNS["ppl"]) if name == "ppl" else dict(VALUE_COLUMNS[name])
    if name == "ppl" and getattr(scorer, "ifd", False):
        columns.update(VALUE_COLUMNS["ifd"])
    if name == "reward":
        kinds = set(frame["kind"].to_list()) if "kind" in frame.columns else set()
        if "preference" not in kinds:
            columns = {"reward": pl.Float64}
        elif kinds == {"preference"}:
            columns.pop("reward")
    new_cols = [
        pl.Series(col, [values[k].get(col) for k in keys], dtype=dtype) for col, dtype in columns.items()
    ]
    errors = [values[k].get("error") for k in keys]
    new_cols.append(pl.Series(f"{name}_error", errors, dtype=pl.Utf8))
    out = frame.with_columns(new_cols)
    truncated = [bool(values[k].get("truncated")) for k in keys]
    if any(truncated):
        out = add_flag(out, truncated, f"{name}_truncated")
    n_err = sum(e is not None for e in errors)
    stats: dict[str, Any] = {
        "rows": len(keys),
        "scored": len(todo_items),
        "from_cache": sum(1 for k in keys if k in cached),
        "errors": n_err,
        "truncated": sum(truncated),
        "seconds": round(seconds, 3),
    }
    reasons: dict[str, int] = {}
    for e in errors:
        if e is not None:
            reasons[e] = reasons.get(e, 0) + 1
    if reasons:
        stats["error_reasons"] = dict(sorted(reasons.items(), key=lambda kv: -kv[1])[:10])
    for col in columns:
        s = out[col].drop_nulls()
        if s.len():
            stats[col] = {
                "mean": round(float(s.mean()), 4),
                "p10": round(float(s.quantile(0.1)), 4),
                "p50": round(float(s.median()), 4),
                "p90": round(float(s.quantile(0.9)), 4),
            }
    if name == "ppl" and "ifd" in columns:
        s = out["ifd"].drop_nulls()
        stats["ifd_ge_1"] = int((s >= 1).sum())
    return out, stats


TRANSIENT_ERRORS = ("model error:", "fastText failed:")
# score-cache commits: about every COMMIT_SECONDS of scoring (chunks of MIN_CHUNK..MAX_CHUNK rows)
COMMIT_SECONDS = 5.0
FIRST_CHUNK, MIN_CHUNK, MAX_CHUNK = 32, 8, 512


def cacheable(result: dict[str, Any]) -> bool:
    """Whether a scorer's result for one row may be cached: scores, and errors that depend only on the
    row and the model (empty answer, template failure, non-finite loss), never failures of the run
    itself (``model error: ...`` such as out of memory), which the next run must retry."""
    err = result.get("error")
    return not (isinstance(err, str) and err.startswith(TRANSIENT_ERRORS))


def add_flag(frame: pl.DataFrame, mask: list[bool], flag: str) -> pl.DataFrame:
    """Append ``flag`` to the ``flags`` list column of the rows in ``mask`` (creating the column)."""
    if "flags" in frame.columns and frame["flags"].dtype == pl.List(pl.Utf8):
        old = frame["flags"].to_list()
    elif "flags" in frame.columns:  # flags written as JSON text by a CSV round trip
        old = []
        for v in frame["flags"].to_list():
            try:
                x = json.loads(v) if isinstance(v, str) else v
            except json.JSONDecodeError:
                x = [v]
            old.append(list(x) if isinstance(x, list) else ([] if x is None else [str(x)]))
    else:
        old = [None] * frame.height
    new = []
    for flags, m in zip(old, mask, strict=True):
        flags = list(flags or [])
        if m and flag not in flags:
            flags.append(flag)
        new.append(flags)
    return frame.with_columns(pl.Series("flags", new, dtype=pl.List(pl.Utf8)))


def run(frame: pl.DataFrame, config: ScoreConfig, scorers: list[Any] | None = None, *, progress=None):
    """The stage function: every row kept, score columns added, ``stats["score_models"]`` filled.

    ``progress``: a :class:`curate.progress.Progress` factory; by default one is made when
    ``config.progress`` is set (a bar on a terminal, plain periodic lines in a log)."""
    scorers = scorers if scorers is not None else build_scorers(config)
    stats: dict[str, Any] = {"score_models": {s.name: s.describe() for s in scorers}}
    # demo models on data that is not a shipped sample: said on stderr, in the models file, per row
    demo_names = demo.demo_scorers(frame, scorers)
    for s in scorers:
        if s.name in demo_names:
            stats["score_models"][s.name]["demo"] = True
            demo.warn(s.name, str(demo.model_path(s)))
    if progress is None and config.progress:
        progress = reporter()
    factory = None
    if progress is not None:

        def factory(name: str, total: int):
            return progress(f"score {name}", total)

    with ScoreCache(config.cache) as cache:
        for s in scorers:
            cache.register_model(s.fingerprint, s.name, s.describe())
            frame, st = score_frame(frame, s, cache if cache.enabled else None, progress=factory)
            stats[s.name] = st
    frame = demo.mark(frame, demo_names)
    return StageResult(frame, empty_dropped(frame), stats)


def beside_output(output: Path, suffix: str) -> Path:
    """``data.scored.jsonl`` -> ``data.scored.<suffix>`` beside it (the score cache, the models file)."""
    return output.with_name(f"{output_stem(output)}.{suffix}")


def default_cache_path(output: Path) -> Path:
    """``data.scored.jsonl`` -> ``data.scored.cache.sqlite`` beside it."""
    return beside_output(output, "cache.sqlite")


def models_file_path(output: Path) -> Path:
    """``data.scored.jsonl`` -> ``data.scored.models.json``: the models that wrote the scores."""
    return beside_output(output, "models.json")
