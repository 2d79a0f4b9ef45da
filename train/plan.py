"""The training plan: hyper-parameters from the data, a memory estimate from the model config, and the
anatomy of the model's name.

Sources: the SFT epochs table and the base-vs-chat advice come from the project's source article
("ChatGPT 是如何炼成的", SFT best practice: 100 rows -> 15 epochs, 1,000 -> 10, 10,000 -> 2, and
100,000 rows "2-3 epochs"); that table is for SFT only: preference stages (DPO, KTO, reward models) get
1-3 epochs and continued pretraining 1-2 (see :data:`EPOCH_TABLES`); learning rates are the usual ranges for each method (LoRA SFT 1e-4..2e-4,
full SFT ~1e-5, LoRA DPO 5e-6..1e-5; see docs/train.md). Pure Python: nothing here loads weights.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from rich.table import Table

from curate.core.epochs import (  # noqa: F401  (re-exported: train.plan is their public home too)
    EPOCH_REASONS,
    EPOCH_TABLE,
    EPOCH_TABLES,
    PREFERENCE_EPOCH_TABLE,
    PRETRAIN_EPOCH_TABLE,
    planned_epochs,
)
from train.anatomy import NameAnatomy, advice, anatomy  # noqa: F401  (re-exported)
from train.estimate import duration, warning_text
from train.memory import (  # noqa: F401  (re-exported: train.plan is their public home too)
    CHEAPER,
    GiB,
    ModelShape,
    human_bytes,
    human_count,
    memory_estimate,
    read_model_config,
    trainable_params,
)
from train.mix import describe
from train.online import adjust_plan, render_generation

# the epochs tables live in curate.core.epochs: `curate export` prints the same hint without importing train

PEFT_ADAPTERS = ("lora", "qlora", "dora", "rslora", "pissa")
PROMPT_LEARNING = ("prefix", "prompt", "ptuning")

# (stage, method family) -> (recommended, low, high)
LR_TABLE: dict[tuple[str, str], tuple[float, float, float]] = {
    ("sft", "full"): (1e-5, 5e-6, 2e-5),
    ("sft", "freeze"): (5e-5, 1e-5, 1e-4),
    ("sft", "adapter"): (2e-4, 1e-4, 2e-4),
    ("sft", "ia3"): (3e-3, 1e-3, 5e-3),
    ("sft", "prompt"): (1e-2, 3e-3, 3e-2),
    ("sft", "bitfit"): (5e-4, 1e-4, 1e-3),
    ("pt", "full"): (2e-5, 1e-5, 5e-5),
    ("pt", "freeze"): (5e-5, 1e-5, 1e-4),
    ("pt", "adapter"): (1e-4, 5e-5, 2e-4),
    ("pt", "ia3"): (3e-3, 1e-3, 5e-3),
    ("pt", "prompt"): (1e-2, 3e-3, 3e-2),
    ("pt", "bitfit"): (5e-4, 1e-4, 1e-3),
    ("dpo", "full"): (5e-7, 1e-7, 1e-6),
    ("dpo", "freeze"): (1e-6, 5e-7, 5e-6),
    ("dpo", "adapter"): (5e-6, 5e-6, 1e-5),
    ("dpo", "ia3"): (1e-4, 5e-5, 5e-4),
    ("dpo", "prompt"): (1e-3, 5e-4, 5e-3),
    ("dpo", "bitfit"): (1e-5, 5e-6, 5e-5),
    ("rm", "full"): (1e-5, 5e-6, 2e-5),
    ("rm", "freeze"): (2e-5, 1e-5, 5e-5),
    ("rm", "adapter"): (1e-4, 5e-5, 2e-4),
    ("rm", "ia3"): (3e-3, 1e-3, 5e-3),
    ("rm", "prompt"): (1e-2, 3e-3, 3e-2),
    ("rm", "bitfit"): (5e-4, 1e-4, 1e-3),
}
# KTO uses DPO's ranges (same implicit-reward objective family); ORPO trains the SFT loss as well, at the
# ORPO paper's 8e-6 for full fine-tuning (LoRA ~10x); online RL uses TRL's 1e-6 for full fine-tuning (the
# policy moves on its own samples: larger steps collapse it), LoRA ~10x
_ORPO_LR = {"full": (8e-6, 5e-6, 1e-5), "freeze": (2e-5, 1e-5, 5e-5), "adapter": (8e-5, 5e-5, 2e-4)}
_ONLINE_LR = {"full": (1e-6, 5e-7, 3e-6), "freeze": (3e-6, 1e-6, 1e-5), "adapter": (1e-5, 5e-6, 5e-5)}
for (_s, _m), _v in list(LR_TABLE.items()):
    if _s == "dpo":
        LR_TABLE[("kto", _m)] = _v
        LR_TABLE[("orpo", _m)] = _ORPO_LR.get(_m, _v)
        for _online in ("rloo", "grpo"):
            LR_TABLE[(_online, _m)] = _ONLINE_LR.get(_m, _v)


def method_family(method: str) -> str:
    if method in PEFT_ADAPTERS:
        return "adapter"
    if method in PROMPT_LEARNING:
        return "prompt"
    return method  # full, freeze, ia3, bitfit


# ------------------------------------------------------------------ epochs, lr, batch


def planned_lr(stage: str, method: str) -> tuple[float, float, float]:
    return LR_TABLE[(stage, method_family(method))]


def planned_global_batch(rows: int) -> int:
    """Small sets need enough optimizer steps per epoch; large sets gain from the article's larger
    batches ("accumulate 32, 64")."""
    if rows < 1_000:
        return 16
    if rows < 10_000:
        return 32
    return 64


def planned_warmup(stage: str) -> float:
    return 0.1 if stage in ("dpo", "kto", "orpo") else 0.03


def length_stats(lengths: list[int], model_max: int | None, cap: int | None = None) -> dict[str, Any]:
    """Pick max_length from the token-length distribution: the 99th percentile rounded up to a multiple
    of 64 (so at most ~1 % of rows are truncated), never above the model's context."""
    if not lengths:
        return {"rows": 0, "max_length": cap or 512, "truncated": 0, "truncated_share": 0.0}
    s = sorted(lengths)

    def pct(p: float) -> int:
        return s[min(len(s) - 1, max(0, math.ceil(p / 100 * len(s)) - 1))]

    chosen = cap or max(64, int(math.ceil(pct(99) / 64) * 64))
    if model_max and not cap:
        chosen = min(chosen, model_max)
    truncated = sum(1 for n in s if n > chosen)
    return {
        "rows": len(s),
        "min": s[0],
        "p50": pct(50),
        "p90": pct(90),
        "p99": pct(99),
        "max": s[-1],
        "mean": round(sum(s) / len(s), 1),
        "max_length": chosen,
        "truncated": truncated,
        "truncated_share": round(truncated / len(s), 4),
        "tokens": sum(s),
    }


# ------------------------------------------------------------------ the whole plan


def training_sequences(cfg, rows: int, lengths: list[int] | None, max_length: int) -> int:
    """How many sequences one epoch feeds the model: the rows, except that continued pretraining splits
    documents into ``max_length`` pieces and packing (``train pt``, ``train sft --packing``) fills
    ``max_length`` sequences with the tokens of several rows: ceil(tokens / max_length)."""
    if hasattr(cfg, "num_generations"):  # online RL trains on sampled completions: G per prompt
        return rows * cfg.num_generations
    if not lengths or len(lengths) != rows:  # (lengths must describe the rows)
        return rows
    packing = bool(getattr(cfg, "packing", False))
    if cfg.stage == "pt":
        if packing:
            return max(1, math.ceil(sum(lengths) / max_length))
        return sum(n // max_length + (n % max_length > 1) for n in lengths)
    if cfg.stage == "sft" and packing:
        return max(1, math.ceil(sum(min(n, max_length) for n in lengths) / max_length))
    return rows


def make_plan(
    cfg, rows: int, lengths: list[int] | None = None, gpu: bool = False, max_length: int | None = None
) -> dict[str, Any]:
    """Resolve every None hyper-parameter of ``cfg`` from the data and the model; return the plan dict
    (the values used, where each came from, the memory estimate and the model-name anatomy).
    ``max_length`` fixes the sequence length already chosen for these rows (re-planning after rows
    that do not fit it were dropped)."""
    stage = cfg.stage
    plan: dict[str, Any] = {"stage": stage, "method": cfg.method, "rows": rows, "source": {}}
    src = plan["source"]

    model_max = None
    shape = None
    if cfg.model and (Path(cfg.model) / "config.json").is_file():
        mc = read_model_config(cfg.model)
        shape = ModelShape.from_config(mc)
        model_max = shape.max_positions
    ls = length_stats(lengths or [], model_max, cap=max_length or cfg.max_length)
    plan["lengths"] = ls
    plan["max_length"] = ls["max_length"]
    src["max_length"] = "config" if cfg.max_length else "p99 of token lengths (multiple of 64)"
    # what one epoch steps over: rows, or packed / chunked sequences
    seqs = training_sequences(cfg, rows, lengths, plan["max_length"])
    plan["sequences"] = seqs
    if seqs != rows:
        src["sequences"] = (
            f"{cfg.num_generations} sampled completions per prompt"
            if hasattr(cfg, "num_generations")
            else f"packed: ceil(tokens / max_length {plan['max_length']})"
            if getattr(cfg, "packing", False)
            else f"documents split into max_length {plan['max_length']} pieces"
        )

    if cfg.epochs is None:
        plan["epochs"], src["epochs"] = planned_epochs(rows, stage), EPOCH_REASONS[stage]
    else:
        plan["epochs"], src["epochs"] = cfg.epochs, "config"
    lr, lo, hi = planned_lr(stage, cfg.method)
    plan["lr_range"] = [lo, hi]
    if cfg.learning_rate is None:
        plan["learning_rate"], src["learning_rate"] = lr, f"{stage} + {method_family(cfg.method)} default"
    else:
        plan["learning_rate"], src["learning_rate"] = cfg.learning_rate, "config"

    gb = cfg.global_batch or planned_global_batch(rows)
    src["global_batch"] = "config" if cfg.global_batch else "planned from dataset size"
    # never make one optimizer step larger than the dataset
    gb = max(cfg.batch_size * cfg.num_processes, min(gb, max(1, seqs)))
    accum = max(1, math.ceil(gb / (cfg.batch_size * cfg.num_processes)))
    plan["batch_size"] = cfg.batch_size
    plan["grad_accum"] = accum
    plan["global_batch"] = cfg.batch_size * accum * cfg.num_processes
    steps_per_epoch = max(1, math.ceil(seqs / plan["global_batch"])) if seqs else 0
    plan["steps_per_epoch"] = steps_per_epoch
    total = cfg.max_steps if cfg.max_steps > 0 else math.ceil(steps_per_epoch * plan["epochs"])
    plan["total_steps"] = total
    if cfg.warmup_ratio is None:
        plan["warmup_ratio"], src["warmup_ratio"] = planned_warmup(stage), "planned"
    else:
        plan["warmup_ratio"], src["warmup_ratio"] = cfg.warmup_ratio, "config"
    plan["warmup_steps"] = math.ceil(total * plan["warmup_ratio"])
    plan["scheduler"] = cfg.scheduler

    an = anatomy(cfg.model or "")
    plan["anatomy"] = an.as_dict()
    plan["advice"] = advice(an, stage)

    if shape is not None:
        mem = {}
        for m in [cfg.method] + [c for c in CHEAPER.get(cfg.method, []) if c != cfg.method]:
            if m == "bitfit" and not shape.has_bias:
                continue
            mem[m] = memory_estimate(
                shape,
                m,
                batch=cfg.batch_size,
                # online RL trains on prompt + sampled completion
                seq=plan["max_length"] + getattr(cfg, "max_completion_length", 0),
                gpu=gpu,
                gradient_checkpointing=cfg.gradient_checkpointing,
                r=cfg.lora_r,
                freeze_layers=cfg.freeze_layers,
                virtual=cfg.virtual_tokens,
                fast_loss=bool(getattr(cfg, "fast_loss", False)),
            )
        plan["memory"] = mem
        plan["memory_device"] = "GPU (bf16 weights)" if gpu else "CPU (fp32)"
        plan["params"] = shape.params()
    if hasattr(cfg, "num_generations"):
        adjust_plan(plan, cfg, shape, gpu)
    return plan


def render_plan(plan: dict[str, Any], console) -> None:
    """Print the plan as rich tables (to the given stderr console)."""
    t = Table(title=f"train {plan['stage']} plan ({plan['method']}, {plan['rows']} rows)", show_lines=False)
    t.add_column("setting")
    t.add_column("value", justify="right")
    t.add_column("why")
    src = plan["source"]
    t.add_row("epochs", f"{plan['epochs']:g}", src["epochs"])
    lo, hi = plan["lr_range"]
    t.add_row(
        "learning rate", f"{plan['learning_rate']:.1e}", f"{src['learning_rate']} (usual {lo:.0e}..{hi:.0e})"
    )
    t.add_row(
        "global batch",
        str(plan["global_batch"]),
        f"{plan['batch_size']} per device x {plan['grad_accum']} accumulation; {src['global_batch']}",
    )
    per_epoch = f"{plan['steps_per_epoch']} per epoch"
    if plan.get("sequences", plan["rows"]) != plan["rows"]:
        per_epoch += f" over {plan['sequences']} sequences ({src.get('sequences', '')})"
    if plan.get("dropped_overlong"):
        per_epoch += f"; {plan['dropped_overlong']} rows dropped as too long for max_length"
    t.add_row("steps", str(plan["total_steps"]), per_epoch)
    t.add_row("warmup / schedule", f"{plan['warmup_steps']} / {plan['scheduler']}", src["warmup_ratio"])
    ls = plan["lengths"]
    if ls.get("rows"):
        why = (
            f"{src['max_length']}; tokens p50 {ls['p50']}, p90 {ls['p90']}, p99 {ls['p99']}, max {ls['max']}; "
            + (
                f"splits {ls['truncated']} documents into max_length pieces"
                if plan["stage"] == "pt"
                else f"truncates {ls['truncated']} rows ({ls['truncated_share']:.1%})"
            )
        )
    else:
        why = src["max_length"]
    t.add_row("max_length", str(plan["max_length"]), why)
    tm = plan.get("time")
    if tm:
        rate = f"{tm['tokens_per_s']:,.0f} tokens/s, " if tm.get("tokens_per_s") else ""
        t.add_row(
            "wall time",
            f"~{duration(tm['seconds'])}",
            f"{plan['total_steps']} steps x {tm['seconds_per_step']:.3g} s on {tm['device']} ({rate}{tm['source']})",
        )
    console.print(t)
    if tm and tm.get("warn"):
        console.print(f"[yellow]warning:[/yellow] {warning_text(tm, plan['total_steps'])}", soft_wrap=True)
    if plan.get("memory"):
        m = Table(title=f"memory estimate, {plan['memory_device']} ({plan['params'] / 1e6:.1f}M params)")
        for c in ("method", "trainable", "weights", "adapters", "grads", "optimizer", "activations", "total"):
            m.add_column(c, justify="right")
        for name, e in plan["memory"].items():
            m.add_row(
                name,
                human_count(e["trainable_params"]),
                *(
                    human_bytes(e[k])
                    for k in ("weights", "adapters", "gradients", "optimizer", "activations", "total")
                ),
            )
        console.print(m)
    if plan.get("generation"):
        render_generation(plan, console)
    if plan.get("mix"):
        console.print(f"[bold]mix[/bold]: {describe(plan['mix'])}")
    an = plan["anatomy"]
    parts = [
        f"series {an['series']}",
        f"version {an['version'] or '-'}",
        f"size {an['size'] or '-'}",
        an["finetune"],
        f"quantisation {an['quantization'] or 'none'}" + (f" {an['bits']}-bit" if an["bits"] else ""),
    ]
    console.print(f"[bold]model[/bold] {an['name']}: " + ", ".join(parts))
    for tip in plan["advice"]:
        console.print(f"  - {tip}")
