"""Each stage learns on the tiny offline model (acceptance: SFT loss goes down, DPO and RM rank their
training pairs above chance)."""

from __future__ import annotations

import json
import math

import pytest

from train.run import prepare, train


def _meta(run_dir):
    return json.loads((run_dir / "run.json").read_text())


def test_sft_drives_loss_down(tiny_models, train_data, quick_cfg, tmp_path):
    from train.evaluate import evaluate_run

    cfg = quick_cfg(
        "sft",
        tiny_models["lm"],
        train_data["sft"],
        tmp_path / "sft",
        max_steps=8,
        learning_rate=1e-2,
        method="full",
    )
    run_dir = train(prepare(cfg))
    meta = _meta(run_dir)
    assert meta["status"] == "done" and meta["global_step"] == 8
    assert meta["last_loss"] < meta["first_loss"] - 1.0, (meta["first_loss"], meta["last_loss"])
    # run records its data and settings
    assert meta["data"][0]["sha256"] and meta["data_fingerprint"]
    assert meta["plan"]["learning_rate"] == 1e-2 and meta["check"]["ok"]
    assert (run_dir / "config.yaml").is_file() and (run_dir / "loss.png").stat().st_size > 1000
    assert list((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    assert (run_dir / "metrics.jsonl").read_text().count("\n") >= 8
    res = evaluate_run(run_dir, [str(train_data["sft"])], limit=24)
    assert res["tuned"]["loss"] < res["base"]["loss"] - 1.0
    assert math.isclose(res["tuned"]["ppl"], math.exp(res["tuned"]["loss"]), rel_tol=1e-3)


def test_dpo_raises_reward_accuracy(tiny_models, train_data, quick_cfg, tmp_path):
    from train.evaluate import evaluate_run

    cfg = quick_cfg(
        "dpo", tiny_models["lm"], train_data["pref"], tmp_path / "dpo", max_steps=6, learning_rate=1e-2
    )
    run_dir = train(prepare(cfg))
    res = evaluate_run(run_dir, [str(train_data["pref"])], limit=24)
    # implicit reward (log-ratio to the adapter-disabled reference) ranks chosen above rejected
    assert res["preference_accuracy"] > 0.75
    logs = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    acc = [r["rewards/accuracies"] for r in logs if "rewards/accuracies" in r]
    assert acc[-1] > 0.5


@pytest.mark.parametrize(
    "loss,sft_weight,expect",
    [("ipo", 0.0, ["ipo"]), ("simpo", 0.0, ["sigmoid_norm"]), ("sigmoid", 0.5, ["sigmoid", "sft"])],
)
def test_dpo_loss_variants(tiny_models, train_data, quick_cfg, tmp_path, loss, sft_weight, expect):
    cfg = quick_cfg(
        "dpo",
        tiny_models["lm"],
        train_data["pref"],
        tmp_path / loss,
        max_steps=1,
        loss=loss,
        sft_weight=sft_weight,
    )
    ctx = prepare(cfg)
    train(ctx)
    trainer = ctx.extra["trainer"]
    assert list(trainer.loss_types) == expect
    assert trainer.ref_model is None  # LoRA: the reference is the adapter-disabled model
    if sft_weight:
        assert list(trainer.loss_weights) == [1.0, 0.5]


def test_reward_model_learns_the_pairs(tiny_models, train_data, quick_cfg, tmp_path):
    import torch
    from transformers import AutoModelForSequenceClassification

    from train import data as D
    from train.evaluate import _scores, evaluate_run

    cfg = quick_cfg(
        "rm", tiny_models["reward"], train_data["pref"], tmp_path / "rm", max_steps=6, learning_rate=1e-2
    )
    run_dir = train(prepare(cfg))
    res = evaluate_run(run_dir, [str(train_data["pref"])], limit=24)
    tok = D.load_tokenizer(str(tiny_models["reward"]))
    base = AutoModelForSequenceClassification.from_pretrained(str(tiny_models["reward"]), num_labels=1)
    rows = D.prepare([str(train_data["pref"])], "rm").rows
    with torch.no_grad():
        ch = _scores(base, tok, [r["prompt"] + r["chosen"] for r in rows], 512, 8)
        rj = _scores(base, tok, [r["prompt"] + r["rejected"] for r in rows], 512, 8)
    base_margin = sum(c - r for c, r in zip(ch, rj, strict=False)) / len(rows)
    assert res["pairwise_accuracy"] > 0.75
    assert res["mean_margin"] > base_margin + 0.05


def test_kto_and_pt_train(tiny_models, train_data, quick_cfg, tmp_path):
    cfg = quick_cfg("kto", tiny_models["lm"], train_data["kto"], tmp_path / "kto", max_steps=2)
    run_dir = train(prepare(cfg))
    assert _meta(run_dir)["status"] == "done"
    cfg = quick_cfg("pt", tiny_models["lm"], train_data["text"], tmp_path / "pt", max_steps=2, max_length=64)
    ctx = prepare(cfg)
    run_dir = train(ctx)
    meta = _meta(run_dir)
    assert meta["status"] == "done" and math.isfinite(meta["last_loss"])
    trainer = ctx.extra["trainer"]
    batch = next(iter(trainer.get_train_dataloader()))
    # packed: one padding-free row per batch with per-document positions (restarting at 0)
    assert batch["input_ids"].shape[0] == 1 and "position_ids" in batch
    assert (batch["position_ids"][0] == 0).sum() > 1


def test_sft_padding_free_without_packing_trains(tiny_models, train_data, quick_cfg, tmp_path):
    """--padding-free (no packing) flattens each batch into one unpadded row with per-row positions and
    computes the same loss as the padded batch (rows attend only to themselves)."""
    kw = dict(max_steps=2, learning_rate=1e-2)
    padded = _meta(
        train(prepare(quick_cfg("sft", tiny_models["lm"], train_data["sft"], tmp_path / "pad", **kw)))
    )
    cfg = quick_cfg("sft", tiny_models["lm"], train_data["sft"], tmp_path / "pf", padding_free=True, **kw)
    ctx = prepare(cfg)
    run_dir = train(ctx)
    meta = _meta(run_dir)
    assert meta["status"] == "done" and meta["global_step"] == 2
    trainer = ctx.extra["trainer"]
    assert trainer.args.padding_free and not trainer.args.packing
    batch = next(iter(trainer.get_train_dataloader()))
    assert batch["input_ids"].shape[0] == 1 and "position_ids" in batch
    assert (batch["position_ids"][0] == 0).sum() == 4  # the 4 rows of the micro-batch, not packed
    assert batch["input_ids"].shape[1] <= 4 * ctx.plan["max_length"]
    assert meta["first_loss"] == pytest.approx(padded["first_loss"], abs=1e-4)
