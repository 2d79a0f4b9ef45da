"""Progress that a log shows: plain periodic lines when stderr is not a terminal or with --json."""

from __future__ import annotations

import json
import re

from click.testing import CliRunner

from curate.cli import main
from curate.progress import Progress, duration, plain_line, reporter
from tests.curate.pipeline_helpers import make_rows, write_jsonl

LINE = re.compile(r"^(?P<what>.+): (?P<done>[\d,]+)/(?P<total>[\d,]+) (?P<unit>\w+)")


def test_plain_lines_have_counts_rate_and_eta(capsys, monkeypatch):
    now = [0.0]
    monkeypatch.setattr("curate.progress.time.monotonic", lambda: now[0])
    with Progress(plain=True, every=15) as progress:
        tick = progress("score ppl", 5111)
        now[0] = 10.0
        tick(40)  # before the interval: no line
        now[0] = 40.0
        tick(2260)  # a line
        now[0] = 50.0
        tick(2811)  # done: the final line
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        "score ppl: 0/5,111 rows",
        "score ppl: 2,300/5,111 rows, 57.5 rows/s, ETA 49 s",
        "score ppl: 5,111/5,111 rows, 102 rows/s, done in 50 s",
    ]
    assert duration(660) == "11 min" and duration(7500) == "2 h 05 min"
    assert plain_line("score", 2300, 5111, 2300 / 4.2, "rows", False).endswith("4.2 rows/s, ETA 11 min")


def test_json_gets_plain_lines_even_on_a_terminal(monkeypatch):
    monkeypatch.setattr("curate.progress.stderr_is_terminal", lambda: True)
    assert reporter(json_out=True).plain and not reporter(json_out=False).plain


def test_filter_json_writes_progress_lines_on_stderr(tmp_path, monkeypatch):
    monkeypatch.setenv("TAMIS_PROGRESS_INTERVAL", "0")
    data = write_jsonl(tmp_path / "d.jsonl", make_rows(20))
    res = CliRunner().invoke(main, ["filter", str(data), "--json"])
    assert res.exit_code == 0, res.output
    json.loads(res.stdout)  # stdout: still the one summary line
    lines = [m for m in map(LINE.match, res.stderr.splitlines()) if m]
    assert lines and lines[0]["what"] == "filter" and lines[-1]["done"] == lines[-1]["total"]


def test_run_json_reports_stage_transitions(tmp_path, monkeypatch):
    monkeypatch.setenv("TAMIS_PROGRESS_INTERVAL", "0")
    write_jsonl(tmp_path / "d.jsonl", make_rows(30))
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "name: t\ninputs: [d.jsonl]\nstages:\n  - dedup: {methods: [exact]}\n  - filter: {rules: [default]}\n"
        "outputs:\n  data: out/t.jsonl\n",
        encoding="utf-8",
    )
    res = CliRunner().invoke(main, ["run", str(recipe), "--json"])
    assert res.exit_code == 0, res.output
    err = res.stderr
    assert "run: stage 2/3 dedup started on 30 rows" in err
    assert "run: stage 3/3 filter started" in err and "run: filter done in" in err
    assert re.search(r"^filter: [\d,]+/[\d,]+ rules", err, re.M)
