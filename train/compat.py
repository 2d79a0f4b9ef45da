"""LLaMA-Factory and TRL setting names, read as tamis settings.

A LLaMA-Factory training YAML (``model_name_or_path``, ``cutoff_len``, ``finetuning_type``, ...) or a
TRL script's arguments (``per_device_train_batch_size``, ``use_peft``, ``lora_target_modules``, ...)
runs through ``train <stage> --config`` unchanged:

- :data:`ALIASES`: a peer's name for a tamis setting, with a value translation where the two differ
  (``lora_target: all`` is ``all-linear``; ``finetuning_type: lora`` is ``method: lora``).
- :data:`IGNORED`: keys that change nothing here (tamis always plots the loss, never overwrites a run,
  resumes on its own...): a warning names each one and why, the run goes on.
- Any other key that is a field of the stage's TRL config (``ddp_timeout``, ``dataloader_num_workers``,
  ``optim``...) goes to the ``trainer:`` pass-through, validated against the installed TrainingArguments.
- Anything else is an ``unknown setting`` error, as before.

docs/train.md shows the table; ``tests/train/test_compat.py`` runs LLaMA-Factory's example SFT YAML.
No heavy imports at module level (``train --help`` imports :mod:`train.config`).
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib.util
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from curate.core.errors import UsageError


class CompatError(UsageError):
    """A peer setting that cannot be honoured here (the message names the key)."""


def _lora_target(v: Any) -> Any:
    if isinstance(v, (list, tuple)):
        v = ",".join(map(str, v))
    return "all-linear" if str(v).strip() in ("all", "all-linear") else v


def _finetuning_type(v: Any) -> str:
    v = str(v).strip().lower()
    if v not in ("lora", "full", "freeze", "oft"):
        raise CompatError(f"finetuning_type: {v!r} is not one of lora, full, freeze")
    if v == "oft":
        raise CompatError("finetuning_type: oft is not supported; use lora, dora, full or freeze (method:)")
    return v


def _quantization_bit(v: Any) -> str:
    if v in (None, "", "null", "none"):
        return ""
    if int(v) != 4:
        raise CompatError(f"quantization_bit: {v} is not supported; 4 (QLoRA, method qlora) is")
    return "qlora"


def _truthy(v: Any) -> bool:
    return v is True or str(v).strip().lower() in ("1", "true", "yes", "on")


# peer key -> (tamis key, translation). A translation returning "" drops the key (a "no" that keeps the
# tamis default). Keys also named the same in tamis (learning_rate, lora_alpha, warmup_ratio, seed...)
# need no entry.
ALIASES: dict[str, tuple[str, Callable[[Any], Any] | None]] = {
    # LLaMA-Factory and TRL (transformers' TrainingArguments names)
    "model_name_or_path": ("model", None),
    "output_dir": ("output", None),
    "num_train_epochs": ("epochs", None),
    "per_device_train_batch_size": ("batch_size", None),
    "lr_scheduler_type": ("scheduler", None),
    "report_to": ("report_to", None),
    # LLaMA-Factory
    "cutoff_len": ("max_length", None),
    "max_seq_length": ("max_length", None),  # TRL before 0.20
    "lora_rank": ("lora_r", None),
    "lora_target": ("lora_target", _lora_target),
    "finetuning_type": ("method", _finetuning_type),
    "freeze_trainable_layers": ("freeze_layers", lambda v: abs(int(v))),
    "val_size": ("val_split", None),
    "pref_beta": ("beta", None),
    "pref_loss": ("loss", None),
    "pref_ftx": ("sft_weight", None),
    "dpo_label_smoothing": ("label_smoothing", None),
    "kto_chosen_weight": ("desirable_weight", None),
    "kto_rejected_weight": ("undesirable_weight", None),
    "quantization_bit": ("method", _quantization_bit),
    "use_dora": ("method", lambda v: "dora" if _truthy(v) else ""),
    "use_rslora": ("method", lambda v: "rslora" if _truthy(v) else ""),
    "pissa_init": ("method", lambda v: "pissa" if _truthy(v) else ""),
    "train_on_prompt": ("loss_on", lambda v: "all" if _truthy(v) else ""),
    # LLaMA-Factory trains every assistant turn unless mask_history
    "mask_history": ("loss_on", lambda v: "completion" if _truthy(v) else "assistant"),
    # TRL
    "dataset_name": ("data", None),
    "lora_target_modules": ("lora_target", _lora_target),
    "use_peft": ("method", lambda v: "lora" if _truthy(v) else "full"),
    "loss_type": ("loss", None),
    "completion_only_loss": ("loss_on", lambda v: "completion" if _truthy(v) else "all"),
    "assistant_only_loss": ("loss_on", lambda v: "assistant" if _truthy(v) else ""),
}

# LLaMA-Factory's dataset keys, resolved through dataset_info.json (see :func:`dataset_files`)
DATASET_KEYS = ("dataset", "eval_dataset", "dataset_dir")

# keys accepted and ignored, with the reason printed in the warning
IGNORED: dict[str, str] = {
    "do_train": "a `train <stage>` command always trains",
    "do_eval": "evaluation runs when there is held-out data (eval_dataset, val_size)",
    "do_predict": "use `train eval` after training",
    "overwrite_cache": "tokenisation is not cached between runs",
    "preprocessing_num_workers": "rows are tokenised in this process",
    "plot_loss": "the loss curve is always written (RUN/loss.png)",
    "overwrite_output_dir": "a finished run is never overwritten; an unfinished one resumes",
    "resume_from_checkpoint": "an unfinished run resumes from its last checkpoint on its own",
    "trust_remote_code_model": "use trust_remote_code",
    "flash_attn": "the model's default attention implementation is used",
    "enable_liger_kernel": "not used",
    "use_unsloth": "not used",
    "neat_packing": "use packing: true (rows keep their own attention there too)",
    "dataset_text_field": "rows are read by `curate`'s format detection",
    "dataset_train_split": "rows are read by `curate`'s format detection",
    "dataset_test_split": "held-out rows come from eval_data or val_split",
    "tokenized_path": "rows are tokenised by `train` itself",
    "streaming": "datasets are read into memory",
    "ddp_find_unused_parameters": "set by the launch preset",
    "deepspeed": "use --num-processes N --distributed zero2|zero3",
    "fsdp": "use --num-processes N --distributed fsdp",
    "fsdp_config": "use --num-processes N --distributed fsdp",
    "torch_dtype": "weights load in fp32 on CPU and bf16 on a bf16-capable GPU (bf16:)",
    "dtype": "weights load in fp32 on CPU and bf16 on a bf16-capable GPU (bf16:)",
    "attn_implementation": "the model's default attention implementation is used",
    "use_peft_quantization": "use method: qlora",
    "load_in_4bit": "use method: qlora",
    "bnb_4bit_quant_type": "method qlora uses nf4",
    "upcast_layernorm": "not used",
}

REPORT_TO = ("tensorboard", "wandb", "swanlab", "mlflow", "none")

# TrainingArguments fields that tamis sets itself from its own settings (the pass-through must not
# fight them): the message says which tamis setting to use instead
OWNED_TRAINER_FIELDS: dict[str, str] = {
    "output_dir": "output",
    "num_train_epochs": "epochs",
    "max_steps": "max_steps",
    "learning_rate": "learning_rate",
    "per_device_train_batch_size": "batch_size",
    "gradient_accumulation_steps": "global_batch (or gradient_accumulation_steps at the top level)",
    "lr_scheduler_type": "scheduler",
    "warmup_ratio": "warmup_ratio",
    "warmup_steps": "warmup_ratio",
    "weight_decay": "weight_decay",
    "max_grad_norm": "max_grad_norm",
    "seed": "seed",
    "bf16": "bf16",
    "logging_steps": "logging_steps",
    "save_steps": "save_steps",
    "save_total_limit": "save_total_limit",
    "gradient_checkpointing": "gradient_checkpointing",
    "activation_checkpointing": "gradient_checkpointing",
    "max_length": "max_length",
    "packing": "packing",
    "padding_free": "padding_free",
    "beta": "beta",
    "loss_type": "loss",
}

# pass-through keys that do not change what is trained (kept out of the run key)
RUNTIME_TRAINER_FIELDS = (
    "report_to",
    "run_name",
    "logging_dir",
    "logging_strategy",
    "logging_first_step",
    "ddp_timeout",
    "disable_tqdm",
    "push_to_hub",
    "hub_model_id",
    "hub_strategy",
    "hub_token",
    "hub_private_repo",
    "save_strategy",
    "save_only_model",
    "save_safetensors",
    "eval_strategy",
    "eval_steps",
    "per_device_eval_batch_size",
    "eval_accumulation_steps",
    "include_num_input_tokens_seen",
    "dataloader_num_workers",
    "dataloader_prefetch_factor",
    "dataloader_persistent_workers",
    "dataloader_pin_memory",
    "log_level",
    "log_level_replica",
    "skip_memory_metrics",
)


def trainer_fields(stage: str) -> set[str]:
    """Field names of the TRL config class ``stage`` trains with (a TrainingArguments subclass); imports
    transformers and TRL, so only called when a pass-through or an unknown key needs it."""
    from transformers import TrainingArguments

    names = {f.name for f in dataclasses.fields(TrainingArguments)}
    cls_name = {
        "sft": "SFTConfig",
        "pt": "SFTConfig",
        "dpo": "DPOConfig",
        "rm": "RewardConfig",
        "kto": "KTOConfig",
        "orpo": "ORPOConfig",
        "rloo": "RLOOConfig",
        "grpo": "GRPOConfig",
    }
    try:
        import trl

        cls = getattr(trl, cls_name.get(stage, ""), None)
        if cls is not None:
            names |= {f.name for f in dataclasses.fields(cls)}
    except Exception:  # TRL missing or broken: TrainingArguments alone still validates the common fields
        pass
    return names


def check_trainer(stage: str, section: Any, where: str = "trainer") -> dict[str, Any]:
    """Validate a ``trainer:`` section: a mapping of installed TrainingArguments (TRL config) fields that
    tamis does not set itself."""
    if section in (None, ""):
        return {}
    if not isinstance(section, dict):
        raise CompatError(f"{where}: expected a mapping of TrainingArguments fields, got {section!r}")
    if not section:
        return {}
    known = trainer_fields(stage)
    out = {}
    for k, v in section.items():
        key = str(k).replace("-", "_")
        if key in OWNED_TRAINER_FIELDS:
            raise CompatError(
                f"{where}.{key}: set by tamis from its own setting; use `{OWNED_TRAINER_FIELDS[key]}:` "
                "at the top level instead"
            )
        if key == "report_to":
            raise CompatError(f"{where}.report_to: use `report_to:` at the top level (or --report-to)")
        if key not in known:
            close = difflib.get_close_matches(key, sorted(known), n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise CompatError(
                f"{where}.{key}: not a field of the installed TrainingArguments for `train {stage}`{hint}"
            )
        out[key] = v
    return out


def check_report_to(values: list[str]) -> list[str]:
    out = []
    for v in values:
        for part in str(v).split(","):
            part = part.strip().lower()
            if not part:
                continue
            if part not in REPORT_TO:
                raise CompatError(f"report_to: {part!r} is not one of {', '.join(REPORT_TO)}")
            out.append(part)
    if "none" in out and len(out) > 1:
        raise CompatError("report_to: none cannot be combined with other loggers")

    for logger in out:
        if logger != "none" and importlib.util.find_spec(logger) is None:
            raise CompatError(f"report_to: {logger} is not installed here (pip install {logger})")
    return out or ["none"]


def dataset_files(
    names: Any, dataset_dir: str | None, key: str = "dataset", warnings: list[str] | None = None
) -> list[str]:
    """LLaMA-Factory's ``dataset: a,b`` with ``dataset_dir`` (default ``data``): each name is looked up
    in ``dataset_dir/dataset_info.json`` (its ``file_name``, a file or a folder), or is a path itself
    (relative to ``dataset_dir``, then to the working directory). When the names are every entry of
    the dataset_info.json, that file itself is the data: `curate`'s reader applies each entry's column
    mapping (``columns``, ``tags``, ``formatting``). A subset is read file by file with the format
    detected from the rows; an entry with a column mapping then gets a warning."""
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    names = [str(n) for n in (names or [])]
    base = Path(dataset_dir or "data")
    info: dict[str, Any] = {}
    info_path = base / "dataset_info.json"
    if info_path.is_file():
        try:
            info = json.loads(info_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise CompatError(f"{info_path}: cannot be read: {e}") from None
    if (
        info
        and set(names) == set(info)
        and all(isinstance(e, dict) and e.get("file_name") for e in info.values())
    ):
        return [str(info_path)]
    out = []
    for name in names:
        entry = info.get(name)
        if isinstance(entry, dict) and warnings is not None and any(k in entry for k in ("columns", "tags")):
            warnings.append(
                f"{key}: {name!r} has a column mapping in {info_path}; a subset of its datasets is read file "
                f"by file with the format detected from the rows (give {info_path} as data to apply every mapping)"
            )
        if isinstance(entry, dict):
            if entry.get("file_name"):
                out.append(str(base / entry["file_name"]))
                continue
            raise CompatError(
                f"{key}: {name!r} in {info_path} has no file_name (hub or script datasets are not "
                "downloaded); point file_name at a local file"
            )
        for cand in (base / name, Path(name)):
            if cand.exists():
                out.append(str(cand))
                break
        else:
            where = f"not in {info_path}" if info_path.is_file() else f"no {info_path}"
            raise CompatError(f"{key}: {name!r} is {where} and not a file")
    return out


def translate(settings: dict[str, Any], stage: str, known: set[str]) -> tuple[dict[str, Any], list[str]]:
    """Map peer keys in ``settings`` (already ``-`` -> ``_``) to tamis keys. Returns (settings, warnings).
    Tamis keys win over aliases naming the same setting; unknown keys are left for the caller's error,
    except TrainingArguments fields, which move to the ``trainer`` pass-through."""
    out: dict[str, Any] = {}
    warnings: list[str] = []
    aliased: dict[str, Any] = {}
    passthrough: dict[str, Any] = {}
    grad_accum = settings.get("gradient_accumulation_steps")
    datasets = {k: settings[k] for k in DATASET_KEYS if k in settings}
    unknown = []
    for k, v in settings.items():
        if k in known:
            out[k] = _lora_target(v) if k == "lora_target" else v  # LLaMA-Factory's `all`
        elif k in DATASET_KEYS or k == "gradient_accumulation_steps":
            continue
        elif k in ALIASES:
            target, fn = ALIASES[k]
            value = fn(v) if fn else v
            if value == "":
                continue
            if target == "method" and "method" in aliased:
                # finetuning_type: lora with use_dora/quantization_bit: the specific variant wins
                if value == "lora" or (aliased["method"] not in ("lora", "full")):
                    continue
            aliased[target] = value
        elif k in IGNORED:
            warnings.append(f"{k}: ignored ({IGNORED[k]})")
        else:
            unknown.append(k)
    for k, v in aliased.items():
        if k not in out and k in known:
            out[k] = v
    if unknown:
        fields = trainer_fields(stage)
        for k in unknown:
            if k in fields and k not in OWNED_TRAINER_FIELDS:
                passthrough[k] = settings[k]
                warnings.append(f"{k}: passed to TrainingArguments (a trainer: setting)")
            else:
                out[k] = settings[k]  # the caller names it as unknown
    if passthrough:
        out["trainer"] = {**passthrough, **(out.get("trainer") or {})}
    if grad_accum is not None and "global_batch" not in out:
        try:
            accum = int(grad_accum)
        except (TypeError, ValueError):
            raise CompatError(f"gradient_accumulation_steps: expected int, got {grad_accum!r}") from None
        if accum < 1:
            raise CompatError(f"gradient_accumulation_steps: must be >= 1, got {accum}")
        out["_grad_accum"] = accum  # the global batch is set once batch_size and num_processes are known
    if datasets.get("dataset") is not None and "data" not in out:
        out["data"] = dataset_files(datasets["dataset"], datasets.get("dataset_dir"), "dataset", warnings)
    if datasets.get("eval_dataset") is not None and "eval_data" not in out:
        out["eval_data"] = dataset_files(
            datasets["eval_dataset"], datasets.get("dataset_dir"), "eval_dataset", warnings
        )
    if isinstance(out.get("template"), str):
        t = out["template"]
        if t != "chatml" and not Path(t).suffix and "/" not in t and not Path(t).exists():
            warnings.append(
                f"template: {t!r} is a LLaMA-Factory template name; the model's own chat template renders "
                "the rows (give a .jinja file or chatml to override it)"
            )
            out.pop("template")
    return out, warnings
