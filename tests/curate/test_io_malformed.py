"""Issue 15 acceptance: on a corpus of malformed files (tests/curate/malformed_corpus.py) ingest never
prints a traceback, exits 0, 1 or 2 only, and accounts for every countable row: kept + rejected = rows."""

from __future__ import annotations

import json

from click.testing import CliRunner
from malformed_corpus import build

from curate.cli import main


def test_malformed_corpus_never_costs_more_than_the_bad_rows(tmp_path):
    cases = build(tmp_path / "corpus")
    assert len(cases) >= 40
    runner = CliRunner()
    problems = []
    for i, case in enumerate(cases):
        out = tmp_path / "out" / f"{i}.jsonl"
        r = runner.invoke(main, ["ingest", str(case.path), "-o", str(out), "--json"])
        name = case.path.name
        if "Traceback" in r.output or (r.exception is not None and not isinstance(r.exception, SystemExit)):
            problems.append(f"{name}: traceback or exception {r.exception!r}")
            continue
        if r.exit_code not in case.exit_codes:
            problems.append(f"{name}: exit {r.exit_code}, expected {case.exit_codes}: {r.output[-300:]}")
            continue
        summary = json.loads(r.stdout.strip().splitlines()[-1])
        if r.exit_code == 2:
            assert summary["status"] == "error" and summary["error"], name
            continue
        if case.rows is not None and not (
            summary["input_rows"] == case.rows == summary["kept"] + summary["rejected"]
        ):
            problems.append(f"{name}: {case.rows} rows, summary {summary}")
    assert not problems, "\n".join(problems)


def test_stats_reads_the_same_corpus_without_tracebacks(tmp_path):
    runner = CliRunner()
    for case in build(tmp_path / "corpus"):
        r = runner.invoke(main, ["stats", str(case.path), "--json"])
        assert r.exception is None or isinstance(r.exception, SystemExit), (case.path.name, r.exception)
        assert "Traceback" not in r.output and r.exit_code in (0, 1, 2), (case.path.name, r.output[-300:])
