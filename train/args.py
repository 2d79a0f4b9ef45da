"""Training arguments shared by every stage (TRL configs subclass transformers' TrainingArguments)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

# stages whose batches hold `input_ids` (what Trainer counts tokens from); RLOO/GRPO count prompt +
# completion tokens themselves, ORPO's batches hold prompt/chosen/rejected ids (Trainer would warn each step)
TOKEN_COUNTED_STAGES = ("sft", "pt", "dpo", "rm", "kto")


def common_args(cfg, plan: dict[str, Any], run_dir: Path, device) -> dict[str, Any]:
    """Keyword arguments for any TRL config: planned hyper-parameters, CPU-safe precision (TRL
    defaults to bf16=True, which fails without a GPU), checkpoints for resume, TensorBoard logs."""
    os.environ["TENSORBOARD_LOGGING_DIR"] = str(run_dir / "tensorboard")
    bf16 = device.bf16 if cfg.bf16 is None else (cfg.bf16 and device.bf16)
    has_eval = bool(plan.get("eval_rows"))
    kw: dict[str, Any] = dict(
        output_dir=str(run_dir),
        num_train_epochs=float(plan["epochs"]),
        max_steps=cfg.max_steps if cfg.max_steps > 0 else -1,
        learning_rate=plan["learning_rate"],
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.batch_size,
        gradient_accumulation_steps=plan["grad_accum"],
        lr_scheduler_type=cfg.scheduler,
        warmup_steps=plan["warmup_steps"],
        weight_decay=cfg.weight_decay,
        max_grad_norm=cfg.max_grad_norm,
        seed=cfg.seed,
        data_seed=cfg.seed,
        bf16=bool(bf16),
        fp16=False,
        use_cpu=device.kind == "cpu",
        logging_steps=cfg.logging_steps,
        logging_first_step=True,
        save_strategy="steps",
        save_steps=cfg.save_steps,
        save_total_limit=cfg.save_total_limit,
        save_only_model=False,  # optimizer, scheduler and RNG states are needed to resume exactly
        eval_strategy="steps" if has_eval else "no",
        eval_steps=max(cfg.logging_steps, cfg.save_steps) if has_eval else None,
        report_to=list(cfg.report_to),
        gradient_checkpointing=cfg.gradient_checkpointing,
        dataloader_pin_memory=device.kind == "cuda",
        remove_unused_columns=True,
        disable_tqdm=not _tty(),
        # tokens/s in the progress lines and metrics.jsonl (one gathered count per step)
        include_num_input_tokens_seen="non_padding" if cfg.stage in TOKEN_COUNTED_STAGES else "no",
    )
    # the `trainer:` pass-through (validated against the installed TrainingArguments by the config)
    kw.update(cfg.trainer)
    return kw


def _tty() -> bool:
    return sys.stderr.isatty()
