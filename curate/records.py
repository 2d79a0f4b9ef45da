"""The canonical records every stage reads and writes.

One polars schema serves all record kinds so that stages, caches and exports never guess:

==========  ========================================================  =========================
column      meaning                                                   kinds
==========  ========================================================  =========================
id          16 hex chars: sha256 of the normalised content            all
kind        ``sft`` | ``preference`` | ``kto`` | ``text``             all
source      struct {file, line, sheet}: where the row came from       all
system      system prompt (or null)                                   sft, preference, kto
history     earlier turns: list of {role, content, extra}             sft, preference, kto
question    the final user turn                                       sft, preference, kto
answer      the final assistant turn                                  sft, kto
chosen      preferred final answer                                    preference
rejected    dispreferred final answer                                 preference
label       true = good, false = bad (KTO unpaired feedback)          kto
text        plain text for continued pretraining                      text
meta        JSON object (string): every other input field, kept       all
==========  ========================================================  =========================

Stages add columns (scores, ``flags``) but never change these meanings. ``meta`` is free-form; keys that
start with ``_`` are reserved for tamis (``_fmt`` holds what is needed to write a row back in its
original format losslessly).

Roles in ``history`` are canonical: ``user``, ``assistant``, ``system``, ``tool`` (a tool's result,
ShareGPT ``observation``), ``function_call`` (an assistant turn that calls a tool). ``extra`` holds any
other keys of the original message as a JSON string (``tool_calls``, ``name``, ``loss_weight``...).
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from curate.core import vocab

KINDS = vocab.KINDS

TURN = pl.Struct({"role": pl.Utf8, "content": pl.Utf8, "extra": pl.Utf8})
SOURCE = pl.Struct({"file": pl.Utf8, "line": pl.Int64, "sheet": pl.Utf8})

SCHEMA: dict[str, pl.DataType] = {
    "id": pl.Utf8,
    "kind": pl.Utf8,
    "source": SOURCE,
    "system": pl.Utf8,
    "history": pl.List(TURN),
    "question": pl.Utf8,
    "answer": pl.Utf8,
    "chosen": pl.Utf8,
    "rejected": pl.Utf8,
    "label": pl.Boolean,
    "text": pl.Utf8,
    "meta": pl.Utf8,
}
CORE_COLUMNS = tuple(SCHEMA)

# Which text fields carry content for each kind (used by ids, dedup, rules and stats).
CONTENT_FIELDS = vocab.CONTENT_FIELDS


class RecordError(ValueError):
    """A row that cannot become a canonical record; ``field`` names the offending input field."""

    def __init__(self, reason: str, field: str | None = None):
        super().__init__(reason)
        self.reason = reason
        self.field = field


@dataclass
class Turn:
    role: str
    content: str
    extra: dict[str, Any] | None = None

    def as_row(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "content": self.content,
            "extra": json.dumps(self.extra, ensure_ascii=False, sort_keys=True) if self.extra else None,
        }


@dataclass
class Record:
    kind: str
    question: str | None = None
    answer: str | None = None
    system: str | None = None
    history: list[Turn] = field(default_factory=list)
    chosen: str | None = None
    rejected: str | None = None
    label: bool | None = None
    text: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    source_file: str | None = None
    source_line: int | None = None
    source_sheet: str | None = None

    def validate(self) -> None:
        if self.kind not in KINDS:
            raise RecordError(f"unknown kind {self.kind!r}", "kind")
        if self.kind == "text":
            if self.text is None:
                raise RecordError("no text", "text")
            return
        if self.question is None:
            raise RecordError("no question (final user turn)", "question")
        if self.kind in ("sft", "kto") and self.answer is None:
            raise RecordError("no answer (final assistant turn)", "answer")
        if self.kind == "kto" and self.label is None:
            raise RecordError("no good/bad label", "label")
        if self.kind == "preference":
            if self.chosen is None:
                raise RecordError("no chosen answer", "chosen")
            if self.rejected is None:
                raise RecordError("no rejected answer", "rejected")

    def record_id(self) -> str:
        return record_id(
            self.kind,
            system=self.system,
            history=[(t.role, t.content) for t in self.history],
            question=self.question,
            answer=self.answer,
            chosen=self.chosen,
            rejected=self.rejected,
            label=self.label,
            text=self.text,
        )

    def as_row(self) -> dict[str, Any]:
        self.validate()
        return {
            "id": self.record_id(),
            "kind": self.kind,
            "source": {"file": self.source_file, "line": self.source_line, "sheet": self.source_sheet},
            "system": self.system,
            "history": [t.as_row() for t in self.history],
            "question": self.question,
            "answer": self.answer,
            "chosen": self.chosen,
            "rejected": self.rejected,
            "label": self.label,
            "text": self.text,
            "meta": json.dumps(self.meta, ensure_ascii=False, sort_keys=True, default=str),
        }


def normalise_text(text: str | None) -> str:
    """The normalisation behind ids: NFKC, whitespace runs collapsed, ends stripped.

    Two exports of the same row (CSV vs XLSX, CRLF vs LF, full-width vs half-width digits) must get
    the same id; case and punctuation are kept because they can change meaning.
    """
    if text is None:
        return ""
    return " ".join(unicodedata.normalize("NFKC", text).split())


def record_id(
    kind: str,
    *,
    system: str | None = None,
    history: Iterable[tuple[str, str]] = (),
    question: str | None = None,
    answer: str | None = None,
    chosen: str | None = None,
    rejected: str | None = None,
    label: bool | None = None,
    text: str | None = None,
) -> str:
    parts: list[Any] = [kind]
    if kind == "text":
        parts.append(normalise_text(text))
    else:
        parts += [
            normalise_text(system),
            [[role, normalise_text(content)] for role, content in history],
            normalise_text(question),
        ]
        if kind == "preference":
            parts += [normalise_text(chosen), normalise_text(rejected)]
        else:
            parts.append(normalise_text(answer))
        if kind == "kto":
            parts.append(bool(label))
    payload = json.dumps(parts, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]


def empty_frame() -> pl.DataFrame:
    return pl.DataFrame(schema=SCHEMA)


def to_frame(rows: Iterable[Mapping[str, Any]]) -> pl.DataFrame:
    """Build a canonical frame from ``Record.as_row()`` dicts."""
    rows = list(rows)
    if not rows:
        return empty_frame()
    return pl.DataFrame(rows, schema=SCHEMA)


def conform(frame: pl.DataFrame) -> pl.DataFrame:
    """Give a frame read back from disk the canonical dtypes (missing core columns become null).

    Extra columns (scores, flags) are kept after the core ones.
    """
    exprs = []
    for name, dtype in SCHEMA.items():
        if name in frame.columns:
            col = frame[name]
            if col.dtype != dtype:
                if name == "meta" and col.dtype != pl.Utf8:
                    # meta read back as a struct (parquet/jsonl) -> JSON string again
                    exprs.append(
                        pl.Series(
                            name,
                            [json.dumps(v, ensure_ascii=False, sort_keys=True) for v in col.to_list()],
                            dtype=pl.Utf8,
                        )
                    )
                    continue
                try:
                    exprs.append(col.cast(dtype, strict=True))
                except Exception:  # e.g. a struct with fields in another order: rebuild from values
                    exprs.append(pl.Series(name, col.to_list(), dtype=dtype, strict=False))
            else:
                exprs.append(col)
        else:
            exprs.append(pl.Series(name, [None] * frame.height, dtype=dtype))
    extra = [frame[c] for c in frame.columns if c not in SCHEMA]
    return pl.DataFrame(exprs + extra)


def is_canonical(columns: Iterable[str]) -> bool:
    cols = set(columns)
    return {"id", "kind", "question"}.issubset(cols) or {"id", "kind", "text"}.issubset(cols)


def meta_of(frame: pl.DataFrame) -> list[dict[str, Any]]:
    return [json.loads(m) if m else {} for m in frame["meta"].to_list()]


# message keys of a history turn's ``extra`` that chat templates read (tool calling)
MESSAGE_KEYS = ("tool_calls", "tool_call_id", "name")


def messages_of(
    row: Mapping[str, Any], answer_field: str | None = "answer", lossless: bool = False
) -> list[dict[str, Any]]:
    """The conversation of a canonical row as OpenAI-style messages (system, history, question, answer).

    Turns carry their tool keys (``tool_calls``, ``tool_call_id``, ``name``: a history turn's
    ``extra``, the final turns' ``meta._fmt``), and a question that is a tool result keeps the ``tool``
    role. ``lossless`` (exports that are read back): every ``extra`` key the reader kept (not the
    reserved ``_`` ones), a null content restored, and an empty system prompt kept as a system message;
    by default an empty system prompt is left out, so a chat template applies its default one."""
    msgs: list[dict[str, Any]] = []
    system = row.get("system")
    if system or (lossless and system is not None):
        msgs.append({"role": "system", "content": system})
    for t in row.get("history") or []:
        msgs.append(_message(t["role"], t["content"], _turn_extra(t.get("extra")), lossless))
    hints = _turn_extra(row.get("meta")).get("_fmt")
    hints = hints if isinstance(hints, dict) else {}
    if row.get("question") is not None:
        q_extra = {k: v for k, v in _turn_extra(hints.get("q_extra")).items() if k in MESSAGE_KEYS}
        role = "tool" if hints.get("q_role") == "tool" else "user"
        msgs.append(_message(role, row["question"], q_extra, lossless))
    if answer_field and row.get(answer_field) is not None:
        # the final turn's tool keys describe the answer, not a chosen or rejected one
        a_extra = _turn_extra(hints.get("a_extra")) if answer_field == "answer" else {}
        keep = {k: v for k, v in a_extra.items() if k in MESSAGE_KEYS}
        if keep.get("tool_calls") and a_extra.get("_null_content"):
            keep["_null_content"] = True
        msgs.append(_message("assistant", row[answer_field], keep, lossless))
    return msgs


def _message(role: str, content: str | None, extra: dict[str, Any], lossless: bool) -> dict[str, Any]:
    msg: dict[str, Any] = {"role": "assistant" if role == "function_call" else role, "content": content or ""}
    if lossless and extra.get("_null_content"):
        msg["content"] = None
    for k, v in extra.items():
        if k not in msg and not k.startswith("_") and (lossless or k in MESSAGE_KEYS):
            msg[k] = v
    return msg


def _turn_extra(extra: Any) -> dict[str, Any]:
    if isinstance(extra, Mapping):
        return dict(extra)
    if isinstance(extra, str) and extra:
        try:
            value = json.loads(extra)
        except json.JSONDecodeError:
            return {}
        return value if isinstance(value, dict) else {}
    return {}
