"""Tiny datasets for the trainer tests (written once per session next to the tiny models)."""

from __future__ import annotations

from pathlib import Path

import pytest


def _write(rows, path: Path) -> Path:
    from curate.io import write_frame
    from curate.records import to_frame

    write_frame(to_frame([r.as_row() for r in rows]), path)
    return path


@pytest.fixture(autouse=True, scope="session")
def _throughput_table(tmp_path_factory):
    """Measured speeds go to a per-session table, not the user's ~/.cache (subprocesses inherit it)."""
    import os

    old = os.environ.get("TAMIS_THROUGHPUT")
    os.environ["TAMIS_THROUGHPUT"] = str(tmp_path_factory.mktemp("speed") / "throughput.jsonl")
    os.environ.setdefault("TAMIS_TIMING_SECONDS", "1")  # `train plan` times two micro-batches, no more
    yield
    if old is None:
        os.environ.pop("TAMIS_THROUGHPUT", None)
    else:
        os.environ["TAMIS_THROUGHPUT"] = old


@pytest.fixture(scope="session")
def train_data(tmp_path_factory) -> dict[str, Path]:
    """sft (24 patterned Q&A), pref (24 pairs), kto (24 labelled answers), text (12 docs), mixed (all kinds)."""
    from curate.records import Record, Turn

    d = tmp_path_factory.mktemp("train_data")
    sft = [
        Record(kind="sft", question=f"What is the status of node {i}?", answer=f"Node {i} is ready.")
        for i in range(22)
    ]
    sft.append(
        Record(
            kind="sft",
            system="You are an ops assistant.",
            history=[Turn("user", "hi"), Turn("assistant", "Hello, how can I help?")],
            question="Restart the web deployment.",
            answer="kubectl rollout restart deploy web",
        )
    )
    sft.append(Record(kind="sft", question="如何查看 Pod 日志？", answer="使用 kubectl logs 命令。"))
    pref = [
        Record(
            kind="preference",
            question=f"How do I restart pod {i}?",
            chosen=f"kubectl delete pod p{i}",
            rejected="I do not know.",
        )
        for i in range(24)
    ]
    kto = [
        Record(kind="kto", question=f"Scale web to {i} replicas?", answer=a, label=lab)
        for i in range(12)
        for a, lab in ((f"kubectl scale deploy web --replicas={i}", True), ("Buy more servers.", False))
    ]
    text = [
        Record(kind="text", text=f"Kubernetes schedules pod {i} onto node {i % 3}. " * 3) for i in range(12)
    ]
    return {
        "sft": _write(sft, d / "sft.jsonl"),
        "pref": _write(pref, d / "pref.jsonl"),
        "kto": _write(kto, d / "kto.jsonl"),
        "text": _write(text, d / "text.jsonl"),
        "mixed": _write(sft[:4] + pref[:4], d / "mixed.jsonl"),
    }


@pytest.fixture(scope="session")
def bias_lm(tiny_models, tmp_path_factory) -> Path:
    """A tiny Llama with attention biases (Qwen2-style), for bitfit."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    out = tmp_path_factory.mktemp("bias_lm")
    cfg = LlamaConfig.from_pretrained(str(tiny_models["lm"]))
    cfg.attention_bias = True
    torch.manual_seed(0)
    LlamaForCausalLM(cfg).save_pretrained(str(out), safe_serialization=True)
    AutoTokenizer.from_pretrained(str(tiny_models["lm"])).save_pretrained(str(out))
    return out


@pytest.fixture(scope="session")
def quick_cfg():
    return _quick_cfg


def _quick_cfg(stage: str, model: Path, data: Path, out: Path, **kw):
    """A short, fast run config for tests."""
    from train.config import resolve

    flags = {
        "model": str(model),
        "data": [str(data)],
        "output": str(out),
        "max_steps": 2,
        "logging_steps": 1,
        "save_steps": 1000,
        "batch_size": 4,
        "global_batch": 4,
    }
    flags.update(kw)
    return resolve(stage, flags={k: v for k, v in flags.items() if v is not None})
