"""How long a planned run takes on this machine, and its tokens/s.

Two sources, the better first:

1. **Measured runs** (:func:`lookup`): every run that trains records its measured seconds per optimizer
   step and tokens/s in a small table (``~/.cache/tamis/throughput.jsonl``, ``TAMIS_THROUGHPUT`` to move
   it), keyed by what sets the speed: model, stage, method, device, micro-batch, accumulation,
   max_length, processes and the speed settings (packing, padding-free, gradient checkpointing, fast
   loss). A later plan or pre-flight with the same key uses the latest measurement.
2. **Timing a few steps** (:func:`time_steps`, ``train plan``): the real model through the real trainer
   on a handful of micro-batches of the real rows (the first one, which pays for warm-up, is not
   counted), within a time budget (20 s, ``TAMIS_TIMING_SECONDS``; at least two micro-batches); the
   planned step is the measured micro-batch times the accumulation.

Without either, the run itself reports its speed and ETA after its first steps (``train.callbacks``)
and warns then when the run would take more than an hour on CPU.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

LONG_CPU_RUN_S = 3600.0  # warn before a CPU run longer than this


def table_path() -> Path:
    return Path(os.environ.get("TAMIS_THROUGHPUT") or Path.home() / ".cache" / "tamis" / "throughput.jsonl")


def speed_key(cfg, plan: dict[str, Any], device_kind: str) -> dict[str, Any]:
    """What determines the seconds per step of a run (not the data's content or the learning rate)."""
    model = str(cfg.model)
    if Path(model).exists():
        model = str(Path(model).resolve())
    return {
        "model": model,
        "stage": cfg.stage,
        "method": cfg.method,
        "device": device_kind,
        "batch_size": plan.get("batch_size", cfg.batch_size),
        "grad_accum": plan.get("grad_accum", 1),
        "max_length": plan.get("max_length"),
        "num_processes": cfg.num_processes,
        "packing": bool(getattr(cfg, "packing", False)),
        "padding_free": bool(getattr(cfg, "padding_free", False)),
        "gradient_checkpointing": bool(cfg.gradient_checkpointing),
        "fast_loss": bool(getattr(cfg, "fast_loss", False)),
        "group_by_length": bool(getattr(cfg, "group_by_length", False)),
        "lora_r": cfg.lora_r if cfg.method not in ("full", "freeze", "bitfit") else None,
    }


def record(
    key: dict[str, Any], seconds_per_step: float, tokens_per_s: float | None, steps: int, source: str
) -> None:
    """Append one measurement (never fails a run: the table is a convenience)."""
    if seconds_per_step <= 0 or steps < 1:
        return
    entry = {
        **key,
        "seconds_per_step": round(seconds_per_step, 4),
        "tokens_per_s": round(tokens_per_s, 1) if tokens_per_s else None,
        "steps": steps,
        "source": source,
        "measured": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    path = table_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry, ensure_ascii=False) + "\n")
    except OSError:
        pass


def lookup(key: dict[str, Any]) -> dict[str, Any] | None:
    """The latest measurement with exactly this key, or None."""
    path = table_path()
    if not path.is_file():
        return None
    found = None
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and all(entry.get(k) == v for k, v in key.items()):
            found = entry
    return found


def estimate(
    plan: dict[str, Any], seconds_per_step: float, tokens_per_s: float | None, source: str, device_kind: str
):
    """The plan's ``time`` entry: total seconds for the planned steps, the machine's tokens/s, where the
    numbers come from, and whether to warn (more than an hour on CPU)."""
    total = plan.get("total_steps", 0) * seconds_per_step
    return {
        "seconds": round(total, 1),
        "seconds_per_step": round(seconds_per_step, 4),
        "tokens_per_s": round(tokens_per_s, 1) if tokens_per_s else None,
        "source": source,
        "device": device_kind,
        "warn": device_kind == "cpu" and total > LONG_CPU_RUN_S,
    }


def warning_text(t: dict[str, Any], total_steps: int) -> str:
    from train.callbacks import duration

    return (
        f"this run takes about {duration(t['seconds'])} on CPU ({total_steps} steps x "
        f"{t['seconds_per_step']:.3g} s); lower --epochs or --max-steps, use --max-samples to try a subset, "
        "or train on a GPU (Ctrl-C during training saves a checkpoint; the same command resumes)"
    )


def time_steps(ctx, budget_s: float = 20.0, batches: int = 4) -> dict[str, Any]:
    """Time ``batches`` micro-batches (plus one warm-up) of the real rows through the real trainer of
    the stage, stopping early after ``budget_s`` seconds; returns seconds per micro-batch and tokens/s
    (non-padding input tokens). Nothing is written outside a temporary directory."""
    import dataclasses
    import importlib
    import random
    import tempfile

    from transformers import TrainerCallback

    from train.methods import load_model
    from train.run import STAGE_MODULES, build_datasets

    cfg = ctx.cfg
    train_ds, _ = build_datasets(ctx)
    n = min(len(train_ds), cfg.batch_size * (batches + 1))
    pick = sorted(random.Random(cfg.seed).sample(range(len(train_ds)), n))
    small = train_ds.select(pick)
    timing_cfg = dataclasses.replace(
        cfg, max_steps=batches + 1, logging_steps=1, save_steps=10**9, report_to=["none"], num_processes=1
    )
    timing_plan = {**ctx.plan, "grad_accum": 1, "warmup_steps": 0, "epochs": 1, "eval_rows": 0}

    durations: list[float] = []
    tokens: list[int] = []

    class Timer(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            self.t = time.perf_counter()
            self.seen = state.num_input_tokens_seen

        def on_step_end(self, args, state, control, **kw):
            durations.append(time.perf_counter() - self.t)
            tokens.append(state.num_input_tokens_seen - self.seen)
            if len(durations) >= 2 and sum(durations) > budget_s:
                control.should_training_stop = True
            return control

    model, _ = load_model(timing_cfg, cfg.stage, ctx.device)
    stage_mod = importlib.import_module(STAGE_MODULES[cfg.stage])
    with tempfile.TemporaryDirectory(prefix="tamis-timing-") as tmp:
        trainer = stage_mod.build_trainer(
            timing_cfg, timing_plan, model, ctx.tokenizer, small, None, Path(tmp), ctx.device, [Timer()]
        )
        from transformers import PrinterCallback

        trainer.remove_callback(PrinterCallback)
        trainer.train()
    measured = durations[1:] or durations
    if not measured:
        raise RuntimeError("no training step ran")
    per_batch = statistics.median(measured)
    tok = tokens[1:] if len(tokens) > 1 else tokens
    tps = sum(tok) / sum(measured) if sum(tok) else None
    return {"seconds_per_batch": per_batch, "tokens_per_s": tps, "batches": len(measured)}


def plan_time(ctx, measure: bool, budget_s: float | None = None) -> dict[str, Any] | None:
    """The ``time`` entry of ``ctx.plan``: from the measured-runs table, else (``measure``) by timing a
    few steps (recorded in the table for next time), else None."""
    plan, cfg = ctx.plan, ctx.cfg
    key = speed_key(cfg, plan, ctx.device.kind)
    known = lookup(key)
    if known:
        return estimate(
            plan,
            known["seconds_per_step"],
            known.get("tokens_per_s"),
            f"measured ({known.get('source')}, {known.get('measured')})",
            ctx.device.kind,
        )
    if not measure:
        return None
    if budget_s is None:
        budget_s = float(os.environ.get("TAMIS_TIMING_SECONDS", 20))
    timed = time_steps(ctx, budget_s=budget_s)
    per_step = timed["seconds_per_batch"] * plan.get("grad_accum", 1)
    tps = timed["tokens_per_s"] * cfg.num_processes if timed["tokens_per_s"] else None
    record(key, per_step, tps, 1, "timed steps")
    return estimate(
        plan, per_step, tps, f"timed {timed['batches']} micro-batches on this machine", ctx.device.kind
    )
