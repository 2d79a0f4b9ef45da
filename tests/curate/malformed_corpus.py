"""A corpus of malformed input files for ingest (issue 15), built on demand (not shipped data).

:func:`build` writes every case into a folder and returns ``Case(path, rows, exit_codes)``: ``rows`` is
the number of input rows the file holds when they can be counted (then ``kept + rejected`` must equal
it), ``None`` when the whole file is unusable; ``exit_codes`` are the codes ingest may end with.
"""

from __future__ import annotations

import codecs
import gzip
import json
import os
from dataclasses import dataclass
from pathlib import Path

DEEP = "[" * 1500 + "]" * 1500
QA = [{"question": f"q{i}", "answer": f"a{i}"} for i in range(6)]
ALPACA = [{"instruction": f"i{i}", "input": "", "output": f"o{i}"} for i in range(4)]
OK_OR_REJECTS = (0, 1)
REJECTS = (1,)
UNUSABLE = (2,)


@dataclass
class Case:
    path: Path
    rows: int | None
    exit_codes: tuple[int, ...]


def _lines(rows: list) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def _conv(*turns: tuple[str, str]) -> dict:
    return {"conversations": [{"from": f, "value": v} for f, v in turns]}


def sheets_workbook(path: Path) -> Path:
    """Three sheets, three headers: 问题/回答, query/response(/team), and title/url (no answer column)."""
    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "zh"
    ws.append(["问题", "回答"])
    ws.append(["怎么重启？", "运行 reboot。"])
    en = wb.create_sheet("en")
    en.append(["query", "response", "team"])
    en.append(["How to restart?", "Run reboot.", "ops"])
    en.append(["Disk full?", "Run df -h.", "ops"])
    notes = wb.create_sheet("notes")
    notes.append(["title", "url"])
    notes.append(["hello", "http://x"])
    wb.save(path)
    return path


def build(folder: Path) -> list[Case]:  # noqa: PLR0915 (one case per statement, on purpose)
    folder.mkdir(parents=True, exist_ok=True)
    cases: list[Case] = []

    def text(name: str, content: str, rows: int | None, codes=REJECTS, encoding: str = "utf-8") -> None:
        p = folder / name
        p.write_bytes(content.encode(encoding))
        cases.append(Case(p, rows, codes))

    def binary(name: str, content: bytes, rows: int | None, codes=REJECTS) -> None:
        p = folder / name
        p.write_bytes(content)
        cases.append(Case(p, rows, codes))

    good = _lines(QA[:2])
    # nesting, Unicode, JSON damage
    text("deep.jsonl", good + '{"question": "x", "answer": ' + DEEP + "}\n" + good, 5)
    text(
        "deep_value_ok_depth.jsonl",
        good + '{"question": "x", "answer": "y", "m": ' + "[" * 900 + "]" * 900 + "}\n",
        3,
        OK_OR_REJECTS,
    )
    text(
        "surrogate.jsonl",
        good + '{"question": "x\\ud800", "answer": "y"}\n{"question": "\\udfff", "answer": "z"}\n',
        4,
    )
    text("nul_escape.jsonl", '{"question": "a\\u0000b", "answer": "c"}\n' + good, 3, OK_OR_REJECTS)
    text("invalid_lines.jsonl", good + "{not json}\n" + '{"question": "q", "answer": \n' + good, 6)
    text("non_objects.jsonl", good + '[1, 2]\n42\n"text"\nnull\n', 6)
    text(
        "cut_array.json",
        '[{"question": "a", "answer": "b"},\n {"question": "c", "answer": "d"},\n {"question": "e", "ans',
        3,
    )
    text(
        "cut_between_items.json",
        '[{"question": "a", "answer": "b"},\n {"question": "c", "answer": "d"},\n',
        3,
    )
    text(
        "trailing_commas.json",
        '[{"question": "a", "answer": "b"},\n {"question": "c", "answer": "d"},\n]',
        2,
        (0,),
    )
    text(
        "deep_item.json",
        '[{"question": "a", "answer": "b"},\n {"question": "c", "answer": '
        + DEEP
        + '},\n {"question": "e", "answer": "f"}]',
        3,
    )
    text(
        "wrapped_cut.json",
        '{"data": [{"question": "a", "answer": "b"},\n {"question": "c", "answer": "d"},\n {"question"',
        3,
    )
    text(
        "bad_item_middle.json",
        '[{"question": "a", "answer": "b"},\n {"question": "c" "answer": "d"},\n {"question": "e", "answer": "f"}]',
        3,
    )
    # a nested array's members are rows each (nested arrays of objects are a known layout)
    text("scalar_items.json", '[{"question": "a", "answer": "b"}, 3, "x", null, [1, 2]]', 6)
    text("top_level_scalar.json", "42", None, UNUSABLE)
    text(
        "garbage_after_array.json",
        '[{"question": "a", "answer": "b"}] trailing garbage',
        None,
        OK_OR_REJECTS + UNUSABLE,
    )
    text("only_brackets.json", "[", None, UNUSABLE)
    # formats
    mixed = [
        ALPACA[0],
        _conv(("human", "q"), ("gpt", "a")),
        {"messages": [{"role": "user", "content": "q2"}, {"role": "assistant", "content": "a2"}]},
        QA[0],
        {"prompt": "p", "chosen": "c", "rejected": "r"},
        {"foo": 1},
    ]
    text("mixed_formats.jsonl", _lines(mixed), 6)
    text(
        "sharegpt_bad_roles.jsonl",
        _lines([_conv(("human", "q"), ("gpt", "a")), _conv(("alien", "q"), ("gpt", "a"))]),
        2,
    )
    text("sharegpt_unanswered.jsonl", _lines([_conv(("human", "q"), ("gpt", "a")), _conv(("human", "q"))]), 2)
    text(
        "sharegpt_not_a_list.jsonl",
        _lines([_conv(("human", "q"), ("gpt", "a")), {"conversations": "hi"}, {"conversations": []}]),
        3,
    )
    image = {
        "messages": [
            {"role": "user", "content": [{"type": "image", "image": "x.png"}]},
            {"role": "assistant", "content": "a"},
        ]
    }
    text(
        "openai_image_part.jsonl",
        _lines(
            [image, {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}]
        ),
        2,
    )
    text(
        "alpaca_bad_history.jsonl",
        _lines([ALPACA[0], {**ALPACA[1], "history": "nope"}, {**ALPACA[2], "history": [["only one"]]}]),
        3,
    )
    text(
        "alpaca_types.jsonl",
        _lines([{"instruction": 5, "input": None, "output": True}, {"instruction": {"a": 1}, "output": "o"}]),
        2,
        OK_OR_REJECTS,
    )
    kto = [
        {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], "label": v}
        for v in (True, "maybe", 7)
    ]
    text("kto_bad_labels.jsonl", _lines(kto), 3)
    text(
        "hh_malformed.jsonl",
        _lines(
            [
                {"chosen": "\n\nHuman: hi\n\nAssistant: a", "rejected": "\n\nHuman: hi\n\nAssistant: b"},
                {"chosen": "no human", "rejected": "x"},
                {"chosen": "\n\nHuman: a\n\nAssistant: b", "rejected": "\n\nHuman: other\n\nAssistant: c"},
            ]
        ),
        3,
    )
    text(
        "null_answers.jsonl",
        _lines([{"question": "q", "answer": None}, {"question": None, "answer": "a"}, QA[0]]),
        3,
    )
    text("unknown_columns.jsonl", _lines([{"a": 1, "b": 2}]), None, UNUSABLE)
    text("huge_line.jsonl", _lines([{"question": "q" * 2_000_000, "answer": "a"}, QA[0]]), 2, (0,))
    text("duplicate_keys.jsonl", '{"question": "a", "question": "b", "answer": "c"}\n' + good, 3, (0,))
    bad = "Conchita Martínez won".encode().decode("latin-1")
    text("mojibake.jsonl", _lines([{"question": bad, "answer": "ok"}, QA[0]]), 2, (0,))
    # encodings
    text("bom.jsonl", "\ufeff" + good, 2, (0,))
    binary("utf16_no_bom.jsonl", good.encode("utf-16-le"), 2, (0,))
    binary("utf16_odd_byte.jsonl", codecs.BOM_UTF16_LE + good.encode("utf-16-le") + b"\x00", 2, OK_OR_REJECTS)
    binary(
        "mostly_utf8.csv", ("question,answer\n" + "问题,回答\n" * 10).encode() + b"q,\xff\xfe broken\n", 11
    )
    gbk_good = "你好吗,我很好谢谢\n".encode("gbk")
    gbk_bad = "坏行,有问题".encode("gbk") + b"\x80\xff\x80\n"
    binary("gbk_broken.csv", "问题,回答\n".encode("gbk") + gbk_good * 15 + gbk_bad + gbk_good * 15, 31)
    binary("latin1.csv", "question,answer\nNaïve?,déjà vu\nCafé,À bientôt\n".encode("latin-1"), 2, (0,))
    # Big5 bytes also decode as GB18030, as rare characters: read as Big5 (an announced guess)
    binary("big5.csv", "問題,回答\n".encode("big5") + "你好嗎,我很好謝謝\n".encode("big5") * 5, 5, (0,))
    small_gbk = "问题,回答\n".encode("gbk") + gbk_good * 2 + gbk_bad + gbk_good * 2
    binary("gbk_small_broken.csv", small_gbk, 5)
    binary("random_bytes.csv", bytes(range(256)) * 40, None, OK_OR_REJECTS + UNUSABLE)
    # no valid non-ASCII line to say UTF-8: a statistical guess (announced) may read it as cp1252
    binary("invalid_utf8.txt", b"good line one\n\xff\xfe\xfd bad line\ngood line two\n", 3, OK_OR_REJECTS)
    binary("mostly_utf8.txt", "第一行\n第二行\n".encode() + b"\xff\xfe bad\n" + "第四行\n".encode(), 4)
    # delimited files
    text("cr_only.csv", "question,answer\rq1,a1\rq2,a2\r", 2, (0,))
    text("wrong_field_count.csv", "question,answer\nq1,a1\nq2\nq3,a3,extra\n", 3)
    text("unclosed_quote.csv", 'question,answer\nq1,a1\nq2,"never closed\n', 2, OK_OR_REJECTS)
    text("nul_bytes.csv", "question,answer\nq1,a\x00b\nq2,a2\n", 2, OK_OR_REJECTS)
    text("stray_quotes.tsv", 'question\tanswer\nhe said "hi\tok\nq2\ta2\n', 2, (0,))
    text("header_only.csv", "question,answer\n", None, UNUSABLE)
    text("empty.jsonl", "", None, UNUSABLE)
    text("whitespace.json", "   \n\n  ", None, UNUSABLE)
    # compression
    gz = gzip.compress(_lines(QA).encode())
    binary("truncated.jsonl.gz", gz[: len(gz) * 2 // 3], None, REJECTS + UNUSABLE)
    binary("not_gzip.jsonl.gz", b"plain text, not gzip", None, UNUSABLE)
    try:
        import zstandard

        zs = zstandard.ZstdCompressor().compress(_lines(QA * 20).encode())
        binary("truncated.jsonl.zst", zs[: len(zs) // 2], None, REJECTS + UNUSABLE)
    except ImportError:  # pragma: no cover
        pass
    # spreadsheets and binary formats
    import openpyxl

    cases.append(Case(sheets_workbook(folder / "sheets.xlsx"), 4, REJECTS))
    wb = openpyxl.Workbook()
    wb.active.append(["question", "answer"])
    wb.save(folder / "header_only.xlsx")
    cases.append(Case(folder / "header_only.xlsx", None, UNUSABLE))
    binary("corrupt.xlsx", b"PK\x03\x04 not really a zip", None, UNUSABLE)
    binary("corrupt.parquet", b"PAR1 nope", None, UNUSABLE)
    text("unknown.doc", "hello", None, UNUSABLE)
    # paths
    loop = folder / "loop.jsonl"
    os.symlink(loop.name, loop)
    cases.append(Case(loop, None, UNUSABLE))
    dangling = folder / "dangling.jsonl"
    os.symlink("does-not-exist.jsonl", dangling)
    cases.append(Case(dangling, None, UNUSABLE))
    (folder / "empty_dir").mkdir()
    cases.append(Case(folder / "empty_dir", None, UNUSABLE))
    return cases
