"""Scale-out benchmark: synthetic rows through dedup and filter on the local and the Ray engine.

    python bench/bench_scale.py                      # 1,000,000 rows, dedup + filter, both engines
    python bench/bench_scale.py --rows 200000 --stages dedup --json out.json

The data (English word and Chinese character Q&A, 15 % exact copies, 15 % near copies with ~3 % of
the tokens changed) is generated once with a fixed seed and cached as Parquet. Every (stage, engine)
run is a fresh child process, so peak memory is that run's own: the proportional set size (PSS) of
the child and everything it started (the Ray GCS, raylet, workers and their shared object store),
sampled every 0.5 s. Times cover the stage call only (reading the data and starting Ray are
reported apart). The Ray result is checked against the local one (same kept ids) and the table
prints Ray / local ratios: the local engine is the baseline.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CACHE = Path(os.environ.get("TAMIS_BENCH_CACHE", "/tmp/tamis-bench"))


# ----------------------------------------------------------------------------------------------------
# data


def make_data(rows: int, seed: int = 20261128) -> Path:
    import numpy as np
    import polars as pl

    from curate.records import SCHEMA, record_id

    path = CACHE / f"scale-{rows}-{seed}.parquet"
    if path.exists():
        return path
    CACHE.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    vocab = ["".join(rng.choice(letters, size=int(k))) for k in rng.integers(2, 10, size=20_000)]
    cjk = [chr(c) for c in range(0x4E00, 0x4E00 + 3000)]
    questions: list[str] = []
    answers: list[str] = []
    originals: list[int] = []
    kinds = rng.random(rows)
    for i in range(rows):
        r = kinds[i]
        if originals and r < 0.15:  # exact copy
            j = originals[int(rng.integers(len(originals)))]
            questions.append(questions[j])
            answers.append(answers[j])
        elif originals and r < 0.30:  # near copy: ~3 % of the answer's tokens changed
            j = originals[int(rng.integers(len(originals)))]
            a = answers[j]
            zh = " " not in a
            toks = list(a) if zh else a.split(" ")
            for k in rng.integers(0, len(toks), size=max(1, len(toks) // 33)):
                toks[int(k)] = cjk[int(rng.integers(3000))] if zh else vocab[int(rng.integers(20_000))]
            questions.append(questions[j])
            answers.append(("" if zh else " ").join(toks))
        else:
            if r < 0.65:
                q = " ".join(vocab[k] for k in rng.integers(0, 20_000, size=int(rng.integers(5, 16))))
                a = " ".join(vocab[k] for k in rng.integers(0, 20_000, size=int(rng.integers(20, 81))))
            else:
                q = "".join(cjk[k] for k in rng.integers(0, 3000, size=int(rng.integers(8, 21))))
                a = "".join(cjk[k] for k in rng.integers(0, 3000, size=int(rng.integers(40, 151))))
            originals.append(i)
            questions.append(q)
            answers.append(a)
    ids = [record_id("sft", question=q, answer=a) for q, a in zip(questions, answers, strict=True)]
    n = rows
    frame = pl.DataFrame(
        {
            "id": ids,
            "kind": ["sft"] * n,
            "source": [{"file": "synthetic.jsonl", "line": i + 1, "sheet": None} for i in range(n)],
            "system": [None] * n,
            "history": [[] for _ in range(n)],
            "question": questions,
            "answer": answers,
            "chosen": [None] * n,
            "rejected": [None] * n,
            "label": [None] * n,
            "text": [None] * n,
            "meta": ["{}"] * n,
        },
        schema=SCHEMA,
    )
    tmp = path.with_suffix(".tmp")
    frame.write_parquet(tmp)
    tmp.rename(path)
    print(f"generated {rows:,} rows in {time.perf_counter() - t0:.1f} s -> {path}", file=sys.stderr)
    return path


# ----------------------------------------------------------------------------------------------------
# one measured run (child process)


class PeakMemory:
    """Peak PSS (MiB) of this process and all its descendants, sampled in a thread."""

    def __init__(self, interval: float = 0.5):
        import psutil

        self.psutil = psutil
        self.interval = interval
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def sample(self) -> float:
        me = self.psutil.Process()
        total = 0
        for p in [me, *me.children(recursive=True)]:
            try:
                total += p.memory_full_info().pss
            except (self.psutil.NoSuchProcess, self.psutil.AccessDenied):
                continue
        return total / 2**20

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.sample())
            self._stop.wait(self.interval)

    def __enter__(self):
        self.peak = self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.sample())


def child(args) -> None:
    import polars as pl

    from curate.engines import EngineSpec, run_stage

    frame = pl.read_parquet(args.data)
    spec = EngineSpec(args.engine, ray_cpus=args.cpus if args.engine == "ray" else None)
    out: dict = {"stage": args.stage, "engine": args.engine, "rows": frame.height}
    if args.engine == "ray":
        from curate.engines.ray import ensure_ray

        t = time.perf_counter()
        ensure_ray(spec)
        out["ray_start_seconds"] = round(time.perf_counter() - t, 2)
    if args.stage == "dedup":
        from curate.dedup.engine import DedupConfig
        from curate.dedup.engine import run as stage_fn

        config = DedupConfig()
    else:
        from curate.rules.engine import run as stage_fn

        config = {"rules": ["default"]}
    with PeakMemory() as mem:
        t = time.perf_counter()
        result = run_stage(stage_fn, frame, config, spec)
        seconds = time.perf_counter() - t
    out.update(
        seconds=round(seconds, 2),
        rows_per_second=round(frame.height / seconds),
        peak_mib=round(mem.peak),
        kept=result.kept.height,
        dropped=result.dropped.height,
        kept_ids_sha256=hashlib.sha256("\n".join(result.kept["id"].to_list()).encode()).hexdigest()[:16],
        stats={k: v for k, v in result.stats.items() if isinstance(v, dict | int | float | str)},
    )
    print(json.dumps(out, default=str))


# ----------------------------------------------------------------------------------------------------
# driver


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--stages", default="dedup,filter")
    ap.add_argument("--engines", default="local,ray")
    ap.add_argument("--cpus", type=int, default=os.cpu_count() or 2, help="CPUs of the local Ray cluster")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    ap.add_argument("--timeout", type=int, default=3600, help="seconds per run")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--engine", help=argparse.SUPPRESS)
    ap.add_argument("--stage", help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args)
        return

    data = make_data(args.rows)
    results = []
    for stage in args.stages.split(","):
        by_engine = {}
        for engine in args.engines.split(","):
            cmd = [
                sys.executable,
                __file__,
                "--child",
                "--engine",
                engine,
                "--stage",
                stage,
                "--data",
                str(data),
            ]
            cmd += ["--cpus", str(args.cpus)]
            print(f"running {stage} on {engine} ({args.rows:,} rows)...", file=sys.stderr, flush=True)
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
            lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
            if proc.returncode != 0 or not lines:
                err = proc.stderr.strip().splitlines()[-1:] or ["no output"]
                print(f"  failed (exit {proc.returncode}): {err[0]}", file=sys.stderr)
                res = {"stage": stage, "engine": engine, "error": err[0]}
            else:
                res = json.loads(lines[-1])
            results.append(res)
            by_engine[engine] = res
        base, ray_res = by_engine.get("local"), by_engine.get("ray")
        if base and ray_res and "error" not in base and "error" not in ray_res:
            ray_res["same_as_local"] = ray_res["kept_ids_sha256"] == base["kept_ids_sha256"] and (
                ray_res["dropped"] == base["dropped"]
            )
            ray_res["time_ratio_vs_local"] = round(ray_res["seconds"] / base["seconds"], 2)
            ray_res["memory_ratio_vs_local"] = round(ray_res["peak_mib"] / base["peak_mib"], 2)

    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"bench_scale: {args.rows:,} synthetic rows, {os.cpu_count()} CPUs")
    for col in (
        "stage",
        "engine",
        "seconds",
        "rows/s",
        "peak MiB",
        "kept",
        "dropped",
        "x time",
        "x memory",
        "same",
    ):
        table.add_column(col, justify="right")
    for r in results:
        if "error" in r:
            table.add_row(r["stage"], r["engine"], "error: " + r["error"][:60], *[""] * 7)
            continue
        table.add_row(
            r["stage"],
            r["engine"],
            f"{r['seconds']:.1f}",
            f"{r['rows_per_second']:,}",
            f"{r['peak_mib']:,}",
            f"{r['kept']:,}",
            f"{r['dropped']:,}",
            str(r.get("time_ratio_vs_local", "1.00 (baseline)")),
            str(r.get("memory_ratio_vs_local", "1.00 (baseline)")),
            str(r.get("same_as_local", "")),
        )
    Console(width=150).print(table)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
