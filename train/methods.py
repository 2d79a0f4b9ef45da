"""Fine-tuning methods: load the model through `from_pretrained` (local files only, safetensors only,
no remote code unless asked) and make the right parameters trainable.

=========  ==============================================================================
method     what trains
=========  ==============================================================================
full       every parameter
freeze     the last N decoder layers (LLaMA-Factory's "freeze"), plus the reward head for rm
lora       low-rank adapters on every linear layer (``all-linear``) by default
qlora      LoRA over a 4-bit NF4 base with double quantisation (bitsandbytes; runs on CPU too)
dora       weight-decomposed LoRA (magnitude + direction)
rslora     LoRA with rank-stabilised scaling alpha/sqrt(r)
pissa      LoRA initialised from the principal singular vectors (saved converted to plain LoRA so it
           applies to the original base)
ia3        learned rescaling vectors on keys, values and the MLP
prefix     prefix tuning (virtual key/value tokens in every layer)
prompt     prompt tuning (virtual input embeddings)
ptuning    P-tuning (virtual tokens through an MLP encoder)
bitfit     bias terms only (models without biases are refused with a clear error)
=========  ==============================================================================
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from curate.io import atomic_write_text

ADAPTER_METHODS = ("lora", "qlora", "dora", "rslora", "pissa", "ia3", "prefix", "prompt", "ptuning")


class MethodError(ValueError):
    pass


@dataclass
class Device:
    kind: str  # cuda | mps | cpu
    bf16: bool

    @property
    def gpu(self) -> bool:
        return self.kind != "cpu"


def detect_device() -> Device:
    import torch

    if torch.cuda.is_available():
        return Device("cuda", bool(torch.cuda.is_bf16_supported()))
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return Device("mps", False)
    return Device("cpu", False)


def peft_config(cfg, task: str):
    """The PEFT config of a method (None for full, freeze and bitfit)."""
    import peft

    m = cfg.method
    target = (
        cfg.lora_target
        if cfg.lora_target == "all-linear"
        else [t.strip() for t in cfg.lora_target.split(",") if t.strip()]
    )
    if m in ("lora", "qlora", "dora", "rslora", "pissa"):
        kw: dict[str, Any] = dict(
            r=cfg.lora_r,
            lora_alpha=cfg.lora_alpha,
            lora_dropout=cfg.lora_dropout,
            target_modules=target,
            task_type=task,
        )
        if m == "dora":
            kw["use_dora"] = True
        if m == "rslora":
            kw["use_rslora"] = True
        if m == "pissa":
            # fast SVD (4 subspace iterations) instead of a full SVD of every weight
            kw["init_lora_weights"] = "pissa_niter_4"
            kw["lora_dropout"] = 0.0  # PiSSA conversion needs no dropout
        return peft.LoraConfig(**kw)
    if m == "ia3":
        return peft.IA3Config(task_type=task)
    if m == "prefix":
        return peft.PrefixTuningConfig(task_type=task, num_virtual_tokens=cfg.virtual_tokens)
    if m == "prompt":
        return peft.PromptTuningConfig(task_type=task, num_virtual_tokens=cfg.virtual_tokens)
    if m == "ptuning":
        return peft.PromptEncoderConfig(
            task_type=task, num_virtual_tokens=cfg.virtual_tokens, encoder_hidden_size=128
        )
    return None


def decoder_layers(model) -> tuple[str, int]:
    """The prefix of the decoder block list (e.g. ``model.layers``) and its length."""
    import torch

    best = None
    for name, mod in model.named_modules():
        if (
            isinstance(mod, torch.nn.ModuleList)
            and len(mod) > 0
            and re.search(r"(layers|h|blocks|layer)$", name)
        ):
            if best is None or len(mod) > best[1]:
                best = (name, len(mod))
    if best is None:
        raise MethodError("freeze: cannot find the decoder layer list of this model")
    return best


def load_dtype(cfg, device: Device):
    """The dtype the base weights are loaded in: bf16 on a bf16-capable GPU unless --no-bf16, else fp32.
    ``full`` always loads fp32: every parameter trains, and its fp32 master weights are the model."""
    import torch

    if cfg.method == "full":
        return torch.float32
    return torch.bfloat16 if (device.bf16 and cfg.bf16 is not False) else torch.float32


def upcast_trainable(model):
    """Cast every trainable floating-point parameter to fp32 (in place); returns torch.float32."""
    import torch

    for p in model.parameters():
        if p.requires_grad and p.is_floating_point() and p.dtype != torch.float32:
            p.data = p.data.float()
    return torch.float32


def quantized_device_map(device: Device) -> dict[str, Any]:
    """Where a 4-bit base goes: the process's own GPU (``LOCAL_RANK``, set by torchrun/accelerate for
    each process), so that every rank of a multi-GPU run loads its copy on its own device."""
    if device.kind == "cuda":
        return {"": int(os.environ.get("LOCAL_RANK", "0"))}
    return {"": device.kind}


def keep_4bit_compute_dtype(model, dtype) -> None:
    """Make the 4-bit layers of ``model`` compute in ``dtype`` at inference too.

    bitsandbytes (0.48+) sends a 4-bit layer's CPU inference (eval mode, no grad, a CPU with
    AVX512-BF16 such as AMD Zen 4 or Intel Sapphire Rapids) through a fused kernel that casts the input
    and the block scales to bfloat16 whatever ``bnb_4bit_compute_dtype`` says; training took the
    dequantise + matmul path in the compute dtype. On such a CPU an fp32 adapter's logits were ~4e-3
    off the fp32 merged export's (the tiny test model), on other machines identical. The flag is read
    per forward call, so turning it off keeps the adapter computing what it was trained to compute
    (and what its merged export computes)."""
    import torch

    if dtype == torch.bfloat16:
        return  # the fused kernel's own dtype: faithful, and faster
    for module in model.modules():
        if getattr(module, "support_avx512bf16_for_cpu", False):
            module.support_avx512bf16_for_cpu = False


def load_model(cfg, stage: str, device: Device):
    """Load the model for a stage and method. Returns (model, info) where the model is a PeftModel for
    adapter methods and a plain model otherwise."""
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    dtype = load_dtype(cfg, device)
    kwargs: dict[str, Any] = dict(
        dtype=dtype,
        trust_remote_code=cfg.trust_remote_code,
        use_safetensors=True,
        local_files_only=True,
    )
    if cfg.method == "qlora":
        try:
            import bitsandbytes  # noqa: F401
            from transformers import BitsAndBytesConfig
        except Exception as e:  # pragma: no cover - platform dependent
            raise MethodError(
                f"qlora needs bitsandbytes (the optional extra: pip install 'tamis[qlora]'), which "
                f"cannot be imported here: {e}"
            ) from None
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=dtype,
        )
        kwargs["device_map"] = quantized_device_map(device)
    cls = AutoModelForSequenceClassification if stage == "rm" else AutoModelForCausalLM
    if stage == "rm":
        kwargs["num_labels"] = 1
    try:
        model = cls.from_pretrained(cfg.model, **kwargs)
    except OSError as e:
        raise MethodError(f"cannot load model {cfg.model}: {e}") from None
    if stage == "rm" and model.config.pad_token_id is None:
        model.config.pad_token_id = model.config.eos_token_id
    task = "SEQ_CLS" if stage == "rm" else "CAUSAL_LM"
    info: dict[str, Any] = {"method": cfg.method, "dtype": str(dtype).replace("torch.", "")}

    if cfg.method == "qlora":
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=cfg.gradient_checkpointing)
        keep_4bit_compute_dtype(model, dtype)  # evaluation computes what training and the export compute

    pc = peft_config(cfg, task)
    if pc is not None:
        from peft import get_peft_model

        model = get_peft_model(model, pc)
    elif cfg.method == "freeze":
        prefix, n = decoder_layers(model)
        keep = set(range(max(0, n - cfg.freeze_layers), n))
        pat = re.compile(re.escape(prefix) + r"\.(\d+)\.")
        for name, p in model.named_parameters():
            m = pat.search(name)
            p.requires_grad = bool(m and int(m.group(1)) in keep) or (stage == "rm" and _is_head(name))
        info["trained_layers"] = sorted(keep)
    elif cfg.method == "bitfit":
        n_bias = 0
        for name, p in model.named_parameters():
            is_bias = name.endswith(".bias")
            n_bias += is_bias
            p.requires_grad = is_bias or (stage == "rm" and _is_head(name))
        if not n_bias:
            raise MethodError(
                f"bitfit trains bias terms, and {cfg.model} has none (e.g. Llama has no biases; Qwen2's "
                "attention has). Pick another method, e.g. --method ia3 for a similarly tiny update."
            )
    # full: everything trains
    if pc is None:
        # full / freeze / bitfit train weights of the base itself: under bf16 mixed precision the optimizer
        # must update fp32 master weights (bf16 has 8 mantissa bits; small updates would round away), so
        # the trainable parameters are kept in fp32 while the frozen ones stay 16-bit. (Adapters are made
        # fp32 by PEFT already.)
        info["trainable_dtype"] = str(upcast_trainable(model)).replace("torch.", "")
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    info.update(trainable_params=trainable, total_params=total)
    if trainable == 0:
        raise MethodError(f"method {cfg.method}: no trainable parameters")
    return model, info


def _is_head(name: str) -> bool:
    return name.startswith(("score.", "classifier.")) or ".score." in name


def save_pissa_init(model, path) -> None:
    """PiSSA: keep the initial adapter so the trained one can be converted to a plain LoRA of the
    original (unmodified) base weights."""
    model.peft_config["default"].init_lora_weights = True  # the saved init must load as a plain LoRA
    model.save_pretrained(str(path))
    model.peft_config["default"].init_lora_weights = "pissa_niter_4"


def save_final(model, tokenizer, out_dir, method: str, pissa_init=None) -> None:
    """Save what reloads: the adapter (PEFT methods) or the whole model, plus the tokenizer."""
    out_dir.mkdir(parents=True, exist_ok=True)
    if method == "pissa" and pissa_init is not None:
        model.save_pretrained(str(out_dir), path_initial_model_for_weight_conversion=str(pissa_init))
    else:
        model.save_pretrained(str(out_dir), safe_serialization=True)
    tokenizer.save_pretrained(str(out_dir))


def save_trained(
    trainer, tokenizer, out_dir, method: str, pissa_init=None, base_model: str | None = None
) -> None:
    """Save ``final/`` at the end of a run; called on every rank.

    ZeRO-3 partitions the parameters and FSDP shards them, so the weights are gathered by
    ``trainer.save_model``, which every rank must enter (one rank alone would save shards, or hang in the
    collective). Unsharded runs (one process, DDP, ZeRO-2) hold the whole model on every rank and save from
    the main process, where PiSSA's adapter is also converted to a plain LoRA of the original base.
    The tokenizer and the metadata are written by the main process only."""
    out_dir = Path(out_dir)
    main = trainer.is_world_process_zero()
    sharded = bool(
        getattr(trainer, "is_deepspeed_enabled", False) or getattr(trainer, "is_fsdp_enabled", False)
    )
    if sharded:
        trainer.save_model(str(out_dir))
        if main:
            tokenizer.save_pretrained(str(out_dir))
    elif main:
        save_final(trainer.model, tokenizer, out_dir, method, pissa_init)
    if main and base_model:
        record_adapter_base(out_dir, base_model)


def record_adapter_base(out_dir, base_model: str) -> None:
    """Write the base model's absolute path into ``adapter_config.json`` (PEFT records the path as given,
    often relative to the directory training ran in, which breaks loading the adapter from elsewhere)."""
    cfg_path = Path(out_dir) / "adapter_config.json"
    if not cfg_path.is_file() or not Path(base_model).exists():
        return
    conf = json.loads(cfg_path.read_text(encoding="utf-8"))
    conf["base_model_name_or_path"] = str(Path(base_model).resolve())
    atomic_write_text(cfg_path, json.dumps(conf, indent=2, sort_keys=True))
