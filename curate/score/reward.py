"""Reward scores from a sequence-classification reward model (one output), with its chat template.

- SFT/KTO rows: ``reward`` = the model's scalar for (system, history, question, answer).
- Preference rows (pairwise mode): ``reward_chosen``, ``reward_rejected`` and
  ``reward_margin = reward_chosen - reward_rejected`` (negative: the model prefers the rejected answer).
- Text rows have no question/answer and get a null with a reason.

The conversation is rendered with the reward model's chat template (as TRL's RewardTrainer does) and
the score is read at the last real token. Batches are right-padded; for decoder reward models (Llama,
Qwen2, Mistral, Gemma... ``*ForSequenceClassification`` with a ``score`` head) the per-position head
output is captured and read at each row's own last token, so the result never depends on how the model
finds padding (a pad id equal to EOS, left or right padding). Encoder reward models (DeBERTa...) pool
their first token themselves.

Truncation rule (``max_tokens``): a longer conversation keeps its first special token (BOS/CLS, if any)
and its last ``max_tokens - 1`` tokens, so the end of the answer, where the score is read, is always
kept: the question is cut first, and an answer longer than ``max_tokens - 1`` tokens loses its
beginning (and the question entirely). The row is flagged ``reward_truncated``.

A model whose config names no ``pad_token_id`` gets the scorer's pad id set on its config: Hugging
Face's sequence classifiers refuse batches of more than one row without it, and the score is read at
each row's own last token anyway.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from curate.records import messages_of
from curate.score.common import (
    ModelScorer,
    ModelSettings,
    ScoreError,
    budget_batches,
    fingerprint,
    isolate,
    load_tokenizer,
    load_weights,
    read_model_config,
    render,
)


class RowError(Exception):
    pass


@dataclass
class RewardConfig(ModelSettings):
    """The reward scorer's settings: those of every model scorer."""


def load_reward_model(path: Path, dtype, trust_remote_code: bool):
    from transformers import AutoModelForSequenceClassification

    config = read_model_config(path, trust_remote_code)
    archs = list(getattr(config, "architectures", None) or [])
    if archs and not any(a.endswith("ForSequenceClassification") for a in archs):
        raise ScoreError(
            f"{path} is a {archs[0]}, not a reward model: a reward model is a *ForSequenceClassification "
            f"checkpoint with one output (e.g. one trained with `train rm` or TRL's RewardTrainer)"
        )
    n_labels = getattr(config, "num_labels", 1)
    if n_labels != 1:
        raise ScoreError(
            f"{path} is a classifier with {n_labels} labels ({getattr(config, 'id2label', {})}), not a "
            f"reward model with one scalar output"
        )
    try:
        model, info = load_weights(AutoModelForSequenceClassification, path, dtype, trust_remote_code)
    except (OSError, ValueError) as exc:
        raise ScoreError(
            f"cannot load {path} as a reward model (safetensors weights required): {exc}"
        ) from None
    missing = info.get("missing_keys", [])
    if missing:
        raise ScoreError(
            f"{path} is not a trained reward model: {len(missing)} weights are missing (e.g. {sorted(missing)[0]}) "
            f"and would be randomly initialised"
        )
    return model


class RewardScorer(ModelScorer):
    name = "reward"
    columns = ("reward", "reward_chosen", "reward_rejected", "reward_margin")
    template_option = "reward_chat_template"

    def __init__(self, config: RewardConfig, model=None, tokenizer=None):
        import torch

        self._torch = torch
        self.load_model(config, model, tokenizer, load_reward_model, load_tokenizer)
        # BERT-family tokenizers need their [CLS]/[SEP]; decoder templates already hold every special token
        self.add_special = getattr(self.tok, "cls_token", None) is not None
        self.head = getattr(self.model, "score", None)
        # HF's *ForSequenceClassification refuses batches of more than one row when the config names no
        # pad token; the scorer reads each row at its own last token, so any pad id works
        if getattr(self.model.config, "pad_token_id", None) is None:
            self.model.config.pad_token_id = self.pad_id
        self.fingerprint = fingerprint(
            self.model_dir,
            {
                "scorer": "reward/v1",
                "max_tokens": self.max_tokens,
                "dtype": str(self.dtype),
                "template": self.tok.chat_template,
            },
        )

    def payload(self, row: Mapping[str, Any]) -> Any:
        if row.get("kind") == "preference":
            return [messages_of(row, answer_field=None), row.get("chosen"), row.get("rejected")]
        return [messages_of(row, answer_field=None), row.get("answer")]

    def _encode_one(self, msgs: list[dict[str, str]], answer: str | None) -> tuple[list[int], bool]:
        if answer is None or not str(answer).strip():
            raise RowError("empty answer")
        try:
            text = render(self.tok, msgs + [{"role": "assistant", "content": answer}], False)
        except Exception as exc:  # noqa: BLE001
            raise RowError(f"chat template failed: {exc}") from None
        ids = list(self.tok(text, add_special_tokens=self.add_special, verbose=False)["input_ids"])
        if len(ids) <= self.max_tokens:
            return ids, False
        first = ids[0] if ids[0] in self.tok.all_special_ids else None
        tail = ids[-(self.max_tokens - (first is not None)) :]
        return ([first] if first is not None else []) + tail, True

    def encode(self, row: Mapping[str, Any]) -> tuple[list[list[int]], bool]:
        if row.get("kind") == "text":
            raise RowError("text rows have no question and answer to reward")
        payload = self.payload(row)
        msgs = payload[0]
        seqs, truncated = [], False
        for answer in payload[1:]:
            ids, t = self._encode_one(msgs, answer)
            seqs.append(ids)
            truncated |= t
        return seqs, truncated

    def rewards(self, seqs: list[list[int]]) -> list[float]:
        torch = self._torch
        b, longest = len(seqs), max(len(s) for s in seqs)
        ids = torch.full((b, longest), self.pad_id, dtype=torch.long)
        mask = torch.zeros((b, longest), dtype=torch.long)
        for r, s in enumerate(seqs):
            ids[r, : len(s)] = torch.tensor(s)
            mask[r, : len(s)] = 1
        captured: list[Any] = []
        hook = None
        if self.head is not None:
            hook = self.head.register_forward_hook(lambda mod, inp, out: captured.append(out))
        try:
            with torch.inference_mode():
                out = self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device))
        finally:
            if hook is not None:
                hook.remove()
        if captured and captured[-1].dim() == 3:
            per_pos = captured[-1]
            last = torch.tensor([len(s) - 1 for s in seqs], device=per_pos.device)
            values = per_pos[torch.arange(b, device=per_pos.device), last, 0]
        else:
            values = out.logits[:, 0]
        return [float(v) for v in values.float().cpu()]

    def score_rows(
        self, rows: list[Mapping[str, Any]], advance: Callable[[float], None] = lambda n: None
    ) -> list[dict[str, Any]]:
        results: list[dict[str, Any]] = [{} for _ in rows]
        encoded: dict[int, tuple[list[list[int]], bool]] = {}
        for i, row in enumerate(rows):
            try:
                encoded[i] = self.encode(row)
            except RowError as exc:
                results[i] = {"error": str(exc)}
            except Exception as exc:  # noqa: BLE001
                results[i] = {"error": f"cannot tokenize: {type(exc).__name__}: {exc}"}
        if len(rows) - len(encoded):
            advance(len(rows) - len(encoded))
        flat = [(i, j) for i, (seqs, _) in encoded.items() for j in range(len(seqs))]
        values: dict[tuple[int, int], float | str] = {}
        lengths = [len(encoded[i][0][j]) for i, j in flat]
        for batch in budget_batches(lengths, self.config.token_budget, self.config.max_batch):
            seqs = [encoded[flat[k][0]][0][flat[k][1]] for k in batch]
            for pos, value in isolate(self.rewards, seqs, self._free):
                values[flat[batch[pos]]] = value
            advance(sum(1 / len(encoded[flat[k][0]][0]) for k in batch))
        for i, (seqs, truncated) in encoded.items():
            vals = [values[(i, j)] for j in range(len(seqs))]
            err = next((v for v in vals if isinstance(v, str)), None)
            if err is None and not all(math.isfinite(v) for v in vals):
                err = "non-finite reward (the model produced NaN or inf)"
            if err is not None:
                results[i] = {"error": err}
            elif len(vals) == 2:
                results[i] = {
                    "reward_chosen": vals[0],
                    "reward_rejected": vals[1],
                    "reward_margin": vals[0] - vals[1],
                    "truncated": truncated,
                }
            else:
                results[i] = {"reward": vals[0], "truncated": truncated}
        return results
