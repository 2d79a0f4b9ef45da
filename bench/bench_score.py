"""Benchmark: batched perplexity/IFD scoring vs a naive per-row loop, in the same process.

    python bench/bench_score.py                       # the embedded LM on samples/ops_qa.jsonl
    python bench/bench_score.py --lm PATH --rows 400  # any local causal LM
    python bench/bench_score.py --hidden 512 --layers 4   # a random-weight Llama of that size built here

Both paths score the same answer tokens (answer given question, and answer alone) for the same rows.
The naive loop is what one writes first: one forward pass per sequence with ``labels`` (HF computes the
loss over the full vocabulary at every position) under ``torch.no_grad``. The batched scorer sorts
sequences into length buckets under a token budget, left-pads with explicit position ids, computes
logits only at answer positions, under ``torch.inference_mode``. Prints scored tokens per second of
each, the ratio, and the largest relative difference between the two (they must agree).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def naive(scorer, rows):
    """Per row, per sequence: model(input_ids, labels) -> loss."""
    import torch

    out = []
    tokens = 0
    for row in rows:
        try:
            e = scorer.encode(row)
        except Exception:  # noqa: BLE001 - rows the scorer rejects are skipped by both paths
            out.append(None)
            continue
        ppls = []
        for seq in e.seqs:
            ids = torch.tensor([seq], device=scorer.device)
            labels = ids.clone()
            labels[0, : len(seq) - e.n] = -100
            with torch.no_grad():
                loss = scorer.model(input_ids=ids, labels=labels).loss
            ppls.append(math.exp(float(loss)))
            tokens += e.n
        out.append(ppls)
    return out, tokens


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lm", default=None, help="local causal LM (default: samples/models/lm)")
    ap.add_argument("--data", default=str(ROOT / "samples" / "ops_qa.jsonl"))
    ap.add_argument("--rows", type=int, default=300, help="rows to score (the data is repeated if shorter)")
    ap.add_argument("--hidden", type=int, default=0, help="build a random Llama of this width instead")
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--token-budget", type=int, default=16384)
    ap.add_argument("--repeat", type=int, default=2, help="timed runs of each path (best is reported)")
    args = ap.parse_args()

    import torch

    from curate.io import load
    from curate.score.perplexity import PerplexityScorer, PplConfig

    rows = [r for r in load([args.data]).frame.to_dicts() if r["kind"] != "text"]
    rows = (rows * (args.rows // max(1, len(rows)) + 1))[: args.rows]
    lm = args.lm or str(ROOT / "samples" / "models" / "lm")
    tmp = None
    if args.hidden:
        from curate.tiny_models import build_causal_lm

        tmp = tempfile.TemporaryDirectory()
        build_causal_lm(
            lm,
            tmp.name,
            hidden=args.hidden,
            layers=args.layers,
            heads=max(1, args.hidden // 64),
            kv_heads=max(1, args.hidden // 128),
            max_pos=2048,
        )
        lm = tmp.name
    scorer = PerplexityScorer(PplConfig(lm, device=args.device, token_budget=args.token_budget))
    desc = scorer.describe()
    print(
        f"model {lm}: {desc['architecture']}, {desc['parameters']:,} parameters, {desc['device']}/{desc['dtype']}, "
        f"torch threads {torch.get_num_threads()}, {len(rows)} rows"
    )

    # warm-up (first-call allocations) on a few rows, then timed runs
    scorer.score_rows(rows[:8])
    naive(scorer, rows[:8])
    best_b, best_n = float("inf"), float("inf")
    for _ in range(args.repeat):
        t = time.perf_counter()
        batched = scorer.score_rows(rows)
        best_b = min(best_b, time.perf_counter() - t)
        t = time.perf_counter()
        ref, tokens = naive(scorer, rows)
        best_n = min(best_n, time.perf_counter() - t)
    worst = 0.0
    for b, r in zip(batched, ref, strict=True):
        if r is None or "error" in b:
            continue
        for got, want in zip((b["ppl"], b.get("ppl_answer")), r, strict=False):
            worst = max(worst, abs(got - want) / want)
    print(f"scored tokens: {tokens:,} (answer given question + answer alone)")
    print(f"naive per-row loop : {tokens / best_n:10,.0f} tok/s  ({best_n:.2f} s)")
    print(f"batched scorer     : {tokens / best_b:10,.0f} tok/s  ({best_b:.2f} s)")
    print(f"speed-up           : {best_n / best_b:10.2f} x   (target >= 3x on CPU)")
    print(f"max relative difference between the two: {worst:.2e}")
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
