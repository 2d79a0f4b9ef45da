"""Format detection from the keys of the first rows, and the column roles of a plain question/answer
table (user mapping first, then column-name synonyms in English and Chinese)."""

from __future__ import annotations

import re

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
