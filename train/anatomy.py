"""The anatomy of a model's name (series, version, size, base or chat, quantisation) and the source
article's base-versus-chat advice for a stage."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

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
