"""`train dpo`: direct preference optimisation (TRL DPOTrainer).

With an adapter method there is no second model: the reference is the same model with the adapter
disabled. Losses: sigmoid (DPO), ipo, simpo (TRL's `sigmoid_norm`: the DPO margin divided by the
completion lengths, SimPO-style length normalisation, still against the reference), hinge, robust; and
an SFT (NLL on chosen) term mixed in with --sft-weight (RPO-style).
"""

from __future__ import annotations

from train import data as D
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


def pair_datasets(ctx):
    """The pairs tokenized once by :func:`train.data.tokenize_all` (the check's lengths and the trained
    ids come from the same encoding; TRL does not tokenize again), cut to ``max_length`` by the run's
    ``truncation``, with their position (``pair_index``, the key of the reference log-prob cache)."""
    max_len, mode = ctx.plan["max_length"], getattr(ctx.cfg, "truncation", "keep_start")

    def rows(tk):
        return [{**D.truncate_pair(p, max_len, mode), "pair_index": i} for i, p in enumerate(tk.pairs)]

    tk, etk = ctx.tokenized, ctx.eval_tokenized
    ctx.extra["trained_rows"] = len(tk.pairs)
    ctx.extra["truncated"] = sum(n > max_len for n in tk.lengths)
    ev = D.to_dataset(rows(etk)) if etk and etk.pairs else None
    return D.to_dataset(rows(tk)), ev


def trainer_class():
    """(trainer class, collator class) of `train dpo`: :class:`train.dpo_trainer.TamisDPOTrainer`, DPOTrainer
    on pre-tokenized pairs with the fast path of ``--fast-loss``, and its collator that passes each pair's
    position through."""
    from train import dpo_trainer  # torch and trl: loaded when a trainer is built, not by `train --help`

    return dpo_trainer.TamisDPOTrainer, dpo_trainer.IndexedCollator


def build_trainer(cfg, plan, model, tokenizer, train_ds, eval_ds, run_dir, device, callbacks=()):
    from trl import DPOConfig

    types, weights = loss_setup(cfg)
    args = DPOConfig(
        **common_args(cfg, plan, run_dir, device),
        max_length=plan["max_length"],
        beta=cfg.beta,
        loss_type=types,
        loss_weights=weights,
        label_smoothing=cfg.label_smoothing,
    )
    cls, collator = trainer_class()
    trainer = cls(
        model=model,
        ref_model=None,
        args=args,
        train_dataset=train_ds,
        eval_dataset=eval_ds,
        processing_class=tokenizer,
        callbacks=list(callbacks),
    )
    c = trainer.data_collator  # TRL's preference collator, passing each pair's position through
    trainer.data_collator = collator(
        pad_token_id=c.pad_token_id,
        max_length=c.max_length,
        truncation_mode=c.truncation_mode,
        pad_to_multiple_of=c.pad_to_multiple_of,
    )
    trainer.fast = bool(getattr(cfg, "fast_loss", False))
    trainer.group_by_length = bool(getattr(cfg, "group_by_length", False))
    return trainer
