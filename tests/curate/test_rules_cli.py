"""`curate filter` and `curate rules list|show|lint|checks` end to end."""

from __future__ import annotations

import json

from click.testing import CliRunner

from curate.cli import main
from curate.io import read_frame, write_frame
from curate.rules.synthetic import planted_frame


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_filter_writes_kept_dropped_and_json_summary(tmp_path):
    src = tmp_path / "data.jsonl"
    write_frame(planted_frame(300, seed=3), src)
    out = tmp_path / "clean.parquet"
    res = run("filter", src, "-o", out, "--json", "--set", "too-long.max_chars=20000")
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    kept, dropped = read_frame(out), read_frame(tmp_path / "clean.dropped.jsonl")
    assert summary["kept"] == kept.height and summary["dropped"] == dropped.height
    assert kept.height + dropped.height == 300
    assert set(summary["rules"]["empty-turn"]) >= {"fired", "dropped", "flagged", "redacted", "fixed"}
    assert "flags" in kept.columns and dropped["drop_detail"].null_count() == 0
    assert summary["dropped_by_reason"] and all(n > 0 for n in summary["pii"].values())


def test_filter_default_output_name_and_table(tmp_path):
    src = tmp_path / "data.jsonl"
    write_frame(planted_frame(60, seed=4), src)
    res = run("filter", src)
    assert res.exit_code == 0
    assert (tmp_path / "data.filtered.jsonl").exists()
    assert "rules (default)" in res.stderr and "empty-turn" in res.stderr and "redacted" in res.stderr


def test_filter_bad_rules_exit_2(tmp_path):
    src = tmp_path / "data.jsonl"
    write_frame(planted_frame(10), src)
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n  - id: x\n    description: d\n    check: nope\n", encoding="utf-8")
    res = run("filter", src, "-r", bad)
    assert res.exit_code == 2 and f"{bad}:4: rules[0] (x).check: unknown check 'nope'" in res.stderr
    res = run("filter", src, "-r", "defualt")
    assert res.exit_code == 2 and "did you mean 'default'" in res.stderr
    res = run("filter", src, "-o", src)
    assert res.exit_code == 2 and "refusing to overwrite" in res.stderr


def test_rules_list_show_lint_checks(tmp_path):
    res = run("rules", "list", "--json")
    names = {r["name"] for r in json.loads(res.stdout)}
    assert {"default", "zh", "en", "pii", "strict"} <= names
    shown = json.loads(run("rules", "show", "zh", "--json").stdout)
    by_id = {r["id"]: r for r in shown["rules"]}
    assert by_id["language"]["action"] == "drop" and by_id["language"]["params"]["allow"] == ["zh", "mixed"]
    y = run("rules", "show", "pii", "--yaml").stdout
    assert "pii-contact" in y and "defined_in" not in y
    good = tmp_path / "good.yaml"
    good.write_text(
        "include: [default]\noverrides:\n  too-long: {params: {max_chars: 9000}}\n", encoding="utf-8"
    )
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "rules:\n  - id: y\n    description: d\n    check: length\n    params: {max_chars: -}\n",
        encoding="utf-8",
    )
    res = run("rules", "lint", good, bad)
    assert (
        res.exit_code == 2
        and f"{good}: ok" in res.stderr
        and f"{bad}:5: rules[0] (y).params.max_chars" in res.stderr
    )
    assert run("rules", "lint", good).exit_code == 0
    assert (
        "repetition" in run("rules", "checks").stdout
        and "dup_ngram" in run("rules", "checks", "repetition").stdout
    )
