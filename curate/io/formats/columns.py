"""Readers of plain columns: a question/answer table under any column names (roles resolved by
:func:`curate.io.formats.detect.explain_qa` or ``--map``), and plain text (continued pretraining)."""

from __future__ import annotations

from curate.io.formats.common import _as_text, _label, _meta
from curate.records import Record, RecordError


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
