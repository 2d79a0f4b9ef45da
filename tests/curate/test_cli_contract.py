"""The command-line contract of every `curate` command (README, "Exit codes"): 0 ok; 1 finished but some
rows were rejected or part of the work failed; 2 usage error, unreadable input, no readable rows or an
unwritable output; 3 refresh locked; 70 a bug. An input (or the recipe, or a file a report reads) is
never overwritten, and `--json` always means one JSON line on stdout, also on failure."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner

from curate.cli import main


def run(args, **kw):
    return CliRunner().invoke(main, [str(a) for a in args], **kw)


def json_lines(res) -> list[dict]:
    return [json.loads(line) for line in res.stdout.splitlines() if line.strip()]


def one_json(res) -> dict:
    lines = json_lines(res)
    assert len(lines) == 1, res.stdout
    return lines[0]


def qa_rows(n: int = 6, bad: int = 0, reward: bool = True) -> str:
    lines = []
    for i in range(n):
        row = {"question": f"question number {i} about disks?", "answer": f"answer number {i} is long enough"}
        if reward:
            row["reward"] = i / 10
        lines.append(json.dumps(row))
    lines += ["not json"] * bad
    return "\n".join(lines) + "\n"


@pytest.fixture()
def data(tmp_path: Path) -> Path:
    p = tmp_path / "a.jsonl"
    p.write_text(qa_rows())
    return p


# ----------------------------------------------------------------------------- 1. select --eval-output


@pytest.mark.parametrize("target", ["input", "output", "dropped", "rejects"])
def test_select_eval_output_never_replaces_an_input_the_output_or_a_side_file(tmp_path, data, target):
    out = tmp_path / "out.jsonl"
    ev = {
        "input": data,
        "output": out,
        "dropped": tmp_path / "out.dropped.jsonl",
        "rejects": tmp_path / "out.rejects.jsonl",
    }[target]
    before = data.read_bytes()
    res = run(["select", data, "-o", out, "--eval-size", "2", "--eval-output", ev, "--json"])
    assert res.exit_code == 2, res.output
    assert "--eval-output" in res.stderr
    assert one_json(res)["status"] == "error"
    assert data.read_bytes() == before and not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.jsonl"]


def test_select_eval_size_is_a_fraction_below_one_or_a_row_count_below_the_rows(tmp_path, data):
    res = run(["select", data, "--eval-size", "1.0"])
    assert res.exit_code == 2 and "integer row count" in res.stderr
    res = run(["select", data, "--eval-size", "2.5"])
    assert res.exit_code == 2 and "integer row count" in res.stderr
    res = run(["select", data, "--eval-size", "6"])
    assert res.exit_code == 2 and "nothing would be left to train on" in res.stderr
    assert not (tmp_path / "a.selected.jsonl").exists()


# ----------------------------------------------------------------------------- 2 + 4. recipes


def _recipe(tmp_path: Path, body: str, name: str = "r.yaml") -> Path:
    p = tmp_path / name
    p.write_text(body)
    return p


def test_run_report_never_replaces_an_input_or_the_recipe(tmp_path, data):
    recipe = _recipe(tmp_path, "name: r\ninputs: [a.jsonl]\noutputs:\n  data: out/r.jsonl\n")
    before, recipe_before = data.read_bytes(), recipe.read_bytes()
    for target in (data, recipe, tmp_path / "out" / "r.dropped.jsonl", tmp_path / "out" / "r.jsonl"):
        res = run(["run", recipe, "--report", target, "--json"])
        assert res.exit_code == 2, (target, res.output)
        assert one_json(res)["status"] == "error"
        assert "--report" in res.stderr
    assert data.read_bytes() == before and recipe.read_bytes() == recipe_before
    assert not (tmp_path / "out").exists()  # refused before anything ran
    res = run(["run", recipe, "--report", tmp_path / "r.html", "--json"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "r.html").read_text().lstrip().lower().startswith("<!doctype html")


@pytest.mark.parametrize(
    "outputs, words",
    [
        ("  data: out/r.jsonl\n  report: r.yaml\n", ["outputs.report", "recipe"]),
        ("  data: out/r.jsonl\n  manifest: r.yaml\n", ["outputs.manifest", "recipe"]),
        ("  data: out/r.jsonl\n  report: out/r.jsonl\n", ["outputs.report", "outputs.data"]),
        ("  data: out/r.jsonl\n  dropped: out/x.jsonl\n  report: out/x.jsonl\n", ["report", "dropped"]),
        # the default dropped file beside the data
        ("  data: out/r.jsonl\n  report: out/r.dropped.jsonl\n", ["outputs.report", "outputs.dropped"]),
    ],
)
def test_recipe_outputs_are_distinct_and_never_the_recipe(tmp_path, data, outputs, words):
    recipe = _recipe(tmp_path, "name: r\ninputs: [a.jsonl]\noutputs:\n" + outputs)
    before = recipe.read_bytes()
    res = run(["run", recipe])
    assert res.exit_code == 2, res.output
    assert all(w in res.stderr for w in words), res.stderr
    assert recipe.read_bytes() == before and not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "export_output, words", [("out/r.jsonl", ["export.output", "outputs.data"]), ("r.yaml", ["recipe"])]
)
def test_an_export_never_writes_over_another_output_or_the_recipe(tmp_path, data, export_output, words):
    recipe = _recipe(
        tmp_path,
        "name: r\ninputs: [a.jsonl]\nstages:\n"
        f"  - export: {{format: trl, output: {export_output}}}\noutputs:\n  data: out/r.jsonl\n",
    )
    before = recipe.read_bytes()
    res = run(["run", recipe])
    assert res.exit_code == 2, res.output
    assert all(w in res.stderr for w in words), res.stderr
    assert recipe.read_bytes() == before


def test_an_eval_file_of_decontaminate_is_never_an_output(tmp_path, data):
    ev = tmp_path / "eval.jsonl"
    ev.write_text(qa_rows(2))
    before = ev.read_bytes()
    recipe = _recipe(
        tmp_path,
        "name: r\ninputs: [a.jsonl]\nstages:\n  - decontaminate: {against: [eval.jsonl]}\n"
        "outputs:\n  data: out/r.jsonl\n  report: eval.jsonl\n",
    )
    res = run(["run", recipe])
    assert res.exit_code == 2 and "eval.jsonl" in res.stderr, res.output
    assert ev.read_bytes() == before


# ----------------------------------------------------------------------------- 13. option types


def test_recipe_option_types_are_checked_with_the_line_or_the_set_flag(tmp_path, data):
    recipe = _recipe(tmp_path, "name: r\ninputs: [a.jsonl]\nstages:\n  - dedup: {threshold: abc}\n")
    res = run(["run", recipe])
    assert res.exit_code == 2
    assert "r.yaml:4: stages[0].dedup.threshold: expected a number, got 'abc'" in res.stderr
    assert "not supported" not in res.stderr and "Traceback" not in res.output

    recipe = _recipe(tmp_path, "name: r\ninputs: [a.jsonl]\nstages:\n  - dedup: {threshold: 0.8}\n")
    res = run(["run", recipe, "--set", "dedup.threshold=abc", "--json"])
    assert res.exit_code == 2
    assert "dedup.threshold: expected a number, got 'abc' (from --set)" in res.stderr
    assert "r.yaml:" not in res.stderr  # not blamed on a recipe line
    assert one_json(res)["error"].startswith("dedup.threshold")

    recipe = _recipe(tmp_path, "name: r\ninputs: [a.jsonl]\nstages:\n  - select: {target: 2.5}\n")
    res = run(["run", recipe])
    assert res.exit_code == 2 and "select.target: expected an integer, got 2.5" in res.stderr

    recipe = _recipe(tmp_path, "name: r\ninputs: [a.jsonl]\nstages:\n  - select: {target: '10'}\n")
    res = run(["run", recipe])
    assert res.exit_code == 2 and "expected an integer, got '10'" in res.stderr
    assert "'<' not supported" not in res.stderr

    recipe = _recipe(tmp_path, "name: r\ninputs: [a.jsonl]\nengine: {name: ray, num_cpus: abc}\n")
    res = run(["run", recipe])
    assert res.exit_code == 2 and "engine.num_cpus: expected an integer, got 'abc'" in res.stderr
    assert "invalid literal" not in res.stderr

    # YAML's `off` still switches an option off
    recipe = _recipe(tmp_path, "name: r\ninputs: [a.jsonl]\nstages:\n  - select: {diversity: off}\n")
    assert run(["run", recipe]).exit_code == 0


# ----------------------------------------------------------------------------- 3. report -o


def test_report_never_overwrites_what_it_reads(tmp_path, data):
    out = tmp_path / "sel.jsonl"
    assert run(["select", data, "-o", out, "--where", "reward >= 0.3"]).exit_code == 0
    dropped = tmp_path / "sel.dropped.jsonl"
    assert dropped.exists()
    before = dropped.read_bytes()
    res = run(["report", out, "-o", dropped, "--json"])
    assert res.exit_code == 2 and one_json(res)["status"] == "error"
    assert dropped.read_bytes() == before

    recipe = _recipe(tmp_path, "name: r\ninputs: [a.jsonl]\noutputs:\n  data: out/r.jsonl\n")
    assert run(["run", recipe]).exit_code == 0
    produced = (tmp_path / "out" / "r.jsonl").read_bytes()
    data_before = data.read_bytes()
    for target, o in (
        (recipe, data),  # a recipe input
        (recipe, tmp_path / "out" / "r.jsonl"),  # its data output
        (tmp_path / ".tamis" / "r", data),  # a work dir: the run's inputs
    ):
        res = run(["report", target, "-o", o])
        assert res.exit_code == 2, (target, o, res.output)
        assert "refusing" in res.stderr
    manifest = next((tmp_path / ".tamis" / "r" / "runs").glob("*/manifest.json"))
    res = run(["report", manifest, "-o", data])
    assert res.exit_code == 2
    res = run(["report", tmp_path / ".tamis" / "r", "-o", manifest])
    assert res.exit_code == 2
    assert data.read_bytes() == data_before and (tmp_path / "out" / "r.jsonl").read_bytes() == produced
    res = run(["report", recipe, "--json"])
    assert res.exit_code == 0 and one_json(res)["exit_code"] == 0
    assert (tmp_path / "r.report.html").exists()


# ----------------------------------------------------------------------------- 5 + 11. errors


def test_output_path_problems_are_found_before_anything_is_read(tmp_path, data):
    missing = tmp_path / "missing.jsonl"  # never read: the output is checked first
    res = run(["ingest", missing, "-o", tmp_path / "out.txt", "--json"])
    assert res.exit_code == 2 and "cannot write .txt" in res.stderr
    assert one_json(res)["status"] == "error"
    res = run(["ingest", data, "-o", tmp_path / "a.jsonl" / "x.jsonl"])  # the parent is a file
    assert res.exit_code == 2 and "not a directory" in res.stderr and "Traceback" not in res.output
    (tmp_path / "d.jsonl").mkdir()
    res = run(["ingest", data, "-o", tmp_path / "d.jsonl"])
    assert res.exit_code == 2 and "directory" in res.stderr
    res = run(["select", data])  # the default output is checked too
    assert res.exit_code == 0
    res = run(["ingest", data, "-o", tmp_path / "sub" / "deeper" / "x.jsonl"])  # created on write
    assert res.exit_code == 0 and (tmp_path / "sub" / "deeper" / "x.jsonl").exists()


def test_score_cache_is_never_the_output_or_an_input(tmp_path, data):
    for cache in (tmp_path / "o.jsonl", data, tmp_path / "o.dropped.jsonl"):
        res = run(["score", data, "-o", tmp_path / "o.jsonl", "--cache", cache, "--json"])
        assert res.exit_code == 2, res.output
        assert "--cache" in res.stderr and one_json(res)["exit_code"] == 2
    assert data.read_text() == qa_rows()


def test_a_score_cache_that_is_not_a_database_is_one_line_and_exit_2(tmp_path, data):
    bad = tmp_path / "bad.sqlite"
    bad.write_text("this is not an SQLite file " * 20)
    res = run(["score", data, "--scorers", "quality", "--cache", bad, "--json"])
    assert res.exit_code == 2, res.output
    assert "bad.sqlite" in res.stderr and "not a database" in res.stderr and "Traceback" not in res.stderr
    assert one_json(res)["exit_code"] == 2


def test_unexpected_exceptions_exit_70_with_a_traceback_never_1(monkeypatch, data):
    import curate.stats

    def boom(*a, **k):
        raise ZeroDivisionError("planted bug")

    monkeypatch.setattr(curate.stats, "compute", boom)
    res = run(["stats", data, "--json"])
    assert res.exit_code == 70
    assert "Traceback" in res.stderr and "internal error: ZeroDivisionError: planted bug" in res.stderr
    line = one_json(res)
    assert line["status"] == "error" and line["exit_code"] == 70


@pytest.mark.parametrize(
    "exc",
    [
        PermissionError(13, "Permission denied", "/srv/data/x.parquet"),
        NotADirectoryError(20, "Not a directory", "/srv/data/x"),
        __import__("sqlite3").DatabaseError("file is not a database"),
    ],
)
def test_os_and_database_errors_are_one_line_and_exit_2(monkeypatch, data, exc):
    import curate.stats

    def boom(*a, **k):
        raise exc

    monkeypatch.setattr(curate.stats, "compute", boom)
    res = run(["stats", data, "--json"])
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.stderr
    err = [line for line in res.stderr.splitlines() if line.startswith("error: ")]
    assert len(err) == 1
    assert one_json(res)["exit_code"] == 2


def test_polars_compute_errors_on_reading_exit_2(monkeypatch, tmp_path, data):
    import polars as pl

    import curate.io

    def boom(*a, **k):
        raise pl.exceptions.ComputeError("parquet: invalid footer")

    monkeypatch.setattr(curate.io, "load", boom)
    res = run(["ingest", data, "-o", tmp_path / "o.jsonl"])
    assert res.exit_code == 2 and "invalid footer" in res.stderr and "Traceback" not in res.stderr


def test_every_json_failure_is_one_json_line(tmp_path, data):
    cases = [
        ["ingest", tmp_path / "missing.jsonl", "--json"],  # unreadable input
        ["run", tmp_path / "missing.yaml", "--json"],  # no recipe
        ["refresh", tmp_path / "missing.yaml", "--json"],
        ["refresh", _recipe(tmp_path, "name: r\ninputs: [a.jsonl]\n"), tmp_path / "nope.jsonl", "--json"],
        ["select", data, "--target", "x", "--json"],  # a click usage error
        ["stats", data, "--map", "nofield=q", "--json"],
        ["export", data, "-o", tmp_path / "x.csv", "--json"],
        ["nosuchcommand", "--json"],
    ]
    for args in cases:
        res = run(args)
        assert res.exit_code == 2, (args, res.output)
        line = one_json(res)
        assert line["status"] == "error" and line["exit_code"] == 2 and line["error"], args


def test_map_names_an_unknown_field(data):
    res = run(["stats", data, "--map", "nofield=question"])
    assert res.exit_code == 2
    assert "unknown field nofield; fields: question, answer" in res.stderr


def test_sheet_on_a_file_that_is_not_xlsx_is_a_warning(data):
    res = run(["stats", data, "--sheet", "S1", "--json"])
    assert res.exit_code == 0 and "--sheet S1 applies to XLSX files only" in res.stderr


# ----------------------------------------------------------------------------- 8. empty input


@pytest.mark.parametrize("content", ["", "not json\n{broken\n"])
@pytest.mark.parametrize("command", ["ingest", "stats", "select", "dedup", "filter", "export"])
def test_no_readable_rows_exit_2(tmp_path, command, content):
    src = tmp_path / "e.jsonl"
    src.write_text(content)
    res = run([command, src, "--json"])
    assert res.exit_code == 2, res.output
    assert "no readable rows in" in res.stderr
    assert one_json(res)["status"] == "error"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e.jsonl"]


def test_run_with_no_readable_rows_exits_2(tmp_path):
    (tmp_path / "e.jsonl").write_text("")
    recipe = _recipe(tmp_path, "name: r\ninputs: [e.jsonl]\n")
    res = run(["run", recipe, "--json"])
    assert res.exit_code == 2 and "no readable rows in e.jsonl" in res.stderr
    assert one_json(res)["status"] == "error"


def test_refresh_with_an_empty_batch_is_unchanged_with_a_warning(tmp_path, data):
    recipe = _recipe(tmp_path, "name: r\ninputs: [a.jsonl]\nstate: state\n")
    res = run(["refresh", recipe, "--json"])
    assert res.exit_code == 0, res.output
    empty = tmp_path / "batch.jsonl"
    empty.write_text("")
    res = run(["refresh", recipe, empty, "--json"])
    assert res.exit_code == 0, res.output
    s = one_json(res)
    assert s["status"] == "unchanged" and "no readable rows in" in s["warning"]
    assert "warning: no readable rows in" in res.stderr


# ----------------------------------------------------------------------------- 6. quality train/eval


def test_quality_train_and_eval_count_unreadable_rows_and_exit_1(tmp_path):
    from curate.score.quality import fasttext_text  # noqa: F401  (the module must import)

    good = tmp_path / "good.jsonl"
    bad = tmp_path / "bad.jsonl"
    topics = ["pod", "node", "ingress", "volume", "deployment"]
    good.write_text(
        "\n".join(
            json.dumps(
                {
                    "question": f"how do I check the {t} {i}",
                    "answer": f"run kubectl describe {t} and read events",
                }
            )
            for i in range(40)
            for t in topics[i % 5 : i % 5 + 1]
        )
        + "\nnot json\n"
    )
    bad.write_text(
        "\n".join(
            json.dumps({"question": f"how do I check the {t} {i}", "answer": "sorry, I cannot help"})
            for i in range(40)
            for t in topics[i % 5 : i % 5 + 1]
        )
        + "\n"
    )
    model = tmp_path / "q.ftz"
    args = ["--epoch", "5", "--dim", "8", "--bucket", "2000", "--cutoff", "500"]
    res = run(["quality", "train", "--pos", good, "--neg", bad, "-o", model, *args, "--json"])
    assert res.exit_code == 1, res.output
    s = one_json(res)
    assert s["rejected"] == 1 and s["exit_code"] == 1
    assert "1 unreadable rows" in res.stderr
    res = run(["quality", "eval", "--pos", good, "--neg", bad, "-m", model, "--json"])
    assert res.exit_code == 1, res.output
    assert one_json(res)["rejected"] == 1
    good.write_text(good.read_text().replace("not json\n", ""))
    res = run(["quality", "eval", "--pos", good, "--neg", bad, "-m", model, "--json", "--encoding", "utf-8"])
    assert res.exit_code == 0 and one_json(res)["rejected"] == 0


# ----------------------------------------------------------------------------- 7. decontaminate


def test_decontaminate_against_unreadable_eval_sets(tmp_path, data):
    allbad = tmp_path / "allbad.jsonl"
    allbad.write_text("not json\n{oops\n")
    res = run(["decontaminate", data, "--against", allbad, "--json"])
    assert res.exit_code == 2 and "--against: no readable rows in" in res.stderr
    assert one_json(res)["status"] == "error"
    assert not (tmp_path / "a.decontaminated.jsonl").exists()

    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert run(["decontaminate", data, "--against", empty]).exit_code == 2

    some = tmp_path / "some.jsonl"
    some.write_text(json.dumps({"question": "what is the capital of France?", "answer": "Paris"}) + "\nbad\n")
    res = run(["decontaminate", data, "--against", some, "--json"])
    assert res.exit_code == 1, res.output
    assert "1 unreadable eval rows" in res.stderr
    s = one_json(res)
    assert s["eval_rows_unreadable"] == 1 and s["exit_code"] == 1 and s["rejected"] == 0


# ----------------------------------------------------------------------------- 9. augment --cot


class _Teacher(BaseHTTPRequestHandler):
    """Fails (HTTP 500) for questions that contain FAIL; otherwise a rationale that reaches the
    reference answer (the last word of the prompt's answer line)."""

    def log_message(self, *a):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        prompt = body["messages"][-1]["content"]
        if "FAIL" in prompt:
            self.send_response(500)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        answer = "the-answer-is-42"
        text = f"First we look at the question carefully and reason step by step.\nFinal answer: {answer}"
        out = json.dumps({"choices": [{"message": {"content": text}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)


@pytest.fixture()
def teacher_url():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Teacher)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/v1"
    srv.shutdown()
    srv.server_close()


def _cot_rows(path: Path, questions: list[str]) -> Path:
    path.write_text(
        "\n".join(json.dumps({"question": q, "answer": "the-answer-is-42"}) for q in questions) + "\n"
    )
    return path


def test_augment_cot_when_every_teacher_request_fails(tmp_path, teacher_url):
    src = _cot_rows(tmp_path / "c.jsonl", [f"FAIL question {i}?" for i in range(3)])
    args = ["--cot", "--teacher-url", teacher_url, "--teacher-model", "m", "--max-retries", "0", "--no-cache"]
    res = run(["augment", src, *args, "--json"])
    assert res.exit_code == 2, res.output
    assert "every teacher request failed" in res.stderr and "first error" in res.stderr
    assert one_json(res)["status"] == "error"
    assert not (tmp_path / "c.augmented.jsonl").exists()


def test_augment_cot_when_some_teacher_requests_fail(tmp_path, teacher_url):
    src = _cot_rows(
        tmp_path / "c.jsonl", ["FAIL question one?", "good question two?", "good question three?"]
    )
    args = ["--cot", "--teacher-url", teacher_url, "--teacher-model", "m", "--max-retries", "0", "--no-cache"]
    res = run(["augment", src, *args, "--json"])
    assert res.exit_code == 1, res.output
    assert "1 of 3 teacher requests failed" in res.stderr
    s = one_json(res)
    assert s["cot"]["failed_requests"] == 1 and s["cot"]["first_error"]
    assert s["added"] == s["variants"] == 2  # a failed request is no variant
    assert s["kept"] == 5 and s["dropped"] == 0 and s["exit_code"] == 1
    assert s["kept"] + s["dropped"] + s["rejected"] == s["input_rows"] + s["added"]


def test_a_recipe_whose_teacher_requests_partly_fail_exits_1(tmp_path, teacher_url):
    _cot_rows(tmp_path / "c.jsonl", ["FAIL question one?", "good question two?"])
    recipe = _recipe(
        tmp_path,
        "name: r\ninputs: [c.jsonl]\nstages:\n"
        f"  - augment: {{cot: true, teacher_url: '{teacher_url}', teacher_model: m, max_retries: 0, "
        "no_cache: true}\n",
    )
    res = run(["run", recipe, "--json"])
    assert res.exit_code == 1, res.output
    assert "1 of 2 teacher requests failed" in res.stderr and "--rerun augment" in res.stderr
    assert one_json(res)["exit_code"] == 1


def test_a_recipe_decontaminating_against_an_unreadable_eval_set_fails(tmp_path, data):
    (tmp_path / "eval.jsonl").write_text("not json\n")
    recipe = _recipe(
        tmp_path, "name: r\ninputs: [a.jsonl]\nstages:\n  - decontaminate: {against: [eval.jsonl]}\n"
    )
    res = run(["run", recipe])
    assert res.exit_code == 2 and "no readable rows in" in res.stderr


@pytest.mark.parametrize(
    "opt", [["--concurrency", "0"], ["--max-retries", "-1"], ["--rpm", "-5"], ["--max-new-tokens", "0"]]
)
def test_augment_endpoint_limits_are_validated(data, opt):
    res = run(["augment", data, "--rephrase", "1", *opt])
    assert res.exit_code == 2


# ----------------------------------------------------------------------------- 10. pairs --score


def test_pairs_with_a_missing_score_column_names_it(data):
    res = run(["pairs", data, "--score", "nocol", "--json"])
    assert res.exit_code == 2
    assert "--score nocol" in res.stderr and "no column 'nocol'" in res.stderr
    assert one_json(res)["status"] == "error"
    # the defaults (no --score): existing pairs are checked, a missing reward column is not an error
    assert run(["pairs", data]).exit_code == 0


# ----------------------------------------------------------------------------- 12 + 15. export


def test_export_summary_has_the_common_keys_and_a_default_output(tmp_path, data):
    res = run(["export", data, "--format", "trl", "--json", "--encoding", "utf-8"])
    assert res.exit_code == 0, res.output
    s = one_json(res)
    out = tmp_path / "a.exported.jsonl"  # <name>.<stage>.jsonl, like every command (train picks it up)
    assert out.exists()
    for key in ("kept", "dropped", "rejected", "input_rows", "exported", "eval_rows", "exit_code"):
        assert key in s, key
    assert s["kept"] == 6 and s["input_rows"] == 6 and s["outputs"]["output"] == str(out)
    # a selected file exports beside itself, the stage suffix replaced
    sel = tmp_path / "b.selected.jsonl"
    sel.write_text(data.read_text())
    res = run(["export", sel, "--format", "alpaca"])
    assert res.exit_code == 0 and (tmp_path / "b.exported.jsonl").exists()


def test_stats_json_has_an_exit_code(data):
    s = one_json(run(["stats", data, "--json"]))
    assert s["exit_code"] == 0


# ----------------------------------------------------------------------------- 14. stats


def test_stats_of_mixed_kinds(tmp_path, data):
    text = tmp_path / "t.jsonl"
    text.write_text(
        json.dumps({"text": "这是一段中文文本，用于测试统计。"})
        + "\n"
        + json.dumps({"text": "另一段中文"})
        + "\n"
    )
    s = one_json(run(["stats", text, data, "--json"]))
    assert s["kinds"] == {"sft": 6, "text": 2}
    assert s["languages"].get("zh") == 2 and "other" not in s["languages"]
    assert sum(s["turns"].values()) == 6  # plain-text rows have no turns


def test_stats_does_not_point_at_a_rejects_file_it_does_not_write(tmp_path):
    src = tmp_path / "s.jsonl"
    src.write_text(qa_rows(3, bad=1))
    res = run(["stats", src])
    assert res.exit_code == 1
    assert "see the rejects file" not in res.output
    assert not any(p.name.endswith(".rejects.jsonl") for p in tmp_path.iterdir())
    s = one_json(run(["stats", src, "--json"]))
    assert s["rejected"] == 1 and s["rejects_by_reason"]


# ----------------------------------------------------------------------------- low


def test_runs_last_must_be_positive(tmp_path):
    assert run(["runs", tmp_path, "-n", "0"]).exit_code == 2


def test_every_option_has_help():
    import click

    from curate.cli import COMMANDS, main

    ctx = click.Context(main)
    missing = []
    for name in COMMANDS:
        cmd = main.get_command(ctx, name)
        cmds = (
            [(f"{name} {n}", c) for n, c in cmd.commands.items()]
            if isinstance(cmd, click.Group)
            else [(name, cmd)]
        )
        for label, c in cmds:
            for p in c.params:
                if isinstance(p, click.Option) and not p.help and not p.hidden:
                    missing.append(f"{label} {p.opts[0]}")
    assert not missing, missing
