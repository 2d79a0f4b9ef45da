"""Typed configuration, one dataclass per stage.

Precedence (lowest first): dataclass defaults < YAML file (``--config``) < generated CLI flags
(``--lora-r 16``) < ``--set key=value``. Every field is typed and validated here, the CLI flags and their
``--help`` text are generated from these fields, and the resolved config is written to the run directory
as ``config.yaml``. ``None`` for a hyper-parameter means "let the plan decide" (see :mod:`train.plan`).

No heavy imports here: ``train --help`` imports this module.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from curate.core.coerce import base_type as _base_type
from curate.core.coerce import parse_scalar as _scalar
from curate.core.errors import ConfigError  # noqa: F401  (train's name for it)
from train.compat import REPORT_TO, CompatError, check_report_to, check_trainer, translate
from train.specs import MixError, RewardSpecError, parse_mix, parse_rewards

METHODS = (
    "full",
    "freeze",
    "lora",
    "qlora",
    "dora",
    "rslora",
    "pissa",
    "ia3",
    "prefix",
    "prompt",
    "ptuning",
    "bitfit",
)
# policy optimisation against rewards (sampled completions scored by a reward model and/or rules)
ONLINE_STAGES = ("rloo", "grpo")
STAGES = ("sft", "dpo", "rm", "kto", "pt", "orpo", *ONLINE_STAGES)
# the record kinds each stage trains on (`train X` with no DATA picks a curated file of these kinds)
STAGE_KINDS = {
    "sft": ("sft",),
    "dpo": ("preference",),
    "rm": ("preference",),
    "kto": ("kto", "preference"),
    "pt": ("text", "sft"),
    "orpo": ("preference",),
    # online RL trains on prompts; the answer (or chosen) is the reference of the exact/contains rewards
    "rloo": ("sft", "preference"),
    "grpo": ("sft", "preference"),
}
GRPO_LOSSES = ("dapo", "grpo", "dr_grpo", "bnpo")
GRPO_SCALING = ("group", "batch", "none")
DPO_LOSSES = ("sigmoid", "ipo", "simpo", "hinge", "robust")
DPO_TRUNCATIONS = ("keep_start", "budget")
SFT_LOSS_SCOPES = ("completion", "assistant", "all")
DISTRIBUTED = ("ddp", "zero2", "zero3", "fsdp")


def _f(default: Any, help: str, choices: tuple[str, ...] | None = None, **kw):
    meta = {"help": help}
    if choices:
        meta["choices"] = choices
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: type(d)(d), metadata=meta, **kw)
    return field(default=default, metadata=meta, **kw)


@dataclass
class CommonConfig:
    model: str | None = _f(
        None, "Model directory (or a name already in the local HF cache; nothing is downloaded)."
    )
    data: list[str] = _f([], "Training data: curated records or any format `curate` reads (repeatable).")
    eval_data: list[str] = _f([], "Held-out data for evaluation during training (optional).")
    output: str | None = _f(
        None,
        "Run directory (default: runs/<stage>-<model>-<method>-<key>, the key hashing the data and the key "
        "settings, so re-running the same command finds the same run). An unfinished run resumes from its "
        "last checkpoint; a finished run is left as is (never retrained or overwritten).",
    )
    method: str = _f("lora", "Fine-tuning method.", METHODS)
    # hyper-parameters: None = planned from the data (train plan)
    epochs: float | None = _f(None, "Epochs (default: planned from the dataset size).")
    max_steps: int = _f(-1, "Stop after this many optimizer steps (-1: run the planned epochs).")
    learning_rate: float | None = _f(None, "Peak learning rate (default: planned by stage and method).")
    batch_size: int = _f(4, "Per-device micro-batch size.")
    global_batch: int | None = _f(
        None, "Global batch (micro-batch x accumulation x processes); default planned."
    )
    max_length: int | None = _f(None, "Max tokens per row (default: from the token-length distribution).")
    warmup_ratio: float | None = _f(
        None, "Warm-up share of the steps (default planned: 0.03 SFT, 0.1 DPO/KTO)."
    )
    scheduler: str = _f("cosine", "Learning-rate schedule.", ("cosine", "linear", "constant_with_warmup"))
    weight_decay: float = _f(0.0, "AdamW weight decay.")
    max_grad_norm: float = _f(1.0, "Gradient clipping norm.")
    seed: int = _f(42, "Random seed (data order, init, dropout).")
    # methods
    lora_r: int = _f(8, "LoRA rank (lora, qlora, dora, rslora, pissa).")
    lora_alpha: int = _f(16, "LoRA alpha.")
    lora_dropout: float = _f(
        0.0,
        "LoRA dropout (0 like PEFT and LLaMA-Factory: 0.05 costs about a quarter more CPU per step on the tiny model).",
    )
    lora_target: str = _f("all-linear", "LoRA target modules: all-linear or a comma list (q_proj,v_proj).")
    freeze_layers: int = _f(2, "freeze: number of last decoder layers to train.")
    virtual_tokens: int = _f(16, "prefix/prompt/ptuning: number of virtual tokens.")
    # data handling
    template: str | None = _f(None, "Chat template (.jinja file) when the model has none or to override it.")
    val_split: float = _f(0.0, "Hold out this share of the training data for evaluation (0 = none).")
    # runtime
    bf16: bool | None = _f(None, "bf16 mixed precision (default: on when a bf16-capable GPU is present).")
    gradient_checkpointing: bool = _f(False, "Recompute activations to save memory (slower).")
    logging_steps: int = _f(5, "Log every N steps (TensorBoard + metrics.jsonl).")
    save_steps: int = _f(100, "Checkpoint every N steps (resume point).")
    save_total_limit: int = _f(2, "Keep at most this many checkpoints.")
    num_processes: int = _f(1, "Processes (GPUs) to launch through accelerate.")
    distributed: str = _f("ddp", "Multi-process preset for --num-processes > 1.", DISTRIBUTED)
    trust_remote_code: bool = _f(False, "Allow model code from the model directory (off: safer).")
    force: bool = _f(
        False,
        "Resume an unfinished run even if the data or key settings changed since it started "
        "(a finished run is never overwritten).",
    )
    skip_check: bool = _f(False, "Do not stop on failed pre-flight data checks.")
    max_samples: int | None = _f(
        None, "Train on the first N rows only (LLaMA-Factory's max_samples; default: every row)."
    )
    report_to: list[str] = _f(
        ["tensorboard"], "Loggers: tensorboard, wandb, swanlab, mlflow or none (repeatable).", REPORT_TO
    )
    trainer: dict[str, Any] = _f(
        {},
        "Extra TrainingArguments fields (YAML `trainer:` section or --set trainer.KEY=VALUE), validated "
        "against the installed transformers/TRL.",
    )

    stage: typing.ClassVar[str] = ""

    # settings that do not change what is trained (where it goes, how often it logs, how it is launched):
    # every other setting names the run (its default directory) and is checked on resume
    RUNTIME_SETTINGS: typing.ClassVar[tuple[str, ...]] = (
        "data",  # fingerprinted by content instead of by path
        "output",
        "force",
        "skip_check",
        "logging_steps",
        "save_steps",
        "save_total_limit",
        "distributed",
        "gradient_checkpointing",
        "trust_remote_code",
        "report_to",
    )

    def validate(self) -> None:
        for f in fields(self):
            choices = f.metadata.get("choices")
            value = getattr(self, f.name)
            if f.name == "report_to":
                continue  # a list, checked below
            if choices and value is not None and value not in choices:
                raise ConfigError(f"{value!r} is not one of {', '.join(choices)}", f.name)
        for name in (
            "batch_size",
            "lora_r",
            "virtual_tokens",
            "logging_steps",
            "save_steps",
            "num_processes",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(f"must be >= 1, got {getattr(self, name)}", name)
        if self.freeze_layers < 1:
            raise ConfigError(f"must be >= 1, got {self.freeze_layers}", "freeze_layers")
        if self.epochs is not None and self.epochs <= 0:
            raise ConfigError(f"must be > 0, got {self.epochs}", "epochs")
        if self.learning_rate is not None and not (0 < self.learning_rate < 1):
            raise ConfigError(f"must be in (0, 1), got {self.learning_rate}", "learning_rate")
        if self.max_length is not None and self.max_length < 8:
            raise ConfigError(f"must be >= 8, got {self.max_length}", "max_length")
        if self.global_batch is not None and self.global_batch < self.batch_size:
            raise ConfigError(
                f"{self.global_batch} is smaller than {{batch_size}} ({self.batch_size})",
                "global_batch",
                mentions=("batch_size",),
            )
        if not 0 <= self.val_split < 0.5:
            raise ConfigError(f"must be in [0, 0.5), got {self.val_split}", "val_split")
        if self.warmup_ratio is not None and not 0 <= self.warmup_ratio < 1:
            raise ConfigError(f"must be in [0, 1), got {self.warmup_ratio}", "warmup_ratio")
        if not [t for t in self.lora_target.split(",") if t.strip()]:
            raise ConfigError(
                "empty; give all-linear or a comma list of module names (q_proj,v_proj)", "lora_target"
            )
        if self.method == "pissa" and self.num_processes > 1 and self.distributed in ("zero3", "fsdp"):
            raise ConfigError(
                f"pissa with {{distributed}} {self.distributed}: the PiSSA adapter is converted to a plain "
                "LoRA from whole weights, which sharded training does not hold; use ddp or zero2, or "
                "{method} lora",
                "method",
                mentions=("distributed", "method"),
            )
        if self.max_samples is not None and self.max_samples < 1:
            raise ConfigError(f"must be >= 1, got {self.max_samples}", "max_samples")
        try:
            self.report_to = check_report_to(self.report_to)
        except CompatError as e:
            raise _keyed("report_to", e) from None
        # (online RL: beta 0 means no KL term and no reference model)
        if hasattr(self, "beta") and not (self.beta > 0 or (self.beta == 0 and self.stage in ONLINE_STAGES)):
            raise ConfigError(f"must be > 0, got {self.beta}", "beta")

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass
class SFTConfig(CommonConfig):
    loss_on: str = _f(
        "completion",
        "Which tokens carry the loss: completion (the final answer), assistant (every assistant turn) or all.",
        SFT_LOSS_SCOPES,
    )
    packing: bool = _f(False, "Pack rows into full-length sequences (padding-free, per-row attention kept).")
    padding_free: bool = _f(
        False,
        "Padding-free batches without packing: each micro-batch is flattened into one unpadded row with "
        "per-row positions (rows are cut to max_length first).",
    )
    fast_loss: bool = _f(
        True,
        "Plain cross-entropy on the logits instead of TRL's chunked LM-head path with entropy/accuracy metrics "
        "(same loss and labels; faster for small and mid-size vocabularies; turn off for very large vocabularies "
        "on small GPUs, where materialising the logits costs memory).",
    )
    group_by_length: bool = _f(
        True,
        "Length-grouped micro-batches (with --fast-loss): the same rows as the random order in every window of "
        "16 steps, sorted by length into micro-batches, so less padding is computed.",
    )
    mix: list[str] = _f(
        [],
        "Mix general data into the domain data: FILE:RATIO, RATIO in (0, 1) the share of the training rows "
        "drawn from FILE (sampled deterministically by --seed; repeatable). Guards against catastrophic "
        "forgetting; the plan counts the rows.",
    )
    stage: typing.ClassVar[str] = "sft"

    def validate(self) -> None:
        super().validate()
        _check_mix(self.mix)


@dataclass
class DPOConfig(CommonConfig):
    beta: float = _f(0.1, "DPO beta (IPO: tau).")
    loss: str = _f(
        "sigmoid",
        "Preference loss: sigmoid (DPO), ipo, simpo (length-normalised, SimPO-style), hinge, robust.",
        DPO_LOSSES,
    )
    sft_weight: float = _f(0.0, "Weight of an SFT (NLL on chosen) term mixed into the loss (RPO); 0 = off.")
    label_smoothing: float = _f(0.0, "Label smoothing (robust DPO).")
    truncation: str = _f(
        "keep_start",
        "How a pair longer than max_length is cut: keep_start (TRL: each sequence keeps its first max_length "
        "tokens; a pair whose prompt fills max_length is dropped) or budget (LLaMA-Factory's cutoff_len split: "
        "the answers keep a share of max_length, both cut to the same length, and the prompt keeps its last "
        "tokens, so the question and the assistant header stay; no pair is dropped).",
        DPO_TRUNCATIONS,
    )
    fast_loss: bool = _f(
        True,
        "Log-probabilities from the LM head on the completion tokens only, reference log-probs computed once "
        "per pair and cached, length-grouped batches, sequence-level metrics only (off: TRL's path, which also "
        "logs entropy, mean logits and token accuracy).",
    )
    group_by_length: bool = _f(
        True, "Length-grouped micro-batches (with --fast-loss; the same pairs per 16-step window)."
    )
    stage: typing.ClassVar[str] = "dpo"

    def validate(self) -> None:
        super().validate()
        if not 0 <= self.label_smoothing < 0.5:
            raise ConfigError(f"must be in [0, 0.5), got {self.label_smoothing}", "label_smoothing")
        if self.sft_weight < 0:
            raise ConfigError(f"must be >= 0, got {self.sft_weight}", "sft_weight")


@dataclass
class RMConfig(CommonConfig):
    center_rewards: float | None = _f(None, "Coefficient pushing rewards towards zero mean (optional).")
    stage: typing.ClassVar[str] = "rm"


@dataclass
class KTOConfig(CommonConfig):
    beta: float = _f(0.1, "KTO beta.")
    desirable_weight: float = _f(1.0, "Weight of good (label=true) rows.")
    undesirable_weight: float = _f(1.0, "Weight of bad (label=false) rows.")
    stage: typing.ClassVar[str] = "kto"


@dataclass
class PTConfig(CommonConfig):
    packing: bool = _f(True, "Pack texts into full-length sequences (recommended for pretraining).")
    mix: list[str] = _f(
        [],
        "Mix general data into the domain data: FILE:RATIO, RATIO in (0, 1) the share of the training rows "
        "drawn from FILE (sampled deterministically by --seed; repeatable). Guards against catastrophic "
        "forgetting; the plan counts the rows.",
    )
    stage: typing.ClassVar[str] = "pt"

    def validate(self) -> None:
        super().validate()
        _check_mix(self.mix)


def _keyed(key: str, exc: Exception) -> ConfigError:
    """A setting parser's error (``mix 'a.jsonl': ...``, ``report_to: ...``) as the ConfigError of
    ``key``, so that the caller spells the setting as the user wrote it."""
    text = str(exc)
    for prefix in (f"{key}: ", f"{key} "):
        text = text.removeprefix(prefix)
    return ConfigError(text, key)


def _check_mix(specs: list[str]) -> None:
    try:
        parse_mix(specs)
    except MixError as e:
        raise _keyed("mix", e) from None


@dataclass
class ORPOConfig(CommonConfig):
    beta: float = _f(0.1, "ORPO lambda: weight of the odds-ratio (preference) term added to the SFT loss.")
    stage: typing.ClassVar[str] = "orpo"


@dataclass
class OnlineRLConfig(CommonConfig):
    """Shared by `train rloo` and `train grpo`: sample completions for every prompt, score them, and push
    the policy towards the better ones within each prompt's group."""

    reward_model: str | None = _f(
        None,
        "Reward model: a `train rm` run directory (LoRA or full), its export, or any sequence-classification "
        "model directory (one score).",
    )
    reward: list[str] = _f(
        [],
        "Rule reward (repeatable): exact or contains (the row's reference answer; the final answer of CoT rows "
        "from `curate augment --cot`), format (reasoning then a final-answer line, or <think>...</think> then "
        "an answer), length:N (completions near N tokens). NAME=WEIGHT weights it (default 1).",
    )
    reward_model_weight: float = _f(1.0, "Weight of the reward model's score in the total reward.")
    num_generations: int = _f(4, "Completions sampled per prompt (the group that is its own baseline).")
    max_completion_length: int = _f(128, "Max new tokens per sampled completion.")
    temperature: float = _f(1.0, "Sampling temperature of the completions.")
    beta: float = _f(
        0.05, "KL coefficient to the reference (the starting model); 0 = no KL term, no reference."
    )

    def validate(self) -> None:
        super().validate()
        if self.num_generations < 2:
            raise ConfigError(
                f"must be >= 2 (a group needs a baseline), got {self.num_generations}", "num_generations"
            )
        if self.max_completion_length < 1:
            raise ConfigError(f"must be >= 1, got {self.max_completion_length}", "max_completion_length")
        if not self.temperature > 0:
            raise ConfigError(f"must be > 0, got {self.temperature}", "temperature")
        try:
            parse_rewards(self.reward)
        except RewardSpecError as e:
            raise _keyed("reward", e) from None


@dataclass
class RLOOConfig(OnlineRLConfig):
    stage: typing.ClassVar[str] = "rloo"


@dataclass
class GRPOConfig(OnlineRLConfig):
    beta: float = _f(
        0.04, "KL coefficient to the reference (the starting model); 0 = no KL term, no reference."
    )
    loss_type: str = _f(
        "dapo", "GRPO loss aggregation: dapo (token-level, no length bias), grpo, dr_grpo, bnpo.", GRPO_LOSSES
    )
    scale_rewards: str = _f(
        "group", "Scale advantages by the reward std of the group, the batch, or not at all.", GRPO_SCALING
    )
    stage: typing.ClassVar[str] = "grpo"


CONFIGS: dict[str, type[CommonConfig]] = {
    "sft": SFTConfig,
    "dpo": DPOConfig,
    "rm": RMConfig,
    "kto": KTOConfig,
    "pt": PTConfig,
    "orpo": ORPOConfig,
    "rloo": RLOOConfig,
    "grpo": GRPOConfig,
}


# ---------------------------------------------------------------- typing helpers


@functools.cache
def _field_types(cls) -> Mapping[str, Any]:
    # resolved once per class: `train sft --help` asks for every field's type, and resolving the
    # annotations of a config (get_type_hints) per field made that help take 0.3 s
    return types.MappingProxyType(typing.get_type_hints(cls))


def coerce(cls, key: str, value: Any) -> Any:
    """Convert a YAML/CLI value to the field's type, with an error naming the key."""
    hints = _field_types(cls)
    if key not in hints or key in ("stage", "RUNTIME_SETTINGS"):
        names = ", ".join(f.name for f in fields(cls))
        raise ConfigError(f"unknown setting {key!r} for `train {cls.stage}`; known: {names}")
    tp, optional, is_list = _base_type(hints[key])
    if tp is dict or typing.get_origin(tp) is dict:
        if value in (None, ""):
            return {}
        if not isinstance(value, dict):
            raise ConfigError(f"expected a mapping (a YAML section), got {value!r}", key)
        return dict(value)
    if value is None or (isinstance(value, str) and value.lower() in ("none", "null", "") and optional):
        if optional or is_list:
            return [] if is_list and not optional else None
        raise ConfigError("a value is required", key)
    if is_list:
        if isinstance(value, str):
            value = [v for v in value.split(",") if v]
        if not isinstance(value, (list, tuple)):
            value = [value]
        return [_scalar(key, tp, v) for v in value]
    return _scalar(key, tp, value)


def load_yaml(path: str | Path) -> dict[str, Any]:
    # (yaml and curate.yamlsafe here, not at the top: `train --help` imports this module, never YAML)
    import yaml

    from curate import yamlsafe  # (see above)

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {p} not found")
    try:
        data = yamlsafe.load(p.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{p}: not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: expected a mapping of settings at the top level")
    return data


def parse_set(items: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """``--set key=value``; ``--set trainer.optim=adamw_torch`` sets one pass-through field (its value
    read as YAML, so numbers and booleans keep their type)."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected key=value")
        k, v = item.split("=", 1)
        k = k.strip().replace("-", "_")
        if k.startswith("trainer."):
            import yaml  # (not at the top: see load_yaml)

            from curate import yamlsafe

            try:
                value = yamlsafe.load(v.strip())
            except yaml.YAMLError:
                value = v.strip()
            out.setdefault("trainer", {})[k.split(".", 1)[1]] = value
            continue
        out[k] = v.strip()
    return out


def _translate(cls, stage: str, settings: dict[str, Any], where: str) -> tuple[dict[str, Any], list[str]]:
    """Peer (LLaMA-Factory / TRL) key names -> tamis names (see :mod:`train.compat`)."""
    known = {f.name for f in fields(cls)}
    try:
        out, warnings = translate({k.replace("-", "_"): v for k, v in settings.items()}, stage, known)
    except CompatError as e:
        raise ConfigError(f"{where}: {e}") from None
    return out, [f"{where}: {w}" for w in warnings]


def resolve(stage: str, yaml_path: str | None = None, flags: dict | None = None, sets: dict | None = None):
    """Build the stage config from defaults, a YAML file, CLI flags and --set overrides. LLaMA-Factory
    and TRL key names are read as their tamis settings (:mod:`train.compat`); the config's ``warnings``
    attribute lists the peer keys that were ignored or passed through. An error names a setting as the
    user gave it: ``--epochs`` when the flag gave it, ``epochs`` from the YAML, ``--set`` or a default."""
    given_as_flag = {k for k in flags or {} if k not in (sets or {})}

    def spell(name: str) -> str:
        return "--" + name.replace("_", "-") if name in given_as_flag else name

    try:
        return _resolve(stage, yaml_path, flags, sets)
    except ConfigError as exc:
        raise exc.spelled(spell) from None


def _resolve(stage: str, yaml_path: str | None, flags: dict | None, sets: dict | None):
    cls = CONFIGS[stage]
    values: dict[str, Any] = {}
    warnings: list[str] = []
    grad_accum = None
    if yaml_path:
        data = load_yaml(yaml_path)
        # a saved RUN/config.yaml names its stage: it must be the stage of the command reading it
        saved_stage = data.pop("stage", None)
        if saved_stage is not None and saved_stage != stage:
            raise ConfigError(
                f"{yaml_path} is a `train {saved_stage}` config (stage: {saved_stage}) but this command "
                f"is for stage {stage}; use stage {saved_stage}, or delete the stage key to reuse the settings"
            )
        # a YAML may hold several stages: `sft: {...}` sections override the shared top level
        section = data.pop(stage, None) if isinstance(data.get(stage), dict) else None
        for s in STAGES:
            if isinstance(data.get(s), dict):
                data.pop(s)
        data.update(section or {})
        data, w = _translate(cls, stage, data, str(yaml_path))
        warnings += w
        grad_accum = data.pop("_grad_accum", None)
        for k, v in data.items():
            values[k] = coerce(cls, k, v)
    for k, v in (flags or {}).items():
        values[k] = coerce(cls, k, v)
    if sets:
        set_values, w = _translate(cls, stage, dict(sets), "--set")
        warnings += w
        grad_accum = set_values.pop("_grad_accum", grad_accum)
        for k, v in set_values.items():
            if k == "trainer":
                values["trainer"] = {**values.get("trainer", {}), **coerce(cls, k, v)}
            else:
                values[k] = coerce(cls, k, v)
    if grad_accum is not None and "global_batch" not in values:
        # LLaMA-Factory/TRL's gradient_accumulation_steps: global batch = micro-batch x accumulation x processes
        micro = values.get("batch_size", cls.batch_size)
        values["global_batch"] = micro * grad_accum * values.get("num_processes", cls.num_processes)
    try:
        values["trainer"] = check_trainer(stage, values.get("trainer"))
    except CompatError as e:
        raise ConfigError(str(e)) from None
    cfg = cls(**values)
    cfg.validate()
    cfg.warnings = warnings
    return cfg


def dump_yaml(cfg: CommonConfig) -> str:
    """The resolved config as YAML, with a ``stage`` key; ``resolve(stage, that_file)`` reads it back to
    an equal config (the key is checked against the command's stage)."""
    import yaml  # (not at the top: see load_yaml)

    return yaml.safe_dump({"stage": cfg.stage, **cfg.to_dict()}, sort_keys=False, allow_unicode=True)


def from_run_dict(stage: str, data: dict[str, Any]) -> CommonConfig:
    cls = CONFIGS[stage]
    known = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in known})


def cli_fields(stage: str) -> list[dataclasses.Field]:
    return list(fields(CONFIGS[stage]))


def field_type(stage: str, name: str) -> tuple[Any, bool, bool]:
    return _base_type(_field_types(CONFIGS[stage])[name])
