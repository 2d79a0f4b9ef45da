"""Q&A formats: detection, conversion to canonical records, and conversion back (lossless).

Supported (``--format`` names):

- ``alpaca``: instruction / input / output [/ system / history]; with chosen/rejected -> preference
  (LLaMA-Factory's alpaca preference); with ``kto_tag`` -> kto
- ``sharegpt``: ``conversations`` of {from, value} (or {role, content}), optional ``system`` and ``tools``
- ``openai``: ``messages`` of {role, content} (also TRL's conversational ``messages``); with ``label`` -> kto
- ``llamafactory-preference``: ``conversations`` + ``chosen``/``rejected`` (message objects or strings)
- ``trl-preference``: ``prompt`` + ``chosen`` + ``rejected`` (strings or message lists)
- ``trl-implicit-preference``: ``chosen`` + ``rejected`` as full conversations (message lists)
- ``hh-rlhf``: ``chosen`` + ``rejected`` strings of "\\n\\nHuman: ...\\n\\nAssistant: ..." dialogues
- ``trl-prompt-completion``: ``prompt`` + ``completion`` (with ``label`` -> kto)
- ``qa``: question/answer columns under any name (``question``, ``query``, ``ask``, ``问题``, ``回答``...)
- ``text``: ``text`` (continued pretraining), also ``.txt`` files

Input keys that no role claims are kept in ``meta``. ``meta._fmt`` remembers the source format, the key
and role names used, and how the question was assembled, so writing a row back in its own format gives
the original object.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from curate.records import Record, RecordError, Turn

# ------------------------------------------------------------------------------------------ roles

ROLE_ALIASES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "bot": "assistant",
    "model": "assistant",
    "chatgpt": "assistant",
    "system": "system",
    "function_call": "function_call",
    "observation": "tool",
    "tool": "tool",
    "function": "tool",
    "ipython": "tool",
}

# Column-name synonyms for plain question/answer tables, in priority order.
QUESTION_NAMES = [
    "question",
    "questions",
    "q",
    "query",
    "ask",
    "prompt",
    "instruction",
    "input_text",
    "user",
    "用户问题",
    "问题",
    "提问",
    "问",
    "咨询",
    "query_text",
    "title",
    "标题",
    "主题",
    # Traditional Chinese (Big5 exports from Taiwan and Hong Kong)
    "問題",
    "用戶問題",
    "提問",
    "諮詢",
    "標題",
    "主題",
]
ANSWER_NAMES = [
    "answer",
    "answers",
    "a",
    "response",
    "output",
    "reply",
    "completion",
    "target",
    "assistant",
    "回答",
    "答案",
    "答复",
    "回复",
    "答",
    "解答",
    "response_text",
    "答覆",
    "回覆",
]
SYSTEM_NAMES = ["system", "system_prompt", "系统提示", "系统"]


def _norm_key(k: str) -> str:
    return re.sub(r"[\s_\-]+", "", str(k).strip().lower())


def _as_text(value: Any, field: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)):
        if isinstance(value, float) and value != value:  # NaN
            return None
        return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)
    if isinstance(value, list) and all(isinstance(p, dict) for p in value):
        return _parts_text(value, field)
    raise RecordError(f"expected text, got {type(value).__name__}", field)


def _parts_text(parts: list[dict], field: str) -> str:
    """OpenAI/LLaMA-Factory v1 content parts: [{"type": "text", "text"|"value": ...}]."""
    texts = []
    for p in parts:
        kind = p.get("type", "text")
        value = p.get("text", p.get("value", ""))
        if kind == "text":
            texts.append(str(value))
        elif kind in ("reasoning", "thinking"):
            texts.append(f"<think>\n{value}\n</think>\n\n")
        elif kind in ("tool_call", "function_call"):
            texts.append(value if isinstance(value, str) else json.dumps(value, ensure_ascii=False))
        else:
            raise RecordError(f"non-text content part ({kind}) is not supported", field)
    return "".join(texts)


def _label(value: Any, field: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    s = str(value).strip().lower()
    if s in {"true", "1", "good", "yes", "positive", "desirable", "好", "是"}:
        return True
    if s in {"false", "0", "bad", "no", "negative", "undesirable", "差", "否"}:
        return False
    raise RecordError(f"cannot read {value!r} as a good/bad label", field)


# ------------------------------------------------------------------------------------------ detection


def detect_format(keys: set[str]) -> str | None:
    """Format from the keys of the first rows; None when no format fits."""
    k = set(keys)
    if {"id", "kind"} <= k and ("question" in k or "text" in k):
        return "canonical"
    if "chosen_messages" in k and "rejected_messages" in k:
        return "llamafactory-v1-preference"
    if "conversations" in k and ("chosen" in k and "rejected" in k):
        return "llamafactory-preference"
    if "conversations" in k:
        return "sharegpt"
    if "messages" in k:
        return "openai"
    if "instruction" in k and ("output" in k or ("chosen" in k and "rejected" in k)):
        return "alpaca"
    if {"prompt", "chosen", "rejected"} <= k:
        return "trl-preference"
    if {"chosen", "rejected"} <= k:
        return "implicit-preference"
    if {"prompt", "completion"} <= k:
        return "trl-prompt-completion"
    if (
        "text" in k
        and len(k - {"text", "id", "meta", "source", "url", "title", "timestamp"}) <= 2
        and not _qa_columns(k)[1]
    ):
        return "text"
    q, a = _qa_columns(k)
    if q and a:
        return "qa"
    return None


def _qa_columns(keys: set[str]) -> tuple[str | None, str | None]:
    normed = {_norm_key(x): x for x in keys}
    q = next((normed[n] for n in map(_norm_key, QUESTION_NAMES) if n in normed), None)
    a = next((normed[n] for n in map(_norm_key, ANSWER_NAMES) if n in normed and normed[n] != q), None)
    return q, a


def _system_column(keys: set[str]) -> str | None:
    normed = {_norm_key(x): x for x in keys}
    return next((normed[n] for n in map(_norm_key, SYSTEM_NAMES) if n in normed), None)


def explain_qa(keys: set[str], mapping: dict[str, list[str]]) -> dict[str, list[str]]:
    """Resolve column roles for a plain table: user mapping first, then synonyms."""
    roles: dict[str, list[str]] = {k: list(v) for k, v in mapping.items()}
    q, a = _qa_columns(keys - {c for cols in roles.values() for c in cols})
    if "question" not in roles and q:
        roles["question"] = [q]
    if "answer" not in roles and a:
        roles["answer"] = [a]
    if "system" not in roles:
        s = _system_column(keys)
        if s and s not in roles.get("question", []) + roles.get("answer", []):
            roles["system"] = [s]
    return roles


# ------------------------------------------------------------------------------------------ converters


def _meta(row: dict, used: set[str]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in used}


def _turns(messages: Any, field: str, role_key: str | None = None, content_key: str | None = None):
    """Messages -> (system, [Turn], role names seen, tags)."""
    if not isinstance(messages, list):
        raise RecordError(f"expected a list of messages, got {type(messages).__name__}", field)
    if not messages:
        raise RecordError("empty conversation", field)
    turns: list[Turn] = []
    role_names: dict[str, str] = {}
    tags = None
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            raise RecordError(f"message {i} is a {type(m).__name__}, not an object", field)
        rk = role_key or ("from" if "from" in m else "role")
        ck = content_key or ("value" if "value" in m and "content" not in m else "content")
        tags = tags or (rk, ck)
        if rk not in m:
            raise RecordError(f"message {i} has no {rk!r}", f"{field}[{i}]")
        orig_role = str(m[rk])
        role = ROLE_ALIASES.get(orig_role.lower())
        if role is None:
            raise RecordError(f"message {i} has unknown role {orig_role!r}", f"{field}[{i}].{rk}")
        role_names.setdefault(role, orig_role)
        content = m.get(ck)
        content = "" if content is None else _as_text(content, f"{field}[{i}].{ck}")
        extra = {k: v for k, v in m.items() if k not in (rk, ck)}
        if isinstance(m.get(ck), list):
            extra["_parts"] = m[ck]  # content parts, restored verbatim on export
        if m.get(ck) is None and ck in m:
            extra["_null_content"] = True
        turns.append(Turn(role, content, extra or None))
    return turns, role_names, tags


class _SystemExtra:
    value: dict | None = None


# extra keys of the system message of the conversation split last (restored on export)
_SYSTEM_EXTRA = _SystemExtra()


def _split_conversation(turns: list[Turn], field: str, need_answer: bool = True):
    """[system?, ..., user, assistant] -> (system, history, question, answer)."""
    system = None
    if turns and turns[0].role == "system":
        system = turns[0].content
        _SYSTEM_EXTRA.value = turns[0].extra
        turns = turns[1:]
    else:
        _SYSTEM_EXTRA.value = None
    if need_answer:
        if len(turns) < 2:
            raise RecordError("conversation needs a user turn and an answer", field)
        last, prev = turns[-1], turns[-2]
        if last.role not in ("assistant", "function_call"):
            raise RecordError(f"conversation ends with a {last.role} turn, not an answer", field)
        if prev.role not in ("user", "tool"):
            raise RecordError(f"the turn before the answer is {prev.role}, not user", field)
        return system, turns[:-2], prev, last
    if not turns:
        raise RecordError("conversation has no user turn", field)
    last = turns[-1]
    if last.role not in ("user", "tool"):
        raise RecordError(f"prompt ends with a {last.role} turn, not a user turn", field)
    return system, turns[:-1], last, None


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


def _pref_side(value: Any, field: str) -> tuple[str, Any]:
    """A chosen/rejected value: string, message object, or list of messages (take the last)."""
    if isinstance(value, str):
        return value, "str"
    if isinstance(value, dict):
        ck = "value" if "value" in value and "content" not in value else "content"
        return _as_text(value.get(ck), f"{field}.{ck}") or "", {
            "obj": {k: v for k, v in value.items() if k != ck},
            "ck": ck,
        }
    if isinstance(value, list) and value and isinstance(value[-1], dict):
        if len(value) != 1:
            raise RecordError("expected a single answer message", field)
        text, how = _pref_side(value[0], field)
        return text, {"list": how}
    if value is None:
        raise RecordError("missing", field)
    raise RecordError(f"unsupported value of type {type(value).__name__}", field)


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


def _alpaca_question(row: dict) -> tuple[str, dict]:
    instruction = _as_text(row.get("instruction"), "instruction") or ""
    inp = _as_text(row.get("input"), "input") or ""
    parts = {"instruction": instruction, "input": row.get("input")}
    # instruction and input joined with a newline, the empty ones left out (an empty instruction with
    # an input is the input alone, not "\ninput")
    return "\n".join(p for p in (instruction, inp) if p), parts


def _alpaca_history(value: Any) -> list[Turn]:
    if value in (None, ""):
        return []
    if not isinstance(value, list):
        raise RecordError("history must be a list of [question, answer] pairs", "history")
    turns = []
    for i, pair in enumerate(value):
        if not (isinstance(pair, list | tuple) and len(pair) == 2):
            raise RecordError(f"history[{i}] is not a [question, answer] pair", "history")
        turns += [
            Turn("user", _as_text(pair[0], f"history[{i}][0]") or ""),
            Turn("assistant", _as_text(pair[1], f"history[{i}][1]") or ""),
        ]
    return turns


def from_alpaca(row: dict, ctx: dict) -> Record:
    question, parts = _alpaca_question(row)
    history = _alpaca_history(row.get("history"))
    system = _as_text(row.get("system"), "system")
    used = {"instruction", "input", "output", "system", "history", "chosen", "rejected", "kto_tag"}
    meta = _meta(row, used)
    fmt = {
        "format": "alpaca",
        "parts": parts,
        "keys": [k for k in ("input", "system", "history") if k in row],
    }
    meta["_fmt"] = fmt
    if "chosen" in row and "rejected" in row and "output" not in row:
        chosen, ch = _pref_side(row["chosen"], "chosen")
        rejected, rj = _pref_side(row["rejected"], "rejected")
        fmt.update(chosen=ch, rejected=rj)
        return Record(
            "preference",
            question=question,
            chosen=chosen,
            rejected=rejected,
            system=system,
            history=history,
            meta=meta,
        )
    if "output" not in row:
        raise RecordError("missing output", "output")
    # one rule for every format: a null answer is an empty answer, like an empty CSV/XLSX cell (kept;
    # the empty-turn rule drops it with its reason); the null is remembered for the round trip
    answer = _as_text(row["output"], "output")
    if answer is None:
        answer, fmt["output_null"] = "", True
    if "kto_tag" in row:
        return Record(
            "kto",
            question=question,
            answer=answer,
            system=system,
            history=history,
            meta=meta,
            label=_label(row["kto_tag"], "kto_tag"),
        )
    return Record("sft", question=question, answer=answer, system=system, history=history, meta=meta)


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


def from_text(row: dict, ctx: dict) -> Record:
    key = ctx.get("roles", {}).get("text", ["text"])
    text = "\n".join(_as_text(row.get(k), k) or "" for k in key)
    meta = _meta(row, set(key))
    meta["_fmt"] = {"format": "text", "keys": key}
    return Record("text", text=text, meta=meta)


def from_qa(row: dict, ctx: dict) -> Record:
    roles: dict[str, list[str]] = ctx["roles"]

    def get(field: str) -> str | None:
        cols = roles.get(field)
        if not cols:
            return None
        vals = [_as_text(row.get(c), c) for c in cols]
        present = [v for v in vals if v not in (None, "")]
        if len(cols) == 1:
            return vals[0]
        return "\n".join(present) if present else (None if all(v is None for v in vals) else "")

    images = row.get("__images__") or []
    question = get("question")
    answer = get("answer")
    a_cols = roles.get("answer", [])
    if any(c in images for c in a_cols) and not answer:
        raise RecordError("the answer cell holds an image, not text (images are not read)", a_cols[0])
    q_cols = roles.get("question", [])
    if any(c in images for c in q_cols) and not question:
        raise RecordError("the question cell holds an image, not text", q_cols[0])
    if question is None:
        raise RecordError("question cell is missing", q_cols[0] if q_cols else "question")
    used = {c for cols in roles.values() for c in cols} | {"__images__"}
    meta = _meta(row, used)
    if images:
        meta["_images_in"] = images
    meta["_fmt"] = {"format": "qa", "roles": roles}
    label = roles.get("label")
    kind = "kto" if label else "sft"
    rec = Record(
        kind, question=question, answer=answer if answer is not None else "", system=get("system"), meta=meta
    )
    if "chosen" in roles and "rejected" in roles:
        rec = Record(
            "preference",
            question=question,
            chosen=get("chosen") or "",
            rejected=get("rejected") or "",
            system=get("system"),
            meta=meta,
        )
    if label:
        rec.label = _label(row.get(label[0]), label[0])
    return rec


CONVERTERS: dict[str, Callable[[dict, dict], Record]] = {
    "openai": from_openai,
    "sharegpt": from_sharegpt,
    "llamafactory-preference": from_llamafactory_preference,
    "llamafactory-v1-preference": from_llamafactory_v1_preference,
    "alpaca": from_alpaca,
    "trl-preference": from_trl_preference,
    "implicit-preference": from_implicit_preference,
    "hh-rlhf": from_hh_rlhf,
    "trl-prompt-completion": from_trl_prompt_completion,
    "text": from_text,
    "qa": from_qa,
}
FORMAT_ALIASES = {
    "messages": "openai",
    "trl-messages": "openai",
    "kto": "openai",
    "preference": "trl-preference",
    "dpo": "trl-preference",
    "prompt-completion": "trl-prompt-completion",
    "plain": "qa",
    "llamafactory-dpo": "llamafactory-preference",
    "pt": "text",
}
FORMATS = sorted(set(CONVERTERS) | {"canonical"})


def convert(row: dict, fmt: str, ctx: dict) -> Record:
    try:
        return CONVERTERS[fmt](row, ctx)
    except KeyError as exc:
        raise RecordError(f"missing field {exc.args[0]!r}", str(exc.args[0])) from None


# ------------------------------------------------------------------------------------------ export


# message keys that carry tool-calling meaning: kept when a row is written in another layout (other keys
# of a message stay with its own format)
TOOL_KEYS = ("tool_calls", "tool_call_id", "name")


def _tool_extra(extra: Any) -> dict[str, Any]:
    if not isinstance(extra, dict):
        return {}
    out = {k: v for k, v in extra.items() if k in TOOL_KEYS}
    if "tool_calls" in out and extra.get("_null_content"):
        out["_null_content"] = True
    return out


def semantic_hints(hints: Any, question: bool = True, answer: bool = True) -> dict[str, Any]:
    """The part of ``meta._fmt`` that describes the conversation, not the input file's shape: the roles
    of the final turns (a tool result as the question, a function call as the answer) and their tool
    keys. An export in a uniform layout, and a variant that keeps those turns, carry it."""
    out: dict[str, Any] = {}
    if not isinstance(hints, dict):
        return out
    for side, keep, plain in (("q", question, "user"), ("a", answer, "assistant")):
        if not keep:
            continue
        role = hints.get(f"{side}_role")
        if role and role != plain:
            out[f"{side}_role"] = role
        extra = _tool_extra(hints.get(f"{side}_extra"))
        if extra:
            out[f"{side}_extra"] = extra
    return out


def _function_call_value(calls: Any, text: str | None) -> str:
    """OpenAI ``tool_calls`` -> the value of a ShareGPT ``function_call`` turn (LLaMA-Factory's form:
    ``{"name": ..., "arguments": {...}}``, a list of them for parallel calls)."""
    if text and text.strip():
        raise RecordError(
            "an assistant turn holds both text and tool_calls; ShareGPT has no form for it", "tool_calls"
        )
    if not isinstance(calls, list) or not calls:
        raise RecordError("tool_calls is not a list of calls", "tool_calls")
    out = []
    for c in calls:
        fn = c.get("function", c) if isinstance(c, dict) else None
        if not isinstance(fn, dict) or not fn.get("name"):
            raise RecordError("a tool call without a function name", "tool_calls")
        args = fn.get("arguments")
        if isinstance(args, str):
            try:
                args = json.loads(args)
            except json.JSONDecodeError:
                pass
        out.append({"name": fn["name"], "arguments": {} if args is None else args})
    return json.dumps(out[0] if len(out) == 1 else out, ensure_ascii=False)


def _restore_turn(
    t: dict,
    tags: tuple[str, str],
    role_names: dict[str, str],
    default_roles: dict[str, str],
    calls_as_function: bool = False,
):
    """A canonical turn -> a message of the output format. ``calls_as_function``: an assistant turn
    with OpenAI ``tool_calls`` becomes a ShareGPT ``function_call`` turn whose value is the call."""
    extra = json.loads(t["extra"]) if t.get("extra") else {}
    rk, ck = tags
    canon = t["role"]
    content = t["content"]
    if calls_as_function and canon in ("assistant", "function_call") and extra.get("tool_calls"):
        content = _function_call_value(extra.pop("tool_calls"), content)
        extra.pop("_null_content", None)
        extra.pop("_parts", None)
        canon = "function_call"
    role = role_names.get(canon, default_roles.get(canon, canon))
    parts = extra.pop("_parts", None)
    if extra.pop("_null_content", False):
        content = None
    if parts is not None and _parts_text(parts, "content") == content:
        content = parts
    out = {rk: role, ck: content}
    out.update(extra)
    return out


SHAREGPT_ROLES = {
    "user": "human",
    "assistant": "gpt",
    "system": "system",
    "tool": "observation",
    "function_call": "function_call",
}
OPENAI_ROLES = {
    "user": "user",
    "assistant": "assistant",
    "system": "system",
    "tool": "tool",
    "function_call": "assistant",
}


def _alpaca_check(row: dict, hints: dict) -> None:
    """Alpaca holds [question, answer] pairs only: tool turns, or a history that is not user/assistant
    pairs, have no Alpaca form (the row is dropped with this reason rather than flattened)."""
    if hints.get("q_role", "user") != "user":
        raise RecordError(f"the question is a {hints['q_role']} turn; Alpaca has no tool turns", "question")
    if hints.get("a_role", "assistant") != "assistant" or _tool_extra(hints.get("a_extra")).get("tool_calls"):
        raise RecordError("the answer is a function call; Alpaca has no tool turns", "answer")
    history = row.get("history") or []
    if len(history) % 2:
        raise RecordError(f"a history of {len(history)} turns is not [question, answer] pairs", "history")
    for i, t in enumerate(history):
        want = "user" if i % 2 == 0 else "assistant"
        extra = json.loads(t["extra"]) if t.get("extra") else {}
        if t["role"] != want or extra.get("tool_calls"):
            what = "a tool call" if extra.get("tool_calls") else f"a {t['role']} turn"
            raise RecordError(f"history turn {i} is {what}, not {want}; Alpaca history is pairs", "history")


def to_format(row: dict, fmt: str) -> dict:
    """A canonical row (dict) -> one object in ``fmt``. Uses ``meta._fmt`` to restore the original
    shape when the row came from that format; extra meta keys are written back as top-level fields.
    The roles of the final turns (``q_role``/``a_role``: a tool result, a function call) and their tool
    keys apply in every format (see :func:`semantic_hints`)."""
    meta = json.loads(row["meta"]) if isinstance(row.get("meta"), str) else dict(row.get("meta") or {})
    hints = meta.pop("_fmt", {}) or {}
    same = hints.get("format") == fmt
    if same and isinstance(meta.get("_original"), dict):
        row = restore_original(row, meta["_original"])
    for k in [k for k in meta if k.startswith("_")]:
        meta.pop(k)
    kind = row["kind"]
    history = row.get("history") or []
    out: dict[str, Any]
    if fmt == "text":
        if kind != "text":
            raise RecordError(f"a {kind} row cannot be written as plain text", "kind")
        keys = hints.get("keys", ["text"]) if same else ["text"]
        out = {keys[0]: row["text"]}
    elif kind == "text":
        raise RecordError(f"a text row cannot be written as {fmt}", "kind")
    elif fmt in ("openai", "sharegpt"):
        if kind == "preference":
            raise RecordError(
                f"a preference row cannot be written as {fmt}; use trl-preference or llamafactory-preference",
                "kind",
            )
        roles_default = SHAREGPT_ROLES if fmt == "sharegpt" else OPENAI_ROLES
        role_names = hints.get("roles", {}) if same else {}
        tags = (
            tuple(hints.get("tags", ("from", "value")))
            if fmt == "sharegpt" and same
            else (("from", "value") if fmt == "sharegpt" else ("role", "content"))
        )
        msgs = []
        sys_in_turns = fmt == "openai" or (same and hints.get("system_in_turns"))
        if row.get("system") is not None and sys_in_turns:
            s_extra = json.dumps(hints["s_extra"]) if same and hints.get("s_extra") else None
            msgs.append(
                _restore_turn(
                    {"role": "system", "content": row["system"], "extra": s_extra},
                    tags,
                    role_names,
                    roles_default,
                )
            )
        calls = fmt == "sharegpt" and not same
        msgs += [_restore_turn(t, tags, role_names, roles_default, calls) for t in history]
        q_extra = _extra_json(hints, "q_extra", same)
        a_extra = _extra_json(hints, "a_extra", same)
        q_role = hints.get("q_role", "user")
        msgs.append(
            _restore_turn(
                {"role": q_role, "content": row["question"], "extra": q_extra},
                tags,
                role_names,
                roles_default,
            )
        )
        a_role = hints.get("a_role", "assistant")
        msgs.append(
            _restore_turn(
                {"role": a_role, "content": row["answer"], "extra": a_extra},
                tags,
                role_names,
                roles_default,
                calls,
            )
        )
        if fmt == "openai":
            out = {"messages": msgs}
            if kind == "kto":
                out["label"] = bool(row["label"])
        else:
            out = {"conversations": msgs}
            if row.get("system") is not None and not sys_in_turns:
                out["system"] = row["system"]
            if kind == "kto":
                out[hints.get("kto_key", "kto_tag") if same else "kto_tag"] = bool(row["label"])
    elif fmt == "alpaca":
        _alpaca_check(row, hints)
        parts = hints.get("parts") if same else None
        if parts and _alpaca_question(parts)[0] == row["question"]:
            out = {"instruction": parts["instruction"]}
            if "input" in hints.get("keys", []):
                out["input"] = parts["input"]
        else:
            out = {"instruction": row["question"], "input": ""}
        keys = hints.get("keys", ["input", "system", "history"]) if same else ["input", "system", "history"]
        if kind == "preference":
            out["chosen"] = _restore_side(row["chosen"], hints.get("chosen") if same else "str")
            out["rejected"] = _restore_side(row["rejected"], hints.get("rejected") if same else "str")
        else:
            out["output"] = None if same and hints.get("output_null") and not row["answer"] else row["answer"]
        if row.get("system") is not None or "system" in keys and same:
            if row.get("system") is not None:
                out["system"] = row["system"]
        if history or ("history" in keys and same):
            pairs = []
            for i in range(0, len(history) - 1, 2):
                pairs.append([history[i]["content"], history[i + 1]["content"]])
            out["history"] = pairs
        if kind == "kto":
            out["kto_tag"] = bool(row["label"])
    elif fmt == "llamafactory-preference":
        if kind != "preference":
            raise RecordError(f"a {kind} row is not a preference pair", "kind")
        tags = tuple(hints.get("tags", ("from", "value"))) if same else ("from", "value")
        role_names = hints.get("roles", {}) if same else {}
        msgs = []
        if row.get("system") is not None and same and hints.get("system_in_turns"):
            s_extra = json.dumps(hints["s_extra"]) if same and hints.get("s_extra") else None
            msgs.append(
                _restore_turn(
                    {"role": "system", "content": row["system"], "extra": s_extra},
                    tags,
                    role_names,
                    SHAREGPT_ROLES,
                )
            )
        msgs += [_restore_turn(t, tags, role_names, SHAREGPT_ROLES, not same) for t in history]
        q_extra = _extra_json(hints, "q_extra", same)
        msgs.append(
            _restore_turn(
                {"role": hints.get("q_role", "user"), "content": row["question"], "extra": q_extra},
                tags,
                role_names,
                SHAREGPT_ROLES,
            )
        )
        out = {"conversations": msgs}
        if row.get("system") is not None and not (same and hints.get("system_in_turns")):
            out["system"] = row["system"]
        a_role = role_names.get("assistant", "gpt")
        default_side = {"obj": {tags[0]: a_role}, "ck": tags[1]}
        out["chosen"] = _restore_side(row["chosen"], hints.get("chosen") if same else default_side)
        out["rejected"] = _restore_side(row["rejected"], hints.get("rejected") if same else default_side)
    elif fmt == "llamafactory-v1-preference" and same:
        out = dict(hints["original"])
    elif fmt in ("trl-preference", "trl-prompt-completion", "implicit-preference", "hh-rlhf"):
        conversational = fmt != "hh-rlhf" and (
            bool(history)
            or row.get("system") is not None
            or (same and isinstance(hints.get("prompt"), dict))
            or fmt == "implicit-preference"
        )
        if fmt == "hh-rlhf":
            if kind != "preference":
                raise RecordError("hh-rlhf holds preference pairs only", "kind")
            prefix = "".join(
                f"\n\n{'Human' if t['role'] == 'user' else 'Assistant'}: {t['content']}" for t in history
            )
            prefix += f"\n\nHuman: {row['question']}\n\nAssistant: "
            out = {"chosen": prefix + row["chosen"], "rejected": prefix + row["rejected"]}
        else:
            from curate.records import messages_of

            prompt: Any = (
                messages_of({**row, "answer": None}, answer_field="", lossless=True)
                if conversational
                else row["question"]
            )
            if fmt == "implicit-preference":
                out = {
                    "chosen": prompt + [{"role": "assistant", "content": row["chosen"]}],
                    "rejected": prompt + [{"role": "assistant", "content": row["rejected"]}],
                }
            elif fmt == "trl-preference":
                if kind != "preference":
                    raise RecordError(f"a {kind} row is not a preference pair", "kind")
                side = (lambda s: [{"role": "assistant", "content": s}]) if conversational else (lambda s: s)
                out = {"prompt": prompt, "chosen": side(row["chosen"]), "rejected": side(row["rejected"])}
            else:
                if kind == "preference":
                    raise RecordError("a preference row has no single completion", "kind")
                comp: Any = (
                    [{"role": "assistant", "content": row["answer"]}] if conversational else row["answer"]
                )
                out = {"prompt": prompt, "completion": comp}
                if kind == "kto":
                    out["label"] = bool(row["label"])
    elif fmt == "qa":
        roles = hints.get("roles", {}) if same else {}
        out = {}

        def put(field: str, value: Any, default: str):
            cols = roles.get(field) or [default]
            if len(cols) == 1:
                out[cols[0]] = value
            else:  # joined columns cannot be split back reliably: keep originals from meta
                out[default] = value

        if row.get("system") is not None or roles.get("system"):
            put("system", row.get("system"), "system")
        put("question", row["question"], "question")
        if kind == "preference":
            put("chosen", row["chosen"], "chosen")
            put("rejected", row["rejected"], "rejected")
        else:
            put("answer", row["answer"], "answer")
        if kind == "kto":
            put("label", bool(row["label"]), "label")
    else:
        raise RecordError(f"unknown output format {fmt!r}", "format")
    for k, v in meta.items():
        out.setdefault(k, v)
    return out


def restore_original(row: dict, original: dict) -> dict:
    """The row with the text that ingest repaired (mojibake) put back as it was read (``meta._original``:
    field -> text, ``history`` -> {turn index: text}), so a row written back in its own format is the
    input, byte for byte."""
    row = dict(row)
    for field, text in original.items():
        if field == "history" and isinstance(text, dict):
            turns = [dict(t) for t in row.get("history") or []]
            for i, content in text.items():
                if int(i) < len(turns):
                    turns[int(i)]["content"] = content
            row["history"] = turns
        elif field in row:
            row[field] = text
    return row


def _extra_json(hints: dict, key: str, same: bool) -> str | None:
    """The final turn's extra keys: all of them in the row's own format, the tool keys in another."""
    extra = hints.get(key) if same else _tool_extra(hints.get(key))
    return json.dumps(extra) if extra else None


def _restore_side(text: str, how: Any) -> Any:
    if how in (None, "str"):
        return text
    if isinstance(how, dict) and "list" in how:
        return [_restore_side(text, how["list"])]
    if isinstance(how, dict) and "obj" in how:
        obj = dict(how["obj"])
        obj[how.get("ck", "content")] = text
        return obj
    return text
