"""Export (merge equals adapter inference; tokenizer, template and Modelfile ship) and evaluation."""

from __future__ import annotations

import json

import pytest

from train.run import prepare, train


@pytest.fixture(scope="module")
def lora_run(tiny_models, train_data, quick_cfg, tmp_path_factory):
    out = tmp_path_factory.mktemp("exp") / "run"
    return train(
        prepare(quick_cfg("sft", tiny_models["lm"], train_data["sft"], out, max_steps=3, learning_rate=1e-2))
    )


@pytest.mark.parametrize("method", ["lora", "qlora"])
def test_merge_gives_adapter_logits(method, tiny_models, train_data, quick_cfg, tmp_path, lora_run):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from train.export import export_run, load_trained

    run_dir = lora_run
    if method == "qlora":
        run_dir = train(
            prepare(
                quick_cfg(
                    "sft",
                    tiny_models["lm"],
                    train_data["sft"],
                    tmp_path / "q",
                    max_steps=2,
                    method="qlora",
                    learning_rate=1e-2,
                )
            )
        )
    info = export_run(run_dir, tmp_path / f"export-{method}", merge=True, dtype="fp32")
    assert info["kind"] == "merged" and "model.safetensors" in info["files"] and "Modelfile" in info["files"]
    meta = json.loads((run_dir / "run.json").read_text())
    ids = torch.tensor([[5, 17, 42, 99, 7, 3, 250, 11], [9, 8, 7, 6, 5, 4, 3, 2]])
    with torch.no_grad():
        adapter = load_trained(run_dir, meta, merged=False).eval()(input_ids=ids).logits
        merged = AutoModelForCausalLM.from_pretrained(info["output"]).eval()(input_ids=ids).logits
        base = AutoModelForCausalLM.from_pretrained(str(tiny_models["lm"])).eval()(input_ids=ids).logits
    assert torch.allclose(adapter, merged, atol=1e-4), (adapter - merged).abs().max()
    assert not torch.allclose(base, merged, atol=1e-4)  # the adapter did change the model
    tok = AutoTokenizer.from_pretrained(info["output"])
    assert tok.chat_template and "<|im_start|>" in tok.chat_template
    modelfile = (tmp_path / f"export-{method}" / "Modelfile").read_text()
    assert (
        modelfile.startswith("FROM .")
        and 'PARAMETER stop "<|im_end|>"' in modelfile
        and "TEMPLATE" in modelfile
    )
    exp = json.loads((tmp_path / f"export-{method}" / "export.json").read_text())
    assert exp["data"][0]["sha256"] == meta["data"][0]["sha256"]


def test_export_bf16_and_unmergeable(lora_run, tiny_models, train_data, quick_cfg, tmp_path):
    from safetensors import safe_open

    from train.export import export_run

    info = export_run(lora_run, tmp_path / "bf16")
    with safe_open(str(tmp_path / "bf16" / "model.safetensors"), "pt") as f:
        k = next(iter(f.keys()))
        assert str(f.get_tensor(k).dtype) == "torch.bfloat16"
    assert info["dtype"] == "bf16"
    run = train(
        prepare(
            quick_cfg(
                "sft", tiny_models["lm"], train_data["sft"], tmp_path / "p", max_steps=1, method="prompt"
            )
        )
    )
    info = export_run(run, tmp_path / "prompt-export")
    assert info["kind"] == "adapter" and "adapter_config.json" in info["files"]
    assert "ADAPTER ." in (tmp_path / "prompt-export" / "Modelfile").read_text()


def test_eval_with_reward_model_win_rate(lora_run, tiny_models, train_data):
    from train.evaluate import evaluate_run

    res = evaluate_run(
        lora_run, [str(train_data["sft"])], reward_model=str(tiny_models["reward"]), limit=6, max_new_tokens=6
    )
    assert res["rows"] == 6 and res["tuned"]["tokens"] == res["base"]["tokens"] > 0
    r = res["reward"]
    assert 0.0 <= r["win_rate"] <= 1.0 and len(r["examples"]) == 3
    # wins are counted from the rewards: all-equal rewards give exactly 0.5
    if r["tuned_mean_reward"] == r["base_mean_reward"]:
        assert r["win_rate"] == 0.5
