"""Signals, failures and the log a run leaves: SIGINT/SIGTERM save a checkpoint and mark the run
`interrupted` (exit 130/143), a run that raises is `failed`, metrics.jsonl never repeats a step after a
resume, progress lines (step/total, loss, lr, tokens/s, ETA) and one --json line also on failure."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections import Counter

import pytest

from train.callbacks import TrainInterrupted, drop_after
from train.run import last_checkpoint, prepare, train


def _signal_at(step: int, signum: int):
    from transformers import TrainerCallback

    class Send(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            if state.global_step == step:
                os.kill(os.getpid(), signum)  # arrives mid-step, as Ctrl-C would

    return Send()


def _raise_at(step: int):
    from transformers import TrainerCallback

    class Boom(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if state.global_step == step:
                raise RuntimeError("disk full")

    return Boom()


def _loss_steps(run_dir) -> Counter:
    lines = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return Counter(x["step"] for x in lines if "loss" in x)


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_saves_a_checkpoint_and_marks_interrupted(
    signum, code, tiny_models, train_data, quick_cfg, tmp_path
):
    run_dir = tmp_path / "run"
    cfg = quick_cfg("sft", tiny_models["lm"], train_data["sft"], run_dir, max_steps=6)  # save_steps 1000
    # the handler the run found (SIG_IGN, not Python's default, when pytest runs as a background job)
    sigint_before = signal.getsignal(signal.SIGINT)
    with pytest.raises(TrainInterrupted) as info:
        train(prepare(cfg), callbacks=[_signal_at(2, signum)], progress=False)
    assert info.value.exit_code == code
    meta = json.loads((run_dir / "run.json").read_text())
    # the step running when the signal came is finished and checkpointed; no final/ (not done)
    assert meta["status"] == "interrupted" and meta["global_step"] == 3
    assert last_checkpoint(run_dir).name == "checkpoint-3" and not (run_dir / "final").exists()
    assert signal.getsignal(signal.SIGINT) is sigint_before  # handlers restored
    if signum == signal.SIGTERM:
        train(prepare(cfg), progress=False)  # the same command resumes to the end
        meta = json.loads((run_dir / "run.json").read_text())
        assert meta["status"] == "done" and meta["resumed_from"].endswith("checkpoint-3")
        assert meta["global_step"] == 6


def test_a_run_that_raises_is_failed(tiny_models, train_data, quick_cfg, tmp_path):
    run_dir = tmp_path / "run"
    cfg = quick_cfg("sft", tiny_models["lm"], train_data["sft"], run_dir, max_steps=4)
    with pytest.raises(RuntimeError, match="disk full"):
        train(prepare(cfg), callbacks=[_raise_at(1)], progress=False)
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["status"] == "failed" and "disk full" in meta["error"]


def test_no_step_twice_in_metrics_after_resume(tiny_models, train_data, quick_cfg, tmp_path):
    run_dir = tmp_path / "run"
    cfg = quick_cfg("sft", tiny_models["lm"], train_data["sft"], run_dir, max_steps=5, save_steps=2)
    with pytest.raises(TrainInterrupted):
        train(prepare(cfg), callbacks=[_signal_at(2, signal.SIGINT)], progress=False)
    # as if killed after logging step 3 but before its checkpoint: the resume starts at checkpoint-2
    shutil.rmtree(run_dir / "checkpoint-3")
    assert _loss_steps(run_dir)[3] == 1
    train(prepare(cfg), progress=False)
    steps = _loss_steps(run_dir)
    assert sorted(steps) == [1, 2, 3, 4, 5] and set(steps.values()) == {1}


def test_drop_after_keeps_earlier_lines(tmp_path):
    p = tmp_path / "m.jsonl"
    p.write_text('{"step": 1, "loss": 2}\n{"step": 2, "loss": 1}\n{"step": 3, "loss"\n', encoding="utf-8")
    assert drop_after(p, 1) == 2
    assert p.read_text() == '{"step": 1, "loss": 2}\n'


def test_progress_lines_and_json_in_a_log(tiny_models, train_data, tmp_path):
    """Without a terminal: `step N/M (P%), loss, lr, tokens/s, ETA` lines instead of bare dicts, and one
    JSON line with exit_code and seconds; a failing command prints its JSON line too."""
    out = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "train.cli",
        "sft",
        str(train_data["sft"]),
        "--model",
        str(tiny_models["lm"]),
    ]
    cmd += ["--max-steps", "4", "--logging-steps", "1", "--global-batch", "4", "--output", str(out), "--json"]
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "TAMIS_LAUNCHED")}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [x for x in proc.stderr.splitlines() if x.startswith("step ")]
    assert [x.split(",")[0] for x in lines] == [
        "step 1/4 (25%)",
        "step 2/4 (50%)",
        "step 3/4 (75%)",
        "step 4/4 (100%)",
    ]
    assert "loss " in lines[0] and "lr " in lines[0] and "tokens/s" in lines[1] and "ETA" in lines[1]
    assert "{'loss'" not in proc.stderr  # transformers' bare dicts are gone
    (summary,) = [json.loads(x) for x in proc.stdout.splitlines()]
    assert summary["exit_code"] == 0 and summary["seconds"] > 0 and summary["status"] == "done"
    metrics = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert metrics[-1]["num_input_tokens_seen"] > 0
    bad = subprocess.run(
        [*cmd[:-1], "--lora-r", "0", "--json"], capture_output=True, text=True, env=env, timeout=120
    )
    (err,) = [json.loads(x) for x in bad.stdout.splitlines()]
    assert (
        bad.returncode == 2 and err["exit_code"] == 2 and "--lora-r" in err["error"] and "seconds" in err
    )  # the flag as given


def test_eval_batches_print_progress(monkeypatch, capsys):
    from train.evaluate import _batches

    monkeypatch.setenv("TAMIS_PROGRESS_SECONDS", "0")
    assert [len(b) for b in _batches(list(range(10)), 4)] == [4, 4, 2]
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("eval: 4/10 rows (40%)") and "rows/s" in err[0] and "ETA" in err[0]
    assert err[-1].startswith("eval: 10/10 rows (100%)")
    monkeypatch.setenv("TAMIS_PROGRESS_SECONDS", "3600")  # quick work prints nothing
    list(_batches(list(range(10)), 4))
    assert capsys.readouterr().err == ""


def test_sigterm_before_training_exits_143_with_the_json_line(tiny_models, train_data, tmp_path):
    """SIGTERM while the model loads (before the first step): exit 143, run.json `interrupted`, one
    JSON line on stdout."""
    import time

    out = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "train.cli",
        "sft",
        str(train_data["sft"]),
        "--model",
        str(tiny_models["lm"]),
    ]
    cmd += ["--max-steps", "50", "--output", str(out), "--json"]
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "TAMIS_LAUNCHED")}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.time() + 240
    while not (out / "run.json").is_file() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)  # run.json is written just before the model is loaded
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=240)
    assert proc.returncode == 143, stderr[-2000:]
    (line,) = [json.loads(x) for x in stdout.splitlines()]
    assert line["status"] == "interrupted" and line["exit_code"] == 143 and "SIGTERM" in line["error"]
    assert json.loads((out / "run.json").read_text())["status"] == "interrupted"
