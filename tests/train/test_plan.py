from __future__ import annotations

import json

import pytest

from train.config import resolve
from train.plan import (
    ModelShape,
    advice,
    anatomy,
    length_stats,
    make_plan,
    memory_estimate,
    planned_epochs,
    planned_lr,
)


def test_epochs_reproduce_the_article_table():
    # "100 条数据时, Epoch 为 15; 1000 条数据时, Epoch 为 10; 10000 条数据时, Epoch 为 2"; 100k: 2-3
    assert planned_epochs(100) == 15
    assert planned_epochs(1_000) == 10
    assert planned_epochs(10_000) == 2
    assert 2 <= planned_epochs(100_000) <= 3
    # interpolated in between, monotone, clamped outside
    assert 10 < planned_epochs(300) < 15
    assert 2 < planned_epochs(3_000) < 10
    assert planned_epochs(10) == 15 and planned_epochs(10**7) == 2
    sizes = [100, 200, 500, 1000, 2000, 5000, 10_000, 100_000]
    eps = [planned_epochs(n) for n in sizes]
    assert eps == sorted(eps, reverse=True)


def test_article_name_anatomy():
    a = anatomy("Qwen1.5-14B-Chat-GPTQ-Int4")
    assert (a.series, a.version, a.size, a.finetune, a.quantization, a.bits) == (
        "Qwen",
        "1.5",
        "14B",
        "chat",
        "GPTQ",
        4,
    )
    assert a.params_billion == 14
    # the article spells it GQPT
    assert anatomy("Qwen1.5-14B-Chat-GQPT-Int4").quantization == "GPTQ"
    b = anatomy("meta-llama/Meta-Llama-3-8B")
    assert (b.series, b.version, b.size, b.finetune, b.quantization) == ("Llama", "3", "8B", "base", None)
    assert anatomy("Qwen2.5-0.5B-Instruct-AWQ").quantization == "AWQ"
    assert anatomy("chatglm3-6b").finetune == "chat" and anatomy("chatglm3-6b-base").finetune == "base"
    g = anatomy("mistral-7b-instruct-v0.2.Q4_K_M.gguf")
    assert (g.quantization, g.bits, g.version) == ("GGUF", 4, "0.2")
    # base-vs-chat advice from the article
    tips = " ".join(advice(a, "sft"))
    assert "catastrophic forgetting" in tips and "base model" in tips and "GPTQ" in tips
    assert "continued" in " ".join(advice(b, "sft"))


def test_learning_rates_by_stage_and_method():
    assert 1e-4 <= planned_lr("sft", "lora")[0] <= 2e-4
    assert planned_lr("sft", "full")[0] == pytest.approx(1e-5)
    assert 5e-6 <= planned_lr("dpo", "lora")[0] <= 1e-5
    assert planned_lr("dpo", "full")[0] < planned_lr("dpo", "lora")[0] < planned_lr("sft", "lora")[0]


def test_length_stats_picks_p99_and_counts_truncation():
    lengths = list(range(10, 110)) + [5000]  # one outlier
    s = length_stats(lengths, model_max=2048)
    assert s["max_length"] % 64 == 0 and s["max_length"] >= s["p99"]
    assert s["truncated"] == 1 and s["truncated_share"] == pytest.approx(1 / 101, abs=1e-4)
    assert length_stats(lengths, model_max=64)["max_length"] == 64  # never above the model's context
    assert length_stats(lengths, model_max=2048, cap=32)["truncated"] == sum(n > 32 for n in lengths)


def test_memory_estimate_from_config_matches_real_parameter_count(tiny_models):
    import torch  # noqa: F401
    from transformers import AutoModelForCausalLM

    cfg = json.loads((tiny_models["lm"] / "config.json").read_text())
    shape = ModelShape.from_config(cfg)
    model = AutoModelForCausalLM.from_pretrained(str(tiny_models["lm"]))
    assert shape.params() == sum(p.numel() for p in model.parameters())


def test_memory_ordering_for_a_7b_model():
    # Llama-2-7B-like config: the estimate needs no weights
    cfg = dict(
        vocab_size=32000,
        hidden_size=4096,
        intermediate_size=11008,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=32,
        max_position_embeddings=4096,
    )
    shape = ModelShape.from_config(cfg)
    assert 6.5e9 < shape.params() < 7e9
    est = {m: memory_estimate(shape, m, batch=1, seq=1024) for m in ("full", "lora", "qlora")}
    gib = 1024**3
    assert est["full"]["total"] > est["lora"]["total"] > est["qlora"]["total"]
    assert 12 < est["lora"]["weights"] / gib < 13.5  # bf16 weights ~12.6 GiB
    assert est["qlora"]["weights"] / gib < 5
    assert est["full"]["optimizer"] == shape.params() * 8  # two fp32 moments
    assert est["lora"]["trainable_params"] < 0.01 * shape.params()


def test_plan_from_rows(tiny_models):
    cfg = resolve("sft", flags={"model": str(tiny_models["lm"])})
    p = make_plan(cfg, rows=1000, lengths=[30, 40, 50] * 10)
    assert p["epochs"] == 10 and p["global_batch"] == 32 and p["grad_accum"] == 8
    assert p["total_steps"] == 320  # ceil(1000/32) * 10
    assert set(p["memory"]) == {"lora", "qlora"}
    cfg = resolve("dpo", flags={"model": str(tiny_models["lm"]), "method": "full", "batch_size": 2})
    p = make_plan(cfg, rows=50, lengths=[10])
    assert p["learning_rate"] == pytest.approx(5e-7) and p["warmup_ratio"] == 0.1
    assert list(p["memory"]) == ["full", "freeze", "lora", "qlora"]


def test_epochs_by_stage_preference_and_pretraining(tiny_models):
    """The article's 15/10/2 table is for SFT; preference stages get 1-3 epochs, pretraining 1-2."""
    for stage in ("dpo", "kto", "rm"):
        assert planned_epochs(24, stage) == 3 and planned_epochs(1_000, stage) == 3
        assert planned_epochs(10_000, stage) == 2
        assert planned_epochs(100_000, stage) == 1 and planned_epochs(10**7, stage) == 1
        eps = [planned_epochs(n, stage) for n in (10, 100, 1_000, 3_000, 10_000, 30_000, 100_000)]
        assert eps == sorted(eps, reverse=True) and all(1 <= e <= 3 for e in eps)
    assert planned_epochs(12, "pt") == 2 and planned_epochs(10_000, "pt") == 1
    assert all(1 <= planned_epochs(n, "pt") <= 2 for n in (10, 1_000, 3_000, 10**6))
    assert planned_epochs(100) == planned_epochs(100, "sft") == 15
    # make_plan uses the stage's table and says why
    for stage, rows, expect, why in (
        ("sft", 100, 15, "article"),
        ("dpo", 100, 3, "preference"),
        ("kto", 100, 3, "preference"),
        ("rm", 100, 3, "reward model"),
        ("pt", 100_000, 1, "pretraining"),
    ):
        p = make_plan(resolve(stage, flags={"model": str(tiny_models["lm"])}), rows=rows, lengths=[10])
        assert p["epochs"] == expect, stage
        assert why in p["source"]["epochs"], p["source"]["epochs"]
    # an explicit --epochs still wins
    p = make_plan(resolve("dpo", flags={"epochs": 5.0}), rows=100)
    assert p["epochs"] == 5.0 and p["source"]["epochs"] == "config"


def test_memory_estimate_keeps_trained_base_weights_fp32():
    shape = ModelShape.from_config(
        dict(vocab_size=32000, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32)
    )
    full = memory_estimate(shape, "full", batch=1, seq=512, gpu=True)
    assert full["weights"] == shape.params() * 4 and full["adapters"] == 0  # full loads fp32 on GPU
    fr = memory_estimate(shape, "freeze", batch=1, seq=512, gpu=True, freeze_layers=2)
    t = fr["trainable_params"]
    assert fr["weights"] == (shape.params() - t) * 2 + t * 4
