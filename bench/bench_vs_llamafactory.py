"""tamis vs LLaMA-Factory 0.9.5: LoRA SFT and DPO on the same tiny model, data and settings.

Both sides train the same tiny offline Llama (hidden 128, 4 layers, built here by curate.tiny_models)
on LLaMA-Factory's own demo data (../shared/data/llamafactory-demo: alpaca_zh_demo for SFT, dpo_zh_demo
for DPO; LLaMA-Factory reads them through that folder's dataset_info.json, tamis through `curate`'s
readers) with identical settings:

  SFT  LoRA r 8 / alpha 16 / dropout 0 on all linear layers, fp32, seed 42, batch 4 (no accumulation),
       60 steps, cutoff/max length 512, lr 1e-4 cosine, no warm-up, loss on the answer, chatml template,
       gradient checkpointing off on both sides (LLaMA-Factory turns it on by default: --gc turns it on for
       both)
  DPO  the same LoRA, batch 2, 30 steps, length 512, beta 0.1, sigmoid loss, lr 5e-6; tamis with
       ``truncation=budget`` (LLaMA-Factory's cutoff_len split of prompt and answers, see docs/train.md)

Each run is its own process; the sides are interleaved (the order alternates every repeat) and each is
repeated (--repeats, 3 by default); medians are printed. Per run: real tokens trained (HF Trainer's
``include_num_input_tokens_seen="non_padding"`` counter, the same on both sides), the Trainer's
train_runtime, tokens/s, CPU seconds of the training loop (``time.process_time`` from train begin to end:
the fair measure on a shared machine) and tokens per CPU-second, the final logged loss (mean of the last
10 steps). One intra-op thread per run (--threads): with other jobs on the machine, 2-thread runs swing
by several times between repeats.

LLaMA-Factory runs in its own virtual environment (--lf-venv), created when absent: torch 2.13.0 (CPU)
and llamafactory 0.9.5, then the two workarounds this CPU-only machine needs: torchvision uninstalled
(its CUDA build breaks transformers' lazy imports) and torchaudio's native libraries renamed (they link
CUDA libraries; LLaMA-Factory imports torchaudio but never uses it for text). Not run by the tests.

Usage:
  python bench/bench_vs_llamafactory.py --lf-venv /path/to/venv [--stages sft,dpo] [--repeats 3]
      [--sft-steps 60] [--dpo-steps 30] [--variants tamis,llamafactory] [--json out.json]
Variants: tamis (defaults), tamis-trl (--no-fast-loss: TRL's loss paths, random batches),
llamafactory; ``tamis-plan`` (only --model/--data: the planned batch, accumulation and max length, the
default truncation; max_steps chosen to train about as many rows) measures what the default plan reaches;
``tamis-plan-512`` the same with the fixed configuration's length 512.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
LF_VERSION = "0.9.5"
DEMO = ROOT.parent / "shared" / "data" / "llamafactory-demo"
LORA = dict(r=8, alpha=16, dropout=0.0)
STAGES = {
    "sft": dict(dataset="alpaca_zh_demo", batch=4, steps=60, lr=1e-4),
    "dpo": dict(dataset="dpo_zh_demo", batch=2, steps=30, lr=5e-6),
}
MAX_LEN, SEED, BETA, LOG_STEPS = 512, 42, 0.1, 10


# ------------------------------------------------------------------ LLaMA-Factory's venv


def ensure_lf_venv(venv: Path) -> Path:
    """The venv's python, creating the venv (torch CPU + llamafactory) when it is absent."""
    py = venv / "bin" / "python"
    if not py.is_file():
        print(f"creating {venv} (llamafactory {LF_VERSION}; a few minutes)", file=sys.stderr, flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        # torch pinned first: a bare requirement resolves to a multi-GB CUDA build
        subprocess.run(
            [str(py), "-m", "pip", "install", "-q", "torch==2.13.0", f"llamafactory=={LF_VERSION}"],
            check=True,
        )
    # CPU-only workarounds (idempotent): torchvision's CUDA build breaks `from transformers import ...`
    # ("operator torchvision::nms does not exist"); torchaudio's native libraries need libc10_cuda.so
    subprocess.run([str(py), "-m", "pip", "uninstall", "-q", "-y", "torchvision"], capture_output=True)
    out = subprocess.run(
        [
            str(py),
            "-c",
            "import importlib.util as u; s = u.find_spec('torchaudio'); print(s.submodule_search_locations[0] if s else '')",
        ],
        capture_output=True,
        text=True,
    ).stdout.strip()
    if out:
        for so in (Path(out) / "lib").glob("*.so"):
            so.rename(so.with_name(so.name + ".disabled"))
    return py


# ------------------------------------------------------------------ assets


def build_model(work: Path) -> Path:
    from curate.tiny_models import build_causal_lm, build_tokenizer, default_corpus

    model = work / "model"
    if not (model / "config.json").is_file():
        build_tokenizer(default_corpus(), work / "tokenizer")
        build_causal_lm(work / "tokenizer", model, hidden=128, layers=4, heads=4, kv_heads=2, max_pos=1024)
    return model


# ------------------------------------------------------------------ children

CPU: dict[str, float] = {}


def counter_callback():
    from transformers import TrainerCallback

    class Counter(TrainerCallback):
        def on_train_begin(self, args, state, control, **kw):
            args.include_num_input_tokens_seen = "non_padding"
            CPU["start"] = time.process_time()

        def on_train_end(self, args, state, control, **kw):
            CPU["seconds"] = time.process_time() - CPU["start"]

    return Counter()


def child_tamis(a: dict, out: Path, variant: str) -> None:
    from train.config import resolve
    from train.run import prepare, train

    st = STAGES[a["stage"]]
    flags = dict(
        model=a["model"], data=[a["data"]], output=str(out.parent / f"run-{out.stem}"), template="chatml"
    )
    if not variant.startswith("tamis-plan"):
        flags.update(
            method="lora",
            lora_r=LORA["r"],
            lora_alpha=LORA["alpha"],
            lora_dropout=LORA["dropout"],
            lora_target="all-linear",
            batch_size=st["batch"],
            global_batch=st["batch"],
            max_length=MAX_LEN,
            learning_rate=st["lr"],
            warmup_ratio=0.0,
            max_steps=a["steps"],
            seed=SEED,
            gradient_checkpointing=a["gc"],
        )
    flags.update(logging_steps=LOG_STEPS, save_steps=100000)
    if a["stage"] == "dpo" and not variant.startswith("tamis-plan"):
        flags.update(beta=BETA, loss="sigmoid", truncation="budget")
    if variant == "tamis-trl":
        flags.update(fast_loss=False, group_by_length=False)
    if variant == "tamis-plan-512":  # the default plan at the fixed configuration's length
        flags.update(max_length=MAX_LEN)
    if variant.startswith(
        "tamis-plan"
    ):  # the default plan (batch, accumulation, max_length), cut to as many rows
        planned = prepare(resolve(a["stage"], flags=flags)).plan
        flags.update(max_steps=max(1, round(a["steps"] * st["batch"] / planned["global_batch"])))
    ctx = prepare(resolve(a["stage"], flags=flags))
    train(ctx, callbacks=[counter_callback()])
    write_result(ctx.extra["trainer"], out, variant)


def write_result(trainer, out: Path, variant: str) -> None:
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
                "cpu_seconds": CPU["seconds"],
                "tokens_per_cpu_s": tokens / CPU["seconds"],
                "steps": trainer.state.global_step,
                "final_loss": losses[-1] if losses else None,
            }
        )
    )


LF_CHILD = r"""
import json, sys, time
from transformers import TrainerCallback
from llamafactory.train.tuner import run_exp
a = json.loads(sys.argv[1])
class C(TrainerCallback):
    def on_train_begin(self, args, state, control, **kw):
        args.include_num_input_tokens_seen = "non_padding"
        self.cpu0 = time.process_time()
    def on_train_end(self, args, state, control, **kw):
        self.cpu = time.process_time() - self.cpu0
        self.state = state
cb = C()
st = a["stage"]
run_exp(dict(
    stage=st, do_train=True, model_name_or_path=a["model"], dataset=a["dataset"], dataset_dir=a["dataset_dir"],
    template="chatml", finetuning_type="lora", lora_rank=a["r"], lora_alpha=a["alpha"], lora_dropout=a["dropout"],
    lora_target="all", cutoff_len=a["max_len"], per_device_train_batch_size=a["batch"], gradient_accumulation_steps=1,
    learning_rate=a["lr"], max_steps=a["steps"], lr_scheduler_type="cosine", warmup_ratio=0.0,
    logging_steps=a["log_steps"], save_strategy="no", report_to="none", output_dir=a["outdir"],
    overwrite_output_dir=True, bf16=False, fp16=False, preprocessing_num_workers=1, dataloader_num_workers=0,
    seed=a["seed"], disable_tqdm=True, plot_loss=False, overwrite_cache=True,
    disable_gradient_checkpointing=not a["gc"],
    **({"pref_beta": a["beta"], "pref_loss": "sigmoid"} if st == "dpo" else {}),
), callbacks=[cb])
s = cb.state
rt = [h for h in s.log_history if "train_runtime" in h][-1]["train_runtime"]
losses = [h["loss"] for h in s.log_history if "loss" in h]
tokens = int(s.num_input_tokens_seen)
json.dump({"variant": "llamafactory", "tokens": tokens, "seconds": rt, "tokens_per_s": tokens / rt,
           "cpu_seconds": cb.cpu, "tokens_per_cpu_s": tokens / cb.cpu, "steps": s.global_step,
           "final_loss": losses[-1] if losses else None}, open(a["out"], "w"))
"""


def run_child(variant: str, stage: str, model: Path, work: Path, a, lf_python: str | None) -> dict | None:
    out = work / f"res-{stage}-{variant}-{time.time_ns()}.json"
    st = STAGES[stage]
    steps = a.sft_steps if stage == "sft" else a.dpo_steps
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    env.update(OMP_NUM_THREADS=str(a.threads), MKL_NUM_THREADS=str(a.threads))
    env["HF_DATASETS_CACHE"] = str(work / "hf-datasets")
    if variant == "llamafactory":
        args = dict(
            stage=stage,
            model=str(model),
            dataset=st["dataset"],
            dataset_dir=str(a.data_dir),
            out=str(out),
            outdir=str(work / "lf-out"),
            r=LORA["r"],
            alpha=LORA["alpha"],
            dropout=LORA["dropout"],
            max_len=MAX_LEN,
            batch=st["batch"],
            lr=st["lr"],
            steps=steps,
            log_steps=LOG_STEPS,
            seed=SEED,
            beta=BETA,
            gc=a.gc,
        )
        env.update(DISABLE_VERSION_CHECK="1")  # transformers 5.6 etc. are outside its tested range
        cmd = [lf_python, "-c", LF_CHILD, json.dumps(args)]
        cwd = str(work)  # not /tmp: a stray /tmp/ray namespace package makes it import ray
    else:
        args = dict(
            stage=stage,
            model=str(model),
            data=str(a.data_dir / f"{st['dataset']}.json"),
            steps=steps,
            gc=a.gc,
        )
        cmd = [sys.executable, __file__, "--child", variant, "--args", json.dumps(args), "--out", str(out)]
        cwd = str(ROOT)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=a.timeout)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0 or not out.is_file():
        sys.stderr.write(f"[{stage} {variant}] failed (rc {proc.returncode}):\n{proc.stderr[-3000:]}\n")
        return None
    r = json.loads(out.read_text())
    # the whole process (imports, tokenisation, model loading included), user + system
    r["process_cpu_seconds"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    r["process_sys_seconds"] = after.ru_stime - before.ru_stime
    return r


def summarise(results: dict[str, dict[str, list[dict]]], repeats: int) -> dict:
    summary: dict = {}
    for stage, by_variant in results.items():
        rows = {}
        for v, rs in by_variant.items():
            if not rs:
                continue
            rows[v] = {
                "tokens_per_s": statistics.median(r["tokens_per_s"] for r in rs),
                "tokens_per_cpu_s": statistics.median(r["tokens_per_cpu_s"] for r in rs),
                "cpu_seconds": statistics.median(r["cpu_seconds"] for r in rs),
                "seconds": statistics.median(r["seconds"] for r in rs),
                "process_cpu_seconds": statistics.median(r["process_cpu_seconds"] for r in rs),
                "tokens": statistics.median(r["tokens"] for r in rs),
                "final_loss": statistics.median(r["final_loss"] for r in rs) if rs[0]["final_loss"] else None,
                "steps": rs[0]["steps"],
                "runs": len(rs),
            }
        base = rows.get("llamafactory")
        print(f"\n{stage.upper()}: medians of {repeats} interleaved runs (ratios vs llamafactory)")
        print(
            f"{'variant':13s} {'tok/s':>7s} {'ratio':>6s} {'tok/CPU-s':>9s} {'ratio':>6s} {'CPU-s':>7s} "
            f"{'wall-s':>7s} {'proc CPU-s':>10s} {'tokens':>7s} {'final loss':>11s} {'loss diff':>9s}"
        )
        for v, s in rows.items():
            if base:
                s["ratio_tokens_per_s"] = s["tokens_per_s"] / base["tokens_per_s"]
                s["ratio_tokens_per_cpu_s"] = s["tokens_per_cpu_s"] / base["tokens_per_cpu_s"]
                if s["final_loss"] is not None and base["final_loss"]:
                    s["loss_diff"] = s["final_loss"] / base["final_loss"] - 1
            print(
                f"{v:13s} {s['tokens_per_s']:7.0f} {s.get('ratio_tokens_per_s', float('nan')):5.2f}x "
                f"{s['tokens_per_cpu_s']:9.0f} {s.get('ratio_tokens_per_cpu_s', float('nan')):5.2f}x "
                f"{s['cpu_seconds']:7.1f} {s['seconds']:7.1f} {s['process_cpu_seconds']:10.1f} {s['tokens']:7.0f} "
                f"{s['final_loss'] or float('nan'):11.5f} {100 * s.get('loss_diff', float('nan')):8.2f}%"
            )
        summary[stage] = rows
    return summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--lf-venv", type=Path, default=Path.home() / ".cache" / "tamis" / f"llamafactory-{LF_VERSION}"
    )
    ap.add_argument("--data-dir", type=Path, default=DEMO, help="LLaMA-Factory's demo data folder")
    ap.add_argument("--stages", default="sft,dpo")
    ap.add_argument("--variants", default="tamis,llamafactory")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--sft-steps", type=int, default=STAGES["sft"]["steps"])
    ap.add_argument("--dpo-steps", type=int, default=STAGES["dpo"]["steps"])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--gc", action="store_true", help="gradient checkpointing on both sides")
    ap.add_argument("--work", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--timeout", type=int, default=1800)
    ap.add_argument("--child", default=None)
    ap.add_argument("--args", default=None)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    if a.child:
        sys.path.insert(0, str(ROOT))
        child_tamis(json.loads(a.args), Path(a.out), a.child)
        return
    variants = [v for v in a.variants.split(",") if v]
    lf_python = str(ensure_lf_venv(a.lf_venv)) if "llamafactory" in variants else None
    if not (a.data_dir / "dataset_info.json").is_file():
        sys.exit(
            f"{a.data_dir}: LLaMA-Factory's demo data folder (with dataset_info.json) not found; pass --data-dir"
        )
    work = a.work or Path(tempfile.mkdtemp(prefix="tamis-bench-lf-"))
    work.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    model = build_model(work)
    stages = [s for s in a.stages.split(",") if s]
    results = {s: {v: [] for v in variants} for s in stages}
    for rep in range(a.repeats):
        for stage in stages:
            order = list(results[stage])
            k = rep % len(order)
            for v in order[k:] + order[:k]:  # rotate: interleaved
                r = run_child(v, stage, model, work, a, lf_python)
                if r:
                    results[stage][v].append(r)
                    print(
                        f"run {rep + 1} {stage} {v:13s} {r['tokens_per_s']:7.0f} tok/s {r['tokens_per_cpu_s']:7.0f} "
                        f"tok/CPU-s ({r['tokens']} tokens, {r['seconds']:.1f} s, {r['cpu_seconds']:.1f} CPU-s, "
                        f"process {r['process_cpu_seconds']:.1f} CPU-s of which sys {r['process_sys_seconds']:.1f}, "
                        f"{r['steps']} steps, final loss {r['final_loss']})",
                        file=sys.stderr,
                        flush=True,
                    )
    summary = summarise(results, a.repeats)
    print(
        f"settings: LoRA r{LORA['r']}/a{LORA['alpha']}/dropout {LORA['dropout']} all linear, fp32, seed {SEED}, "
        f"length {MAX_LEN}, SFT batch {STAGES['sft']['batch']} x {a.sft_steps} steps, DPO batch "
        f"{STAGES['dpo']['batch']} x {a.dpo_steps} steps beta {BETA} sigmoid, gradient checkpointing "
        f"{'on' if a.gc else 'off'}, {a.threads} thread(s); machine: {os.cpu_count()} CPUs, load average "
        f"{os.getloadavg()[0]:.1f}"
    )
    if a.json:
        a.json.write_text(json.dumps({"summary": summary, "runs": results}, indent=1))


if __name__ == "__main__":
    main()
