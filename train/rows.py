"""Curated records -> the rows a stage's trainer takes, with the accounting of every input row.

Every stage reads canonical records (or anything `curate` reads) through :func:`curate.io.load`. Rows of
the wrong kind and empty rows are dropped *with a reason*, so the run can say exactly what it trained on.
SFT rows become conversational prompt/completion (or messages) records, PT rows text, DPO/RM/KTO rows
prompt/chosen/rejected (or prompt/completion/label), online RL rows prompts with their reference answer.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from curate.core.vocab import sha256_file
from curate.io import InputError, load
from curate.records import messages_of
from train.answers import reference_of
from train.config import STAGE_KINDS

PAIR_STAGES = ("dpo", "rm", "kto", "orpo", "rloo", "grpo")  # prompt lengths are measured


class DataError(ValueError):
    """The data cannot be used for this stage (message names the file and what is wrong)."""


@dataclass
class Prepared:
    """Rows ready for a trainer plus the accounting of every input row."""

    stage: str
    rows: list[dict[str, Any]]
    ids: list[str]
    input_rows: int
    rejected: int
    dropped: Counter = field(default_factory=Counter)
    dropped_examples: dict[str, list[str]] = field(default_factory=dict)
    files: list[dict[str, Any]] = field(default_factory=list)
    explanations: list[str] = field(default_factory=list)

    def drop(self, reason: str, row_id: str | None) -> None:
        self.dropped[reason] += 1
        ex = self.dropped_examples.setdefault(reason, [])
        if len(ex) < 5 and row_id:
            ex.append(row_id)


# ------------------------------------------------------------------ files, hashes, manifests


def find_manifest(path: Path) -> Path | None:
    """A curate run writes manifest.json in its output directory; a single export may carry
    <name>.manifest.json next to it."""
    for cand in (path.with_name(path.name + ".manifest.json"), path.with_suffix(".manifest.json")):
        if cand.is_file():
            return cand
    cand = path.parent / "manifest.json"
    return cand if cand.is_file() else None


def describe_file(path: Path) -> dict[str, Any]:
    info: dict[str, Any] = {
        "path": str(path.resolve()),
        "bytes": path.stat().st_size,
        "sha256": sha256_file(path),
    }
    man = find_manifest(path)
    if man is not None:
        info["manifest_path"] = str(man.resolve())
        try:
            m = json.loads(man.read_text(encoding="utf-8"))
            info["manifest"] = m
            for key in ("version", "dataset_version", "recipe", "created"):
                if key in m:
                    info[key] = m[key]
        except (OSError, json.JSONDecodeError) as e:
            info["manifest_error"] = str(e)
    return info


def fingerprint(files: list[dict[str, Any]]) -> str:
    h = hashlib.sha256()
    for f in sorted(files, key=lambda f: f["sha256"]):
        h.update(f["sha256"].encode())
    return h.hexdigest()[:16]


# ------------------------------------------------------------------ records -> rows


def _messages(row: dict[str, Any]) -> list[dict[str, str]]:
    return messages_of(row, answer_field="")


def load_frame(paths: list[str]):
    if not paths:
        raise DataError("no training data given (--data FILE)")
    missing = [p for p in paths if not Path(p).exists()]
    if missing:
        raise DataError(f"data file not found: {missing[0]}")
    try:
        res = load([Path(p) for p in paths])
    except InputError as e:
        raise DataError(str(e)) from None
    return res


def prepare(paths: list[str], stage: str, loss_on: str = "completion") -> Prepared:
    """Read the data files and convert canonical rows to the records this stage's trainer takes."""
    res = load_frame(paths)
    frame = res.frame
    prep = Prepared(
        stage=stage,
        rows=[],
        ids=[],
        input_rows=res.input_rows,
        rejected=res.rejects.height,
        files=[describe_file(Path(p)) for p in paths],
        explanations=list(res.explanations),
    )
    if res.rejects.height:
        for r in res.rejects.head(5).iter_rows(named=True):
            prep.explanations.append(
                f"rejected {r['file']}:{r['line']}"
                + (f" field {r['field']}" if r["field"] else "")
                + f": {r['reason']}"
            )
    wanted = STAGE_KINDS[stage]
    for row in frame.iter_rows(named=True):
        kind, rid = row.get("kind"), row.get("id")
        if kind not in wanted:
            prep.drop(f"kind '{kind}' is not used by `train {stage}` (needs {' or '.join(wanted)})", rid)
            continue
        out = _convert(row, stage, loss_on, prep)
        for rec in out:
            prep.rows.append(rec)
            prep.ids.append(rid)
    if not prep.rows:
        kinds = Counter(frame["kind"].to_list()) if frame.height else {}
        raise DataError(
            f"no usable rows for `train {stage}` in {', '.join(paths)} "
            f"(found kinds: {dict(kinds) or 'none'}; needs {' or '.join(wanted)})"
        )
    return prep


def _blank(s: str | None) -> bool:
    return s is None or not str(s).strip()


def _answer_turn(row: dict[str, Any], n_prompt: int) -> dict[str, Any] | None:
    """The final assistant turn of an SFT row as a message, with its tool keys (an answer that is a tool
    call has an empty content and ``tool_calls``); None when it is empty."""
    msgs = messages_of({**row, "answer": row.get("answer") or ""})
    if len(msgs) != n_prompt + 1 or msgs[-1]["role"] != "assistant":
        return None
    turn = msgs[-1]
    if _blank(turn.get("content")) and not turn.get("tool_calls"):
        return None
    return turn


def _convert(row: dict[str, Any], stage: str, loss_on: str, prep: Prepared) -> list[dict[str, Any]]:
    rid = row.get("id")
    if stage == "pt":
        text = row.get("text") if row["kind"] == "text" else None
        if row["kind"] == "sft":
            # continued pretraining on Q&A: question and answer as plain text
            text = "\n".join(x for x in (row.get("question"), row.get("answer")) if not _blank(x))
        if _blank(text):
            prep.drop("empty text", rid)
            return []
        return [{"text": text}]
    prompt = _messages(row)
    if _blank(row.get("question")):
        prep.drop("empty question", rid)
        return []
    if stage in ("rloo", "grpo"):
        return [{"prompt": prompt, "reference": reference_of(row)}]
    if stage == "sft":
        answer = _answer_turn(row, len(prompt))
        if answer is None:
            prep.drop("empty answer", rid)
            return []
        completion = [answer]
        if loss_on == "completion":
            return [{"prompt": prompt, "completion": completion}]
        return [{"messages": prompt + completion}]
    if stage in ("dpo", "rm", "orpo"):
        if _blank(row.get("chosen")) or _blank(row.get("rejected")):
            prep.drop("empty chosen or rejected", rid)
            return []
        if row["chosen"].strip() == row["rejected"].strip():
            prep.drop("chosen equals rejected", rid)
            return []
        return [
            {
                "prompt": prompt,
                "chosen": [{"role": "assistant", "content": row["chosen"]}],
                "rejected": [{"role": "assistant", "content": row["rejected"]}],
            }
        ]
    if stage == "kto":
        if row["kind"] == "preference":
            # a pair gives one desirable and one undesirable example
            if (
                not _blank(row.get("chosen"))
                and not _blank(row.get("rejected"))
                and row["chosen"].strip() == row["rejected"].strip()
            ):
                # the same answer would be trained as good and as bad at once
                prep.drop("chosen equals rejected", rid)
                return []
            out = []
            for key, label in (("chosen", True), ("rejected", False)):
                if not _blank(row.get(key)):
                    out.append(
                        {
                            "prompt": prompt,
                            "completion": [{"role": "assistant", "content": row[key]}],
                            "label": label,
                        }
                    )
            if not out:
                prep.drop("empty chosen and rejected", rid)
            return out
        if _blank(row.get("answer")):
            prep.drop("empty answer", rid)
            return []
        return [
            {
                "prompt": prompt,
                "completion": [{"role": "assistant", "content": row["answer"]}],
                "label": bool(row.get("label")),
            }
        ]
    raise ValueError(stage)
