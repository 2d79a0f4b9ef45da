"""Readers of conversation formats: OpenAI ``messages``, ShareGPT ``conversations``, and LLaMA-Factory's
preference forms (``conversations`` + ``chosen``/``rejected``, v1 ``chosen_messages``/``rejected_messages``)."""

from __future__ import annotations

from curate.io.formats.common import (
    _SYSTEM_EXTRA,
    _as_text,
    _label,
    _meta,
    _pref_side,
    _split_conversation,
    _turns,
)
from curate.records import Record


def from_openai(row: dict, ctx: dict) -> Record:
    turns, role_names, tags = _turns(row["messages"], "messages")
    kto = "label" in row
    system, history, q, a = _split_conversation(turns, "messages")
    used = {"messages", "label"} if kto else {"messages"}
    meta = _meta(row, used)
    meta["_fmt"] = {
        "format": "openai",
        "roles": role_names,
        "q_extra": q.extra,
        "a_extra": a.extra,
        "a_role": a.role,
        "q_role": q.role,
        "s_extra": _SYSTEM_EXTRA.value,
    }
    rec = Record(
        "kto" if kto else "sft",
        question=q.content,
        answer=a.content,
        system=system,
        history=history,
        meta=meta,
    )
    if kto:
        rec.label = _label(row["label"], "label")
    return rec


def from_sharegpt(row: dict, ctx: dict) -> Record:
    turns, role_names, tags = _turns(row["conversations"], "conversations")
    system = row.get("system")
    s2, history, q, a = _split_conversation(turns, "conversations")
    kto = "kto_tag" in row or "label" in row
    used = {"conversations", "system", "kto_tag", "label"}
    meta = _meta(row, used)
    meta["_fmt"] = {
        "format": "sharegpt",
        "roles": role_names,
        "tags": list(tags),
        "q_extra": q.extra,
        "a_extra": a.extra,
        "a_role": a.role,
        "q_role": q.role,
        "system_in_turns": s2 is not None,
        "s_extra": _SYSTEM_EXTRA.value,
        "has_system_key": "system" in row,
    }
    if kto:
        meta["_fmt"]["kto_key"] = "kto_tag" if "kto_tag" in row else "label"
    rec = Record(
        "kto" if kto else "sft",
        question=q.content,
        answer=a.content,
        system=_as_text(system, "system") if system is not None else s2,
        history=history,
        meta=meta,
    )
    if kto:
        rec.label = _label(row.get("kto_tag", row.get("label")), meta["_fmt"]["kto_key"])
    return rec


def from_llamafactory_preference(row: dict, ctx: dict) -> Record:
    turns, role_names, tags = _turns(row["conversations"], "conversations")
    system = row.get("system")
    s2, history, q, _ = _split_conversation(turns, "conversations", need_answer=False)
    chosen, ch_how = _pref_side(row["chosen"], "chosen")
    rejected, rj_how = _pref_side(row["rejected"], "rejected")
    meta = _meta(row, {"conversations", "system", "chosen", "rejected"})
    meta["_fmt"] = {
        "format": "llamafactory-preference",
        "roles": role_names,
        "tags": list(tags),
        "q_extra": q.extra,
        "chosen": ch_how,
        "rejected": rj_how,
        "s_extra": _SYSTEM_EXTRA.value,
        "system_in_turns": s2 is not None,
        "has_system_key": "system" in row,
    }
    return Record(
        "preference",
        question=q.content,
        chosen=chosen,
        rejected=rejected,
        system=_as_text(system, "system") if system is not None else s2,
        history=history,
        meta=meta,
    )


def from_llamafactory_v1_preference(row: dict, ctx: dict) -> Record:
    ch_turns, role_names, _ = _turns(row["chosen_messages"], "chosen_messages")
    rj_turns, _, _ = _turns(row["rejected_messages"], "rejected_messages")
    system, history, q, chosen = _split_conversation(ch_turns, "chosen_messages")
    _, _, _, rejected = _split_conversation(rj_turns, "rejected_messages")
    meta = _meta(row, {"chosen_messages", "rejected_messages"})
    meta["_fmt"] = {
        "format": "llamafactory-v1-preference",
        "original": {
            "chosen_messages": row["chosen_messages"],
            "rejected_messages": row["rejected_messages"],
        },
    }
    return Record(
        "preference",
        question=q.content,
        chosen=chosen.content,
        rejected=rejected.content,
        system=system,
        history=history,
        meta=meta,
    )
