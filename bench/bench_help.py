"""`--help` latency: every `curate` and `train` command (sub-commands included), each in a fresh process,
against a bare interpreter that imports click (the floor any click CLI pays), same machine, same run.

    python bench/bench_help.py             # best of 3 runs per command
    python bench/bench_help.py --repeat 5 --limit 0.5

Prints, per command, the best wall time and its ratio to the baseline, then the slowest command;
exits 1 when a command's best time is over ``--limit`` seconds (issue 14: `curate --help` and
`train --help` under 0.5 s; every command's own help is held to the same).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

LIST = """
import json, click
from {module} import main
def walk(group, path):
    ctx = click.Context(group, info_name=path[-1] if path else None)
    for name in sorted(group.list_commands(ctx)):
        cmd = group.get_command(ctx, name)
        out.append([*path, name])
        if isinstance(cmd, click.Group):
            walk(cmd, [*path, name])
out = [[]]
walk(main, [])
print(json.dumps(out))
"""


def best_of(argv: list[str], repeat: int, env: dict[str, str]) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        subprocess.run(
            argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True
        )
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--limit", type=float, default=0.5, help="seconds a command's --help may take")
    args = ap.parse_args()
    import json

    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    baseline = best_of([sys.executable, "-c", "import click"], args.repeat, env)
    print(f"baseline (python -c 'import click'): {baseline:.3f} s")
    worst: tuple[float, str] = (0.0, "")
    over = []
    for program, module in (("curate", "curate.cli"), ("train", "train.cli")):
        listing = subprocess.run(
            [sys.executable, "-c", LIST.format(module=module)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
        )
        listing.check_returncode()
        for path in json.loads(listing.stdout):
            name = " ".join([program, *path, "--help"])
            code = f"import sys; from {module} import main; sys.argv = {[program, *path, '--help']!r}; main()"
            seconds = best_of([sys.executable, "-c", code], args.repeat, env)
            print(f"{name:40s} {seconds:6.3f} s  x{seconds / baseline:5.2f}")
            worst = max(worst, (seconds, name))
            if seconds > args.limit:
                over.append(name)
    print(f"slowest: {worst[1]} {worst[0]:.3f} s (x{worst[0] / baseline:.2f} the baseline)")
    if over:
        print(f"over {args.limit} s: {', '.join(over)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
