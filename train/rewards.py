"""Rewards for `train rloo` / `train grpo`: a reward model from `train rm`, rule rewards, or both, weighted.

Rule rewards (TRL reward functions: one float per completion; the metric name is the rule's name):

- ``exact``: the completion's final answer equals the row's reference answer (normalised: case, width,
  whitespace and punctuation ignored). The final answer is the text after the last final-answer marker
  (``Final answer:`` / ``最终答案：`` ..., as written by `curate augment --cot`), after ``</think>``, or the
  whole completion;
- ``contains``: the reference answer appears anywhere in the completion (normalised);
- ``format``: reasoning followed by a final-answer line, or a closed ``<think>...</think>`` block followed
  by an answer (the two CoT styles of `curate augment --cot`);
- ``length:N``: ``1 - |tokens - N| / N`` clipped at 0 (completions near N tokens score best).

The reference answer of a row: ``answer`` of SFT rows (for CoT rows, the final answer after the marker, or
after ``</think>``), ``chosen`` of preference rows.

The reward model is checked before anything is loaded (:func:`check_reward_model`): a directory whose
saved config is not a one-score sequence classifier, or a run of another stage, is refused.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from curate.augment.common import norm_key
from curate.augment.cot import split_final
from train import data as D
from train.answers import THINK, final_answer, reference_of  # noqa: F401  (reference_of: re-exported)
from train.export import base_model_path, load_run_tokenizer, load_trained, read_run
from train.specs import (  # noqa: F401  (re-exported: the reward specs' home was here)
    NEEDS_REFERENCE,
    RULES,
    RewardSpecError,
    RuleSpec,
    parse_rewards,
)

# ------------------------------------------------------------------ answers


def _norm(text: str) -> str:
    return norm_key(text or "")


def _text(completion: Any) -> str:
    """TRL passes conversational completions as ``[{"role": "assistant", "content": ...}]``."""
    if isinstance(completion, list):
        return "".join(str(m.get("content") or "") for m in completion if isinstance(m, dict))
    return str(completion)


def has_format(text: str) -> bool:
    m = THINK.match(text)
    if m:
        return bool(m.group(1).strip()) and bool(m.group(2).strip())
    reasoning, final = split_final(text)
    return final is not None and bool(reasoning.strip()) and bool(final.strip())


def make_rule(spec: RuleSpec):
    """A TRL reward function for one rule (named after it: TRL logs ``rewards/<name>/mean``)."""

    def reward(prompts=None, completions=None, completion_ids=None, reference=None, **_):
        texts = [_text(c) for c in completions]
        refs = reference or [None] * len(texts)
        if spec.name == "exact":
            return [
                None if r is None else float(_norm(final_answer(t)) == _norm(r))
                for t, r in zip(texts, refs, strict=True)
            ]
        if spec.name == "contains":
            return [
                None if r is None else float(bool(_norm(r)) and _norm(r) in _norm(t))
                for t, r in zip(texts, refs, strict=True)
            ]
        if spec.name == "format":
            return [float(has_format(t)) for t in texts]
        n = spec.target
        lengths = (
            [len(ids) for ids in completion_ids] if completion_ids is not None else [len(t) for t in texts]
        )
        return [max(0.0, 1.0 - abs(k - n) / n) for k in lengths]

    reward.__name__ = spec.label
    return reward


# ------------------------------------------------------------------ the reward model


class RewardModelError(ValueError):
    pass


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise RewardModelError(f"{path}: unreadable ({e})") from None


def _check_classifier_config(config_path: Path, what: str) -> None:
    cfg = _read_json(config_path)
    archs = cfg.get("architectures") or []
    if not any(str(a).endswith("ForSequenceClassification") for a in archs):
        raise RewardModelError(
            f"{what} is not a sequence classifier (architectures: {', '.join(archs) or 'none'} in "
            f"{config_path}); a reward model scores a whole answer: train one with `train rm`"
        )
    labels = cfg.get("num_labels") or len(cfg.get("id2label") or {}) or 1
    if labels != 1:
        raise RewardModelError(f"{what} has {labels} output labels; a reward model has one score (train rm)")


def _check_adapter(adapter_dir: Path, what: str, base_hint: str | None = None) -> None:
    ac = _read_json(adapter_dir / "adapter_config.json")
    if ac.get("task_type") not in (None, "SEQ_CLS"):
        raise RewardModelError(
            f"{what} is a {ac.get('task_type')} adapter, not a reward model (SEQ_CLS); train one with `train rm`"
        )
    base = Path(base_hint or ac.get("base_model_name_or_path") or "")
    if not (base / "config.json").is_file():
        raise RewardModelError(f"{what}: its base model {base} is not a local model directory")


def check_reward_model(spec: str) -> dict[str, Any]:
    """Validate a reward model without loading weights; returns how to load it:
    ``{"kind": "run"|"model"|"adapter", "path": ...}``. Raises :class:`RewardModelError`."""
    p = Path(spec)
    what = f"reward model {spec}"
    if not p.exists():
        raise RewardModelError(f"{what}: not found")
    if not p.is_dir():
        raise RewardModelError(f"{what}: not a directory")
    if (p / "run.json").is_file():
        meta = _read_json(p / "run.json")
        if meta.get("stage") != "rm":
            raise RewardModelError(
                f"{what} is a `train {meta.get('stage')}` run, not a reward model; give a `train rm` run"
            )
        final = p / "final"
        if not final.is_dir():
            raise RewardModelError(
                f"{what}: the run has no final/ model (status {meta.get('status')}); finish it first"
            )
        if (final / "adapter_config.json").is_file():
            # (its base may be a causal LM: `train rm` gave it a one-score head, saved with the adapter)
            _check_adapter(final, what, base_model_path(p, meta))
        else:
            _check_classifier_config(final / "config.json", what)
        return {"kind": "run", "path": str(p)}
    if (p / "adapter_config.json").is_file():
        _check_adapter(p, what)
        return {"kind": "adapter", "path": str(p)}
    if not (p / "config.json").is_file():
        raise RewardModelError(f"{what}: no config.json (not a model directory or a `train rm` run)")
    _check_classifier_config(p / "config.json", what)
    return {"kind": "model", "path": str(p)}


def load_reward_model(spec: str, dtype, policy_tokenizer=None):
    """(model, tokenizer) of a reward model, merged into plain weights (TRL scores with a
    ``PreTrainedModel``), in eval mode with its pad token set. A tokenizer without a chat template takes the
    policy's (the completions are scored as conversations)."""
    from transformers import AutoModelForSequenceClassification

    where = check_reward_model(spec)
    p = Path(where["path"])
    if where["kind"] == "run":
        meta = read_run(p)
        tok = load_run_tokenizer(p)
        model = load_trained(p, meta, merged=True, dtype=dtype, tokenizer=tok)
    elif where["kind"] == "adapter":
        from peft import PeftModel

        ac = _read_json(p / "adapter_config.json")
        tok = D.load_tokenizer(
            str(p) if (p / "tokenizer_config.json").is_file() else ac["base_model_name_or_path"]
        )
        base = AutoModelForSequenceClassification.from_pretrained(
            ac["base_model_name_or_path"],
            num_labels=1,
            dtype=dtype,
            use_safetensors=True,
            local_files_only=True,
        )
        model = PeftModel.from_pretrained(base, str(p)).merge_and_unload()
    else:
        tok = D.load_tokenizer(str(p))
        model = AutoModelForSequenceClassification.from_pretrained(
            str(p), num_labels=1, dtype=dtype, use_safetensors=True, local_files_only=True
        )
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tok.pad_token_id
    if not tok.chat_template and policy_tokenizer is not None:
        tok.chat_template = policy_tokenizer.chat_template
    model.config._name_or_path = "reward_model"  # TRL names the metric rewards/<name>/mean
    model.eval()
    for prm in model.parameters():
        prm.requires_grad_(False)
    return model, tok


def reward_setup(cfg, policy_tokenizer, dtype):
    """(reward functions, reward tokenizers, weights) in TRL's order: the reward model first, then the rules."""
    funcs, tokenizers, weights = [], [], []
    if cfg.reward_model:
        model, tok = load_reward_model(cfg.reward_model, dtype, policy_tokenizer)
        funcs.append(model)
        tokenizers.append(tok)
        weights.append(cfg.reward_model_weight)
    for spec in parse_rewards(cfg.reward):
        funcs.append(make_rule(spec))
        tokenizers.append(None)
        weights.append(spec.weight)
    return funcs, tokenizers, weights
