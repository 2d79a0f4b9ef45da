"""The fast paths of `train sft`/`train dpo` train the same rows on the same labels to the same loss."""

from __future__ import annotations

import json

import pytest

from train import data as D
from train.batching import WindowGroupedSampler


def _seedable_order(n: int, seed: int, epoch: int = 0) -> list[int]:
    """The order accelerate's SeedableRandomSampler gives HF Trainer's default random sampler."""
    from accelerate.data_loader import SeedableRandomSampler

    s = SeedableRandomSampler(range(n), data_seed=seed)
    s.set_epoch(epoch)
    return list(iter(s))


@pytest.mark.parametrize("n,limit", [(100, None), (1000, 240), (37, 20)])
def test_grouped_sampler_trains_the_rows_of_the_random_order(n, limit):
    import random

    rng = random.Random(n)
    lengths = [rng.randint(5, 500) for _ in range(n)]
    s = WindowGroupedSampler(lengths, micro_batch=4, rows_per_step=4, seed=42, limit=limit, window_steps=4)
    for epoch in range(2):
        s.set_epoch(epoch)
        grouped, plain = s.order(), _seedable_order(n, 42, epoch)
        assert sorted(grouped) == list(range(n))  # every row once per epoch
        # every window (and the rows a max_steps-truncated run reaches) holds the random order's rows
        for a, b in zip(s._boundaries(n), s._boundaries(n)[1:], strict=False):
            assert sorted(grouped[a:b]) == sorted(plain[a:b])
        if limit and epoch == 0:
            assert sorted(grouped[:limit]) == sorted(plain[:limit])
    # less padding: micro-batches of rows of similar length
    pad = lambda order: sum(max(lengths[i] for i in order[k : k + 4]) * 4 for k in range(0, n, 4))  # noqa: E731
    s.set_epoch(0)
    assert pad(s.order()) < pad(_seedable_order(n, 42))


def test_budget_truncation_is_llamafactorys_cutoff_with_the_prompt_end_kept():
    # LLaMA-Factory 0.9.5 infer_seqlen(400, 300, 512) -> (293, 219); (100, 900, 512) -> (100, 412)
    assert D.budget_lengths(400, 300, 512) == (293, 219)
    assert D.budget_lengths(100, 900, 512) == (100, 412)
    assert D.budget_lengths(900, 100, 512) == (412, 100)
    assert D.budget_lengths(10, 20, 512) == (10, 20)
    enc = {"prompt_ids": list(range(400)), "chosen_ids": [1] * 50, "rejected_ids": [2] * 300}
    cut = D.truncate_pair(enc, 512, "budget")
    assert cut["prompt_ids"] == list(range(107, 400))  # the end of the prompt (question, header) stays
    assert (len(cut["chosen_ids"]), len(cut["rejected_ids"])) == (50, 219)
    keep = D.truncate_pair(enc, 512, "keep_start")  # TRL: per sequence, the first 512 tokens
    assert len(keep["prompt_ids"]) == 400 and (len(keep["chosen_ids"]), len(keep["rejected_ids"])) == (
        50,
        112,
    )
    assert D.truncate_pair(enc, 1000, "budget") == enc


def _long_prompt_pairs(tmp_path):
    rows = [
        {"prompt": f"restart pod {i}?", "chosen": f"kubectl delete pod p{i}", "rejected": "no"}
        for i in range(4)
    ]
    long = " ".join(f"word{i}" for i in range(120))
    rows += [{"prompt": long + f" question {i}?", "chosen": "short", "rejected": "no idea"} for i in range(3)]
    p = tmp_path / "lp.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return p


def test_dpo_budget_truncation_keeps_every_pair(tiny_models, quick_cfg, tmp_path):
    from train.run import build_datasets, prepare

    data = _long_prompt_pairs(tmp_path)
    ctx = prepare(
        quick_cfg("dpo", tiny_models["lm"], data, tmp_path / "o", max_length=64, truncation="budget")
    )
    assert not ctx.prep.dropped and len(ctx.tokenized.rows) == 7
    ds, _ = build_datasets(ctx)
    assert len(ds) == 7 and ds["pair_index"] == list(range(7))
    tok = ctx.tokenizer
    for row in ds:
        assert len(row["prompt_ids"]) + max(len(row["chosen_ids"]), len(row["rejected_ids"])) <= 64
        # the assistant header the answer follows is kept
        assert tok.decode(row["prompt_ids"]).endswith("<|im_start|>assistant\n")
    # the ids are the tokenization the check measured (no second pass): untruncated rows are identical
    enc = D.encode_pair(tok, ctx.tokenized.rows[0])
    assert {k: ds[0][k] for k in enc} == enc


def _trainer(stage, tiny_models, data, tmp_path, **kw):
    """A stage's trainer on the tiny model and its first training batch."""
    import importlib

    from train.config import resolve
    from train.methods import load_model
    from train.run import build_datasets, prepare

    flags = {"model": str(tiny_models["lm"]), "data": [str(data)], "output": str(tmp_path / stage)}
    flags.update(max_steps=2, batch_size=4, global_batch=4, lora_dropout=0.0, **kw)
    ctx = prepare(resolve(stage, flags=flags))
    train_ds, _ = build_datasets(ctx)
    model, _ = load_model(ctx.cfg, stage, ctx.device)
    mod = importlib.import_module(f"train.{stage}")
    trainer = mod.build_trainer(
        ctx.cfg, ctx.plan, model, ctx.tokenizer, train_ds, None, tmp_path / "r", ctx.device
    )
    return trainer, next(iter(trainer.get_train_dataloader()))


@pytest.mark.parametrize("loss,sft_weight", [("sigmoid", 0.0), ("simpo", 0.5)])
def test_dpo_fast_loss_equals_trls_and_caches_the_reference(
    tiny_models, train_data, tmp_path, loss, sft_weight
):
    import torch

    trainer, batch = _trainer(
        "dpo", tiny_models, train_data["pref"], tmp_path, loss=loss, sft_weight=sft_weight
    )
    model = trainer.model
    with torch.no_grad():  # a trained adapter, so policy and reference differ
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05, generator=torch.Generator().manual_seed(len(name)))
    model.train()
    assert "pair_index" in batch
    trainer.fast = False
    slow = trainer.compute_loss(model, dict(batch))
    slow_metrics = {k: v[-1] for k, v in trainer._metrics["train"].items()}
    trainer.fast = True
    fast = trainer.compute_loss(model, dict(batch))
    fast_metrics = {k: v[-1] for k, v in trainer._metrics["train"].items()}
    assert abs(float(fast) - float(slow)) < 1e-5 * max(1.0, abs(float(slow)))
    # the prompt is run once per pair (packed prompt|chosen|rejected rows), with each sequence's log-probs
    from train import selective

    parts = selective.parts(model, trainer.accelerator)
    shared, rows = selective.shared_prompt_logps(parts, batch, model.config._attn_implementation)
    alone, alone_rows = selective.target_logps(parts, batch, batch["completion_mask"])
    cached, cached_rows = selective.cached_prompt_logps(parts, batch)  # prompt as a KV cache (default)
    for r in range(batch["input_ids"].size(0)):  # token by token, per sequence
        assert torch.allclose(shared[rows == r], alone[alone_rows == r], atol=1e-4), r
        assert torch.allclose(cached[cached_rows == r], alone[alone_rows == r], atol=1e-4), r
    trainer.share_prompt = False
    assert abs(float(trainer.compute_loss(model, dict(batch))) - float(fast)) < 1e-5
    trainer.share_prompt = True
    for k in ("rewards/chosen", "rewards/rejected", "rewards/margins", "logps/chosen", "logps/rejected"):
        assert fast_metrics[k] == pytest.approx(slow_metrics[k], rel=1e-4, abs=1e-5), k
    assert "entropy" not in trainer._metrics["train"] or len(trainer._metrics["train"]["entropy"]) == 1
    # the reference of these pairs is cached: the next step runs no reference forward and gives the same loss
    assert len(trainer._ref_cache["train"]) == len(batch["pair_index"])
    calls = []
    trainer._reference = lambda: calls.append(1)  # would be called for a reference forward
    again = trainer.compute_loss(model, dict(batch))
    assert not calls and abs(float(again) - float(fast)) < 1e-6
    # gradients agree too
    model.zero_grad()
    trainer.fast = False
    trainer.compute_loss(model, dict(batch)).backward()
    g_slow = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    trainer.fast = True
    trainer.compute_loss(model, dict(batch)).backward()
    for n, p in model.named_parameters():
        if n in g_slow:
            assert torch.allclose(p.grad, g_slow[n], rtol=1e-3, atol=1e-6), n


def test_sft_selective_loss_equals_the_models_loss(tiny_models, train_data, tmp_path):
    import torch
    from transformers import Trainer

    trainer, batch = _trainer("sft", tiny_models, train_data["sft"], tmp_path)
    from train import selective

    model = trainer.model.train()
    assert selective.parts(model, trainer.accelerator) is not None  # the selective path is the one tested
    labels = batch["labels"]
    n_items = (labels[:, 1:] != -100).sum()
    for n in (None, n_items):
        ref = Trainer.compute_loss(trainer, model, dict(batch), num_items_in_batch=n)
        fast = trainer.compute_loss(model, dict(batch), num_items_in_batch=n)
        assert abs(float(fast) - float(ref)) < 1e-5, (float(fast), float(ref))
    model.zero_grad()
    Trainer.compute_loss(trainer, model, dict(batch), num_items_in_batch=n_items).backward()
    g = {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    trainer.compute_loss(model, dict(batch), num_items_in_batch=n_items).backward()
    for k, p in model.named_parameters():
        if k in g:
            assert torch.allclose(p.grad, g[k], rtol=1e-4, atol=1e-7), k


def test_grouped_runs_train_the_same_rows_to_the_same_loss(tiny_models, train_data, quick_cfg, tmp_path):
    """A run cut by max_steps mid-epoch, with and without the fast settings: the same rows (so the same
    tokens) and the loss within noise."""
    from train.run import prepare, train

    seen = {}
    for fast in (False, True):
        cfg = quick_cfg(
            "sft",
            tiny_models["lm"],
            train_data["sft"],
            tmp_path / f"g{fast}",
            max_steps=3,
            learning_rate=1e-3,
            group_by_length=fast,
            fast_loss=fast,
            lora_dropout=0.0,
        )
        ctx = prepare(cfg)
        train(ctx)
        t = ctx.extra["trainer"]
        losses = [h["loss"] for h in t.state.log_history if "loss" in h]
        seen[fast] = (
            (t._total_train_tokens, sum(losses) / len(losses)) if fast else (None, sum(losses) / len(losses))
        )
        if fast:
            assert isinstance(t._get_train_sampler(), WindowGroupedSampler)
    # the same 12 rows: the tokens trained are those of the plain run's rows
    plain = _seedable_order(len(t.train_dataset), 42)[:12]
    assert seen[True][0] == sum(len(x) for x in t.train_dataset.select(plain)["input_ids"])
    assert seen[True][1] == pytest.approx(seen[False][1], rel=0.02)
