"""`train export RUN`: a deployable model directory.

- adapter runs: the adapter is merged into the base weights (``--merge``, default); a QLoRA adapter is
  merged into the *dequantised* NF4 base it was trained against, so the merged model computes what the
  adapter model computed; prompt-learning adapters (prefix, prompt, ptuning) cannot be merged and are
  exported as adapters;
- full/freeze/bitfit runs: the trained model, cast to the chosen precision;
- always: safetensors, the tokenizer with its chat template, an Ollama ``Modelfile`` and ``export.json``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import yaml

from curate import yamlsafe
from curate.io import atomic_write_text
from train.callbacks import umask_modes
from train.data import template_stop_ids
from train.methods import keep_4bit_compute_dtype, record_adapter_base

DTYPES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}
UNMERGEABLE = ("prefix", "prompt", "ptuning")


class ExportError(RuntimeError):
    pass


def read_run(run_dir: Path) -> dict[str, Any]:
    meta_path = run_dir / "run.json"
    if not meta_path.is_file():
        raise ExportError(f"{run_dir}: no run.json (not a tamis run directory)")
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    if not (run_dir / "final").is_dir():
        raise ExportError(
            f"{run_dir}: no final/ model (status {meta.get('status')}); finish or resume the run first"
        )
    return meta


def run_settings(run_dir: Path) -> dict[str, Any]:
    """The run's resolved config (``config.yaml``); {} when it is missing or unreadable."""
    try:
        data = yamlsafe.load((run_dir / "config.yaml").read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def trust_remote_code(run_dir: Path) -> bool:
    """Whether the run was trained with ``--trust-remote-code`` (export and eval load the same code)."""
    return bool(run_settings(run_dir).get("trust_remote_code", False))


def base_model_path(run_dir: Path, meta: dict[str, Any]) -> str:
    """The base model of a run: run.json's absolute path; a relative one (older runs) is tried against the
    current directory and then the run directory."""
    model = str(meta["model"])
    p = Path(model)
    if p.is_absolute() or p.exists():
        return model
    for cand in (run_dir / p, run_dir.parent / p):
        if cand.exists():
            return str(cand.resolve())
    return model


def set_pad_token(model, tokenizer) -> None:
    """A model whose config has no pad token (common for base models) cannot score or train on padded
    batches of more than one row: take the tokenizer's (its pad, else eos)."""
    cfg = getattr(model, "config", None)
    if cfg is None or getattr(cfg, "pad_token_id", None) is not None or tokenizer is None:
        return
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if pad is None:
        return
    cfg.pad_token_id = pad
    base = model.get_base_model() if hasattr(model, "get_base_model") else None
    if base is not None and getattr(base.config, "pad_token_id", None) is None:
        base.config.pad_token_id = pad


def load_trained(run_dir: Path, meta: dict[str, Any], *, merged: bool, dtype=None, tokenizer=None):
    """The trained model, as a PeftModel (merged=False) or a plain merged model (merged=True). With a
    ``tokenizer`` the model's missing pad token id is taken from it (see :func:`set_pad_token`)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    final = run_dir / "final"
    cls = AutoModelForSequenceClassification if meta["stage"] == "rm" else AutoModelForCausalLM
    kw: dict[str, Any] = dict(
        use_safetensors=True,
        local_files_only=True,
        dtype=dtype or torch.float32,
        trust_remote_code=trust_remote_code(run_dir),
    )
    if meta["stage"] == "rm":
        kw["num_labels"] = 1
    if not (final / "adapter_config.json").is_file():
        model = cls.from_pretrained(str(final), **kw)
        set_pad_token(model, tokenizer)
        return model
    from peft import PeftModel

    method = meta.get("method")
    if method == "qlora":
        from transformers import BitsAndBytesConfig

        q = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=kw["dtype"],
        )
        where = {"": 0} if torch.cuda.is_available() else {"": "cpu"}
        base = cls.from_pretrained(
            base_model_path(run_dir, meta), quantization_config=q, device_map=where, **kw
        )
        if merged:
            # the NF4 weights the adapter was trained against, back in floating point
            base = base.dequantize()
            base = base.to(kw["dtype"])
        else:
            keep_4bit_compute_dtype(base, kw["dtype"])
    else:
        base = cls.from_pretrained(base_model_path(run_dir, meta), **kw)
    set_pad_token(base, tokenizer)
    model = PeftModel.from_pretrained(base, str(final))
    if merged:
        if method in UNMERGEABLE:
            raise ExportError(
                f"{method} adapters add virtual tokens and cannot be merged; export with --no-merge"
            )
        model = model.merge_and_unload()
    set_pad_token(model, tokenizer)
    return model


def load_run_tokenizer(run_dir: Path):
    """The tokenizer saved with the run (with its chat template), from ``final/``."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(
        str(run_dir / "final"), local_files_only=True, trust_remote_code=trust_remote_code(run_dir)
    )


def set_stop_tokens(model, tokenizer) -> list[int]:
    """Make generation stop at the chat template's end-of-turn token(s) as well as at eos: a base model
    trained with ``--template chatml`` keeps eos ``<|endoftext|>`` while its turns end with ``<|im_end|>``.
    Sets ``generation_config.eos_token_id`` (a list when there are several) and returns the ids."""
    stops = template_stop_ids(tokenizer)
    gc = getattr(model, "generation_config", None)
    if gc is None:
        return stops
    have = gc.eos_token_id
    have = [] if have is None else ([have] if isinstance(have, int) else list(have))
    ids = have + [i for i in stops if i not in have]
    if ids:
        gc.eos_token_id = ids[0] if len(ids) == 1 else ids
    if gc.pad_token_id is None and tokenizer.pad_token_id is not None:
        gc.pad_token_id = tokenizer.pad_token_id
    return ids


def ollama_modelfile(tokenizer, from_line: str, adapter: str | None = None) -> str:
    tpl = tokenizer.chat_template or ""
    lines = [f"FROM {from_line}"]
    if adapter:
        lines.append(f"ADAPTER {adapter}")
    stops = []
    if "<|im_start|>" in tpl:
        lines.append(
            'TEMPLATE """{{ if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}'
            "{{ if .Prompt }}<|im_start|>user\n{{ .Prompt }}<|im_end|>\n{{ end }}"
            '<|im_start|>assistant\n{{ .Response }}<|im_end|>\n"""'
        )
        stops.append("<|im_end|>")
    elif "<|start_header_id|>" in tpl:
        lines.append(
            'TEMPLATE """{{ if .System }}<|start_header_id|>system<|end_header_id|>\n\n{{ .System }}<|eot_id|>{{ end }}'
            "{{ if .Prompt }}<|start_header_id|>user<|end_header_id|>\n\n{{ .Prompt }}<|eot_id|>{{ end }}"
            '<|start_header_id|>assistant<|end_header_id|>\n\n{{ .Response }}<|eot_id|>"""'
        )
        stops.append("<|eot_id|>")
    else:
        lines.append(
            "# no TEMPLATE: Ollama reads the chat template from tokenizer_config.json / chat_template.jinja"
        )
    if tokenizer.eos_token and tokenizer.eos_token not in stops:
        stops.append(tokenizer.eos_token)
    lines += [f'PARAMETER stop "{s}"' for s in stops]
    return "\n".join(lines) + "\n"


def check_export_dir(out: Path, run_dir: Path, base_model: str | None) -> None:
    """An export replaces ``out`` as a whole, so ``out`` must be new or an earlier export: never a
    directory of other files, the run itself (or a folder holding it), or the base model."""
    target = out.resolve()
    run = run_dir.resolve()
    if run.is_relative_to(target):
        raise ExportError(f"{out}: is or holds the run directory {run}; choose a new export directory")
    if target.is_relative_to(run):  # RUN/export is the default; the run's own files are not
        first = target.relative_to(run).parts[0]
        if first in ("final",) or first.startswith("checkpoint-") or first.endswith((".json", ".yaml")):
            raise ExportError(f"{out}: is part of the run ({first}); choose another export directory")
    if base_model and Path(base_model).exists():
        base = Path(base_model).resolve()
        if target == base or base.is_relative_to(target) or target.is_relative_to(base):
            raise ExportError(f"{out}: is, holds or lies in the base model {base}; choose another directory")
    if out.exists() and not out.is_dir():
        raise ExportError(f"{out}: exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not (out / "export.json").is_file():
        raise ExportError(
            f"{out}: exists and is not an earlier tamis export (no export.json); an export replaces its "
            "directory, so choose a new one"
        )


def export_run(
    run_dir: Path, out: Path | None = None, *, merge: bool = True, dtype: str = "bf16"
) -> dict[str, Any]:
    import torch

    meta = read_run(run_dir)
    out = out or run_dir / "export"
    check_export_dir(out, run_dir, meta.get("model"))
    final = run_dir / "final"
    is_adapter = (final / "adapter_config.json").is_file()
    tok = load_run_tokenizer(run_dir)
    tmp = out.with_name(out.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    tdtype = getattr(torch, DTYPES[dtype])
    merged = merge and is_adapter and meta.get("method") not in UNMERGEABLE
    if is_adapter and not merged:
        # adapter export: copy the adapter files; Ollama applies it on top of the base
        for p in final.iterdir():
            if p.is_file():
                shutil.copy2(p, tmp / p.name)

        record_adapter_base(tmp, base_model_path(run_dir, meta))
        modelfile = ollama_modelfile(tok, meta["model"], adapter=".")
        kind = "adapter"
    else:
        model = load_trained(run_dir, meta, merged=True, tokenizer=tok)
        model = model.to(tdtype)
        if meta["stage"] != "rm":
            set_stop_tokens(model, tok)
        model.save_pretrained(str(tmp), safe_serialization=True)
        tok.save_pretrained(str(tmp))
        modelfile = ollama_modelfile(tok, ".")
        kind = "merged" if is_adapter else "model"
    (tmp / "Modelfile").write_text(modelfile, encoding="utf-8")
    info = {
        "run": str(run_dir.resolve()),
        "kind": kind,
        "method": meta.get("method"),
        "base_model": meta.get("model"),
        "dtype": dtype if kind != "adapter" else None,
        "data": [
            {k: f.get(k) for k in ("path", "sha256", "manifest_path", "version") if f.get(k)}
            for f in meta["data"]
        ],
        "data_fingerprint": meta.get("data_fingerprint"),
    }
    atomic_write_text(tmp / "export.json", json.dumps(info, ensure_ascii=False, indent=1))

    umask_modes(tmp)  # model.safetensors is written 0600 by safetensors: readable like the other files
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    info["output"] = str(out)
    info["files"] = sorted(p.name for p in out.iterdir())
    return info
