"""Lossless round trip on every real file the project reads in ../shared/data/llamafactory-demo and
medicalgpt-samples (issue 15 acceptance): each kept row written back in its own format is the input
object, repaired rows included (the repair's original text is in meta). Skips when the data is absent."""

from __future__ import annotations

import json
from pathlib import Path

from curate.export import convert_row
from curate.io import load
from curate.io.formats import to_format

FOLDERS = ("llamafactory-demo", "medicalgpt-samples")
# export layouts whose converter is the source format itself (--keep-meta restores the row's shape)
EXPORT_OF = {"alpaca": "alpaca", "sharegpt": "sharegpt", "llamafactory-preference": "sharegpt"}


def _originals(p: Path) -> list:
    text = p.read_text(encoding="utf-8")
    if p.suffix == ".txt":
        return [{"text": line} for line in text.split("\n") if line.strip()]
    if p.suffix == ".json":
        return json.loads(text)
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _files(shared: Path) -> list[Path]:
    out = []
    for folder in FOLDERS:
        for p in sorted((shared / folder).iterdir()):
            if p.suffix in (".json", ".jsonl", ".txt") and p.name != "dataset_info.json":
                out.append(p)
    return out


def test_every_real_file_round_trips_exactly(shared_data):
    checked = repaired = 0
    for p in _files(shared_data):
        res = load([p])
        rejected = set(res.rejects["line"].to_list())
        originals = _originals(p)
        if p.suffix == ".json":
            assert not rejected, p.name
            kept = originals
        else:  # JSONL / TXT: one row per non-empty line, numbered as in the file
            numbered = [(i, line) for i, line in enumerate(p.read_text(encoding="utf-8").split("\n"), 1)]
            lines = [i for i, line in numbered if line.strip()]
            kept = [o for i, o in zip(lines, originals, strict=True) if i not in rejected]
        assert res.frame.height == len(kept), p.name
        for row, original in zip(res.frame.to_dicts(), kept, strict=True):
            fmt = json.loads(row["meta"])["_fmt"]["format"]
            assert to_format(row, fmt) == original, (p.name, row["source"])
            if fmt in EXPORT_OF:
                assert convert_row(row, EXPORT_OF[fmt], keep_meta=True) == original, (p.name, row["source"])
        checked += res.frame.height
        repaired += res.repaired
    assert checked > 5000 and repaired >= 1  # the repaired rows are part of the round trip


def test_medicalgpt_unanswered_conversations_are_the_only_rejects(shared_data):
    res = load([shared_data / "medicalgpt-samples" / "sharegpt_zh_1K_format.jsonl"])
    assert res.rejects.height == 7 and res.frame.height == 993
    assert all("answer" in r and "conversation" in r for r in res.rejects["reason"].to_list())
