"""`train kto`: KTO on unpaired good/bad answers (TRL KTOTrainer). Preference pairs are accepted too:
each pair gives one desirable and one undesirable example."""

from __future__ import annotations

from train.args import common_args


def build_trainer(cfg, plan, model, tokenizer, train_ds, eval_ds, run_dir, device, callbacks=()):
    from trl import KTOConfig, KTOTrainer

    args = KTOConfig(
        **common_args(cfg, plan, run_dir, device),
        max_length=plan["max_length"],
        beta=cfg.beta,
        desirable_weight=cfg.desirable_weight,
        undesirable_weight=cfg.undesirable_weight,
    )
    return KTOTrainer(
        model=model,
        ref_model=None,
        args=args,
        train_dataset=train_ds,
        eval_dataset=eval_ds,
        processing_class=tokenizer,
        callbacks=list(callbacks),
    )
