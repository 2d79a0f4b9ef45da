"""Conversion back: a canonical row -> one object in an input format (``to_format``), lossless when
the row came from that format (``meta._fmt`` remembers its shape); the tool-calling meaning of the
final turns carries over to every other format (:func:`semantic_hints`)."""

from __future__ import annotations

import json
from typing import Any

from curate.io.formats.alpaca import _alpaca_question
from curate.io.formats.common import _parts_text
from curate.records import RecordError, messages_of


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
    out: dict[str, Any]
    if fmt == "text":
        if kind != "text":
            raise RecordError(f"a {kind} row cannot be written as plain text", "kind")
        keys = hints.get("keys", ["text"]) if same else ["text"]
        out = {keys[0]: row["text"]}
    elif kind == "text":
        raise RecordError(f"a text row cannot be written as {fmt}", "kind")
    elif fmt == "llamafactory-v1-preference" and same:
        out = dict(hints["original"])
    elif fmt in _WRITERS:
        out = _WRITERS[fmt](row, fmt, hints, same)
    else:
        raise RecordError(f"unknown output format {fmt!r}", "format")
    for k, v in meta.items():
        out.setdefault(k, v)
    return out


def _to_messages(row: dict, fmt: str, hints: dict, same: bool) -> dict[str, Any]:
    """OpenAI ``messages`` or ShareGPT ``conversations`` (an SFT or KTO row)."""
    kind = row["kind"]
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
    sys_in_turns = fmt == "openai" or (same and hints.get("system_in_turns"))
    calls = fmt == "sharegpt" and not same
    msgs = _prompt_messages(row, hints, same, tags, role_names, roles_default, sys_in_turns, calls)
    a_extra = _extra_json(hints, "a_extra", same)
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
    out: dict[str, Any]
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
    return out


def _prompt_messages(
    row: dict,
    hints: dict,
    same: bool,
    tags: tuple,
    role_names: dict[str, str],
    default_roles: dict[str, str],
    system_in_turns: Any,
    calls: bool,
) -> list[dict[str, Any]]:
    """The messages before the answer: the system prompt (when the layout holds it as a turn), the
    history, and the question turn (its role and extra keys from the hints)."""
    msgs = []
    if row.get("system") is not None and system_in_turns:
        s_extra = json.dumps(hints["s_extra"]) if same and hints.get("s_extra") else None
        msgs.append(
            _restore_turn(
                {"role": "system", "content": row["system"], "extra": s_extra},
                tags,
                role_names,
                default_roles,
            )
        )
    msgs += [_restore_turn(t, tags, role_names, default_roles, calls) for t in row.get("history") or []]
    q_extra = _extra_json(hints, "q_extra", same)
    msgs.append(
        _restore_turn(
            {"role": hints.get("q_role", "user"), "content": row["question"], "extra": q_extra},
            tags,
            role_names,
            default_roles,
        )
    )
    return msgs


def _to_alpaca(row: dict, fmt: str, hints: dict, same: bool) -> dict[str, Any]:
    """Alpaca: instruction / input / output (or chosen / rejected) [/ system / history / kto_tag]."""
    kind = row["kind"]
    history = row.get("history") or []
    _alpaca_check(row, hints)
    parts = hints.get("parts") if same else None
    out: dict[str, Any]
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
    return out


def _to_llamafactory_preference(row: dict, fmt: str, hints: dict, same: bool) -> dict[str, Any]:
    """LLaMA-Factory's preference form: ``conversations`` + ``chosen``/``rejected`` message objects."""
    if row["kind"] != "preference":
        raise RecordError(f"a {row['kind']} row is not a preference pair", "kind")
    tags = tuple(hints.get("tags", ("from", "value"))) if same else ("from", "value")
    role_names = hints.get("roles", {}) if same else {}
    sys_in_turns = same and hints.get("system_in_turns")
    msgs = _prompt_messages(row, hints, same, tags, role_names, SHAREGPT_ROLES, sys_in_turns, not same)
    out: dict[str, Any] = {"conversations": msgs}
    if row.get("system") is not None and not (same and hints.get("system_in_turns")):
        out["system"] = row["system"]
    a_role = role_names.get("assistant", "gpt")
    default_side = {"obj": {tags[0]: a_role}, "ck": tags[1]}
    out["chosen"] = _restore_side(row["chosen"], hints.get("chosen") if same else default_side)
    out["rejected"] = _restore_side(row["rejected"], hints.get("rejected") if same else default_side)
    return out


def _to_hh_rlhf(row: dict, fmt: str, hints: dict, same: bool) -> dict[str, Any]:
    """Anthropic hh-rlhf: ``chosen``/``rejected`` as whole "Human: ... Assistant: ..." dialogues."""
    if row["kind"] != "preference":
        raise RecordError("hh-rlhf holds preference pairs only", "kind")
    prefix = "".join(
        f"\n\n{'Human' if t['role'] == 'user' else 'Assistant'}: {t['content']}"
        for t in row.get("history") or []
    )
    prefix += f"\n\nHuman: {row['question']}\n\nAssistant: "
    return {"chosen": prefix + row["chosen"], "rejected": prefix + row["rejected"]}


def _to_trl(row: dict, fmt: str, hints: dict, same: bool) -> dict[str, Any]:
    """TRL's prompt-based forms (trl-preference, trl-prompt-completion) and implicit-prompt preference
    pairs: conversational (message lists) when the row has a history or a system prompt."""
    kind = row["kind"]
    conversational = (
        bool(row.get("history") or [])
        or row.get("system") is not None
        or (same and isinstance(hints.get("prompt"), dict))
        or fmt == "implicit-preference"
    )
    prompt: Any = (
        messages_of({**row, "answer": None}, answer_field="", lossless=True)
        if conversational
        else row["question"]
    )
    out: dict[str, Any]
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
        comp: Any = [{"role": "assistant", "content": row["answer"]}] if conversational else row["answer"]
        out = {"prompt": prompt, "completion": comp}
        if kind == "kto":
            out["label"] = bool(row["label"])
    return out


def _to_qa(row: dict, fmt: str, hints: dict, same: bool) -> dict[str, Any]:
    """A plain question/answer row under the row's own column names (the defaults otherwise)."""
    kind = row["kind"]
    roles = hints.get("roles", {}) if same else {}
    out: dict[str, Any] = {}

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
    return out


# output format -> its writer (text and the v1 preference form are written by to_format itself)
_WRITERS = {
    "openai": _to_messages,
    "sharegpt": _to_messages,
    "alpaca": _to_alpaca,
    "llamafactory-preference": _to_llamafactory_preference,
    "trl-preference": _to_trl,
    "trl-prompt-completion": _to_trl,
    "implicit-preference": _to_trl,
    "hh-rlhf": _to_hh_rlhf,
    "qa": _to_qa,
}


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
