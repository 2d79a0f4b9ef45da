"""The pairs stage: DPO preference pairs, from three sources.

- ``ranked``: several SFT answers to the same prompt (same system, history and question after
  normalisation) ranked by a score column (``score``, default ``reward``): the best is ``chosen``, the
  lowest-scored answer that passes the side checks below (not empty, not identical or near-identical to
  ``chosen``) is ``rejected``, kept when best - rejected >= ``min_margin``. A group where no answer can
  be ``rejected`` makes no pair; its rows are dropped with the reason.
- ``generated``: the curated answer is ``chosen``; an answer written by ``model`` (a local HF model
  directory or an OpenAI-compatible URL, through :mod:`curate.augment.teachers`, cached) is ``rejected``.
- ``existing``: preference rows already in the input (any format `curate` reads: TRL, LLaMA-Factory,
  Alpaca, HH-RLHF...) are checked and passed on.

Every pair is checked: empty sides, identical sides (after normalisation) and near-identical sides
(character 3-gram Jaccard >= ``max_similarity``) are dropped with the reason. Input SFT rows that went
into a pair are accounted for in ``dropped`` with reason ``pairs: used as chosen/rejected/...`` (they are
not lost; the pair carries their ids in ``meta``), so ``kept + dropped == input + added``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import polars as pl

from curate.augment.common import char_ngrams, jaccard, meta_dict, norm_key, rows_to_frame
from curate.records import Record, Turn, normalise_text
from curate.stage import StageResult, empty_dropped, mark_dropped

STAGE = "pairs"
MODES = ("ranked", "generated", "existing")


@dataclass
class PairsConfig:
    # None: ranked and existing, plus generated when a model (model or model_url) is given, the same
    # for `curate pairs --model X` and a recipe's `pairs: {model: X}`
    modes: tuple[str, ...] | None = None
    score: str = "reward"
    min_margin: float = 0.0
    max_similarity: float = 0.9
    model: str | None = None
    model_url: str | None = None
    model_name: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    max_new_tokens: int = 512
    temperature: float = 0.0
    concurrency: int = 4
    rpm: float | None = None
    timeout: float = 120.0
    max_response_bytes: int = 8 << 20
    max_retries: int = 5
    cache: str | None = None
    no_cache: bool = False
    trust_remote_code: bool = False
    keep_sft: bool = False

    def __post_init__(self) -> None:
        if self.modes is None:
            self.modes = ("ranked", "existing") + (("generated",) if self.model or self.model_url else ())
        if isinstance(self.modes, str):
            self.modes = tuple(m.strip() for m in self.modes.split(",") if m.strip())
        bad = [m for m in self.modes if m not in MODES]
        if bad or not self.modes:
            raise ValueError(f"unknown pair mode(s) {bad}: choose from {', '.join(MODES)}")
        if "generated" in self.modes and not (self.model or self.model_url):
            raise ValueError("mode 'generated' needs --model MODEL_DIR or --model-url URL")
        if not 0 < self.max_similarity <= 1:
            raise ValueError("--max-similarity must be in (0, 1]")
        if self.min_margin < 0:
            raise ValueError("--min-margin must be >= 0")
        from curate.augment import check_teacher_limits

        check_teacher_limits(self)


def sides_problem(chosen: str | None, rejected: str | None, max_similarity: float) -> tuple[str, dict] | None:
    """Why a pair is unusable, or None."""
    if not (chosen or "").strip():
        return "pairs: empty chosen answer", {}
    if not (rejected or "").strip():
        return "pairs: empty rejected answer", {}
    if norm_key(chosen) == norm_key(rejected):
        return "pairs: identical sides", {}
    sim = jaccard(char_ngrams(chosen, 3), char_ngrams(rejected, 3))
    if sim >= max_similarity:
        return "pairs: near-identical sides", {"jaccard": round(sim, 4), "threshold": max_similarity}
    return None


def _prompt_key(row: dict[str, Any]) -> str:
    hist = [[t["role"], normalise_text(t["content"])] for t in row.get("history") or []]
    return json.dumps(
        [normalise_text(row.get("system")), hist, normalise_text(row.get("question"))], ensure_ascii=False
    )


def _pair_row(row: dict[str, Any], chosen: str, rejected: str, meta: dict[str, Any]) -> dict[str, Any]:
    base = meta_dict(row)
    base.pop("_fmt", None)
    base.update(meta)
    rec = Record(
        "preference",
        question=row["question"],
        chosen=chosen,
        rejected=rejected,
        system=row.get("system"),
        history=[
            Turn(t["role"], t["content"], json.loads(t["extra"]) if t.get("extra") else None)
            for t in row.get("history") or []
        ],
        meta=base,
    )
    out = rec.as_row()
    src = row.get("source")
    if src:
        out["source"] = src
    return out


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def run(
    frame: pl.DataFrame,
    config: PairsConfig | None = None,
    *,
    generator=None,
    progress: Callable[[str, int], Callable[[int], None]] | None = None,
) -> StageResult:
    config = config or PairsConfig()
    rows = frame.to_dicts()
    n = len(rows)
    pairs: list[dict[str, Any]] = []
    bad_pairs: list[tuple[dict[str, Any], str, dict]] = []
    fate: list[tuple[str, dict] | None] = [None] * n  # why an input row is not in kept
    kept_idx: list[int] = []
    stats: dict[str, Any] = {"modes": ",".join(config.modes)}

    def add_pair(row, chosen, rejected, meta) -> bool:
        p = _pair_row(row, chosen, rejected, meta)
        prob = sides_problem(chosen, rejected, config.max_similarity)
        if prob:
            bad_pairs.append((p, prob[0], prob[1]))
            return False
        pairs.append(p)
        return True

    # (c) existing preference rows
    for i, r in enumerate(rows):
        if r["kind"] != "preference":
            continue
        if "existing" not in config.modes:
            fate[i] = ("pairs: preference row (mode 'existing' is off)", {})
            continue
        prob = sides_problem(r.get("chosen"), r.get("rejected"), config.max_similarity)
        if prob:
            fate[i] = prob
        else:
            kept_idx.append(i)
    stats["existing"] = len(kept_idx)

    sft = [i for i, r in enumerate(rows) if r["kind"] == "sft" and (r.get("question") or "").strip()]
    used: set[int] = set()
    # (a) several answers to the same prompt, ranked by a score
    if "ranked" in config.modes and sft:
        from curate.select import SelectError, column_values

        try:
            score_values = column_values(frame, config.score)
        except SelectError:
            score_values = None
        if score_values is None:
            stats["ranked"] = f"skipped: no {config.score!r} column (run `curate score` first)"
        else:
            groups: dict[str, list[int]] = {}
            for i in sft:
                groups.setdefault(_prompt_key(rows[i]), []).append(i)
            made = low_margin = no_rejected = 0
            for members in groups.values():
                scored = [(i, _num(score_values[i])) for i in members]
                # an empty answer is no answer: it can be neither side
                scored = [
                    (i, s) for i, s in scored if s is not None and (rows[i].get("answer") or "").strip()
                ]
                distinct = {norm_key(rows[i]["answer"]) for i, _ in scored}
                if len(scored) < 2 or len(distinct) < 2:
                    continue
                scored.sort(key=lambda x: -x[1])
                bi, bs = scored[0]
                # rejected: the lowest-scored answer that makes a usable pair with the chosen one
                pick = None
                problems: dict[str, int] = {}
                for wi, ws in reversed(scored[1:]):
                    prob = sides_problem(rows[bi]["answer"], rows[wi]["answer"], config.max_similarity)
                    if prob is None:
                        pick = (wi, ws)
                        break
                    problems[prob[0]] = problems.get(prob[0], 0) + 1
                if pick is None:
                    no_rejected += 1
                    for i, _ in scored:
                        fate[i] = (
                            "pairs: no answer usable as rejected",
                            {"chosen_id": rows[bi]["id"], "answers": len(scored), "problems": problems},
                        )
                        used.add(i)
                    continue
                wi, ws = pick
                margin = bs - ws
                if margin < config.min_margin:
                    low_margin += 1
                    for i, _ in scored:
                        fate[i] = (
                            "pairs: margin below --min-margin",
                            {"margin": round(margin, 6), "min_margin": config.min_margin},
                        )
                        used.add(i)
                    continue
                ok = add_pair(
                    rows[bi],
                    rows[bi]["answer"],
                    rows[wi]["answer"],
                    {
                        "pair_source": "ranked",
                        "score": config.score,
                        "chosen_id": rows[bi]["id"],
                        "rejected_id": rows[wi]["id"],
                        "chosen_score": bs,
                        "rejected_score": ws,
                        "margin": margin,
                        "answers": len(scored),
                    },
                )
                made += ok
                for i, _ in scored:
                    role = "chosen" if i == bi else "rejected" if i == wi else "a middle answer"
                    fate[i] = (f"pairs: used as {role} of a ranked pair", {"chosen_id": rows[bi]["id"]})
                    used.add(i)
            stats["ranked"] = {
                "groups_with_several_answers": made + low_margin + no_rejected,
                "pairs": made,
                "below_margin": low_margin,
                "no_usable_rejected": no_rejected,
            }

    # (b) curated answer vs a model's answer
    if "generated" in config.modes:
        todo = [i for i in sft if i not in used and (rows[i].get("answer") or "").strip()]
        own = generator is None
        if own:
            from curate.augment.teachers import make_teacher

            generator = make_teacher(
                config.model,
                url=config.model_url,
                model=config.model_name,
                cache_path=config.cache,
                no_cache=config.no_cache,
                max_new_tokens=config.max_new_tokens,
                temperature=config.temperature,
                api_key_env=config.api_key_env,
                concurrency=config.concurrency,
                rpm=config.rpm,
                max_retries=config.max_retries,
                trust_remote_code=config.trust_remote_code,
                timeout=config.timeout,
                max_response_bytes=config.max_response_bytes,
            )
        from curate.augment.teachers import GenerationError
        from curate.records import messages_of

        try:
            prompts = [messages_of(rows[i], answer_field="") for i in todo]
            tick = progress("generate rejected answers", len(prompts)) if progress else None
            texts = generator.generate(prompts, progress=tick) if prompts else []
        finally:
            if own:
                generator.close()
        failed = 0
        for i, text in zip(todo, texts, strict=True):
            if isinstance(text, GenerationError):
                fate[i] = ("pairs: generation failed", {"error": str(text)})
                failed += 1
                continue
            add_pair(
                rows[i],
                rows[i]["answer"],
                text,
                {
                    "pair_source": "generated",
                    "rejected_model": generator.identity,
                    "chosen_id": rows[i]["id"],
                },
            )
            fate[i] = ("pairs: used as chosen of a generated pair", {})
            used.add(i)
        stats["generated"] = {"requested": len(todo), "failed": failed, "model": generator.identity}

    for i, r in enumerate(rows):
        if fate[i] is None and i not in kept_idx:
            if r["kind"] == "sft" and config.keep_sft:
                kept_idx.append(i)
            elif r["kind"] == "sft":
                fate[i] = ("pairs: no pair for this row", {})
            else:
                fate[i] = (f"pairs: {r['kind']} row is not a preference pair", {})

    # pairs identical to an existing pair are not new
    seen = {rows[i]["id"] for i in kept_idx}
    new_pairs = []
    for p in pairs:
        if p["id"] in seen:
            bad_pairs.append((p, "pairs: duplicate pair", {}))
        else:
            seen.add(p["id"])
            new_pairs.append(p)
    kept = frame[sorted(kept_idx)] if kept_idx else frame.head(0)
    if new_pairs:
        kept = pl.concat([kept, rows_to_frame(new_pairs, frame)], how="vertical")
    parts = []
    drop_i = [i for i in range(n) if fate[i] is not None]
    if drop_i:
        parts.append(
            mark_dropped(frame[drop_i], STAGE, [fate[i][0] for i in drop_i], [fate[i][1] for i in drop_i])
        )
    if bad_pairs:
        bf = rows_to_frame([p for p, _, _ in bad_pairs], frame)
        parts.append(mark_dropped(bf, STAGE, [w for _, w, _ in bad_pairs], [d for _, _, d in bad_pairs]))
    dropped = pl.concat(parts, how="vertical") if parts else empty_dropped(frame)
    added = len(new_pairs) + len(bad_pairs)
    stats.update(
        {
            "added": added,
            "pairs": kept.filter(pl.col("kind") == "preference").height,
            "new_pairs": len(new_pairs),
            "rejected_pairs": len(bad_pairs),
        }
    )
    return StageResult(kept, dropped, stats)


__all__ = ["MODES", "PairsConfig", "run", "sides_problem"]
