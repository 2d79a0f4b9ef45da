"""A synthetic mixed zh/en Q&A set with planted problems, written for this project (no third-party rows).

Used by the rule tests (catch and keep targets), the benchmark (100,000 realistic rows) and as a demo.
Every row carries ``meta.planted``: ``clean`` (a careful person keeps it), ``fixable`` (keep after the
rule set repairs or redacts it: PII, leftover HTML, messy whitespace) or the name of the problem that
should get it dropped. Clean rows include hard negatives: legitimate mentions of ChatGPT, translation
requests answered in the other language, private IPs, Markdown rules and tables, code with templates.
"""

from __future__ import annotations

import random

from curate.records import Record, Turn, to_frame

ZH_TOPICS = [
    ("劳动合同", "用人单位", "经济补偿"), ("房屋租赁", "出租人", "押金"), ("交通事故", "保险公司", "赔偿"),
    ("离婚财产", "夫妻双方", "共同财产"), ("高血压", "患者", "降压药"), ("糖尿病", "病人", "血糖"),
    ("失眠", "患者", "作息"), ("网络购物", "消费者", "退货"), ("借款纠纷", "出借人", "借条"),
    ("继承", "继承人", "遗嘱"), ("胃炎", "患者", "饮食"), ("专利申请", "申请人", "新颖性"),
]  # fmt: skip
ZH_Q = [
    "{a}方面，{b}应该注意哪些问题？", "请问{a}中{b}的{c}怎么计算？", "关于{a}，{c}有什么规定？",
    "我遇到了{a}的问题，{b}不同意{c}，怎么办？", "{a}的常见处理方式有哪些？", "如何判断{a}中的{c}是否合理？",
]  # fmt: skip
ZH_S = [
    "根据相关规定，{b}应当在合理期限内履行义务。", "{c}的数额一般结合实际情况和当地标准确定。",
    "建议先保留好相关证据，例如合同、票据和聊天记录。", "如果协商不成，可以向有关部门申请调解。",
    "{a}的处理需要考虑双方的过错程度。", "在必要时，也可以向人民法院提起诉讼。", "具体结果还要看案件的细节。",
    "平时要注意规律作息，避免过度劳累。", "{b}可以先咨询专业人士，了解自己的权利。", "相关费用通常由责任方承担。",
    "整个流程一般需要一到三个月。", "请注意诉讼时效，避免错过维权的时间。", "{c}问题往往与证据是否充分密切相关。",
]  # fmt: skip
EN_TOPICS = [
    ("a lease", "the tenant", "the deposit"), ("an employment contract", "the employer", "severance pay"),
    ("high blood pressure", "the patient", "medication"), ("a refund", "the customer", "the receipt"),
    ("a car accident", "the driver", "insurance"), ("a Python project", "the developer", "dependencies"),
    ("sleep problems", "an adult", "caffeine"), ("a small business", "the owner", "taxes"),
]  # fmt: skip
EN_Q = [
    "What should {b} know about {a}?", "How is {c} handled in {a}?", "Can you explain how {c} works for {a}?",
    "What are the usual steps when {b} has a problem with {a}?", "Is {c} required in {a}?",
]  # fmt: skip
EN_S = [
    "In most cases {b} should keep written records.", "The rules for {c} depend on where you live.",
    "It is a good idea to read the agreement carefully first.", "If talks fail, mediation is often cheaper than court.",
    "Keep copies of every receipt and message.", "{c} is usually settled within a few weeks.",
    "A professional can check the details of your situation.", "Deadlines matter, so act early.",
    "Small changes in routine often help more than expected.", "Write down what happened while it is fresh.",
]  # fmt: skip
CODE = [
    "```python\ndef add(a, b):\n    return a + b\n\nprint(add(2, 3))\n```",
    "```bash\npip install polars\npython -c 'import polars; print(polars.__version__)'\n```",
    '```html\n<div class="card">\n  <p>{{ user.name }}</p>\n</div>\n```',
    "```sql\nSELECT name, COUNT(*) FROM orders GROUP BY name;\n```",
]
TABLE = "| 项目 | 说明 |\n|------|------|\n| 合同 | 书面形式 |\n| 证据 | 保留原件 |"


def _zh_answer(rng: random.Random, topic, n: int | None = None) -> str:
    a, b, c = topic
    n = n or rng.randint(2, 6)
    sents = [s.format(a=a, b=b, c=c) for s in rng.sample(ZH_S, min(n, len(ZH_S)))]
    style = rng.random()
    if style < 0.25:
        return "主要有以下几点：\n\n" + "\n".join(f"{i + 1}. {s}" for i, s in enumerate(sents))
    if style < 0.32:
        return (
            "".join(sents[:2])
            + "\n\n"
            + TABLE
            + "\n\n"
            + "".join(sents[2:])
            + ("" if len(sents) > 2 else "以上供参考。")
        )
    return "".join(sents)


def _en_answer(rng: random.Random, topic, n: int | None = None) -> str:
    a, b, c = topic
    n = n or rng.randint(2, 6)
    sents = [s.format(a=a, b=b, c=c) for s in rng.sample(EN_S, min(n, len(EN_S)))]
    sents[0] = sents[0][0].upper() + sents[0][1:]
    if rng.random() < 0.25:
        return "Here are the main points:\n\n" + "\n".join(f"- {s}" for s in sents)
    return " ".join(sents)


def _clean(rng: random.Random) -> Record:
    r = rng.random()
    if r < 0.45:
        t = rng.choice(ZH_TOPICS)
        return Record(
            "sft", question=rng.choice(ZH_Q).format(a=t[0], b=t[1], c=t[2]), answer=_zh_answer(rng, t)
        )
    if r < 0.75:
        t = rng.choice(EN_TOPICS)
        return Record(
            "sft", question=rng.choice(EN_Q).format(a=t[0], b=t[1], c=t[2]), answer=_en_answer(rng, t)
        )
    if r < 0.80:  # code answers, including template syntax inside code (not a leftover placeholder)
        code = rng.choice(CODE)
        return Record(
            "sft",
            question="请给出一个简单的示例代码。",
            answer=f"下面是一个示例：\n\n{code}\n\n运行后即可看到结果。",
        )
    if r < 0.85:  # multi-turn
        t = rng.choice(ZH_TOPICS)
        hist = [
            Turn("user", rng.choice(ZH_Q).format(a=t[0], b=t[1], c=t[2])),
            Turn("assistant", _zh_answer(rng, t, 2)),
        ]
        return Record(
            "sft",
            history=hist,
            question="那如果对方一直不回应呢？",
            answer=_zh_answer(rng, t, 3),
            system="你是一名耐心的法律助手。",
        )
    if r < 0.88:  # translation requests: another language on purpose
        t = rng.choice(EN_TOPICS)
        en = _en_answer(rng, t, 2)
        return Record(
            "sft",
            question="请把下面这句话翻译成英文：" + _zh_answer(rng, rng.choice(ZH_TOPICS), 1),
            answer=en,
        )
    if r < 0.91:  # hard negatives: legitimate mentions of models, private IPs, short factual answers
        return rng.choice(
            [
                Record(
                    "sft",
                    question="ChatGPT 是哪家公司发布的？",
                    answer="ChatGPT 是 OpenAI 在 2022 年 11 月发布的聊天机器人。",
                ),
                Record(
                    "sft",
                    question="What is Claude?",
                    answer="Claude is a family of language models made by Anthropic.",
                ),
                Record(
                    "sft",
                    question="本地开发服务器的地址一般是什么？",
                    answer="通常是 127.0.0.1 或者 192.168.1.10 这样的内网地址，端口如 8080。",
                ),
                Record("sft", question="1+1 等于几？", answer="等于 2。"),
                Record("sft", question="Is water wet?", answer="Yes."),
                Record("sft", question="请列出三种常见水果。", answer="苹果、香蕉、橙子。"),
                Record(
                    "sft",
                    question="作为被告，我需要出庭吗？",
                    answer="作为被告，您原则上应当出庭；确有困难的，可以委托代理人参加诉讼。",
                ),
            ]
        )
    if r < 0.95:  # preference rows (a refusal as the *rejected* answer is fine)
        t = rng.choice(ZH_TOPICS)
        return Record(
            "preference",
            question=rng.choice(ZH_Q).format(a=t[0], b=t[1], c=t[2]),
            chosen=_zh_answer(rng, t),
            rejected="抱歉，我无法回答这个问题。",
        )
    t = rng.choice(ZH_TOPICS)  # long but fine answers
    return Record(
        "sft",
        question=rng.choice(ZH_Q).format(a=t[0], b=t[1], c=t[2]),
        answer=_zh_answer(rng, t, rng.randint(8, 14)),
    )


def _base(rng: random.Random) -> tuple[str, str, tuple]:
    if rng.random() < 0.6:
        t = rng.choice(ZH_TOPICS)
        return rng.choice(ZH_Q).format(a=t[0], b=t[1], c=t[2]), _zh_answer(rng, t), t
    t = rng.choice(EN_TOPICS)
    return rng.choice(EN_Q).format(a=t[0], b=t[1], c=t[2]), _en_answer(rng, t), t


def _zh_pair(rng: random.Random) -> tuple[str, str, tuple]:
    t = rng.choice(ZH_TOPICS)
    return rng.choice(ZH_Q).format(a=t[0], b=t[1], c=t[2]), _zh_answer(rng, t), t


def _en_pair(rng: random.Random) -> tuple[str, str, tuple]:
    t = rng.choice(EN_TOPICS)
    return rng.choice(EN_Q).format(a=t[0], b=t[1], c=t[2]), _en_answer(rng, t), t


def _bad(rng: random.Random, kind: str) -> Record:
    q, a, t = _base(rng)
    if kind == "empty":
        return rng.choice(
            [
                Record("sft", question=q, answer=rng.choice(["", "   ", "\n\n", "\u3000", "\u200b"])),
                Record("sft", question=rng.choice(["", "  "]), answer=a),
                Record(
                    "sft", history=[Turn("user", q), Turn("assistant", "")], question="还有呢？", answer=a
                ),
            ]
        )
    if kind == "role_order":
        return Record("sft", history=[Turn("user", q), Turn("user", q + "？")], question="请回答。", answer=a)
    if kind == "ai_disclaimer":
        zq, za, _ = _zh_pair(rng)
        eq, ea, _ = _en_pair(rng)
        return rng.choice(
            [
                Record("sft", question=zq, answer="作为一个AI语言模型，我没有个人观点。" + za),
                Record("sft", question=zq, answer=za + "不过，作为一个人工智能，我无法提供正式意见。"),
                Record(
                    "sft",
                    question=eq,
                    answer="As an AI language model, I don't have personal opinions. " + ea,
                ),
                Record(
                    "sft",
                    question=eq,
                    answer=ea + " However, as a large language model, I cannot give advice.",
                ),
            ]
        )
    if kind == "refusal":
        zq, _, _ = _zh_pair(rng)
        eq, _, _ = _en_pair(rng)
        return rng.choice(
            [
                Record("sft", question=zq, answer="抱歉，我无法回答这个问题。建议您咨询专业人士。"),
                Record("sft", question=zq, answer="很抱歉，我不能提供这方面的建议。"),
                Record("sft", question=eq, answer="I'm sorry, but I can't help with that request."),
                Record(
                    "sft",
                    question=eq,
                    answer="I cannot assist with this question. Please consult a professional.",
                ),
            ]
        )
    if kind == "persona_opener":
        zq, za, _ = _zh_pair(rng)
        return Record(
            "sft",
            question=zq,
            answer=rng.choice(["作为律师，我", "作为一名律师，我", "作为医生，我"]) + "建议您：" + za,
        )
    if kind == "identity":
        zq, za, _ = _zh_pair(rng)
        eq, ea, _ = _en_pair(rng)
        return rng.choice(
            [
                Record("sft", question="你是谁？", answer="我是ChatGPT，一个由OpenAI开发的人工智能助手。"),
                Record("sft", question=zq, answer="我是由 OpenAI 训练的模型。" + za),
                Record(
                    "sft",
                    question="Who are you?",
                    answer="I am ChatGPT, a large language model trained by OpenAI.",
                ),
                Record("sft", question=eq, answer=ea + " (I was developed by OpenAI.)"),
            ]
        )
    if kind == "placeholder":
        return Record(
            "sft",
            question=q,
            answer=rng.choice(["尊敬的{{name}}，", "Dear {{customer_name}}, "])
            + a
            + rng.choice(["", " <unk>"]),
        )
    if kind == "copy":
        return Record("sft", question=q, answer=rng.choice([q, q + " ", q.rstrip("？?") + "。"]))
    if kind == "truncated":
        zq, za, _ = _zh_pair(rng)
        return rng.choice(
            [
                Record("sft", question=zq, answer=za[: max(30, len(za) - 5)].rstrip("。") + "，同时，"),
                Record(
                    "sft",
                    question="请写一个函数。",
                    answer="可以这样写：\n\n```python\ndef f(x):\n    return x *",
                ),
                Record("sft", question=q, answer=a.rstrip(".。") + ", and"),
            ]
        )
    if kind == "degenerate":
        return rng.choice(
            [
                Record("sft", question=q, answer=a + " " + "Eat a banana! " * rng.randint(40, 400)),
                Record("sft", question=q, answer="哈" * rng.randint(40, 200)),
                Record("sft", question=q, answer=a + "非法抵押、非法担保、" * rng.randint(12, 40)),
            ]
        )
    if kind == "repetition":
        para = a if len(a) > 60 else a * 2
        return Record("sft", question=q, answer="\n\n".join([para] * rng.randint(3, 6)))
    if kind == "mojibake":
        return Record("sft", question=q, answer=a[:20] + "\ufffd\ufffd" + a[20:] + "锟斤拷")
    if kind == "lang_mismatch":
        zq, _, _ = _zh_pair(rng)
        _, ea, _ = _en_pair(rng)
        return Record("sft", question=zq, answer=ea)
    if kind == "too_long":
        return Record(
            "sft",
            question=q,
            answer=" ".join(_en_answer(rng, rng.choice(EN_TOPICS), 6) for _ in range(rng.randint(120, 160))),
        )
    if kind == "short_question":
        return Record("sft", question=rng.choice(["?", "？", "a", "1"]), answer=a)
    raise ValueError(kind)


def _fixable(rng: random.Random) -> Record:
    q, a, _ = _base(rng)
    r = rng.random()
    if r < 0.5:  # PII: redacted, then kept
        pii = rng.choice(
            [
                "联系邮箱 zhang.wei{n}@163.com",
                "电话 138{n:04d}5678",
                "身份证号 11010519491231002X",
                "银行卡 6222 0212 3456 7890 128",
                "contact me at j.smith{n}@mail.com",
                "call +1 415 555 {n:04d}",
                "服务器 IP 8.8.{k}.{k}",
                "api_key = sk-proj-A1b2C3d4E5f6G7h8I9j0K1L2M3",
            ]
        ).format(n=rng.randint(0, 9999), k=rng.randint(1, 200))
        return Record("sft", question=q + "（" + pii + "）", answer=a)
    if r < 0.8:  # leftover HTML
        return Record("sft", question=q, answer="<p>" + a.replace("\n", "<br>") + "</p>&nbsp;")
    return Record("sft", question="  " + q + "\r\n", answer=a + "   \n\n\n\n\u200b")


# problems the default (mixed zh/en) set flags for review rather than drops; zh.yaml/en.yaml drop them
FLAG_KINDS = ("lang_mismatch",)
# problems the default set repairs in place: a persona opener ('作为律师，我…') is stripped, the answer
# (often real domain content) is kept
FIX_KINDS = ("persona_opener",)
BAD_KINDS = (
    "empty", "role_order", "ai_disclaimer", "refusal", "persona_opener", "identity", "placeholder", "copy",
    "truncated", "degenerate", "repetition", "mojibake", "too_long", "short_question", "lang_mismatch",
)  # fmt: skip
DROP_KINDS = tuple(k for k in BAD_KINDS if k not in FLAG_KINDS + FIX_KINDS)


def planted_rows(n: int = 1000, bad_share: float = 0.3, fixable_share: float = 0.1, seed: int = 0):
    """Rows (as canonical row dicts) with ``meta.planted`` set; ``bad_share`` of them have a problem
    (``BAD_KINDS``: dropped, or for ``FLAG_KINDS`` flagged), ``fixable_share`` need a repair, the rest
    are clean."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        r = rng.random()
        if r < bad_share:
            kind = BAD_KINDS[i % len(BAD_KINDS)]
            rec = _bad(rng, kind)
        elif r < bad_share + fixable_share:
            kind, rec = "fixable", _fixable(rng)
        else:
            kind, rec = "clean", _clean(rng)
        rec.meta = {"planted": kind, "n": i}
        rec.source_file, rec.source_line = "synthetic", i + 1
        rows.append(rec.as_row())
    return rows


def planted_frame(n: int = 1000, bad_share: float = 0.3, fixable_share: float = 0.1, seed: int = 0):
    return to_frame(planted_rows(n, bad_share, fixable_share, seed))
