"""Instruction diversity without a model: template rephrasings of the instruction and system-prompt
variants, from the files ``templates/rephrase_{zh,en}.txt`` and ``templates/system_{zh,en}.txt``.

The same question asked in several surface forms, under several system prompts, teaches the model to
follow the instruction rather than one phrasing (the source article's prompt-optimisation section).
Templates are picked per row with a seeded random generator keyed by the row id, so a re-run gives
the same variants; a template is never used twice for one row.
"""

from __future__ import annotations

import hashlib
import random
from typing import Any

import polars as pl

from curate.augment.common import is_eval, is_variant, lang_of, norm_key, read_lines_template, variant_row
from curate.core import vocab
from curate.core.coerce import OptionError


def _rng(row_id: str, salt: str, seed: int) -> random.Random:
    h = hashlib.sha256(f"{seed}:{salt}:{row_id}".encode()).digest()
    return random.Random(int.from_bytes(h[:8], "big"))


def rephrase_variants(
    frame: pl.DataFrame,
    n_rephrase: int = 0,
    n_system: int = 0,
    *,
    lang: str = "auto",
    templates_dir=None,
    seed: int = 0,
    replace_system: bool = False,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """``n_rephrase`` rephrased-instruction variants and ``n_system`` system-prompt variants per row.
    A row that already has a system prompt gets system variants only when ``replace_system``."""
    if n_rephrase < 0 or n_system < 0:
        raise OptionError(
            None, "{rephrase} and {system_variants} must be >= 0", mentions=("rephrase", "system_variants")
        )
    if lang not in ("auto", "zh", "en"):
        raise OptionError("lang", f"{lang!r}: expected auto, zh or en")
    cache: dict[tuple[str, str], list[str]] = {}

    def templates(kind: str, lg: str) -> list[str]:
        if (kind, lg) not in cache:
            cache[(kind, lg)] = read_lines_template(kind, lg, templates_dir)
        return cache[(kind, lg)]

    out: list[dict[str, Any]] = []
    stats = {"rephrased": 0, "system_variants": 0, "rows_with_system_kept": 0}
    seen_ids: set[str] = set()
    for row in frame.to_dicts():
        if row["id"] in seen_ids:
            continue  # an exact duplicate would get identical variants
        seen_ids.add(row["id"])
        if row["kind"] not in vocab.CONVERSATION_KINDS or not (row.get("question") or "").strip():
            continue
        if is_eval(row) or is_variant(row):
            continue
        lg = lang_of(row["question"]) if lang == "auto" else lang
        seen = {norm_key(row["question"])}
        if n_rephrase:
            pool = templates("rephrase", lg)
            picks = _rng(row["id"], "rephrase", seed).sample(range(len(pool)), min(n_rephrase, len(pool)))
            for t in picks:
                q = pool[t].replace("{question}", row["question"].strip())
                if norm_key(q) in seen:
                    continue
                seen.add(norm_key(q))
                out.append(variant_row(row, "rephrase", {"template": f"rephrase_{lg}#{t + 1}"}, question=q))
                stats["rephrased"] += 1
        if n_system:
            if row.get("system") and not replace_system:
                stats["rows_with_system_kept"] += 1
                continue
            pool = templates("system", lg)
            cur = norm_key(row.get("system"))
            choices = [i for i, s in enumerate(pool) if norm_key(s) != cur]
            picks = _rng(row["id"], "system", seed).sample(choices, min(n_system, len(choices)))
            for t in picks:
                out.append(variant_row(row, "system", {"template": f"system_{lg}#{t + 1}"}, system=pool[t]))
                stats["system_variants"] += 1
    return out, stats
