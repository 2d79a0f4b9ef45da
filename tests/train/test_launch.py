"""--num-processes: data parallel across 2 CPU processes (torchrun + gloo), the same command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from train.launch import preset


def test_presets():
    assert preset("ddp", 4, gpu=True, bf16=True)["distributed_type"] == "MULTI_GPU"
    z3 = preset("zero3", 8, gpu=True, bf16=True)
    assert z3["distributed_type"] == "DEEPSPEED" and z3["deepspeed_config"]["zero_stage"] == 3
    assert preset("fsdp", 2, gpu=True, bf16=False)["fsdp_config"]["fsdp_version"] == 2


def _trap_folder(tmp_path):
    """A working directory holding a user's train.py and curate.py, which the launch must not import."""
    d = tmp_path / "project"
    d.mkdir()
    for name in ("train.py", "curate.py"):
        (d / name).write_text(
            "raise SystemExit('imported the user's " + name + " from the working directory')\n"
        )
    return d


@pytest.mark.slow
def test_two_cpu_processes(tiny_models, train_data, tmp_path):
    """From a folder with a train.py and a curate.py (the launched `-m train.cli` children must not
    import them)."""
    out = tmp_path / "ddp"
    cmd = [
        str(Path(sys.executable).with_name("train")),  # the console script, as a user runs it
        "sft",
        str(train_data["sft"]),
        "--model",
        str(tiny_models["lm"]),
    ]
    cmd += ["--max-steps", "2", "--global-batch", "8", "--output", str(out), "--num-processes", "2"]
    env = {
        k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "TAMIS_LAUNCHED")
    }
    proc = subprocess.run(
        cmd, capture_output=True, text=True, env=env, timeout=600, cwd=_trap_folder(tmp_path)
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    meta = json.loads((out / "run.json").read_text())
    assert meta["status"] == "done" and meta["plan"]["grad_accum"] == 1  # 2 processes x 4 = global 8
    # tokens are gathered from both ranks: 2 steps x 8 rows
    assert meta["train_metrics"]["epoch"] == pytest.approx(16 / 24, abs=0.01)


def test_fsdp_preset_gathers_a_full_state_dict():
    # Trainer.save_model saves nothing under SHARDED_STATE_DICT
    assert preset("fsdp", 2, gpu=True, bf16=True)["fsdp_config"]["fsdp_state_dict_type"] == "FULL_STATE_DICT"
    z3 = preset("zero3", 2, gpu=True, bf16=True)["deepspeed_config"]
    assert z3["zero3_save_16bit_model"] is True  # ZeRO-3 gathers 16-bit weights when saving


def _launch(monkeypatch, tiny_models, train_data, distributed, gpus):
    from click.testing import CliRunner

    import train.launch as L
    from train.cli import main

    monkeypatch.delenv("TAMIS_LAUNCHED", raising=False)
    monkeypatch.setattr(L, "_gpu_count", lambda: gpus)
    calls = []
    monkeypatch.setattr(subprocess, "call", lambda *a, **k: calls.append(a) or 0)
    args = ["sft", str(train_data["sft"]), "--model", str(tiny_models["lm"]), "--num-processes", "2"]
    return CliRunner().invoke(main, [*args, "--distributed", distributed]), calls


@pytest.mark.parametrize("distributed", ["zero2", "zero3"])
def test_deepspeed_presets_need_deepspeed(distributed, monkeypatch, tiny_models, train_data):
    monkeypatch.setitem(sys.modules, "deepspeed", None)  # `import deepspeed` raises ImportError
    r, calls = _launch(monkeypatch, tiny_models, train_data, distributed, gpus=2)
    assert r.exit_code == 2 and "needs DeepSpeed" in r.stderr and not calls
    # on CPU the deepspeed/fsdp presets are a usage error too (exit 2, not a traceback)
    r, calls = _launch(monkeypatch, tiny_models, train_data, distributed, gpus=0)
    assert r.exit_code == 2 and "needs GPUs" in r.stderr and not calls


def test_fsdp_launches_without_deepspeed(monkeypatch, tiny_models, train_data):
    monkeypatch.setitem(sys.modules, "deepspeed", None)
    r, calls = _launch(monkeypatch, tiny_models, train_data, "fsdp", gpus=2)
    assert r.exit_code == 0, r.output
    cmd = calls[0][0]
    assert "accelerate.commands.launch" in cmd
    os.unlink(cmd[cmd.index("--config_file") + 1])  # the generated preset file


class _FakeTrainer:
    def __init__(self, sharded: bool, main: bool):
        self.is_deepspeed_enabled = sharded
        self.is_fsdp_enabled = False
        self.main = main
        self.saved = []
        self.model = self

    def is_world_process_zero(self):
        return self.main

    def save_model(self, out):
        self.saved.append(("save_model", out))

    def save_pretrained(self, out, **kw):  # save_final on the (unsharded) model
        self.saved.append(("save_pretrained", out))


class _FakeTok:
    def __init__(self):
        self.saved = []

    def save_pretrained(self, out):
        self.saved.append(out)


@pytest.mark.parametrize("main", [True, False])
def test_sharded_models_are_saved_by_every_rank(main, tmp_path):
    """ZeRO-3/FSDP: every rank enters trainer.save_model (the weights are gathered collectively); the
    tokenizer is written by the main process only. Unsharded runs save on the main process only."""
    from train.methods import save_trained

    t, tok = _FakeTrainer(sharded=True, main=main), _FakeTok()
    save_trained(t, tok, tmp_path / "final", "lora")
    assert t.saved == [("save_model", str(tmp_path / "final"))]
    assert bool(tok.saved) is main
    t, tok = _FakeTrainer(sharded=False, main=main), _FakeTok()
    save_trained(t, tok, tmp_path / "final2", "lora")
    assert bool(t.saved) is main and all(kind == "save_pretrained" for kind, _ in t.saved)


def test_pissa_with_sharded_presets_is_refused():
    from train.config import ConfigError, resolve

    with pytest.raises(ConfigError, match="pissa"):
        resolve("sft", sets={"method": "pissa", "num_processes": "2", "distributed": "zero3"})
    resolve("sft", sets={"method": "pissa", "num_processes": "2", "distributed": "zero2"})


def test_launch_never_imports_from_the_working_directory(monkeypatch, tiny_models, train_data):
    """Both launchers run with a safe sys.path (the children inherit PYTHONSAFEPATH)."""
    import train.launch as L
    from train.config import resolve

    cfg = resolve(
        "sft", flags={"model": str(tiny_models["lm"]), "data": [str(train_data["sft"])], "num_processes": 2}
    )
    for gpus in (0, 2):
        monkeypatch.setattr(L, "_gpu_count", lambda g=gpus: g)
        cmd, env = L.accelerate_command(cfg, ["sft"])
        assert cmd[:2] == [sys.executable, "-P"] and env["PYTHONSAFEPATH"] == "1"
