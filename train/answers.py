"""The reference answer of a row: what the exact/contains rewards of online RL compare a completion with
(:mod:`train.rewards`), kept with each prompt when the rows are prepared (:mod:`train.rows`).

``answer`` of SFT rows (for CoT rows, the final answer after the marker, or after ``</think>``),
``chosen`` of preference rows.
"""

from __future__ import annotations

import re
from typing import Any

THINK = re.compile(r"^\s*<think>(.*?)</think>\s*(.*)$", re.S)


def final_answer(text: str) -> str:
    """The answer part of a CoT text: after ``</think>``, after the last final-answer marker, or all of it."""
    from curate.augment.cot import split_final  # (curate.augment loads its teacher clients)

    m = THINK.match(text or "")
    if m:
        return m.group(2).strip()
    _, final = split_final(text or "")
    return (final if final is not None else text or "").strip()


def reference_of(row: dict[str, Any]) -> str | None:
    """The reference answer of a canonical row (None when it has none)."""
    if row.get("kind") == "preference":
        ans = row.get("chosen")
    else:
        ans = row.get("answer")
    if ans is None or not str(ans).strip():
        return None
    return final_answer(str(ans)) or None
