import json

import polars as pl
from click.testing import CliRunner

from curate.cli import main
from curate.dedup.decontaminate import DecontamConfig, build_eval_index, run
from curate.records import Record, to_frame

EVAL_Q = "一个长方形的长是十二厘米宽是五厘米它的面积是多少平方厘米"
EVAL_EN = (
    "Natalia sold clips to forty eight of her friends in April and then she sold half as many clips in May"
)


def frame(rows, file="f"):
    return to_frame(
        Record("sft", question=q, answer=a, source_file=file, source_line=i + 1).as_row()
        for i, (q, a) in enumerate(rows)
    )


def test_ngram_overlap_cjk_and_english_names_eval_item():
    evals = frame([(EVAL_Q, "六十平方厘米"), (EVAL_EN, "72"), ("短题目八个字呀呀", "答")], "gsm.jsonl")
    train = frame(
        [
            ("请解答：" + EVAL_Q[:15] + "？", "答案略"),  # 15 contiguous characters of an eval question
            ("How many clips? " + " ".join(EVAL_EN.split()[:14]), "some"),  # 14 contiguous words
            ("长方形的面积怎么算", "长乘以宽"),  # related topic, no 13-gram in common
            ("考试里有一道短题目八个字呀呀的题", "嗯"),  # contains a whole short eval item
            ("", ""),
        ]
    )
    cfg = DecontamConfig()
    idx = build_eval_index(evals, cfg)
    res = run(train, idx, cfg)
    assert res.kept.height + res.dropped.height == train.height
    hit = {r["source"]["line"]: json.loads(r["drop_detail"]) for r in res.dropped.iter_rows(named=True)}
    assert set(hit) == {1, 2, 4}
    assert hit[1]["eval_source"] == "gsm.jsonl:1" and hit[1]["matched_ngrams"] == 3
    assert hit[2]["eval_source"] == "gsm.jsonl:2"
    assert hit[4]["eval_source"] == "gsm.jsonl:3"
    assert res.stats["eval_items_hit"] == 3


def test_common_ngrams_are_ignored():
    boiler = "根据中华人民共和国民法典的相关规定"
    evals = frame([(boiler + f"第{i}个问题的具体内容", "答") for i in range(12)])
    train = frame([(boiler + "我想咨询离婚财产分割", "答")])
    res = run(train, build_eval_index(evals, DecontamConfig(common=10)), DecontamConfig(common=10))
    assert res.dropped.height == 0
    res = run(train, build_eval_index(evals, DecontamConfig(common=100)), DecontamConfig(common=100))
    assert res.dropped.height == 1


def test_decontaminate_cli(tmp_path):
    ev = tmp_path / "eval.jsonl"
    ev.write_text(
        json.dumps({"question": EVAL_Q, "answer": "60"}, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    tr = tmp_path / "train.jsonl"
    tr.write_text(
        "".join(
            json.dumps(r, ensure_ascii=False) + "\n"
            for r in [
                {"instruction": EVAL_Q, "output": "60"},
                {"instruction": "别的问题", "output": "别的答案"},
            ]
        ),
        encoding="utf-8",
    )
    out = tmp_path / "clean.jsonl"
    r = CliRunner().invoke(main, ["decontaminate", str(tr), "--against", str(ev), "-o", str(out), "--json"])
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout.strip().splitlines()[-1])
    assert s["kept"] == 1 and s["contaminated_rows"] == 1
    d = pl.read_ndjson(tmp_path / "clean.dropped.jsonl")
    assert d["contam_eval_source"][0].endswith("eval.jsonl:1")


def test_a_prompt_repeated_in_many_eval_rows_is_not_boilerplate():
    q = "Explain in detail why the sky appears blue during the day but red at sunset please"
    evals = frame([(q, f"model answer number {i}") for i in range(11)])
    train = frame([(q, "Because of Rayleigh scattering.")])
    cfg = DecontamConfig()
    idx = build_eval_index(evals, cfg)
    assert idx.stats["common_ngrams_ignored"] == 0  # one distinct question, not 11
    res = run(train, idx, cfg)
    assert res.dropped.height == 1
