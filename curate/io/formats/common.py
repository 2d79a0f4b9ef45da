"""What the readers of every format share: role names, text values (strings, numbers, content parts),
good/bad labels, conversations split into system, history, question and answer, preference sides."""

from __future__ import annotations

import json
from typing import Any

from curate.records import RecordError, Turn

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
