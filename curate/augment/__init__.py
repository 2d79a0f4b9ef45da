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

from collections.abc import Callable
from typing import Any

import polars as pl

from curate.augment.common import meta_dict, rows_to_frame
from curate.augment.cot import cot_variants
from curate.augment.fewshot import fewshot_variants
from curate.augment.rephrase import rephrase_variants
from curate.configs.augment import AugmentConfig, GeneratorConfig, check_teacher_limits
from curate.stage import StageResult, empty_dropped, mark_dropped

STAGE = "augment"
REQUEST_FAILED = "cot: teacher request failed"


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
