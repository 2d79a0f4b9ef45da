"""Inputs beyond single files (issue 18 item 4, issue 15 item 8): save_to_disk folders, Parquet shard
folders, a LLaMA-Factory dataset_info.json with its column mappings, and a symlink loop."""

from __future__ import annotations

import json
import os

import polars as pl
from click.testing import CliRunner

from curate.cli import main
from curate.io import load


def test_save_to_disk_folders_are_inputs(tmp_path):
    from datasets import Dataset, DatasetDict

    rows = {"instruction": ["q1", "q2"], "input": ["", ""], "output": ["a1", "a2"]}
    Dataset.from_dict(rows).save_to_disk(str(tmp_path / "one"))
    DatasetDict(
        {"train": Dataset.from_dict(rows), "test": Dataset.from_dict({"question": ["q3"], "answer": ["a3"]})}
    ).save_to_disk(str(tmp_path / "dict"))
    res = load([tmp_path / "one"])
    assert res.frame["question"].to_list() == ["q1", "q2"] and res.rejects.height == 0
    res = load([tmp_path / "dict"])
    # each split is read with its own columns; the split is the row's sheet
    assert sorted(res.frame["question"].to_list()) == ["q1", "q2", "q3"]
    assert set(res.frame["source"].struct.field("sheet")) == {"train", "test"}


def test_a_folder_of_parquet_shards_is_an_input(tmp_path):
    (tmp_path / "data").mkdir()
    for i in range(3):
        pl.DataFrame({"query": [f"q{i}"], "response": [f"a{i}"]}).write_parquet(
            tmp_path / "data" / f"train-0000{i}-of-00003.parquet"
        )
    res = load([tmp_path])
    assert res.frame["question"].to_list() == ["q0", "q1", "q2"]
    assert len(res.files) == 3
    r = CliRunner().invoke(main, ["stats", str(tmp_path), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout.strip().splitlines()[-1])["rows"] == 3


def test_llamafactory_dataset_info_reads_every_local_dataset_with_its_columns(tmp_path):
    (tmp_path / "qa.json").write_text(json.dumps([{"ask": "q1", "ctx": "c", "reply": "a1"}]))
    (tmp_path / "kto.json").write_text(
        json.dumps(
            [
                {
                    "msgs": [{"role": "user", "content": "q2"}, {"role": "assistant", "content": "a2"}],
                    "good": False,
                }
            ]
        )
    )
    (tmp_path / "pt.jsonl").write_text('{"body": "some text"}\n')
    info = {
        "qa": {"file_name": "qa.json", "columns": {"prompt": "ask", "query": "ctx", "response": "reply"}},
        "kto": {
            "file_name": "kto.json",
            "formatting": "sharegpt",
            "columns": {"messages": "msgs", "kto_tag": "good"},
            "tags": {
                "role_tag": "role",
                "content_tag": "content",
                "user_tag": "user",
                "assistant_tag": "assistant",
            },
        },
        "pt": {"file_name": "pt.jsonl", "columns": {"prompt": "body"}},
        "remote": {"hf_hub_url": "someone/data"},
    }
    (tmp_path / "dataset_info.json").write_text(json.dumps(info))
    res = load([tmp_path / "dataset_info.json"])
    by_kind = {r["kind"]: r for r in res.frame.to_dicts()}
    assert by_kind["sft"]["question"] == "q1\nc" and by_kind["sft"]["answer"] == "a1"
    assert by_kind["kto"]["question"] == "q2" and by_kind["kto"]["label"] is False
    assert by_kind["text"]["text"] == "some text"
    assert any("remote" in e and "not read" in e for e in res.explanations)
    r = CliRunner().invoke(main, ["stats", str(tmp_path / "dataset_info.json"), "--json"])
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["rows"] == 3 and summary["kinds"] == {"kto": 1, "sft": 1, "text": 1}


def test_a_symlink_loop_is_a_clean_usage_error(tmp_path):
    loop = tmp_path / "loop.jsonl"
    os.symlink(loop.name, loop)
    for cmd in (["ingest", str(loop)], ["stats", str(loop), "--json"], ["export", str(loop)]):
        r = CliRunner().invoke(main, cmd)
        assert r.exit_code == 2, (cmd, r.output)
        assert "symlink loop" in r.output and "Traceback" not in r.output
