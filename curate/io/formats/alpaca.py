"""The Alpaca reader: instruction / input / output [/ system / history]; with chosen/rejected a preference
pair (LLaMA-Factory's alpaca preference), with ``kto_tag`` a KTO row."""

from __future__ import annotations

from typing import Any

from curate.io.formats.common import _as_text, _label, _meta, _pref_side
from curate.records import Record, RecordError, Turn


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
