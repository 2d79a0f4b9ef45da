"""Training throughput of LoRA SFT: tamis vs a plain TRL SFTTrainer script vs LLaMA-Factory.

Same tiny offline Llama (~0.85M params: hidden 128, 4 layers, vocab 2048), same data (240 Q&A rows of
~60-512 tokens under a ChatML template), LoRA r=8 alpha=16 all-linear, batch 4, max length 512, fp32,
lr 1e-4 cosine, one epoch (60 optimizer steps unpacked), one intra-op thread per run (OMP_NUM_THREADS=1,
overridable: on a shared machine 2-thread runs swing by 10x). Each variant runs in its own process,
variants are interleaved, and each is repeated; the medians are reported.

Throughput = real tokens / train_runtime, where real tokens = non-padding tokens the trainer fed to the
model (HF Trainer's ``include_num_input_tokens_seen="non_padding"``, the same counter in every variant)
and train_runtime is HF Trainer's own timer (model loading and tokenisation excluded, the same for all).

Variants:
  trl           plain TRL 1.x SFTTrainer on prompt/completion rows (its default loss path: chunked fused
                LM head computing log-probs, entropy and top-1 accuracy for every token)
  tamis-trlloss tamis `train sft --method lora --no-fast-loss` (TRL's loss path, tamis's data path)
  tamis         tamis `train sft --method lora` (default: plain cross-entropy, same labels)
  tamis-packed  tamis with --packing (padding-free BFD packing, per-document positions)
  llamafactory  LLaMA-Factory (PyPI `llamafactory`) in its own venv (--lf-python), `chatml` template

Usage:
  python bench/bench_train.py --repeats 3 [--lf-python /tmp/lf-venv/bin/python] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
VARIANTS = ("trl", "tamis-trlloss", "tamis", "tamis-packed", "llamafactory")
LORA = dict(r=8, alpha=16, dropout=0.0)
BATCH, MAX_LEN, LR, ROWS = 4, 512, 1e-4, 240
THREADS = 1


# ------------------------------------------------------------------ setup (parent)


def build_assets(work: Path) -> dict[str, Path]:
    from curate.io import write_frame
    from curate.records import Record, to_frame
    from curate.tiny_models import build_causal_lm, build_tokenizer, default_corpus

    model = work / "model"
    if not (model / "config.json").is_file():
        build_tokenizer(default_corpus(), work / "tokenizer")
        build_causal_lm(work / "tokenizer", model, hidden=128, layers=4, heads=4, kv_heads=2, max_pos=1024)
    rng = random.Random(0)
    corpus = default_corpus(4000, seed=1)
    rows, alpaca = [], []
    for _ in range(ROWS):
        q = " ".join(rng.choice(corpus) for _ in range(rng.randint(1, 2)))
        # answers of very different lengths: padding matters, as in real SFT data
        a = " ".join(rng.choice(corpus) for _ in range(rng.randint(1, 10)))
        rows.append(Record(kind="sft", question=q, answer=a).as_row())
        alpaca.append({"instruction": q, "input": "", "output": a})
    data = work / "data.jsonl"
    write_frame(to_frame(rows), data)
    lf = work / "lf_data"
    lf.mkdir(exist_ok=True)
    (lf / "bench.json").write_text(json.dumps(alpaca, ensure_ascii=False))
    (lf / "dataset_info.json").write_text(json.dumps({"bench": {"file_name": "bench.json"}}))
    return {"model": model, "data": data, "lf_data": lf}


# ------------------------------------------------------------------ children


class _Counter:
    """Turn on HF Trainer's non-padding token counter (same counter for every variant)."""

    @staticmethod
    def callback():
        from transformers import TrainerCallback

        class C(TrainerCallback):
            def on_train_begin(self, args, state, control, **kw):
                args.include_num_input_tokens_seen = "non_padding"
                _CPU["start"] = time.process_time()

            def on_train_end(self, args, state, control, **kw):
                _CPU["seconds"] = time.process_time() - _CPU["start"]

        return C()


_CPU: dict[str, float] = {}


def _result(trainer, out: Path, variant: str) -> None:
    m = [h for h in trainer.state.log_history if "train_runtime" in h][-1]
    tokens = int(trainer.state.num_input_tokens_seen)
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    out.write_text(
        json.dumps(
            {
                "variant": variant,
                "tokens": tokens,
                "seconds": m["train_runtime"],
                "tokens_per_s": tokens / m["train_runtime"],
                "cpu_seconds": _CPU.get("seconds"),
                "tokens_per_cpu_s": tokens / _CPU["seconds"] if _CPU.get("seconds") else None,
                "steps": trainer.state.global_step,
                "final_loss": losses[-1] if losses else None,
            }
        )
    )


def child_trl(a: dict, out: Path) -> None:
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from curate.io import read_frame

    frame = read_frame(a["data"])
    rows = [
        {
            "prompt": [{"role": "user", "content": r["question"]}],
            "completion": [{"role": "assistant", "content": r["answer"]}],
        }
        for r in frame.iter_rows(named=True)
    ]
    tok = AutoTokenizer.from_pretrained(a["model"])
    args = SFTConfig(
        output_dir=str(out.parent / "trl-out"),
        per_device_train_batch_size=BATCH,
        num_train_epochs=1,
        learning_rate=LR,
        lr_scheduler_type="cosine",
        max_length=MAX_LEN,
        bf16=False,
        report_to="none",
        save_strategy="no",
        logging_steps=10,
        disable_tqdm=True,
        seed=42,
        dataloader_pin_memory=False,
    )
    lora = LoraConfig(
        r=LORA["r"],
        lora_alpha=LORA["alpha"],
        lora_dropout=LORA["dropout"],
        target_modules="all-linear",
        task_type="CAUSAL_LM",
    )
    trainer = SFTTrainer(
        model=a["model"],
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=tok,
        peft_config=lora,
        callbacks=[_Counter.callback()],
    )
    trainer.train()
    _result(trainer, out, "trl")


def child_tamis(a: dict, out: Path, variant: str) -> None:
    from train.config import resolve
    from train.run import prepare, train

    flags = dict(
        model=a["model"],
        data=[a["data"]],
        output=str(out.parent / f"run-{out.stem}"),  # a fresh run directory every time
        method="lora",
        lora_r=LORA["r"],
        lora_alpha=LORA["alpha"],
        lora_dropout=LORA["dropout"],
        batch_size=BATCH,
        global_batch=BATCH,
        max_length=MAX_LEN,
        learning_rate=LR,
        epochs=1.0,
        warmup_ratio=0.0,
        logging_steps=10,
        save_steps=100000,
        fast_loss=variant != "tamis-trlloss",
        packing=variant == "tamis-packed",
    )
    ctx = prepare(resolve("sft", flags=flags))
    train(ctx, callbacks=[_Counter.callback()])
    _result(ctx.extra["trainer"], out, variant)


LF_CHILD = r"""
import json, sys
from transformers import TrainerCallback
from llamafactory.train.tuner import run_exp
a = json.loads(sys.argv[1]); out = a["out"]
import time
class C(TrainerCallback):
    def on_train_begin(self, args, state, control, **kw):
        args.include_num_input_tokens_seen = "non_padding"
        self.cpu0 = time.process_time()
    def on_train_end(self, args, state, control, **kw):
        self.cpu = time.process_time() - self.cpu0
        m = [h for h in state.log_history if "train_runtime" in h]
        rt = m[-1]["train_runtime"] if m else None
        self.res = (state.num_input_tokens_seen, rt, state.global_step, [h["loss"] for h in state.log_history if "loss" in h])
cb = C()
run_exp(dict(
    stage="sft", do_train=True, model_name_or_path=a["model"], dataset="bench", dataset_dir=a["lf_data"],
    template="chatml", finetuning_type="lora", lora_rank=a["r"], lora_alpha=a["alpha"], lora_dropout=a["dropout"],
    lora_target="all", cutoff_len=a["max_len"], per_device_train_batch_size=a["batch"], gradient_accumulation_steps=1,
    learning_rate=a["lr"], num_train_epochs=1.0, lr_scheduler_type="cosine", logging_steps=10, save_strategy="no",
    report_to="none", output_dir=a["outdir"], overwrite_output_dir=True, bf16=False, fp16=False,
    preprocessing_num_workers=1, dataloader_num_workers=0, seed=42, disable_tqdm=True, trust_remote_code=False,
    plot_loss=False, overwrite_cache=True,
), callbacks=[cb])
tokens, rt, steps, losses = cb.res
json.dump({"variant": "llamafactory", "tokens": int(tokens), "seconds": rt, "tokens_per_s": tokens / rt,
           "cpu_seconds": cb.cpu, "tokens_per_cpu_s": tokens / cb.cpu,
           "steps": steps, "final_loss": losses[-1] if losses else None}, open(out, "w"))
"""


def run_child(
    variant: str, assets: dict[str, Path], work: Path, lf_python: str | None, timeout: int
) -> dict | None:
    out = work / f"res-{variant}-{time.time_ns()}.json"
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    # one intra-op thread per run: on a shared 2-core machine, OpenMP's spin-waiting makes 2-thread runs swing by
    # 10x whenever another process takes a core; single-threaded runs compare frameworks, not scheduler luck
    env.setdefault("OMP_NUM_THREADS", str(THREADS))
    if variant == "llamafactory":
        if not lf_python:
            return None
        args = dict(
            model=str(assets["model"]),
            lf_data=str(assets["lf_data"]),
            out=str(out),
            outdir=str(work / "lf-out"),
            r=LORA["r"],
            alpha=LORA["alpha"],
            dropout=LORA["dropout"],
            max_len=MAX_LEN,
            batch=BATCH,
            lr=LR,
        )
        # LLaMA-Factory pulls CUDA builds of torchaudio next to the CPU torch: keep them from loading
        env.update(DISABLE_VERSION_CHECK="1", ALLOW_EXTRA_ARGS="1")
        cmd = [lf_python, "-c", LF_CHILD, json.dumps(args)]
        cwd = str(work)
    else:
        a = {"model": str(assets["model"]), "data": str(assets["data"])}
        cmd = [sys.executable, __file__, "--child", variant, "--args", json.dumps(a), "--out", str(out)]
        cwd = str(ROOT)
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0 or not out.is_file():
        sys.stderr.write(f"[{variant}] failed (rc {proc.returncode}):\n{proc.stderr[-3000:]}\n")
        return None
    return json.loads(out.read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument(
        "--lf-python", default="/tmp/lf-venv/bin/python", help="python of a venv with llamafactory"
    )
    ap.add_argument("--work", default=None)
    ap.add_argument("--json", default=None)
    ap.add_argument("--timeout", type=int, default=900)
    ap.add_argument("--child", default=None)
    ap.add_argument("--args", default=None)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    if a.child:
        args = json.loads(a.args)
        if a.child == "trl":
            child_trl(args, Path(a.out))
        else:
            child_tamis(args, Path(a.out), a.child)
        return
    lf_python = a.lf_python if a.lf_python and Path(a.lf_python).is_file() else None
    variants = [v for v in a.variants.split(",") if v]
    if "llamafactory" in variants and not lf_python:
        print(f"llamafactory skipped: {a.lf_python} not found", file=sys.stderr)
        variants.remove("llamafactory")
    work = Path(a.work or tempfile.mkdtemp(prefix="tamis-bench-train-"))
    work.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    assets = build_assets(work)
    results: dict[str, list[dict]] = {v: [] for v in variants}
    for rep in range(a.repeats):
        order = variants[rep % len(variants) :] + variants[: rep % len(variants)]  # rotate: interleaved
        for v in order:
            r = run_child(v, assets, work, lf_python, a.timeout)
            if r:
                results[v].append(r)
                print(
                    f"run {rep + 1} {v:14s} {r['tokens_per_s']:8.0f} tok/s {r['tokens_per_cpu_s']:8.0f} tok/CPU-s "
                    f"({r['tokens']} tokens, {r['seconds']:.1f} s, "
                    f"{r['steps']} steps, final loss {r['final_loss']})",
                    file=sys.stderr,
                    flush=True,
                )
    summary = {}
    for v, rs in results.items():
        if rs:
            summary[v] = {
                "median_tokens_per_s": statistics.median(r["tokens_per_s"] for r in rs),
                "median_tokens_per_cpu_s": statistics.median(r["tokens_per_cpu_s"] for r in rs),
                "runs": [round(r["tokens_per_s"], 1) for r in rs],
                "tokens": rs[0]["tokens"],
                "steps": rs[0]["steps"],
            }
    base = summary.get("llamafactory") or summary.get("trl")
    base_name = "llamafactory" if "llamafactory" in summary else "trl"
    print(
        f"\nLoRA SFT throughput, real tokens/s, median of {a.repeats} interleaved runs (baseline: {base_name})"
    )
    print(
        f"{'variant':16s} {'tok/s':>9s} {'vs ' + base_name:>16s} {'tok/CPU-s':>10s} {'vs ' + base_name:>16s} "
        f"{'tokens':>8s} {'steps':>6s}"
    )
    for v, s in summary.items():
        ratio = s["median_tokens_per_s"] / base["median_tokens_per_s"] if base else float("nan")
        cratio = s["median_tokens_per_cpu_s"] / base["median_tokens_per_cpu_s"] if base else float("nan")
        s["ratio_vs_" + base_name] = round(ratio, 3)
        s["cpu_ratio_vs_" + base_name] = round(cratio, 3)
        print(
            f"{v:16s} {s['median_tokens_per_s']:9.0f} {ratio:15.2f}x {s['median_tokens_per_cpu_s']:10.0f} "
            f"{cratio:15.2f}x {s['tokens']:8d} {s['steps']:6d}"
        )
    print(f"machine: {os.cpu_count()} CPUs; load average at end: {os.getloadavg()[0]:.1f}")
    if a.json:
        Path(a.json).write_text(json.dumps({"summary": summary, "runs": results}, indent=1))


if __name__ == "__main__":
    main()
