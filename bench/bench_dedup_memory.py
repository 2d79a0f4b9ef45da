"""Peak memory and time of `curate dedup` (default exact,minhash) on template-heavy, real-shaped rows
beside the synthetic rows of ``bench_dedup.py --only e2e``; optionally against an earlier checkout.

    python bench/bench_dedup_memory.py --rows 250000 --shapes template,synthetic
    python bench/bench_dedup_memory.py --rows 100000 --baseline-src /tmp/tamis-before   # kept ids + RSS

Shapes
- template: support/FAQ-export shape. Answers are real ``chinese-medical-dialogue`` answers (GB18030
  CSV, deduplicated; when more are needed, new ones are stitched from sentences of three real answers),
  each reused by ~100 rows (``--reuse``); questions are a real title with a greeting prefix, an
  age/sex note and 10-30 characters of a real question body
  (``医生您好，高血压患者能吃党参吗？（女，45岁）这两天女婿拿了些党参泡水喝``), so every row is distinct but
  rows sharing an answer share most of their shingles (Jaccard ~0.5-0.8): large LSH buckets, many
  candidates, some real near duplicates. Every 50th row is a copy of an earlier one with one character
  dropped (a planted near duplicate).
- synthetic: ``bench_dedup._gen_rows`` (random CJK question + answer, 10 % exact and 5 % near copies).

Each run is ``curate dedup ROWS.jsonl -o OUT.jsonl --json`` in a subprocess; peak RSS is that child's
``ru_maxrss`` (``os.wait4``). With ``--baseline-src DIR`` the same file is also deduplicated by the
code in DIR (``PYTHONPATH=DIR``, e.g. a ``git worktree`` of the commit before), the kept ids of the
two runs are compared and the peak RSS ratio is printed.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
SHARED = ROOT.parent / "shared" / "data"
CSV = SHARED / "chinese-medical-dialogue" / "sample_internal_medicine_5000-6000.gb18030.csv"
PREFIXES = ("", "请问", "医生您好，", "你好，", "医生，")


def _real_rows() -> tuple[list[str], list[str], list[str]]:
    with open(CSV, encoding="gb18030", newline="") as f:
        rows = list(csv.DictReader(f))
    titles = [r["title"].strip() for r in rows if r["title"].strip()]
    asks = [r["ask"].strip() for r in rows if len(r["ask"].strip()) >= 30]
    answers = list(dict.fromkeys(r["answer"].strip() for r in rows if len(r["answer"].strip()) >= 40))
    return titles, asks, answers


def gen_template_rows(n: int, path: Path, reuse: int = 100, seed: int = 11) -> dict:
    rnd = random.Random(seed)
    titles, asks, real = _real_rows()
    n_answers = max(1, n // reuse)
    sentences = [s for a in real for s in a.split("。") if len(s) >= 8]
    answers = real[:n_answers]
    while len(answers) < n_answers:
        answers.append("。".join(rnd.choice(sentences) for _ in range(3)) + "。")
    written = []
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            if i % 50 == 49 and written:
                q, a = written[rnd.randrange(len(written))]
                k = rnd.randrange(len(a))
                a = a[:k] + a[k + 1 :]
            else:
                ask = rnd.choice(asks)
                start = rnd.randrange(len(ask) - 20)
                q = (
                    f"{rnd.choice(PREFIXES)}{rnd.choice(titles)}"
                    f"（{rnd.choice('男女')}，{rnd.randint(1, 90)}岁）{ask[start : start + rnd.randint(10, 30)]}"
                )
                a = answers[rnd.randrange(n_answers)]
                if len(written) < 100_000:
                    written.append((q, a))
            f.write(json.dumps({"instruction": q, "output": a}, ensure_ascii=False) + "\n")
    return {"answers": n_answers, "real_answers": min(n_answers, len(real))}


def run_dedup(inp: Path, out: Path, src: Path, extra: list[str]) -> dict:
    cmd = [str(Path(sys.executable).parent / "curate"), "dedup", str(inp), "-o", str(out), "--json", *extra]
    env = dict(os.environ, PYTHONPATH=str(src))
    t = time.perf_counter()
    with open(out.with_suffix(".stdout"), "w") as so, open(out.with_suffix(".stderr"), "w") as se:
        proc = subprocess.Popen(cmd, stdout=so, stderr=se, env=env, cwd=src)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    text = out.with_suffix(".stdout").read_text().strip()
    summary = (
        json.loads(text.splitlines()[-1])
        if text
        else {"stderr": out.with_suffix(".stderr").read_text()[-2000:]}
    )
    kept_ids = []
    if out.exists():
        with open(out, encoding="utf-8") as f:
            kept_ids = [json.loads(line)["id"] for line in f]
    mh = summary.get("minhash") or {}
    return {
        "wall_s": round(wall, 1),
        "peak_rss_gb": round(usage.ru_maxrss / 1024 / 1024, 2),
        "exit_code": os.waitstatus_to_exitcode(status),
        "kept": summary.get("kept"),
        "dropped": summary.get("dropped_by_reason"),
        "candidate_pairs": mh.get("candidate_pairs"),
        "verified_pairs": mh.get("verified_pairs"),
        "kept_ids": kept_ids,
    }


def main() -> None:
    from bench_dedup import _gen_rows

    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", default="250000", help="comma list of row counts")
    ap.add_argument("--shapes", default="template,synthetic")
    ap.add_argument("--reuse", type=int, default=100, help="template: rows per answer")
    ap.add_argument("--baseline-src", default=None, help="a checkout of the code to compare with")
    ap.add_argument("--extra", default="", help="extra curate dedup arguments, space separated")
    ap.add_argument("--tmp", default=None, help="where the generated files go (default: system temp)")
    args = ap.parse_args()
    extra = args.extra.split()
    for rows in (int(x) for x in args.rows.split(",")):
        for shape in args.shapes.split(","):
            with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
                inp = Path(tmp) / "rows.jsonl"
                t = time.perf_counter()
                info = gen_template_rows(rows, inp, args.reuse) if shape == "template" else {}
                if shape == "synthetic":
                    _gen_rows(rows, inp)
                gen_s = time.perf_counter() - t
                res = {"shape": shape, "rows": rows, "mb": round(inp.stat().st_size / 1e6), **info}
                res["generate_s"] = round(gen_s, 1)
                ours = run_dedup(inp, Path(tmp) / "ours.jsonl", ROOT, extra)
                ids = ours.pop("kept_ids")
                res["ours"] = ours
                if args.baseline_src:
                    base = run_dedup(inp, Path(tmp) / "base.jsonl", Path(args.baseline_src), extra)
                    base_ids = base.pop("kept_ids")
                    res["baseline"] = base
                    res["same_kept_ids"] = ids == base_ids
                    res["peak_rss_ratio_ours_vs_baseline"] = round(
                        ours["peak_rss_gb"] / base["peak_rss_gb"], 3
                    )
                    res["wall_ratio_ours_vs_baseline"] = round(ours["wall_s"] / base["wall_s"], 3)
                print(json.dumps(res, ensure_ascii=False), flush=True)


if __name__ == "__main__":
    main()
