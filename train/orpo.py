"""`train orpo`: odds-ratio preference optimisation (TRL's ``trl.experimental.orpo.ORPOTrainer``).

One stage instead of SFT + DPO: the loss is the SFT loss on the chosen answer plus ``beta`` (the paper's
lambda) times the log odds-ratio of chosen over rejected. No reference model at all (not even the
adapter-disabled one), so it costs about what SFT costs. Data: the same preference pairs as `train dpo`.
TRL keeps ORPO under ``trl.experimental`` (no API-stability promise): tamis pins the TRL it tests with.
"""

from __future__ import annotations

import os

from train.args import common_args


def build_trainer(cfg, plan, model, tokenizer, train_ds, eval_ds, run_dir, device, callbacks=()):
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")  # the warning is said once, here, in words
    from trl.experimental.orpo import ORPOConfig, ORPOTrainer

    args = ORPOConfig(**common_args(cfg, plan, run_dir, device), max_length=plan["max_length"], beta=cfg.beta)
    return ORPOTrainer(
        model=model,
        args=args,
        train_dataset=train_ds,
        eval_dataset=eval_ds,
        processing_class=tokenizer,
        callbacks=list(callbacks),
    )
