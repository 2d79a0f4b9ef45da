"""Report: per-source funnel, cut-off lines on the score histograms, readable axes, train/eval split,
the rule that dropped most (with how to disable it), demo-score warning and a wide answer column,
checked in headless Chromium (screenshot in test-artifacts/)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from pipeline_helpers import make_rows, write_jsonl

from curate.pipeline.recipe import load_recipe
from curate.pipeline.report import build_payload, write_report
from curate.pipeline.run import run_recipe

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
QUALITY = ROOT / "samples" / "models" / "quality.ftz"

RECIPE = """\
name: src
inputs: [a.jsonl, b.jsonl]
stages:
  - dedup: {methods: [exact]}
  - filter: {rules: [default]}
  - score: {scorers: [quality]}
  - select: {min: [quality=0.2], eval_size: 0.2, split_semantic: off}
outputs:
  data: out/src.jsonl
"""


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    if not QUALITY.is_file():
        pytest.skip("embedded models not built")
    d = tmp_path_factory.mktemp("rep")
    a = make_rows(40, seed=1)
    b = make_rows(30, seed=2, start=500)
    b += [dict(a[i]) for i in range(5)]  # copies of a's rows: dropped by dedup, counted under b
    b += [
        {"instruction": f"问题 {i}：合同怎么写？", "output": "作为一个AI语言模型，我无法回答。"}
        for i in range(4)
    ]
    write_jsonl(d / "a.jsonl", a)
    write_jsonl(d / "b.jsonl", b, bad_lines=2)
    (d / "recipe.yaml").write_text(RECIPE, encoding="utf-8")
    res = run_recipe(load_recipe(d / "recipe.yaml"), quiet=True)
    return d, res.manifest_path


def test_payload_has_sources_split_cutoffs_and_top_drop(report):
    _, manifest = report
    p = build_payload(manifest)
    src = {Path(s["file"]).name: s for s in p["sources"]}
    assert set(src) == {"a.jsonl", "b.jsonl"}
    assert src["a.jsonl"]["input"] == 40 and src["a.jsonl"]["rejected"] == 0
    b = src["b.jsonl"]
    assert b["input"] == 41 and b["rejected"] == 2 and b["by_stage"]["dedup"] == 5
    assert b["by_stage"]["filter"] >= 4
    assert sum(s["input"] for s in p["sources"]) == p["summary"]["input"]
    assert p["split"]["eval"] > 0 and p["split"]["train"] + p["split"]["eval"] == p["summary"]["kept"]
    assert p["cutoffs"]["quality"][0]["value"] == 0.2
    hist = next(h for h in p["profile"]["histograms"] if h["title"] == "Score: quality")
    assert hist["cutoffs"][0]["label"].startswith("select: keep quality >= 0.2")
    top = p["top_drop"]
    assert top["count"] == max(d["count"] for d in p["drops"])
    assert "disable" in top
    assert p["demo_scores"] == ["quality"]  # the demo fastText model on data that is not a sample


def test_report_in_headless_chromium(report, tmp_path):
    from test_report import _browser, _console_lines

    d, manifest = report
    html = write_report(manifest, tmp_path / "report-sources.html")
    dom = _browser(html, tmp_path, "--window-size=1400,3000", "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    root = re.search(r"<html[^>]*>", dom.stdout).group(0)
    assert 'data-rendered="1"' in root and 'data-errors="0"' in root, root
    assert _console_lines(dom.stderr) == []
    out = dom.stdout
    assert '<table id="sources-table">' in out and "b.jsonl" in out
    assert out.count('class="cutoff"') >= 1
    # readable axes: more than three labelled ticks on each axis of every histogram
    for chart in re.findall(r'<svg[^>]*class="chart hist".*?</svg>', out, re.S):
        assert chart.count('class="tick x"') > 3 and chart.count('class="tick y"') > 3
    assert 'id="top-drop"' in out and 'id="demo-warning"' in out
    assert "train rows" in out and "eval rows" in out
    assert int(re.search(r'data-answer-px="(\d+)"', root).group(1)) >= 300

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "report-sources.png"
    if shot.exists():
        shot.unlink()
    p = _browser(html, tmp_path, "--window-size=1400,4200", f"--screenshot={shot}")
    assert p.returncode == 0 and shot.is_file() and shot.stat().st_size > 20_000
    shutil.copy(html, ARTIFACTS / "report-sources.html")
