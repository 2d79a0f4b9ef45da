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
    assert json.loads((run_dir / "run.json").read_text())["status"] == "running"
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
