"""Tokenized rows -> the sequences a trainer steps over: rows too long for ``max_length`` dropped with a
reason or cut (DPO pairs the TRL or LLaMA-Factory way), documents split into pieces, a deterministic
shuffle and held-out split, and the Hugging Face dataset."""

from __future__ import annotations

import hashlib
import random
from typing import Any

from train.rows import Prepared
from train.tokens import IGNORE, Tokenized


def budget_lengths(prompt: int, answer: int, max_length: int) -> tuple[int, int]:
    """LLaMA-Factory's ``infer_seqlen``: (prompt tokens, answer tokens) kept when a prompt and its longest
    answer share ``max_length``. A short answer keeps all of it; a long one keeps at least its share of the
    budget in proportion to its length; the prompt gets the rest."""
    if answer * 2 < max_length:
        max_answer = max_length
    elif prompt * 2 < max_length:
        max_answer = max_length - prompt
    else:
        max_answer = int(max_length * (answer / (prompt + answer)))
    new_answer = min(max_answer, answer)
    return min(max(max_length - new_answer, 0), prompt), new_answer


def truncate_pair(enc: dict[str, list[int]], max_length: int, mode: str) -> dict[str, list[int]]:
    """A tokenized DPO pair cut to ``max_length`` tokens per sequence.

    ``keep_start`` (TRL's collator): prompt+answer keeps its first ``max_length`` tokens, per side.
    ``budget`` (LLaMA-Factory's cutoff_len): both answers are cut to the same length and the prompt to
    the rest of the budget (:func:`budget_lengths`), so the same number of tokens is trained as with
    LLaMA-Factory; unlike LLaMA-Factory, which keeps the *start* of the prompt and so cuts off the
    question and the assistant header the answers follow, the prompt keeps its *last* tokens.
    """
    prompt = enc["prompt_ids"]
    sides = [k for k in enc if k != "prompt_ids"]
    if mode == "budget":
        p, a = budget_lengths(len(prompt), max(len(enc[k]) for k in sides), max_length)
        return {"prompt_ids": prompt[len(prompt) - p :], **{k: enc[k][:a] for k in sides}}
    if mode != "keep_start":
        raise ValueError(f"unknown truncation {mode!r}")
    room = max(max_length - len(prompt), 0)
    return {"prompt_ids": prompt[:max_length], **{k: enc[k][:room] for k in sides}}


def overlong_reason(stage: str, max_length: int) -> str | None:
    if stage == "rm":
        return f"pair longer than max_length {max_length} (reward models are not truncated)"
    if stage in ("dpo", "kto", "orpo"):
        return f"prompt alone fills max_length {max_length} (nothing of the answer would be trained)"
    if stage in ("rloo", "grpo"):
        return f"prompt longer than max_length {max_length} (prompts are not truncated before sampling)"
    return None


def drop_overlong(
    tk: Tokenized, stage: str, max_length: int, prep: Prepared | None = None, truncation: str = "keep_start"
) -> int:
    """Drop the rows TRL would drop silently, with a counted reason: reward pairs with a side longer than
    ``max_length`` (RewardTrainer filters them), DPO/KTO rows whose prompt alone reaches ``max_length``
    (DPOTrainer/KTOTrainer filter them). DPO with ``truncation="budget"`` cuts the prompt instead and drops
    nothing. Returns how many were dropped."""
    reason = overlong_reason(stage, max_length)
    if reason is None or not tk.rows or (stage == "dpo" and truncation == "budget"):
        return 0
    if stage in ("rm", "rloo", "grpo"):
        keep = [n <= max_length for n in tk.lengths]
    else:
        keep = [p < max_length for p in tk.prompt_lengths]
    if prep is not None:
        for k, rid in zip(keep, tk.ids, strict=True):
            if not k:
                prep.drop(reason, rid)
    tk.keep(keep)
    return keep.count(False)


def shuffled(tk: Tokenized, seed: int) -> Tokenized:
    """The rows in a deterministic random order (``seed``). KTO trains in dataset order (its KL term pairs
    each answer with a neighbour's prompt), so the order must be mixed before the dataset is built: a
    preference pair becomes two adjacent rows of the same prompt otherwise."""
    order = list(range(len(tk.rows)))
    random.Random(seed).shuffle(order)
    return tk.subset(order)


def truncate(rows: list[dict[str, list[int]]], ids: list[str], max_length: int, prep: Prepared):
    """Keep the start of each row; drop rows whose trained tokens all fall beyond max_length."""
    kept, kept_ids, truncated = [], [], 0
    for r, rid in zip(rows, ids, strict=False):
        if len(r["input_ids"]) > max_length:
            truncated += 1
            r = {"input_ids": r["input_ids"][:max_length], "labels": r["labels"][:max_length]}
        # labels are shifted inside the model: position 0 is never a target
        if not any(lbl != IGNORE for lbl in r["labels"][1:]):
            prep.drop("no trained tokens within max_length", rid)
            continue
        kept.append(r)
        kept_ids.append(rid)
    return kept, kept_ids, truncated


def chunk(rows: list[dict[str, list[int]]], ids: list[str], max_length: int):
    """Continued pretraining: split every document into consecutive ``max_length`` pieces (no token is
    cut away). Returns (chunks, their ids, documents that were split)."""
    out, out_ids, split = [], [], 0
    for r, rid in zip(rows, ids, strict=False):
        n = len(r["input_ids"])
        split += n > max_length
        for i in range(0, n, max_length):
            piece = {
                "input_ids": r["input_ids"][i : i + max_length],
                "labels": r["labels"][i : i + max_length],
            }
            if len(piece["input_ids"]) > 1:  # a 1-token piece has no target (labels are shifted)
                out.append(piece)
                out_ids.append(rid)
    return out, out_ids, split


def n_chunks(lengths: list[int], max_length: int) -> int:
    """Pieces :func:`chunk` makes of documents of these lengths."""
    return sum(n // max_length + (n % max_length > 1) for n in lengths)


def to_dataset(rows: list[dict[str, Any]]):
    from datasets import Dataset

    return Dataset.from_list(rows)


def split_eval(rows: list, ids: list, share: float, seed: int):
    """Deterministic held-out split by row id hash (stable when the data grows)."""
    if share <= 0 or len(rows) < 10:
        return rows, ids, [], []
    tr, tri, ev, evi = [], [], [], []
    cut = int(share * 10_000)
    for r, i in zip(rows, ids, strict=False):
        h = int(hashlib.sha256(f"{seed}:{i}".encode()).hexdigest()[:8], 16) % 10_000
        (ev if h < cut else tr).append(r)
        (evi if h < cut else tri).append(i)
    if not ev:
        ev, evi, tr, tri = tr[-1:], tri[-1:], tr[:-1], tri[:-1]
    return tr, tri, ev, evi
