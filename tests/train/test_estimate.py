"""Wall time and tokens/s: timed on the real model by `train plan`, recorded by every run, read back by
later plans and pre-flights; a CPU run of more than an hour is announced before it starts."""

from __future__ import annotations

import json

from click.testing import CliRunner

from train.cli import main


def _plan(args):
    r = CliRunner().invoke(main, ["plan", *args, "--json"])
    assert r.exit_code == 0, r.output + r.stderr
    return json.loads(r.stdout)["plan"], r.stderr


def test_plan_times_steps_then_reuses_the_measurement(tiny_models, train_data, tmp_path, monkeypatch):
    monkeypatch.setenv("TAMIS_THROUGHPUT", str(tmp_path / "speed.jsonl"))
    args = [str(train_data["sft"]), "--model", str(tiny_models["lm"]), "--global-batch", "8"]
    plan, err = _plan(args)
    t = plan["time"]
    assert t["source"].startswith("timed") and t["seconds_per_step"] > 0 and t["tokens_per_s"] > 0
    assert t["seconds"] == round(plan["total_steps"] * t["seconds_per_step"], 1)
    assert "wall time" in err and "tokens/s" in err
    again, _ = _plan(args)  # the table answers: nothing is timed twice
    assert (
        again["time"]["source"].startswith("measured")
        and again["time"]["seconds_per_step"] == t["seconds_per_step"]
    )
    other, _ = _plan([*args, "--batch-size", "2", "--no-measure"])  # other speed settings, not timed
    assert other["time"] is None


def test_long_cpu_run_is_announced_before_training(tiny_models, train_data, tmp_path, monkeypatch):
    from train.config import resolve
    from train.estimate import record, speed_key
    from train.methods import Device
    from train.run import prepare

    monkeypatch.setenv("TAMIS_THROUGHPUT", str(tmp_path / "speed.jsonl"))
    cfg = resolve(
        "sft", flags={"model": str(tiny_models["lm"]), "data": [str(train_data["sft"])], "epochs": 100}
    )
    ctx = prepare(cfg, device=Device("cpu", False))
    record(speed_key(cfg, ctx.plan, "cpu"), 60.0, 50.0, 10, "test")  # as if a slow machine measured it
    r = CliRunner().invoke(
        main,
        [
            "sft",
            str(train_data["sft"]),
            "--model",
            str(tiny_models["lm"]),
            "--epochs",
            "100",
            "--dry-run",
            "--json",
        ],
    )
    assert r.exit_code == 0, r.output + r.stderr
    assert "warning: this run takes about" in r.stderr and "on CPU" in r.stderr
    t = json.loads(r.stdout)["plan"]["time"]
    assert t["warn"] and t["seconds"] == ctx.plan["total_steps"] * 60.0 and t["tokens_per_s"] == 50.0


def test_every_run_records_its_speed(tiny_models, train_data, quick_cfg, tmp_path, monkeypatch, capsys):
    from train.estimate import lookup, speed_key
    from train.run import prepare, train

    monkeypatch.setenv("TAMIS_THROUGHPUT", str(tmp_path / "speed.jsonl"))
    ctx = prepare(quick_cfg("sft", tiny_models["lm"], train_data["sft"], tmp_path / "run", max_steps=3))
    train(ctx, progress=False)
    assert "speed: " in capsys.readouterr().err  # the run's own estimate after its first steps
    found = lookup(speed_key(ctx.cfg, ctx.plan, ctx.device.kind))
    assert found["steps"] == 3 and found["seconds_per_step"] > 0 and found["tokens_per_s"] > 0
    assert found["source"] == f"run {tmp_path / 'run'}"
