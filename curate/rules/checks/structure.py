"""Conversation structure: empty or whitespace-only turns, broken role order, turn counts."""

from __future__ import annotations

from typing import Any

import polars as pl

from curate.core import vocab
from curate.rules.checks.base import Check, Hit, Param, as_bool

# whitespace, zero-width characters, BOM, ideographic space, NBSP
BLANK = r"^[\s\u200b\u200c\u200d\u2060\ufeff\u3000\u00a0]*$"

# the kinds that must have each text field (null there counts as empty): system is optional everywhere
REQUIRED = {f: tuple(k for k in vocab.KINDS if f in vocab.CONTENT_FIELDS[k]) for f in vocab.TEXT_FIELDS}


class Empty(Check):
    name = "empty"
    help = "Empty or whitespace-only text (zero-width and ideographic spaces count as blank)."
    default_fields = (*vocab.TEXT_FIELDS, "history")
    params: dict[str, Param] = {}

    def detect(self, s: pl.Series) -> pl.Series:
        # nulls are handled by the engine (required fields only); here: present but blank
        return as_bool(s.cast(pl.Utf8).str.contains(BLANK))

    def explain(self, text: str) -> Hit | None:
        return Hit("empty" if text == "" else f"whitespace only ({len(text)} characters)", 0, len(text))


class RoleOrder(Check):
    name = "role_order"
    help = (
        "Broken multi-turn structure: turns must alternate user/assistant (tool results may follow a "
        "function call), a system turn only at the start, the final question follows an assistant turn."
    )
    default_fields = ("history",)
    row_level = True
    params = {
        "max_turns": Param((int,), None, "More user+assistant turns than this fires (null: no limit)."),
        "allow_system_in_history": Param((bool,), False, "Accept a system turn inside the history."),
    }

    def detect_rows(self, frame: pl.DataFrame) -> pl.Series:
        if "history" not in frame.columns:
            return pl.Series([False] * frame.height)
        n = frame["history"].list.len().fill_null(0)
        candidates = n > 0
        fired = [False] * frame.height
        for i in candidates.arg_true().to_list():
            fired[i] = self._problem(frame["history"][i].to_list(), frame["question"][i]) is not None
        return pl.Series(fired, dtype=pl.Boolean)

    def _problem(self, turns: list[dict[str, Any]], question: str | None) -> tuple[int, str] | None:
        prev = None
        count = 0
        for k, t in enumerate(turns):
            role = t.get("role")
            if role == "system":
                if k != 0 and not self.p["allow_system_in_history"]:
                    return k, f"system turn at position {k + 1} inside the conversation"
                continue
            if role in ("user", "assistant"):
                count += 1
            if role == "user" and prev == "user":
                return k, f"two user turns in a row (turns {k} and {k + 1})"
            if role == "assistant" and prev in ("assistant",):
                return k, f"two assistant turns in a row (turns {k} and {k + 1})"
            if role == "assistant" and prev is None:
                return k, "the conversation starts with an assistant turn"
            if role == "tool" and prev not in ("function_call", "tool"):
                return k, f"tool result at turn {k + 1} without a preceding function call"
            if role in ("user", "assistant", "function_call", "tool"):
                prev = role
        if prev == "user" and question is not None:
            return len(turns) - 1, "the final question follows another user turn"
        if prev == "function_call" and question is None:
            # (a tool result that ends the history is read as the final `question` by curate.io)
            return len(turns) - 1, "a function call is not followed by its tool result"
        count += 2  # the final question and answer
        if self.p["max_turns"] is not None and count > self.p["max_turns"]:
            return len(turns) - 1, f"{count} turns > max_turns {self.p['max_turns']}"
        return None

    def explain_row(self, row: dict[str, Any]) -> tuple[str, Hit] | None:
        prob = self._problem(row.get("history") or [], row.get("question"))
        if prob is None:
            return None
        k, reason = prob
        content = (row["history"][k] or {}).get("content") or ""
        return f"history[{k}]", Hit(reason, 0, len(content), content[:80])
