"""A killed run resumes from its last checkpoint to the same final state; changed data or settings are
refused unless forced."""

from __future__ import annotations

import json
import shutil

import pytest

from train.run import RunError, last_checkpoint, prepare, train


class Killed(Exception):
    pass


def _kill_at(step: int):
    from transformers import TrainerCallback

    class Kill(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if state.global_step == step:
                raise Killed(step)

    return Kill()


def _adapter(run_dir):
    from safetensors.torch import load_file

    return load_file(str(run_dir / "final" / "adapter_model.safetensors"))


def test_resume_after_kill_matches_uninterrupted(tiny_models, train_data, quick_cfg, tmp_path):
    import torch

    kw = dict(max_steps=6, save_steps=2, learning_rate=1e-2)
    ref = train(prepare(quick_cfg("sft", tiny_models["lm"], train_data["sft"], tmp_path / "ref", **kw)))

    cfg = quick_cfg("sft", tiny_models["lm"], train_data["sft"], tmp_path / "killed", **kw)
    with pytest.raises(Killed):
        train(prepare(cfg), callbacks=[_kill_at(5)])
    run_dir = tmp_path / "killed"
    # (an exception is not a kill: the run is marked failed, and resumes like a killed one)
    assert json.loads((run_dir / "run.json").read_text())["status"] == "failed"
    assert last_checkpoint(run_dir).name == "checkpoint-4"
    # a checkpoint killed while being written (no trainer_state.json) is skipped
    (run_dir / "checkpoint-9").mkdir()
    assert last_checkpoint(run_dir).name == "checkpoint-4"
    shutil.rmtree(run_dir / "checkpoint-9")

    train(prepare(cfg))  # the same command again
    meta = json.loads((run_dir / "run.json").read_text())
    assert (
        meta["status"] == "done"
        and meta["resumed_from"].endswith("checkpoint-4")
        and meta["global_step"] == 6
    )
    a, b = _adapter(ref), _adapter(run_dir)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6), k
    # the loss curve continues where it stopped
    ref_meta = json.loads((ref / "run.json").read_text())
    assert meta["last_loss"] == pytest.approx(ref_meta["last_loss"], abs=1e-5)


def test_resume_refuses_changed_data_or_settings(tiny_models, train_data, quick_cfg, tmp_path):
    out = tmp_path / "run"
    cfg = quick_cfg("sft", tiny_models["lm"], train_data["sft"], out, max_steps=3, save_steps=1)
    with pytest.raises(Killed):
        train(prepare(cfg), callbacks=[_kill_at(2)])
    other = tmp_path / "other.jsonl"
    other.write_text(train_data["sft"].read_text().replace("is ready", "is up"))
    changed = quick_cfg("sft", tiny_models["lm"], other, out, max_steps=3, save_steps=1)
    with pytest.raises(RunError, match="training data changed"):
        train(prepare(changed))
    lr = quick_cfg(
        "sft", tiny_models["lm"], train_data["sft"], out, max_steps=3, save_steps=1, learning_rate=1e-3
    )
    with pytest.raises(RunError, match="learning_rate"):
        train(prepare(lr))
    forced = quick_cfg("sft", tiny_models["lm"], other, out, max_steps=3, save_steps=1, force=True)
    train(prepare(forced))
    meta = json.loads((out / "run.json").read_text())
    assert meta["status"] == "done" and meta["resumed_from"]
    # a finished run is not retrained
    again = train(prepare(forced))
    assert json.loads((again / "run.json").read_text())["finished"] == meta["finished"]


def test_default_run_dir_is_deterministic_and_resumes(
    tiny_models, train_data, quick_cfg, tmp_path, monkeypatch
):
    """Without --output the same command maps to the same run directory: a killed run resumes from
    its checkpoint, a finished one is left untouched, changed settings get their own directory."""
    from train.run import default_run_dir

    monkeypatch.chdir(tmp_path)
    kw = dict(max_steps=3, save_steps=1)
    cfg = quick_cfg("sft", tiny_models["lm"], train_data["sft"], None, **kw)
    assert cfg.output is None
    with pytest.raises(Killed):
        train(prepare(cfg), callbacks=[_kill_at(2)])
    runs = list((tmp_path / "runs").iterdir())
    assert len(runs) == 1 and runs[0].name.startswith(f"sft-{tiny_models['lm'].name}-lora-")
    run_dir = runs[0]
    # (an exception is not a kill: the run is marked failed, and resumes like a killed one)
    assert json.loads((run_dir / "run.json").read_text())["status"] == "failed"

    again = quick_cfg("sft", tiny_models["lm"], train_data["sft"], None, **kw)  # the same command again
    done = train(prepare(again))
    assert done.resolve() == run_dir.resolve()
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["status"] == "done" and meta["resumed_from"].endswith("checkpoint-1")
    assert meta["global_step"] == 3

    # a finished run is not retrained or overwritten
    final_mtime = (run_dir / "final" / "adapter_model.safetensors").stat().st_mtime_ns
    assert train(prepare(again)).resolve() == run_dir.resolve()
    assert json.loads((run_dir / "run.json").read_text())["finished"] == meta["finished"]
    assert (run_dir / "final" / "adapter_model.safetensors").stat().st_mtime_ns == final_mtime

    # other key settings or other data: another directory (never the old run's)
    lr = quick_cfg("sft", tiny_models["lm"], train_data["sft"], None, learning_rate=1e-3, **kw)
    fp = json.loads((run_dir / "run.json").read_text())["data_fingerprint"]
    assert default_run_dir(lr, fp) != default_run_dir(again, fp)
    assert default_run_dir(again, fp) == default_run_dir(again, fp)
    assert default_run_dir(again, "0" * 16) != default_run_dir(again, fp)
    assert tmp_path / default_run_dir(again, fp) == run_dir


def test_finished_run_is_not_overwritten_even_with_force(tiny_models, train_data, quick_cfg, tmp_path):
    out = tmp_path / "run"
    train(prepare(quick_cfg("sft", tiny_models["lm"], train_data["sft"], out, max_steps=1)))
    finished = json.loads((out / "run.json").read_text())["finished"]
    other = quick_cfg(
        "sft", tiny_models["lm"], train_data["sft"], out, max_steps=1, learning_rate=1e-3, force=True
    )
    with pytest.raises(RunError, match="finished run"):
        train(prepare(other))
    assert json.loads((out / "run.json").read_text())["finished"] == finished


def test_run_key_covers_every_setting_that_changes_the_result():
    from dataclasses import replace

    from train.config import DPOConfig, KTOConfig, SFTConfig
    from train.run import run_key

    for cls, changes in (
        (KTOConfig, {"desirable_weight": 1.33, "lora_dropout": 0.1, "weight_decay": 0.1}),
        (DPOConfig, {"label_smoothing": 0.1, "max_grad_norm": 0.5, "warmup_ratio": 0.2}),
        (
            SFTConfig,
            # the process count changes the global batch rounding and the data sharding
            {
                "padding_free": True,
                "fast_loss": False,
                "bf16": True,
                "eval_data": ["e.jsonl"],
                "num_processes": 2,
            },
        ),
    ):
        base = cls(model="m", data=["d.jsonl"])
        key = run_key(base, "fp")
        for name, value in changes.items():
            assert run_key(replace(base, **{name: value}), "fp") != key, (cls.__name__, name)
        # where it goes and how it logs or launches do not make another run
        same = replace(base, output="x", logging_steps=7, save_steps=9, distributed="zero2", force=True)
        assert run_key(same, "fp") == key


def test_a_run_directory_being_created_is_not_foreign(tiny_models, train_data, quick_cfg, tmp_path):
    """DDP: another rank may look at the directory while the main process writes run.json (atomically,
    through a hidden temporary file) and config.yaml; that is not a foreign directory."""
    from train.run import check_resume

    cfg = quick_cfg("sft", tiny_models["lm"], train_data["sft"], tmp_path / "r")
    run_dir = tmp_path / "r"
    run_dir.mkdir()
    (run_dir / ".run.json.abc.tmp").write_text("{")
    (run_dir / "config.yaml").write_text("stage: sft\n")
    assert check_resume(run_dir, cfg, "fp") == (None, [])
    (run_dir / "notes.txt").write_text("mine")
    with pytest.raises(RunError, match="not a tamis run directory"):
        check_resume(run_dir, cfg, "fp")
