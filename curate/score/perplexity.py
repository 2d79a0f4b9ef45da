"""Perplexity and IFD (Instruction-Following Difficulty, Cherry LLM) with any Hugging Face causal LM.

For each row the scorer measures the same answer tokens twice:

- ``ppl``: perplexity of the answer given the conversation (system, earlier turns, question), laid out
  with the model's chat template; the loss covers only the answer tokens.
- ``ppl_answer``: perplexity of those same answer tokens with no question: only the template's assistant
  header before them (e.g. ``<|im_start|>assistant\\n``, plus the BOS token where the template starts
  with one).
- ``ifd = ppl / ppl_answer``, computed as ``exp(mean NLL(answer | question) - mean NLL(answer))``. IFD
  below 1 means the question helps predict the answer; IFD at or above 1 means it does not (Cherry LLM
  drops such rows as likely mismatched), and large values among rows below 1 mark hard instructions.

The answer tokens are what the template renders for the assistant turn after the generation prompt,
trailing whitespace dropped: the answer text plus the model's end-of-turn token (``<|im_end|>``,
``<|eot_id|>``...). Preference rows are scored on ``chosen``; text rows get ``ppl`` of the text after
a BOS (or EOS) token, and no IFD. A row with an answer but no question, history or system prompt is
scored after an empty prompt: the conversation is the assistant turn alone, as the reward scorer
renders it (its IFD is then about 1: there is no question to help).

Truncation rule (``max_tokens``, default 2048 or the model's limit if smaller): the answer keeps its
first tokens, up to the budget minus the prompt, but the prompt keeps at least half the budget (or all
of itself if shorter); the prompt keeps its last tokens (those nearest the answer). Both perplexities
are computed on the same kept answer tokens, and the row is flagged ``ppl_truncated``.

Speed: sequences of all rows are sorted into length buckets and batched under a padded-token budget,
run under ``torch.inference_mode``; batches are left-padded with explicit ``position_ids`` so that only
the logits of answer positions are computed (``logits_to_keep``), which skips most of the vocabulary
projection. Models whose forward takes no ``position_ids`` are right-padded and compute all logits.
Results do not depend on batch size, padding side or row order (tests check this against a per-row
reference loop).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from curate.records import messages_of
from curate.score.common import (
    ModelScorer,
    ModelSettings,
    ScoreError,
    budget_batches,
    common_prefix_len,
    fingerprint,
    isolate,
    load_tokenizer,
    load_weights,
    read_model_config,
    render,
)


class RowError(Exception):
    """This row cannot be scored; the reason goes into the output, the others are scored."""


@dataclass
class PplConfig(ModelSettings):
    padding: str = "auto"  # auto (left when the model takes position_ids) | left | right
    ifd: bool = True  # also score the answer alone (ppl_answer, ifd): twice the work of ppl alone


@dataclass
class Encoded:
    """One row ready to score: sequences of token ids whose last ``n`` tokens are the targets."""

    cond: list[int]
    uncond: list[int] | None
    n: int
    truncated: bool = False
    text: bool = False  # a text row: ``cond`` is the text after BOS/EOS, no IFD
    seqs: list[list[int]] = field(init=False)

    def __post_init__(self):
        self.seqs = [s for s in (self.cond, self.uncond) if s is not None]


def _accepts(fn: Callable, name: str) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return name in params


def load_causal_lm(path: Path, dtype, trust_remote_code: bool):
    from transformers import AutoModelForCausalLM

    config = read_model_config(path, trust_remote_code)
    archs = list(getattr(config, "architectures", None) or [])
    if archs and all(a.endswith(("ForSequenceClassification", "ForTokenClassification")) for a in archs):
        raise ScoreError(
            f"{path} is a {archs[0]}, not a causal language model; perplexity needs a model with an LM "
            f"head (e.g. an *ForCausalLM such as a Qwen2.5 Instruct model)"
        )
    try:
        model, info = load_weights(AutoModelForCausalLM, path, dtype, trust_remote_code)
    except ValueError as exc:
        raise ScoreError(f"{path} cannot be loaded as a causal LM: {exc}") from None
    except OSError as exc:
        raise ScoreError(f"cannot load {path} (safetensors weights are required): {exc}") from None
    missing = [
        k for k in info.get("missing_keys", []) if "lm_head" not in k or not config.tie_word_embeddings
    ]
    if missing:
        raise ScoreError(
            f"{path} is not a complete causal LM: {len(missing)} weights missing (e.g. {missing[0]}); "
            f"scoring with randomly initialised weights would give meaningless numbers"
        )
    return model


class PerplexityScorer(ModelScorer):
    """Scores rows with ``ppl``, ``ppl_answer``, ``ifd``, ``ppl_tokens`` (and the truncation flag)."""

    name = "ppl"
    columns = ("ppl", "ppl_answer", "ifd", "ppl_tokens")
    template_option = "lm_chat_template"

    def __init__(self, config: PplConfig, model=None, tokenizer=None):
        import torch

        self.ifd = config.ifd
        self.load_model(config, model, tokenizer, load_causal_lm, load_tokenizer)
        fwd = self.model.forward
        self._keep_arg = next((a for a in ("logits_to_keep", "num_logits_to_keep") if _accepts(fwd, a)), None)
        takes_pos = _accepts(fwd, "position_ids")
        if config.padding == "auto":
            self.padding = "left" if takes_pos else "right"
        elif config.padding == "left" and not takes_pos:
            raise ScoreError("left padding needs a model whose forward takes position_ids")
        else:
            self.padding = config.padding
        self.prefix_ids = self._answer_prefix()
        self.text_prefix = [i for i in (self.tok.bos_token_id, self.tok.eos_token_id) if i is not None][:1]
        self._torch = torch
        self.fingerprint = fingerprint(
            self.model_dir,
            {
                "scorer": "ppl/v2",
                "ifd": self.ifd,
                "max_tokens": self.max_tokens,
                "dtype": str(self.dtype),
                "template": self.tok.chat_template,
            },
        )

    # ------------------------------------------------------------------ encoding
    def _ids(self, text: str) -> list[int]:
        return list(self.tok(text, add_special_tokens=False, verbose=False)["input_ids"])

    def _answer_prefix(self) -> list[int]:
        """The tokens before the answer when there is no question: BOS (if the template starts with it)
        and the assistant header that the generation prompt adds."""
        probe = [{"role": "user", "content": "x"}]
        with_gen = render(self.tok, probe, True)
        without = render(self.tok, probe, False)
        header = with_gen[common_prefix_len(with_gen, without) :]
        bos = self.tok.bos_token
        text = (bos if bos and with_gen.startswith(bos) else "") + header
        ids = self._ids(text) if text else []
        if not ids:
            first = self.tok.bos_token_id if self.tok.bos_token_id is not None else self.tok.eos_token_id
            if first is None:
                raise ScoreError("the tokenizer has no BOS/EOS token and the template no assistant header")
            ids = [int(first)]
        return ids

    def payload(self, row: Mapping[str, Any]) -> Any:
        """Exactly what this scorer reads from a row (the cache key hashes it)."""
        if row.get("kind") == "text":
            return ["text", row.get("text")]
        field_ = "chosen" if row.get("kind") == "preference" else "answer"
        return [messages_of(row, answer_field=None), row.get(field_)]

    def encode(self, row: Mapping[str, Any]) -> Encoded:
        if row.get("kind") == "text":
            text = row.get("text") or ""
            if not text.strip():
                raise RowError("empty text")
            ids = self._ids(text)
            k = min(len(ids), self.max_tokens - len(self.text_prefix))
            return Encoded(self.text_prefix + ids[:k], None, k, truncated=k < len(ids), text=True)
        msgs, answer = self.payload(row)
        if answer is None or not str(answer).strip():
            raise RowError("empty answer")
        try:
            full_text = render(self.tok, msgs + [{"role": "assistant", "content": answer}], False)
            if msgs:
                split = common_prefix_len(render(self.tok, msgs, True), full_text)
            else:  # an answer-only row: scored after an empty prompt, as the reward scorer does
                split = self._answer_only_split(full_text)
        except RowError:
            raise
        except Exception as exc:  # noqa: BLE001 - template errors (e.g. roles it refuses)
            raise RowError(f"chat template failed: {exc}") from None
        end = len(full_text.rstrip())
        if end <= split:
            raise RowError("the chat template rendered no answer tokens")
        prompt_ids, ans_ids = self._split(full_text[:end], split)
        if not ans_ids:
            raise RowError("the answer produced no tokens")
        budget = self.max_tokens
        k = min(len(ans_ids), budget - min(len(prompt_ids), budget // 2), budget - len(self.prefix_ids))
        if k <= 0:
            raise RowError(f"max_tokens={budget} leaves no room for the answer")
        truncated = k < len(ans_ids)
        room = budget - k
        if len(prompt_ids) > room:
            prompt_ids = prompt_ids[-room:]
            truncated = True
        ans = ans_ids[:k]
        return Encoded(prompt_ids + ans, self.prefix_ids + ans if self.ifd else None, k, truncated)

    def _answer_only_split(self, full_text: str) -> int:
        """Where the answer starts in a conversation of one assistant turn (no question, no history):
        the template's text before a marker answer, which must also start the real rendering."""
        marker = "\ue000tamis-answer\ue000"
        probe = render(self.tok, [{"role": "assistant", "content": marker}], False)
        i = probe.find(marker)
        if i < 0 or not full_text.startswith(probe[:i]):
            raise RowError("the chat template does not lay out an answer without a question")
        return i

    def _split(self, text: str, split: int) -> tuple[list[int], list[int]]:
        """Token ids of ``text`` split where the answer starts (character offset ``split``)."""
        if getattr(self.tok, "is_fast", False):
            enc = self.tok(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
            ids, offsets = list(enc["input_ids"]), enc["offset_mapping"]
            for i, (_, stop) in enumerate(offsets):
                if stop > split:
                    return ids[:i], ids[i:]
            return ids, []
        return self._ids(text[:split]), self._ids(text[split:])

    # ------------------------------------------------------------------ model
    def nll_sums(self, seqs: list[list[int]], ns: list[int]) -> list[float]:
        """Summed negative log-likelihood of the last ``n`` tokens of each sequence, in one forward pass."""
        torch = self._torch
        import torch.nn.functional as F

        b, longest = len(seqs), max(len(s) for s in seqs)
        ids = torch.full((b, longest), self.pad_id, dtype=torch.long)
        mask = torch.zeros((b, longest), dtype=torch.long)
        left = self.padding == "left"
        for r, s in enumerate(seqs):
            if left:
                ids[r, longest - len(s) :] = torch.tensor(s)
                mask[r, longest - len(s) :] = 1
            else:
                ids[r, : len(s)] = torch.tensor(s)
                mask[r, : len(s)] = 1
        kwargs: dict[str, Any] = {"input_ids": ids.to(self.device), "attention_mask": mask.to(self.device)}
        keep = longest
        if left:
            kwargs["position_ids"] = (mask.cumsum(-1) - 1).clamp(min=0).to(self.device)
            if self._keep_arg:
                keep = max(ns) + 1
                kwargs[self._keep_arg] = keep
        kwargs["use_cache"] = False
        with torch.inference_mode():
            logits = self.model(**kwargs).logits
            logits = logits[:, -keep:, :]
            out = []
            for r, (s, n) in enumerate(zip(seqs, ns, strict=True)):
                if left:
                    lg = logits[r, keep - 1 - n : keep - 1]
                else:
                    start = len(s) - 1 - n - (longest - keep)
                    lg = logits[r, start : start + n]
                target = ids[r, longest - n :] if left else ids[r, len(s) - n : len(s)]
                nll = F.cross_entropy(lg.float(), target.to(lg.device), reduction="sum")
                out.append(float(nll))
        return out

    def score_rows(
        self, rows: list[Mapping[str, Any]], advance: Callable[[float], None] = lambda n: None
    ) -> list[dict[str, Any]]:
        """One result dict per row: the score columns (and ``flags``) or ``{"error": reason}``."""
        results: list[dict[str, Any]] = [{} for _ in rows]
        encoded: dict[int, Encoded] = {}
        for i, row in enumerate(rows):
            try:
                encoded[i] = self.encode(row)
            except RowError as exc:
                results[i] = {"error": str(exc)}
            except Exception as exc:  # noqa: BLE001 - bad characters, tokenizer failures
                results[i] = {"error": f"cannot tokenize: {type(exc).__name__}: {exc}"}
        done_rows = len(rows) - len(encoded)
        if done_rows:
            advance(done_rows)
        flat: list[tuple[int, int]] = []  # (row, which sequence)
        for i, e in encoded.items():
            flat += [(i, j) for j in range(len(e.seqs))]
        nll: dict[tuple[int, int], float | str] = {}
        lengths = [len(encoded[i].seqs[j]) for i, j in flat]
        for batch in budget_batches(lengths, self.config.token_budget, self.config.max_batch):
            seqs = [encoded[flat[k][0]].seqs[flat[k][1]] for k in batch]
            ns = [encoded[flat[k][0]].n for k in batch]
            pairs = list(zip(seqs, ns, strict=True))
            for pos, value in isolate(self._nll_pairs, pairs, self._free):
                nll[flat[batch[pos]]] = value
            advance(sum(1 / len(encoded[flat[k][0]].seqs) for k in batch))
        for i, e in encoded.items():
            values = [nll[(i, j)] for j in range(len(e.seqs))]
            errors = [v for v in values if isinstance(v, str)]
            if errors:
                results[i] = {"error": errors[0]}
                continue
            means = [v / e.n for v in values]
            if not all(math.isfinite(m) for m in means):
                results[i] = {"error": "non-finite loss (the model produced NaN or inf)"}
                continue
            res: dict[str, Any] = {"ppl_tokens": e.n, "truncated": e.truncated}
            res["ppl"] = _exp(means[0])
            if e.uncond is not None:
                res.update(ppl_answer=_exp(means[1]), ifd=_exp(means[0] - means[1]))
            if res["ppl"] is None or (
                e.uncond is not None and (res["ppl_answer"] is None or res["ifd"] is None)
            ):
                results[i] = {"error": "perplexity overflows a float (loss above 700 nats per token)"}
                continue
            results[i] = res
        return results

    def _nll_pairs(self, pairs: list[tuple[list[int], int]]) -> list[float]:
        return self.nll_sums([p[0] for p in pairs], [p[1] for p in pairs])

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "padding": self.padding, "ifd": self.ifd}


def _exp(x: float) -> float | None:
    try:
        return math.exp(x)
    except OverflowError:
        return None
