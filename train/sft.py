"""`train sft`: supervised fine-tuning with TRL's SFTTrainer on pre-tokenized rows (labels from
:mod:`train.data`, so `train check` previews exactly what is trained)."""

from __future__ import annotations

from typing import Any

from train import batching, selective
from train.args import common_args


def build_config(cfg, plan: dict[str, Any], run_dir, device):
    """TRL's SFTConfig for this run.

    ``--packing`` packs rows into ``max_length`` blocks (best-fit decreasing, padding-free batches).
    ``--padding-free`` without packing flattens each batch into one row: TRL refuses a ``max_length``
    there (it cannot enforce it without packing), so it is passed as ``None``; the rows are already cut
    to the planned ``max_length`` by :func:`train.data.truncate`, so nothing longer reaches the model.
    """
    from trl import SFTConfig

    packing = bool(getattr(cfg, "packing", False))
    padding_free = bool(getattr(cfg, "padding_free", False)) or packing
    max_length = plan["max_length"] if packing or not padding_free else None
    return SFTConfig(
        **common_args(cfg, plan, run_dir, device),
        max_length=max_length,
        packing=packing,
        padding_free=padding_free,
        dataset_num_proc=None,
    )


def fast_trainer_class():
    """SFTTrainer whose loss is a plain cross-entropy over the labelled positions, in length-grouped batches.

    TRL 1.x patches the LM head to compute per-token log-probabilities in tiles (to avoid materialising
    the logits of huge vocabularies) and also computes entropy and top-1 accuracy for every token of every
    step. For small and mid-size vocabularies on CPU this costs about half the step time. Here the LM head
    runs only on the positions whose next token is trained (:mod:`train.selective`; the model's own
    forward where that is not exact), and the loss is the same token-mean NLL over the same labels (-100
    masked), normalised by the tokens in the global batch exactly like Trainer does; only the two
    diagnostic metrics are skipped. With ``group_by_length`` the micro-batches are length-grouped
    (:mod:`train.batching`: the same rows per window as the random order, less padding).
    """
    import torch
    from transformers import Trainer
    from trl import SFTTrainer

    class FastLossSFTTrainer(SFTTrainer):
        group_by_length = False

        def _get_train_sampler(self, train_dataset=None):
            ds = train_dataset if train_dataset is not None else self.train_dataset
            if not self.group_by_length or ds is None or "input_ids" not in getattr(ds, "column_names", ()):
                return super()._get_train_sampler(train_dataset)
            return batching.train_sampler(self, [len(x) for x in ds["input_ids"]])

        def _selective_loss(self, model, inputs, num_items_in_batch):
            p = selective.parts(model, self.accelerator)
            labels = inputs.get("labels")
            if p is None or labels is None or self.label_smoother is not None or self.compute_loss_func:
                return None
            shifted = torch.full_like(labels, -100)
            shifted[:, 1:] = labels[:, 1:]  # position 0 is never a target (labels are shifted)
            # mixed precision is applied by accelerate around the model's forward, which is bypassed here
            with self.accelerator.autocast():
                logps, _ = selective.target_logps(p, inputs, shifted != -100)
            if self.model_accepts_loss_kwargs and num_items_in_batch is not None:
                return -logps.sum() / num_items_in_batch
            return -logps.mean()

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            mode = "train" if self.model.training else "eval"
            inputs["use_cache"] = False
            loss = None if return_outputs else self._selective_loss(model, inputs, num_items_in_batch)
            outputs = None
            if loss is None:
                loss, outputs = Trainer.compute_loss(
                    self, model, inputs, return_outputs=True, num_items_in_batch=num_items_in_batch
                )
            if mode == "train":
                if "attention_mask" in inputs:
                    n = inputs["attention_mask"].sum()
                else:
                    n = torch.tensor(inputs["input_ids"].numel(), device=inputs["input_ids"].device)
                self._total_train_tokens += int(self.accelerator.gather_for_metrics(n).sum().item())
            self._metrics[mode]["num_tokens"] = [self._total_train_tokens]
            return (loss, outputs) if return_outputs else loss

    return FastLossSFTTrainer


def build_trainer(cfg, plan, model, tokenizer, train_ds, eval_ds, run_dir, device, callbacks=()):
    from trl import SFTTrainer

    args = build_config(cfg, plan, run_dir, device)
    cls = fast_trainer_class() if getattr(cfg, "fast_loss", False) else SFTTrainer
    trainer = cls(
        model=model,
        args=args,
        train_dataset=train_ds,
        eval_dataset=eval_ds,
        processing_class=tokenizer,
        callbacks=list(callbacks),
    )
    # grouping only reorders rows of unpacked batches (packed rows are already full-length)
    trainer.group_by_length = bool(getattr(cfg, "group_by_length", False)) and not args.packing
    return trainer
