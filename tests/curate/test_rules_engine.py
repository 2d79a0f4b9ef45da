"""The rule engine: loading, validation errors with file/line/key, includes, overrides, running."""

from __future__ import annotations

import json
import textwrap

import polars as pl
import pytest

from curate.records import Record, Turn, to_frame
from curate.rules import RuleError, apply, find_set, load_rules, shipped_sets
from curate.rules.engine import lint


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(textwrap.dedent(text), encoding="utf-8")
    return p


def frame(*recs):
    return to_frame([r.as_row() for r in recs])


def test_shipped_sets_load_and_are_found_by_name():
    sets = shipped_sets()
    assert {"default", "zh", "en", "pii", "strict"} <= set(sets)
    for name in ("default", "zh", "en", "pii", "strict"):
        rs = load_rules([name])
        assert rs.active and all(r.instance is not None for r in rs.active)
    assert find_set("default") == sets["default"]


def test_env_path_takes_precedence(tmp_path, monkeypatch):
    write(tmp_path, "default.yaml", "rules: []\n")
    monkeypatch.setenv("TAMIS_RULES_PATH", str(tmp_path))
    assert find_set("default") == tmp_path / "default.yaml"


def test_errors_name_file_line_and_key(tmp_path):
    p = write(
        tmp_path,
        "bad.yaml",
        """\
        name: bad
        rules:
          - id: ok-rule
            description: fine
            check: length
            params: {max_chars: 10}
          - id: typo
            description: misspelt check
            check: lenght
          - id: bad-param
            description: wrong type
            check: length
            params:
              max_chars: many
          - id: bad-action
            description: x
            check: empty
            action: delete
          - id: ok-rule
            description: duplicate
            check: empty
        """,
    )
    with pytest.raises(RuleError) as exc:
        load_rules([p])
    msgs = [str(pr) for pr in exc.value.problems]
    assert any(
        f"{p}:9: rules[1] (typo).check: unknown check 'lenght'; did you mean 'length'?" in m for m in msgs
    ), msgs
    assert any(
        ":14: rules[2] (bad-param).params.max_chars: expected an integer, got 'many'" in m for m in msgs
    ), msgs
    assert any(
        "rule bad-action.action: 'delete' is not one of drop, flag, redact, fix" in m and ":15" in m
        for m in msgs
    ), msgs
    assert any(":19: rules[4] (ok-rule).id: duplicate rule id 'ok-rule'" in m for m in msgs), msgs


def test_yaml_syntax_and_unknown_keys(tmp_path):
    p = write(tmp_path, "syntax.yaml", "rules:\n  - id: x\n    check: [unclosed\n")
    problems = lint([p])[str(p)]
    assert problems and problems[0].line and "YAML syntax error" in problems[0].message
    p2 = write(
        tmp_path,
        "keys.yaml",
        "rulez: []\nrules:\n  - id: a\n    description: d\n    check: empty\n    feilds: [answer]\n",
    )
    msgs = [str(x) for x in lint([p2])[str(p2)]]
    assert any(":1: rulez: unknown key; did you mean 'rules'?" in m for m in msgs), msgs
    assert any(":6: rules[0] (a).feilds: unknown key; did you mean 'fields'?" in m for m in msgs), msgs


def test_bad_regex_is_reported_with_line(tmp_path):
    p = write(
        tmp_path,
        "re.yaml",
        "rules:\n  - id: r\n    description: d\n    check: regex\n    params: {patterns: ['(oops']}\n",
    )
    (problem,) = lint([p])[str(p)]
    assert (
        problem.line == 2
        and problem.key == "rule r.params.patterns"
        and "invalid regular expression" in problem.message
    )


def test_include_override_and_cycle(tmp_path):
    write(
        tmp_path,
        "base.yaml",
        "rules:\n  - id: short\n    description: d\n    check: length\n    fields: [answer]\n    params: {min_chars: 5}\n",
    )
    p = write(
        tmp_path,
        "child.yaml",
        """\
        include: [base.yaml, pii]
        overrides:
          short: {params: {min_chars: 3}, action: flag}
          pii-ip: {enabled: false}
        rules:
          - id: no-lorem
            description: lorem filler
            check: keywords
            params: {words: [lorem ipsum]}
        """,
    )
    rs = load_rules([p])
    by_id = {r.id: r for r in rs.rules}
    assert by_id["short"].params == {"min_chars": 3} and by_id["short"].action == "flag"
    assert not by_id["pii-ip"].enabled and "pii-contact" in by_id
    write(tmp_path, "a.yaml", "include: [b.yaml]\n")
    write(tmp_path, "b.yaml", "include: [a.yaml]\n")
    with pytest.raises(RuleError, match="include cycle: a.yaml -> b.yaml -> a.yaml"):
        load_rules([tmp_path / "a.yaml"])
    bad = write(tmp_path, "ov.yaml", "include: [base.yaml]\noverrides:\n  shrot: {action: flag}\n")
    with pytest.raises(
        RuleError, match=r"ov.yaml:3: overrides.shrot: no rule 'shrot' to override; did you mean 'short'\?"
    ):
        load_rules([bad])


def test_command_line_set_and_disable():
    rs = load_rules(
        ["default"], sets=["too-long.max_chars=100", "identity-leak.action=flag"], disable=["language"]
    )
    by_id = {r.id: r for r in rs.rules}
    assert by_id["too-long"].params["max_chars"] == 100 and by_id["identity-leak"].action == "flag"
    assert not by_id["language"].enabled
    with pytest.raises(RuleError, match="has no parameter 'max_char'"):
        load_rules(["default"], sets=["too-long.max_char=1"])


def test_apply_accounting_spans_flags_and_order():
    recs = [
        Record(
            "sft", question="如何计算经济补偿？", answer="经济补偿按工作年限计算，每满一年支付一个月工资。"
        ),
        Record("sft", question="你是谁？", answer="我是ChatGPT，由OpenAI开发。"),
        Record("sft", question="Hi", answer="<p>Hello</p><br>there, friend."),
        Record("sft", question="问题", answer="   "),
    ]
    rs = load_rules(["default"], sets=["no-letters.min=0.99"])
    kept, dropped, stats = apply(frame(*recs), rs)
    assert kept.height + dropped.height == 4
    assert dropped["drop_reason"].to_list() == ["identity-leak", "empty-turn"]
    detail = json.loads(dropped["drop_detail"][0])
    hit = next(h for h in detail if h["rule"] == "identity-leak")
    assert hit["field"] == "answer" and hit["span"] == [0, 9] and hit["text"] == "我是ChatGPT"
    # the html row was fixed first, then judged on the repaired text and flagged by the tightened rule
    assert kept["answer"].to_list()[1] == "Hello\n\nthere, friend."
    assert kept["flags"].to_list()[1] == ["no-letters"]
    assert stats["rules"]["html-leftover"]["fixed"] == 1 and stats["flagged"] >= 1


def test_every_rule_that_fired_is_reported():
    rec = Record("sft", question="Q?", answer="作为一个AI语言模型，我是ChatGPT。" + "哈" * 60)
    kept, dropped, _ = apply(frame(rec), load_rules(["default"]))
    rules = {h["rule"] for h in json.loads(dropped["drop_detail"][0])}
    assert {"ai-disclaimer", "identity-leak", "degenerate-repeat"} <= rules


def test_existing_flags_are_kept():
    f = frame(Record("sft", question="what?", answer="fine answer here.")).with_columns(
        pl.Series("flags", [["earlier"]], dtype=pl.List(pl.Utf8))
    )
    kept, _, _ = apply(f, load_rules(["default"], sets=["no-letters.min=0.99"]))
    assert kept["flags"].to_list() == [["earlier", "no-letters"]]


def test_language_scope(tmp_path):
    p = write(
        tmp_path,
        "scope.yaml",
        "rules:\n  - id: zh-short\n    description: d\n    check: length\n    fields: [answer]\n    params: {min_chars: 10}\n    lang: [zh]\n",
    )
    recs = [
        Record("sft", question="这是什么问题呢？", answer="短回答。"),
        Record("sft", question="What is this?", answer="Short."),
    ]
    kept, dropped, _ = apply(frame(*recs), load_rules([p]))
    assert dropped["question"].to_list() == ["这是什么问题呢？"] and kept.height == 1


def test_history_turns_are_checked_and_redacted():
    rec = Record(
        "sft",
        history=[Turn("user", "我的手机是13812345678"), Turn("assistant", "作为一个AI语言模型，我记下了。")],
        question="然后呢？",
        answer="然后请按照流程办理即可。",
    )
    kept, dropped, stats = apply(frame(rec), load_rules(["default"]))
    assert dropped.height == 1
    detail = json.loads(dropped["drop_detail"][0])
    assert detail[0]["rule"] == "ai-disclaimer" and detail[0]["field"] == "history[1]"
    assert dropped["history"][0][0]["content"] == "我的手机是[PHONE]" and stats["pii"] == {"phone": 1}


def test_preference_rows_judge_chosen_not_rejected():
    rec = Record(
        "preference",
        question="请问离婚财产怎么分？",
        chosen="一般按照共同财产平均分割，并照顾子女和女方权益。",
        rejected="抱歉，我无法回答这个问题。",
    )
    kept, dropped, _ = apply(frame(rec), load_rules(["default"]))
    assert kept.height == 1 and dropped.height == 0


def test_empty_frame_and_null_fields():
    kept, dropped, stats = apply(to_frame([]), load_rules(["default"]))
    assert kept.height == 0 and dropped.height == 0 and "flags" in kept.columns
    text_row = frame(Record("text", text="纯文本的预训练语料，内容完整。"))
    kept, dropped, _ = apply(text_row, load_rules(["default"]))
    assert kept.height == 1


def test_stage_run_contract():
    from curate.rules import run

    res = run(
        frame(Record("sft", question="你好？", answer="")), {"rules": ["default"], "disable": ["empty-turn"]}
    )
    assert res.dropped.height == 1 and res.dropped["drop_reason"][0] == "answer-too-short"


def test_regex_redact_and_fix_rules(tmp_path):
    p = write(
        tmp_path,
        "red.yaml",
        """\
        rules:
          - id: internal-host
            description: internal host names
            check: regex
            fields: any
            params: {patterns: ['\\b[a-z0-9-]+\\.corp\\.internal\\b']}
            action: redact
          - id: tidy
            description: collapse repeated exclamation marks
            check: regex
            fields: [answer]
            params: {patterns: ['!{2,}'], replacement: '!'}
            action: fix
        """,
    )
    rec = Record("sft", question="连接 db01.corp.internal 失败？", answer="Check db01.corp.internal!!!")
    kept, _, stats = apply(frame(rec), load_rules([p]))
    assert kept["question"][0] == "连接 [MATCH] 失败？" and kept["answer"][0] == "Check [MATCH]!"
    assert stats["rules"]["internal-host"]["redacted"] == 1 and stats["rules"]["tidy"]["fixed"] == 1


def test_odd_values_never_crash():
    import random

    rng = random.Random(1)
    alpha = list("aZ0 \n\t\r，。！？.,!?`~<>{}[]|#*-_=哈中文한국어ру\u200b\u3000\ufffd\x00\x07\ue000😀")
    alpha += ["```", "{{x}}", "<unk>", "Eat ", "作为律师，我", "sk-", "@", "1381234567", "http://"]

    def t(n):
        return "".join(rng.choice(alpha) for _ in range(rng.randint(0, n)))

    roles = ["user", "assistant", "system", "tool", "function_call"]
    recs = []
    for _ in range(400):
        k = rng.random()
        if k < 0.6:
            hist = [Turn(rng.choice(roles), t(30)) for _ in range(rng.randint(0, 4))]
            recs.append(Record("sft", question=t(50), answer=t(300), system=t(20) or None, history=hist))
        elif k < 0.8:
            recs.append(Record("preference", question=t(40), chosen=t(200), rejected=t(200)))
        else:
            recs.append(Record("text", text=t(400)))
    f = frame(*recs)
    f = f.with_columns(  # a history turn whose content is null
        pl.when(pl.int_range(pl.len()) == 3)
        .then(pl.lit([{"role": "user", "content": None, "extra": None}], dtype=f["history"].dtype))
        .otherwise(pl.col("history"))
        .alias("history")
    )
    for name in ("default", "strict", "zh", "en"):
        kept, dropped, _ = apply(f, load_rules([name]))
        assert kept.height + dropped.height == f.height
        assert dropped["drop_reason"].null_count() == 0


def test_lint_catches_what_would_fail_at_run_time(tmp_path):
    p = write(
        tmp_path,
        "bad1.yaml",
        """\
        include: [default]
        settings:
          placeholder: "<{kind}>"
        overrides:
          answer-copies-question: {fields: [system]}
          role-order: {fields: [answer]}
          pii-ip: {placeholder: 5}
        rules:
          - id: my-lang
            description: x
            check: length
            params: {min_chars: 3}
            lang: []
          - id: lm
            description: x
            check: lang_mismatch
            fields: [answer]
          - id: my-redact
            description: x
            check: regex
            params: {patterns: ['\\d+']}
            action: redact
            placeholder: "[{0}]"
        """,
    )
    problems = [str(x) for x in lint([p])[str(p)]]
    text = "\n".join(problems)
    assert "bad1.yaml:3: settings.placeholder: '<{kind}>': unknown field {kind}" in text
    assert "bad1.yaml:5: overrides.answer-copies-question.fields: check 'copy' looks at whole rows" in text
    assert "answer_fields and compare_to" in text
    assert "bad1.yaml:6: overrides.role-order.fields" in text
    assert "bad1.yaml:7: overrides.pii-ip.placeholder: expected a string" in text
    assert "bad1.yaml:13: rules[0] (my-lang).lang: empty list" in text
    assert "rules[1] (lm).fields: check 'lang_mismatch' looks at whole rows" in text
    assert "rules[2] (my-redact).placeholder: '[{0}]'" in text
    assert len(problems) == 7
    with pytest.raises(RuleError):
        load_rules(["default"], sets=["pii-ip.placeholder=<{kind}>"])


def test_tokenizer_is_loaded_when_the_set_loads_relative_to_the_file(tmp_path, tiny_models):
    import shutil

    (tmp_path / "sub").mkdir()
    shutil.copytree(tiny_models["tokenizer"], tmp_path / "sub" / "tok")
    rule = """\
        rules:
          - id: tok-len
            description: x
            check: length
            fields: [answer]
            params: {max_tokens: 3, tokenizer: %s}
        """
    missing = write(tmp_path / "sub", "missing.yaml", rule % "./no_such_tokenizer")
    problems = lint([missing])[str(missing)]
    assert len(problems) == 1 and problems[0].key == "rule tok-len.params.tokenizer"
    assert "no such directory" in problems[0].message and "sub/no_such_tokenizer" in problems[0].message
    good = write(tmp_path / "sub", "good.yaml", rule % "tok")  # relative to the YAML file, not the cwd
    rs = load_rules([good])
    assert rs.rules[0].instance.tok is not None
    f = frame(Record("sft", question="q?", answer="this sentence certainly has more than three tokens"))
    _, dropped, _ = apply(f, rs)
    assert dropped["drop_reason"].to_list() == ["tok-len"]


def test_flagged_counts_this_runs_flags_only():
    """stats["flagged"] = kept rows this run flagged; an earlier stage's flags are not counted, whether or
    not this run flagged anything (before, they were counted only when it did)."""
    mismatch = Record(
        "sft", question="How do I restart a pod?", answer="用 kubectl rollout restart 重启部署即可。"
    )
    clean = Record("sft", question="什么是容器？", answer="容器是一种轻量级的虚拟化技术。")
    earlier = pl.Series("flags", [None, ["earlier"]], dtype=pl.List(pl.Utf8))
    kept, _, stats = apply(frame(mismatch, clean).with_columns(earlier), load_rules(["default"]))
    assert kept["flags"].to_list() == [["lang-mismatch"], ["earlier"]]
    assert stats["flagged"] == 1
    _, _, stats = apply(frame(clean, clean).with_columns(earlier), load_rules(["default"]))
    assert stats["flagged"] == 0
