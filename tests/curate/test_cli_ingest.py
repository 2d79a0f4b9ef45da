"""The ingest/stats commands: exit codes, outputs, summaries, never overwriting inputs."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from curate.cli import main


def run(args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_ingest_ok_writes_output_and_json_summary(tmp_path):
    src = tmp_path / "qa.jsonl"
    src.write_text('{"question": "q1", "answer": "a1"}\n{"question": "q2", "answer": "a2"}\n')
    res = run(["ingest", src, "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert summary["input_rows"] == 2 and summary["kept"] == 2 and summary["rejected"] == 0
    out = tmp_path / "qa.ingested.jsonl"
    assert out.exists() and summary["outputs"]["output"] == str(out)


def test_ingest_with_rejects_exits_1_and_writes_rejects(tmp_path):
    src = tmp_path / "bad.jsonl"
    src.write_text('{"question": "q1", "answer": "a1"}\nnot json\n')
    out = tmp_path / "o.parquet"
    res = run(["ingest", src, "-o", out, "--json"])
    assert res.exit_code == 1
    rejects = tmp_path / "o.rejects.jsonl"
    rows = [json.loads(x) for x in rejects.read_text().splitlines()]
    assert rows[0]["line"] == 2 and rows[0]["file"] == str(src)
    s = json.loads(res.stdout.strip().splitlines()[-1])
    assert s["kept"] + s["rejected"] == s["input_rows"] == 2


def test_unreadable_input_exits_2_with_message(tmp_path):
    res = run(["ingest", tmp_path / "nope.csv"])
    assert res.exit_code == 2 and "no such file" in res.output


def test_never_overwrites_input(tmp_path):
    src = tmp_path / "a.jsonl"
    src.write_text('{"question": "q", "answer": "a"}\n')
    before = src.read_bytes()
    res = run(["ingest", src, "-o", src])
    assert res.exit_code == 2 and "refusing to overwrite" in res.output
    assert src.read_bytes() == before


def test_stats_json(tmp_path):
    src = tmp_path / "a.jsonl"
    src.write_text(
        '{"question": "容器是什么？", "answer": "轻量级隔离"}\n{"question": "What is a pod?", "answer": "A group of containers."}\n'
    )
    res = run(["stats", src, "--json"])
    assert res.exit_code == 0
    st = json.loads(res.stdout.strip().splitlines()[-1])
    assert st["rows"] == 2 and st["languages"] == {"zh": 1, "en": 1}
    assert st["chars"]["question"]["max"] == len("What is a pod?")


def test_stats_with_tokenizer(tmp_path, tiny_models):
    src = tmp_path / "a.jsonl"
    src.write_text('{"question": "kubectl get pods", "answer": "lists pods"}\n')
    res = run(["stats", src, "--json", "--tokenizer", tiny_models["lm"]])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout.strip().splitlines()[-1])["tokens"]["question"]["max"] > 0


def test_help_is_fast_and_imports_nothing_heavy():
    code = "import sys; from curate.cli import main; print(sorted(m for m in ('torch','transformers','polars') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.realdata
def test_shared_data_ingests_with_right_counts(shared_data):
    from curate.io import load

    expected = {
        "chinese-medical-dialogue/sample_internal_medicine_5000-6000.gb18030.csv": (7644, 0),
        "llamafactory-demo/alpaca_zh_demo.json": (1000, 0),
        "llamafactory-demo/dpo_zh_demo.json": (300, 0),
        "medicalgpt-samples/dpo_zh_500.jsonl": (500, 0),
        "lawyer-llama-legal-qa/legal_advice.json": (5000, 0),
        "qanything-questions-xlsx/questions.xlsx": (18, 1),
        "hh-rlhf-harmless-base-test/test.jsonl.gz": (2312, 5),
    }
    for rel, (rows, rejected) in expected.items():
        res = load([shared_data / rel])
        assert res.input_rows == rows and res.rejects.height == rejected, rel
        assert res.frame.height + res.rejects.height == res.input_rows
    med = load(
        [shared_data / "chinese-medical-dialogue/sample_internal_medicine_5000-6000.gb18030.csv"]
    ).frame
    assert "\ufffd" not in "".join(med["answer"].to_list())
    assert med["question"].str.contains("[\u4e00-\u9fff]").all()


def test_encoding_option_overrides_detection(tmp_path):
    # Big5 bytes also decode as GB18030 (into the wrong characters): only the user can tell
    src = tmp_path / "tw.csv"
    src.write_bytes("question,answer\n如何重啟服務,執行重啟命令\n".encode("big5"))
    out = tmp_path / "tw.jsonl"
    r = run(["ingest", src, "-o", out, "--encoding", "big5", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(out.read_text(encoding="utf-8").splitlines()[0])["question"] == "如何重啟服務"
    r = run(["ingest", src, "-o", out, "--encoding", "no-such-codec"])
    assert r.exit_code == 2 and "unknown encoding" in r.output
    # the same in a recipe, per input
    from curate.pipeline.recipe import load_recipe
    from curate.pipeline.run import run_recipe

    (tmp_path / "r.yaml").write_text(
        "name: tw\ninputs:\n  - {path: tw.csv, encoding: big5}\noutputs: {data: tw.curated.jsonl}\n",
        encoding="utf-8",
    )
    res = run_recipe(load_recipe(tmp_path / "r.yaml"), quiet=True)
    assert res.exit_code == 0
    got = json.loads((tmp_path / "tw.curated.jsonl").read_text(encoding="utf-8").splitlines()[0])
    assert got["answer"] == "執行重啟命令"
