"""`train rm`: a reward model (sequence classification, one score) with TRL's RewardTrainer; the
result is what `curate score --reward-model` loads."""

from __future__ import annotations

from train.args import common_args


def build_trainer(cfg, plan, model, tokenizer, train_ds, eval_ds, run_dir, device, callbacks=()):
    from trl import RewardConfig, RewardTrainer

    kw = dict(common_args(cfg, plan, run_dir, device), max_length=plan["max_length"])
    if cfg.center_rewards is not None:
        kw["center_rewards_coefficient"] = cfg.center_rewards
    return RewardTrainer(
        model=model,
        args=RewardConfig(**kw),
        train_dataset=train_ds,
        eval_dataset=eval_ds,
        processing_class=tokenizer,
        callbacks=list(callbacks),
    )
