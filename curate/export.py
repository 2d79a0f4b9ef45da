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
(a round trip). Tool-calling data keeps its meaning either way: the final turns' roles (a tool result,
a function call) always apply, ``tools`` is written as a top-level field (a JSON string in the
ShareGPT/Alpaca layouts, a list in TRL/OpenAI), and OpenAI ``tool_calls`` turns become ShareGPT
``function_call`` turns. The ``llamafactory`` layout is always uniform (from/value, human/gpt,
``kto_tag``, ``system`` on every row) because its ``dataset_info.json`` entry describes every row;
``keep_meta`` adds the meta keys as fields only. A file holds one kind of record; rows of another kind
are reported in ``dropped`` (export them separately with ``kind``). Held-out rows (``split`` column or
``meta.split`` = eval/test/validation/dev, :func:`curate.augment.common.is_eval`, the rows ``augment``
leaves alone) go to a second file ``<name>.eval.<ext>``; an eval file an earlier export left is removed
when there are none. A dataset card (``README.md`` with ``configs:``, :mod:`curate.export_card`) names
the train file and the eval file (split ``validation``), so the folder loads as-is with
``datasets.load_dataset(folder)`` and ``trl sft --dataset_name folder``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import polars as pl

from curate import staging
from curate.augment.common import eval_mask
from curate.configs.export import (  # noqa: F401  (re-exported)
    CONVERTER,
    FORMATS,
    KINDS,
    ExportConfig,
    check_pairing,
    formats_for,
    pairing_table,
)
from curate.core import vocab
from curate.core.epochs import EPOCH_REASONS, planned_epochs
from curate.core.errors import UsageError
from curate.export_card import card_path, update_card
from curate.io import atomic_path, atomic_write_text
from curate.io.formats import semantic_hints, to_format
from curate.records import RecordError, messages_of
from curate.stage import StageResult, empty_dropped, mark_dropped

STAGE = "export"
# export kind -> the training stage whose epoch table applies (one table for curate and train)
_KIND_STAGE = {"sft": "sft", "preference": "dpo", "kto": "kto", "text": "pt"}


def epochs_hint(rows: int, kind: str = "sft") -> dict[str, Any]:
    """Epochs `train` will plan for ``rows`` rows of this kind (curate.core.epochs, the tables train plans with, log-interpolated):
    the source article's SFT table (100 rows ~15, 1,000 ~10, 10,000 ~2), 1-3 epochs for preference
    data, 1-2 passes for continued-pretraining text."""
    stage = _KIND_STAGE.get(kind, "sft")
    if rows <= 0:
        return {
            "rows": rows,
            "stage": stage,
            "epochs": None,
            "epochs_rounded": None,
            "text": "no rows to train on",
        }
    e = planned_epochs(rows, stage)
    rounded = max(1, int(e + 0.5))
    text = f"{rows:,} rows: train about {rounded} epochs ({EPOCH_REASONS[stage]})"
    return {"rows": rows, "stage": stage, "epochs": round(e, 1), "epochs_rounded": rounded, "text": text}


# layouts that read ``tools`` as a JSON string (LLaMA-Factory); TRL and OpenAI take a list
_TOOLS_AS_TEXT = ("alpaca", "sharegpt", "llamafactory")


def _tools_for(fmt: str, tools: Any) -> Any:
    if fmt in _TOOLS_AS_TEXT:
        return tools if isinstance(tools, str) else json.dumps(tools, ensure_ascii=False)
    if isinstance(tools, str):
        try:
            parsed = json.loads(tools)
        except json.JSONDecodeError:
            return tools
        return parsed if isinstance(parsed, list) else tools
    return tools


def _meta_dict(row: dict[str, Any]) -> dict[str, Any]:
    m = row.get("meta")
    if isinstance(m, str) and m:
        try:
            m = json.loads(m)
        except json.JSONDecodeError:
            return {}
    return dict(m) if isinstance(m, dict) else {}


def _uniform_meta(row: dict[str, Any], fmt: str, keep_extra: bool) -> str:
    """The meta a uniform row is written with: no input shape (``_fmt`` reduced to the conversation's
    own hints: tool roles and keys), ``tools`` in the layout's form, and with ``keep_extra`` the other
    meta keys (written back as fields)."""
    meta = _meta_dict(row)
    new: dict[str, Any] = {}
    hints = semantic_hints(meta.get("_fmt"))
    if hints:
        new["_fmt"] = hints
    if keep_extra:
        new.update({k: v for k, v in meta.items() if not k.startswith("_")})
    if meta.get("tools") is not None:
        new["tools"] = _tools_for(fmt, meta["tools"])
    return json.dumps(new, ensure_ascii=False, default=str)


def _openai_preference(row: dict[str, Any]) -> dict[str, Any]:
    """OpenAI's preference fine-tuning format (DPO)."""
    inp: dict[str, Any] = {"messages": messages_of({**row, "answer": None}, answer_field="", lossless=True)}
    tools = _meta_dict(row).get("tools")
    if tools is not None:
        inp["tools"] = _tools_for("openai", tools)
    return {
        "input": inp,
        "preferred_output": [{"role": "assistant", "content": row["chosen"]}],
        "non_preferred_output": [{"role": "assistant", "content": row["rejected"]}],
    }


def convert_row(row: dict[str, Any], fmt: str, keep_meta: bool = False) -> dict[str, Any]:
    kind = row["kind"]
    if (fmt, kind) not in CONVERTER:
        raise RecordError(f"--format {fmt} has no layout for {kind} rows", "kind")
    target = CONVERTER[(fmt, kind)]
    if not keep_meta or fmt == "llamafactory":
        row = {**row, "meta": _uniform_meta(row, fmt, keep_extra=keep_meta)}
    if fmt == "llamafactory" and kind != "text":
        row["system"] = row.get("system") or ""  # the entry declares the column: every row has it
    if target is None:
        out = _openai_preference(row)
        if keep_meta:
            for k, v in _meta_dict(row).items():
                if not k.startswith("_") and k != "tools":
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


def dataset_info_entry(kind: str, file_name: str, fmt: str, tools: bool = False) -> dict[str, Any]:
    """LLaMA-Factory's ``dataset_info.json`` entry for a file this module wrote (``tools``: the rows
    have a ``tools`` field)."""
    if kind == "text":
        return {"file_name": file_name, "columns": {"prompt": "text"}}
    cols: dict[str, str] = {"messages": "conversations", "system": "system"}
    if tools:
        cols["tools"] = "tools"
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


def dataset_info_path(config: ExportConfig, out: Path) -> Path:
    return Path(config.dataset_info) if config.dataset_info else out.parent / "dataset_info.json"


def output_paths(config: ExportConfig, out: Path) -> dict[str, Path]:
    """Every file an export to ``out`` may write or remove (the eval file is removed when there are no
    eval rows): a caller checks them against its inputs before anything is written."""
    paths = {"output": out, "eval": eval_path(out), "dataset_card": card_path(out)}
    if config.format == "llamafactory":
        paths["dataset_info"] = dataset_info_path(config, out)
    return paths


def default_name(out: Path) -> str:
    """The dataset name of ``out`` in dataset_info.json: the file name without its extension
    (``ops.sft.json`` -> ``ops.sft``, so ``ops.sft.json`` and ``ops.dpo.json`` do not collide)."""
    return out.name[: -len(out.suffix)] if out.suffix else out.name


@dataclass
class DatasetInfo:
    """A dataset_info.json read and checked before an export writes anything."""

    path: Path
    info: dict[str, Any]
    name: str
    kind: str
    fmt: str

    def _rel(self, p: Path) -> str:
        base = self.path.parent.resolve()
        try:
            return str(p.resolve().relative_to(base))
        except ValueError:
            return str(p.resolve())

    def _points_at(self, entry: Any, p: Path) -> bool:
        if not isinstance(entry, dict) or not isinstance(entry.get("file_name"), str):
            return False
        target = Path(entry["file_name"])
        if not target.is_absolute():
            target = self.path.parent / target
        return target.resolve() == p.resolve()

    def check(self, out: Path, has_eval: bool) -> None:
        """A UsageError (a ValueError) when an entry of this name describes another file (``--name``
        picks another)."""
        pairs = [(self.name, out)] + ([(f"{self.name}_eval", eval_path(out))] if has_eval else [])
        for key, p in pairs:
            if key in self.info and not self._points_at(self.info[key], p):
                entry = self.info[key]
                other = entry.get("file_name") if isinstance(entry, dict) else None
                raise UsageError(
                    f"{self.path}: the entry {key!r} describes {other or 'another dataset'}, not "
                    f"{self._rel(p)}; choose another --name (or remove that entry)"
                )

    def update(self, out: Path, has_eval: bool, tools: bool) -> None:
        self.info[self.name] = dataset_info_entry(self.kind, self._rel(out), self.fmt, tools)
        ev_key = f"{self.name}_eval"
        if has_eval:
            self.info[ev_key] = dataset_info_entry(self.kind, self._rel(eval_path(out)), self.fmt, tools)
        elif ev_key in self.info and self._points_at(self.info[ev_key], eval_path(out)):
            del self.info[ev_key]  # an earlier export's eval entry: its file is gone
        atomic_write_text(self.path, json.dumps(self.info, ensure_ascii=False, indent=2) + "\n")


def read_dataset_info(
    config: ExportConfig, kind: str | None, out: Path, has_eval: bool
) -> DatasetInfo | None:
    """For a llamafactory export: dataset_info.json read and checked (a JSON object; no entry of this
    name for another file). Raises UsageError (a ValueError: the user's file), before anything is
    written, when it cannot be updated."""
    if config.format != "llamafactory" or kind is None:
        return None
    path = dataset_info_path(config, out)

    info: Any = {}
    current = staging.read_path(path)  # a refresh's earlier export of this run may have staged it
    if current.exists():
        try:
            info = json.loads(current.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise UsageError(f"{path}: not valid JSON ({exc}); fix or remove it") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"{path}: cannot read it ({exc})") from None
        if not isinstance(info, dict):
            raise UsageError(
                f"{path}: holds a JSON {type(info).__name__}, not an object of dataset entries; fix or remove it"
            )
    plan = DatasetInfo(path, info, config.name or default_name(out), kind, config.format)
    plan.check(out, has_eval)
    return plan


def remove_stale_eval(out: Path) -> str | None:
    """Remove the eval file an earlier export left beside ``out`` (this one has no eval rows)."""
    p = eval_path(out)
    if p.is_file() or p.is_symlink():
        staging.unlink(p)  # after the commit when a refresh is staging its outputs
        return str(p)
    return None


# one row's export: its JSON line, or (None, field, reason) when the format cannot hold it
Converted = tuple[str | None, str | None, str | None]


class RowMemo(Protocol):
    """Where :func:`export_rows` may find rows converted before (the pipeline's per-row memo,
    :mod:`curate.pipeline.fastexport`): a cache only, the conversion is always ``convert``."""

    def convert(
        self, frame: pl.DataFrame, rows: list[int], convert: Callable[[dict[str, Any]], Converted]
    ) -> list[Converted]: ...

    def stats(self, lines: int) -> dict[str, int]: ...


def convert_line(row: dict[str, Any], config: ExportConfig) -> Converted:
    """The one conversion of a row: its line in ``config.format``, or why that format cannot hold it."""
    try:
        record = convert_row(row, config.format, config.keep_meta)
    except RecordError as exc:
        return None, exc.field, exc.reason
    return json.dumps(record, ensure_ascii=False, default=str), None, None


@dataclass
class ExportResult(StageResult):
    """The stage's result: the rows (kept = converted) and the lines to write, in kept order;
    ``held_out`` marks the eval rows (:func:`curate.augment.common.is_eval`). Written by
    :func:`write_result` (the command or the pipeline's runner), never by the stage."""

    kind: str | None = None
    lines: list[str] = field(default_factory=list)
    held_out: list[bool] = field(default_factory=list)

    @property
    def train_lines(self) -> list[str]:
        return [ln for ln, e in zip(self.lines, self.held_out, strict=True) if not e]

    @property
    def eval_lines(self) -> list[str]:
        return [ln for ln, e in zip(self.lines, self.held_out, strict=True) if e]


def export_rows(frame: pl.DataFrame, config: ExportConfig, memo: RowMemo | None = None) -> ExportResult:
    """The stage function, the only place rows become export lines (the command, a recipe and its
    per-row ``memo`` all come here): the kind (``auto``: the most common), each row's line
    (:func:`convert_line`), rows of another kind or a shape the format lacks dropped with the reason,
    the held-out split and the stats. It writes nothing (:func:`write_result` does)."""
    kind = choose_kind(frame, config.kind)
    kinds = frame["kind"].to_list() if frame.height else []
    todo = [i for i, k in enumerate(kinds) if k == kind]
    if memo is None:
        rows = frame[todo].iter_rows(named=True) if todo else iter(())
        converted = [convert_line(r, config) for r in rows]
    else:
        converted = memo.convert(frame, todo, lambda r: convert_line(r, config))
    outcome = dict(zip(todo, converted, strict=True))
    lines: list[str] = []
    kept_i, drop_i, reasons, details = [], [], [], []
    for i, k in enumerate(kinds):
        line, fld, reason = outcome.get(i, (None, None, None))
        if line is not None:
            kept_i.append(i)
            lines.append(line)
            continue
        drop_i.append(i)
        if k != kind:
            reasons.append(f"export: {k} row in a {kind} export")
            details.append({"hint": f"export them separately with --kind {k}"})
        else:
            reasons.append(f"export: cannot write as {config.format}")
            details.append({"field": fld, "reason": reason})
    kept = frame[kept_i] if kept_i else frame.head(0)
    dropped = mark_dropped(frame[drop_i], STAGE, reasons, details) if drop_i else empty_dropped(frame)
    held_out = eval_mask(kept).to_list()
    n_eval = sum(held_out)
    stats: dict[str, Any] = {
        "format": config.format,
        "kind": kind,
        "rows": len(lines) - n_eval,
        "eval_rows": n_eval,
        "hint": epochs_hint(len(lines) - n_eval, kind),
    }
    if memo is not None:
        stats.update(memo.stats(len(lines)))
    return ExportResult(kept, dropped, stats, kind=kind, lines=lines, held_out=held_out)


def convert(frame: pl.DataFrame, config: ExportConfig):
    """-> (records, splits, kind, kept frame, dropped frame), from :func:`export_rows`: ``records`` are
    the lines as objects, ``splits`` ``"eval"`` for a held-out row, else ``"train"``."""
    res = export_rows(frame, config)
    records = [json.loads(ln) for ln in res.lines]
    splits = ["eval" if e else "train" for e in res.held_out]
    return records, splits, res.kind, res.kept, res.dropped


def write_result(result: ExportResult, config: ExportConfig) -> dict[str, str] | None:
    """Write the files an :class:`ExportResult` describes to ``config.output`` (none when unset, as in
    a bare ``run``) and record them in ``result.stats["outputs"]``: the writer the command and the
    pipeline's runner call once the stage has run."""
    if not config.output:
        return None
    written = write_lines(
        result.train_lines,
        result.eval_lines,
        result.kind,
        config,
        Path(config.output),
        _has_tools(result.lines),
    )
    result.stats["outputs"] = written
    return written


def run(frame: pl.DataFrame, config: ExportConfig | None = None, memo: RowMemo | None = None) -> ExportResult:
    """The export in one call, as a recipe runs it: :func:`export_rows`, then :func:`write_result` when
    ``config.output`` is set."""
    config = config or ExportConfig()
    result = export_rows(frame, config, memo)
    write_result(result, config)
    return result


def _has_tools(lines: list[str]) -> bool:
    """A row has a top-level ``tools`` field (the dataset_info.json entry then names the column)."""
    return any('"tools"' in ln and "tools" in json.loads(ln) for ln in lines)


def write(
    records: list[dict[str, Any]], splits: list[Any], kind: str | None, config: ExportConfig, out: Path
) -> dict[str, str]:
    """Write train (and eval) files atomically; for llamafactory also merge ``dataset_info.json``.
    dataset_info.json is read and checked first: nothing is written when it cannot be updated."""
    lines = [json.dumps(r, ensure_ascii=False, default=str) for r in records]
    train = [ln for ln, s in zip(lines, splits, strict=True) if s != "eval"]
    ev = [ln for ln, s in zip(lines, splits, strict=True) if s == "eval"]
    return write_lines(train, ev, kind, config, out, any("tools" in r for r in records))


def write_lines(
    train: list[str], ev: list[str], kind: str | None, config: ExportConfig, out: Path, tools: bool
) -> dict[str, str]:
    """The one way an export reaches the disk (:func:`write_result` and :func:`write` end here): serialised records, one per line (.jsonl) or one per line inside a JSON array
    (.json), written atomically, the eval split beside them, then ``dataset_info.json``."""
    if out.suffix.lower() not in vocab.TRAINER_EXTENSIONS:
        raise UsageError(f"{out}: exports are .jsonl or .json files")
    check_pairing(config.format, kind)
    info = read_dataset_info(config, kind, out, bool(ev))  # checked before anything is written
    written = {"output": _write_lines(train, out)}
    if ev:
        written["eval"] = _write_lines(ev, eval_path(out))
    elif removed := remove_stale_eval(out):
        written["removed_stale_eval"] = removed
    written.update(describe(info, config, out, bool(ev), tools))
    return written


def describe(info: DatasetInfo | None, config: ExportConfig, out: Path, has_eval: bool, tools: bool):
    """After the data files are written: the LLaMA-Factory ``dataset_info.json`` entry (``info``) and the
    dataset card (README.md with ``configs:``, so the folder loads with ``load_dataset(dir)`` and
    ``trl sft --dataset_name dir``). Returns the files written, for the summary."""
    written: dict[str, str] = {}
    if info is not None:
        info.update(out, has_eval, tools)
        written["dataset_info"] = str(info.path)
        written["dataset_name"] = info.name
    written.update(update_card(out, config.name or default_name(out), eval_path(out) if has_eval else None))
    return written


def _write_lines(lines: list[str], out: Path) -> str:
    with atomic_path(out) as tmp:
        with open(tmp, "w", encoding="utf-8") as fh:
            if out.suffix.lower() == ".json":
                fh.write("[\n" + ",\n".join(lines) + ("\n]\n" if lines else "]\n"))
            else:
                fh.write("\n".join(lines) + ("\n" if lines else ""))
    return str(out)


def export_files(manifest: dict[str, Any]) -> dict[str, dict[str, str]]:
    """The files each export stage of a run wrote, by stage id (``curate run --json`` lists them)."""
    files: dict[str, dict[str, str]] = {}
    for st in manifest.get("stages") or []:
        written = (st.get("stats") or {}).get("outputs") if st.get("stage") == STAGE else None
        if isinstance(written, dict):
            files[st["id"]] = {k: str(v) for k, v in written.items()}
    return files


__all__ = [
    "ExportConfig",
    "FORMATS",
    "convert",
    "convert_line",
    "convert_row",
    "export_rows",
    "epochs_hint",
    "export_files",
    "output_paths",
    "run",
    "write",
    "write_result",
]
