"""The dataset card an export writes beside its files, so the folder loads as-is with the Hugging Face
conventions: ``datasets.load_dataset(folder)`` and ``trl sft --dataset_name folder``.

Without a card, ``load_dataset`` reads every JSON file of the folder as one dataset and takes
``<name>.eval.jsonl`` for the "test" split (``KeyError: 'train'`` when the names do not say train, and a
schema clash with the curated/dropped files next to it). The card's YAML header lists each export as a
``configs`` entry (Hugging Face's dataset card ``configs:`` field)::

    ---
    configs:
    - config_name: ops_qa.trl
      data_files:
      - split: train
        path: ops_qa.trl.jsonl
      - split: validation
        path: ops_qa.trl.eval.jsonl
      default: true
    ---

The held-out rows are the ``validation`` split (TRL's CLI evaluates on ``--dataset_test_split``:
pass ``--dataset_test_split validation`` when you turn evaluation on). Several exports into one folder
are several configs; the first one written stays the default (pick another with
``load_dataset(folder, "NAME")`` / ``--dataset_config NAME``).

The card is ``README.md`` in the export's folder. An existing card keeps its other fields and its text:
only the ``configs`` entry of this export is replaced. A ``README.md`` that is not a dataset card (no
YAML header) is left alone, and the export says so (``dataset_card_skipped``): it is someone's file.
An unchanged card is not rewritten.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from curate import staging, yamlsafe
from curate.io import atomic_write_text

CARD_NAME = "README.md"
VALIDATION = "validation"


def card_path(out: Path) -> Path:
    return out.parent / CARD_NAME


def _split_card(text: str) -> tuple[dict[str, Any], str] | None:
    """(YAML header, body) of a dataset card; None when the text has no YAML header."""
    if not text.startswith("---"):
        return None
    lines = text.splitlines(keepends=True)
    if lines[0].strip() != "---":
        return None
    for i in range(1, len(lines)):
        if lines[i].strip() == "---":
            header = yamlsafe.load("".join(lines[1:i])) or {}
            if not isinstance(header, dict):
                return None
            return header, "".join(lines[i + 1 :])
    return None


def _body(name: str) -> str:
    return (
        f"\n# {name}\n\nWritten by `curate export` (tamis). Load it with "
        '`datasets.load_dataset("<this folder>")` or train on it with '
        "`trl sft --dataset_name <this folder>`; the held-out rows are the `validation` split.\n"
    )


def render(header: dict[str, Any], body: str) -> str:
    return "---\n" + yaml.safe_dump(header, sort_keys=False, allow_unicode=True) + "---\n" + body


def update_card(out: Path, name: str, eval_file: Path | None) -> dict[str, str]:
    """Add (or replace) this export's ``configs`` entry in the folder's dataset card.

    Returns ``{"dataset_card": path}`` when the card holds the entry, or ``{"dataset_card_skipped":
    reason}`` when a README.md that is not a dataset card is in the way."""
    path = card_path(out)
    files = [{"split": "train", "path": out.name}]
    if eval_file is not None:
        files.append({"split": VALIDATION, "path": eval_file.name})
    entry: dict[str, Any] = {"config_name": name, "data_files": files}

    old_text = None
    current = staging.read_path(path)  # a refresh's earlier export of this run may have staged it
    if current.exists():
        try:
            old_text = current.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            return {"dataset_card_skipped": f"{path}: cannot read it ({exc})"}
        parsed = _split_card(old_text)
        if parsed is None:
            return {"dataset_card_skipped": f"{path} is not a dataset card (no YAML header); left alone"}
        header, body = parsed
    else:
        header, body = {}, _body(name)
    configs = header.get("configs")
    configs = [c for c in configs if isinstance(c, dict)] if isinstance(configs, list) else []
    previous = next((c for c in configs if c.get("config_name") == name), None)
    if previous is not None and previous.get("default"):
        entry["default"] = True
    elif not any(c.get("default") for c in configs if c.get("config_name") != name):
        entry["default"] = True
    if previous is not None:
        configs[configs.index(previous)] = entry
    else:
        configs.append(entry)
    header["configs"] = configs
    text = render(header, body)
    if text != old_text:
        atomic_write_text(path, text)
    return {"dataset_card": str(path)}
