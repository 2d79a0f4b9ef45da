"""The LM head applied only where a loss is taken.

A causal LM's forward projects *every* position onto the vocabulary: prompt tokens, padding and all. SFT
trains the answer tokens only (85 % of the real tokens on alpaca_zh_demo, fewer once padding is
counted), DPO the two completions only (the prompt, often most of the row, is repeated in both
sequences). Here the decoder runs as usual, the hidden states of the positions that predict a trained
token are gathered, and only those rows go through the LM head and the cross-entropy: the same
per-token log-probabilities (tested to float rounding), a fraction of the projection work and memory.

It is used where it is exact: a plain decoder + linear head (no logit soft-capping or scaling), LoRA-
style adapters or none (prompt-learning adapters change the forward), one process (under DDP the model
must be called through its wrapper so gradients are synchronised). Elsewhere :func:`parts` returns
None and the callers use the model's own forward.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# config attributes that change logits after the LM head (Gemma-2 soft-capping, Cohere/Granite scaling)
_LOGIT_TRANSFORMS = ("final_logit_softcapping", "logit_scale", "logits_scaling")


@dataclass
class Parts:
    decoder: Any
    head: Any


def parts(model, accelerator=None) -> Parts | None:
    """The decoder and LM head of ``model`` when the selective path is exact for it, else None."""
    if accelerator is not None and accelerator.num_processes > 1:
        return None
    inner = accelerator.unwrap_model(model) if accelerator is not None else model
    base = inner
    try:
        from peft import PeftModel

        if isinstance(inner, PeftModel):
            if inner.peft_config[inner.active_adapter].is_prompt_learning:
                return None
            base = inner.get_base_model()
    except ImportError:
        pass
    cfg = getattr(base, "config", None)
    text_cfg = cfg.get_text_config() if cfg is not None and hasattr(cfg, "get_text_config") else cfg
    for name in _LOGIT_TRANSFORMS:
        v = getattr(text_cfg, name, None)
        if v not in (None, 0, 1, 1.0, 0.0):
            return None
    get_decoder = getattr(base, "get_decoder", None)
    head = base.get_output_embeddings() if hasattr(base, "get_output_embeddings") else None
    decoder = get_decoder() if callable(get_decoder) else None
    if decoder is None or head is None or decoder is base:
        return None
    import torch

    if not isinstance(head, torch.nn.Linear) or type(head) is not torch.nn.Linear:
        return None  # an adapter or quantised layer on the head: use the model's forward
    return Parts(decoder, head)


def _model_inputs(inputs: dict[str, Any]) -> dict[str, Any]:
    keep = ("input_ids", "attention_mask", "position_ids")
    return {k: inputs[k] for k in keep if k in inputs and inputs[k] is not None}


def target_logps(p: Parts, inputs: dict[str, Any], target_mask):
    """(log-probability of each trained token, row of each) for the positions where ``target_mask`` (of
    the *input* positions, like ``labels != -100``) is set; position 0 is never a target."""
    import torch.nn.functional as F

    hidden = p.decoder(**_model_inputs(inputs), use_cache=False).last_hidden_state
    ids = inputs["input_ids"]
    sel = target_mask[:, 1:].bool()
    h = hidden[:, :-1][sel]
    targets = ids[:, 1:][sel]
    logits = p.head(h).float()
    logps = -F.cross_entropy(logits, targets, reduction="none")
    rows = sel.nonzero()[:, 0]
    return logps, rows


def shared_prompt_logps(p: Parts, inputs: dict[str, Any], attn_implementation: str | None):
    """DPO's per-token log-probs with the prompt run once per pair instead of twice.

    ``inputs`` is a preference batch (rows ``[chosen_0..chosen_B-1, rejected_0..rejected_B-1]``, right
    padded, ``completion_mask`` marking the answers). Each pair becomes one row ``prompt | chosen |
    rejected``: the rejected answer's positions restart after the prompt and a 4D mask keeps it from
    seeing the chosen answer, so every token sees exactly the context it has in its own sequence (the
    same log-probs, tested). The prompt, often most of a pair, goes through the model once. Returns
    (token log-probs, their row in the 2B-row batch), or None where the attention implementation does not
    take such a mask (only eager and SDPA do here).
    """
    import torch
    import torch.nn.functional as F

    if attn_implementation not in ("sdpa", "eager"):
        return None
    rows = _pairs(inputs)
    if rows is None:
        return None
    ids = inputs["input_ids"]
    b = ids.size(0) // 2
    dev = ids.device
    width = max(pl + c + r for pl, c, r in rows)
    packed = torch.full((b, width), 0, dtype=ids.dtype, device=dev)
    pos = torch.zeros((b, width), dtype=torch.long, device=dev)
    seg = torch.full((b, width), 3, dtype=torch.long, device=dev)  # 0 prompt, 1 chosen, 2 rejected, 3 pad
    src_b, src_i, tgt, out_row = [], [], [], []
    for k, (pl, c, r) in enumerate(rows):
        packed[k, : pl + c] = ids[k, : pl + c]
        packed[k, pl + c : pl + c + r] = ids[b + k, pl : pl + r]
        pos[k, : pl + c] = torch.arange(pl + c, device=dev)
        pos[k, pl + c : pl + c + r] = torch.arange(pl, pl + r, device=dev)
        seg[k, :pl], seg[k, pl : pl + c], seg[k, pl + c : pl + c + r] = 0, 1, 2
        for first, n, row in ((pl, c, k), (pl + c, r, b + k)):
            if n == 0:
                continue
            # the answer's first token is predicted from the last prompt position, the rest from their
            # predecessor inside the answer
            src_b.extend([k] * n)
            src_i.extend([pl - 1, *range(first, first + n - 1)])
            tgt.append(packed[k, first : first + n])
            out_row.extend([row] * n)
    idx = torch.arange(width, device=dev)
    causal = idx[None, :] <= idx[:, None]
    allowed = causal[None] & ~((seg[:, :, None] == 2) & (seg[:, None, :] == 1)) & (seg[:, None, :] != 3)
    pad = seg == 3
    allowed = allowed | (pad[:, :, None] & torch.eye(width, dtype=torch.bool, device=dev)[None])
    mask = allowed[:, None]
    if attn_implementation == "eager":
        hidden_dtype = p.head.weight.dtype
        mask = torch.zeros(mask.shape, dtype=hidden_dtype, device=dev).masked_fill(
            ~mask, torch.finfo(hidden_dtype).min
        )
    hidden = p.decoder(
        input_ids=packed, attention_mask=mask, position_ids=pos, use_cache=False
    ).last_hidden_state
    h = hidden[torch.tensor(src_b, device=dev), torch.tensor(src_i, device=dev)]
    logps = -F.cross_entropy(p.head(h).float(), torch.cat(tgt), reduction="none")
    return logps, torch.tensor(out_row, device=dev)


def cached_prompt_logps(p: Parts, inputs: dict[str, Any]):
    """DPO's per-token log-probs with each pair's prompt run once, as a KV cache both answers continue.

    Per pair: the prompt runs alone (causal attention without a mask, the fast kernel path), its keys
    and values are repeated for the two answers, and chosen and rejected continue from them as a batch of
    two. Each answer token sees exactly its own sequence's context (the same log-probs, tested), the
    prompt's layers run once instead of twice, and no attention is spent on the masked half of a packed
    row. Gradients flow through the cache into the prompt's positions. Returns (token log-probs, their
    row in the 2B-row batch), or None when the batch is not pairs sharing a prompt.
    """
    import torch
    import torch.nn.functional as F

    split = _pairs(inputs)
    if split is None:
        return None
    ids, b = inputs["input_ids"], inputs["input_ids"].size(0) // 2
    dev = ids.device
    hs, tgt, out_row = [], [], []
    for k, (pl, c, r) in enumerate(split):
        first = p.decoder(input_ids=ids[k : k + 1, :pl], use_cache=True)
        last = first.last_hidden_state[0, -1:]  # predicts each answer's first token
        if c == 0 and r == 0:
            continue
        cache = first.past_key_values
        cache.batch_repeat_interleave(2)
        m = max(c, r)
        cont = torch.zeros((2, m), dtype=ids.dtype, device=dev)
        cont[0, :c], cont[1, :r] = ids[k, pl : pl + c], ids[b + k, pl : pl + r]
        att = torch.zeros((2, pl + m), dtype=torch.long, device=dev)
        att[:, :pl], att[0, pl : pl + c], att[1, pl : pl + r] = 1, 1, 1
        pos = torch.arange(pl, pl + m, device=dev).expand(2, m)
        h = p.decoder(
            input_ids=cont, attention_mask=att, position_ids=pos, past_key_values=cache, use_cache=True
        ).last_hidden_state
        for side, n, row in ((0, c, k), (1, r, b + k)):
            if n:
                hs.append(torch.cat([last, h[side, : n - 1]]))
                tgt.append(cont[side, :n])
                out_row.extend([row] * n)
    logps = -F.cross_entropy(p.head(torch.cat(hs)).float(), torch.cat(tgt), reduction="none")
    return logps, torch.tensor(out_row, device=dev)


def _pairs(inputs: dict[str, Any]) -> list[tuple[int, int, int]] | None:
    """(prompt, chosen, rejected) lengths of each pair of a preference batch, or None when a pair's two
    rows do not share their prompt (or the prompt is empty: nothing predicts the first answer token)."""
    import torch

    ids, att, comp = inputs["input_ids"], inputs["attention_mask"], inputs["completion_mask"]
    n2 = ids.size(0)
    b = n2 // 2
    lengths = att.sum(dim=1).tolist()
    starts = [int(comp[i].nonzero()[0]) if comp[i].any() else int(lengths[i]) for i in range(n2)]
    out = []
    for k in range(b):
        pl = starts[k]
        if starts[b + k] != pl or pl == 0 or not torch.equal(ids[k, :pl], ids[b + k, :pl]):
            return None
        out.append((pl, int(lengths[k]) - pl, int(lengths[b + k]) - pl))
    return out
