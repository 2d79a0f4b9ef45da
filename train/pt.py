"""`train pt`: continued pretraining on plain text (SFTTrainer on tokenized text with packing)."""

from __future__ import annotations

from train.sft import build_trainer as _sft_trainer


def build_trainer(cfg, plan, model, tokenizer, train_ds, eval_ds, run_dir, device, callbacks=()):
    # same trainer as SFT: rows are tokenized text whose labels are the input ids; packing fills every
    # sequence to max_length with per-document position ids (no cross-document attention)
    return _sft_trainer(cfg, plan, model, tokenizer, train_ds, eval_ds, run_dir, device, callbacks)
