"""persona-opener strips the opener and keeps the answer (never drops domain content); the summaries
name the rule that dropped most and how to disable it."""

from __future__ import annotations

import json

from click.testing import CliRunner

from curate.cli import main
from curate.records import Record, to_frame
from curate.rules import apply, load_rules


def test_persona_opener_strips_and_keeps_the_answer():
    rows = [
        ("租房合同到期房东不退押金怎么办？", "作为律师，我认为房东无正当理由扣押押金属于违约，可以起诉。"),
        ("Can my landlord keep my deposit?", "As a lawyer, I would say no: the landlord must return it."),
        ("被公司辞退有补偿吗？", "您好！作为一名律师，我建议您保留劳动合同并申请仲裁。"),
        ("医生，头痛怎么办？", "作为医生，我建议先测量血压，持续头痛请就诊。"),
    ]
    fr = to_frame(Record("sft", question=q, answer=a).as_row() for q, a in rows)
    kept, dropped, stats = apply(fr, load_rules(["default"]))
    assert dropped.height == 0 and kept.height == 4
    assert kept["answer"].to_list() == [
        "我认为房东无正当理由扣押押金属于违约，可以起诉。",
        "I would say no: the landlord must return it.",
        "您好！我建议您保留劳动合同并申请仲裁。",
        "我建议先测量血压，持续头痛请就诊。",
    ]
    st = stats["rules"]["persona-opener"]
    assert st["action"] == "fix" and st["fixed"] == 4 and st["dropped"] == 0
    # without the rule the opener stays
    kept2, _, _ = apply(fr, load_rules(["default"], disable=["persona-opener"]))
    assert kept2["answer"][0].startswith("作为律师，我")


def test_top_drop_rule_is_named_with_how_to_disable_it(tmp_path):
    rows = [
        {"instruction": f"问题 {i} 怎么办？", "output": "作为一个AI语言模型，我无法回答这个问题。"}
        for i in range(5)
    ]
    rows += [
        {"instruction": f"Question {i}?", "output": f"Answer {i}: check the logs of service {i}."}
        for i in range(5)
    ]
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    res = CliRunner().invoke(main, ["filter", str(data), "--json"])
    top = json.loads(res.stdout)["top_drop"]
    assert top["rule"] == "ai-disclaimer" and top["dropped"] == 5 and top["share"] == 0.5
    assert "--disable ai-disclaimer" in top["disable"]
