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
