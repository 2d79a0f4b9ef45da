"""`train dpo`: direct preference optimisation (TRL DPOTrainer).

With an adapter method there is no second model: the reference is the same model with the adapter
disabled. Losses: sigmoid (DPO), ipo, simpo (TRL's `sigmoid_norm`: the DPO margin divided by the
completion lengths, SimPO-style length normalisation, still against the reference), hinge, robust; and
an SFT (NLL on chosen) term mixed in with --sft-weight (RPO-style).
"""

from __future__ import annotations

from train.args import common_args

LOSS_NAMES = {
    "sigmoid": "sigmoid",
    "ipo": "ipo",
    "simpo": "sigmoid_norm",
    "hinge": "hinge",
    "robust": "robust",
}


def loss_setup(cfg) -> tuple[list[str], list[float]]:
    types = [LOSS_NAMES[cfg.loss]]
    weights = [1.0]
    if cfg.sft_weight > 0:
        types.append("sft")
        weights.append(cfg.sft_weight)
    return types, weights


def build_trainer(cfg, plan, model, tokenizer, train_ds, eval_ds, run_dir, device, callbacks=()):
    from trl import DPOConfig, DPOTrainer

    types, weights = loss_setup(cfg)
    args = DPOConfig(
        **common_args(cfg, plan, run_dir, device),
        max_length=plan["max_length"],
        beta=cfg.beta,
        loss_type=types,
        loss_weights=weights,
        label_smoothing=cfg.label_smoothing,
    )
    return DPOTrainer(
        model=model,
        ref_model=None,
        args=args,
        train_dataset=train_ds,
        eval_dataset=eval_ds,
        processing_class=tokenizer,
        callbacks=list(callbacks),
    )
