"""The `train` CLI: fast help, generated options, plan/check output, the no-argument default, and an end
to end sft -> export -> eval through the commands."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

from click.testing import CliRunner

from train.cli import main


def test_help_is_fast_and_imports_no_ml_library():
    code = (
        "import sys; from click.testing import CliRunner; from train.cli import main; "
        "r = CliRunner().invoke(main, ['sft', '--help']); assert r.exit_code == 0, r.output; "
        "assert '--lora-r' in r.output and '--method' in r.output; "
        "heavy = [m for m in ('torch', 'transformers', 'trl', 'peft', 'datasets') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_plan_table_and_article_example():
    r = CliRunner().invoke(main, ["plan", "--table", "--name", "Qwen1.5-14B-Chat-GPTQ-Int4", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert (
        out["epochs_table"]["100"] == 15
        and out["epochs_table"]["1000"] == 10
        and out["epochs_table"]["10000"] == 2
    )
    a = out["anatomy"]
    r = CliRunner().invoke(main, ["plan", "--table", "--stage", "dpo", "--json"])
    assert r.exit_code == 0, r.output
    dpo_table = json.loads(r.stdout)["epochs_table"]
    assert dpo_table["100"] == 3 and dpo_table["100000"] == 1 and "preference" in r.stderr
    assert (a["series"], a["version"], a["size"], a["finetune"], a["quantization"], a["bits"]) == (
        "Qwen",
        "1.5",
        "14B",
        "chat",
        "GPTQ",
        4,
    )


def test_plan_and_check_on_data(tiny_models, train_data):
    r = CliRunner().invoke(
        main, ["plan", str(train_data["sft"]), "--model", str(tiny_models["lm"]), "--json"]
    )
    assert r.exit_code == 0, r.output
    plan = json.loads(r.stdout)["plan"]
    assert plan["rows"] == 24 and plan["epochs"] == 15 and plan["lengths"]["max"] >= plan["lengths"]["p50"]
    assert "memory" in plan and "lora" in plan["memory"]
    r = CliRunner().invoke(
        main, ["check", str(train_data["sft"]), "--model", str(tiny_models["lm"]), "--json"]
    )
    assert r.exit_code == 0, r.output
    rep = json.loads(r.stdout)
    assert rep["ok"] and rep["counts"]["usable"] == 24
    assert "dim = masked" in r.stderr
    # wrong kind of data for the stage: usage of the data is an error with exit 2
    r = CliRunner().invoke(
        main, ["check", str(train_data["text"]), "--model", str(tiny_models["lm"]), "--stage", "dpo"]
    )
    assert r.exit_code == 2 and "no usable rows" in r.stderr


def test_no_arguments_picks_the_curated_export(tiny_models, train_data, tmp_path, monkeypatch):
    shutil.copy(train_data["sft"], tmp_path / "ops.deduped.jsonl")
    shutil.copy(train_data["sft"], tmp_path / "ops.exported.jsonl")
    shutil.copy(train_data["pref"], tmp_path / "ops.paired.jsonl")
    (tmp_path / "train.yaml").write_text(f"model: {tiny_models['lm']}\n")
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(main, ["sft", "--dry-run"])
    assert r.exit_code == 0, r.output
    assert "train.yaml" in r.stderr and "ops.exported.jsonl" in r.stderr
    r = CliRunner().invoke(main, ["dpo", "--dry-run"])
    assert r.exit_code == 0 and "ops.paired.jsonl" in r.stderr


def test_usage_errors(tiny_models, train_data):
    r = CliRunner().invoke(main, ["sft", str(train_data["sft"]), "--set", "lora_r=x", "--model", "m"])
    assert r.exit_code == 2 and "lora_r" in r.output
    r = CliRunner().invoke(main, ["sft", str(train_data["sft"]), "--dry-run"])
    assert r.exit_code == 2 and "no model" in r.stderr


def test_sft_export_eval_through_the_cli(tiny_models, train_data, tmp_path):
    run = tmp_path / "run"
    args = ["sft", str(train_data["sft"]), "--model", str(tiny_models["lm"]), "--output", str(run)]
    args += ["--max-steps", "2", "--global-batch", "4", "--json"]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["status"] == "done" and out["plan"]["total_steps"] == 2
    assert "train sft plan" in r.stderr and "train sft check" in r.stderr
    # the saved resolved config is re-runnable with --config: the finished run is found, not retrained
    finished = json.loads((run / "run.json").read_text())["finished"]
    r = CliRunner().invoke(main, ["sft", "--config", str(run / "config.yaml"), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["status"] == "done", r.stderr[-1500:]
    assert "already finished" in r.stderr, r.stderr[-1500:]
    assert json.loads((run / "run.json").read_text())["finished"] == finished
    r = CliRunner().invoke(main, ["export", str(run), "--json"])
    assert r.exit_code == 0, r.output
    assert (run / "export" / "model.safetensors").is_file()
    r = CliRunner().invoke(
        main, ["eval", str(run), "--data", str(train_data["sft"]), "--limit", "4", "--json"]
    )
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["rows"] == 4


def test_plan_and_check_read_train_yaml(tiny_models, train_data, tmp_path, monkeypatch):
    """Like the stage commands, plan and check use train.yaml (or tamis.yaml) from the current directory."""
    (tmp_path / "train.yaml").write_text(f"model: {tiny_models['lm']}\nmax_length: 96\n")
    monkeypatch.chdir(tmp_path)
    for cmd in ("plan", "check"):
        r = CliRunner().invoke(main, [cmd, str(train_data["sft"]), "--json"])
        assert r.exit_code == 0, r.output
        assert "using config train.yaml" in r.stderr
        out = json.loads(r.stdout)
        assert (out["plan"]["max_length"] if cmd == "plan" else out["counts"]["max_length"]) == 96


def test_unwritable_output_is_a_usage_error_not_a_crash(tiny_models, train_data, tmp_path):
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    args = ["sft", str(train_data["sft"]), "--model", str(tiny_models["lm"]), "--output", str(blocker)]
    res = CliRunner().invoke(main, [*args, "--max-steps", "1"])
    assert res.exit_code == 2 and "Not a directory" in res.output
    res = CliRunner().invoke(main, ["eval", str(tmp_path), "--limit", "0"])
    assert res.exit_code == 2
