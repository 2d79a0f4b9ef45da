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
from dataclasses import dataclass
from typing import Any

import polars as pl

from curate.augment.common import meta_dict, rows_to_frame
from curate.stage import StageResult, empty_dropped, mark_dropped

STAGE = "augment"
REQUEST_FAILED = "cot: teacher request failed"


@dataclass
class AugmentConfig:
    fewshot: int = 0
    cot: bool = False
    rephrase: int = 0
    system_variants: int = 0
    # few-shot retrieval
    embed_model: str = "use"
    near_dup: float = 0.9
    answer_overlap: float = 0.5
    # chain of thought
    teacher: str | None = None
    teacher_url: str | None = None
    teacher_model: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    check: str = "contains"
    cot_style: str = "plain"
    max_new_tokens: int = 512
    temperature: float = 0.0
    concurrency: int = 4
    rpm: float | None = None
    max_retries: int = 5
    timeout: float = 120.0
    max_response_bytes: int = 8 << 20
    batch_size: int = 8
    cache: str | None = None
    no_cache: bool = False
    trust_remote_code: bool = False
    # templates
    lang: str = "auto"
    templates: str | None = None
    replace_system: bool = False
    seed: int = 0
    variants_only: bool = False

    def __post_init__(self) -> None:
        from curate.augment.cot import STYLES, parse_check

        if self.fewshot < 0 or self.rephrase < 0 or self.system_variants < 0:
            raise ValueError("fewshot, rephrase and system_variants must be >= 0")
        if not (self.fewshot or self.cot or self.rephrase or self.system_variants):
            raise ValueError("nothing to do: ask for --fewshot K, --cot, --rephrase N or --system-variants N")
        if self.cot and not (self.teacher or self.teacher_url):
            raise ValueError("--cot needs a teacher: --teacher MODEL_DIR or --teacher-url URL")
        if not 0 < self.near_dup <= 1 or not 0 < self.answer_overlap <= 1:
            raise ValueError("near_dup and answer_overlap must be in (0, 1]")
        parse_check(self.check)
        if self.cot_style not in STYLES:
            raise ValueError(f"cot_style must be one of {', '.join(STYLES)}")
        if self.lang not in ("auto", "zh", "en"):
            raise ValueError("lang must be auto, zh or en")
        check_teacher_limits(self)


def check_teacher_limits(config) -> None:
    """The endpoint limits shared by augment and pairs (command line and recipes)."""
    if config.concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, got {config.concurrency}")
    if getattr(config, "max_retries", 0) < 0:
        raise ValueError(f"max_retries must be >= 0, got {config.max_retries}")
    if config.rpm is not None and config.rpm < 0:
        raise ValueError(f"rpm must be >= 0 (0: no limit), got {config.rpm}")
    if config.max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be at least 1, got {config.max_new_tokens}")
    if getattr(config, "timeout", 1) <= 0:
        raise ValueError(f"timeout must be > 0 seconds, got {config.timeout}")
    if getattr(config, "max_response_bytes", 1024) < 1024:
        raise ValueError(f"max_response_bytes must be at least 1024, got {config.max_response_bytes}")


def make_teacher_from(config: AugmentConfig):
    from curate.augment.teachers import make_teacher

    return make_teacher(
        config.teacher,
        url=config.teacher_url,
        model=config.teacher_model,
        cache_path=config.cache,
        no_cache=config.no_cache,
        max_new_tokens=config.max_new_tokens,
        temperature=config.temperature,
        api_key_env=config.api_key_env,
        concurrency=config.concurrency,
        rpm=config.rpm,
        max_retries=config.max_retries,
        batch_size=config.batch_size,
        trust_remote_code=config.trust_remote_code,
        timeout=config.timeout,
        max_response_bytes=config.max_response_bytes,
    )


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
        from curate.augment.rephrase import rephrase_variants

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
        from curate.augment.fewshot import fewshot_variants

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
        from curate.augment.cot import cot_variants

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


__all__ = ["AugmentConfig", "STAGE", "run"]
