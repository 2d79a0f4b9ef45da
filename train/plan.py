"""The training plan: hyper-parameters from the data, a memory estimate from the model config, and the
anatomy of the model's name.

Sources: the SFT epochs table and the base-vs-chat advice come from the project's source article
("ChatGPT 是如何炼成的", SFT best practice: 100 rows -> 15 epochs, 1,000 -> 10, 10,000 -> 2, and
100,000 rows "2-3 epochs"); that table is for SFT only: preference stages (DPO, KTO, reward models) get
1-3 epochs and continued pretraining 1-2 (see :data:`EPOCH_TABLES`); learning rates are the usual ranges for each method (LoRA SFT 1e-4..2e-4,
full SFT ~1e-5, LoRA DPO 5e-6..1e-5; see docs/train.md). Pure Python: nothing here loads weights.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from curate.core.epochs import (  # noqa: F401  (re-exported: train.plan is their public home too)
    EPOCH_REASONS,
    EPOCH_TABLE,
    EPOCH_TABLES,
    PREFERENCE_EPOCH_TABLE,
    PRETRAIN_EPOCH_TABLE,
    planned_epochs,
)

# the epochs tables live in curate.core.epochs: `curate export` prints the same hint without importing train

PEFT_ADAPTERS = ("lora", "qlora", "dora", "rslora", "pissa")
PROMPT_LEARNING = ("prefix", "prompt", "ptuning")

# (stage, method family) -> (recommended, low, high)
LR_TABLE: dict[tuple[str, str], tuple[float, float, float]] = {
    ("sft", "full"): (1e-5, 5e-6, 2e-5),
    ("sft", "freeze"): (5e-5, 1e-5, 1e-4),
    ("sft", "adapter"): (2e-4, 1e-4, 2e-4),
    ("sft", "ia3"): (3e-3, 1e-3, 5e-3),
    ("sft", "prompt"): (1e-2, 3e-3, 3e-2),
    ("sft", "bitfit"): (5e-4, 1e-4, 1e-3),
    ("pt", "full"): (2e-5, 1e-5, 5e-5),
    ("pt", "freeze"): (5e-5, 1e-5, 1e-4),
    ("pt", "adapter"): (1e-4, 5e-5, 2e-4),
    ("pt", "ia3"): (3e-3, 1e-3, 5e-3),
    ("pt", "prompt"): (1e-2, 3e-3, 3e-2),
    ("pt", "bitfit"): (5e-4, 1e-4, 1e-3),
    ("dpo", "full"): (5e-7, 1e-7, 1e-6),
    ("dpo", "freeze"): (1e-6, 5e-7, 5e-6),
    ("dpo", "adapter"): (5e-6, 5e-6, 1e-5),
    ("dpo", "ia3"): (1e-4, 5e-5, 5e-4),
    ("dpo", "prompt"): (1e-3, 5e-4, 5e-3),
    ("dpo", "bitfit"): (1e-5, 5e-6, 5e-5),
    ("rm", "full"): (1e-5, 5e-6, 2e-5),
    ("rm", "freeze"): (2e-5, 1e-5, 5e-5),
    ("rm", "adapter"): (1e-4, 5e-5, 2e-4),
    ("rm", "ia3"): (3e-3, 1e-3, 5e-3),
    ("rm", "prompt"): (1e-2, 3e-3, 3e-2),
    ("rm", "bitfit"): (5e-4, 1e-4, 1e-3),
}
# KTO uses DPO's ranges (same implicit-reward objective family); ORPO trains the SFT loss as well, at the
# ORPO paper's 8e-6 for full fine-tuning (LoRA ~10x); online RL uses TRL's 1e-6 for full fine-tuning (the
# policy moves on its own samples: larger steps collapse it), LoRA ~10x
_ORPO_LR = {"full": (8e-6, 5e-6, 1e-5), "freeze": (2e-5, 1e-5, 5e-5), "adapter": (8e-5, 5e-5, 2e-4)}
_ONLINE_LR = {"full": (1e-6, 5e-7, 3e-6), "freeze": (3e-6, 1e-6, 1e-5), "adapter": (1e-5, 5e-6, 5e-5)}
for (_s, _m), _v in list(LR_TABLE.items()):
    if _s == "dpo":
        LR_TABLE[("kto", _m)] = _v
        LR_TABLE[("orpo", _m)] = _ORPO_LR.get(_m, _v)
        for _online in ("rloo", "grpo"):
            LR_TABLE[(_online, _m)] = _ONLINE_LR.get(_m, _v)


def method_family(method: str) -> str:
    if method in PEFT_ADAPTERS:
        return "adapter"
    if method in PROMPT_LEARNING:
        return "prompt"
    return method  # full, freeze, ia3, bitfit


# ------------------------------------------------------------------ epochs, lr, batch


def planned_lr(stage: str, method: str) -> tuple[float, float, float]:
    return LR_TABLE[(stage, method_family(method))]


def planned_global_batch(rows: int) -> int:
    """Small sets need enough optimizer steps per epoch; large sets gain from the article's larger
    batches ("accumulate 32, 64")."""
    if rows < 1_000:
        return 16
    if rows < 10_000:
        return 32
    return 64


def planned_warmup(stage: str) -> float:
    return 0.1 if stage in ("dpo", "kto", "orpo") else 0.03


def length_stats(lengths: list[int], model_max: int | None, cap: int | None = None) -> dict[str, Any]:
    """Pick max_length from the token-length distribution: the 99th percentile rounded up to a multiple
    of 64 (so at most ~1 % of rows are truncated), never above the model's context."""
    if not lengths:
        return {"rows": 0, "max_length": cap or 512, "truncated": 0, "truncated_share": 0.0}
    s = sorted(lengths)

    def pct(p: float) -> int:
        return s[min(len(s) - 1, max(0, math.ceil(p / 100 * len(s)) - 1))]

    chosen = cap or max(64, int(math.ceil(pct(99) / 64) * 64))
    if model_max and not cap:
        chosen = min(chosen, model_max)
    truncated = sum(1 for n in s if n > chosen)
    return {
        "rows": len(s),
        "min": s[0],
        "p50": pct(50),
        "p90": pct(90),
        "p99": pct(99),
        "max": s[-1],
        "mean": round(sum(s) / len(s), 1),
        "max_length": chosen,
        "truncated": truncated,
        "truncated_share": round(truncated / len(s), 4),
        "tokens": sum(s),
    }


# ------------------------------------------------------------------ model config -> memory


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


# ------------------------------------------------------------------ name anatomy

_QUANT = {
    "gptq": "GPTQ",
    "gqpt": "GPTQ",  # the article's own spelling
    "awq": "AWQ",
    "gguf": "GGUF",
    "ggml": "GGUF",
    "exl2": "EXL2",
    "bnb": "bitsandbytes",
    "fp8": "FP8",
    "mlx": "MLX",
    "hqq": "HQQ",
}
_CHAT = {"chat", "instruct", "it", "sft", "rlhf", "dpo", "assistant", "hf-chat"}
_SIZE = re.compile(r"^(\d+x)?\d+(\.\d+)?[bmk]$", re.I)
_BITS = re.compile(r"^(int|q|w)?(\d{1,2})(bit|bits|b)?$", re.I)
_SERIES_VERSION = re.compile(r"^([A-Za-z][A-Za-z]*?)[-_ ]?v?(\d+(?:\.\d+)*)$")


@dataclass
class NameAnatomy:
    name: str
    series: str | None = None
    version: str | None = None
    size: str | None = None
    params_billion: float | None = None
    finetune: str = "base"
    quantization: str | None = None
    bits: int | None = None
    other: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def anatomy(name: str) -> NameAnatomy:
    """Split a model name into series, version, size, base/chat and quantisation.

    ``Qwen1.5-14B-Chat-GPTQ-Int4`` -> series Qwen, version 1.5, size 14B, chat, GPTQ 4-bit.
    """
    base = str(name).rstrip("/").split("/")[-1]
    out = NameAnatomy(name=base)
    # GGUF file names: mistral-7b-instruct-v0.2.Q4_K_M(.gguf)
    base_split = re.sub(r"\.gguf$", "", base, flags=re.I)
    gguf = re.search(r"[.-](q\d_k(?:_[msl])?|q\d_\d|f16|bf16)$", base_split, re.I)
    if gguf:
        out.quantization, base_split = "GGUF", base_split[: gguf.start()]
        m = re.match(r"q(\d)", gguf.group(1), re.I)
        out.bits = int(m.group(1)) if m else 16
    elif base_split != base:
        out.quantization = "GGUF"
    parts = [p for p in re.split(r"[-_ ]+", base_split) if p]
    i = 0
    if parts:
        m = _SERIES_VERSION.match(parts[0])
        if m:
            out.series, out.version = m.group(1), m.group(2)
            i = 1
        else:
            out.series = parts[0]
            i = 1
            # Meta-Llama-3-8B: the org prefix goes to "other"
            if parts[0].lower() == "meta" and len(parts) > 1:
                out.other.append(parts[0])
                m = _SERIES_VERSION.match(parts[1])
                out.series, out.version = (m.group(1), m.group(2)) if m else (parts[1], None)
                i = 2
            if out.version is None and i < len(parts) and re.fullmatch(r"v?\d+(\.\d+)*", parts[i], re.I):
                if not _SIZE.match(parts[i]):
                    out.version = parts[i].lstrip("vV")
                    i += 1
    for p in parts[i:]:
        low = p.lower()
        if _SIZE.match(p) and out.size is None:
            out.size = p.upper()
            num = re.match(r"^(?:(\d+)x)?(\d+(?:\.\d+)?)([bmk])$", low)
            if num:
                scale = {"b": 1.0, "m": 1e-3, "k": 1e-6}[num.group(3)]
                out.params_billion = float(num.group(2)) * scale * (int(num.group(1)) if num.group(1) else 1)
        elif low in _CHAT:
            out.finetune = "chat"
        elif low == "base":
            out.finetune = "base"
        elif low in _QUANT:
            out.quantization = _QUANT[low]
        elif _BITS.match(p) and (low.startswith(("int", "q", "w")) or low.endswith(("bit", "bits"))):
            out.bits = int(_BITS.match(p).group(2))
            if out.quantization is None:
                out.quantization = "integer" if low.startswith("int") else "quantized"
        elif re.fullmatch(r"v\d+(\.\d+)*", low) and out.version is None:
            out.version = p[1:]
        else:
            out.other.append(p)
    if out.series and "chat" in out.series.lower() and "base" not in [p.lower() for p in parts]:
        # chatglm3-6b is the chat model; its base is chatglm3-6b-base
        out.finetune = "chat"
    return out


def advice(an: NameAnatomy, stage: str, goal: str = "domain") -> list[str]:
    """The article's base-versus-chat advice, plus quantisation notes, for this model and stage."""
    tips: list[str] = []
    if an.finetune == "chat":
        if stage in ("sft", "pt"):
            tips.append(
                "This is a chat (already fine-tuned) model: SFT on it risks more catastrophic forgetting of "
                "general ability. Pick it when only the domain task matters (the 'light' route: Chat + SFT); "
                "pick the base model to improve the domain while keeping general ability. Measure it: `train eval "
                "RUN --heldout domain=FILE --heldout general=FILE` (loss per set, base vs tuned); `--mix "
                "general.jsonl:0.2` replays general data."
            )
        else:
            tips.append("Chat model: a natural starting point for preference tuning (DPO/KTO/RM).")
    else:
        if stage == "sft":
            tips.append(
                "Base model: lower risk of catastrophic forgetting; the 'full' route is Base + continued "
                "pretraining (train pt) on domain text + SFT (`train chain` runs the stages in order). It needs a "
                "chat template (--template) if it has none. Measure what is kept: `train eval RUN --heldout "
                "domain=FILE --heldout general=FILE`."
            )
        elif stage == "pt":
            tips.append("Base model: the right starting point for continued pretraining (then SFT).")
        else:
            tips.append("Base model: run SFT first; preference tuning usually starts from an SFT/chat model.")
    if an.quantization in ("GPTQ", "AWQ", "GGUF", "EXL2"):
        tips.append(
            f"{an.quantization} is a post-training quantisation for inference: train on the 16-bit model "
            "(use --method qlora to fit memory) and quantise the result after export."
        )
    return tips


# ------------------------------------------------------------------ the whole plan


def training_sequences(cfg, rows: int, lengths: list[int] | None, max_length: int) -> int:
    """How many sequences one epoch feeds the model: the rows, except that continued pretraining splits
    documents into ``max_length`` pieces and packing (``train pt``, ``train sft --packing``) fills
    ``max_length`` sequences with the tokens of several rows: ceil(tokens / max_length)."""
    if hasattr(cfg, "num_generations"):  # online RL trains on sampled completions: G per prompt
        return rows * cfg.num_generations
    if not lengths or len(lengths) != rows:  # (lengths must describe the rows)
        return rows
    packing = bool(getattr(cfg, "packing", False))
    if cfg.stage == "pt":
        if packing:
            return max(1, math.ceil(sum(lengths) / max_length))
        return sum(n // max_length + (n % max_length > 1) for n in lengths)
    if cfg.stage == "sft" and packing:
        return max(1, math.ceil(sum(min(n, max_length) for n in lengths) / max_length))
    return rows


def make_plan(
    cfg, rows: int, lengths: list[int] | None = None, gpu: bool = False, max_length: int | None = None
) -> dict[str, Any]:
    """Resolve every None hyper-parameter of ``cfg`` from the data and the model; return the plan dict
    (the values used, where each came from, the memory estimate and the model-name anatomy).
    ``max_length`` fixes the sequence length already chosen for these rows (re-planning after rows
    that do not fit it were dropped)."""
    stage = cfg.stage
    plan: dict[str, Any] = {"stage": stage, "method": cfg.method, "rows": rows, "source": {}}
    src = plan["source"]

    model_max = None
    shape = None
    if cfg.model and (Path(cfg.model) / "config.json").is_file():
        mc = read_model_config(cfg.model)
        shape = ModelShape.from_config(mc)
        model_max = shape.max_positions
    ls = length_stats(lengths or [], model_max, cap=max_length or cfg.max_length)
    plan["lengths"] = ls
    plan["max_length"] = ls["max_length"]
    src["max_length"] = "config" if cfg.max_length else "p99 of token lengths (multiple of 64)"
    # what one epoch steps over: rows, or packed / chunked sequences
    seqs = training_sequences(cfg, rows, lengths, plan["max_length"])
    plan["sequences"] = seqs
    if seqs != rows:
        src["sequences"] = (
            f"{cfg.num_generations} sampled completions per prompt"
            if hasattr(cfg, "num_generations")
            else f"packed: ceil(tokens / max_length {plan['max_length']})"
            if getattr(cfg, "packing", False)
            else f"documents split into max_length {plan['max_length']} pieces"
        )

    if cfg.epochs is None:
        plan["epochs"], src["epochs"] = planned_epochs(rows, stage), EPOCH_REASONS[stage]
    else:
        plan["epochs"], src["epochs"] = cfg.epochs, "config"
    lr, lo, hi = planned_lr(stage, cfg.method)
    plan["lr_range"] = [lo, hi]
    if cfg.learning_rate is None:
        plan["learning_rate"], src["learning_rate"] = lr, f"{stage} + {method_family(cfg.method)} default"
    else:
        plan["learning_rate"], src["learning_rate"] = cfg.learning_rate, "config"

    gb = cfg.global_batch or planned_global_batch(rows)
    src["global_batch"] = "config" if cfg.global_batch else "planned from dataset size"
    # never make one optimizer step larger than the dataset
    gb = max(cfg.batch_size * cfg.num_processes, min(gb, max(1, seqs)))
    accum = max(1, math.ceil(gb / (cfg.batch_size * cfg.num_processes)))
    plan["batch_size"] = cfg.batch_size
    plan["grad_accum"] = accum
    plan["global_batch"] = cfg.batch_size * accum * cfg.num_processes
    steps_per_epoch = max(1, math.ceil(seqs / plan["global_batch"])) if seqs else 0
    plan["steps_per_epoch"] = steps_per_epoch
    total = cfg.max_steps if cfg.max_steps > 0 else math.ceil(steps_per_epoch * plan["epochs"])
    plan["total_steps"] = total
    if cfg.warmup_ratio is None:
        plan["warmup_ratio"], src["warmup_ratio"] = planned_warmup(stage), "planned"
    else:
        plan["warmup_ratio"], src["warmup_ratio"] = cfg.warmup_ratio, "config"
    plan["warmup_steps"] = math.ceil(total * plan["warmup_ratio"])
    plan["scheduler"] = cfg.scheduler

    an = anatomy(cfg.model or "")
    plan["anatomy"] = an.as_dict()
    plan["advice"] = advice(an, stage)

    if shape is not None:
        mem = {}
        for m in [cfg.method] + [c for c in CHEAPER.get(cfg.method, []) if c != cfg.method]:
            if m == "bitfit" and not shape.has_bias:
                continue
            mem[m] = memory_estimate(
                shape,
                m,
                batch=cfg.batch_size,
                # online RL trains on prompt + sampled completion
                seq=plan["max_length"] + getattr(cfg, "max_completion_length", 0),
                gpu=gpu,
                gradient_checkpointing=cfg.gradient_checkpointing,
                r=cfg.lora_r,
                freeze_layers=cfg.freeze_layers,
                virtual=cfg.virtual_tokens,
                fast_loss=bool(getattr(cfg, "fast_loss", False)),
            )
        plan["memory"] = mem
        plan["memory_device"] = "GPU (bf16 weights)" if gpu else "CPU (fp32)"
        plan["params"] = shape.params()
    if hasattr(cfg, "num_generations"):
        from train.online import adjust_plan

        adjust_plan(plan, cfg, shape, gpu)
    return plan


def render_plan(plan: dict[str, Any], console) -> None:
    """Print the plan as rich tables (to the given stderr console)."""
    from rich.table import Table

    t = Table(title=f"train {plan['stage']} plan ({plan['method']}, {plan['rows']} rows)", show_lines=False)
    t.add_column("setting")
    t.add_column("value", justify="right")
    t.add_column("why")
    src = plan["source"]
    t.add_row("epochs", f"{plan['epochs']:g}", src["epochs"])
    lo, hi = plan["lr_range"]
    t.add_row(
        "learning rate", f"{plan['learning_rate']:.1e}", f"{src['learning_rate']} (usual {lo:.0e}..{hi:.0e})"
    )
    t.add_row(
        "global batch",
        str(plan["global_batch"]),
        f"{plan['batch_size']} per device x {plan['grad_accum']} accumulation; {src['global_batch']}",
    )
    per_epoch = f"{plan['steps_per_epoch']} per epoch"
    if plan.get("sequences", plan["rows"]) != plan["rows"]:
        per_epoch += f" over {plan['sequences']} sequences ({src.get('sequences', '')})"
    if plan.get("dropped_overlong"):
        per_epoch += f"; {plan['dropped_overlong']} rows dropped as too long for max_length"
    t.add_row("steps", str(plan["total_steps"]), per_epoch)
    t.add_row("warmup / schedule", f"{plan['warmup_steps']} / {plan['scheduler']}", src["warmup_ratio"])
    ls = plan["lengths"]
    if ls.get("rows"):
        why = (
            f"{src['max_length']}; tokens p50 {ls['p50']}, p90 {ls['p90']}, p99 {ls['p99']}, max {ls['max']}; "
            + (
                f"splits {ls['truncated']} documents into max_length pieces"
                if plan["stage"] == "pt"
                else f"truncates {ls['truncated']} rows ({ls['truncated_share']:.1%})"
            )
        )
    else:
        why = src["max_length"]
    t.add_row("max_length", str(plan["max_length"]), why)
    tm = plan.get("time")
    if tm:
        from train.callbacks import duration

        rate = f"{tm['tokens_per_s']:,.0f} tokens/s, " if tm.get("tokens_per_s") else ""
        t.add_row(
            "wall time",
            f"~{duration(tm['seconds'])}",
            f"{plan['total_steps']} steps x {tm['seconds_per_step']:.3g} s on {tm['device']} ({rate}{tm['source']})",
        )
    console.print(t)
    if tm and tm.get("warn"):
        from train.estimate import warning_text

        console.print(f"[yellow]warning:[/yellow] {warning_text(tm, plan['total_steps'])}", soft_wrap=True)
    if plan.get("memory"):
        m = Table(title=f"memory estimate, {plan['memory_device']} ({plan['params'] / 1e6:.1f}M params)")
        for c in ("method", "trainable", "weights", "adapters", "grads", "optimizer", "activations", "total"):
            m.add_column(c, justify="right")
        for name, e in plan["memory"].items():
            m.add_row(
                name,
                _count(e["trainable_params"]),
                *(
                    _bytes(e[k])
                    for k in ("weights", "adapters", "gradients", "optimizer", "activations", "total")
                ),
            )
        console.print(m)
    if plan.get("generation"):
        from train.online import render_generation

        render_generation(plan, console)
    if plan.get("mix"):
        from train.mix import describe

        console.print(f"[bold]mix[/bold]: {describe(plan['mix'])}")
    an = plan["anatomy"]
    parts = [
        f"series {an['series']}",
        f"version {an['version'] or '-'}",
        f"size {an['size'] or '-'}",
        an["finetune"],
        f"quantisation {an['quantization'] or 'none'}" + (f" {an['bits']}-bit" if an["bits"] else ""),
    ]
    console.print(f"[bold]model[/bold] {an['name']}: " + ", ".join(parts))
    for tip in plan["advice"]:
        console.print(f"  - {tip}")


def _bytes(n: float) -> str:
    if n >= GiB:
        return f"{n / GiB:.1f} GiB"
    if n >= 1024**2:
        return f"{n / 1024**2:.1f} MiB"
    return f"{n / 1024:.1f} KiB"


def _count(n: float) -> str:
    if n >= 1e9:
        return f"{n / 1e9:.2f}B"
    if n >= 1e6:
        return f"{n / 1e6:.2f}M"
    if n >= 1e3:
        return f"{n / 1e3:.1f}k"
    return str(int(n))
