"""The export stage: canonical records -> the file a trainer reads, with no conversion step left.

=============  =========================  ===============================  ==========================  ===========
``--format``   SFT rows                   preference rows                  KTO rows                    text rows
=============  =========================  ===============================  ==========================  ===========
trl            ``messages`` (convers.)    ``prompt``/``chosen``/           ``prompt``/``completion``/  ``text``
                                          ``rejected``                     ``label``
alpaca         instruction/input/output   instruction/input/chosen/        + ``kto_tag``               ``text``
               [/system/history]          rejected
sharegpt       ``conversations`` from/    LLaMA-Factory sharegpt ranking   + ``kto_tag``               --
               value [+ ``system``]
openai         ``messages``               OpenAI DPO: ``input.messages``,  --                          --
                                          ``preferred_output``,
                                          ``non_preferred_output``
llamafactory   as sharegpt, plus the ``dataset_info.json`` entry (``formatting``, ``ranking``, columns)  ``text``
=============  =========================  ===============================  ==========================  ===========

Rows go through the lossless converters of :mod:`curate.io.formats` (``to_format``). By default the
output is uniform (every row the same keys and role tags, ``meta`` left out) because trainers want one
schema per file; ``keep_meta`` writes meta keys back as fields and restores each row's original shape
(a round trip). A file holds one kind of record; rows of another kind are reported in ``dropped``
(export them separately with ``kind``). When a ``split`` column exists (``curate select --eval-size``),
eval rows go to a second file ``<name>.eval.<ext>``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from curate.records import RecordError, messages_of
from curate.stage import StageResult, empty_dropped, mark_dropped

STAGE = "export"
FORMATS = ("trl", "alpaca", "sharegpt", "openai", "llamafactory")
KINDS = ("sft", "preference", "kto", "text")
# (format, kind) -> the curate.io.formats name (None: written here; missing: not supported)
CONVERTER = {
    ("trl", "sft"): "openai",
    ("trl", "preference"): "trl-preference",
    ("trl", "kto"): "trl-prompt-completion",
    ("trl", "text"): "text",
    ("alpaca", "sft"): "alpaca",
    ("alpaca", "preference"): "alpaca",
    ("alpaca", "kto"): "alpaca",
    ("alpaca", "text"): "text",
    ("sharegpt", "sft"): "sharegpt",
    ("sharegpt", "preference"): "llamafactory-preference",
    ("sharegpt", "kto"): "sharegpt",
    ("openai", "sft"): "openai",
    ("openai", "preference"): None,
    ("llamafactory", "sft"): "sharegpt",
    ("llamafactory", "preference"): "llamafactory-preference",
    ("llamafactory", "kto"): "sharegpt",
    ("llamafactory", "text"): "text",
}
# export kind -> the training stage whose epoch table applies (one table for curate and train)
_KIND_STAGE = {"sft": "sft", "preference": "dpo", "kto": "kto", "text": "pt"}


def epochs_hint(rows: int, kind: str = "sft") -> dict[str, Any]:
    """Epochs `train` will plan for ``rows`` rows of this kind (train.plan's tables, log-interpolated):
    the source article's SFT table (100 rows ~15, 1,000 ~10, 10,000 ~2), 1-3 epochs for preference
    data, 1-2 passes for continued-pretraining text."""
    from train.plan import EPOCH_REASONS, planned_epochs

    if rows <= 0:
        return {"rows": rows, "epochs": None, "text": "no rows to train on"}
    stage = _KIND_STAGE.get(kind, "sft")
    e = planned_epochs(rows, stage)
    rounded = max(1, int(e + 0.5))
    text = f"{rows:,} rows: train about {rounded} epochs ({EPOCH_REASONS[stage]})"
    return {"rows": rows, "stage": stage, "epochs": round(e, 1), "epochs_rounded": rounded, "text": text}


@dataclass
class ExportConfig:
    format: str = "trl"
    output: str | None = None
    kind: str = "auto"
    keep_meta: bool = False
    name: str | None = None
    dataset_info: str | None = None

    def __post_init__(self) -> None:
        self.format = (self.format or "").lower()
        if self.format not in FORMATS:
            raise ValueError(f"--format {self.format!r}: choose one of {', '.join(FORMATS)}")
        if self.kind not in ("auto", *KINDS):
            raise ValueError(f"--kind {self.kind!r}: choose auto or one of {', '.join(KINDS)}")


def _openai_preference(row: dict[str, Any]) -> dict[str, Any]:
    """OpenAI's preference fine-tuning format (DPO)."""
    return {
        "input": {"messages": messages_of({**row, "answer": None}, answer_field="")},
        "preferred_output": [{"role": "assistant", "content": row["chosen"]}],
        "non_preferred_output": [{"role": "assistant", "content": row["rejected"]}],
    }


def convert_row(row: dict[str, Any], fmt: str, keep_meta: bool = False) -> dict[str, Any]:
    from curate.io.formats import to_format

    kind = row["kind"]
    if (fmt, kind) not in CONVERTER:
        raise RecordError(f"--format {fmt} has no layout for {kind} rows", "kind")
    target = CONVERTER[(fmt, kind)]
    if not keep_meta:
        row = {**row, "meta": "{}"}
    if target is None:
        out = _openai_preference(row)
        if keep_meta:
            meta = json.loads(row["meta"]) if isinstance(row.get("meta"), str) else {}
            for k, v in meta.items():
                if not k.startswith("_"):
                    out.setdefault(k, v)
        return out
    return to_format(row, target)


def choose_kind(frame: pl.DataFrame, kind: str) -> str | None:
    if kind != "auto":
        return kind
    if frame.height == 0:
        return None
    counts = frame.group_by("kind").len().sort(["len", "kind"], descending=[True, False])
    return counts["kind"][0]


def dataset_info_entry(kind: str, file_name: str, fmt: str) -> dict[str, Any]:
    """LLaMA-Factory's ``dataset_info.json`` entry for a file this module wrote."""
    if kind == "text":
        return {"file_name": file_name, "columns": {"prompt": "text"}}
    cols: dict[str, str] = {"messages": "conversations", "system": "system"}
    entry: dict[str, Any] = {"file_name": file_name, "formatting": "sharegpt"}
    if kind == "preference":
        entry["ranking"] = True
        cols.update({"chosen": "chosen", "rejected": "rejected"})
    if kind == "kto":
        cols["kto_tag"] = "kto_tag"
    entry["columns"] = cols
    return entry


def eval_path(out: Path) -> Path:
    name = out.name
    stem, dot, ext = name.rpartition(".")
    return out.with_name(f"{stem}.eval.{ext}" if dot else f"{name}.eval")


def convert(frame: pl.DataFrame, config: ExportConfig):
    """-> (records, splits, kind, kept frame, dropped frame): rows that cannot be written in the format
    (another kind, a shape the format lacks) are dropped with the reason."""
    kind = choose_kind(frame, config.kind)
    rows = frame.to_dicts()
    records: list[dict[str, Any]] = []
    kept_i, drop_i, reasons, details = [], [], [], []
    for i, r in enumerate(rows):
        if r["kind"] != kind:
            drop_i.append(i)
            reasons.append(f"export: {r['kind']} row in a {kind} export")
            details.append({"hint": f"export them separately with --kind {r['kind']}"})
            continue
        try:
            records.append(convert_row(r, config.format, config.keep_meta))
            kept_i.append(i)
        except RecordError as exc:
            drop_i.append(i)
            reasons.append(f"export: cannot write as {config.format}")
            details.append({"field": exc.field, "reason": exc.reason})
    kept = frame[kept_i] if kept_i else frame.head(0)
    dropped = mark_dropped(frame[drop_i], STAGE, reasons, details) if drop_i else empty_dropped(frame)
    splits = kept["split"].to_list() if "split" in kept.columns else [None] * kept.height
    return records, splits, kind, kept, dropped


def run(frame: pl.DataFrame, config: ExportConfig | None = None) -> StageResult:
    """The stage form: kept = the rows that were converted. When ``config.output`` is set (a recipe's
    export step) the files are written as well (see :func:`write`): writing is this stage's purpose."""
    config = config or ExportConfig()
    records, splits, kind, kept, dropped = convert(frame, config)
    n_eval = sum(1 for s in splits if s == "eval")
    stats: dict[str, Any] = {
        "format": config.format,
        "kind": kind,
        "rows": len(records) - n_eval,
        "eval_rows": n_eval,
        "hint": epochs_hint(len(records) - n_eval, kind),
    }
    if config.output:
        stats["outputs"] = write(records, splits, kind, config, Path(config.output))
    return StageResult(kept, dropped, stats)


def write(
    records: list[dict[str, Any]], splits: list[Any], kind: str | None, config: ExportConfig, out: Path
) -> dict[str, str]:
    """Write train (and eval) files atomically; for llamafactory also merge ``dataset_info.json``."""
    from curate.io import atomic_write_text, write_records

    if out.suffix.lower() not in (".jsonl", ".json"):
        raise ValueError(f"{out}: exports are .jsonl or .json files")
    train = [r for r, s in zip(records, splits, strict=True) if s != "eval"]
    ev = [r for r, s in zip(records, splits, strict=True) if s == "eval"]
    written = {"output": str(write_records(train, out))}
    if ev:
        written["eval"] = str(write_records(ev, eval_path(out)))
    if config.format == "llamafactory" and kind is not None:
        info_path = Path(config.dataset_info) if config.dataset_info else out.parent / "dataset_info.json"
        try:
            info = json.loads(info_path.read_text(encoding="utf-8")) if info_path.exists() else {}
        except json.JSONDecodeError as exc:
            raise ValueError(f"{info_path}: not valid JSON ({exc}); fix or remove it") from None
        name = config.name or out.name.split(".")[0]
        base = info_path.parent.resolve()

        def rel(p: Path) -> str:
            try:
                return str(p.resolve().relative_to(base))
            except ValueError:
                return str(p.resolve())

        info[name] = dataset_info_entry(kind, rel(out), config.format)
        if ev:
            info[f"{name}_eval"] = dataset_info_entry(kind, rel(eval_path(out)), config.format)
        atomic_write_text(info_path, json.dumps(info, ensure_ascii=False, indent=2) + "\n")
        written["dataset_info"] = str(info_path)
        written["dataset_name"] = name
    return written


__all__ = ["ExportConfig", "FORMATS", "convert", "convert_row", "epochs_hint", "run", "write"]
