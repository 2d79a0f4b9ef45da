"""DPOTrainer on pre-tokenized pairs, with the fast path of ``--fast-loss`` (:func:`train.dpo.trainer_class`).

* The dataset holds ``prompt_ids``/``chosen_ids``/``rejected_ids`` already (TRL's tokenisation pass is
  skipped); batches are padded to their longest sequence, not to ``max_length``.
* Fast path: the sequence log-likelihoods come from the LM head applied to the completion tokens only
  (:mod:`train.selective`); the reference log-probs of a pair are computed the first time the pair is
  seen and cached by its position (the reference, the base with the adapter disabled or a separate
  frozen model, never changes: TRL's ``precompute_ref_log_probs`` without a pass over pairs a short
  run never trains), so later epochs and evaluations run no reference forward; only sequence-level
  metrics are logged (rewards, margins, accuracies, log-probs), not entropy, mean logits or token
  accuracy over the full logits. Micro-batches are length-grouped (:mod:`train.batching`).
Other losses, MoE aux losses, WPO weighting, f-divergences, multi-process runs and prompt-learning
adapters take TRL's own path.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from trl import DPOTrainer
from trl.models.utils import disable_gradient_checkpointing
from trl.trainer.dpo_trainer import DataCollatorForPreference
from trl.trainer.utils import use_adapter

from train import batching, selective

# losses the fast path computes itself (the same formulas as TRL 1.16's DPOTrainer._compute_loss)
FAST_LOSSES = ("sigmoid", "ipo", "sigmoid_norm", "hinge", "robust", "sft")


class IndexedCollator(DataCollatorForPreference):
    def torch_call(self, examples):
        out = super().torch_call(examples)
        if "pair_index" in examples[0]:
            out["pair_index"] = torch.tensor([e["pair_index"] for e in examples])
        return out


class PretokenizedPairs:
    """Pairs tokenized, truncated and filtered by tamis (``prompt_ids``/``chosen_ids``/``rejected_ids``)
    pass through TRL untouched, keep their ``pair_index``, and are length-grouped with ``--group-by-length``."""

    def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
        if "prompt_ids" in getattr(dataset, "column_names", ()):
            return dataset  # tokenized, truncated and filtered by tamis
        return super()._prepare_dataset(dataset, processing_class, args, dataset_name)

    def _set_signature_columns_if_needed(self):
        super()._set_signature_columns_if_needed()
        if "pair_index" not in self._signature_columns:
            self._signature_columns = [*self._signature_columns, "pair_index"]

    def _get_train_sampler(self, train_dataset=None):
        ds = train_dataset if train_dataset is not None else self.train_dataset
        if not (self.fast and self.group_by_length) or "prompt_ids" not in getattr(ds, "column_names", ()):
            return super()._get_train_sampler(train_dataset)
        lengths = [
            len(p) + max(len(c), len(r))
            for p, c, r in zip(ds["prompt_ids"], ds["chosen_ids"], ds["rejected_ids"], strict=True)
        ]
        return batching.train_sampler(self, lengths)


class ReferenceCache:
    """The reference log-probs of a pair, computed the first time the pair is seen and cached by its
    position: the reference (the base with the adapter disabled, or a separate frozen model) never changes."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self._ref_cache: dict[str, dict[int, tuple[float, float]]] = {"train": {}, "eval": {}}

    def _reference(self):
        """(decoder+head of the reference, context that makes it the reference), or None."""
        if self.ref_model is None:
            unwrapped = self.accelerator.unwrap_model(self.model)
            if not hasattr(unwrapped, "peft_config"):
                return None
            name = "ref" if "ref" in unwrapped.peft_config else None
            return selective.parts(self.model, self.accelerator), use_adapter(unwrapped, adapter_name=name)
        return selective.parts(self.ref_model, self.accelerator), contextlib.nullcontext()

    def _ref_logps(self, inputs, mode):
        idx = inputs.get("pair_index")
        cache = self._ref_cache[mode]
        keys = idx.tolist() if idx is not None else None
        if keys is not None and all(k in cache for k in keys):
            vals = torch.tensor([cache[k] for k in keys], dtype=torch.float32, device=idx.device)
            return vals[:, 0], vals[:, 1]
        ref = self._reference()
        if ref is None or ref[0] is None:
            return None
        parts, ctx = ref
        with (
            torch.no_grad(),
            disable_gradient_checkpointing(self.model, self.args.gradient_checkpointing_kwargs),
        ):
            with ctx:
                token_logps, rows = self._token_logps(parts, inputs)
        n = inputs["completion_mask"].size(0)
        logps = torch.zeros(n, dtype=token_logps.dtype, device=token_logps.device).index_add(
            0, rows, token_logps
        )
        chosen, rejected = logps.float().chunk(2, dim=0)
        if keys is not None:
            for k, c, r in zip(keys, chosen.tolist(), rejected.tolist(), strict=True):
                cache[k] = (c, r)
        return chosen, rejected


class FastLoss:
    """The sequence log-likelihoods from the LM head applied to the completion tokens only
    (:mod:`train.selective`), the DPO losses computed on them, and sequence-level metrics."""

    def _fast_ok(self) -> bool:
        return (
            self.fast
            and set(self.loss_types) <= set(FAST_LOSSES)
            and self.ld_alpha is None
            and self.f_divergence_type == "reverse_kl"
            and not self.use_weighting
            and not self.aux_loss_enabled
        )

    def _compute_loss(self, model, inputs, return_outputs):
        parts = selective.parts(model, self.accelerator) if self._fast_ok() and not return_outputs else None
        mode = "train" if self.model.training else "eval"
        ref = self._ref_logps(inputs, mode) if parts is not None else None
        if parts is None or ref is None:
            inputs = {k: v for k, v in inputs.items() if k != "pair_index"}
            return super()._compute_loss(model, inputs, return_outputs)
        return self._fast_loss(parts, inputs, ref, mode)

    def _token_logps(self, parts, inputs):
        """Per-token log-probs of the answers: the prompt run once per pair where the attention takes a
        custom mask, else each sequence on its own. Under accelerate's autocast: mixed precision is
        applied around the model's forward, which the decoder call bypasses."""
        with self.accelerator.autocast():
            return self._token_logps_inner(parts, inputs)

    def _token_logps_inner(self, parts, inputs):
        if self.share_prompt:
            unwrapped = self.accelerator.unwrap_model(self.model)
            if torch.is_grad_enabled() and self.args.gradient_checkpointing:
                # checkpointed layers turn the KV cache off: pack prompt|chosen|rejected rows instead
                impl = getattr(unwrapped.config, "_attn_implementation", None)
                out = selective.shared_prompt_logps(parts, inputs, impl)
            else:
                out = selective.cached_prompt_logps(parts, inputs)
            if out is not None:
                return out
        return selective.target_logps(parts, inputs, inputs["completion_mask"])

    def _fast_loss(self, parts, inputs, ref, mode):
        completion_mask = inputs["completion_mask"]
        token_logps, rows = self._token_logps(parts, inputs)
        n = completion_mask.size(0)
        logps = torch.zeros(n, dtype=token_logps.dtype, device=token_logps.device).index_add(
            0, rows, token_logps
        )
        chosen_logps, rejected_logps = logps.chunk(2, dim=0)
        ref_chosen, ref_rejected = ref
        chosen_logratios = chosen_logps - ref_chosen
        rejected_logratios = rejected_logps - ref_rejected
        delta = chosen_logratios - rejected_logratios
        chosen_mask, rejected_mask = completion_mask.chunk(2, dim=0)
        loss = 0.0
        for loss_type, weight in zip(self.loss_types, self.loss_weights, strict=True):
            if loss_type == "sigmoid":
                per = -F.logsigmoid(self.beta * delta)
            elif loss_type == "hinge":
                per = torch.relu(1 - self.beta * delta)
            elif loss_type in ("ipo", "sigmoid_norm"):
                d = chosen_logratios / chosen_mask.sum(dim=1).clamp(min=1.0) - rejected_logratios / (
                    rejected_mask.sum(dim=1).clamp(min=1.0)
                )
                per = (d - 1 / (2 * self.beta)) ** 2 if loss_type == "ipo" else -F.logsigmoid(self.beta * d)
            elif loss_type == "robust":
                clean = -(1 - self.label_smoothing) * F.logsigmoid(self.beta * delta)
                flipped = -self.label_smoothing * F.logsigmoid(-self.beta * delta)
                per = (clean - flipped) / (1 - 2 * self.label_smoothing)
            else:  # "sft": NLL of the chosen completion tokens
                per = (-token_logps[rows < n // 2].mean()).expand(n // 2)
            loss = loss + per.mean() * weight
        self._log_metrics(inputs, mode, chosen_logps, rejected_logps, chosen_logratios, rejected_logratios)
        return loss

    def _log_metrics(self, inputs, mode, chosen_logps, rejected_logps, chosen_logratios, rejected_logratios):
        acc = self.accelerator
        if mode == "train":
            self._total_train_tokens += int(
                acc.gather_for_metrics(inputs["attention_mask"].sum()).sum().item()
            )
        self._metrics[mode]["num_tokens"] = [self._total_train_tokens]
        chosen_rewards = self.beta * chosen_logratios.detach()
        rejected_rewards = self.beta * rejected_logratios.detach()
        m = self._metrics[mode]
        m["rewards/chosen"].append(acc.gather(chosen_rewards).mean().item())
        m["rewards/rejected"].append(acc.gather(rejected_rewards).mean().item())
        m["rewards/accuracies"].append(acc.gather((chosen_rewards > rejected_rewards).float()).mean().item())
        m["rewards/margins"].append(acc.gather(chosen_rewards - rejected_rewards).mean().item())
        m["logps/chosen"].append(acc.gather(chosen_logps.detach()).mean().item())
        m["logps/rejected"].append(acc.gather(rejected_logps.detach()).mean().item())


class TamisDPOTrainer(PretokenizedPairs, ReferenceCache, FastLoss, DPOTrainer):
    """`train dpo`'s trainer; ``fast`` (``--fast-loss``), ``group_by_length`` and ``share_prompt`` are set per
    run by :func:`train.dpo.build_trainer`."""

    fast = False
    group_by_length = False
    share_prompt = True
