"""--num-processes: data parallel across 2 CPU processes (torchrun + gloo), the same command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from train.launch import preset


def test_presets():
    assert preset("ddp", 4, gpu=True, bf16=True)["distributed_type"] == "MULTI_GPU"
    z3 = preset("zero3", 8, gpu=True, bf16=True)
    assert z3["distributed_type"] == "DEEPSPEED" and z3["deepspeed_config"]["zero_stage"] == 3
    assert preset("fsdp", 2, gpu=True, bf16=False)["fsdp_config"]["fsdp_version"] == 2


@pytest.mark.slow
def test_two_cpu_processes(tiny_models, train_data, tmp_path):
    out = tmp_path / "ddp"
    cmd = [
        sys.executable,
        "-m",
        "train.cli",
        "sft",
        str(train_data["sft"]),
        "--model",
        str(tiny_models["lm"]),
    ]
    cmd += ["--max-steps", "2", "--global-batch", "8", "--output", str(out), "--num-processes", "2"]
    env = {
        k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "TAMIS_LAUNCHED")
    }
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    meta = json.loads((out / "run.json").read_text())
    assert meta["status"] == "done" and meta["plan"]["grad_accum"] == 1  # 2 processes x 4 = global 8
    # tokens are gathered from both ranks: 2 steps x 8 rows
    assert meta["train_metrics"]["epoch"] == pytest.approx(16 / 24, abs=0.01)
