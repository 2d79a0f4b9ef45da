"""Rule-engine benchmark: rows per second of the default set, against a per-row loop, same process.

    python bench/bench_rules.py                    # 100,000 rows; baseline on 1,000 rows
    python bench/bench_rules.py --rows 20000 --baseline-rows 500 --set strict

- ours: ``curate.rules.apply`` over the whole frame (vectorised polars checks, numpy for degenerate
  repeats, Python only for candidate rows and for the explanations of rows that fired).
- baseline: the same rule set applied one row at a time (a plain per-row Python loop over the same
  checks, as a row-wise ``map`` filter would run them). It is measured on ``--baseline-rows`` rows and
  reported as rows/s, because running it on 100,000 rows would take far longer than the target.
- data: ``curate.rules.synthetic.planted_frame`` (mixed zh/en Q&A written for this project; 10 % rows
  with planted problems, 5 % needing a repair). Target: 100,000 rows in under 30 s.
Also printed: the slowest rules, and the catch/keep rates on the planted labels.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--baseline-rows", type=int, default=1_000)
    ap.add_argument("--set", default="default", help="rule set name or file")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    from curate.rules import apply, load_rules
    from curate.rules.synthetic import BAD_KINDS, DROP_KINDS, planted_frame

    t = time.perf_counter()
    frame = planted_frame(args.rows, bad_share=0.10, fixable_share=0.05, seed=args.seed)
    chars = int(
        sum(frame[c].str.len_chars().fill_null(0).sum() for c in ("question", "answer", "chosen", "rejected"))
    )
    print(
        f"data: {frame.height:,} rows, {chars / 1e6:.1f} M characters, built in {time.perf_counter() - t:.1f} s"
    )
    rules = load_rules([args.set])
    print(
        f"rule set: {args.set} ({len(rules.active)} rules); cpus: {os.cpu_count()}; load average: {os.getloadavg()[0]:.1f}"
    )

    t, c = time.perf_counter(), time.process_time()
    kept, dropped, stats = apply(frame, rules)
    ours, ours_cpu = time.perf_counter() - t, time.process_time() - c
    ours_rps = frame.height / ours

    sample = frame.head(args.baseline_rows)
    t = time.perf_counter()
    for i in range(sample.height):
        apply(sample.slice(i, 1), rules)
    base = time.perf_counter() - t
    base_rps = sample.height / base

    print(
        f"ours:     {frame.height:>9,} rows in {ours:7.1f} s = {ours_rps:>9,.0f} rows/s (CPU time {ours_cpu:.1f} s)"
    )
    print(f"per-row:  {sample.height:>9,} rows in {base:7.1f} s = {base_rps:>9,.0f} rows/s")
    print(
        f"speed-up: {ours_rps / base_rps:.1f}x; target 100,000 rows < 30 s: "
        f"{'met' if ours * 100_000 / frame.height < 30 else 'NOT met'} "
        f"({ours * 100_000 / frame.height:.1f} s per 100,000 rows)"
    )
    slow = sorted(stats["rules"].items(), key=lambda kv: -kv[1]["seconds"])[:8]
    print("slowest rules: " + ", ".join(f"{rid} {st['seconds']:.2f}s" for rid, st in slow))
    planted = frame["meta"].str.json_path_match("$.planted")
    k = kept["meta"].str.json_path_match("$.planted")
    d = dropped["meta"].str.json_path_match("$.planted")
    bad = planted.is_in(DROP_KINDS).sum()
    good = (~planted.is_in(BAD_KINDS)).sum()
    print(
        f"planted: dropped {d.is_in(DROP_KINDS).sum() / bad:.3f} of {bad:,} rows to drop; "
        f"kept {(~k.is_in(BAD_KINDS)).sum() / good:.3f} of {good:,} good rows; pii {stats['pii']}"
    )


if __name__ == "__main__":
    main()
