"""The shipped samples: every file parses as intended, and the ground-truth labels describe every row."""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import re
import sys
import unicodedata
from collections import Counter
from pathlib import Path

import pytest

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
QA_FILES = ("ops_qa.jsonl", "ops_qa.gbk.csv", "ops_qa.xlsx")
ALL_FILES = QA_FILES + ("ops_multiturn.sharegpt.jsonl", "ops_prefs.jsonl", "ops_docs.txt")
PLANTED = re.compile(
    r"^(clean|exact_dup|near_dup|junk:[a-z_]+|pii:(email|phone|idcard|card|ip|apikey)|broken:[a-z_]+)$"
)


def norm(text: str | None) -> str:
    return " ".join(unicodedata.normalize("NFKC", text or "").split())


@pytest.fixture(scope="module")
def labels() -> list[dict]:
    return [json.loads(line) for line in (SAMPLES / "labels.jsonl").read_text(encoding="utf-8").splitlines()]


def labels_of(labels: list[dict], name: str) -> list[dict]:
    return [lab for lab in labels if lab["file"] == name]


@pytest.fixture(scope="module")
def jsonl_rows() -> dict[int, dict | None]:
    """line -> parsed object (None for a line that is not valid JSON)."""
    out: dict[int, dict | None] = {}
    for i, line in enumerate((SAMPLES / "ops_qa.jsonl").read_text(encoding="utf-8").splitlines(), 1):
        try:
            out[i] = json.loads(line)
        except json.JSONDecodeError:
            out[i] = None
    return out


@pytest.fixture(scope="module")
def csv_rows() -> dict[int, list[str]]:
    """start line -> fields, read the way a careful reader does (newline="" keeps multi-line cells whole)."""
    text = (SAMPLES / "ops_qa.gbk.csv").read_bytes().decode("gb18030")
    reader = csv.reader(io.StringIO(text, newline=""))
    out: dict[int, list[str]] = {}
    start = 1
    for row in reader:
        out[start] = row
        start = reader.line_num + 1
    return out


@pytest.fixture(scope="module")
def xlsx_rows() -> dict[tuple[str, int], tuple]:
    openpyxl = pytest.importorskip("openpyxl")
    wb = openpyxl.load_workbook(SAMPLES / "ops_qa.xlsx", read_only=True)
    out = {}
    for ws in wb.worksheets:
        for r, values in enumerate(ws.iter_rows(values_only=True), 1):
            out[(ws.title, r)] = values
    wb.close()
    return out


def test_files_exist_and_stay_small():
    for name in ALL_FILES + ("labels.jsonl", "README.md", "make_samples.py"):
        assert (SAMPLES / name).is_file(), name
    shipped = sum(p.stat().st_size for p in SAMPLES.rglob("*") if p.is_file() and "models" not in p.parts)
    assert shipped < 2_500_000, shipped


def test_jsonl_parses_except_the_planted_broken_lines(jsonl_rows, labels):
    labs = {lab["line_or_row"]: lab for lab in labels_of(labels, "ops_qa.jsonl")}
    assert set(labs) == set(jsonl_rows), "one label per JSONL line"
    assert 400 <= len(jsonl_rows) <= 500
    for line, obj in jsonl_rows.items():
        planted = labs[line]["planted"]
        if planted == "broken:malformed_json":
            assert obj is None
        elif planted == "broken:missing_field":
            assert obj is not None and "question" not in obj
        else:
            assert obj is not None and set(obj) == {"question", "answer", "category", "source"}, line


def test_csv_is_gb18030_with_chinese_headers_and_multiline_cells(csv_rows, labels):
    raw = (SAMPLES / "ops_qa.gbk.csv").read_bytes()
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    assert csv_rows[1] == ["问题", "回答", "分类"]
    labs = {lab["line_or_row"]: lab for lab in labels_of(labels, "ops_qa.gbk.csv")}
    assert set(labs) == set(csv_rows) - {1}, "one label per CSV record, at the line where it starts"
    assert any("\n" in row[1] for row in csv_rows.values() if len(row) == 3), "a multi-line cell"
    for line, lab in labs.items():
        fields = csv_rows[line]
        assert (len(fields) != 3) == lab["planted"].startswith("broken:field_count"), line


def test_xlsx_has_two_sheets_chinese_headers_and_an_empty_answer_cell(xlsx_rows, labels):
    sheets = sorted({sheet for sheet, _ in xlsx_rows})
    assert sheets == ["中文问答", "英文问答"]
    for sheet in sheets:
        assert xlsx_rows[(sheet, 1)][:3] == ("问题", "回答", "分类")
    labs = {(lab["sheet"], lab["line_or_row"]): lab for lab in labels_of(labels, "ops_qa.xlsx")}
    assert set(labs) == {key for key in xlsx_rows if key[1] > 1}
    broken = [key for key, lab in labs.items() if lab["planted"] == "broken:empty_cell"]
    assert broken and all(xlsx_rows[key][1] is None and xlsx_rows[key][0] for key in broken)


def test_the_three_formats_hold_the_same_items(jsonl_rows, csv_rows, xlsx_rows, labels):
    def content(name: str) -> dict[int, tuple[str, str]]:
        out = {}
        for lab in labels_of(labels, name):
            if "item" not in lab:
                continue
            if name.endswith(".jsonl"):
                obj = jsonl_rows[lab["line_or_row"]]
                q, a = obj["question"], obj["answer"]
            elif name.endswith(".csv"):
                q, a, _ = csv_rows[lab["line_or_row"]]
            else:
                q, a = xlsx_rows[(lab["sheet"], lab["line_or_row"])][:2]
            out[lab["item"]] = (norm(q), norm(a))
        return out

    ref = content("ops_qa.jsonl")
    assert content("ops_qa.gbk.csv") == ref
    assert content("ops_qa.xlsx") == ref


def test_labels_cover_every_row_of_every_file(labels):
    for lab in labels:
        assert PLANTED.match(lab["planted"]), lab
    counts = Counter(lab["file"] for lab in labels)
    for name in ("ops_multiturn.sharegpt.jsonl", "ops_prefs.jsonl", "ops_docs.txt"):
        n_lines = len((SAMPLES / name).read_text(encoding="utf-8").splitlines())
        assert counts[name] == n_lines, name
        assert sorted(lab["line_or_row"] for lab in labels_of(labels, name)) == list(range(1, n_lines + 1))
    keys = [(lab["file"], lab.get("sheet"), lab["line_or_row"]) for lab in labels]
    assert len(keys) == len(set(keys)), "no row labelled twice"


def test_planted_proportions(labels):
    labs = labels_of(labels, "ops_qa.jsonl")
    n = len(labs)
    kinds = Counter(lab["planted"].split(":")[0] for lab in labs)
    assert 0.04 <= kinds["exact_dup"] / n <= 0.09
    assert 0.04 <= kinds["near_dup"] / n <= 0.09
    assert 0.08 <= kinds["junk"] / n <= 0.14
    assert 0.04 <= kinds["pii"] / n <= 0.08
    assert kinds["broken"] >= 1
    junk_kinds = {lab["planted"] for lab in labs if lab["planted"].startswith("junk:")}
    assert len(junk_kinds) >= 10
    assert {lab["planted"] for lab in labs if lab["planted"].startswith("pii:")} == {
        f"pii:{k}" for k in ("email", "phone", "idcard", "card", "ip", "apikey")
    }
    langs = Counter(lab["lang"] for lab in labs if "lang" in lab)
    assert 0.4 <= langs["zh"] / sum(langs.values()) <= 0.6


def test_duplicates_point_at_their_original(jsonl_rows, labels):
    for lab in labels_of(labels, "ops_qa.jsonl"):
        if lab["planted"] not in ("exact_dup", "near_dup"):
            continue
        dup, orig = jsonl_rows[lab["line_or_row"]], jsonl_rows[lab["of"]]
        assert lab["of"] < lab["line_or_row"]
        same = (norm(dup["question"]), norm(dup["answer"])) == (norm(orig["question"]), norm(orig["answer"]))
        assert same == (lab["planted"] == "exact_dup"), lab
        if lab["planted"] == "near_dup":  # a small edit, not a different row
            a, b = dup["question"] + dup["answer"], orig["question"] + orig["answer"]
            assert abs(len(a) - len(b)) < 0.3 * len(b)


def test_planted_pii_values_are_valid_and_present(jsonl_rows, labels):
    weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    for lab in labels_of(labels, "ops_qa.jsonl"):
        if not lab["planted"].startswith("pii:"):
            continue
        kind, value = lab["planted"][4:], lab["value"]
        obj = jsonl_rows[lab["line_or_row"]]
        assert value in obj["question"] + obj["answer"]
        if kind == "idcard":
            assert re.fullmatch(r"\d{17}[\dX]", value)
            assert (
                "10X98765432"[sum(int(d) * w for d, w in zip(value[:17], weights, strict=True)) % 11]
                == value[-1]
            )
        elif kind == "card":
            digits = [int(d) for d in value.replace(" ", "")][::-1]
            total = sum(d if i % 2 == 0 else (d * 2 - 9 if d > 4 else d * 2) for i, d in enumerate(digits))
            assert total % 10 == 0 and len(digits) in (16, 19)
        elif kind == "phone":
            assert re.fullmatch(r"1[3-9]\d{9}", re.sub(r"^\+86 |-", "", value))
        elif kind == "email":
            assert re.fullmatch(r"[\w.]+@[\w.-]+\.[a-z]+", value)
        elif kind == "ip":
            assert all(0 <= int(p) <= 255 for p in value.split("."))
        elif kind == "apikey":
            assert re.match(r"(sk-|sk-proj-|AKIA|ghp_)", value)


def test_other_datasets_parse(labels):
    convs = [
        json.loads(x) for x in (SAMPLES / "ops_multiturn.sharegpt.jsonl").read_text("utf-8").splitlines()
    ]
    assert 25 <= len(convs) <= 40
    for conv in convs:
        roles = [turn["from"] for turn in conv["conversations"]]
        assert roles[0] == "human" and roles[-1] == "gpt"
        assert roles.count("human") >= 2 or "function_call" in roles
    prefs = [json.loads(x) for x in (SAMPLES / "ops_prefs.jsonl").read_text("utf-8").splitlines()]
    assert len(prefs) >= 55
    planted = {lab["line_or_row"]: lab["planted"] for lab in labels_of(labels, "ops_prefs.jsonl")}
    for i, row in enumerate(prefs, 1):
        assert {"prompt", "chosen", "rejected"} <= set(row)
        assert (row["chosen"] == row["rejected"]) == (planted[i] == "junk:identical_pair")
    docs = (SAMPLES / "ops_docs.txt").read_text("utf-8").splitlines()
    assert len(docs) >= 180 and all(line.strip() for line in docs)


def test_generator_reproduces_the_shipped_files(tmp_path):
    spec = importlib.util.spec_from_file_location("make_samples", SAMPLES / "make_samples.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["make_samples"] = module  # dataclasses look their module up while the class is built
    try:
        spec.loader.exec_module(module)
        module.main(tmp_path)
    finally:
        sys.modules.pop("make_samples", None)
    for name in ALL_FILES + ("labels.jsonl",):
        assert (tmp_path / name).read_bytes() == (SAMPLES / name).read_bytes(), name


def test_ingest_rejects_exactly_the_broken_rows(labels):
    from curate.io import load

    for name in ("ops_qa.jsonl", "ops_qa.gbk.csv"):
        result = load([SAMPLES / name])
        labs = labels_of(labels, name)
        broken = sorted(lab["line_or_row"] for lab in labs if lab["planted"].startswith("broken:"))
        assert result.input_rows == len(labs)
        assert sorted(result.rejects["line"].to_list()) == broken
        assert result.frame.height == len(labs) - len(broken)
        assert result.frame["question"].str.contains("[\u4e00-\u9fff]").sum() > 150  # Chinese intact
