"""Data builders shared by the pipeline tests (rows written here, no third-party data)."""

from __future__ import annotations

import json
import random
from pathlib import Path

TOPICS = [
    ("pod", "CrashLoopBackOff", "kubectl logs --previous", "liveness probe"),
    ("deployment", "rollout stuck", "kubectl rollout status", "maxUnavailable"),
    ("ingress", "502 Bad Gateway", "nginx upstream", "readiness probe"),
    ("node", "DiskPressure", "kubelet eviction", "image garbage collection"),
    ("service", "no endpoints", "label selector", "targetPort"),
    ("helm", "upgrade failed", "helm history", "helm rollback"),
    ("PVC", "Pending", "StorageClass", "volumeBindingMode"),
    ("CoreDNS", "timeouts", "ndots", "NodeLocal DNSCache"),
]
ZH = ["排查", "为什么", "怎么处理", "如何定位", "原因是什么", "有什么办法"]


def make_rows(n: int, seed: int = 0, start: int = 0) -> list[dict]:
    """n distinct Q&A rows (Alpaca keys), mixed English and Chinese, of varied length."""
    rng = random.Random(seed)
    rows = []
    for i in range(start, start + n):
        obj, sym, cmd, fix = TOPICS[i % len(TOPICS)]
        if i % 3 == 0:
            q = f"集群 {i} 号环境里 {obj} 出现 {sym}，{rng.choice(ZH)}？"
            a = (
                f"先用 `{cmd}` 查看第 {i} 号环境的现场信息，确认 {sym} 的触发条件。"
                f"常见原因与 {fix} 配置有关，调整后观察 {rng.randint(2, 30)} 分钟。"
                + "检查事件和指标。"
                * rng.randint(0, 4)
            )
        else:
            q = f"Case {i}: our {obj} shows {sym} after the change #{rng.randint(100, 999)}. What should I check?"
            a = (
                f"Start with `{cmd}` for case {i} and read the events. {sym} usually points at {fix}; "
                f"adjust it and watch for {rng.randint(2, 30)} minutes. "
                + "Then check the metrics and the recent deploys. "
                * rng.randint(0, 5)
            )
        rows.append({"instruction": q, "input": "", "output": a, "category": obj})
    return rows


def near_copy(row: dict) -> dict:
    r = dict(row)
    r["output"] = r["output"].replace("Start with", "Begin with", 1).replace("先用", "首先用", 1)
    return r


def write_jsonl(path: Path, rows: list[dict], bad_lines: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")
        for k in range(bad_lines):
            fh.write(f'{{"instruction": "broken row {k}", "output": \n')
    return path


# A whole-set stage for the refresh tests, written here because `select` may not be installed: it
# keeps the `target` rows with the longest answers (ties by id) and drops the rest with a reason.
def topk_run(frame, config):
    import polars as pl

    from curate.stage import StageResult, mark_dropped

    target = int(config.get("target", 10))
    ranked = frame.with_columns(pl.col("answer").fill_null("").str.len_chars().alias("_len")).with_row_index(
        "_i"
    )
    order = ranked.sort(["_len", "id"], descending=[True, False])
    keep_idx = set(order["_i"].head(target).to_list())
    mask = pl.Series([i in keep_idx for i in range(frame.height)])
    kept = frame.filter(mask)
    dropped = mark_dropped(frame.filter(~mask), "topk", "below target (shorter answer)")
    return StageResult(kept, dropped, {"target": target})


def register_topk():
    """Make `topk` a global-scope stage named `select` in the registry (for the tests only)."""
    import sys
    import types

    from curate.pipeline import stages as registry

    mod = types.ModuleType("tests_pipeline_topk")
    mod.run = topk_run
    sys.modules["tests_pipeline_topk"] = mod
    registry.REGISTRY["select"] = registry.StageSpec(
        name="select",
        scope="global",
        module="tests_pipeline_topk",
        help="test stage: longest answers",
        build=lambda m, options, ctx: dict(options),
        call=lambda m, frame, config, ctx: m.run(frame, config),
    )
