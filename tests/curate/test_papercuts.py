"""curate papercuts: init keeps every --input, --max-rejected tolerates a few broken lines, run --json
lists the export files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from curate.cli import main
from curate.rejects import parse, tolerated
from tests.curate.pipeline_helpers import make_rows, write_jsonl


def run(*args, cwd: Path | None = None):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_init_keeps_every_input(tmp_path):
    out = tmp_path / "r.yaml"
    res = run("init", out, "--input", "a.jsonl", "--input", "exports/b c.csv")
    assert res.exit_code == 0, res.output
    assert yaml.safe_load(out.read_text())["inputs"] == ["a.jsonl", "exports/b c.csv"]


def test_max_rejected_parse_and_tolerance():
    assert parse("5") == 5 and parse("0.01") == 0.01 and parse(None) == 0
    for bad in ("-1", "1.5", "lots"):
        with pytest.raises(ValueError):
            parse(bad)
    assert tolerated(2, 1000, 2) and not tolerated(3, 1000, 2)
    assert tolerated(10, 1000, 0.01) and not tolerated(11, 1000, 0.01)
    assert not tolerated(1, 1000, 0)


def test_max_rejected_lets_a_few_bad_lines_exit_0(tmp_path):
    data = write_jsonl(tmp_path / "d.jsonl", make_rows(40), bad_lines=2)
    strict = run("filter", data, "-o", tmp_path / "f.jsonl", "--json")
    assert strict.exit_code == 1
    ok = run("filter", data, "-o", tmp_path / "f.jsonl", "--json", "--max-rejected", "2")
    summary = json.loads(ok.stdout)
    assert ok.exit_code == 0 and summary["rejected"] == 2 and summary["rejected_tolerated"] is True
    assert Path(summary["outputs"]["rejects"]).is_file()  # still listed with file, line and reason
    share = run("filter", data, "-o", tmp_path / "f.jsonl", "--json", "--max-rejected", "0.01")
    assert share.exit_code == 1  # 2 of 42 rows is more than 1 %
    assert run("stats", data, "--json", "--max-rejected", "5").exit_code == 0
    bad = run("filter", data, "--max-rejected", "lots")
    assert bad.exit_code == 2 and "--max-rejected" in bad.output


def test_run_json_lists_export_files_and_tolerates_rejects(tmp_path):
    write_jsonl(tmp_path / "d.jsonl", make_rows(30), bad_lines=1)
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "name: t\ninputs: [d.jsonl]\nstages:\n  - dedup: {methods: [exact]}\n"
        "  - export: {format: trl, output: out/t.trl.jsonl}\noutputs:\n  data: out/t.jsonl\n",
        encoding="utf-8",
    )
    res = run("run", recipe, "--json")
    assert res.exit_code == 1
    summary = json.loads(res.stdout)
    files = summary["exports"]["export"]
    assert Path(files["output"]) == tmp_path / "out" / "t.trl.jsonl" and Path(files["output"]).is_file()
    assert Path(files["dataset_card"]).name == "README.md"
    tolerant = run("run", recipe, "--json", "--max-rejected", "1")
    assert tolerant.exit_code == 0 and json.loads(tolerant.stdout)["exit_code"] == 0
