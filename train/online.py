"""What `train rloo` and `train grpo` share: the RLHF step of the source article (optimise the policy
against a reward model, or against rules), on TRL's RLOOTrainer / GRPOTrainer.

Each step samples ``num_generations`` completions for every prompt, scores them (reward model and/or
rules, weighted: :mod:`train.rewards`), and moves the policy towards the completions that beat their own
group: RLOO's baseline is the mean of the *other* completions of the prompt, GRPO's the group mean (scaled
by the group's std). A KL term (``beta``) keeps the policy near the reference, the model the stage started
from: with an adapter method the adapter-disabled model, with ``full`` a frozen copy.

Why no PPO: TRL removed ``PPOTrainer`` (moved to ``trl.experimental`` in v1.10, deleted afterwards as
unmaintained), and PPO needs a value model as large as the policy plus a reward model and a reference in
memory. RLOO needs no value model, and matched or beat PPO on the RLHF benchmarks of Ahmadian et al. 2024
("Back to Basics: Revisiting REINFORCE Style Optimization for Learning from Human Feedback in LLMs").

Logged every ``logging_steps`` (TensorBoard + metrics.jsonl): ``reward`` and ``reward_std`` (the weighted
total), ``rewards/<name>/mean|std`` per reward, ``kl`` (to the reference), ``completions/mean_length``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from train.args import common_args
from train.data import DataError
from train.memory import ModelShape, human_bytes, read_model_config
from train.rewards import (
    NEEDS_REFERENCE,
    RewardModelError,
    check_reward_model,
    parse_rewards,
    reward_setup,
)


def preflight(cfg) -> None:
    """Checks that need no model: there is a reward, and a reward model is a one-score sequence classifier
    (its saved config, not its weights, is read)."""
    if not cfg.reward and not cfg.reward_model:
        # (a plan needs no reward: `train plan --stage rloo` works without one)
        raise DataError(
            f"`train {cfg.stage}` needs a reward: --reward-model DIR (from `train rm`) and/or --reward "
            "exact|contains|format|length:N"
        )
    if cfg.reward_model:
        try:
            check_reward_model(cfg.reward_model)
        except RewardModelError as e:
            raise DataError(str(e)) from None


# ------------------------------------------------------------------ the plan


def adjust_plan(plan: dict[str, Any], cfg, shape, gpu: bool) -> None:
    """Online-RL parts of the plan: the batch must hold whole groups, and the memory of generation.

    TRL counts batches in completions: a step of global batch ``B`` samples ``B / G`` prompts x ``G``
    completions. The gradient accumulation is raised until ``B`` is a multiple of ``G``."""
    g = cfg.num_generations
    per_pass = cfg.batch_size * cfg.num_processes
    accum = plan["grad_accum"]
    while (per_pass * accum) % g:
        accum += 1
    if accum != plan["grad_accum"]:
        plan["grad_accum"] = accum
        plan["global_batch"] = per_pass * accum
        plan["source"]["global_batch"] += f"; raised to hold whole groups of {g} completions"
        seqs = plan.get("sequences") or plan["rows"] * g
        plan["steps_per_epoch"] = max(1, math.ceil(seqs / plan["global_batch"]))
        if cfg.max_steps <= 0:
            plan["total_steps"] = math.ceil(plan["steps_per_epoch"] * plan["epochs"])
            plan["warmup_steps"] = math.ceil(plan["total_steps"] * plan["warmup_ratio"])
    plan["prompts_per_step"] = plan["global_batch"] // g
    plan["generation"] = generation_memory(plan, cfg, shape, gpu)


def generation_memory(plan: dict[str, Any], cfg, shape, gpu: bool) -> dict[str, Any]:
    """Bytes that sampling adds on top of training (the plan prints them before anything loads).

    A generation batch is ``global_batch`` completions (``prompts_per_step`` prompts x ``G``), generated
    ``batch_size * accumulation`` at a time on each device, each up to ``prompt + max_completion_length``
    tokens: the KV cache holds ``2 (k, v) x layers x kv_heads x head_dim`` values per token. Scoring the
    completions (policy and reference log-probabilities) materialises fp32 logits of ``vocab`` per
    completion token for a micro-batch. The reference is a second copy of the weights with ``full`` (an
    adapter method disables the adapter instead), and the reward model is another model in memory."""
    g = cfg.num_generations
    prompt = plan["max_length"]
    completion = cfg.max_completion_length
    per_device = cfg.batch_size * plan["grad_accum"]  # completions generated together on one device
    out: dict[str, Any] = {
        "group_size": g,
        "prompts_per_step": plan["global_batch"] // g,
        "completions_per_device": per_device,
        "tokens_per_completion": prompt + completion,
    }
    if shape is None:
        return out
    dtype = 2 if gpu else 4
    kv = 2 * shape.layers * shape.kv_heads * shape.head_dim * dtype
    out["kv_cache"] = kv * per_device * (prompt + completion)
    out["logits"] = cfg.batch_size * completion * shape.vocab * 4
    out["reference"] = shape.params() * dtype if (cfg.method == "full" and cfg.beta > 0) else 0
    out["reward_model"] = _reward_model_bytes(cfg, dtype)
    out["total"] = sum(out[k] for k in ("kv_cache", "logits", "reference", "reward_model"))
    return out


def _reward_model_bytes(cfg, dtype: int) -> int:
    if not cfg.reward_model:
        return 0
    p = Path(cfg.reward_model)
    for cand in (p / "export", p / "final", p):
        if (cand / "config.json").is_file():
            break
    else:
        try:
            meta = json.loads((p / "run.json").read_text(encoding="utf-8"))
            cand = Path(meta["model"])
        except (OSError, ValueError, KeyError):
            return 0
    try:
        return ModelShape.from_config(read_model_config(cand)).params() * dtype
    except (OSError, ValueError):
        return 0


def render_generation(plan: dict[str, Any], console) -> None:
    gen = plan.get("generation")
    if not gen:
        return
    line = (
        f"[bold]generation[/bold]: {gen['prompts_per_step']} prompts x {gen['group_size']} completions per step "
        f"(group size x completion length: {gen['group_size']} x up to {gen['tokens_per_completion']} tokens "
        f"with the prompt; {gen['completions_per_device']} sampled together per device)"
    )
    console.print(line)
    if "total" in gen:
        console.print(
            f"  adds {human_bytes(gen['total'])}: KV cache {human_bytes(gen['kv_cache'])}, completion logits "
            f"{human_bytes(gen['logits'])}, reference copy {human_bytes(gen['reference'])}"
            f"{' (adapter disabled instead)' if not gen['reference'] else ''}, reward model "
            f"{human_bytes(gen['reward_model'])}; lower --num-generations or --max-completion-length to fit"
        )


# ------------------------------------------------------------------ the trainer


def rl_args(cfg, plan: dict[str, Any], run_dir, device) -> dict[str, Any]:
    kw = common_args(cfg, plan, run_dir, device)
    g = cfg.num_generations
    kw.update(
        # the reward functions read the `reference` column
        remove_unused_columns=False,
        num_generations=g,
        max_completion_length=cfg.max_completion_length,
        temperature=cfg.temperature,
        beta=cfg.beta,
        # an eval batch must hold whole groups too
        per_device_eval_batch_size=max(g, cfg.batch_size // g * g),
        log_completions=False,
    )
    return kw


def _drop_ref_adapter_callback():
    """TRL keeps a frozen copy of a PEFT adapter as the reference ("ref"); it must not be saved as part of
    the result (final/ holds the trained adapter only)."""
    from transformers import TrainerCallback

    class DropRefAdapter(TrainerCallback):
        def on_train_end(self, args, state, control, model=None, **kw):
            if model is not None and "ref" in getattr(model, "peft_config", {}):
                model.delete_adapter("ref")

    return DropRefAdapter()


def build_trainer(cfg, plan, model, tokenizer, train_ds, eval_ds, run_dir, device, callbacks=()):
    """TRL's RLOOTrainer or GRPOTrainer (by ``cfg.stage``) with the rewards of the config."""
    import torch
    import trl

    name = {"rloo": "RLOO", "grpo": "GRPO"}[cfg.stage]
    extra = {}
    if cfg.stage == "grpo":
        extra = {"loss_type": cfg.loss_type, "scale_rewards": cfg.scale_rewards}
    dtype = torch.bfloat16 if (device.bf16 and cfg.bf16 is not False) else torch.float32
    funcs, reward_tokenizers, weights = reward_setup(cfg, tokenizer, dtype)
    args = getattr(trl, f"{name}Config")(
        **rl_args(cfg, plan, run_dir, device), reward_weights=weights, **extra
    )
    return getattr(trl, f"{name}Trainer")(
        model=model,
        reward_funcs=funcs,
        args=args,
        train_dataset=train_ds,
        eval_dataset=eval_ds,
        processing_class=tokenizer,
        reward_processing_classes=reward_tokenizers,
        callbacks=[*callbacks, _drop_ref_adapter_callback()],
    )


def run_summary(log_history: list[dict[str, Any]], run_dir) -> dict[str, Any]:
    """Reward, KL and length at the start and the end of the run (for run.json), and reward.png."""
    logs = [h for h in log_history if "reward" in h]
    if not logs:
        return {}
    out = {
        "first_reward": logs[0]["reward"],
        "last_reward": logs[-1]["reward"],
        "last_kl": logs[-1].get("kl"),
        "last_completion_length": logs[-1].get("completions/mean_length"),
    }
    try:
        _plot(logs, run_dir / "reward.png")
    except Exception:  # a plot is a convenience; the numbers are in metrics.jsonl
        pass
    return out


def _plot(logs, out) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [h["step"] for h in logs] if "step" in logs[0] else list(range(1, len(logs) + 1))
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    ax.plot(steps, [h["reward"] for h in logs], label="mean reward")
    if any("kl" in h for h in logs):
        ax2 = ax.twinx()
        ax2.plot(steps, [h.get("kl", float("nan")) for h in logs], "r--", label="KL to reference")
        ax2.set_ylabel("KL")
    ax.set_xlabel("step")
    ax.set_ylabel("reward")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)


def filter_rows(prep, cfg) -> None:
    """Rows without a reference answer cannot be scored by exact/contains: dropped with a reason."""
    needs = [r.name for r in parse_rewards(cfg.reward) if r.name in NEEDS_REFERENCE]
    if not needs:
        return
    keep = [r.get("reference") is not None for r in prep.rows]
    for k, rid in zip(keep, prep.ids, strict=True):
        if not k:
            prep.drop(f"no reference answer for the {'/'.join(needs)} reward", rid)
    prep.rows = [r for r, k in zip(prep.rows, keep, strict=True) if k]
    prep.ids = [i for i, k in zip(prep.ids, keep, strict=True) if k]
