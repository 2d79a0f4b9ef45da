"""Every --method trains a step and saves something that reloads to the same model."""

from __future__ import annotations

import json

import pytest

from train.config import METHODS
from train.run import prepare, train


def _logits(model, ids):
    import torch

    model.eval()
    with torch.no_grad():
        return model(input_ids=ids).logits.float()


@pytest.mark.parametrize("method", [m for m in METHODS if m != "bitfit"])
def test_method_trains_saves_and_reloads(method, tiny_models, train_data, quick_cfg, tmp_path):
    import torch

    from train.export import load_trained

    cfg = quick_cfg(
        "sft",
        tiny_models["lm"],
        train_data["sft"],
        tmp_path / method,
        max_steps=1,
        learning_rate=1e-2,
        method=method,
    )
    ctx = prepare(cfg)
    run_dir = train(ctx)
    meta = json.loads((run_dir / "run.json").read_text())
    info = meta["method_info"]
    assert meta["status"] == "done" and meta["global_step"] == 1
    assert 0 < info["trainable_params"] <= info["total_params"]
    if method != "full":
        assert info["trainable_params"] < info["total_params"]
    trained = ctx.extra["trainer"].model
    if method == "qlora":  # the base really is 4-bit NF4
        assert "Linear4bit" in {type(m).__name__ for m in trained.modules()}
    ids = torch.tensor([[5, 17, 42, 99, 7, 3, 250, 11]])
    before = _logits(trained, ids)
    reloaded = load_trained(run_dir, meta, merged=False)
    after = _logits(reloaded, ids)
    # PiSSA is saved converted to a plain LoRA of the original base: same function, other rounding
    assert torch.allclose(before, after, atol=1e-4), (before - after).abs().max()
    final = run_dir / "final"
    is_adapter = (final / "adapter_config.json").is_file()
    assert is_adapter == (method not in ("full", "freeze"))
    assert list(final.glob("*.safetensors")) and not list(final.glob("*.bin"))


def test_freeze_trains_only_the_last_layers(tiny_models, train_data, quick_cfg, tmp_path):
    cfg = quick_cfg(
        "sft",
        tiny_models["lm"],
        train_data["sft"],
        tmp_path / "f",
        max_steps=1,
        freeze_layers=1,
        method="freeze",
    )
    ctx = prepare(cfg)
    train(ctx)
    model = ctx.extra["trainer"].model
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(".layers.1." in n for n in trainable)


def test_bitfit_trains_biases_and_refuses_models_without(
    bias_lm, tiny_models, train_data, quick_cfg, tmp_path
):
    from train.methods import MethodError

    cfg = quick_cfg(
        "sft", bias_lm, train_data["sft"], tmp_path / "b", max_steps=1, method="bitfit", learning_rate=1e-2
    )
    ctx = prepare(cfg)
    train(ctx)
    model = ctx.extra["trainer"].model
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all(n.endswith(".bias") for n in trainable)
    cfg = quick_cfg(
        "sft", tiny_models["lm"], train_data["sft"], tmp_path / "nb", max_steps=1, method="bitfit"
    )
    with pytest.raises(MethodError, match="has none"):
        train(prepare(cfg))


@pytest.mark.parametrize("method", ["full", "freeze", "bitfit", "lora"])
def test_trainable_params_are_fp32_under_bf16(method, bias_lm, train_data, quick_cfg, tmp_path):
    """On a bf16 GPU the base loads in bf16; whatever trains must still be fp32 (master weights), and
    the frozen rest stays 16-bit. A CPU Device flagged bf16 takes the same loading path."""
    import torch

    from train.methods import Device, load_model

    cfg = quick_cfg("sft", bias_lm, train_data["sft"], tmp_path / "x", method=method, freeze_layers=1)
    model, info = load_model(cfg, "sft", Device("cpu", True))
    params = dict(model.named_parameters())
    trainable = {n: p.dtype for n, p in params.items() if p.requires_grad}
    frozen = {n: p.dtype for n, p in params.items() if not p.requires_grad}
    assert trainable and set(trainable.values()) == {torch.float32}, trainable
    if method == "full":
        assert not frozen and info["dtype"] == "float32"
    else:
        assert frozen and set(frozen.values()) == {torch.bfloat16}
        assert info["dtype"] == "bfloat16"


def test_freeze_trains_in_bf16_mixed_precision(tiny_models, train_data, quick_cfg, tmp_path):
    """A bf16 run (CPU autocast here, as on a bf16 GPU) with freeze: the trained layers move and stay fp32."""
    import torch

    from train.methods import Device

    cfg = quick_cfg(
        "sft",
        tiny_models["lm"],
        train_data["sft"],
        tmp_path / "fb",
        max_steps=2,
        freeze_layers=1,
        method="freeze",
        learning_rate=1e-3,
    )
    ctx = prepare(cfg, device=Device("cpu", True))
    run_dir = train(ctx)
    trainer = ctx.extra["trainer"]
    assert trainer.args.bf16
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["status"] == "done" and meta["method_info"]["trainable_dtype"] == "float32"
    trained = {n: p for n, p in trainer.model.named_parameters() if p.requires_grad}
    assert trained and all(p.dtype == torch.float32 for p in trained.values())
    # a 1e-3 step on fp32 masters changes the weights (a bf16 weight would often round it away)
    from transformers import AutoModelForCausalLM

    base = dict(AutoModelForCausalLM.from_pretrained(str(tiny_models["lm"])).named_parameters())
    assert any(not torch.equal(p.detach().float(), base[n].detach().float()) for n, p in trained.items())


def test_qlora_device_map_follows_local_rank(monkeypatch):
    from train.methods import Device, quantized_device_map

    monkeypatch.delenv("LOCAL_RANK", raising=False)
    assert quantized_device_map(Device("cuda", True)) == {"": 0}
    monkeypatch.setenv("LOCAL_RANK", "3")
    assert quantized_device_map(Device("cuda", True)) == {"": 3}
    assert quantized_device_map(Device("cpu", False)) == {"": "cpu"}
