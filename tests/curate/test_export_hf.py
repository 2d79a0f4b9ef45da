"""An export folder loads as-is with the Hugging Face conventions: `datasets.load_dataset(dir)` and the
TRL CLI's `trl sft --dataset_name dir`, next to other JSONL files (dataset card with `configs:`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from curate.cli import main


def raw_rows(path: Path, n: int = 20) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(n):
            row = {
                "instruction": f"question {i}: why does pod {i} restart?",
                "input": "",
                "output": f"answer {i}: read the logs of pod {i} with kubectl logs --previous",
                "split": "eval" if i % 5 == 0 else "train",
            }
            fh.write(json.dumps(row) + "\n")
    return path


def export(data: Path, out: Path, *args: str) -> dict:
    res = CliRunner().invoke(main, ["export", str(data), "-o", str(out), "--json", *args])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def test_load_dataset_reads_the_export_folder(tmp_path):
    data = raw_rows(tmp_path / "in" / "raw.jsonl")
    out = tmp_path / "out"
    summary = export(data, out / "qa.trl.jsonl")
    assert summary["dataset_card"] == str(out / "README.md")
    (out / "other.jsonl").write_text('{"unrelated": 1}\n')  # curated/dropped files live here too
    from datasets import load_dataset

    ds = load_dataset(str(out), cache_dir=str(tmp_path / "hf"))
    assert set(ds) == {"train", "validation"}
    assert ds["train"].num_rows == 16 and ds["validation"].num_rows == 4
    assert ds["train"][0]["messages"][0]["role"] == "user"

    # a second export into the folder: another config; the first stays the default
    export(data, out / "qa.alpaca.jsonl", "--format", "alpaca")
    again = load_dataset(str(out), cache_dir=str(tmp_path / "hf2"))
    assert "messages" in again["train"].column_names
    alpaca = load_dataset(str(out), "qa.alpaca", cache_dir=str(tmp_path / "hf3"))
    assert "instruction" in alpaca["train"].column_names
    # re-exporting changes nothing in the card
    before = (out / "README.md").read_text()
    export(data, out / "qa.trl.jsonl")
    assert (out / "README.md").read_text() == before


def test_a_readme_that_is_not_a_card_is_left_alone(tmp_path):
    data = raw_rows(tmp_path / "in" / "raw.jsonl")
    (tmp_path / "out").mkdir()
    readme = tmp_path / "out" / "README.md"
    readme.write_text("# my notes\n")
    summary = export(data, tmp_path / "out" / "qa.jsonl")
    assert "not a dataset card" in summary["dataset_card_skipped"]
    assert readme.read_text() == "# my notes\n"


def test_llamafactory_dataset_info_still_written(tmp_path):
    data = raw_rows(tmp_path / "in" / "raw.jsonl")
    summary = export(data, tmp_path / "lf" / "qa.json", "--format", "llamafactory")
    info = json.loads(Path(summary["dataset_info"]).read_text())
    assert info["qa"]["file_name"] == "qa.json" and info["qa_eval"]["file_name"] == "qa.eval.json"


@pytest.mark.slow
def test_trl_sft_cli_trains_on_the_export_folder(tmp_path, tiny_models):
    data = raw_rows(tmp_path / "in" / "raw.jsonl")
    out = tmp_path / "out"
    export(data, out / "qa.trl.jsonl")
    trl = Path(sys.executable).with_name("trl")
    if not trl.exists():
        pytest.skip("the trl console script is not installed next to this Python")
    env = {**os.environ, "HF_DATASETS_CACHE": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}
    env["HF_DATASETS_OFFLINE"] = "1"
    cmd = [
        str(trl), "sft", "--model_name_or_path", str(tiny_models["lm"]), "--dataset_name", str(out),
        "--max_steps", "1", "--per_device_train_batch_size", "2", "--output_dir", str(tmp_path / "run"),
        "--report_to", "none", "--save_strategy", "no", "--use_cpu",
        "--eval_strategy", "steps", "--eval_steps", "1", "--dataset_test_split", "validation",
    ]  # fmt: skip
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    assert (tmp_path / "run" / "model.safetensors").is_file()
    assert "eval_loss" in p.stdout + p.stderr
