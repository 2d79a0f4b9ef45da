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
from typing import Any

import polars as pl

from curate.augment.common import char_ngrams, jaccard, meta_dict, norm_key, rows_to_frame
from curate.augment.teachers import GenerationError
from curate.configs.pairs import MODES, PairsConfig  # noqa: F401  (re-exported)
from curate.records import Record, Turn, messages_of, normalise_text
from curate.select import SelectError, column_values
from curate.stage import StageResult, empty_dropped, mark_dropped

STAGE = "pairs"


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


class _Pairing:
    """One run's bookkeeping: the pairs made, the pairs refused, and each input row's fate (why it is
    not in ``kept``; None: not decided yet)."""

    def __init__(self, frame: pl.DataFrame, config: PairsConfig):
        self.frame = frame
        self.config = config
        self.rows = frame.to_dicts()
        self.pairs: list[dict[str, Any]] = []
        self.bad_pairs: list[tuple[dict[str, Any], str, dict]] = []
        self.fate: list[tuple[str, dict] | None] = [None] * len(self.rows)
        self.kept_idx: list[int] = []
        self.used: set[int] = set()  # input rows that went into a pair (or a refused group)
        self.stats: dict[str, Any] = {"modes": ",".join(config.modes)}
        self.sft = [
            i for i, r in enumerate(self.rows) if r["kind"] == "sft" and (r.get("question") or "").strip()
        ]

    def add_pair(self, row, chosen, rejected, meta) -> bool:
        p = _pair_row(row, chosen, rejected, meta)
        prob = sides_problem(chosen, rejected, self.config.max_similarity)
        if prob:
            self.bad_pairs.append((p, prob[0], prob[1]))
            return False
        self.pairs.append(p)
        return True

    def settle(self, members, reason: str, detail: dict[str, Any]) -> None:
        for i in members:
            self.fate[i] = (reason, detail)
            self.used.add(i)

    # (c) existing preference rows
    def existing(self) -> None:
        for i, r in enumerate(self.rows):
            if r["kind"] != "preference":
                continue
            if "existing" not in self.config.modes:
                self.fate[i] = ("pairs: preference row (mode 'existing' is off)", {})
                continue
            prob = sides_problem(r.get("chosen"), r.get("rejected"), self.config.max_similarity)
            if prob:
                self.fate[i] = prob
            else:
                self.kept_idx.append(i)
        self.stats["existing"] = len(self.kept_idx)

    # (a) several answers to the same prompt, ranked by a score
    def ranked(self) -> None:
        config, rows = self.config, self.rows
        try:
            score_values = column_values(self.frame, config.score)
        except SelectError:
            self.stats["ranked"] = f"skipped: no {config.score!r} column (run `curate score` first)"
            return
        groups: dict[str, list[int]] = {}
        for i in self.sft:
            groups.setdefault(_prompt_key(rows[i]), []).append(i)
        counts = {"pairs": 0, "below_margin": 0, "no_usable_rejected": 0}
        for members in groups.values():
            scored = [(i, _num(score_values[i])) for i in members]
            # an empty answer is no answer: it can be neither side
            scored = [(i, s) for i, s in scored if s is not None and (rows[i].get("answer") or "").strip()]
            if len(scored) >= 2 and len({norm_key(rows[i]["answer"]) for i, _ in scored}) >= 2:
                outcome = self._rank_group(sorted(scored, key=lambda x: -x[1]))
                if outcome is not None:
                    counts[outcome] += 1
        self.stats["ranked"] = {
            "groups_with_several_answers": sum(counts.values()),
            "pairs": counts["pairs"],
            "below_margin": counts["below_margin"],
            "no_usable_rejected": counts["no_usable_rejected"],
        }

    def _rank_group(self, scored: list[tuple[int, float]]) -> str | None:
        """One prompt's answers, best first: its pair, or why it has none (the ``ranked`` counter)."""
        config, rows = self.config, self.rows
        members = [i for i, _ in scored]
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
            detail = {"chosen_id": rows[bi]["id"], "answers": len(scored), "problems": problems}
            self.settle(members, "pairs: no answer usable as rejected", detail)
            return "no_usable_rejected"
        wi, ws = pick
        margin = bs - ws
        if margin < config.min_margin:
            detail = {"margin": round(margin, 6), "min_margin": config.min_margin}
            self.settle(members, "pairs: margin below --min-margin", detail)
            return "below_margin"
        made = self.add_pair(
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
        for i in members:
            role = "chosen" if i == bi else "rejected" if i == wi else "a middle answer"
            self.settle([i], f"pairs: used as {role} of a ranked pair", {"chosen_id": rows[bi]["id"]})
        return "pairs" if made else None  # (a pair refused for its sides is not counted)

    # (b) curated answer vs a model's answer
    def generated(self, generator, progress) -> None:
        rows = self.rows
        todo = [i for i in self.sft if i not in self.used and (rows[i].get("answer") or "").strip()]
        own = generator is None
        generator = generator or self.config.make_generator()
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
                self.fate[i] = ("pairs: generation failed", {"error": str(text)})
                failed += 1
                continue
            meta = {
                "pair_source": "generated",
                "rejected_model": generator.identity,
                "chosen_id": rows[i]["id"],
            }
            self.add_pair(rows[i], rows[i]["answer"], text, meta)
            self.settle([i], "pairs: used as chosen of a generated pair", {})
        self.stats["generated"] = {"requested": len(todo), "failed": failed, "model": generator.identity}

    def result(self) -> StageResult:
        """The kept rows (the input rows kept, then the new pairs) and the dropped ones, with reasons."""
        frame, rows, fate = self.frame, self.rows, self.fate
        for i, r in enumerate(rows):
            if fate[i] is None and i not in self.kept_idx:
                if r["kind"] == "sft" and self.config.keep_sft:
                    self.kept_idx.append(i)
                elif r["kind"] == "sft":
                    fate[i] = ("pairs: no pair for this row", {})
                else:
                    fate[i] = (f"pairs: {r['kind']} row is not a preference pair", {})
        # pairs identical to an existing pair are not new
        seen = {rows[i]["id"] for i in self.kept_idx}
        new_pairs = []
        for p in self.pairs:
            if p["id"] in seen:
                self.bad_pairs.append((p, "pairs: duplicate pair", {}))
            else:
                seen.add(p["id"])
                new_pairs.append(p)
        kept = frame[sorted(self.kept_idx)] if self.kept_idx else frame.head(0)
        if new_pairs:
            kept = pl.concat([kept, rows_to_frame(new_pairs, frame)], how="vertical")
        parts = []
        drop_i = [i for i in range(len(rows)) if fate[i] is not None]
        if drop_i:
            parts.append(
                mark_dropped(frame[drop_i], STAGE, [fate[i][0] for i in drop_i], [fate[i][1] for i in drop_i])
            )
        if self.bad_pairs:
            bad = self.bad_pairs
            bf = rows_to_frame([p for p, _, _ in bad], frame)
            parts.append(mark_dropped(bf, STAGE, [w for _, w, _ in bad], [d for _, _, d in bad]))
        dropped = pl.concat(parts, how="vertical") if parts else empty_dropped(frame)
        self.stats.update(
            {
                "added": len(new_pairs) + len(self.bad_pairs),
                "pairs": kept.filter(pl.col("kind") == "preference").height,
                "new_pairs": len(new_pairs),
                "rejected_pairs": len(self.bad_pairs),
            }
        )
        return StageResult(kept, dropped, self.stats)


def run(
    frame: pl.DataFrame,
    config: PairsConfig | None = None,
    *,
    generator=None,
    progress: Callable[[str, int], Callable[[int], None]] | None = None,
) -> StageResult:
    """The pairs stage (see the module docstring); ``generator``: a teacher to use instead of the one
    the config names (the caller closes it)."""
    pairing = _Pairing(frame, config or PairsConfig())
    modes = pairing.config.modes
    pairing.existing()
    if "ranked" in modes and pairing.sft:
        pairing.ranked()
    if "generated" in modes:
        pairing.generated(generator, progress)
    return pairing.result()


__all__ = ["MODES", "PairsConfig", "run", "sides_problem"]
