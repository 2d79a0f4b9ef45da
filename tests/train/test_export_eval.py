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


@pytest.mark.parametrize("method", ["prompt", "ptuning", "prefix"])
def test_eval_prompt_learning_methods(method, tiny_models, train_data, quick_cfg, tmp_path):
    """Prompt tuning and P-tuning prepend virtual-token logits; eval drops them and computes the same
    loss as the PEFT model's own labelled forward pass."""
    import math

    import torch

    from train import data as D
    from train.evaluate import evaluate_run, sequence_logprobs
    from train.export import load_trained

    run = train(
        prepare(
            quick_cfg(
                "sft",
                tiny_models["lm"],
                train_data["sft"],
                tmp_path / method,
                max_steps=1,
                method=method,
                learning_rate=1e-1,
            )
        )
    )
    res = evaluate_run(run, [str(train_data["sft"])], limit=6)
    assert res["rows"] == 6 and res["tuned"]["tokens"] == res["base"]["tokens"] > 0
    assert math.isfinite(res["tuned"]["loss"]) and math.isfinite(res["base"]["loss"])
    assert res["tuned"]["loss"] != res["base"]["loss"]  # the virtual tokens are really applied
    # the per-token log-probs are those of the model's own loss (labels aligned with the real tokens)
    meta = json.loads((run / "run.json").read_text())
    model = load_trained(run, meta, merged=False).eval()
    tok = D.load_tokenizer(str(tiny_models["lm"]))
    rec = D.prepare([str(train_data["sft"])], "sft").rows[0]
    row = D.tokenize_sft(tok, rec, "completion")
    ((lp, n),) = sequence_logprobs(model, [row], tok.pad_token_id)
    with torch.no_grad():
        own = model(input_ids=torch.tensor([row["input_ids"]]), labels=torch.tensor([row["labels"]])).loss
    assert -lp / n == pytest.approx(own.item(), abs=1e-4)


def test_eval_loads_base_and_tuned_in_the_same_dtype(
    tiny_models, train_data, quick_cfg, tmp_path, monkeypatch
):
    """A bf16 base checkpoint with a full fine-tune: the base is loaded in fp32 like the tuned model."""
    import shutil

    import torch
    from transformers import AutoModelForCausalLM

    import train.evaluate as E

    bf16_base = tmp_path / "bf16-base"
    shutil.copytree(tiny_models["lm"], bf16_base)
    AutoModelForCausalLM.from_pretrained(str(tiny_models["lm"])).to(torch.bfloat16).save_pretrained(
        str(bf16_base), safe_serialization=True
    )
    assert json.loads((bf16_base / "config.json").read_text())["dtype"] == "bfloat16"
    run = train(
        prepare(quick_cfg("sft", bf16_base, train_data["sft"], tmp_path / "full", max_steps=1, method="full"))
    )
    dtypes = []
    real = E.sequence_logprobs

    def spy(model, *args, **kwargs):
        dtypes.append(next(model.parameters()).dtype)
        return real(model, *args, **kwargs)

    monkeypatch.setattr(E, "sequence_logprobs", spy)
    res = E.evaluate_run(run, [str(train_data["sft"])], limit=4)
    assert res["tuned"]["tokens"] == res["base"]["tokens"] > 0
    assert dtypes == [torch.float32, torch.float32], dtypes


# ------------------------------------------------------------------ review fixes


def test_adapter_reward_model_without_pad_token_evaluates_and_exports(
    tiny_models, train_data, quick_cfg, tmp_path, monkeypatch
):
    """A base whose config has no pad_token_id: eval scores batches of pairs and export writes a pad id;
    the adapter records the base by absolute path even when trained with a relative --model."""
    import shutil

    from transformers import AutoConfig

    from train.evaluate import evaluate_run
    from train.export import export_run

    base = tmp_path / "rmnopad"
    shutil.copytree(tiny_models["reward"], base)
    conf = json.loads((base / "config.json").read_text())
    conf.pop("pad_token_id", None)
    (base / "config.json").write_text(json.dumps(conf))
    monkeypatch.chdir(tmp_path)
    run = train(
        prepare(
            quick_cfg("rm", "rmnopad", train_data["pref"], tmp_path / "rm", max_steps=1, learning_rate=1e-2)
        )
    )
    adapter = json.loads((run / "final" / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == str(base.resolve())
    monkeypatch.chdir(tiny_models["reward"].parent)  # elsewhere: the base is still found
    res = evaluate_run(run, [str(train_data["pref"])], limit=8, batch_size=4)
    assert res["rows"] == 8 and 0.0 <= res["pairwise_accuracy"] <= 1.0
    info = export_run(run, tmp_path / "rm-export", dtype="fp32")
    assert AutoConfig.from_pretrained(info["output"]).pad_token_id is not None


@pytest.fixture(scope="module")
def base_lm(tiny_models, tmp_path_factory):
    """A base model: eos <|endoftext|>, no chat template (trained with --template chatml)."""
    import shutil

    from transformers import AutoTokenizer

    out = tmp_path_factory.mktemp("base_lm") / "base"
    shutil.copytree(tiny_models["lm"], out)
    tok = AutoTokenizer.from_pretrained(str(out))
    tok.eos_token = "<|endoftext|>"
    tok.chat_template = None
    tok.save_pretrained(str(out))
    (out / "chat_template.jinja").unlink(missing_ok=True)
    eos = tok.convert_tokens_to_ids("<|endoftext|>")
    for name in ("config.json", "generation_config.json"):
        p = out / name
        if p.is_file():
            conf = json.loads(p.read_text())
            conf["eos_token_id"] = eos
            p.write_text(json.dumps(conf))
    return out


def test_template_end_of_turn_stops_generation_after_export(base_lm, train_data, quick_cfg, tmp_path):
    from transformers import AutoTokenizer, GenerationConfig

    from train import data as D
    from train.evaluate import _generate
    from train.export import export_run

    run = train(
        prepare(
            quick_cfg("sft", base_lm, train_data["sft"], tmp_path / "run", max_steps=1, template="chatml")
        )
    )
    info = export_run(run, tmp_path / "export", dtype="fp32")
    tok = AutoTokenizer.from_pretrained(info["output"])
    im_end, eot = tok.convert_tokens_to_ids("<|im_end|>"), tok.convert_tokens_to_ids("<|endoftext|>")
    assert tok.eos_token == "<|endoftext|>"
    eos = GenerationConfig.from_pretrained(info["output"]).eos_token_id
    assert isinstance(eos, list) and im_end in eos and eot in eos

    seen = {}

    class Fake:
        def generate(self, input_ids, **kw):
            seen.update(kw)
            return input_ids

    _generate(Fake(), tok, [[{"role": "user", "content": "hi"}]], 4, 2)
    assert set(seen["eos_token_id"]) == set(D.template_stop_ids(tok)) >= {im_end, eot}


def test_eval_on_kto_rows(tiny_models, train_data, quick_cfg, tmp_path):
    from train.evaluate import evaluate_run

    run = train(
        prepare(quick_cfg("kto", tiny_models["lm"], train_data["kto"], tmp_path / "kto", max_steps=1))
    )
    res = evaluate_run(run, [str(train_data["kto"])], limit=24)
    assert res["rows"] == 12 and res["undesirable_rows"] == 12  # good answers, and the bad ones apart
    assert res["tuned"]["tokens"] == res["base"]["tokens"] > 0
    assert res["undesirable"]["tuned"]["tokens"] > 0


def test_export_and_eval_pass_trust_remote_code(lora_run, train_data, tmp_path, monkeypatch):
    import shutil

    from transformers import AutoModelForCausalLM, AutoTokenizer

    from train.evaluate import evaluate_run
    from train.export import export_run

    run = tmp_path / "run"
    shutil.copytree(lora_run, run)
    conf = run / "config.yaml"
    conf.write_text(conf.read_text().replace("trust_remote_code: false", "trust_remote_code: true"))
    seen = []
    for cls in (AutoModelForCausalLM, AutoTokenizer):
        real = cls.from_pretrained.__func__

        def spy(klass, *a, _real=real, **kw):
            seen.append(kw.get("trust_remote_code"))
            return _real(klass, *a, **kw)

        monkeypatch.setattr(cls, "from_pretrained", classmethod(spy))
    export_run(run, tmp_path / "exp", dtype="fp32")
    evaluate_run(run, [str(train_data["sft"])], limit=2)
    assert seen and all(v is True for v in seen), seen


def test_reward_model_is_checked_before_generating(lora_run, train_data, monkeypatch):
    import train.evaluate as E

    monkeypatch.setattr(
        E, "_generate", lambda *a, **k: pytest.fail("generated before checking the reward model")
    )
    with pytest.raises(E.EvalError, match="not a directory"):
        E.evaluate_run(lora_run, [str(train_data["sft"])], reward_model="/nonexistent/rm", limit=2)


def test_export_never_replaces_a_directory_it_did_not_write(lora_run, tmp_path):
    from train.export import ExportError, export_run

    mine = tmp_path / "mydata"
    mine.mkdir()
    (mine / "keep.jsonl").write_text("{}\n")
    with pytest.raises(ExportError, match="not an earlier tamis export"):
        export_run(lora_run, mine, merge=False)
    assert (mine / "keep.jsonl").is_file()
    for bad in (lora_run, lora_run.parent, lora_run / "final"):
        with pytest.raises(ExportError, match="run"):
            export_run(lora_run, bad, merge=False)
    assert (lora_run / "run.json").is_file() and (lora_run / "final").is_dir()
    # an earlier export is replaced, as documented
    out = tmp_path / "exp"
    export_run(lora_run, out, merge=False)
    export_run(lora_run, out, merge=False)
    assert (out / "export.json").is_file()
