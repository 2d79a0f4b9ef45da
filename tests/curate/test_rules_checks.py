"""Each check on its own: what fires, what does not, the explanation and span, fixes."""

from __future__ import annotations

import polars as pl
import pytest

from curate.rules.checks import REGISTRY, CheckError


def check(name, **params):
    return REGISTRY[name](params)


def fired(name, texts, **params):
    return check(name, **params).detect(pl.Series(texts, dtype=pl.Utf8)).to_list()


def test_length_chars_and_estimated_tokens():
    assert fired("length", ["ab", "abcdef", None], min_chars=3, max_chars=5) == [True, True, False]
    c = check("length", max_tokens=5)
    assert c.detect(pl.Series(["一二三四五六七", "one two", "x" * 3])).to_list() == [True, False, False]
    h = c.explain("一二三四五六七")
    assert "estimated tokens" in h.reason and "7" in h.reason


def test_length_needs_a_bound():
    with pytest.raises(CheckError):
        check("length")
    with pytest.raises(CheckError):
        check("length", min_chars=10, max_chars=5)


def test_length_with_a_real_tokenizer(tiny_models):
    c = check("length", max_tokens=3, tokenizer=str(tiny_models["tokenizer"]))
    assert c.detect(
        pl.Series(["hi", "this sentence certainly has more than three tokens in it"])
    ).to_list() == [False, True]
    assert "tokens >" in c.explain("this sentence certainly has more than three tokens in it").reason


def test_empty_and_whitespace_only():
    assert fired("empty", ["", "  \n", "\u3000\u200b", "a", " x "]) == [True, True, True, False, False]


def test_char_ratio_classes():
    assert fired("char_ratio", ["中文中文", "abc"], classes="cjk", min=0.5) == [False, True]
    assert fired("char_ratio", ["a\x07b", "ab\n"], classes=["control"], max=0) == [True, False]
    c = check("char_ratio", classes=["control", "private_use"], max=0)
    assert c.fix(pl.Series(["a\x07b\ue000c"])).to_list() == ["abc"]
    with pytest.raises(CheckError):
        check("char_ratio", classes=["emoji"], max=0.1)


def test_repetition_gopher_lines_and_ngrams():
    para = "The court will decide the amount. "
    rep = "\n".join(["same line here"] * 6 + ["different one", "another one"])
    texts = [
        rep,
        para * 12,
        "A normal answer with varied words and no copy paste at all, long enough to be judged.",
    ]
    got = fired("repetition", texts, min_chars=20)
    assert got == [True, True, False]
    h = check("repetition", min_chars=20, top_ngram={}, dup_ngram={}).explain(rep)
    assert "dup_line" in h.reason and h.match == "same line here" and rep[h.start : h.end] == h.match
    assert "top_" in check("repetition", min_chars=20).explain(rep).reason  # the worst measure is named


def test_repetition_is_cjk_aware():
    zh = "根据合同法的规定，当事人应当按照约定履行义务。" * 6
    c = check("repetition", min_chars=50)
    assert c.detect(pl.Series([zh])).to_list() == [True]
    varied = "根据合同法的规定，当事人应当按照约定履行义务。如果一方违约，另一方可以要求赔偿损失。协商不成的，可以向法院起诉。"
    assert c.detect(pl.Series([varied])).to_list() == [False]


def test_degenerate_repeats():
    texts = [
        "Eat a banana! " * 2000,
        "哈" * 40,
        "ok " + "abc" * 3,
        "| --- | --- |\n" + "-" * 80,
        "好的好的好的",
        "",
    ]
    assert fired("degenerate", texts) == [True, True, False, False, False, False]
    h = check("degenerate").explain("Intro. " + "Eat a banana! " * 100)
    assert "repeated 100 times" in h.reason and h.start in (6, 7)  # the run may start at any rotation


def test_regex_block_allow_and_bad_pattern():
    assert fired("regex", ["call 110 now", "fine"], patterns=[r"\b110\b"]) == [True, False]
    assert fired("regex", ["has 法条", "none"], patterns=["法"], mode="allow") == [False, True]
    with pytest.raises(CheckError) as e:
        check("regex", patterns=["(unclosed"])
    assert e.value.param == "patterns"


def test_keywords_file(tmp_path):
    (tmp_path / "words.txt").write_text("# comment\n违禁词\n\nbadword\n", encoding="utf-8")
    c = REGISTRY["keywords"]({"file": "words.txt"}, tmp_path)
    assert c.detect(pl.Series(["含有违禁词", "BadWord here", "clean"])).to_list() == [True, True, False]
    assert c.explain("含有违禁词").match == "违禁词"


def test_phrases_openers_and_refusals():
    c = check(
        "phrases",
        words=["作为一个AI语言模型", "As an AI language model"],
        patterns=["作为一?[名个位]?律师[，,]\\s*我"],
    )
    texts = [
        "作为一个AI语言模型，我不能…",
        "  作为律师，我建议您先协商。",
        "as an ai language model, I",
        "作为被告，您应当出庭。",
        "我作为律师，经常遇到",
    ]
    assert c.detect(pl.Series(texts)).to_list() == [True, True, True, False, False]
    h = c.explain("  作为律师，我建议您先协商。")
    assert (h.start, h.end, h.match) == (2, 8, "作为律师，我")


def test_phrases_fix_strips_the_opener_clause():
    c = check("phrases", patterns=["作为一?[名个位]?律师[，,]"])
    assert c.fix(pl.Series(["作为律师，我必须提醒您，合同无效。"])).to_list() == ["合同无效。"]


def test_identity_leak_but_not_facts():
    texts = [
        "我是ChatGPT，一个由OpenAI开发的人工智能助手。",
        "I am ChatGPT, a large language model trained by OpenAI.",
        "Sure. (I was developed by OpenAI.)",
        "ChatGPT 是 OpenAI 在 2022 年发布的聊天机器人。",
        "Claude is a family of language models made by Anthropic.",
        "GPT-4 is a large language model developed by OpenAI.",
    ]
    assert fired("identity", texts) == [True, True, True, False, False, False]
    assert fired("identity", ["我是通义千问。"], allow=["通义千问"]) == [False]


def test_placeholders_outside_code_only():
    texts = [
        "尊敬的{{name}}，您好",
        "text <unk> here",
        "```html\n<p>{{ user.name }}</p>\n```",
        "Use `{{x}}` in Jinja",
        "<|im_end|>",
        "normal {x}",
    ]
    assert fired("placeholder", texts) == [True, True, False, False, True, False]


def test_copy_row_level():
    f = pl.DataFrame(
        {
            "question": [
                "什么是合同？",
                "Hello world, how are you",
                "Extract the domain: visit google.com today please",
                "Hi there",
            ],
            "answer": [
                "什么是合同",
                "Hello world how are you? Fine",
                "google.com",
                "Hello! How can I help you today?",
            ],
            "chosen": [None] * 4,
        },
        schema={"question": pl.Utf8, "answer": pl.Utf8, "chosen": pl.Utf8},
    )
    c = check("copy")
    assert c.detect_rows(f).to_list() == [True, True, False, False]
    field, hit = c.explain_rows(f)[0]
    assert field == "answer" and hit.reason == "answer equals the question"


def test_truncated():
    texts = [
        "这个问题需要考虑以下几点，首先是合同的效力，其次是，",
        "可以这样写：\n```python\ndef f(x):\n    return x *",
        "It depends on the contract and",
        "A complete sentence that ends properly.",
        "短句，",  # too short to judge
        "SELECT a FROM t;",
    ]
    assert fired("truncated", texts) == [True, True, True, False, False, False]
    assert fired("truncated", ["This answer just stops without any final punct"], strict=True) == [True]
    hits = check("truncated").explain_batch(texts[:2])
    assert (
        hits[0].reason == "ends mid-sentence with '，'"
        and hits[1].reason == "ends inside an unclosed code block"
    )


def test_code_fence_and_fix():
    assert fired("code_fence", ["```py\nx\n```", "```py\nx\n"]) == [False, True]
    assert check("code_fence").fix(pl.Series(["```py\nx\n"])).to_list() == ["```py\nx\n```"]


def test_html_detect_and_fix_keeps_code():
    text = "<p>第一段</p><br>第二段&nbsp;&amp;\n```html\n<div>keep</div>\n```"
    assert fired("html", [text, "one <br> only", "no html"]) == [True, False, False]
    fixed = check("html").fix(pl.Series([text]))[0]
    assert "<p>" not in fixed and "&amp;" not in fixed and "<div>keep</div>" in fixed and "第一段\n" in fixed


def test_mojibake_detect_and_repair():
    bad = "Ã©tÃ© â€™ok"
    assert fired("mojibake", [bad, "锟斤拷锟斤拷", "正常的中文", "café"]) == [True, True, False, False]
    assert check("mojibake").fix(pl.Series([bad, "å¤§å®¶å¥½"])).to_list() == ["été \u2019ok", "大家好"]


def test_whitespace_fix():
    c = check("whitespace")
    assert c.detect(pl.Series([" a", "a\r\nb", "ok"])).to_list() == [True, True, False]
    assert c.fix(pl.Series(["  a \r\n\n\n\nb\u200b  "])).to_list() == ["a\n\nb"]


def test_language_by_script():
    from curate.rules.checks.language import script_language

    got = script_language(
        pl.Series(["你好世界", "hello world", "こんにちは世界です", "안녕하세요", "Привет мир", "", "123"])
    ).to_list()
    assert got == ["zh", "en", "ja", "ko", "ru", "other", "other"]
    assert fired(
        "language",
        ["这是一个中文句子，足够长了。", "Это русский текст, достаточно длинный"],
        allow=["zh", "en"],
    ) == [False, True]


def test_language_with_a_fasttext_model(tmp_path):
    fasttext = pytest.importorskip("fasttext")
    lines = []
    for i in range(200):
        lines.append(f"__label__fr bonjour le monde comment allez vous aujourd'hui mon ami {i}")
        lines.append(f"__label__en hello world how are you today my friend {i}")
    (tmp_path / "lid.txt").write_text("\n".join(lines), encoding="utf-8")
    model = fasttext.train_supervised(
        str(tmp_path / "lid.txt"), epoch=10, lr=0.5, dim=20, minCount=1, verbose=0, thread=1
    )
    model.save_model(str(tmp_path / "lid.bin"))
    c = REGISTRY["language"]({"allow": ["en"], "model": "lid.bin"}, tmp_path)
    # both are Latin script: only the model tells French from English
    assert c.detect(
        pl.Series(["bonjour le monde comment allez vous", "hello world how are you today"])
    ).to_list() == [True, False]
    assert "fastText" in c.explain("bonjour le monde comment allez vous").reason
    # the same model scopes rules by language (settings.lid_model, relative to the YAML file)
    from curate.records import Record, to_frame
    from curate.rules import apply, load_rules

    (tmp_path / "fr.yaml").write_text(
        "settings: {lid_model: lid.bin}\nrules:\n  - id: fr-short\n    description: d\n    check: length\n"
        "    fields: [answer]\n    params: {min_chars: 100}\n    lang: [fr]\n",
        encoding="utf-8",
    )
    rows = [
        Record(
            "sft", question="bonjour le monde comment allez vous", answer="bonjour mon ami aujourd'hui"
        ).as_row(),
        Record(
            "sft", question="hello world how are you", answer="hello my friend how are you today"
        ).as_row(),
    ]
    kept, dropped, _ = apply(to_frame(rows), load_rules([tmp_path / "fr.yaml"]))
    assert dropped["question"].to_list() == ["bonjour le monde comment allez vous"] and kept.height == 1


def test_lang_mismatch_exempts_translation():
    f = pl.DataFrame(
        {
            "question": [
                "请问劳动合同的经济补偿怎么计算？",
                "请把这句话翻译成英文：合同无效。",
                "What is a lease agreement?",
            ],
            "answer": [
                "It depends on your years of service and the local average wage.",
                "The contract is void.",
                "租赁合同是出租人将租赁物交付承租人使用的合同。",
            ],
            "chosen": [None] * 3,
        },
        schema={"question": pl.Utf8, "answer": pl.Utf8, "chosen": pl.Utf8},
    )
    c = check("lang_mismatch")
    assert c.detect_rows(f).to_list() == [True, False, True]
    assert c.explain_rows(f)[0][1].reason == "question is zh, answer is en"


def test_role_order():
    c = check("role_order", max_turns=6)
    turn = lambda r, t="x": {"role": r, "content": t, "extra": None}  # noqa: E731
    f = pl.DataFrame(
        {
            "history": [
                [],
                [turn("user"), turn("assistant")],
                [turn("user"), turn("user")],
                [turn("assistant")],
                [turn("user"), turn("assistant")] * 3,
            ],
            "question": ["q"] * 5,
        }
    )
    assert c.detect_rows(f).to_list() == [False, False, True, True, True]
    assert "two user turns" in c.explain_rows(f[2])[0][1].reason


# -- review findings: each test fails on the code before its fix ------------------------------------
@pytest.fixture(scope="module")
def default_set():
    from curate.rules import load_rules

    return {r.id: r.instance for r in load_rules(["default"]).rules}


def test_mojibake_fix_repairs_only_the_encoding():
    """ftfy.fix_text also turned full-width punctuation into ASCII and straightened quotes."""
    text = "这个问题很常见，原因有两个：第一，配置错误；第二，“网络”不通。另外Ã© cafÃ© 也要注意（括号）！"
    fixed = check("mojibake").fix(pl.Series([text]))[0]
    assert (
        fixed == "这个问题很常见，原因有两个：第一，配置错误；第二，“网络”不通。另外é café 也要注意（括号）！"
    )


def test_truncated_keeps_normal_endings():
    kept = [
        "After checking each option carefully, the correct answer is A",
        "After checking each option carefully, the correct answer is a",
        "Between the two plans I would definitely pick option a",
        "这项工作需要社区居民、志愿者以及政府部门的共同参与",
        "遍历数组，把每个元素累加起来，最后得到的就是所有元素之和",
        "这个问题比较复杂，主要是因为它涉及很多方面的法律规定和具体案件事实的认定问题涉及",
        "正确答案： 1. A  2. C 3. A 4. C 5. A",
    ]
    cut = [
        "In most cases the tenant should keep a copy of",
        "In most cases the tenant should keep records of a",
        "In most cases the tenant should keep records, and",
        "建议先保留好相关证据，例如合同、票据以及",
    ]
    assert fired("truncated", kept + cut) == [False] * len(kept) + [True] * len(cut)
    hits = check("truncated").explain_batch(cut[1:2])
    assert hits[0].reason == "ends mid-sentence with 'a'"


def test_ai_disclaimer_is_first_person_only(default_set):
    ai = default_set["ai-disclaimer"]
    speaks_as_ai = [
        "作为一个AI语言模型，我没有个人观点。",
        "不过，作为一个人工智能，我无法提供正式意见。",
        "作为人工智能，我没有个人经历。",
        "作为语言模型，我可以辨别语气。",
        "我是由OpenAI训练的大型语言模型，无法浏览网页。",
        "首先，我要声明我是一个语言模型，不能提供法律咨询。",
        "As an AI language model, I don't have personal opinions.",
        "However, as a large language model, I cannot give advice.",
        "As an AI, I don't have access to real-time data.",
        "I am a language model, so I cannot browse.",
        "My training data only goes up to 2021.",
    ]
    about_models = [
        "LLM 是大型语言模型（Large Language Model）的缩写，它通过在海量文本上训练来预测下一个词。",
        "在这次交谈中，我们讨论了大型语言模型（LLMs）在调查新闻中的潜在用途。",
        "使用Supabase作为后端、Amazon SageMaker作为AI模型和Next.js作为界面。",
        "GPT-2 is a transformer trained as a language model on WebText. It predicts the next token.",
        "I usually hold out 20% of my training data as a validation set and use early stopping.",
        "What is an AI language model? It predicts text.",
    ]
    got = ai.detect(pl.Series(speaks_as_ai + about_models)).to_list()
    assert got == [True] * len(speaks_as_ai) + [False] * len(about_models)


def test_identity_leak_needs_first_person_self_identification():
    leaks = [
        "我是ChatGPT，一个由OpenAI开发的人工智能助手。",
        "我是由 OpenAI 训练的模型。",
        "作为OpenAI训练的大型语言模型，我无法评估。",
        "作为ChatGPT，我不能回答。",
        "I am ChatGPT, a large language model trained by OpenAI.",
        "Sure. (I was developed by OpenAI.)",
        "I am an AI assistant developed by OpenAI.",
        "I'm Claude, made by Anthropic.",
    ]
    mentions = [
        "我是ChatGPT的重度用户，平时用它写代码。",
        "作为ChatGPT的重度用户，我觉得它很好用。",
        "我用的是由OpenAI开发的ChatGPT。",
        "For summarisation I use GPT-4, which was developed by OpenAI, and it works well.",
        "I'm a ChatGPT power user.",
        "ChatGPT is made by OpenAI.",
    ]
    assert fired("identity", leaks + mentions) == [True] * len(leaks) + [False] * len(mentions)
    hit = check("identity").explain("我是ChatGPT，由OpenAI开发。")
    assert (hit.start, hit.end, hit.match) == (0, 9, "我是ChatGPT")


def test_html_fix_leaves_inline_code_and_tilde_fences():
    text = (
        "Use the `<br>` tag, or wrap text in `<p>` tags and write `&amp;` for an ampersand."
        "<div>see</div><span>x</span>\n~~~html\n<p>keep</p>\n\n\n\n<br>\n~~~\n<p>end</p>"
    )
    fixed = check("html").fix(pl.Series([text]))[0]
    assert "`<br>`" in fixed and "`<p>`" in fixed and "`&amp;`" in fixed
    assert "~~~html\n<p>keep</p>\n\n\n\n<br>\n~~~" in fixed
    assert "<div>" not in fixed and fixed.endswith("\n~~~\nend\n")
    assert fired("html", ["`<p>` and `&amp;` in code only", "~~~\n<p>a</p><br>\n~~~"]) == [False, False]


def test_whitespace_fix_leaves_code_indentation_and_hard_breaks():
    c = check("whitespace")
    code = "Here you go:\n```python\ndef a():\n    pass\n\n\ndef b():  \n    pass\n```\nDone."
    texts = [
        code.replace("go:", "go: "),  # a trailing blank outside code
        "    def f():\n        return 1\n",  # an answer that is indented code
        "第一行  \n第二行",  # a Markdown hard break
        "p1\n\n\np2",  # two blank lines: fine
        "p1\n\n\n\n\np2",  # four: collapsed
        "~~~\nx  \n\n\n\n\ny\n~~~ ",
    ]
    assert c.fix(pl.Series(texts)).to_list() == [
        code,
        "    def f():\n        return 1",
        "第一行  \n第二行",
        "p1\n\n\np2",
        "p1\n\np2",
        "~~~\nx  \n\n\n\n\ny\n~~~",
    ]
    assert c.detect(pl.Series(["第一行  \n第二行", "p1\n\n\np2", "a \nb", "a\t\nb"])).to_list() == [
        False,
        False,
        True,
        True,
    ]


def test_repetition_catches_copy_paste_within_one_line(default_set):
    rep = default_set["repetition"]
    en = (
        "the service restarts the pod and then the scheduler assigns it to another node in the cluster " * 4
    ).strip()
    zh = "服务重启之后调度器会把这个容器重新分配到集群里另外一个可用的节点上面去运行" * 6
    fine = "，".join(f"第{i}步检查节点{i}的状态并记录第{i * 7}号日志" for i in range(20)) + "。"
    assert rep.detect(pl.Series([en, zh, fine])).to_list() == [True, True, False]


def test_repeated_window_share_bounds_the_dup_ngram_measures():
    """The cheap bound must never be below the exact measure, or the prefilter would hide a row."""
    import random

    from curate.rules.checks.repetition import GOPHER_DUP, repeated_window_share, repetition_stats

    rng = random.Random(7)
    words = "the pod node 服务 重启 调度 集群 a b kubectl logs, 之后 节点。".split()
    texts = []
    for _ in range(400):
        t = " ".join(rng.choice(words) for _ in range(rng.randint(3, 200)))
        if rng.random() < 0.4:
            k = rng.randint(1, len(t))
            t = t[:k] * rng.randint(2, 4) + t
        texts.append(t)
    share = repeated_window_share(texts, min(GOPHER_DUP))
    for t, bound in zip(texts, share, strict=True):
        for name, value, _ in repetition_stats(t, {}, GOPHER_DUP, 2):
            if name.startswith("dup_") and name.endswith("gram_char_frac"):
                assert value <= bound + 1e-9, (name, value, bound, t)


def test_degenerate_ignores_emphatic_fullwidth_punctuation():
    texts = [
        "太精彩了！！！！！！！！！！这是我今年参加过最好的活动。",
        "真的吗？？？？？？？？？？我不信～～～～～～～～～～",
        "哈" * 60,
    ]
    assert fired("degenerate", texts) == [False, False, True]


def test_phrases_fix_anywhere_and_after_a_greeting():
    c = check("phrases", patterns=["作为一?[名个位]?律师[，,]"])
    assert c.fix(
        pl.Series(["您好！作为律师，我建议先协商。", "作为律师，我必须提醒您，合同无效。"])
    ).to_list() == [
        "您好！",
        "合同无效。",
    ]
    c = check("phrases", words=["as an ai language model"], position="anywhere")
    got = c.fix(pl.Series(["Restart the pod. As an AI language model, I cannot run it. Then check logs."]))
    assert got.to_list() == ["Restart the pod. I cannot run it. Then check logs."]
    assert "strip" not in REGISTRY["phrases"].params  # was documented but never used


def test_length_token_estimate_above_the_character_count():
    """'a,b,c,d,e' is 9 characters but about 11 estimated tokens: the shortcut must not skip it."""
    from curate.rules.checks.length import estimate_tokens

    texts = ["a,b,c,d,e", "一二三四五六七八九", "hello world"]
    assert estimate_tokens(pl.Series(texts)).to_list()[0] > 9
    assert fired("length", texts, max_tokens=9) == [True, False, False]


def test_non_answer_treats_yes_and_no_alike_in_both_languages(default_set):
    na = default_set["non-answer"]
    texts = ["可以。", "没有。", "Yes.", "No.", "是的。", "好的", "不知道", "N/A", "无", "none"]
    assert na.detect(pl.Series(texts)).to_list() == [False] * 5 + [True] * 5
