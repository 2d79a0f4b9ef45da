"""Kill campaign for `curate refresh`: random SIGKILLs, each followed by a recovery run, compared with a
never-killed run. Not a speed benchmark: it prints how many kills landed where and every mismatch.

    python bench/kill_refresh.py                  # 20 trials (about a minute)
    python bench/kill_refresh.py --trials 200     # the campaign of issue #17

World: samples/ops_qa.jsonl split in two batches; a recipe with dedup (exact + minhash) and an export,
publishing data, report, manifest and the export file. v1 is made from the first batch; each trial
copies that world, starts `curate refresh recipe.yaml batch2.jsonl`, SIGKILLs it after a random delay
(0 .. the duration of an uninterrupted run), then checks:

- right after the kill: CURRENT names v1 or v2, and while it names v1 every published output still
  shows v1 (never an uncommitted version);
- after one more refresh: CURRENT is v2, the version folders (data, delta, dropped, changelog without
  timestamps) and every published output equal the never-killed run's, no temporary file is left, and
  the lock is free (a third refresh says "unchanged").
Exit code 1 when any trial mismatched.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECIPE = """\
name: killed
inputs: [batch1.jsonl]
stages:
  - dedup: {methods: [exact, minhash], threshold: 0.8}
  - export: {output: out/train.jsonl, format: trl}
outputs:
  data: out/data.jsonl
  report: out/report.html
  manifest: out/manifest.json
state: state
"""


def curate(args: list[str], cwd: Path, wait: bool = True):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-c", _MAIN, *args]
    if not wait:
        return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


_MAIN = "import sys; from curate.cli import main; sys.argv = ['curate'] + sys.argv[1:]; main()"


def published(world: Path) -> dict[str, object]:
    out = world / "out"
    seen: dict[str, object] = {}
    for name in ("data.jsonl", "train.jsonl"):
        p = out / name
        seen[name] = p.read_bytes() if p.is_file() else None
    rp = out / "report.html"
    m = re.search(r"current v(\d{6})", rp.read_text(encoding="utf-8")) if rp.is_file() else None
    seen["report.html"] = int(m.group(1)) if m else None
    mp = out / "manifest.json"
    seen["manifest.json"] = json.loads(mp.read_text())["version"] if mp.is_file() else None
    return seen


def state_snapshot(world: Path) -> dict[str, object]:
    import polars as pl

    state = world / "state"
    cur = json.loads((state / "CURRENT").read_text())
    snap: dict[str, object] = {"version": cur["version"], "rows": cur["rows"]}
    for d in sorted((state / "versions").iterdir()):
        for f in sorted(d.glob("*.parquet")):
            snap[f"{d.name}/{f.name}"] = pl.read_parquet(f).to_dicts()
        log = json.loads((d / "changelog.json").read_text())
        log.pop("created", None)
        for s in log.get("stages", []):
            for k in ("seconds", "compute_seconds", "stage_stats"):
                s.pop(k, None)
        log.pop("inputs", None)  # absolute paths of this copy
        snap[f"{d.name}/changelog"] = log
    return snap


def leftovers(world: Path) -> list[str]:
    return sorted(p.name for p in (world / "out").iterdir() if p.name.startswith("."))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--seed", type=int, default=17)
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="tamis-kill-"))
    rows = (ROOT / "samples" / "ops_qa.jsonl").read_text(encoding="utf-8").splitlines()
    base = work / "v1"
    base.mkdir()
    cut = int(len(rows) * 0.6)
    (base / "batch1.jsonl").write_text("\n".join(rows[:cut]) + "\n", encoding="utf-8")
    (base / "batch2.jsonl").write_text("\n".join(rows[cut // 2 :]) + "\n", encoding="utf-8")
    (base / "recipe.yaml").write_text(RECIPE, encoding="utf-8")
    r = curate(["refresh", "recipe.yaml"], base)
    assert r.returncode in (0, 1), r.stderr
    v1_out = published(base)

    ref = work / "ref"
    shutil.copytree(base, ref)
    t0 = time.perf_counter()
    r = curate(["refresh", "recipe.yaml", "batch2.jsonl"], ref)
    ref_seconds = time.perf_counter() - t0
    assert r.returncode in (0, 1), r.stderr
    ref_state, ref_out = state_snapshot(ref), published(ref)
    print(f"never-killed refresh: {ref_seconds:.2f}s, v{ref_state['version']}, {ref_state['rows']} rows")

    rng = random.Random(a.seed)
    where: Counter[str] = Counter()
    bad: list[str] = []
    for trial in range(a.trials):
        w = work / f"t{trial}"
        shutil.copytree(base, w)
        proc = curate(["refresh", "recipe.yaml", "batch2.jsonl"], w, wait=False)
        time.sleep(rng.uniform(0.0, ref_seconds))
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=120)
        landed = proc.returncode == -signal.SIGKILL
        cur = json.loads((w / "state" / "CURRENT").read_text())["version"]
        where[f"{'killed' if landed else 'finished'}, CURRENT v{cur}"] += 1
        if cur == 1 and published(w) != v1_out:
            bad.append(f"trial {trial}: CURRENT is v1 but a published output shows another version")
        rec = curate(["refresh", "recipe.yaml", "batch2.jsonl", "--json"], w)
        summary = json.loads(rec.stdout.strip().splitlines()[-1]) if rec.stdout.strip() else {}
        if rec.returncode not in (0, 1) or summary.get("version") != "v000002":
            bad.append(
                f"trial {trial}: recovery exit {rec.returncode}, summary {summary}: {rec.stderr[-300:]}"
            )
            continue
        if state_snapshot(w) != ref_state:
            bad.append(f"trial {trial}: state differs from the never-killed run")
        if published(w) != ref_out:
            bad.append(f"trial {trial}: published outputs differ from the never-killed run")
        if leftovers(w):
            bad.append(f"trial {trial}: temporary files left: {leftovers(w)}")
        again = curate(["refresh", "recipe.yaml", "batch2.jsonl", "--json"], w)
        if json.loads(again.stdout.strip().splitlines()[-1]).get("status") != "unchanged":
            bad.append(f"trial {trial}: a third run did not say unchanged (lock or state problem)")
        shutil.rmtree(w, ignore_errors=True)
    print(f"{a.trials} trials: " + ", ".join(f"{k}: {v}" for k, v in sorted(where.items())))
    print(f"mismatches: {len(bad)}")
    for b in bad:
        print("  " + b)
    if not a.keep:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"work directory: {work}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
