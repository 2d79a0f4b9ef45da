"""Chain-of-thought variants: a teacher writes step-by-step reasoning that ends in the reference answer.

The prompt comes from ``templates/cot_{zh,en}.txt`` (chosen by the question's language, or forced), and
asks the teacher to finish with a marker line (``Final answer:`` / ``最终答案：``) and the reference answer.
Every rationale is checked before it is kept (``check``):

- ``contains`` (default): the normalised reference answer appears in the text (case, whitespace and
  punctuation ignored);
- ``final``: the text after the last final-answer marker equals the reference (normalised);
- ``overlap:X``: at least X of the reference's character bigrams appear after the last marker (or in
  the whole text when there is none); for long free-text answers that a teacher paraphrases.

Failures (wrong or missing final answer, failed requests) are never kept: they are returned with a
reason and the generated text (or the request's error). The stage writes rationales that miss the
answer to the dropped file; failed requests made no variant and are only counted, with the first error.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import polars as pl

from curate.augment.common import (
    fill,
    first_occurrence,
    is_eval,
    is_variant,
    lang_of,
    norm_key,
    read_prompt_template,
    variant_row,
)
from curate.augment.teachers import GenerationError, Teacher
from curate.configs.augment import STYLES
from curate.core.coerce import OptionError

MARKERS = {"en": "Final answer:", "zh": "最终答案："}
_MARKER_RE = re.compile(r"(final answer|answer|最终答案|最终回答|答案|结论)\s*[:：]|####", re.IGNORECASE)
MIN_REASONING_CHARS = 10  # normalised characters besides the answer: an echo is not a rationale


def parse_check(check: str) -> tuple[str, float | None]:
    check = (check or "contains").strip().lower()
    if check in ("contains", "final"):
        return check, None
    m = re.fullmatch(r"overlap[:=]([0-9.]+)", check)
    if m and 0 < float(m.group(1)) <= 1:
        return "overlap", float(m.group(1))
    raise OptionError("check", f"{check!r}: expected contains, final or overlap:X with 0 < X <= 1")


def split_final(text: str) -> tuple[str, str | None]:
    """(reasoning, final answer after the last marker) ; final is None when no marker is found."""
    last = None
    for m in _MARKER_RE.finditer(text):
        last = m
    if last is None:
        return text.strip(), None
    return text[: last.start()].strip(), text[last.end() :].strip()


def _bigrams(s: str) -> list[str]:
    return [s[i : i + 2] for i in range(len(s) - 1)] if len(s) > 1 else ([s] if s else [])


def check_rationale(text: str, reference: str, check: str = "contains") -> tuple[bool, dict[str, Any]]:
    mode, x = parse_check(check)
    ref = norm_key(reference)
    reasoning, final = split_final(text)
    if not ref:
        return False, {"check": mode, "why": "the reference answer is empty"}
    if not norm_key(reasoning) and mode != "final":
        return False, {"check": mode, "why": "no reasoning before the answer"}
    if mode == "contains":
        whole = norm_key(text)
        if ref not in whole:
            return False, {"check": mode, "why": "the reference answer does not appear in the text"}
        if len(whole.replace(ref, "", 1)) < MIN_REASONING_CHARS:
            return False, {"check": mode, "why": "no reasoning besides the reference answer"}
        return True, {"check": mode, "why": None}
    if mode == "final":
        if final is None:
            return False, {"check": mode, "why": "no final-answer marker"}
        got = norm_key(final)
        ok = got == ref or (got.startswith(ref) and len(got) - len(ref) <= 2)
        return ok, {"check": mode, "why": None if ok else "the final answer differs", "final": final[:200]}
    target = norm_key(final if final is not None else text)
    grams = _bigrams(ref)
    have = set(_bigrams(target))
    recall = sum(g in have for g in grams) / len(grams)
    ok = recall >= (x or 0)
    return ok, {
        "check": f"overlap:{x}",
        "recall": round(recall, 3),
        "why": None if ok else "too little overlap",
    }


def build_prompt(row: dict[str, Any], lang: str, templates_dir=None) -> list[dict[str, str]]:
    system_t, user_t = read_prompt_template("cot", lang, templates_dir)
    values = {
        "question": row.get("question") or "",
        "answer": row.get("answer") or "",
        "system": row.get("system") or "",
        "marker": MARKERS[lang],
    }
    msgs = []
    if system_t:
        msgs.append({"role": "system", "content": fill(system_t, **values)})
    msgs.append({"role": "user", "content": fill(user_t, **values)})
    return msgs


def cot_variants(
    frame: pl.DataFrame,
    teacher: Teacher,
    *,
    check: str = "contains",
    style: str = "plain",
    lang: str = "auto",
    templates_dir=None,
    progress: Callable[[str, int], Callable[[int], None]] | None = None,
) -> tuple[list[dict[str, Any]], list[tuple[dict[str, Any], str, dict]], dict[str, Any]]:
    """-> (kept variants, failed variants as (row, reason, detail), stats)."""
    parse_check(check)
    if style not in STYLES:
        raise OptionError("cot_style", f"{style!r}: expected one of {', '.join(STYLES)}")
    if lang not in ("auto", "zh", "en"):
        raise OptionError("lang", f"{lang!r}: expected auto, zh or en")
    all_rows = frame.to_dicts()
    rows = [
        r
        for r, first in zip(all_rows, first_occurrence(all_rows), strict=True)
        if first
        and r["kind"] == "sft"
        and (r.get("question") or "").strip()
        and (r.get("answer") or "").strip()
        and not is_eval(r)
        and not is_variant(r)
    ]
    langs = [lang_of(r["question"]) if lang == "auto" else lang for r in rows]
    prompts = [build_prompt(r, lg, templates_dir) for r, lg in zip(rows, langs, strict=True)]
    tick = progress("chain of thought", len(prompts)) if progress else None
    hits0 = teacher.cache.hits
    texts = teacher.generate(prompts, progress=tick) if prompts else []
    kept, failed = [], []
    for row, lg, text in zip(rows, langs, texts, strict=True):
        extra_lang = lg
        extra = {"teacher": teacher.identity, "cot_check": check, "lang": extra_lang}
        if isinstance(text, GenerationError):
            v = variant_row(row, "cot", extra, answer="")
            failed.append((v, "cot: teacher request failed", {"error": str(text)}))
            continue
        ok, detail = check_rationale(text, row["answer"], check)
        if style == "think":
            reasoning, _ = split_final(text)
            answer = f"<think>\n{reasoning}\n</think>\n\n{row['answer']}"
        else:
            answer = text
        v = variant_row(row, "cot", extra, answer=answer)
        if ok:
            kept.append(v)
        else:
            detail["generated"] = text[:2000]
            failed.append((v, "cot: rationale does not reach the reference answer", detail))
    stats = {
        "teacher": teacher.identity,
        "check": check,
        "style": style,
        "requested": len(prompts),
        "passed": len(kept),
        "failed": len(failed),
        "cache_hits": teacher.cache.hits - hits0,
        "pass_rate": round(len(kept) / len(prompts), 4) if prompts else None,
    }
    return kept, failed, stats
