"""Readers of TRL's prompt-based formats (``prompt`` + ``chosen``/``rejected``, ``prompt`` + ``completion``),
implicit-prompt preference pairs (full conversations) and Anthropic hh-rlhf dialogues."""

from __future__ import annotations

import re
from typing import Any

from curate.io.formats.common import (
    _as_text,
    _label,
    _meta,
    _pref_side,
    _split_conversation,
    _turns,
)
from curate.records import Record, RecordError, Turn


def _prompt_turns(value: Any, field: str):
    if isinstance(value, str):
        return None, [], Turn("user", value), "str"
    turns, role_names, _ = _turns(value, field)
    system, history, q, _ = _split_conversation(turns, field, need_answer=False)
    return system, history, q, {"roles": role_names}


def from_trl_preference(row: dict, ctx: dict) -> Record:
    system, history, q, how = _prompt_turns(row["prompt"], "prompt")
    chosen, ch = _pref_side(row["chosen"], "chosen")
    rejected, rj = _pref_side(row["rejected"], "rejected")
    meta = _meta(row, {"prompt", "chosen", "rejected"})
    meta["_fmt"] = {"format": "trl-preference", "prompt": how, "chosen": ch, "rejected": rj}
    return Record(
        "preference",
        question=q.content,
        chosen=chosen,
        rejected=rejected,
        system=system,
        history=history,
        meta=meta,
    )


def from_implicit_preference(row: dict, ctx: dict) -> Record:
    ch, rj = row["chosen"], row["rejected"]
    if isinstance(ch, str) and isinstance(rj, str):
        return from_hh_rlhf(row, ctx)
    ch_turns, role_names, _ = _turns(ch, "chosen")
    rj_turns, _, _ = _turns(rj, "rejected")
    system, history, q, chosen = _split_conversation(ch_turns, "chosen")
    s2, h2, q2, rejected = _split_conversation(rj_turns, "rejected")
    if [(t.role, t.content) for t in history] != [(t.role, t.content) for t in h2] or q.content != q2.content:
        raise RecordError("chosen and rejected conversations do not share the same prompt", "rejected")
    meta = _meta(row, {"chosen", "rejected"})
    meta["_fmt"] = {"format": "implicit-preference", "roles": role_names}
    return Record(
        "preference",
        question=q.content,
        chosen=chosen.content,
        rejected=rejected.content,
        system=system,
        history=history,
        meta=meta,
    )


_HH_SPLIT = re.compile(r"\n\n(Human|Assistant):[ ]?")


def _hh_turns(text: str, field: str) -> list[Turn]:
    pieces = _HH_SPLIT.split(text)
    if pieces[0].strip():
        raise RecordError("dialogue does not start with 'Human:'", field)
    turns = []
    for role, content in zip(pieces[1::2], pieces[2::2], strict=True):
        turns.append(Turn("user" if role == "Human" else "assistant", content))
    return turns


def from_hh_rlhf(row: dict, ctx: dict) -> Record:
    ch = _hh_turns(_as_text(row["chosen"], "chosen") or "", "chosen")
    rj = _hh_turns(_as_text(row["rejected"], "rejected") or "", "rejected")
    if not ch or ch[-1].role != "assistant" or not rj or rj[-1].role != "assistant":
        raise RecordError("dialogue does not end with an Assistant turn", "chosen")
    if [(t.role, t.content) for t in ch[:-1]] != [(t.role, t.content) for t in rj[:-1]]:
        raise RecordError("chosen and rejected dialogues differ before the final answer", "rejected")
    _, history, q, chosen = _split_conversation(ch, "chosen")
    meta = _meta(row, {"chosen", "rejected"})
    meta["_fmt"] = {"format": "hh-rlhf"}
    return Record(
        "preference",
        question=q.content,
        chosen=chosen.content,
        rejected=rj[-1].content,
        history=history,
        meta=meta,
    )


def from_trl_prompt_completion(row: dict, ctx: dict) -> Record:
    system, history, q, how = _prompt_turns(row["prompt"], "prompt")
    completion = row["completion"]
    if isinstance(completion, list):
        text, c_how = _pref_side(completion, "completion")
    else:
        text, c_how = _as_text(completion, "completion"), "str"
    if text is None:
        raise RecordError("missing completion", "completion")
    kto = "label" in row
    meta = _meta(row, {"prompt", "completion", "label"})
    meta["_fmt"] = {"format": "trl-prompt-completion", "prompt": how, "completion": c_how}
    rec = Record(
        "kto" if kto else "sft", question=q.content, answer=text, system=system, history=history, meta=meta
    )
    if kto:
        rec.label = _label(row["label"], "label")
    return rec
