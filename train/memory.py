"""Model config -> memory: the shape of a decoder from its config.json, the parameters each method
trains, and the bytes of weights, gradients, optimizer states and activations (docs/train.md lists the
assumptions). Pure Python: nothing here loads weights."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class ModelShape:
    vocab: int
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    tied: bool
    max_positions: int | None
    model_type: str = ""
    has_bias: bool = False
    experts: int = 1

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> ModelShape:
        cfg = dict(cfg.get("text_config") or {}, **{k: v for k, v in cfg.items() if k != "text_config"})
        hidden = cfg.get("hidden_size") or cfg.get("n_embd") or cfg.get("d_model")
        if not hidden:
            raise ValueError("model config has no hidden_size")
        heads = cfg.get("num_attention_heads") or cfg.get("n_head") or 1
        return cls(
            vocab=cfg.get("vocab_size") or 32000,
            hidden=hidden,
            layers=cfg.get("num_hidden_layers") or cfg.get("n_layer") or cfg.get("num_layers") or 1,
            heads=heads,
            kv_heads=cfg.get("num_key_value_heads") or heads,
            head_dim=cfg.get("head_dim") or hidden // heads,
            intermediate=cfg.get("intermediate_size") or cfg.get("ffn_hidden_size") or 4 * hidden,
            tied=bool(cfg.get("tie_word_embeddings", False)),
            max_positions=cfg.get("max_position_embeddings") or cfg.get("seq_length"),
            model_type=cfg.get("model_type", ""),
            has_bias=bool(
                cfg.get("attention_bias") or cfg.get("mlp_bias") or cfg.get("model_type") == "qwen2"
            ),
            experts=cfg.get("num_local_experts") or cfg.get("num_experts") or 1,
        )

    def linear_shapes(self) -> list[tuple[int, int]]:
        """(in, out) of every linear layer in one decoder block."""
        q = self.heads * self.head_dim
        kv = self.kv_heads * self.head_dim
        attn = [(self.hidden, q), (self.hidden, kv), (self.hidden, kv), (q, self.hidden)]
        mlp = [(self.hidden, self.intermediate)] * 2 + [(self.intermediate, self.hidden)]
        return attn + mlp * self.experts

    def block_params(self) -> int:
        return sum(i * o for i, o in self.linear_shapes()) + 2 * self.hidden

    def embed_params(self) -> int:
        return self.vocab * self.hidden * (1 if self.tied else 2)

    def params(self) -> int:
        return self.embed_params() + self.layers * self.block_params() + self.hidden


def read_model_config(model: str | Path) -> dict[str, Any]:
    p = Path(model)
    cfg = p / "config.json"
    if not cfg.is_file():
        raise FileNotFoundError(f"{p}: no config.json (is this a model directory?)")
    return json.loads(cfg.read_text(encoding="utf-8"))


GiB = 1024**3


def trainable_params(
    shape: ModelShape, method: str, r: int = 8, freeze_layers: int = 2, virtual: int = 16
) -> int:
    if method == "full":
        return shape.params()
    if method == "freeze":
        return min(freeze_layers, shape.layers) * shape.block_params()
    if method in ("lora", "qlora", "rslora", "pissa"):
        return shape.layers * sum(r * (i + o) for i, o in shape.linear_shapes())
    if method == "dora":
        return shape.layers * sum(r * (i + o) + o for i, o in shape.linear_shapes())
    if method == "ia3":
        # k, v and the MLP down-projection input
        return shape.layers * (2 * shape.kv_heads * shape.head_dim + shape.intermediate)
    if method == "prefix":
        return virtual * shape.layers * 2 * shape.kv_heads * shape.head_dim
    if method == "prompt":
        return virtual * shape.hidden
    if method == "ptuning":
        return virtual * shape.hidden + 2 * shape.hidden * 128 + 128 * 128  # MLP reparameterisation
    if method == "bitfit":
        q = shape.heads * shape.head_dim
        kv = shape.kv_heads * shape.head_dim
        return shape.layers * (q + 2 * kv) if shape.has_bias else 0
    raise ValueError(method)


def memory_estimate(
    shape: ModelShape,
    method: str,
    *,
    batch: int,
    seq: int,
    gpu: bool = True,
    gradient_checkpointing: bool = False,
    r: int = 8,
    freeze_layers: int = 2,
    virtual: int = 16,
    fast_loss: bool = False,
) -> dict[str, float]:
    """Bytes for weights, trainable parameters, gradients, optimizer states and activations.

    Assumptions (documented in docs/train.md): on a GPU frozen weights are bf16 (2 bytes) while the
    parameters that train in the base (full/freeze/bitfit) are held in fp32 (their own master weights;
    ``full`` therefore loads the whole model in fp32); on CPU everything is fp32. QLoRA stores
    linear weights in NF4 with double quantisation (~0.52 bytes/param: 4 bits + 8-bit absmax per 64 plus
    fp32 per 256 blocks) while embeddings stay 16-bit. AdamW keeps two fp32 moments per trainable param.
    Activations per layer follow Korthikanti et al. (s*b*h*(34 + 5*a*s/h) bytes in 16-bit without flash
    attention; flash/SDPA attention removes the 5*a*s/h term, which is what we assume on GPU), halved
    precision factor applied for fp32; with checkpointing only the layer inputs (2*s*b*h) are kept plus
    one layer. The logits (b*s*vocab, fp32) are added unless the chunked LM-head loss is used.
    """
    dtype = 2 if gpu else 4
    total = shape.params()
    linear = shape.layers * sum(i * o for i, o in shape.linear_shapes())
    trainable = trainable_params(shape, method, r=r, freeze_layers=freeze_layers, virtual=virtual)
    in_base = method in ("full", "freeze", "bitfit")
    if method == "qlora":
        weights = linear * (0.5 + 1 / 64 + 4 / (64 * 256)) + (total - linear) * dtype
    elif in_base:
        # the trained part of the base is fp32 (mixed precision master weights), the frozen rest 16-bit
        weights = (total - trainable) * dtype + trainable * 4
    else:
        weights = total * dtype
    adapters = 0 if in_base else trainable * 4
    grads = trainable * 4
    optimizer = trainable * 8
    s, b, h = seq, batch, shape.hidden
    factor = dtype / 2
    per_layer = s * b * h * 34 * factor + (0 if gpu else 5 * shape.heads * s * s * b * factor)
    if method in ("freeze",):
        # no backward through the frozen lower layers: their activations are not kept
        layers_kept = min(freeze_layers, shape.layers)
    elif method in ("prompt", "ptuning"):
        layers_kept = shape.layers  # the gradient flows to the input
    else:
        layers_kept = shape.layers
    if gradient_checkpointing:
        activations = 2 * s * b * h * factor * layers_kept + per_layer
    else:
        activations = per_layer * layers_kept
    # full logits and their gradient (fp32) with the plain loss; TRL's chunked LM head keeps only tiles
    activations += 2 * b * s * shape.vocab * 4 if fast_loss else 0
    out = {
        "weights": weights,
        "adapters": adapters,
        "gradients": grads,
        "optimizer": optimizer,
        "activations": activations,
    }
    out["total"] = sum(out.values())
    out["trainable_params"] = trainable
    out["params"] = total
    return out


CHEAPER = {
    "full": ["freeze", "lora", "qlora"],
    "freeze": ["lora", "qlora"],
    "lora": ["qlora"],
    "dora": ["lora", "qlora"],
    "rslora": ["qlora"],
    "pissa": ["qlora"],
    "qlora": ["ia3", "prompt"],
    "bitfit": ["ia3", "prompt"],
    "ia3": ["prompt"],
    "prefix": ["prompt"],
    "ptuning": ["prompt"],
    "prompt": [],
}


def human_bytes(n: float) -> str:
    if n >= GiB:
        return f"{n / GiB:.1f} GiB"
    if n >= 1024**2:
        return f"{n / 1024**2:.1f} MiB"
    return f"{n / 1024:.1f} KiB"


def human_count(n: float) -> str:
    if n >= 1e9:
        return f"{n / 1e9:.2f}B"
    if n >= 1e6:
        return f"{n / 1e6:.2f}M"
    if n >= 1e3:
        return f"{n / 1e3:.1f}k"
    return str(int(n))
