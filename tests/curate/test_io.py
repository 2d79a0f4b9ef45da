"""Ingest: every format, every failure mode, lossless round trips, stable ids."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import polars as pl
import pytest

from curate.io import InputError, load, read_frame, write_frame
from curate.io.formats import to_format
from curate.records import record_id

ALPACA = [
    {
        "instruction": "如何查看 Pod 日志？",
        "input": "",
        "output": "使用 kubectl logs <pod>。",
        "system": "你是运维助手",
        "history": [["你好", "你好，有什么可以帮你？"]],
    },
    {
        "instruction": "Restart a deployment",
        "input": "name: web",
        "output": "kubectl rollout restart deploy/web",
    },
]
SHAREGPT = [
    {
        "conversations": [
            {"from": "human", "value": "什么是 Service？"},
            {"from": "gpt", "value": "Service 为一组 Pod 提供稳定访问入口。"},
        ],
        "system": "ops",
        "tools": "[]",
    },
    {
        "conversations": [
            {"from": "human", "value": "area?"},
            {"from": "function_call", "value": '{"name": "area"}'},
            {"from": "observation", "value": '{"area": 4}'},
            {"from": "gpt", "value": "It is 4."},
        ]
    },
]
OPENAI = [
    {
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "What is etcd?"},
            {"role": "assistant", "content": "A distributed key-value store.", "weight": 1},
        ]
    },
]
LF_PREF = [
    {
        "conversations": [{"from": "human", "value": "Why is my pod pending?"}],
        "chosen": {"from": "gpt", "value": "Check events: kubectl describe pod."},
        "rejected": {"from": "gpt", "value": "No idea."},
    },
    {
        "conversations": [{"from": "human", "value": "为什么节点 NotReady？"}],
        "chosen": "检查 kubelet 日志。",
        "rejected": "重启电脑。",
    },
]
TRL_PREF = [
    {
        "prompt": "Scale to 3 replicas?",
        "chosen": "kubectl scale deploy web --replicas=3",
        "rejected": "Buy servers.",
    }
]
TRL_PC = [
    {"prompt": [{"role": "user", "content": "hi"}], "completion": [{"role": "assistant", "content": "hello"}]}
]
KTO = [
    {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], "label": False}
]
HH = [
    {
        "chosen": "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: how?\n\nAssistant: like this",
        "rejected": "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: how?\n\nAssistant: no",
    }
]
TEXT = [{"text": "Kubernetes schedules pods onto nodes."}, {"text": "etcd 保存集群状态。"}]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "rows,fmt,kind",
    [
        (ALPACA, "alpaca", "sft"),
        (SHAREGPT, "sharegpt", "sft"),
        (OPENAI, "openai", "sft"),
        (LF_PREF, "llamafactory-preference", "preference"),
        (TRL_PREF, "trl-preference", "preference"),
        (TRL_PC, "trl-prompt-completion", "sft"),
        (KTO, "openai", "kto"),
        (HH, "hh-rlhf", "preference"),
        (TEXT, "text", "text"),
    ],
)
def test_detect_and_round_trip(tmp_path, rows, fmt, kind):
    res = load([write_jsonl(tmp_path / "in.jsonl", rows)])
    assert res.files[0]["format"] == fmt
    assert res.frame.height == len(rows) and res.rejects.height == 0
    assert set(res.frame["kind"]) == {kind}
    back = [to_format(r, fmt) for r in res.frame.to_dicts()]
    assert back == rows  # lossless
    # provenance: 1-based line numbers
    assert res.frame["source"].struct.field("line").to_list() == list(range(1, len(rows) + 1))


def test_json_array_and_nested_arrays_with_line_numbers(tmp_path):
    p = tmp_path / "nested.json"
    p.write_text(json.dumps([[ALPACA[0]], [ALPACA[1]]], ensure_ascii=False, indent=2), encoding="utf-8")
    res = load([p])
    assert res.frame.height == 2
    lines = res.frame["source"].struct.field("line").to_list()
    assert lines[0] == 2 and lines[1] > lines[0]


def test_history_and_tools_parsed(tmp_path):
    res = load([write_jsonl(tmp_path / "s.jsonl", SHAREGPT)])
    row = res.frame.row(1, named=True)
    assert [t["role"] for t in row["history"]] == ["user", "function_call"]
    assert row["question"] == '{"area": 4}' and row["answer"] == "It is 4."
    alp = load([write_jsonl(tmp_path / "a.jsonl", ALPACA)]).frame.row(1, named=True)
    assert alp["question"] == "Restart a deployment\nname: web"


def test_same_row_from_two_files_gets_same_id(tmp_path):
    a = load([write_jsonl(tmp_path / "a.jsonl", [{"question": "Ｋ８ｓ 是什么", "answer": "容器编排"}])]).frame
    csv = tmp_path / "b.csv"
    csv.write_bytes("问题,回答\r\nK8s  是什么,容器编排\r\n".encode("gb18030"))
    b = load([csv]).frame
    assert a["id"][0] == b["id"][0]
    assert a["id"][0] == record_id("sft", question="K8s 是什么", answer="容器编排")


def test_reingest_output_keeps_ids_and_extra_columns(tmp_path):
    res = load([write_jsonl(tmp_path / "a.jsonl", ALPACA + [{"instruction": "x", "output": "y"}])])
    frame = res.frame.with_columns(pl.Series("score_x", [0.5, 1.5, 2.5]))
    for ext in (".jsonl", ".parquet", ".csv", ".xlsx", ".json"):
        out = write_frame(frame, tmp_path / f"out{ext}")
        back = read_frame(out)
        assert back["id"].to_list() == frame["id"].to_list(), ext
        assert back["history"].to_list() == frame["history"].to_list(), ext
        assert back["score_x"].cast(pl.Float64).to_list() == [0.5, 1.5, 2.5], ext
        # re-deriving ids from the content gives the same ids
        again = load([out])
        assert again.frame["id"].to_list() == frame["id"].to_list()


def test_broken_jsonl_line_is_rejected_with_location(tmp_path):
    p = tmp_path / "broken.jsonl"
    p.write_text(
        '{"question": "a", "answer": "b"}\n{"question": "c", "answer": \n{"question": "d", "answer": "e"}\n[1, 2]\n'
    )
    res = load([p])
    assert res.frame.height == 2 and res.input_rows == 4
    rej = res.rejects.to_dicts()
    assert [r["line"] for r in rej] == [2, 4]
    assert "invalid JSON" in rej[0]["reason"] and rej[0]["file"] == str(p)
    assert "expected a JSON object" in rej[1]["reason"]


def test_field_level_reject_names_field(tmp_path):
    p = write_jsonl(
        tmp_path / "m.jsonl",
        [
            {"messages": [{"role": "user", "content": "q"}]},
            {"messages": [{"role": "alien", "content": "q"}, {"role": "assistant", "content": "a"}]},
        ],
    )
    res = load([p])
    assert res.frame.height == 0 and res.rejects.height == 2
    assert res.rejects["field"].to_list() == ["messages", "messages[0].role"]


def test_gb18030_csv_multiline_quotes_empty_cells_index_column(tmp_path):
    p = tmp_path / "gbk.csv"
    content = ',问题,回答,分类\n0,"多行\n问题","他说""重启""即可",网络\n1,空答案,,存储\n2,𠀀罕见字,答,x\n'
    p.write_bytes(content.encode("gb18030"))
    res = load([p])
    assert res.rejects.height == 0 and res.frame.height == 3
    rows = res.frame.to_dicts()
    assert rows[0]["question"] == "多行\n问题" and rows[0]["answer"] == '他说"重启"即可'
    assert rows[1]["answer"] == ""
    assert rows[2]["question"] == "𠀀罕见字"  # a GB18030 four-byte character survives
    assert [r["source"]["line"] for r in rows] == [2, 4, 5]
    assert "gb18030" in res.explanations[0] and "" not in json.loads(rows[0]["meta"])
    assert json.loads(rows[0]["meta"]) == {"_fmt": json.loads(rows[0]["meta"])["_fmt"], "分类": "网络"}


def test_csv_wrong_field_count_rejected(tmp_path):
    p = tmp_path / "bad.csv"
    p.write_text("question,answer\nq1,a1\nq2,a2,extra\nq3,a3\n", encoding="utf-8")
    res = load([p])
    assert res.frame.height == 2
    assert res.rejects.to_dicts()[0]["line"] == 3 and "3 fields" in res.rejects.to_dicts()[0]["reason"]


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16", "gb18030"])
def test_encodings(tmp_path, encoding):
    p = tmp_path / "e.tsv"
    p.write_bytes("question\tanswer\n容器是什么\t轻量隔离的进程\n".encode(encoding))
    res = load([p])
    assert res.frame["question"].to_list() == ["容器是什么"]


def test_xlsx_sheets_chinese_headers_empty_cell_and_image(tmp_path):
    openpyxl = pytest.importorskip("openpyxl")
    from openpyxl.drawing.image import Image

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "网络"
    ws.append(["问题", "回答", "来源"])
    ws.append(["什么是 Ingress", "七层入口", None])
    ws.append(["图片答案", None, "doc"])
    ws2 = wb.create_sheet("存储")
    ws2.append(["问题", "回答"])
    ws2.append(["PV 和 PVC", "PV 是卷，PVC 是申请"])
    png = tmp_path / "x.png"
    _tiny_png(png)
    ws.add_image(Image(str(png)), "B3")
    p = tmp_path / "qa.xlsx"
    wb.save(p)
    res = load([p])
    assert res.input_rows == 3 and res.frame.height == 2
    rej = res.rejects.to_dicts()[0]
    assert rej["sheet"] == "网络" and rej["line"] == 3 and "image" in rej["reason"]
    assert sorted(res.frame["source"].struct.field("sheet").to_list()) == ["存储", "网络"]
    only = load([p], sheet="存储")
    assert only.frame.height == 1
    with pytest.raises(InputError, match="no sheet named"):
        load([p], sheet="nope")


def _tiny_png(path: Path) -> None:
    import struct
    import zlib

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)

    raw = b"\x00\xff\x00\x00"
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def test_truncated_gzip_keeps_readable_rows_and_rejects_cut_line(tmp_path):
    rows = [{"question": f"问题 {i} " + "x" * 50, "answer": f"回答 {i} " + "y" * 50} for i in range(200)]
    data = gzip.compress("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode())
    p = tmp_path / "cut.jsonl.gz"
    p.write_bytes(data[: len(data) * 2 // 3])
    res = load([p])
    assert 0 < res.frame.height < 200
    assert any("truncated" in e for e in res.explanations)
    assert res.rejects.height <= 1
    if res.rejects.height:
        assert "truncated" in res.rejects["reason"][0]
    assert res.input_rows == res.frame.height + res.rejects.height


def test_zstd_and_parquet(tmp_path):
    import zstandard

    raw = "".join(json.dumps(r) + "\n" for r in TRL_PREF).encode()
    p = tmp_path / "a.jsonl.zst"
    p.write_bytes(zstandard.ZstdCompressor().compress(raw))
    assert load([p]).frame.height == 1
    pq = tmp_path / "qa.parquet"
    pl.DataFrame({"query": ["q1", "q2"], "response": ["a1", "a2"]}).write_parquet(pq)
    res = load([pq])
    assert res.frame["answer"].to_list() == ["a1", "a2"]


def test_mojibake_repaired_and_counted(tmp_path):
    bad = "Conchita Martínez won".encode().decode("latin-1")
    res = load(
        [
            write_jsonl(
                tmp_path / "m.jsonl",
                [{"question": bad, "answer": "ok"}, {"question": "clean", "answer": "fine"}],
            )
        ]
    )
    assert res.repaired == 1 and res.frame["question"][0] == "Conchita Martínez won"
    assert res.frame["question"][1] == "clean"


def test_map_override_joins_columns(tmp_path):
    p = tmp_path / "m.csv"
    p.write_text("title,ask,answer\nT1,body one,A1\n", encoding="utf-8")
    res = load([p], mapping={"question": ["title", "ask"]})
    assert res.frame["question"][0] == "T1\nbody one"


def test_unreadable_inputs_raise_clear_errors(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        load([tmp_path / "missing.jsonl"])
    bad = tmp_path / "bad.json"
    bad.write_text('[{"a": 1},')
    with pytest.raises(InputError, match=r"invalid JSON at line 1"):
        load([bad])
    q_only = tmp_path / "q.csv"
    q_only.write_text("title,url\nhello,http://x\n")
    with pytest.raises(InputError, match="cannot tell the format"):
        load([q_only])
    with pytest.raises(InputError, match="unknown file type"):
        load([tmp_path / "x.doc"])
    notgz = tmp_path / "n.jsonl.gz"
    notgz.write_text("plain")
    with pytest.raises(InputError, match="gzip"):
        load([notgz])


def test_every_fixture_format_loads(tiny_datasets):
    for name, path in tiny_datasets.items():
        res = load([path])
        assert res.frame.height > 0 and res.rejects.height == 0, name


def test_truncated_zstd_is_reported_even_at_a_line_boundary(tmp_path):
    import zstandard

    rows = [{"question": f"问题 {i} " + "x" * 40, "answer": f"回答 {i} " + "y" * 40} for i in range(20000)]
    raw = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()
    data = zstandard.ZstdCompressor().compress(raw)
    p = tmp_path / "cut.jsonl.zst"
    p.write_bytes(data[: len(data) // 2])
    res = load([p])
    assert 0 < res.frame.height < 20000 and res.rejects.height == 1
    assert "truncated" in res.rejects["reason"][0]
    assert res.input_rows == res.frame.height + res.rejects.height
    # cut before the first block ends: nothing readable is an error, not an empty success
    p.write_bytes(data[:200])
    with pytest.raises(InputError, match="truncated before any data"):
        load([p])
    # a cut exactly at a line boundary (the second frame lost before its first block) still says so
    first = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows[:1000]).encode()
    second = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows[1000:2000]).encode()
    cctx = zstandard.ZstdCompressor()
    p.write_bytes(cctx.compress(first) + cctx.compress(second)[:12])
    res = load([p])
    assert res.frame.height == 1000 and res.rejects.height == 1
    assert (
        res.rejects["reason"][0]
        == "the compressed file is truncated after line 1000: whatever followed is lost"
    )


def test_utf16_without_bom_and_mostly_utf8_with_a_broken_line(tmp_path):
    p = tmp_path / "u.csv"
    p.write_bytes("question,answer\nhow to restart,kubectl rollout restart\n".encode("utf-16-le"))
    res = load([p])
    assert res.frame["question"].to_list() == ["how to restart"]
    # one broken byte in a UTF-8 file: the line is rejected, the Chinese rows are not mojibake
    body = "question,answer\n" + "".join(f"怎么查看第{i}个日志,用 kubectl logs {i}\n" for i in range(30))
    m = tmp_path / "m.csv"
    m.write_bytes(body.encode() + b"bad \xff row,x\n")
    res = load([m])
    assert res.frame.height == 30 and res.frame["question"][0] == "怎么查看第0个日志"
    assert res.rejects.height == 1 and res.rejects["line"][0] == 32 and "0xff" in res.rejects["reason"][0]
    # a real GBK file still decodes as GBK
    g = tmp_path / "g.csv"
    g.write_bytes(body.encode("gbk"))
    assert load([g]).frame["question"][5] == "怎么查看第5个日志"


def test_huge_csv_cell_and_quoted_tsv_round_trip(tmp_path):
    big = tmp_path / "big.csv"
    big.write_text("question,answer\nq," + "长" * 300_000 + "\n", encoding="utf-8")
    assert len(load([big]).frame["answer"][0]) == 300_000
    frame = pl.DataFrame({"question": ["a\tb", "c\nd", 'say "hi"'], "answer": ["x", "y", "z"]})
    frame.write_csv(tmp_path / "q.tsv", separator="\t")  # quotes the cells that need it
    res = load([tmp_path / "q.tsv"])
    assert res.frame["question"].to_list() == ["a\tb", "c\nd", 'say "hi"'] and res.rejects.height == 0
    # an unquoted TSV keeps stray quotes as text
    (tmp_path / "raw.tsv").write_text('question\tanswer\n他说"你好\t回答\n"开头\t结尾"\n', encoding="utf-8")
    res = load([tmp_path / "raw.tsv"])
    assert res.frame["question"].to_list() == ['他说"你好', '"开头'] and res.frame["answer"][1] == '结尾"'


def test_repeated_headers_keep_every_cell(tmp_path):
    import openpyxl

    (tmp_path / "d.csv").write_text("question,answer,answer\nq1,a1,b1\n", encoding="utf-8")
    wb = openpyxl.Workbook()
    wb.active.append(["question", "answer", "answer"])
    wb.active.append(["q1", "a1", "b1"])
    wb.save(tmp_path / "d.xlsx")
    for name in ("d.csv", "d.xlsx"):
        res = load([tmp_path / name])
        assert res.frame.height == 1 and res.frame["answer"][0] == "a1", name
        assert json.loads(res.frame["meta"][0])["answer_2"] == "b1", name


@pytest.mark.parametrize("ext", ["csv", "tsv", "xlsx"])
def test_canonical_reingest_from_text_cells_keeps_labels_and_scores(tmp_path, tiny_datasets, ext):
    frame = load([tiny_datasets["kto"]]).frame
    frame = frame.with_columns(pl.lit(1.5).alias("ppl"), pl.lit(3).alias("rank"))
    assert frame["label"].to_list() == [False]
    write_frame(frame, tmp_path / f"k.{ext}")
    back = load([tmp_path / f"k.{ext}"])
    assert back.frame["label"].to_list() == [False] and back.frame["id"].to_list() == frame["id"].to_list()
    assert back.frame["ppl"].dtype == pl.Float64 and back.frame["rank"].dtype == pl.Int64
    # a label cell that is not a label rejects its row, naming the field
    text = (tmp_path / f"k.{ext}").read_text(encoding="utf-8") if ext != "xlsx" else None
    if text is not None:
        sep = "\t" if ext == "tsv" else ","
        header = text.splitlines()[0].split(sep)
        assert "label" in header
        bad = text.replace(f"{sep}false{sep}", f"{sep}maybe{sep}")
        (tmp_path / f"bad.{ext}").write_text(bad, encoding="utf-8")
        res = load([tmp_path / f"bad.{ext}"])
        assert res.frame.height == 0 and res.rejects["field"].to_list() == ["label"]


def test_truncated_csv_rejects_the_cut_row_not_a_shortened_one(tmp_path):
    body = "question,answer\n" + "".join(f"q{i},answer number {i} is complete\n" for i in range(3000))
    gz = gzip.compress(body.encode())
    p = tmp_path / "cut.csv.gz"
    for cut in range(len(gz) // 2, len(gz) // 2 + 40):  # some cut inside a row's last cell
        p.write_bytes(gz[:cut])
        res = load([p])
        if res.frame.height and not res.frame["answer"][-1].endswith("complete"):
            raise AssertionError(f"cut row kept: {res.frame['answer'][-1]!r}")
        assert res.rejects.height == 1 and "truncated" in res.rejects["reason"][0]
        assert all(a.endswith("is complete") for a in res.frame["answer"].to_list())


def test_undecodable_bytes_never_kept_in_json_cr_files_or_small_files(tmp_path):
    rows = [{"question": f"问题{i}", "answer": f"回答{i}"} for i in range(10)]
    raw = json.dumps(rows, ensure_ascii=False, indent=1).encode()
    p = tmp_path / "bad.json"
    p.write_bytes(raw.replace("回答3".encode(), "回".encode() + b"\xff\xfe"))
    res = load([p])
    assert res.frame.height == 9 and res.rejects.height == 1
    assert "\ufffd" not in "".join(res.frame["answer"].to_list())
    # an old-Mac export: CR-only line ends
    cr = tmp_path / "cr.csv"
    lines = ["question,answer"] + [f"怎么查看第{i}个日志,用 kubectl logs {i}" for i in range(5)]
    cr.write_bytes("\r".join(lines).encode().replace("第3个".encode(), "第3".encode() + b"\xff") + b"\r")
    res = load([cr])
    assert res.frame.height == 4 and res.rejects.height == 1 and res.rejects["line"][0] == 5
    # a 3-line UTF-8 file with one broken byte is still UTF-8 (not re-read as GB18030 mojibake)
    small = tmp_path / "small.csv"
    small.write_bytes("question,answer\n怎么重启,用命令\n".encode() + "如何查看,看日志".encode()[:-1] + b"\n")
    res = load([small])
    assert res.frame["question"].to_list() == ["怎么重启"] and res.rejects.height == 1


def test_quoted_tsv_larger_than_the_sniff_sample(tmp_path):
    frame = pl.DataFrame(
        {
            "question": [f"q{i}" for i in range(6000)],
            "answer": [f'para one {i}\n"quoted" two\tafter tab\npara three' for i in range(6000)],
        }
    )
    frame.write_csv(tmp_path / "big.tsv", separator="\t")
    assert (tmp_path / "big.tsv").stat().st_size > 200_000
    res = load([tmp_path / "big.tsv"])
    assert res.frame.height == 6000 and res.rejects.height == 0
    assert res.frame["answer"][5999] == frame["answer"][5999]
    # a raw TSV whose cells merely start or end with quotes keeps them, however long the file
    lines = ["question\tanswer", 'q0\t"fully quoted"'] + [f"q{i}\tplain {i}" for i in range(1, 50)]
    lines += [f'q{i}\t"Hi," he said {i} ' + "x" * 60 for i in range(50, 4000)]
    (tmp_path / "raw.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    res = load([tmp_path / "raw.tsv"])
    assert res.frame.height == 4000 and res.frame["answer"][50].startswith('"Hi," he said 50')
    assert res.frame["answer"][0] == '"fully quoted"'


def test_truncated_utf16_keeps_the_complete_rows(tmp_path):
    body = "question\tanswer\n" + "".join(f"q{i}\ta{i}\n" for i in range(500))
    data = gzip.compress(codecs_bom_utf16() + body.encode("utf-16-le"))
    p = tmp_path / "u16.tsv.gz"
    p.write_bytes(data[: len(data) - 7])
    res = load([p])
    assert res.frame.height > 100 and res.rejects.height == 1


def codecs_bom_utf16() -> bytes:
    import codecs

    return codecs.BOM_UTF16_LE


def test_canonical_csv_with_missing_nested_values_and_id_like_columns(tmp_path):
    src = tmp_path / "c.jsonl"
    src.write_text(
        '{"id": "a1", "kind": "sft", "question": "q1", "answer": "a1", "ticket": "007", "ver": "1.10",'
        ' "big": "123456789012345678901", "n": 5, "reward": 0.5}\n'
        '{"id": "a2", "kind": "sft", "question": "q2", "answer": "a2", "ticket": "008", "ver": "1.2",'
        ' "big": "5", "n": 6, "reward": null}\n',
        encoding="utf-8",
    )
    frame = load([src]).frame
    for ext in ("csv", "tsv", "xlsx"):
        write_frame(frame, tmp_path / f"c.{ext}")
        back = load([tmp_path / f"c.{ext}"])
        assert back.rejects.height == 0 and back.frame.height == 2, ext
        assert back.frame["ticket"].to_list() == ["007", "008"], ext
        assert back.frame["ver"].to_list() == ["1.10", "1.2"], ext
        assert back.frame["big"].to_list() == ["123456789012345678901", "5"], ext
        assert back.frame["n"].to_list() == [5, 6] and back.frame["reward"].to_list() == [0.5, None], ext
    # a hand-broken history cell rejects that row only, naming the field
    (tmp_path / "bad.csv").write_text(
        "id,kind,history,question,answer\na1,sft,,q1,a1\na2,sft,[{broken,q2,a2\n", encoding="utf-8"
    )
    res = load([tmp_path / "bad.csv"])
    assert res.frame.height == 1 and res.rejects["field"].to_list() == ["history"]


def test_empty_system_and_tool_keys_survive_a_trl_preference_round_trip(tmp_path):
    call = [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]
    rows = [
        {
            "prompt": [
                {"role": "system", "content": ""},
                {"role": "user", "content": "q1"},
                {"role": "assistant", "content": None, "tool_calls": call},
                {"role": "tool", "tool_call_id": "c1", "name": "f", "content": "r"},
                {"role": "user", "content": "q2"},
            ],
            "chosen": [{"role": "assistant", "content": "good"}],
            "rejected": [{"role": "assistant", "content": "bad"}],
        }
    ]
    res = load([write_jsonl(tmp_path / "p.jsonl", rows)])
    assert res.files[0]["format"] == "trl-preference" and res.frame["system"].to_list() == [""]
    back = [to_format(r, "trl-preference") for r in res.frame.to_dicts()]
    assert back == rows
    again = load([write_jsonl(tmp_path / "back.jsonl", back)]).frame
    assert again["system"].to_list() == [""] and again["id"].to_list() == res.frame["id"].to_list()
    # from another format too: "" stays "", not null
    alp = load([write_jsonl(tmp_path / "a.jsonl", [{"instruction": "q", "output": "a", "system": ""}])]).frame
    out = to_format({**alp.to_dicts()[0], "kind": "kto", "label": True}, "trl-prompt-completion")
    assert out["prompt"][0] == {"role": "system", "content": ""}


def test_messages_of_carries_tool_keys_of_history_turns(tmp_path):
    from curate.records import messages_of

    call = [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]
    rows = [
        {
            "messages": [
                {"role": "system", "content": ""},
                {"role": "user", "content": "q1", "weight": 0},
                {"role": "assistant", "content": None, "tool_calls": call},
                {"role": "tool", "tool_call_id": "c1", "name": "f", "content": "r"},
                {"role": "assistant", "content": "done"},
            ]
        }
    ]
    row = load([write_jsonl(tmp_path / "m.jsonl", rows)]).frame.to_dicts()[0]
    assert row["question"] == "r"  # the tool result is the final question, its role in meta._fmt
    msgs = messages_of(row, answer_field=None)
    assert msgs[0] == {"role": "user", "content": "q1"}  # a blank system prompt: the template's default
    assert msgs[1] == {"role": "assistant", "content": "", "tool_calls": call}
    assert msgs[2] == {"role": "tool", "content": "r", "tool_call_id": "c1", "name": "f"}
    full = messages_of(row, answer_field="answer", lossless=True)
    assert full[0] == {"role": "system", "content": ""} and full[1]["weight"] == 0
    assert full[2]["content"] is None and full[-1] == {"role": "assistant", "content": "done"}
