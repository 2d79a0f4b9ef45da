"""The row-by-row reader builds its frame in blocks (to bound memory): the blocks must add up to
exactly the frame, rejects and order that one block gives."""

from __future__ import annotations

import importlib
import json

import pytest

from curate.io import load
from curate.io.readers import read_rows

load_module = importlib.import_module("curate.io.load")  # the module, not the function it exports


def _mixed_jsonl(path):
    lines = []
    for i in range(23):
        lines.append(json.dumps({"instruction": f"question {i}", "output": f"answer {i}"}))
        if i % 5 == 1:
            lines.append('{"instruction": "cut')  # invalid JSON
        if i % 7 == 2:
            lines.append(json.dumps({"instruction": "x", "output": "\ud800"}))  # lone surrogate
        if i % 6 == 3:
            lines.append("[1, 2]")  # not an object
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _unwritable_last(rows):
    # a row that only the frame builder turns down (as a lone surrogate once was)
    bad = [i for i, r in enumerate(rows) if r.get("question") == "question 4"]
    return [(i, ("question", "cannot hold it")) for i in bad]


@pytest.mark.parametrize("block", [1, 2, 3, 1000])
def test_blocks_give_the_frame_and_rejects_of_one_block(tmp_path, monkeypatch, block):
    src = tmp_path / "mixed.jsonl"
    _mixed_jsonl(src)
    real_frame_of = load_module._frame_of

    def frame_of(rows):
        unheld = _unwritable_last(rows)
        frame, _ = real_frame_of([r for i, r in enumerate(rows) if i not in dict(unheld)])
        return frame, unheld

    monkeypatch.setattr(load_module, "_frame_of", frame_of)
    whole = load([src])
    monkeypatch.setattr(load_module, "_FRAME_BLOCK", block)
    blocked = load([src])
    assert blocked.frame.equals(whole.frame)
    assert blocked.rejects.equals(whole.rejects)
    assert whole.frame.height == 22
    # the unheld row is listed after the rows rejected while reading, as before
    assert whole.rejects["reason"].to_list()[-1] == "cannot hold it"
    assert whole.rejects["line"].to_list()[-1] == 8
    assert whole.rejects["raw"].to_list()[-1] == json.dumps(
        {"instruction": "question 4", "output": "answer 4"}
    )
    assert blocked.explanations == whole.explanations


def test_jsonl_reader_keeps_the_lines_not_a_second_copy_of_the_text(tmp_path):
    src = tmp_path / "a.jsonl"
    _mixed_jsonl(src)
    info, rows = read_rows(src)
    assert info.lines[0].startswith('{"instruction": "question 0"')
    frame = rows.gi_frame
    assert frame.f_locals["dec"].text == ""
    assert sum(1 for _ in rows) == 23 + 5 + 3 + 4
    # the lines that parsed were released (their rows hold them); a reject's raw line comes back
    kept = [line for line in info.lines if line is not None]
    assert all(not line.startswith('{"instruction": "question') for line in kept)
    assert '{"instruction": "cut' in kept
    assert info.reread()[0] == json.dumps({"instruction": "question 0", "output": "answer 0"})


def test_rejected_rows_keep_their_exact_line_from_a_compressed_crlf_file(tmp_path):
    import gzip

    text = '{"instruction": "a",  "output": "b"}\r\n{"instruction": "x", "output": "\\ud800"}\r\n'
    src = tmp_path / "c.jsonl.gz"
    src.write_bytes(gzip.compress(text.encode()))
    res = load([src])
    assert res.frame.height == 1
    assert res.rejects["raw"].to_list() == ['{"instruction": "x", "output": "\\ud800"}']
    assert res.rejects["line"].to_list() == [2]
