"""Pipeline benchmark: the cost of re-running an unchanged recipe and of refreshing with 1% new rows,
as ratios against a full run measured in the same process.

    .venv/bin/python bench/bench_pipeline.py [--rows 100000] [--new 0.01] [--keep DIR]

Targets (issue 8): an unchanged re-run on 100,000 rows takes < 5% of the first run's time; a refresh
with 1% new rows < 10% of a full run. The recipe is ingest -> dedup (exact + MinHash) -> filter (the
default rule set, when the rules package loads) -> select (thresholds, no embeddings) -> export (trl).
Scoring is left out: with the embedded demo LM it would take hours on 100k rows on 2 CPU cores, and it
would only make the ratios look better (a re-run and a refresh skip it).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TOPICS = [
    "pod",
    "deployment",
    "ingress",
    "node",
    "service",
    "helm chart",
    "PVC",
    "CoreDNS",
    "etcd",
    "kubelet",
]
SYMPTOMS = [
    "CrashLoopBackOff",
    "stuck rollout",
    "502 errors",
    "DiskPressure",
    "no endpoints",
    "timeouts",
    "OOMKilled",
]
ZH = ["排查", "为什么", "怎么处理", "如何定位", "原因是什么"]
WORDS = "check the events logs metrics limits probes selectors quotas nodes taints tolerations images tags".split()


def make_rows(n: int, seed: int, start: int = 0) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(start, start + n):
        t, s = rng.choice(TOPICS), rng.choice(SYMPTOMS)
        if i % 3 == 0:
            q = f"{i} 号集群的 {t} 出现 {s}，{rng.choice(ZH)}？"
            a = (
                f"先看 {t} 的事件与日志（编号 {i}），{s} 多与资源限制或探针配置有关。"
                + "检查指标与最近的变更。" * rng.randint(1, 6)
            )
        else:
            q = f"Ticket {i}: my {t} shows {s} since {rng.randint(1, 28)} May. What should I check first?"
            a = (
                f"For ticket {i}, start with the {t} events. {s} usually means "
                + " ".join(rng.choice(WORDS) for _ in range(rng.randint(20, 80)))
                + "."
            )
        rows.append({"instruction": q, "input": "", "output": a})
    # 3% exact and 2% near duplicates, as real exports have
    for _k in range(int(n * 0.03)):
        rows.append(dict(rows[rng.randrange(n)]))
    for _k in range(int(n * 0.02)):
        r = dict(rows[rng.randrange(n)])
        r["output"] = r["output"].replace("start with", "begin with").replace("先看", "首先看")
        rows.append(r)
    rng.shuffle(rows)
    return rows


def write(path: Path, rows: list[dict]) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--new", type=float, default=0.01, help="share of new rows in the refresh")
    ap.add_argument("--keep", type=Path, default=None, help="work in this directory and keep it")
    ap.add_argument("--no-filter", action="store_true", help="leave the filter stage out")
    args = ap.parse_args()

    from curate.pipeline import stages as registry
    from curate.pipeline.recipe import load_recipe
    from curate.pipeline.refresh import refresh
    from curate.pipeline.run import run_recipe

    tmp = args.keep or Path(tempfile.mkdtemp(prefix="bench_pipeline_"))
    tmp.mkdir(parents=True, exist_ok=True)
    base = make_rows(args.rows, seed=1)
    write(tmp / "raw.jsonl", base)
    n_new = max(1, int(args.rows * args.new))
    write(tmp / "new.jsonl", make_rows(n_new, seed=2, start=10_000_000))
    stages = ["  - dedup: {methods: [exact, minhash]}"]
    try:
        if args.no_filter:
            raise RuntimeError("--no-filter")
        registry.REGISTRY["filter"].config({}, registry.StageContext(base=tmp))
        stages.append("  - filter: {rules: [default]}")
        with_filter = True
    except Exception as exc:  # the rules package may be mid-change; say so and go on without it
        print(f"note: filter stage left out ({str(exc)[:160]})")
        with_filter = False
    stages += [
        "  - select: {diversity: off}",
        "  - export: {format: trl, output: out/bench.trl.jsonl}",
    ]
    (tmp / "recipe.yaml").write_text(
        "name: bench\ninputs: [raw.jsonl]\nstages:\n"
        + "\n".join(stages)
        + "\noutputs:\n  data: out/bench.curated.parquet\nstate: state\n",
        encoding="utf-8",
    )
    print(
        f"rows: {len(base):,} (+{n_new:,} new for the refresh); stages: {', '.join(s.split(':')[0].strip(' -') for s in stages)}"
    )

    def timed(fn):
        t = time.perf_counter()
        out = fn()
        return time.perf_counter() - t, out

    t_first, res = timed(lambda: run_recipe(load_recipe(tmp / "recipe.yaml"), quiet=True))
    per_stage = {s["id"]: s["compute_seconds"] for s in res.manifest["stages"]}
    t_again, res2 = timed(lambda: run_recipe(load_recipe(tmp / "recipe.yaml"), quiet=True))
    assert all(s["cached"] for s in res2.manifest["stages"])
    t_again2, _ = timed(lambda: run_recipe(load_recipe(tmp / "recipe.yaml"), quiet=True))

    t_v1, s1 = timed(lambda: refresh(load_recipe(tmp / "recipe.yaml"), quiet=True))
    t_ref, s2 = timed(lambda: refresh(load_recipe(tmp / "recipe.yaml"), [tmp / "new.jsonl"], quiet=True))

    print(
        f"first run (cold cache): {t_first:8.2f} s   per stage: "
        + ", ".join(f"{k} {v:.2f}s" for k, v in per_stage.items())
    )
    print(f"unchanged re-run:       {t_again:8.3f} s   ({t_again2:.3f} s the second time)")
    print(
        f"  ratio re-run / first run            = {t_again / t_first:.4f}   (target < 0.05)  {'OK' if t_again / t_first < 0.05 else 'MISSED'}"
    )
    print(f"full refresh (v1, {args.rows:,} rows): {t_v1:8.2f} s")
    print(
        f"refresh with {n_new:,} new rows: {t_ref:8.2f} s   ({s2.summary['new_rows']:,} new, {s2.summary['new_dropped']:,} dropped as seen/dup)"
    )
    print(
        f"  ratio refresh / full run            = {t_ref / t_first:.4f}   (target < 0.10)  {'OK' if t_ref / t_first < 0.10 else 'MISSED'}"
    )
    print(f"  ratio refresh / full refresh (v1)   = {t_ref / t_v1:.4f}")
    print(f"  refresh phases: {s2.summary.get('phase_seconds')}")
    print(
        json.dumps(
            {
                "rows": args.rows,
                "filter": with_filter,
                "first_run_s": round(t_first, 3),
                "rerun_s": round(t_again, 3),
                "rerun_ratio": round(t_again / t_first, 4),
                "full_refresh_s": round(t_v1, 3),
                "refresh_new_rows": n_new,
                "refresh_s": round(t_ref, 3),
                "refresh_ratio": round(t_ref / t_first, 4),
            }
        )
    )
    if args.keep is None:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
