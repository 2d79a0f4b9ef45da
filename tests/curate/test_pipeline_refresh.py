"""curate refresh: only new rows, dedup against everything seen, versions and changelogs, the lock,
and crash safety (SIGKILL at every commit point and at random times)."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest
from pipeline_helpers import make_rows, near_copy, register_topk, write_jsonl

from curate.pipeline.recipe import load_recipe
from curate.pipeline.refresh import (
    FAULT_ENV,
    FAULT_POINTS,
    Locked,
    StateLock,
    list_versions,
    read_current,
    refresh,
    version_dir,
)

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent

RECIPE = """\
name: fresh
inputs: [raw1.jsonl]
stages:
  - dedup: {methods: [exact, minhash], threshold: 0.7}
  - select: {target: %d}
outputs:
  data: out/data.jsonl
state: state
"""

# runs the real CLI with the test-only `select` stage registered (a subprocess cannot be monkeypatched)
RUNNER = """
import sys
sys.path.insert(0, {here!r})
from pipeline_helpers import register_topk
register_topk()
from curate.cli import main
sys.argv = ["curate"] + sys.argv[1:]
main()
"""


@pytest.fixture(autouse=True)
def _topk():
    from curate.pipeline import stages as registry

    saved = registry.REGISTRY["select"]
    register_topk()
    yield
    registry.REGISTRY["select"] = saved


@pytest.fixture()
def world(tmp_path: Path) -> Path:
    base = make_rows(100, seed=1)
    write_jsonl(tmp_path / "raw1.jsonl", base)
    batch2 = base[60:80] + make_rows(30, seed=2, start=1000) + [near_copy(base[i]) for i in range(5)]
    batch2 += [dict(batch2[25]), dict(batch2[26])]  # repeated within the batch
    write_jsonl(tmp_path / "raw2.jsonl", batch2, bad_lines=1)
    batch3 = make_rows(10, seed=3, start=2000) + base[:3]
    write_jsonl(tmp_path / "raw3.jsonl", batch3)
    (tmp_path / "recipe.yaml").write_text(RECIPE % 90, encoding="utf-8")
    return tmp_path


def _recipe(world: Path, state: Path | None = None):
    r = load_recipe(world / "recipe.yaml")
    if state is not None:
        r.state_dir = state
    return r


def snapshot(state: Path) -> dict:
    """Everything a refresh publishes, minus timestamps and timings."""
    cur = read_current(state)
    n = cur["version"]
    out = {"version": n, "rows": cur["rows"], "index_batches": cur["index_batches"]}
    for k in range(1, n + 1):
        d = version_dir(state, k)
        for name in ("delta", "dropped", "data", "tail_dropped", "rejects"):
            p = d / f"{name}.parquet"
            out[f"v{k}/{name}"] = pl.read_parquet(p) if p.is_file() else None
        log = json.loads((d / "changelog.json").read_text())
        log.pop("created")
        for s in log["stages"]:
            s.pop("seconds", None)
            s.pop("compute_seconds", None)
            s.pop("stage_stats", None)
        out[f"v{k}/changelog"] = log
    idx = state / "index" / cur.get("index_generation", "g1")
    for d in sorted(idx.rglob("batch-*")):
        out[f"index/{d.parent.name}/{d.name}"] = pl.read_parquet(d / "rows.parquet")
    return out


def assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        x, y = a[k], b[k]
        if isinstance(x, pl.DataFrame):
            assert isinstance(y, pl.DataFrame) and x.equals(y), k
        else:
            assert x == y, k


def _cli(args: list[str], cwd: Path, fault: str | None = None, wait: bool = True):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop(FAULT_ENV, None)
    if fault:
        env[FAULT_ENV] = fault
    cmd = [sys.executable, "-c", RUNNER.format(here=str(HERE)), *args]
    if not wait:
        return subprocess.Popen(
            cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


# ---------------------------------------------------------------------------------------------- behaviour


def test_refresh_processes_only_new_rows_and_writes_versions(world: Path):
    r = _recipe(world)
    s1 = refresh(r, quiet=True).summary
    assert s1["version"] == "v000001" and s1["new_rows"] == 100 and s1["rows"] == 90
    s2 = refresh(r, [world / "raw2.jsonl"], quiet=True).summary
    # 20 rows seen before are skipped; 2 repeated in the batch and 5 near copies of v1 rows are dropped
    assert s2["skipped_seen"] == 20 and s2["rejected"] == 1
    assert s2["new_rows"] == 37 and s2["new_dropped"] == 7 and s2["new_kept"] == 30
    assert s2["new_dropped_by_reason"] == {"near duplicate": 5, "exact duplicate": 2}
    log = list_versions(r.state_dir)[-1]
    assert log["repeated_in_batch"] == 2
    dedup = next(s for s in log["stages"] if s["id"] == "dedup")
    assert dedup["in"] == 37  # dedup (and every row-level stage) saw only the new rows
    sel = next(s for s in log["stages"] if s["id"] == "select")
    assert sel["in"] == 130  # the whole-set stage saw the pool of every row that passed
    # the near copies name the earlier row, its source and its version
    dropped = pl.read_parquet(version_dir(r.state_dir, 2) / "dropped.parquet")
    detail = [
        json.loads(d)
        for d, why in zip(dropped["drop_detail"], dropped["drop_reason"], strict=False)
        if why == "near duplicate"
    ]
    assert len(detail) == 5
    assert all(d["survivor_batch"] == 1 for d in detail)
    assert all(d["survivor_source"].startswith("raw1.jsonl:") for d in detail)
    exact = [
        json.loads(d)
        for d, why in zip(dropped["drop_detail"], dropped["drop_reason"], strict=False)
        if why == "exact duplicate"
    ]
    assert all(d["survivor_source"].startswith("raw2.jsonl:") for d in exact)
    # the dataset: 90 longest of 130; the changelog explains what came and went
    data = pl.read_parquet(version_dir(r.state_dir, 2) / "data.parquet")
    assert data.height == 90 and data["id"].n_unique() == 90
    assert log["added"]["count"] == log["removed"]["count"]
    assert set(log["removed"]["why"]) <= {"select: below target (shorter answer)"}
    assert log["added"]["why"].get("new row", 0) == log["added"]["count"] - log["added"]["why"].get(
        "re-selected (seen before)", 0
    )
    assert pl.read_ndjson(world / "out" / "data.jsonl")["id"].sort().equals(data["id"].sort())
    # previous version untouched
    v1 = pl.read_parquet(version_dir(r.state_dir, 1) / "data.parquet")
    assert v1.height == 90
    # nothing lost: every row read is in the pool, dropped, rejected or was seen before
    pool = pl.concat([pl.read_parquet(version_dir(r.state_dir, k) / "delta.parquet") for k in (1, 2)])
    assert pool.height + dropped.height == 100 + 37
    # nothing new -> no new version
    s3 = refresh(r, [world / "raw2.jsonl"], quiet=True).summary
    assert s3["status"] == "unchanged" and read_current(r.state_dir)["version"] == 2


def test_refresh_with_recipe_inputs_that_grow(world: Path):
    r = _recipe(world)
    refresh(r, quiet=True)
    with open(world / "raw1.jsonl", "a", encoding="utf-8") as fh:
        for row in make_rows(4, seed=9, start=5000):
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    s = refresh(_recipe(world), quiet=True).summary
    assert s["skipped_seen"] == 100 and s["new_rows"] == 4 and s["version"] == "v000002"


def test_changed_incremental_stage_requires_rebuild(world: Path):
    r = _recipe(world)
    refresh(r, quiet=True)
    refresh(r, [world / "raw2.jsonl"], quiet=True)
    (world / "recipe.yaml").write_text(
        (RECIPE % 90).replace("threshold: 0.7", "threshold: 0.99"), encoding="utf-8"
    )
    from curate.pipeline.recipe import RecipeError

    with pytest.raises(RecipeError, match="changed since v000002.*--rebuild"):
        refresh(_recipe(world), [world / "raw3.jsonl"], quiet=True)
    s = refresh(_recipe(world), [world / "raw3.jsonl"], quiet=True, rebuild=True).summary
    assert s["version"] == "v000003"
    log = list_versions(r.state_dir)[-1]
    assert log["rebuild"] and next(x for x in log["stages"] if x["id"] == "dedup")["in"] == 100 + 37 + 10
    # near copies are no longer near enough at 0.99: they come back; the exact repeats do not
    assert log["new_rows_dropped"]["why"] == {"dedup: exact duplicate": 2}


def test_changing_only_a_whole_set_stage_needs_no_rebuild(world: Path):
    r = _recipe(world)
    refresh(r, quiet=True)
    (world / "recipe.yaml").write_text(RECIPE % 50, encoding="utf-8")
    s = refresh(_recipe(world), [world / "raw3.jsonl"], quiet=True).summary
    assert s["rows"] == 50 and s["removed"] >= 40


# ---------------------------------------------------------------------------------------------- lock


def test_second_refresh_refuses_while_one_holds_the_lock(world: Path):
    r = _recipe(world)
    with StateLock(r.state_dir):
        with pytest.raises(Locked, match="another refresh"):
            refresh(r, quiet=True)
        p = _cli(["refresh", "recipe.yaml", "--json"], world)
        assert p.returncode == 3, p.stderr
        assert json.loads(p.stdout)["status"] == "locked"
        assert "another refresh" in p.stderr
    assert read_current(r.state_dir) is None  # the refused runs changed nothing
    assert refresh(r, quiet=True).summary["version"] == "v000001"


def test_two_concurrent_refresh_processes(world: Path, tmp_path_factory):
    ref_state = tmp_path_factory.mktemp("ref") / "state"
    ref = _recipe(world, ref_state)
    refresh(ref, quiet=True)
    refresh(ref, [world / "raw2.jsonl"], quiet=True)

    r = _recipe(world)
    refresh(r, quiet=True)
    a = _cli(
        ["refresh", "recipe.yaml", "raw2.jsonl", "--json"], world, fault="sleep:after-lock:6", wait=False
    )
    lock = r.state_dir / ".lock"
    deadline = time.time() + 60
    while time.time() < deadline:
        if lock.is_file() and f"pid {a.pid} " in lock.read_text():
            break
        time.sleep(0.05)
    else:
        a.kill()
        pytest.fail("the first refresh never took the lock")
    b = _cli(["refresh", "recipe.yaml", "raw2.jsonl", "--json"], world)
    out_a, err_a = a.communicate(timeout=120)
    assert b.returncode == 3 and json.loads(b.stdout)["status"] == "locked"
    assert a.returncode == 1, err_a  # ok, with one rejected input line
    assert json.loads(out_a)["version"] == "v000002"
    assert_same(snapshot(r.state_dir), snapshot(ref_state))


# ---------------------------------------------------------------------------------------------- crash safety


@pytest.fixture()
def reference(world: Path, tmp_path_factory):
    """v1 from raw1, then the uninterrupted v2 from raw2; and a copy of the state at v1."""
    v1_state = tmp_path_factory.mktemp("v1") / "state"
    refresh(_recipe(world, v1_state), quiet=True)
    ref_state = tmp_path_factory.mktemp("ref") / "state"
    shutil.copytree(v1_state, ref_state)
    refresh(_recipe(world, ref_state), [world / "raw2.jsonl"], quiet=True)
    return v1_state, snapshot(v1_state), snapshot(ref_state)


@pytest.mark.parametrize("point", FAULT_POINTS)
def test_sigkill_at_every_point_loses_nothing(world: Path, reference, tmp_path: Path, point: str):
    v1_state, v1_snap, ref_snap = reference
    state = tmp_path / f"state-{point}"
    shutil.copytree(v1_state, state)
    p = _cli(["refresh", "recipe.yaml", "raw2.jsonl", "--state", str(state)], world, fault=f"kill:{point}")
    assert p.returncode == -signal.SIGKILL, (p.returncode, p.stderr[-2000:])
    cur = read_current(state)["version"]
    if FAULT_POINTS.index(point) >= FAULT_POINTS.index("after-commit"):
        assert cur == 2
    else:
        # the previous version is intact and still the current one
        assert cur == 1
        v1_after = snapshot(state)
        for k, v in v1_snap.items():
            if k.startswith("v1/"):
                assert (
                    (v is None and v1_after[k] is None) or v.equals(v1_after[k])
                    if isinstance(v, pl.DataFrame)
                    else v == v1_after[k]
                )
    # the next run finishes the job: exactly the uninterrupted result
    s = refresh(_recipe(world, state), [world / "raw2.jsonl"], quiet=True).summary
    assert s["status"] == ("ok" if cur == 1 else "unchanged")
    assert_same(snapshot(state), ref_snap)
    assert not list((state / "versions").glob(".tmp-*"))


def test_sigkill_at_random_moments(world: Path, reference, tmp_path: Path):
    v1_state, _v1, ref_snap = reference
    rng = random.Random(8)
    for trial in range(4):
        state = tmp_path / f"state-{trial}"
        shutil.copytree(v1_state, state)
        proc = _cli(["refresh", "recipe.yaml", "raw2.jsonl", "--state", str(state)], world, wait=False)
        lock = state / ".lock"
        deadline = time.time() + 60
        while time.time() < deadline and proc.poll() is None:  # wait until it holds the lock
            if lock.is_file() and f"pid {proc.pid} " in lock.read_text():
                break
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.5))  # then kill it somewhere in the middle of its work
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
        assert read_current(state)["version"] in (1, 2)
        refresh(_recipe(world, state), [world / "raw2.jsonl"], quiet=True)
        assert_same(snapshot(state), ref_snap)


# ---------------------------------------------------------------------------------------------- scoring


def test_refresh_scores_only_new_rows(world: Path, tiny_models):
    """With a real score stage (the tiny offline LM): a refresh scores the new rows only, the pool
    keeps every earlier row's scores, and an unchanged `curate run` re-run scores nothing."""
    pytest.importorskip("torch")
    from curate.pipeline.run import run_recipe

    (world / "recipe.yaml").write_text(
        "name: scored\ninputs: [raw1.jsonl]\nstages:\n"
        "  - dedup: {methods: [exact]}\n"
        f"  - score: {{scorers: [ppl, ifd], lm: {tiny_models['lm']}, device: cpu}}\n"
        "  - select: {target: 200}\n"
        "outputs:\n  data: out/data.jsonl\nstate: state\n",
        encoding="utf-8",
    )
    r = _recipe(world)
    refresh(r, quiet=True)
    s2 = refresh(r, [world / "raw3.jsonl"], quiet=True).summary
    assert s2["new_rows"] == 10 and s2["skipped_seen"] == 3
    log = list_versions(r.state_dir)[-1]
    score = next(s for s in log["stages"] if s["id"] == "score")
    assert score["in"] == 10  # only the new rows went through the scorer
    data = pl.read_parquet(version_dir(r.state_dir, 2) / "data.parquet")
    assert data.height == 110 and data["ppl"].null_count() == 0 and data["ifd"].null_count() == 0
    v1 = pl.read_parquet(version_dir(r.state_dir, 1) / "data.parquet")
    joined = v1.select("id", "ppl").join(data.select("id", "ppl"), on="id", suffix="_v2")
    assert joined.height == 100 and (joined["ppl"] == joined["ppl_v2"]).all()  # earlier scores carried over
    # the recipe run: a second run is all cache hits; the manifest names the model and its fingerprint
    first = run_recipe(load_recipe(world / "recipe.yaml"), quiet=True)
    models = first.manifest["models"]
    assert models and models[0]["stage"] == "score" and models[0]["model"] == str(tiny_models["lm"])
    assert len(models[0]["fingerprint"]) == 16
    again = run_recipe(load_recipe(world / "recipe.yaml"), quiet=True)
    assert all(s["cached"] for s in again.manifest["stages"])


def test_changed_ingest_map_of_an_input_requires_rebuild(world: Path):
    qa = world / "qa.csv"
    qa.write_text("问题,回答,备注\nq1 about pods,a1 check the logs,n1\nq2 about nodes,a2 check disk,n2\n")
    text = "name: m\ninputs:\n  - {path: qa.csv, map: {question: 问题, answer: %s}}\nstate: state\n"
    (world / "m.yaml").write_text(text % "回答", encoding="utf-8")
    refresh(load_recipe(world / "m.yaml"), quiet=True)
    (world / "m.yaml").write_text(text % "备注", encoding="utf-8")
    from curate.pipeline.recipe import RecipeError

    with pytest.raises(RecipeError, match="qa.csv is read .* changed since v000001.*--rebuild"):
        refresh(load_recipe(world / "m.yaml"), quiet=True)
    # adding another input (with its own map) is not a change to how the first one is read
    (world / "more.csv").write_text("q,a\nq3 about dns,a3 check ndots\n")
    (world / "m.yaml").write_text(
        "name: m\ninputs:\n  - {path: qa.csv, map: {question: 问题, answer: 回答}}\n"
        "  - {path: more.csv, map: {question: q, answer: a}}\nstate: state\n",
        encoding="utf-8",
    )
    s = refresh(load_recipe(world / "m.yaml"), quiet=True).summary
    assert s["new_rows"] == 1 and s["skipped_seen"] == 2


def test_refresh_writes_and_clears_the_rejects_file(world: Path):
    r = _recipe(world)
    refresh(r, quiet=True)
    rejects = world / "out" / "data.rejects.jsonl"
    assert not rejects.exists()
    s = refresh(_recipe(world), [world / "raw2.jsonl"], quiet=True)
    assert s.exit_code == 1 and rejects.is_file() and len(rejects.read_text().splitlines()) == 1
    # the same batch again: nothing new, yet its unreadable row is still reported (exit 1, file kept)
    s = refresh(_recipe(world), [world / "raw2.jsonl"], quiet=True)
    assert s.summary["status"] == "unchanged" and s.exit_code == 1
    assert s.summary["rejects"] == str(rejects) and rejects.is_file()
    # a clean batch: the file of the earlier batch does not linger
    s = refresh(_recipe(world), [world / "raw3.jsonl"], quiet=True)
    assert s.exit_code == 0 and not rejects.exists()


def test_a_batch_that_is_one_of_the_outputs_is_refused(world: Path):
    r = _recipe(world)
    refresh(r, [world / "raw2.jsonl"], quiet=True)
    rejects = world / "out" / "data.rejects.jsonl"
    before = rejects.read_bytes()
    from curate.pipeline.recipe import RecipeError

    with pytest.raises(RecipeError, match="data.rejects.jsonl is this recipe's rejects output"):
        refresh(_recipe(world), [rejects], quiet=True)
    assert rejects.read_bytes() == before


# ---------------------------------------------------------------------------------------------- published outputs

OUT_RECIPE = """\
name: fresh
inputs: [raw1.jsonl]
stages:
  - dedup: {methods: [exact, minhash], threshold: 0.7}
  - select: {target: 90}
  - export: {output: out/train.jsonl, format: trl}
outputs:
  data: out/data.jsonl
  report: out/report.html
  manifest: out/manifest.json
state: state
"""
PUBLISHED_FILES = ("data.jsonl", "train.jsonl", "report.html", "manifest.json")


def published(world: Path) -> dict[str, object]:
    """What a reader of the published outputs sees: the version each one shows."""
    out = world / "out"
    seen: dict[str, object] = {}
    for name in ("data.jsonl", "train.jsonl"):
        p = out / name
        seen[name] = p.read_text(encoding="utf-8") if p.is_file() else None
    rp = out / "report.html"
    seen["report.html"] = None
    if rp.is_file():
        import re

        m = re.search(r"current v(\d{6})", rp.read_text(encoding="utf-8"))
        seen["report.html"] = int(m.group(1)) if m else "?"
    mp = out / "manifest.json"
    seen["manifest.json"] = json.loads(mp.read_text())["version"] if mp.is_file() else None
    return seen


def temp_leftovers(world: Path) -> list[str]:
    return sorted(
        p.name for p in (world / "out").iterdir() if p.name.endswith(".tmp") or p.name.startswith(".")
    )


@pytest.fixture()
def out_world(world: Path, tmp_path_factory):
    """A recipe that publishes data, export, report and manifest; (world at v1, outputs at v1, outputs
    of the uninterrupted v2)."""
    (world / "recipe.yaml").write_text(OUT_RECIPE, encoding="utf-8")
    refresh(_recipe(world), quiet=True)
    v1 = published(world)
    assert v1["report.html"] == 1 and v1["manifest.json"] == 1
    ref = tmp_path_factory.mktemp("ref-world") / "w"
    shutil.copytree(world, ref)
    refresh(_recipe(ref), [ref / "raw2.jsonl"], quiet=True)
    v2 = published(ref)
    assert v2["report.html"] == 2 and v2["data.jsonl"] != v1["data.jsonl"]
    return world, v1, v2


def _check_killed_then_recovered(world: Path, v1: dict, v2: dict) -> None:
    cur = read_current(world / "state")["version"]
    now = published(world)
    if cur == 1:  # killed before the commit: every published output still shows v1
        assert now == v1
    else:  # killed after the commit: each output shows v2, or v1 until the next run publishes it
        assert all(now[k] in (v1[k], v2[k]) for k in PUBLISHED_FILES), now
    s = refresh(_recipe(world), [world / "raw2.jsonl"], quiet=True).summary
    assert s["version"] == "v000002" and "warnings" not in s
    assert published(world) == v2  # report, data, export and manifest all on the committed version
    assert temp_leftovers(world) == []


@pytest.mark.parametrize("point", ["after-tail", "before-commit", "after-commit", "after-publish"])
def test_sigkill_leaves_published_outputs_on_the_committed_version(out_world, point: str):
    world, v1, v2 = out_world
    p = _cli(["refresh", "recipe.yaml", "raw2.jsonl"], world, fault=f"kill:{point}")
    assert p.returncode == -signal.SIGKILL, p.stderr[-2000:]
    if point in ("after-tail", "before-commit"):
        # the new outputs exist only as staged temporary files, never under their published names
        assert published(world) == v1
    _check_killed_then_recovered(world, v1, v2)


def test_kill_campaign_random_moments_published_outputs(out_world, tmp_path: Path):
    """The kill campaign, kept small for CI; `bench/kill_refresh.py` runs it at any size."""
    world, v1, v2 = out_world
    pristine = tmp_path / "pristine"
    shutil.copytree(world, pristine)
    rng = random.Random(17)
    for trial in range(3):
        w = tmp_path / f"w{trial}"
        shutil.copytree(pristine, w)
        proc = _cli(["refresh", "recipe.yaml", "raw2.jsonl"], w, wait=False)
        lock = w / "state" / ".lock"
        deadline = time.time() + 60
        while time.time() < deadline and proc.poll() is None:
            if lock.is_file() and f"pid {proc.pid} " in lock.read_text():
                break
            time.sleep(0.01)
        time.sleep(rng.uniform(0.2, 1.2))
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
        _check_killed_then_recovered(w, v1, v2)  # outputs hold no absolute paths: comparable across copies


def test_report_write_failure_after_commit_is_a_warning_not_an_error(out_world, monkeypatch):
    """A publish step that fails after the commit (disk full, read-only directory) reports the
    committed version with a warning; the next run finishes publishing it."""
    world, v1, v2 = out_world
    real_replace = os.replace
    report = str(world / "out" / "report.html")

    def failing_replace(src, dst, *a, **k):
        if str(dst) == report:
            raise OSError(28, "No space left on device", str(dst))
        return real_replace(src, dst, *a, **k)

    import curate.pipeline.publish as publish_mod

    monkeypatch.setattr(publish_mod.os, "replace", failing_replace)
    s = refresh(_recipe(world), [world / "raw2.jsonl"], quiet=True).summary
    assert s["status"] == "ok" and s["version"] == "v000002"
    assert any("report.html" in w and "No space left" in w for w in s["warnings"])
    assert published(world)["report.html"] == 1 and published(world)["data.jsonl"] == v2["data.jsonl"]
    monkeypatch.setattr(publish_mod.os, "replace", real_replace)
    again = refresh(_recipe(world), [world / "raw2.jsonl"], quiet=True).summary
    assert again["status"] == "unchanged" and "warnings" not in again
    assert published(world) == v2 and temp_leftovers(world) == []


def test_failure_before_commit_publishes_nothing(out_world, monkeypatch):
    world, v1, _v2 = out_world
    import curate.pipeline.refresh as refresh_mod

    def broken(*a, **k):
        raise OSError(28, "No space left on device", str(world / "state" / "CURRENT"))

    monkeypatch.setattr(refresh_mod.publish, "write_journal", broken)
    with pytest.raises(OSError):
        refresh(_recipe(world), [world / "raw2.jsonl"], quiet=True)
    assert read_current(world / "state")["version"] == 1
    assert published(world) == v1 and temp_leftovers(world) == []


def test_stale_temp_files_are_removed(out_world):
    world, v1, v2 = out_world
    stale = world / "out" / ".report.html.abc123.tmp"
    stale.write_text("half a report")
    refresh(_recipe(world), [world / "raw3.jsonl"], quiet=True)
    assert not stale.exists()


def test_cli_failure_after_commit_is_ok_with_a_warning(out_world, monkeypatch):
    """The scheduler's view: exit code and --json status name the committed version, never "error"."""
    from click.testing import CliRunner

    from curate.cli import main

    world, _v1, v2 = out_world
    import curate.pipeline.publish as publish_mod

    real_replace = os.replace

    def read_only_dir(src, dst, *a, **k):
        if Path(dst).parent == world / "out":
            raise OSError(30, "Read-only file system", str(dst))
        return real_replace(src, dst, *a, **k)

    monkeypatch.setattr(publish_mod.os, "replace", read_only_dir)
    monkeypatch.chdir(world)
    r = CliRunner().invoke(main, ["refresh", "recipe.yaml", "raw2.jsonl", "--json"])
    s = json.loads(r.stdout.strip().splitlines()[-1])
    assert r.exit_code == 1 and s["exit_code"] == 1  # 1: raw2 has an unreadable line; never 2
    assert s["status"] == "ok" and s["version"] == "v000002"
    assert any("Read-only file system" in w for w in s["warnings"]) and "warning" in r.stderr
    monkeypatch.setattr(publish_mod.os, "replace", real_replace)
    again = CliRunner().invoke(main, ["refresh", "recipe.yaml", "raw2.jsonl", "--json"])
    assert json.loads(again.stdout.strip().splitlines()[-1])["status"] == "unchanged"
    assert published(world) == v2 and temp_leftovers(world) == []


def test_removals_wait_for_the_commit_too(world: Path, monkeypatch):
    """A clean batch removes the rejects file of the previous one, but only once its version commits."""
    import curate.pipeline.refresh as refresh_mod

    refresh(_recipe(world), quiet=True)
    refresh(_recipe(world), [world / "raw2.jsonl"], quiet=True)
    rejects = world / "out" / "data.rejects.jsonl"
    assert rejects.is_file()

    def broken(*a, **k):
        raise OSError(28, "No space left on device", "journal")

    monkeypatch.setattr(refresh_mod.publish, "write_journal", broken)
    with pytest.raises(OSError):
        refresh(_recipe(world), [world / "raw3.jsonl"], quiet=True)
    assert rejects.is_file()  # v2 is still current: its rejects file stays
    monkeypatch.undo()
    refresh(_recipe(world), [world / "raw3.jsonl"], quiet=True)
    assert not rejects.exists()
