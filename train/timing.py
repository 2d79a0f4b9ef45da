"""Timing a few real training steps of a planned run (``train plan``, :func:`plan_time`): the real model
through the real trainer on a handful of micro-batches of the real rows, recorded in the measured-runs
table of :mod:`train.estimate` for the next plan of the same settings."""

from __future__ import annotations

import dataclasses
import importlib
import os
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from train import methods
from train.estimate import estimate, lookup, record, speed_key
from train.run import STAGE_MODULES, build_datasets


def time_steps(ctx, budget_s: float = 20.0, batches: int = 4) -> dict[str, Any]:
    """Time ``batches`` micro-batches (plus one warm-up) of the real rows through the real trainer of
    the stage, stopping early after ``budget_s`` seconds; returns seconds per micro-batch and tokens/s
    (non-padding input tokens). Nothing is written outside a temporary directory."""
    from transformers import TrainerCallback

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

    model, _ = methods.load_model(timing_cfg, cfg.stage, ctx.device)
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
