"""The augment stage: few-shot, chain-of-thought and rephrased variants of SFT rows.

``run(frame, config) -> StageResult``: the kept frame holds the input rows (unless ``variants_only``) and
every accepted variant; each variant has a fresh id, ``meta.variant`` (``fewshot`` | ``cot`` |
``rephrase`` | ``system``) and ``meta.origin_id``. Rejected variants (a rationale that misses the
reference answer, a variant identical to an existing row) are in ``dropped`` with the reason, so
``kept + dropped == input + stats["added"]``. A teacher request that failed made no variant: it is
counted in ``stats["cot"]["failed_requests"]`` (with ``first_error``), not in ``added``. Held-out rows (``common.is_eval``) and
existing variants are never augmented, and never serve as demonstrations.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import InitVar, dataclass
from typing import Any

import polars as pl

from curate.augment.common import meta_dict, rows_to_frame
from curate.augment.cot import STYLES, cot_variants, parse_check
from curate.augment.fewshot import fewshot_variants
from curate.augment.generator import GeneratorConfig, check_teacher_limits, generator_field, setting
from curate.augment.rephrase import rephrase_variants
from curate.core.stage import deprecated_keys
from curate.stage import StageResult, empty_dropped, mark_dropped

STAGE = "augment"
REQUEST_FAILED = "cot: teacher request failed"


@dataclass
class AugmentConfig(GeneratorConfig):
    """augment's settings; the chain-of-thought teacher is the generating model of
    :class:`GeneratorConfig` (``model``, ``model_url``, ``model_name`` and its client settings)."""

    # the teacher, spelled as pairs spells its model; augment's older spellings are deprecated
    model: str | None = generator_field("model", deprecated=("--teacher",))
    model_url: str | None = generator_field("model_url", deprecated=("--teacher-url",))
    model_name: str | None = generator_field("model_name", deprecated=("--teacher-model",))
    fewshot: int = setting(0, "Add a variant with K retrieved demonstrations.")
    cot: bool = setting(
        False, "Add chain-of-thought variants written by --model (checked against the answer).", flag=True
    )
    rephrase: int = setting(0, "Add N template rephrasings of the instruction per row.")
    system_variants: int = setting(0, "Add N system-prompt variants per row (templates).")
    # few-shot retrieval
    embed_model: str = setting("use", "Few-shot retrieval: use, minilm or a local dir.")
    near_dup: float = setting(
        0.9,
        "Few-shot: a candidate whose question or answer embedding has at least this cosine with the "
        "row's is a near-duplicate and never a demonstration.",
    )
    answer_overlap: float = setting(
        0.5,
        "Few-shot: a candidate whose answer shares this fraction of character 5-grams with the row's "
        "answer (containment) is never a demonstration.",
    )
    # chain of thought
    check: str = setting(
        "contains",
        "How a rationale must reach the reference answer: contains, final (text after the final-answer "
        "marker equals it) or overlap:X (share X of its character bigrams, for long answers).",
    )
    cot_style: str = setting(
        "plain",
        "plain: the teacher's text; think: <think>reasoning</think> followed by the reference answer.",
        choices=("plain", "think"),
    )
    batch_size: int = setting(8, "Local teacher: prompts per generate call.")
    # templates
    lang: str = setting("auto", "Template language (auto: from each question).", choices=("auto", "zh", "en"))
    templates: str | None = setting(
        None,
        "Directory overriding the built-in templates (cot_zh.txt, rephrase_en.txt, system_zh.txt...).",
        path="dir",
        exists=True,
    )
    replace_system: bool = setting(
        False, "System variants also for rows that have a system prompt.", flag=True
    )
    seed: int = setting(0, "Random seed for the choice of rephrasing and system-prompt templates.")
    variants_only: bool = setting(
        False, "Write only the variants (originals go to the dropped file).", flag=True
    )
    # the deprecated spellings as keyword arguments, for Python callers
    teacher: InitVar[str | None] = None
    teacher_url: InitVar[str | None] = None
    teacher_model: InitVar[str | None] = None

    def __post_init__(self, teacher=None, teacher_url=None, teacher_model=None) -> None:
        self._adopt_teacher_spellings(teacher=teacher, teacher_url=teacher_url, teacher_model=teacher_model)
        if self.fewshot < 0 or self.rephrase < 0 or self.system_variants < 0:
            raise ValueError("fewshot, rephrase and system_variants must be >= 0")
        if not (self.fewshot or self.cot or self.rephrase or self.system_variants):
            raise ValueError("nothing to do: ask for --fewshot K, --cot, --rephrase N or --system-variants N")
        if self.cot and not self.has_model:
            raise ValueError("--cot needs a teacher model: --model MODEL_DIR or --model-url URL")
        if not 0 < self.near_dup <= 1 or not 0 < self.answer_overlap <= 1:
            raise ValueError("near_dup and answer_overlap must be in (0, 1]")
        parse_check(self.check)
        if self.cot_style not in STYLES:
            raise ValueError(f"cot_style must be one of {', '.join(STYLES)}")
        if self.lang not in ("auto", "zh", "en"):
            raise ValueError("lang must be auto, zh or en")
        self.check_generator()

    def _adopt_teacher_spellings(self, **old: str | None) -> None:
        renamed = deprecated_keys(type(self))
        for key, value in old.items():
            if value is None:
                continue
            target = renamed[key]
            if getattr(self, target) is not None:
                raise ValueError(f"{key} and {target} are the same setting: give only {target}")
            warnings.warn(
                f"AugmentConfig({key}=...) is deprecated: use {target}", DeprecationWarning, stacklevel=4
            )
            setattr(self, target, value)


def make_teacher_from(config: AugmentConfig):
    return config.make_generator(batch_size=config.batch_size)


def run(
    frame: pl.DataFrame,
    config: AugmentConfig | None = None,
    *,
    teacher=None,
    embedder=None,
    progress: Callable[[str, int], Callable[[int], None]] | None = None,
) -> StageResult:
    config = config or AugmentConfig(fewshot=3)
    stats: dict[str, Any] = {}
    accepted: list[dict[str, Any]] = []
    rejected: list[tuple[dict[str, Any], str, dict]] = []

    if config.rephrase or config.system_variants:
        rows, st = rephrase_variants(
            frame,
            config.rephrase,
            config.system_variants,
            lang=config.lang,
            templates_dir=config.templates,
            seed=config.seed,
            replace_system=config.replace_system,
        )
        accepted += rows
        stats["rephrase"] = st
    if config.fewshot:
        rows, skipped, st = fewshot_variants(
            frame,
            config.fewshot,
            embedder=embedder,
            embed_model=config.embed_model,
            near_dup=config.near_dup,
            answer_overlap=config.answer_overlap,
            progress=progress,
        )
        accepted += rows
        stats["fewshot"] = st
    if config.cot:
        own = teacher is None
        teacher = teacher or make_teacher_from(config)
        try:
            rows, failed, st = cot_variants(
                frame,
                teacher,
                check=config.check,
                style=config.cot_style,
                lang=config.lang,
                templates_dir=config.templates,
                progress=progress,
            )
        finally:
            if own:
                teacher.close()
        for attr in ("retries", "usage", "requests"):
            if hasattr(teacher, attr):
                st[attr] = getattr(teacher, attr)
        accepted += rows
        # a failed request produced no variant: it is counted (and its first error kept) but it is
        # neither "added" nor a dropped row; a rationale that misses the answer is a rejected variant
        errors = [d.get("error") for _, why, d in failed if why == REQUEST_FAILED]
        rejected += [f for f in failed if f[1] != REQUEST_FAILED]
        st["failed"] = len(failed) - len(errors)
        st["failed_requests"] = len(errors)
        if errors:
            st["first_error"] = errors[0]
        stats["cot"] = st

    # a variant identical to an input row or to another variant is not a new example
    seen = set(frame["id"].to_list()) if frame.height else set()
    unique = []
    for v in accepted:
        if v["id"] in seen:
            rejected.append((v, "augment: variant identical to an existing row", {"origin_id": None}))
        else:
            seen.add(v["id"])
            unique.append(v)
    added = len(unique) + len(rejected)
    variants = rows_to_frame(unique, frame)
    parts = [variants] if config.variants_only else [frame, variants]
    kept = (
        pl.concat([p for p in parts if p.height], how="vertical")
        if any(p.height for p in parts)
        else frame.head(0)
    )
    dropped_parts = []
    if rejected:
        rf = rows_to_frame([r for r, _, _ in rejected], frame)
        dropped_parts.append(
            mark_dropped(rf, STAGE, [why for _, why, _ in rejected], [d for _, _, d in rejected])
        )
    if config.variants_only and frame.height:
        dropped_parts.append(mark_dropped(frame, STAGE, "augment: original (variants only)"))
    dropped = pl.concat(dropped_parts, how="vertical") if dropped_parts else empty_dropped(frame)
    by_variant: dict[str, int] = {}
    for v in unique:
        name = str(meta_dict(v).get("variant"))
        by_variant[name] = by_variant.get(name, 0) + 1
    stats.update(
        {
            "added": added,
            "variants": len(unique),
            "variants_by_kind": by_variant,
            "rejected_variants": len(rejected),
        }
    )
    return StageResult(kept, dropped, stats)


__all__ = ["AugmentConfig", "GeneratorConfig", "STAGE", "check_teacher_limits", "run"]
