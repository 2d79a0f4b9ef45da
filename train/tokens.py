"""The one tokenizer path that `train check` and training share: the model's tokenizer and chat template,
and rows -> token ids with their labels.

SFT and PT rows are tokenized here (input_ids + labels with -100 on untrained tokens) and handed to
TRL pre-tokenized: the label preview of `train check` is therefore the exact labels the trainer uses.
DPO, RM and KTO rows are handed to TRL as conversational records; they are rendered here with the same
template to measure lengths and catch failures (DPO keeps the token ids: TRL does not tokenize again).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from curate.tiny_models import CHATML_TEMPLATE
from train.rows import PAIR_STAGES, DataError, Prepared

IGNORE = -100


def load_tokenizer(model: str, template: str | None = None, trust_remote_code: bool = False):
    """The model's tokenizer, loaded through the real from_pretrained path with ``local_files_only=True``
    (like the weights, see :func:`train.methods.load_model`): a local directory, or a hub id already in
    the local HF cache; nothing is ever fetched, whatever HF_HUB_OFFLINE says. Remote code stays off
    unless asked for."""
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(
            model, trust_remote_code=bool(trust_remote_code), local_files_only=True
        )
    except (OSError, ValueError) as e:
        if not Path(model).exists():  # transformers' message says "check your internet connection"
            raise DataError(
                f"cannot load the tokenizer of {model}: it is not a local directory and not in the local "
                f"Hugging Face cache, and tamis never downloads. Fetch it first (`huggingface-cli download "
                f"{model}`) or pass a local path."
            ) from None
        raise DataError(f"cannot load the tokenizer of {model}: {e}") from None
    if template:
        tok.chat_template = read_template(template)
    if tok.pad_token_id is None and tok.eos_token_id is not None:
        # no pad token: pad with eos (labels of padding are -100 anyway); `train check` warns about it
        tok.pad_token = tok.eos_token
    return tok


def read_template(template: str) -> str:
    if template == "chatml":
        return CHATML_TEMPLATE
    p = Path(template)
    if not p.is_file():
        raise DataError(f"--template {template}: file not found (give a .jinja file or 'chatml')")
    return p.read_text(encoding="utf-8")


def _ids(enc: Any) -> list[int]:
    if isinstance(enc, dict) or hasattr(enc, "keys"):
        ids = enc["input_ids"]
    else:
        ids = enc
    if ids and isinstance(ids[0], list):
        ids = ids[0]
    return list(ids)


def _render(tok, messages, **kw) -> dict[str, Any]:
    enc = tok.apply_chat_template(messages, tokenize=True, return_dict=True, **kw)
    return {k: (list(v[0]) if v and isinstance(v[0], list) else list(v)) for k, v in enc.items()}


def common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def has_generation_markers(tok) -> bool:
    t = tok.chat_template or ""
    return "{% generation %}" in t or "{%- generation %}" in t or "generation -%}" in t


class RowError(ValueError):
    pass


def end_of_turn_ids(tok) -> set[int]:
    """eos plus the usual end-of-turn tokens that exist in this vocabulary."""
    ids = set()
    if tok.eos_token_id is not None:
        ids.add(tok.eos_token_id)
    for t in ("<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|end|>", "</s>", "<|endoftext|>"):
        i = tok.convert_tokens_to_ids(t)
        if isinstance(i, int) and i >= 0 and i != tok.unk_token_id:
            ids.add(i)
    return ids


def _tool_call_names(messages: list[dict[str, Any]]) -> list[str]:
    names = []
    for m in messages:
        for call in m.get("tool_calls") or []:
            if not isinstance(call, dict):
                continue
            fn = call.get("function") if isinstance(call.get("function"), dict) else call
            if fn.get("name"):
                names.append(str(fn["name"]))
    return names


def _check_tool_calls_rendered(tok, messages: list[dict[str, Any]], trained_ids: list[int]) -> None:
    """A trained turn that calls tools must show the calls in its trained tokens: a template that ignores
    ``tool_calls`` would train an empty answer."""
    names = _tool_call_names(messages)
    if not names:
        return
    text = tok.decode(trained_ids)
    missing = [n for n in names if n not in text]
    if missing:
        raise RowError(
            f"the chat template does not render tool calls (the trained answer calls {missing[0]!r}); use a "
            "template with tool-call support (--template FILE)"
        )


def count_spans(labels: list[int]) -> int:
    """Contiguous runs of trained (not -100) labels: one per trained turn."""
    spans, prev = 0, False
    for x in labels:
        cur = x != IGNORE
        spans += cur and not prev
        prev = cur
    return spans


def _labels_by_turn_prefix(tok, msgs, ids: list[int]) -> list[int] | None:
    """Assistant labels by rendering the conversation turn by turn: a turn's tokens are those that appear
    when it is added. Only valid for templates that render the conversation up to a turn as a prefix of
    the full render ("prefix-preserving"); returns None when this conversation shows otherwise (e.g.
    Qwen3 templates render a `<think>` block on the last turn only, so a turn renders differently when it
    is last)."""
    labels = [IGNORE] * len(ids)
    eot = end_of_turn_ids(tok)
    for i, m in enumerate(msgs):
        if m["role"] != "assistant":
            continue
        before = _render(tok, msgs[:i], add_generation_prompt=True)["input_ids"]
        upto = _render(tok, msgs[: i + 1])["input_ids"]
        start = common_prefix(before, ids)
        end = common_prefix(upto, ids)
        # everything of this turn up to its end-of-turn token must be in the full render; separators a
        # template adds after the last turn only may differ
        turn_end = max((j for j in range(start, len(upto)) if upto[j] in eot), default=len(upto) - 1)
        if start >= end or end <= turn_end:
            return None
        # the turn ends at its end-of-turn token; separators the template adds after it are not trained
        last = max((j for j in range(start, end) if ids[j] in eot), default=None)
        if last is not None:
            end = last + 1
        labels[start:end] = ids[start:end]
    return labels


def _text(tok, messages, **kw) -> str:
    return tok.apply_chat_template(messages, tokenize=False, **kw)


def _generation_header(tok, msgs) -> str | None:
    """What the template adds for ``add_generation_prompt`` after ``msgs`` (e.g. ``<|im_start|>assistant\\n``)."""
    try:
        plain = _text(tok, msgs)
        gen = _text(tok, msgs, add_generation_prompt=True)
    except Exception:  # e.g. templates that index messages[0] on an empty list
        return None
    return gen[len(plain) :] if gen.startswith(plain) and len(gen) > len(plain) else None


def _labels_by_text(tok, msgs, ids: list[int]) -> list[int]:
    """Assistant labels for templates that are not prefix-preserving: find every assistant turn in the
    rendered text of the whole conversation (after its generation header, through its end-of-turn token)
    and label the tokens whose character offsets fall in it."""
    text = _text(tok, msgs)
    try:
        enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
    except (NotImplementedError, ValueError, TypeError):
        raise RowError(
            "the chat template renders earlier turns differently from the full conversation, and locating "
            "the assistant turns needs a fast tokenizer (offset mapping)"
        ) from None
    if list(enc["input_ids"]) != list(ids):
        raise RowError(
            "the rendered conversation does not re-tokenize to the same tokens; cannot locate turns"
        )
    offsets = enc["offset_mapping"]
    eot_strs = [s for s in tok.convert_ids_to_tokens(sorted(end_of_turn_ids(tok))) if s]
    labels = [IGNORE] * len(ids)
    cursor = 0
    for i, m in enumerate(msgs):
        if m["role"] != "assistant":
            continue
        header = _generation_header(tok, msgs[:i])
        content = m.get("content") if isinstance(m.get("content"), str) else ""
        needle = (content.split("</think>")[-1] if "</think>" in content else content).strip()
        if not needle:
            needle = next(iter(_tool_call_names([m])), "")
        h = text.find(header, cursor) if header else -1
        c = text.find(needle, h + len(header) if h >= 0 else cursor) if needle else -1
        if needle and c >= 0 and h >= 0:
            h = text.rfind(header, cursor, c)  # the header right before this turn's content
        elif needle and c < 0 and h >= 0:
            c = text.find(needle, cursor)
            h = text.rfind(header, cursor, c) if c >= 0 else -1
        if h < 0 and c < 0:
            raise RowError(f"cannot locate assistant turn {i + 1} in the rendered chat template")
        start = h + len(header) if h >= 0 else c
        after = c + len(needle) if c >= 0 else start
        nxt = text.find(header, after) if header else -1
        limit = nxt if nxt >= 0 else len(text)
        hits = [(k, s) for s in eot_strs if (k := text.find(s, after, limit)) >= 0]
        end = min(k + len(s) for k, s in hits) if hits else max(after, start + 1)
        for j, (a, b) in enumerate(offsets):
            if a < end and b > start:
                labels[j] = ids[j]
        cursor = end
    return labels


def template_prefix_preserving(tok) -> bool:
    """Does the template render a two-turn conversation's first exchange as a prefix of the full render?"""
    msgs = [
        {"role": "user", "content": "ping"},
        {"role": "assistant", "content": "pong"},
        {"role": "user", "content": "again"},
        {"role": "assistant", "content": "pong again"},
    ]
    try:
        ids = _render(tok, msgs)["input_ids"]
        return _labels_by_turn_prefix(tok, msgs, ids) is not None
    except Exception:
        return False


def tokenize_sft(tok, rec: dict[str, Any], loss_on: str) -> dict[str, list[int]]:
    """input_ids and labels (-100 = not trained) for one SFT record."""
    if not tok.chat_template:
        raise RowError("the tokenizer has no chat template (pass --template FILE or --template chatml)")
    try:
        if "prompt" in rec:  # completion-only: the final answer is trained
            prompt_ids = _render(tok, rec["prompt"], add_generation_prompt=True)["input_ids"]
            full = _render(tok, rec["prompt"] + rec["completion"])["input_ids"]
            k = common_prefix(prompt_ids, full)
            _check_tool_calls_rendered(tok, rec["completion"], full[k:])
            return {"input_ids": full, "labels": [IGNORE] * k + full[k:]}
        msgs = rec["messages"]
        if loss_on == "all":
            ids = _render(tok, msgs)["input_ids"]
            return {"input_ids": ids, "labels": list(ids)}
        # every assistant turn is trained
        if has_generation_markers(tok):
            enc = _render(tok, msgs, return_assistant_tokens_mask=True)
            ids, mask = enc["input_ids"], enc["assistant_masks"]
            labels = [t if m else IGNORE for t, m in zip(ids, mask, strict=False)]
        else:
            # no {% generation %} markers: turn by turn where the template is prefix-preserving, else by
            # locating each assistant turn in the rendered text
            ids = _render(tok, msgs)["input_ids"]
            labels = _labels_by_turn_prefix(tok, msgs, ids)
            if labels is None:
                labels = _labels_by_text(tok, msgs, ids)
        _check_tool_calls_rendered(
            tok, [m for m in msgs if m["role"] == "assistant"], [x for x in labels if x != IGNORE]
        )
        return {"input_ids": ids, "labels": labels}
    except RowError:
        raise
    except Exception as e:  # jinja errors: raise_exception() in templates, unknown roles...
        raise RowError(f"chat template failed: {type(e).__name__}: {e}") from None


def tokenize_text(tok, rec: dict[str, Any]) -> dict[str, list[int]]:
    ids = tok(rec["text"], add_special_tokens=True)["input_ids"]
    if tok.eos_token_id is not None and (not ids or ids[-1] != tok.eos_token_id):
        ids = ids + [tok.eos_token_id]
    return {"input_ids": ids, "labels": list(ids)}


def encode_pair(tok, rec: dict[str, Any]) -> dict[str, list[int]]:
    """A DPO/RM/KTO record as token ids, split like TRL's DPOTrainer does: the prompt is the tokens the
    rendered prompt shares with every rendered prompt+completion, each completion the rest of its render.
    Keys ``prompt_ids`` and ``<side>_ids`` for each of chosen/rejected/completion present."""
    if not tok.chat_template:
        raise RowError("the tokenizer has no chat template (pass --template FILE or --template chatml)")
    try:
        prompt = _render(tok, rec["prompt"], add_generation_prompt=True)["input_ids"]
        sides = [k for k in ("chosen", "rejected", "completion") if k in rec]
        fulls = {k: _render(tok, rec["prompt"] + rec[k])["input_ids"] for k in sides}
    except Exception as e:
        raise RowError(f"chat template failed: {type(e).__name__}: {e}") from None
    # (online RL rows are prompts only: the whole rendered prompt)
    n = min((common_prefix(prompt, f) for f in fulls.values()), default=len(prompt))
    out = {"prompt_ids": prompt[:n]}
    for k, f in fulls.items():
        out[f"{k}_ids"] = f[n:]
    return out


def pair_lengths(tok, rec: dict[str, Any]) -> tuple[int, int]:
    """(prompt tokens, longest prompt+completion tokens) of a DPO/RM/KTO record. The prompt length is
    counted like TRL does: the tokens the rendered prompt shares with every rendered prompt+completion."""
    return _pair_lengths(encode_pair(tok, rec))


def _pair_lengths(enc: dict[str, list[int]]) -> tuple[int, int]:
    p = len(enc["prompt_ids"])
    return p, p + max((len(v) for k, v in enc.items() if k != "prompt_ids"), default=0)


@dataclass
class Tokenized:
    rows: list[dict[str, list[int]]]  # SFT/PT: input_ids + labels (untruncated); others: the records
    lengths: list[int]
    ids: list[str]
    failures: Counter = field(default_factory=Counter)
    failure_examples: dict[str, list[str]] = field(default_factory=dict)
    # DPO/RM/KTO: tokens of the prompt (what TRL's max_length filter looks at)
    prompt_lengths: list[int] = field(default_factory=list)
    # SFT: how many trained spans (turns) each row should have (0: not checked, e.g. --loss-on all)
    expected_spans: list[int] = field(default_factory=list)
    # DPO: the token ids of each pair (prompt_ids, chosen_ids, rejected_ids), tokenized once here
    pairs: list[dict[str, list[int]]] = field(default_factory=list)

    def subset(self, index: list[int], keep_failures: bool = True) -> Tokenized:
        """The rows at these positions (every per-row list stays aligned)."""

        def pick(values):
            return [values[i] for i in index] if values else values

        return Tokenized(
            rows=pick(self.rows),
            lengths=pick(self.lengths),
            ids=pick(self.ids),
            failures=self.failures if keep_failures else Counter(),
            failure_examples=self.failure_examples if keep_failures else {},
            prompt_lengths=pick(self.prompt_lengths),
            expected_spans=pick(self.expected_spans),
            pairs=pick(self.pairs),
        )

    def keep(self, keep: list[bool]) -> None:
        """Keep the rows whose flag is true (every per-row list stays aligned)."""
        for name in ("rows", "lengths", "ids", "prompt_lengths", "expected_spans", "pairs"):
            values = getattr(self, name)
            if values:
                setattr(self, name, [v for v, k in zip(values, keep, strict=True) if k])


def tokenize_all(tok, prep: Prepared, loss_on: str = "completion") -> Tokenized:
    out = Tokenized(rows=[], lengths=[], ids=[])
    for rec, rid in zip(prep.rows, prep.ids, strict=False):
        p = spans = 0
        try:
            if prep.stage == "sft":
                t = tokenize_sft(tok, rec, loss_on)
                n = len(t["input_ids"])
                if "prompt" in rec:
                    spans = 1
                elif loss_on == "assistant":
                    spans = sum(1 for m in rec["messages"] if m["role"] == "assistant")
            elif prep.stage == "pt":
                t = tokenize_text(tok, rec)
                n = len(t["input_ids"])
            else:
                enc = encode_pair(tok, rec)
                p, n = _pair_lengths(enc)
                t = rec
        except RowError as e:
            reason = str(e)
            out.failures[reason] += 1
            ex = out.failure_examples.setdefault(reason, [])
            if len(ex) < 5:
                ex.append(rid)
            continue
        out.rows.append(t)
        out.lengths.append(n)
        out.ids.append(rid)
        if prep.stage in PAIR_STAGES:
            out.prompt_lengths.append(p)
        if prep.stage == "dpo":
            out.pairs.append(enc)
        if prep.stage == "sft":
            out.expected_spans.append(spans)
    return out


def template_stop_ids(tok) -> list[int]:
    """Token ids that end a generated turn: eos plus every end-of-turn token the chat template emits
    (a base model trained with ``--template chatml`` keeps eos ``<|endoftext|>`` but ends turns with
    ``<|im_end|>``)."""
    out = [tok.eos_token_id] if tok.eos_token_id is not None else []
    tpl = tok.chat_template or ""
    if isinstance(tpl, dict):
        tpl = "\n".join(str(v) for v in tpl.values())
    for i in sorted(end_of_turn_ids(tok)):
        s = tok.convert_ids_to_tokens(i)
        if s and s in tpl and i not in out:
            out.append(i)
    return out
