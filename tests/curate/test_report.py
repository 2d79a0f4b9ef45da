"""The HTML report: payload contents, self-containment, escaping, and a real headless browser
(Debian's chromium) that renders it, draws the charts and logs no console error. The screenshot is
saved under test-artifacts/."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from pipeline_helpers import make_rows, near_copy, register_topk, write_jsonl

from curate.pipeline.recipe import load_recipe
from curate.pipeline.refresh import refresh
from curate.pipeline.report import build_payload, write_report
from curate.pipeline.run import run_recipe

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
HOSTILE = "</script><script>window.__pwned=1</script><img src=x onerror=alert(1)>"

RECIPE = """\
name: rep
inputs: [raw.jsonl]
stages:
  - dedup: {methods: [exact, minhash], threshold: 0.7}
  - select: {target: 60}
outputs:
  data: out/rep.jsonl
state: state
"""


@pytest.fixture(autouse=True)
def _topk():
    from curate.pipeline import stages as registry

    saved = registry.REGISTRY["select"]
    register_topk()
    yield
    registry.REGISTRY["select"] = saved


@pytest.fixture()
def run_dir(tmp_path: Path) -> Path:
    rows = make_rows(80, seed=4)
    rows += [dict(rows[i]) for i in range(6)] + [near_copy(rows[i]) for i in range(10, 16)]
    rows.append({"instruction": "How do I escape " + HOSTILE + "?", "output": "Like this: " + HOSTILE * 3})
    write_jsonl(tmp_path / "raw.jsonl", rows, bad_lines=1)
    (tmp_path / "recipe.yaml").write_text(RECIPE, encoding="utf-8")
    return tmp_path


def test_payload_from_a_run(run_dir: Path):
    res = run_recipe(load_recipe(run_dir / "recipe.yaml"), quiet=True)
    p = build_payload(res.manifest_path)
    s = p["summary"]
    assert s["input"] == 94 and s["rejected"] == 1
    assert s["input"] == s["kept"] + s["dropped"] + s["rejected"] - s["added"]
    assert [f["stage"] for f in p["funnel"]] == ["ingest", "dedup", "select"]
    reasons = {(d["stage"], d["reason"]): d["count"] for d in p["drops"]}
    assert reasons[("dedup", "exact duplicate")] == 6
    assert reasons[("dedup", "near duplicate")] >= 6
    assert (
        reasons[("select", "below target (shorter answer)")]
        == s["dropped"] - 6 - reasons[("dedup", "near duplicate")]
    )
    assert all(d["examples"] for d in p["drops"])
    # clusters: survivor plus members, with the kept one marked
    assert p["clusters"] and all(any(m["kept"] for m in c["members"]) for c in p["clusters"])
    hist_titles = [h["title"] for h in p["profile"]["histograms"]]
    assert any("Question length" in t for t in hist_titles) and any("Answer length" in t for t in hist_titles)
    q = next(h for h in p["profile"]["histograms"] if "Question" in h["title"])
    assert sum(q["series"]["kept"]["counts"]) == s["kept"]
    assert sum(q["series"]["dropped"]["counts"]) == s["dropped"]
    assert set(p["profile"]["languages"]["kept"]) <= {"zh", "en", "mixed", "other"}
    assert sum(p["profile"]["languages"]["kept"].values()) == s["kept"]
    statuses = {r["status"] for r in p["rows"]}
    assert statuses == {"kept", "dropped"}
    assert {r["reason"] for r in p["rows"] if r["status"] == "dropped"} >= {
        "exact duplicate",
        "near duplicate",
    }
    # the same report from the work dir and from the recipe
    assert build_payload(run_dir / ".tamis" / "rep")["title"] == p["title"]
    assert build_payload(run_dir / "recipe.yaml")["title"] == p["title"]


def test_payload_from_a_data_file_with_scores(tmp_path: Path):
    from curate.io import load, write_frame

    rows = make_rows(50, seed=5)
    write_jsonl(tmp_path / "raw.jsonl", rows)
    fr = load([tmp_path / "raw.jsonl"]).frame
    fr = fr.with_columns(
        (pl.col("answer").str.len_chars() / 100.0).alias("reward"), pl.lit(["long"]).alias("flags")
    )
    from curate.stage import mark_dropped

    write_frame(fr.head(40), tmp_path / "d.selected.jsonl")
    write_frame(mark_dropped(fr.tail(10), "select", "reward < 0.5"), tmp_path / "d.selected.dropped.jsonl")
    p = build_payload(tmp_path / "d.selected.jsonl")
    assert p["summary"]["kept"] == 40 and p["summary"]["dropped"] == 10
    assert "reward" in p["profile"]["scores"]
    h = next(h for h in p["profile"]["histograms"] if h["title"] == "Score: reward")
    assert sum(h["series"]["kept"]["counts"]) == 40 and sum(h["series"]["dropped"]["counts"]) == 10
    kept_row = next(r for r in p["rows"] if r["status"] == "kept")
    assert kept_row["flags"] == ["long"] and kept_row["scores"]["reward"] is not None


def test_payload_from_refresh_versions(run_dir: Path):
    r = load_recipe(run_dir / "recipe.yaml")
    refresh(r, quiet=True)
    write_jsonl(run_dir / "more.jsonl", make_rows(20, seed=6, start=3000))
    refresh(r, [run_dir / "more.jsonl"], quiet=True)
    p = build_payload(r.state_dir)
    assert [v["version"] for v in p["versions"]] == ["v000001", "v000002"]
    assert p["compare"]["before"] == "v000001" and p["compare"]["after"] == "v000002"
    assert p["compare"]["rows"] == {"v000001": 60, "v000002": 60}
    assert p["versions"][1]["added"] == p["versions"][1]["removed"] > 0


def test_report_is_self_contained_and_escapes_row_text(run_dir: Path, tmp_path: Path):
    res = run_recipe(load_recipe(run_dir / "recipe.yaml"), quiet=True)
    out = write_report(res.manifest_path, tmp_path / "r.html")
    html = out.read_text(encoding="utf-8")
    # no network: no external URL in src/href, nothing fetched
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert "fetch(" not in html and "XMLHttpRequest" not in html and "@import" not in html
    # row text cannot close the data script or inject markup
    assert html.count("</script>") == 2
    assert "<img src=x" not in html
    assert "innerHTML" not in html


def _chromium() -> str:
    if os.path.exists(CHROMIUM):
        return CHROMIUM
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        pytest.skip(
            "chromium is not installed and apt-get is unavailable (or not root): cannot run the browser test"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, timeout=600)
    p = subprocess.run(
        ["apt-get", "install", "-y", "-qq", "chromium"], env=env, capture_output=True, text=True, timeout=900
    )
    if p.returncode != 0 or not os.path.exists(CHROMIUM):
        pytest.skip(f"could not install chromium with apt-get: {p.stderr[-500:]}")
    return CHROMIUM


def _browser(html: Path, tmp: Path, *extra: str) -> subprocess.CompletedProcess:
    cmd = [
        _chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        f"--user-data-dir={tmp / 'chromium-profile'}",
        "--enable-logging=stderr",
        "--v=0",
        "--virtual-time-budget=5000",
        *extra,
        html.as_uri(),
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180)


def _console_lines(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if ":CONSOLE" in ln or "Uncaught" in ln]


@pytest.mark.parametrize("source", ["run", "state"])
def test_report_renders_in_headless_chromium(run_dir: Path, tmp_path: Path, source: str):
    r = load_recipe(run_dir / "recipe.yaml")
    if source == "run":
        target = run_recipe(r, quiet=True).manifest_path
    else:
        refresh(r, quiet=True)
        write_jsonl(
            run_dir / "more.jsonl", make_rows(20, seed=6, start=3000) + [near_copy(make_rows(1, seed=4)[0])]
        )
        refresh(r, [run_dir / "more.jsonl"], quiet=True)
        target = r.state_dir
    html = write_report(target, tmp_path / f"report-{source}.html")

    dom = _browser(html, tmp_path, "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    root = re.search(r"<html[^>]*>", dom.stdout).group(0)
    assert 'data-rendered="1"' in root, root
    assert 'data-errors="0"' in root, root
    n_charts = int(re.search(r'data-charts="(\d+)"', root).group(1))
    expected = (
        6 if source == "run" else 9
    )  # funnel, drops, clusters, 2 histograms, languages (+ versions, compare)
    assert n_charts >= expected, n_charts
    assert _console_lines(dom.stderr) == [], _console_lines(dom.stderr)
    assert "__pwned" not in dom.stdout.split("</script>")[-1]  # the hostile row never ran
    # the drawn DOM: SVG marks, the funnel's stages, and a table of sample rows
    assert dom.stdout.count("<rect") > 40
    assert "exact duplicate" in dom.stdout and "near duplicate" in dom.stdout
    assert re.search(r'<table id="rows-table">.*?<tbody><tr>', dom.stdout, re.S)

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / f"report-{source}.png"
    if shot.exists():
        shot.unlink()
    p = _browser(html, tmp_path, "--window-size=1280,3000", f"--screenshot={shot}")
    assert p.returncode == 0 and shot.is_file() and shot.stat().st_size > 20_000
    shutil.copy(html, ARTIFACTS / f"report-{source}.html")


def test_report_cli(run_dir: Path):
    run_recipe(load_recipe(run_dir / "recipe.yaml"), quiet=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    code = (
        f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); from pipeline_helpers import register_topk; register_topk(); "
        "from curate.cli import main; sys.argv = ['curate'] + sys.argv[1:]; main()"
    )
    p = subprocess.run(
        [sys.executable, "-c", code, "report", ".tamis/rep", "-o", "rep.html", "--json"],
        cwd=run_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 0, p.stderr
    s = json.loads(p.stdout)
    assert s["kind"] == "run" and s["kept"] == 60 and (run_dir / "rep.html").is_file()
    p = subprocess.run(
        [sys.executable, "-c", code, "report", "nope"],
        cwd=run_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 2
