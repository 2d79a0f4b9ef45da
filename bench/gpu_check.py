"""One short GPU check for the trainer (not run in tests; needs a CUDA GPU, no network).

Builds a ~110M-parameter Llama from a config (random weights, no download) and its tokenizer, writes
256 synthetic Q&A rows, then through tamis itself:
  1. bf16: `train sft --method lora` runs with bf16 autocast on a bf16-capable GPU (run.json says so);
  2. QLoRA: `--method qlora` loads the base as bitsandbytes NF4 on the GPU, trains, and the merged export
     reproduces the adapter model's logits;
  3. throughput: real tokens/s for LoRA SFT with tamis's loss path and with TRL's chunked loss
     (--no-fast-loss), and with packing; peak GPU memory next to the plan's estimate.

Usage: python bench/gpu_check.py [--work DIR] [--json out.json]   (about 2-4 minutes on one GPU)
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def build(work: Path) -> tuple[Path, Path]:
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from curate.io import write_frame
    from curate.records import Record, to_frame
    from curate.tiny_models import build_tokenizer, default_corpus

    model = work / "gpu-llama-110m"
    if not (model / "config.json").is_file():
        build_tokenizer(default_corpus(3000), work / "tok", vocab_size=8192)
        tok = AutoTokenizer.from_pretrained(str(work / "tok"))
        cfg = LlamaConfig(
            vocab_size=len(tok),
            hidden_size=768,
            intermediate_size=2048,
            num_hidden_layers=12,
            num_attention_heads=12,
            num_key_value_heads=4,
            max_position_embeddings=2048,
            tie_word_embeddings=True,
            eos_token_id=tok.eos_token_id,
            pad_token_id=tok.pad_token_id,
            bos_token_id=None,
        )
        torch.manual_seed(0)
        LlamaForCausalLM(cfg).save_pretrained(str(model), safe_serialization=True)
        tok.save_pretrained(str(model))
    rng = random.Random(0)
    corpus = default_corpus(4000, seed=2)
    rows = [
        Record(
            kind="sft",
            question=" ".join(rng.choice(corpus) for _ in range(rng.randint(1, 4))),
            answer=" ".join(rng.choice(corpus) for _ in range(rng.randint(4, 40))),
        ).as_row()
        for _ in range(256)
    ]
    data = work / "data.jsonl"
    write_frame(to_frame(rows), data)
    return model, data


def run(model: Path, data: Path, out: Path, **kw) -> dict:
    import torch

    from train.config import resolve
    from train.run import prepare, train

    flags = dict(
        model=str(model),
        data=[str(data)],
        output=str(out),
        batch_size=8,
        global_batch=8,
        max_length=1024,
        epochs=1.0,
        learning_rate=1e-4,
        logging_steps=10,
        save_steps=100000,
        warmup_ratio=0.0,
    )
    flags.update(kw)
    torch.cuda.reset_peak_memory_stats()
    ctx = prepare(resolve("sft", flags=flags))
    from transformers import TrainerCallback

    class Count(TrainerCallback):
        def on_train_begin(self, args, state, control, **k):
            args.include_num_input_tokens_seen = "non_padding"

    train(ctx, callbacks=[Count()])
    tr = ctx.extra["trainer"]
    rt = [h for h in tr.state.log_history if "train_runtime" in h][-1]["train_runtime"]
    meta = json.loads((out / "run.json").read_text())
    est = ctx.plan.get("memory", {}).get(kw.get("method", "lora"), {}).get("total")
    return {
        "method": kw.get("method", "lora"),
        "fast_loss": kw.get("fast_loss", True),
        "packing": kw.get("packing", False),
        "bf16_args": tr.args.bf16,
        "tokens_per_s": round(tr.state.num_input_tokens_seen / rt, 1),
        "peak_gib": round(torch.cuda.max_memory_allocated() / 1024**3, 3),
        "plan_estimate_gib": round(est / 1024**3, 3) if est else None,
        "loss": [meta["first_loss"], meta["last_loss"]],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", default=None)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    import torch

    if not torch.cuda.is_available():
        sys.exit("no CUDA GPU: this check is for a GPU machine")
    work = Path(a.work or tempfile.mkdtemp(prefix="tamis-gpu-"))
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    res: dict = {"gpu": torch.cuda.get_device_name(0), "bf16_supported": torch.cuda.is_bf16_supported()}
    model, data = build(work)
    res["runs"] = [
        run(model, data, work / "lora", method="lora"),
        run(model, data, work / "lora-trlloss", method="lora", fast_loss=False),
        run(model, data, work / "lora-packed", method="lora", packing=True),
        run(model, data, work / "qlora", method="qlora"),
    ]
    # QLoRA merge: dequantised NF4 base + adapter == adapter model
    from transformers import AutoModelForCausalLM

    from train.export import export_run, load_trained

    info = export_run(work / "qlora", work / "qlora-export", dtype="fp32")
    meta = json.loads((work / "qlora" / "run.json").read_text())
    ids = torch.randint(0, 1000, (2, 32))
    with torch.no_grad():
        ad = (
            load_trained(work / "qlora", meta, merged=False)
            .eval()(input_ids=ids.to("cuda:0"))
            .logits.float()
            .cpu()
        )
        mg = AutoModelForCausalLM.from_pretrained(info["output"]).eval()(input_ids=ids).logits.float()
    res["qlora_merge_max_abs_diff"] = float((ad - mg).abs().max())
    names = {type(m).__name__ for m in load_trained(work / "qlora", meta, merged=False).modules()}
    res["qlora_linear4bit"] = "Linear4bit" in names
    res["seconds"] = round(time.time() - t0, 1)
    print(json.dumps(res, indent=1))
    ok = res["bf16_supported"] and all(r["bf16_args"] for r in res["runs"]) and res["qlora_linear4bit"]
    ok = ok and res["qlora_merge_max_abs_diff"] < 5e-2
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=1))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
