"""How long a planned run takes on this machine, and its tokens/s.

Two sources, the better first:

1. **Measured runs** (:func:`lookup`): every run that trains records its measured seconds per optimizer
   step and tokens/s in a small table (``~/.cache/tamis/throughput.jsonl``, ``TAMIS_THROUGHPUT`` to move
   it), keyed by what sets the speed: model, stage, method, device, micro-batch, accumulation,
   max_length, processes and the speed settings (packing, padding-free, gradient checkpointing, fast
   loss). A later plan or pre-flight with the same key uses the latest measurement.
2. **Timing a few steps** (:func:`train.timing.time_steps`, ``train plan``): the real model through the real trainer
   on a handful of micro-batches of the real rows (the first one, which pays for warm-up, is not
   counted), within a time budget (20 s, ``TAMIS_TIMING_SECONDS``; at least two micro-batches); the
   planned step is the measured micro-batch times the accumulation.

Without either, the run itself reports its speed and ETA after its first steps (``train.callbacks``)
and warns then when the run would take more than an hour on CPU.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

LONG_CPU_RUN_S = 3600.0  # warn before a CPU run longer than this


def duration(seconds: float) -> str:
    """``42 s``, ``11 min``, ``2 h 05 min``: coarse on purpose, an ETA is an estimate."""
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    h, m = divmod(round(seconds / 60), 60)
    return f"{h} h {m:02d} min"


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
    # the total from the per-step time as shown, so the printed numbers multiply out (steps x s/step)
    per_step = round(seconds_per_step, 4)
    total = plan.get("total_steps", 0) * per_step
    return {
        "seconds": round(total, 1),
        "seconds_per_step": per_step,
        "tokens_per_s": round(tokens_per_s, 1) if tokens_per_s else None,
        "source": source,
        "device": device_kind,
        "warn": device_kind == "cpu" and total > LONG_CPU_RUN_S,
    }


def warning_text(t: dict[str, Any], total_steps: int) -> str:
    return (
        f"this run takes about {duration(t['seconds'])} on CPU ({total_steps} steps x "
        f"{t['seconds_per_step']:.3g} s); lower --epochs or --max-steps, use --max-samples to try a subset, "
        "or train on a GPU (Ctrl-C during training saves a checkpoint; the same command resumes)"
    )
