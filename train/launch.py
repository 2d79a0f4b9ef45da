"""Multi-process launch through `accelerate launch` (DDP, DeepSpeed ZeRO-2/3, FSDP presets).

`train sft ... --num-processes 4` re-runs the same command under accelerate with one of these presets;
the child processes see TAMIS_LAUNCHED=1 and train directly. On a machine without GPUs only DDP is
possible: the processes are started with torchrun and use the gloo backend.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml


def preset(name: str, num_processes: int, gpu: bool, bf16: bool) -> dict[str, Any]:
    base: dict[str, Any] = {
        "compute_environment": "LOCAL_MACHINE",
        "machine_rank": 0,
        "num_machines": 1,
        "num_processes": num_processes,
        "mixed_precision": "bf16" if bf16 else "no",
        "use_cpu": not gpu,
        "main_training_function": "main",
        "rdzv_backend": "static",
        "same_network": True,
    }
    if name == "ddp":
        base["distributed_type"] = "MULTI_GPU" if gpu else "MULTI_CPU"
    elif name in ("zero2", "zero3"):
        base["distributed_type"] = "DEEPSPEED"
        base["deepspeed_config"] = {
            "zero_stage": 2 if name == "zero2" else 3,
            "offload_optimizer_device": "none",
            "offload_param_device": "none",
            "gradient_accumulation_steps": "auto",
            "gradient_clipping": "auto",
            "zero3_init_flag": name == "zero3",
            "zero3_save_16bit_model": name == "zero3",
        }
    elif name == "fsdp":
        base["distributed_type"] = "FSDP"
        base["fsdp_config"] = {
            "fsdp_version": 2,
            "fsdp_auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
            "fsdp_cpu_ram_efficient_loading": True,
            "fsdp_offload_params": False,
            "fsdp_reshard_after_forward": True,
            # the final model is gathered into one state dict by Trainer.save_model on every rank: with
            # SHARDED_STATE_DICT it would save nothing (and checkpoints would not load into one process)
            "fsdp_state_dict_type": "FULL_STATE_DICT",
        }
    else:
        raise ValueError(name)
    return base


class LaunchError(RuntimeError):
    """The multi-process launch cannot start (a usage error: exit code 2)."""


def has_deepspeed() -> bool:
    try:
        import deepspeed  # noqa: F401
    except Exception:
        return False
    return True


def accelerate_command(cfg, argv: list[str]) -> tuple[list[str], dict[str, str]]:
    gpu = _gpu_count() > 0
    if cfg.distributed != "ddp" and not gpu:
        raise LaunchError(f"--distributed {cfg.distributed} needs GPUs; on CPU use the ddp preset")
    if cfg.distributed in ("zero2", "zero3") and not has_deepspeed():
        raise LaunchError(
            f"--distributed {cfg.distributed} needs DeepSpeed, which cannot be imported here; install it "
            "(pip install deepspeed) or use --distributed ddp or fsdp"
        )
    # PYTHONSAFEPATH (and -P for the launcher itself): `python -m train.cli` in every child would put the
    # working directory first on sys.path, and a user's train.py or curate.py there would be imported
    # instead of tamis (ModuleNotFoundError / their code run N times)
    env = dict(os.environ, TAMIS_LAUNCHED="1", PYTHONSAFEPATH="1")
    if not gpu:
        # CPU data parallel: torchrun sets RANK/WORLD_SIZE; accelerate then picks the gloo backend
        cmd = [
            sys.executable,
            "-P",
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            str(cfg.num_processes),
        ]
        return [*cmd, "-m", "train.cli", *argv], env
    conf = preset(cfg.distributed, cfg.num_processes, gpu, bool(cfg.bf16) and gpu)
    fd, path = tempfile.mkstemp(prefix=f"tamis-accelerate-{cfg.distributed}-", suffix=".yaml")
    with os.fdopen(fd, "w") as fh:
        yaml.safe_dump(conf, fh)
    cmd = [
        sys.executable,
        "-P",
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        path,
        "--num_processes",
        str(cfg.num_processes),
        "-m",
        "train.cli",
        *argv,
    ]
    return cmd, env


def _gpu_count() -> int:
    try:
        import torch

        return torch.cuda.device_count()
    except Exception:
        return 0


def preset_file(name: str, num_processes: int, out: Path, gpu: bool = True, bf16: bool = True) -> Path:
    """Write a preset for users who prefer `accelerate launch --config_file` themselves."""
    out.write_text(yaml.safe_dump(preset(name, num_processes, gpu, bf16)), encoding="utf-8")
    return out
