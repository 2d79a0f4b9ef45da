"""Where TRL 1.x's SFT step time goes on CPU: the loss path, isolated.

One process, one LoRA model (the bench_train.py tiny Llama), one fixed batch of 4 real rows from the
bench data. Each iteration runs forward + backward with, in turn:
  plain        the model's own cross-entropy on the labels (tamis --fast-loss)
  fused        TRL's fused LM head with only log-probs (chunked projection, custom backward)
  fused+stats  TRL's default: fused LM head computing log-probs, entropy and top-1 accuracy
The three are interleaved for --iters rounds (so load changes on a shared machine hit all of them) and
the median time per step is reported, with the loss of each path (identical up to float rounding).

Usage: python bench/bench_train_loss.py [--work /tmp/bt] [--iters 30]
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", default="/tmp/tamis-bench-train")
    ap.add_argument("--iters", type=int, default=30)
    a = ap.parse_args()
    import bench_train as B
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM
    from trl.trainer.utils import add_fused_lm_head

    from curate.io import read_frame
    from train import data as D

    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    assets = B.build_assets(work)
    tok = D.load_tokenizer(str(assets["model"]))
    frame = read_frame(assets["data"])
    rows = []
    for r in frame.head(4).iter_rows(named=True):
        rec = {
            "prompt": [{"role": "user", "content": r["question"]}],
            "completion": [{"role": "assistant", "content": r["answer"]}],
        }
        rows.append(D.tokenize_sft(tok, rec, "completion"))
    n = max(len(r["input_ids"]) for r in rows)
    ids = torch.full((4, n), tok.pad_token_id)
    lab = torch.full((4, n), -100)
    att = torch.zeros((4, n), dtype=torch.long)
    for i, r in enumerate(rows):
        k = len(r["input_ids"])
        ids[i, :k], lab[i, :k], att[i, :k] = torch.tensor(r["input_ids"]), torch.tensor(r["labels"]), 1
    lora = LoraConfig(
        r=8, lora_alpha=16, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM"
    )

    def make(outputs):
        torch.manual_seed(0)
        m = AutoModelForCausalLM.from_pretrained(str(assets["model"]))
        if outputs:
            add_fused_lm_head(m, outputs=outputs)
        return get_peft_model(m, copy.deepcopy(lora)).train()

    models = {
        "plain": make(None),
        "fused": make(("log_probs",)),
        "fused+stats": make(("log_probs", "entropy", "is_top1")),
    }

    def step(name):
        m = models[name]
        t = time.perf_counter()
        if name == "plain":
            loss = m(input_ids=ids, attention_mask=att, labels=lab, use_cache=False).loss
        else:
            out = m(input_ids=ids, attention_mask=att, labels=lab, use_cache=False, fused_lm_head=True)
            loss = out.loss
            if out.entropy is not None:  # what SFTTrainer does with the extra outputs every step
                mask = out.label_mask
                _ = (out.entropy.detach().sum() / mask.sum()).item(), (out.is_top1.sum() / mask.sum()).item()
        loss.backward()
        m.zero_grad(set_to_none=True)
        return time.perf_counter() - t, float(loss)

    for name in models:  # warm-up
        step(name)
    times = {k: [] for k in models}
    losses = {}
    for _ in range(a.iters):
        for name in models:
            dt, loss = step(name)
            times[name].append(dt)
            losses[name] = loss
    real = int(att.sum())
    print(
        f"batch: 4 rows, {real} real tokens, padded to {n}; {a.iters} interleaved iterations; torch threads {torch.get_num_threads()}"
    )
    base = statistics.median(times["plain"])
    for name, ts in times.items():
        med = statistics.median(ts)
        print(
            f"{name:12s} {med * 1000:8.1f} ms/step  {real / med:8.0f} tok/s  x{med / base:5.2f} vs plain  loss {losses[name]:.6f}"
        )


if __name__ == "__main__":
    main()
