"""Ingest isolates every failure to its row (issue 15): deep nesting, lone surrogates, damaged JSON
arrays, mixed formats, whole raw rows in rejects, lossless mojibake repairs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import polars as pl

from curate.io import load, write_frame
from curate.io.formats import to_format

GOOD = [{"instruction": "a", "output": "b"}, {"instruction": "c", "output": "d"}]
DEEP = "[" * 1500 + "]" * 1500


def _jsonl(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def test_deeply_nested_row_is_rejected_alone(tmp_path):
    p = _jsonl(
        tmp_path / "deep.jsonl",
        [
            json.dumps(GOOD[0]),
            '{"instruction": "x", "output": "y", "extra": ' + DEEP + "}",
            json.dumps(GOOD[1]),
        ],
    )
    res = load([p])
    assert res.frame["question"].to_list() == ["a", "c"]
    assert res.rejects["line"].to_list() == [2] and "nested deeper" in res.rejects["reason"][0]
    assert res.rejects["raw"][0].endswith("]" * 1500 + "}")  # the whole line, not a cut


def test_lone_surrogate_is_rejected_and_the_output_can_be_written(tmp_path):
    p = _jsonl(
        tmp_path / "s.jsonl",
        [
            json.dumps(GOOD[0]),
            '{"instruction": "x\\ud800", "output": "y"}',
            '{"instruction": "ok \\ud83d\\ude00", "output": "z"}',
        ],
    )
    res = load([p])
    assert res.frame["question"].to_list() == ["a", "ok \U0001f600"]  # a surrogate pair is one character
    assert res.rejects["line"].to_list() == [2] and "surrogate U+D800" in res.rejects["reason"][0]
    write_frame(res.frame, tmp_path / "out.jsonl")
    write_frame(res.rejects, tmp_path / "rej.jsonl")  # the reject's raw text is writable too
    assert "\\ud800" in (tmp_path / "rej.jsonl").read_text(encoding="utf-8")


def test_cut_off_json_array_keeps_complete_items(tmp_path):
    p = tmp_path / "cut.json"
    p.write_text(
        '[{"instruction": "a", "output": "b"},\n {"instruction": "c", "output": "d"},\n {"instruction": "e", "outp'
    )
    res = load([p])
    assert res.frame["question"].to_list() == ["a", "c"]
    assert res.rejects.height == 1 and "cut off" in res.rejects["reason"][0] and res.rejects["line"][0] == 3
    assert res.input_rows == res.frame.height + res.rejects.height
    # cut between items: the lost rest is one reject, so the run cannot pass for complete
    p.write_text('[{"instruction": "a", "output": "b"},\n {"instruction": "c", "output": "d"},')
    res = load([p])
    assert res.frame.height == 2 and res.rejects.height == 1 and "never closes" in res.rejects["reason"][0]


def test_trailing_commas_and_a_too_deep_item_in_a_json_array(tmp_path):
    p = tmp_path / "t.json"
    p.write_text('[{"instruction": "a", "output": "b"},\n {"instruction": "c", "output": "d"},\n]')
    res = load([p])
    assert res.frame.height == 2 and res.rejects.height == 0
    p.write_text(
        '{"data": [{"instruction": "a", "output": "b"},\n {"instruction": "c", "output": '
        + DEEP
        + '},\n {"instruction": "e", "output": "f"}]}'
    )
    res = load([p])
    assert res.frame["question"].to_list() == ["a", "e"]
    assert res.rejects["line"].to_list() == [2] and "nested deeper" in res.rejects["reason"][0]


def test_mixed_formats_are_detected_per_row(tmp_path):
    rows = [
        {"instruction": "a", "input": "", "output": "b"},
        {"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]},
        {"messages": [{"role": "user", "content": "q2"}, {"role": "assistant", "content": "a2"}]},
        {"question": "q3", "answer": "a3"},
        {"prompt": "p", "chosen": "c", "rejected": "r"},
        {"foo": 1},
    ]
    res = load([_jsonl(tmp_path / "m.jsonl", [json.dumps(r) for r in rows])])
    assert res.frame["question"].to_list() == ["a", "q", "q2", "q3", "p"]
    assert res.frame["kind"].to_list() == ["sft"] * 4 + ["preference"]
    (reason,) = res.rejects["reason"].to_list()
    assert "expected" in reason and "found foo" in reason
    assert any("mixed formats" in e for e in res.explanations)
    # each row goes back to its own format
    back = [to_format(r, json.loads(r["meta"])["_fmt"]["format"]) for r in res.frame.to_dicts()]
    assert back == rows[:5]


def test_rejects_keep_the_whole_raw_row(tmp_path):
    long = "x" * 5000
    p = _jsonl(tmp_path / "r.jsonl", [json.dumps(GOOD[0]), json.dumps({"instruction": long, "extra": 1})])
    res = load([p])
    assert json.loads(res.rejects["raw"][0]) == {"instruction": long, "extra": 1}
    csv = tmp_path / "r.csv"
    csv.write_text(f"question,answer\nq,a\n{long},a,extra\n")
    res = load([csv])
    assert res.rejects["raw"][0] == f"{long},a,extra"


def test_alpaca_empty_instruction_joins_only_non_empty_parts(tmp_path):
    rows = [
        {"instruction": "", "input": "x", "output": "y"},
        {"instruction": "i", "input": "x", "output": "y"},
    ]
    res = load([_jsonl(tmp_path / "a.jsonl", [json.dumps(r) for r in rows])])
    assert res.frame["question"].to_list() == ["x", "i\nx"]
    assert [to_format(r, "alpaca") for r in res.frame.to_dicts()] == rows


def test_mojibake_repair_keeps_the_original_for_a_lossless_round_trip(tmp_path):
    bad = "Conchita Martínez won".encode().decode("latin-1")
    rows = [
        {
            "conversations": [
                {"from": "human", "value": bad},
                {"from": "gpt", "value": "ok"},
                {"from": "human", "value": "more"},
                {"from": "gpt", "value": bad},
            ]
        },
        {"conversations": [{"from": "human", "value": "clean"}, {"from": "gpt", "value": "fine"}]},
    ]
    res = load([_jsonl(tmp_path / "m.jsonl", [json.dumps(r, ensure_ascii=False) for r in rows])])
    assert res.repaired == 1
    assert res.frame["history"][0][0]["content"] == "Conchita Martínez won"
    assert res.frame["answer"][0] == "Conchita Martínez won"
    assert [to_format(r, "sharegpt") for r in res.frame.to_dicts()] == rows
    # another format gets the repaired text
    assert to_format(res.frame.to_dicts()[0], "openai")["messages"][0]["content"] == "Conchita Martínez won"
    assert pl.Series(res.frame["meta"]).str.contains("_original").sum() == 1


def _gbk_csv_with_a_broken_row(path: Path) -> Path:
    good = "你好吗,我很好谢谢\n".encode("gbk")
    bad = "坏行,有问题".encode("gbk") + b"\x80\xff\x80" + "结尾".encode("gbk") + b"\n"
    path.write_bytes("问题,回答\n".encode("gbk") + good * 15 + bad + good * 15)
    return path


def test_mostly_gb18030_rejects_the_broken_line_and_keeps_its_neighbours(tmp_path):
    p = _gbk_csv_with_a_broken_row(tmp_path / "gbk.csv")
    for encoding in (None, "gbk", "gb18030"):
        res = load([p], encoding=encoding)
        assert res.frame.height == 30 and set(res.frame["question"]) == {"你好吗"}, encoding
        assert res.rejects["line"].to_list() == [17], encoding
        assert "byte 0x80 at byte 11 of the line" in res.rejects["reason"][0], encoding


def test_a_small_gbk_file_with_a_broken_line_and_a_big5_file(tmp_path):
    good = "你好吗,我很好谢谢\n".encode("gbk")
    bad = "坏行,有问题".encode("gbk") + b"\x80\xff\x80\n"
    small = tmp_path / "small.csv"
    small.write_bytes("问题,回答\n".encode("gbk") + good * 2 + bad + good * 2)
    res = load([small])
    assert res.frame["answer"].to_list() == ["我很好谢谢"] * 4 and res.rejects["line"].to_list() == [4]
    big5 = tmp_path / "big5.csv"
    big5.write_bytes("問題,回答\n".encode("big5") + "你好嗎,我很好謝謝\n".encode("big5") * 3)
    res = load([big5])
    assert res.frame["question"].to_list() == ["你好嗎"] * 3 and res.encoding_guessed == 1
    assert any("guess: big5" in e and "gb18030" in e for e in res.explanations)


def test_statistical_encoding_guess_prefers_western_code_pages_and_is_announced(tmp_path):
    p = tmp_path / "latin.csv"
    p.write_bytes(
        "question,answer\nNaïve question?,déjà vu answer\nCafé crème,À bientôt garçon\n".encode("latin-1")
    )
    res = load([p])
    assert res.frame["question"].to_list() == ["Naïve question?", "Café crème"]
    assert res.frame["answer"].to_list() == ["déjà vu answer", "À bientôt garçon"]
    assert res.encoding_guessed == 1 and res.files[0]["encoding_guess"]["alternatives"]
    (note,) = [e for e in res.explanations if "statistical guess" in e]
    assert "cp1252" in note and "confidence" in note and "alternatives" in note


def test_xlsx_roles_are_detected_per_sheet(tmp_path):
    from malformed_corpus import sheets_workbook

    p = sheets_workbook(tmp_path / "book.xlsx")
    res = load([p])
    assert res.frame["question"].to_list() == ["怎么重启？", "How to restart?", "Disk full?"]
    assert res.frame["answer"].to_list() == ["运行 reboot。", "Run reboot.", "Run df -h."]
    # a sheet whose columns say nothing costs its own rows, with the reason
    assert res.rejects["sheet"].to_list() == ["notes"]
    assert "cannot tell the format" in res.rejects["reason"][0]
    assert res.input_rows == res.frame.height + res.rejects.height


def test_csv_and_tsv_outputs_neutralise_formula_cells_and_read_back_losslessly(tmp_path, monkeypatch):
    """Issue 17 item 5: cells starting with = + - @ (or a tab/CR) reach a spreadsheet as text."""
    cells = ['=HYPERLINK("http://x")', "+1", "-2 items", "@SUM(A1)", "\tx", "'=quoted", "plain", "a=b"]
    rows = [{"question": c, "answer": "ok"} for c in cells]
    res = load([_jsonl(tmp_path / "f.jsonl", [json.dumps(r) for r in rows])])
    for ext, sep in (("csv", ","), ("tsv", "\t")):
        out = write_frame(res.frame, tmp_path / f"out.{ext}")
        written = pl.read_csv(out, separator=sep, quote_char='"')["question"].to_list()
        assert written == ["'" + c for c in cells[:6]] + cells[6:], ext
        back = load([out])
        assert (
            back.frame["question"].to_list() == cells
            and back.frame["id"].to_list() == res.frame["id"].to_list()
        )
    monkeypatch.setenv("TAMIS_CSV_FORMULA_GUARD", "0")
    out = write_frame(res.frame, tmp_path / "raw.csv")
    assert pl.read_csv(out)["question"].to_list() == cells


def test_no_csv_formula_guard_option(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from curate.cli import main

    monkeypatch.delenv("TAMIS_CSV_FORMULA_GUARD", raising=False)
    src = _jsonl(tmp_path / "f.jsonl", [json.dumps({"question": "=1+1", "answer": "2"})])
    r = CliRunner().invoke(main, ["ingest", str(src), "-o", str(tmp_path / "a.csv")])
    assert r.exit_code == 0, r.output
    assert pl.read_csv(tmp_path / "a.csv")["question"][0] == "'=1+1"
    try:
        r = CliRunner().invoke(
            main, ["--no-csv-formula-guard", "ingest", str(src), "-o", str(tmp_path / "b.csv")]
        )
    finally:
        os.environ.pop("TAMIS_CSV_FORMULA_GUARD", None)  # the flag sets it for this process
    assert r.exit_code == 0, r.output
    assert pl.read_csv(tmp_path / "b.csv")["question"][0] == "=1+1"


def test_a_null_answer_is_an_empty_answer_in_every_format(tmp_path):
    """Issue 17 item 8: one rule for ``"answer": null`` in JSON and an empty spreadsheet cell: the row is
    kept with an empty answer (the empty-turn rule drops it, with its reason), never a reject in one
    format and a row in another; the null survives a round trip."""
    import openpyxl

    rows = [
        {"instruction": "q1", "input": "", "output": None},
        {"instruction": "q2", "input": "", "output": "a2"},
    ]
    js = _jsonl(tmp_path / "a.jsonl", [json.dumps(r) for r in rows])
    qa = _jsonl(
        tmp_path / "q.jsonl",
        [json.dumps({"question": "q1", "answer": None}), json.dumps({"question": "q2", "answer": "a2"})],
    )
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["instruction", "output"])
    ws.append(["q1", None])
    ws.append(["q2", "a2"])
    wb.save(tmp_path / "a.xlsx")
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["question", "answer"])
    ws.append(["q1", None])
    ws.append(["q2", "a2"])
    wb.save(tmp_path / "q.xlsx")
    (tmp_path / "q.csv").write_text("question,answer\nq1,\nq2,a2\n")
    for p in (js, qa, tmp_path / "a.xlsx", tmp_path / "q.xlsx", tmp_path / "q.csv"):
        res = load([p])
        assert res.rejects.height == 0, p
        assert res.frame["answer"].to_list() == ["", "a2"], p
    assert [to_format(r, "alpaca") for r in load([js]).frame.to_dicts()] == rows


def test_meta_is_a_json_object_in_jsonl_and_json_outputs_and_old_files_still_read(tmp_path):
    """Issue 18 item 4: meta was a JSON string inside JSONL (readers had to parse twice)."""
    rows = [
        {"question": "q1", "answer": "a1", "dept": "网络", "n": 1.0},
        {"question": "q2", "answer": "a2", "tags": ["x", {"y": "a\\\\n\n"}]},
    ]
    res = load([_jsonl(tmp_path / "in.jsonl", [json.dumps(r, ensure_ascii=False) for r in rows])])
    for ext in ("jsonl", "json"):
        out = write_frame(res.frame, tmp_path / f"out.{ext}")
        text = out.read_text(encoding="utf-8")
        written = [json.loads(x) for x in text.splitlines()] if ext == "jsonl" else json.loads(text)
        assert [w["meta"]["dept"] if "dept" in w["meta"] else w["meta"]["tags"] for w in written] == [
            "网络",
            ["x", {"y": "a\\\\n\n"}],
        ]
        back = load([out])
        assert back.files[0]["format"] == "canonical"
        assert back.frame.equals(res.frame), ext  # meta text byte for byte
    old = tmp_path / "old.jsonl"
    res.frame.write_ndjson(old)  # what earlier versions wrote: meta as a JSON string
    assert isinstance(json.loads(old.read_text().splitlines()[0])["meta"], str)
    assert load([old]).frame.equals(res.frame)


def test_xlsx_output_keeps_control_characters_and_says_when_excel_cuts_a_cell(tmp_path, capsys):
    rows = [
        {"question": "q\x01\x00 ctrl _x0041_ literal", "answer": "a" * 40_000},
        {"question": "q2", "answer": "a2"},
    ]
    res = load([_jsonl(tmp_path / "x.jsonl", [json.dumps(r) for r in rows])])
    out = write_frame(res.frame, tmp_path / "x.xlsx")
    assert "1 cells are longer than Excel's 32,767 characters" in capsys.readouterr().err
    back = load([out]).frame
    assert back["question"].to_list() == ["q\x01\x00 ctrl _x0041_ literal", "q2"]


def test_jsonl_meta_splice_is_written_in_slices_with_the_same_bytes(tmp_path, monkeypatch):
    """Encoding every line at once doubled the peak memory of JSONL writes; slices must not change a byte."""
    from curate.io import writers

    rows = [{"question": f"q{i}", "answer": f"a{i}", "dept": "网络" if i % 2 else "ops"} for i in range(10)]
    res = load([_jsonl(tmp_path / "in.jsonl", [json.dumps(r, ensure_ascii=False) for r in rows])])
    whole = write_frame(res.frame, tmp_path / "whole.jsonl").read_bytes()
    monkeypatch.setattr(writers, "_SPLICE_ROWS", 3)
    sliced = write_frame(res.frame, tmp_path / "sliced.jsonl").read_bytes()
    assert sliced == whole and whole.count(b"\n") == 10
    assert load([tmp_path / "sliced.jsonl"]).frame.equals(res.frame)
