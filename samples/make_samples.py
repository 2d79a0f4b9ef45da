"""Build the shipped sample datasets in ``samples/`` from the hand-written sources in ``samples/src/``.

Run ``python samples/make_samples.py`` (standard library + openpyxl). The output is deterministic: the
same sources always give byte-identical JSONL/CSV/TXT files (the XLSX carries no timestamps that change
its cell content).

What it does:

* reads the hand-written base Q&A (``src/base_*.qa``), the PII tickets (``src/pii.qa``), the multi-turn
  conversations (``src/multiturn.qa``), the preference rejects (``src/prefs.qa``) and the documentation
  paragraphs (``src/docs.txt``);
* holds a few base items back and turns them into junk (truncated, mojibake, HTML leftovers);
* plants exact duplicates, near duplicates (small edits), junk rows, PII rows and broken rows;
* writes ``ops_qa.jsonl``, ``ops_qa.gbk.csv`` (GB18030), ``ops_qa.xlsx`` (two sheets),
  ``ops_multiturn.sharegpt.jsonl``, ``ops_prefs.jsonl``, ``ops_docs.txt`` and the ground truth
  ``labels.jsonl``.

Label lines: ``{"file", "line_or_row", "planted", "item", ...}``; ``line_or_row`` is the 1-based line
where the row starts (JSONL, CSV; the CSV header is line 1) or the spreadsheet row (XLSX, header = row 1,
with ``sheet``), i.e. the same location ``curate ingest`` reports. ``of`` (duplicates only) is the
``line_or_row`` of the original in the same file (same sheet). ``item`` numbers the logical rows, shared
by the three formats of the Q&A set (absent for a format's own broken rows).
"""

from __future__ import annotations

import csv
import io
import json
import random
import re
import unicodedata
import zipfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE / "src"
OUT = HERE  # where the files go; main(out=...) changes it (the tests build into a temporary folder)
SEED = 20261128

SOURCES_ZH = ["工单导出-2024Q3", "内部知识库", "运维群聊天记录", "工单导出-2024Q4"]
SOURCES_EN = ["ticket-export-2024Q3", "internal-wiki", "support-forum", "ticket-export-2024Q4"]


@dataclass
class QA:
    question: str
    answer: str | None
    category: str
    source: str = ""
    planted: str = "clean"
    of: int | None = None  # index of the original item (duplicates)
    extra: dict = field(default_factory=dict)

    @property
    def lang(self) -> str:
        return lang_of(self.question)


def lang_of(text: str) -> str:
    han = sum(1 for ch in text if "\u4e00" <= ch <= "\u9fff")
    return "zh" if han >= 2 else "en"


# --------------------------------------------------------------------------------------------- parsing


def parse_qa(path: Path) -> list[tuple[str, str, str]]:
    """[(header, question, answer)] from the "@@ header / question / answer..." block format."""
    items: list[tuple[str, str, str]] = []
    header = None
    lines: list[str] = []

    def flush() -> None:
        if header is None:
            return
        body = "\n".join(lines).strip("\n")
        q, _, a = body.partition("\n")
        items.append((header, q.strip(), a.strip()))

    for raw in path.read_text(encoding="utf-8").splitlines():
        if raw.startswith("@@ "):
            flush()
            header, lines = raw[3:].strip(), []
        elif header is not None:
            lines.append(raw)
    flush()
    return items


def load_base() -> list[QA]:
    out = []
    for path in sorted(SRC.glob("base_*.qa")):
        for header, q, a in parse_qa(path):
            out.append(QA(q, a, header))
    seen = set()
    for qa in out:  # the base must be distinct, or the labels lie
        key = (qa.question, qa.answer)
        if key in seen:
            raise SystemExit(f"duplicate base item: {qa.question}")
        seen.add(key)
    return out


# ------------------------------------------------------------------------------------ fake personal data


def fake_email(rng: random.Random) -> str:
    users = [
        "zhang.wei",
        "liuyang",
        "wang_fang",
        "chen.jie88",
        "j.harper",
        "m.okafor",
        "li.na.ops",
        "sre-oncall",
    ]
    domains = [
        "hzyunwei-tech.com",
        "acme-logistics.com.cn",
        "northwind-retail.cn",
        "qdfin-corp.com",
        "mail.sky-data.cn",
    ]
    return f"{rng.choice(users)}{rng.randint(1, 99) if rng.random() < 0.4 else ''}@{rng.choice(domains)}"


def fake_phone(rng: random.Random) -> str:
    prefix = rng.choice(["138", "139", "150", "151", "158", "186", "187", "135", "177", "199"])
    number = prefix + "".join(str(rng.randint(0, 9)) for _ in range(8))
    return rng.choice([number, f"{number[:3]}-{number[3:7]}-{number[7:]}", f"+86 {number}"])


ID_WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
ID_CHECK = "10X98765432"


def id_check_digit(first17: str) -> str:
    return ID_CHECK[sum(int(d) * w for d, w in zip(first17, ID_WEIGHTS, strict=True)) % 11]


def fake_idcard(rng: random.Random) -> str:
    region = rng.choice(["110105", "310115", "440305", "330106", "510107", "420111", "320102", "370202"])
    birth = f"{rng.randint(1965, 2001)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"
    first17 = region + birth + f"{rng.randint(0, 999):03d}"
    return first17 + id_check_digit(first17)


def luhn_ok(number: str) -> bool:
    digits = [int(d) for d in number][::-1]
    total = sum(d if i % 2 == 0 else (d * 2 - 9 if d * 2 > 9 else d * 2) for i, d in enumerate(digits))
    return total % 10 == 0


def fake_card(rng: random.Random) -> str:
    prefix = rng.choice(["622202", "621700", "622848", "625807", "4392250", "5187180"])
    length = 16 if prefix[0] in "45" else rng.choice([16, 19])
    body = prefix + "".join(str(rng.randint(0, 9)) for _ in range(length - len(prefix) - 1))
    for check in "0123456789":
        if luhn_ok(body + check):
            number = body + check
            break
    if rng.random() < 0.3:  # written in groups of four, as people paste them
        number = " ".join(number[i : i + 4] for i in range(0, len(number), 4))
    return number


def fake_ip(rng: random.Random) -> str:
    first = rng.choice([47, 101, 106, 112, 118, 121, 139, 182, 203])
    return f"{first}.{rng.randint(1, 254)}.{rng.randint(0, 254)}.{rng.randint(1, 254)}"


def fake_apikey(rng: random.Random) -> str:
    alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    kind = rng.choice(["sk", "sk-proj", "akia", "ghp"])
    if kind == "sk":
        return "sk-" + "".join(rng.choice(alnum) for _ in range(48))
    if kind == "sk-proj":
        return "sk-proj-" + "".join(rng.choice(alnum + "-_") for _ in range(56))
    if kind == "akia":
        return "AKIA" + "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567") for _ in range(16))
    return "ghp_" + "".join(rng.choice(alnum) for _ in range(36))


FAKERS = {
    "EMAIL": fake_email,
    "PHONE": fake_phone,
    "IDCARD": fake_idcard,
    "CARD": fake_card,
    "IP": fake_ip,
    "APIKEY": fake_apikey,
}


def fill_slots(text: str, rng: random.Random, values: dict[str, str]) -> str:
    def sub(m: re.Match) -> str:
        kind = m.group(1)
        if kind not in values:
            values[kind] = FAKERS[kind](rng)
        return values[kind]

    return re.sub(r"<<([A-Z]+)>>", sub, text)


# ------------------------------------------------------------------------------------------------- junk

JUNK_QUESTIONS_ZH = [
    "k8s 里怎么看某个 Pod 的 IP",
    "docker 镜像太大了怎么瘦身",
    "Prometheus 数据保留多久合适",
    "helm upgrade 失败了怎么办？",
    "Redis 部署在 k8s 上靠谱吗",
    "怎么看 etcd 的健康状态？",
    "Jenkins 构建排队很久",
    "nginx 502 是什么原因",
    "ingress 怎么配 https",
    "kubelet 日志在哪里看？",
    "容器里 ping 不通外网",
    "Grafana 密码忘了怎么重置",
    "argo cd 同步一直 OutOfSync",
    "MySQL 主从延迟很大怎么排查",
    "如何查看 k8s 集群版本",
    "镜像仓库 harbor 空间满了",
    "Pod 的 CPU 使用率突然飙高",
    "k8s 的 Service 有几种类型？",
    "怎么把本地端口转发到集群里的 Pod",
    "gitlab runner 一直 pending",
]
JUNK_QUESTIONS_EN = [
    "How do I see which node a pod is running on?",
    "Best way to store Terraform state for a team?",
    "How to debug a slow PostgreSQL query in a pod?",
    "Why is my Docker build cache not used in CI?",
    "How can I expose a service on a fixed NodePort?",
    "What does ImagePullBackOff mean?",
    "How do I rotate the kubeconfig of a service account?",
    "Loki is dropping logs, what should I check?",
    "Can I run two ingress controllers in one cluster?",
    "How to change the default storage class?",
    "Our Helm chart values are getting huge, any tips?",
    "How do I limit log size for Docker containers?",
    "Why does my CronJob run twice sometimes?",
    "How can I find which pod is using the most memory?",
    "Is it safe to delete completed pods?",
    "How do I reach a service in another namespace?",
]

REFUSALS_ZH = [
    "作为一个AI语言模型，我无法访问您的服务器或集群，因此无法帮您排查这个问题。建议您咨询专业的运维人员。",
    "抱歉，作为一个人工智能助手，我无法提供关于这个问题的具体帮助。",
    "很抱歉，我只是一个AI模型，无法执行命令或查看您的系统配置，请联系您的系统管理员。",
]
REFUSALS_EN = [
    "As an AI language model, I cannot access your cluster or run commands, so I am unable to help with this.",
    "I'm sorry, but as an AI developed by OpenAI, I can't provide assistance with that request.",
    "As an AI language model, I don't have the ability to browse the internet or check your configuration. "
    "Please consult your system administrator.",
]
IDENTITY_ZH = [
    "我是ChatGPT，一个由OpenAI开发的大型语言模型。关于您的问题，一般来说可以查看相关文档。",
    "您好！我是文心一言，很高兴为您服务。这个问题可以通过查看日志来解决。",
]
IDENTITY_EN = [
    "I am ChatGPT, a large language model trained by OpenAI. For this kind of issue you should check the docs.",
    "Hello! I'm Claude, an AI assistant made by Anthropic. Generally speaking, you can look at the logs.",
]
EMPTY = ["", "   ", "\n"]
ONE_WORD_ZH = ["好的", "可以。", "不知道"]
ONE_WORD_EN = ["Yes.", "N/A"]
REPEAT_SEEDS_ZH = ["重启一下就好了。", "检查一下配置，"]
REPEAT_SEEDS_EN = ["Check the logs. ", "kubectl get pods "]
TEMPLATES = [
    "{{answer}}",
    "您好 {{name}}，关于{{topic}}的问题，请参考 {{link}}。",
    "Hi {{customer_name}}, thanks for reaching out! [INSERT ANSWER HERE]",
    "<回答>",
]
UNRELATED_ZH = [
    "红烧肉的做法：五花肉切块焯水，锅里放少许油炒糖色，下肉翻炒上色，加生抽、老抽、料酒和开水，小火炖一个小时，最后大火收汁即可。",
    "明天北京晴转多云，最高气温 18 度，最低气温 6 度，北风三到四级，早晚温差较大，注意添加衣物。",
]
UNRELATED_EN = [
    "The French Revolution began in 1789 and led to the end of the monarchy, the rise of Napoleon and lasting "
    "changes to European politics.",
    "To make sourdough, mix flour, water and starter, let it rest, stretch and fold every half hour, shape it, "
    "proof overnight in the fridge and bake at 250 degrees in a covered pot.",
]


def mojibake(text: str, gbk: bool) -> str:
    """UTF-8 bytes read with the wrong codec: Windows-1252 ("é—®é¢˜", repairable) or GBK ("鍚姩", lossy)."""
    data = text.encode("utf-8")
    if not gbk:
        # "sloppy" cp1252 as Windows tools do it: the five undefined bytes pass through as latin-1
        return "".join(bytes([b]).decode("cp1252", errors="ignore") or chr(b) for b in data)
    return data.decode("gbk", errors="replace")


def html_leftovers(text: str) -> str:
    paras = [p for p in text.split("\n\n") if p.strip()]
    out = []
    for p in paras:
        if p.startswith("```"):
            code = p.strip("`").split("\n", 1)[-1]
            code = code.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\n", "<br/>")
            out.append(f'<pre class="code">{code}</pre>')
        else:
            out.append('<p style="margin:0">' + p.replace("\n", "<br>").replace(" ", "&nbsp;", 2) + "</p>")
    return '<div class="answer-body">' + "".join(out) + "</div>"


def truncate(text: str, rng: random.Random) -> str:
    cut = int(len(text) * rng.uniform(0.18, 0.35))
    cut = max(cut, 12)
    return text[:cut].rstrip()


def repetition(seed: str, rng: random.Random) -> str:
    return seed * rng.randint(18, 40)


# ----------------------------------------------------------------------------------------- near dups

CLOSING_ZH = ["希望对你有帮助。", "有问题再留言。", "以上供参考。"]
CLOSING_EN = ["Hope this helps!", "Let us know if that doesn't fix it.", "HTH"]

# Small edits that survive normalisation (NFKC + whitespace collapse): the result is a near duplicate,
# not the same record. Full-width/half-width swaps are *not* here: NFKC undoes them (see NORMALISED_VARIANTS).
NEAR_EDITS_ZH = [
    lambda q, a, r: ("请问" + q, a),
    lambda q, a, r: (q.rstrip("？?") + "？谢谢", a),
    lambda q, a, r: (q.rstrip("？?") + "，急", a),
    lambda q, a, r: (q.replace("怎么", "如何", 1) if "怎么" in q else "请教：" + q, a),
    lambda q, a, r: (q, a.replace("。", "．", 2)),
    lambda q, a, r: (q, a + "\n\n" + r.choice(CLOSING_ZH)),
    lambda q, a, r: (q, drop_short_last_paragraph(a) or a.replace("可以", "能够", 1)),
    lambda q, a, r: (q, a.replace("一般", "通常", 1) if "一般" in a else a.replace("。", "！", 1)),
]
NEAR_EDITS_EN = [
    lambda q, a, r: (q.rstrip("?") + "?? thanks", a),
    lambda q, a, r: (q[0].lower() + q[1:], a),
    lambda q, a, r: (q.replace("How do I", "How can I", 1) if "How do I" in q else "Quick question: " + q, a),
    lambda q, a, r: (q.replace("?", " ?"), a.replace(", ", " , ", 1)),
    lambda q, a, r: (q, a + "\n\n" + r.choice(CLOSING_EN)),
    lambda q, a, r: (
        q,
        drop_short_last_paragraph(a) or a.replace("don't", "do not").replace("it's", "it is"),
    ),
    lambda q, a, r: (q, a.replace("usually", "typically", 1) if "usually" in a else a.replace(". ", "! ", 1)),
]

# Byte-level variants that normalise to the same content (same record id): still exact duplicates.
FULL_WIDTH = str.maketrans({str(d): chr(0xFF10 + d) for d in range(10)} | {"?": "？", ",": "，", ":": "："})
NORMALISED_VARIANTS = [
    lambda q, a: (q + "  ", a),  # trailing spaces
    lambda q, a: (q, a.replace("\n", "\r\n")),  # CRLF line ends
    lambda q, a: (q.translate(FULL_WIDTH), a),  # full-width digits and punctuation in the question
    lambda q, a: ("  " + q.replace(" ", "  ", 1), a),  # doubled spaces
]


def drop_short_last_paragraph(a: str) -> str | None:
    """The answer without its last paragraph when that paragraph is a short aside (< 25% of the text)."""
    paras = a.split("\n\n")
    if len(paras) >= 3 and len(paras[-1]) < 0.25 * len(a) and not paras[-1].startswith("```"):
        return "\n\n".join(paras[:-1])
    return None


def normalise(text: str | None) -> str:
    """The same normalisation as curate.records.normalise_text (kept here so this script stays stand-alone)."""
    return " ".join(unicodedata.normalize("NFKC", text or "").split())


# ----------------------------------------------------------------------------------------- building


def build_items(rng: random.Random) -> tuple[list[QA], list[QA]]:
    """(logical rows in file order, the base items used as clean rows)."""
    base = load_base()
    zh_idx = [i for i, qa in enumerate(base) if qa.lang == "zh"]
    en_idx = [i for i, qa in enumerate(base) if qa.lang == "en"]
    held_idx = rng.sample(zh_idx, 8) + rng.sample(en_idx, 8)
    held = [base[i] for i in held_idx]
    clean = [qa for i, qa in enumerate(base) if i not in set(held_idx)]
    for i, qa in enumerate(clean):
        pool = SOURCES_ZH if qa.lang == "zh" else SOURCES_EN
        qa.source = pool[i % len(pool)]

    rows: list[QA] = list(clean)
    rng.shuffle(rows)

    junk: list[QA] = []
    qz, qe = list(JUNK_QUESTIONS_ZH), list(JUNK_QUESTIONS_EN)
    rng.shuffle(qz)
    rng.shuffle(qe)

    def jq(lang: str) -> str:
        return (qz if lang == "zh" else qe).pop()

    def add(kind: str, q: str, a: str | None, cat: str = "kubernetes") -> None:
        pool = SOURCES_ZH if lang_of(q) == "zh" else SOURCES_EN
        junk.append(QA(q, a, cat, rng.choice(pool), f"junk:{kind}"))

    for text in REFUSALS_ZH:
        add("refusal", jq("zh"), text)
    for text in REFUSALS_EN:
        add("refusal", jq("en"), text)
    for text in IDENTITY_ZH:
        add("identity", jq("zh"), text)
    for text in IDENTITY_EN:
        add("identity", jq("en"), text)
    for text, lang in zip(EMPTY, ["zh", "en", "zh"], strict=True):
        add("empty", jq(lang), text)
    for text in ONE_WORD_ZH:
        add("one_word", jq("zh"), text)
    for text in ONE_WORD_EN:
        add("one_word", jq("en"), text)
    for seed in REPEAT_SEEDS_ZH:
        add("repetition", jq("zh"), repetition(seed, rng))
    for seed in REPEAT_SEEDS_EN:
        add("repetition", jq("en"), repetition(seed, rng))
    for text, lang in zip(TEMPLATES, ["zh", "zh", "en", "zh"], strict=True):
        add("template", jq(lang), text)
    for lang in ["zh", "zh", "en", "en"]:
        q = jq(lang)
        add("copy_question", q, q)
    for text in UNRELATED_ZH:
        add("unrelated", jq("zh"), text)
    for text in UNRELATED_EN:
        add("unrelated", jq("en"), text)
    # held-back base items, damaged
    zh_held, en_held = held[:8], held[8:]
    for h in zh_held[:2] + en_held[:2]:
        add("truncated", h.question, truncate(h.answer, rng), h.category)
    for n, h in enumerate(zh_held[2:6]):
        add("mojibake", h.question, mojibake(h.answer, gbk=n % 2 == 1), h.category)
    for h in zh_held[6:8] + en_held[2:4]:
        add("html", h.question, html_leftovers(h.answer), h.category)
    rest = en_held[4:8]
    # answers that belong to another question (held-back items, so neither half appears elsewhere)
    swap = rest
    for a, b in zip(swap, swap[1:] + swap[:1], strict=True):
        add("unrelated", a.question, b.answer, a.category)

    pii: list[QA] = []
    for header, q, a in parse_qa(SRC / "pii.qa"):
        cat, kind = header.split()
        values: dict[str, str] = {}
        q2, a2 = fill_slots(q, rng, values), fill_slots(a, rng, values)
        pool = SOURCES_ZH if lang_of(q2) == "zh" else SOURCES_EN
        pii.append(QA(q2, a2, cat, rng.choice(pool), kind, extra={"value": next(iter(values.values()))}))

    for extra in junk + pii:
        rows.insert(rng.randrange(len(rows) + 1), extra)

    # duplicates of clean rows, placed after their original
    n_exact, n_near = round(len(clean) * 0.105), round(len(clean) * 0.095)
    targets = rng.sample(clean, n_exact + n_near)
    for n, orig in enumerate(targets):
        pool = SOURCES_ZH if orig.lang == "zh" else SOURCES_EN
        if n < n_exact:
            q, a = orig.question, orig.answer
            variant = None
            if n % 3 == 2:  # same content after normalisation, different bytes
                variant = n // 3 % len(NORMALISED_VARIANTS)
                q, a = NORMALISED_VARIANTS[variant](q, a)
                assert (normalise(q), normalise(a)) == (normalise(orig.question), normalise(orig.answer))
            dup = QA(q, a, orig.category, orig.source if n % 2 == 0 else rng.choice(pool), "exact_dup")
            if variant is not None:
                dup.extra["variant"] = ["trailing_spaces", "crlf", "full_width", "double_spaces"][variant]
        else:
            edits = NEAR_EDITS_ZH if orig.lang == "zh" else NEAR_EDITS_EN
            q, a = orig.question, orig.answer
            for edit in rng.sample(edits, rng.choice([1, 1, 2])):
                q, a = edit(q, a, rng)
            if (normalise(q), normalise(a)) == (normalise(orig.question), normalise(orig.answer)):
                q = q + (" 急" if orig.lang == "zh" else " (urgent)")
            dup = QA(q, a, orig.category, orig.source, "near_dup")
        dup.extra["orig"] = orig
        pos = rows.index(orig)
        rows.insert(rng.randrange(pos + 1, len(rows) + 1), dup)
    return rows, clean


# ------------------------------------------------------------------------------------------- writers


def write_jsonl(rows: list[QA], labels: list[dict]) -> None:
    name = "ops_qa.jsonl"
    lines: list[str] = []
    line_of: dict[int, int] = {}
    broken_at = {len(rows) // 3: "malformed_json", (2 * len(rows)) // 3: "missing_field"}
    for i, qa in enumerate(rows):
        if i in broken_at:
            kind = broken_at[i]
            if kind == "malformed_json":
                text = json.dumps(
                    {
                        "question": "Helm 安装 chart 报错 context deadline exceeded",
                        "answer": "一般是 chart 里的 hook",
                    },
                    ensure_ascii=False,
                )
                text = text[
                    : text.index("一般是") + 5
                ]  # cut in the middle of a string: an export killed mid-write
            else:
                text = json.dumps(
                    {"questoin": "How do I restart all pods of a deployment?", "category": "kubernetes"},
                    ensure_ascii=False,
                )
            lines.append(text)
            labels.append({"file": name, "line_or_row": len(lines), "planted": f"broken:{kind}"})
        obj = {"question": qa.question, "answer": qa.answer, "category": qa.category, "source": qa.source}
        lines.append(json.dumps(obj, ensure_ascii=False))
        line_of[i] = len(lines)
        labels.append(label(name, len(lines), qa, i, rows, line_of))
    (OUT / name).write_text("\n".join(lines) + "\n", encoding="utf-8")


LOOKALIKE_PATTERNS = {
    "email": re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"),
    "ip": re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b"),
}


def lookalikes(text: str) -> list[str]:
    """Kinds of PII-looking values in a clean row (reserved example domains, private or documentation
    addresses, CIDRs): not personal data, but what an over-eager PII filter will flag."""
    return [kind for kind, pat in LOOKALIKE_PATTERNS.items() if pat.search(text)]


def label(name: str, where: int, qa: QA, item: int, rows: list[QA], where_of: dict[int, int], **kw) -> dict:
    out = {"file": name, "line_or_row": where, **kw, "planted": qa.planted, "item": item, "lang": qa.lang}
    if "orig" in qa.extra:
        out["of"] = where_of[rows.index(qa.extra["orig"])]
    if qa.planted in ("clean", "exact_dup", "near_dup"):
        found = lookalikes(f"{qa.question}\n{qa.answer}")
        if found:
            out["lookalike"] = found
    if "variant" in qa.extra:
        out["variant"] = qa.extra["variant"]
    if qa.planted.startswith("pii:"):
        out["value"] = qa.extra["value"]
    return out


def write_csv(rows: list[QA], labels: list[dict]) -> None:
    name = "ops_qa.gbk.csv"
    buf = io.StringIO(newline="")
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(["问题", "回答", "分类"])
    line_of: dict[int, int] = {}
    broken_at = {len(rows) // 4: "field_count_long", (3 * len(rows)) // 5: "field_count_short"}

    def line_now() -> int:
        return buf.getvalue().count("\n") + 1

    for i, qa in enumerate(rows):
        if i in broken_at:
            kind = broken_at[i]
            start = line_now()
            if kind == "field_count_long":  # an unquoted comma inside the answer: four fields
                buf.write(
                    "helm 怎么回滚到上一个版本,先 helm history 看版本号,再 helm rollback <release> <版本号>,cicd\r\n"
                )
            else:  # the answer column is missing: two fields
                buf.write("镜像拉取一直 ImagePullBackOff,kubernetes\r\n")
            labels.append({"file": name, "line_or_row": start, "planted": f"broken:{kind}"})
        start = line_now()
        writer.writerow([qa.question, qa.answer if qa.answer is not None else "", qa.category])
        line_of[i] = start
        labels.append(label(name, start, qa, i, rows, line_of))
    (OUT / name).write_bytes(buf.getvalue().encode("gb18030"))


def write_xlsx(rows: list[QA], labels: list[dict]) -> None:
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font

    name = "ops_qa.xlsx"
    wb = Workbook()
    sheets = {"zh": wb.active, "en": wb.create_sheet()}
    sheets["zh"].title, sheets["en"].title = "中文问答", "英文问答"
    for ws in sheets.values():
        ws.append(["问题", "回答", "分类"])
        for cell in ws[1]:
            cell.font = Font(bold=True)
        ws.column_dimensions["A"].width = 40
        ws.column_dimensions["B"].width = 90
        ws.column_dimensions["C"].width = 14
    row_of: dict[int, int] = {}
    broken = {
        "zh": ("StatefulSet 的 Pod 删除后会重新挂载原来的 PVC 吗？", "kubernetes"),
        "en": ("How do I see the events of a namespace sorted by time?", "kubernetes"),
    }
    broken_after = {"zh": 40, "en": 55}
    for i, qa in enumerate(rows):
        lang = "zh" if qa.lang == "zh" else "en"
        ws = sheets[lang]
        if ws.max_row - 1 == broken_after[lang]:  # the exported answer cell is empty
            q, cat = broken[lang]
            ws.append([q, None, cat])
            labels.append(
                {"file": name, "line_or_row": ws.max_row, "sheet": ws.title, "planted": "broken:empty_cell"}
            )
        ws.append([qa.question, qa.answer if qa.answer else None, qa.category])
        for cell in ws[ws.max_row]:
            cell.alignment = Alignment(wrap_text=True, vertical="top")
        row_of[i] = ws.max_row
        lab = label(name, ws.max_row, qa, i, rows, row_of, sheet=ws.title)
        labels.append(lab)
    wb.properties.creator = "tamis samples"
    wb.properties.created = wb.properties.modified = datetime(2024, 11, 1, 9, 30)
    buf = io.BytesIO()
    wb.save(buf)
    # rewrite the zip with fixed entry times, so the file is byte-for-byte reproducible
    out = io.BytesIO()
    with zipfile.ZipFile(buf) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            fixed = zipfile.ZipInfo(info.filename, date_time=(2024, 11, 1, 9, 30, 0))
            fixed.compress_type = zipfile.ZIP_DEFLATED
            data = src.read(info.filename)
            if info.filename == "docProps/core.xml":  # openpyxl stamps "modified" with the save time
                data = re.sub(rb"(<dcterms:modified[^>]*>)[^<]*", rb"\g<1>2024-11-01T09:30:00Z", data)
            dst.writestr(fixed, data)
    (OUT / name).write_bytes(out.getvalue())


# ------------------------------------------------------------------------------- the other datasets


def parse_conversations(path: Path) -> list[tuple[str, list[tuple[str, str]]]]:
    """[(category, [(role, text)])] from the "@@ category / > role / text" block format."""
    convs: list[tuple[str, list[tuple[str, str]]]] = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        if raw.startswith("@@ "):
            convs.append((raw[3:].strip(), []))
        elif raw.startswith("> ") and convs:
            convs[-1][1].append((raw[2:].strip(), ""))
        elif convs and convs[-1][1]:
            role, text = convs[-1][1][-1]
            convs[-1][1][-1] = (role, text + raw + "\n")
    return [(cat, [(role, text.strip()) for role, text in turns]) for cat, turns in convs]


def write_multiturn(labels: list[dict]) -> None:
    """ShareGPT conversations: {"conversations": [{"from", "value"}...], "system"?, "category"}."""
    name = "ops_multiturn.sharegpt.jsonl"
    lines = []
    for cat, turns in parse_conversations(SRC / "multiturn.qa"):
        obj: dict = {}
        if turns[0][0] == "system":
            obj["system"] = turns[0][1]
            turns = turns[1:]
        obj["conversations"] = [{"from": role, "value": text} for role, text in turns]
        if any(role == "function_call" for role, _ in turns):
            obj["tools"] = json.dumps(
                [
                    {
                        "name": "kubectl",
                        "description": "Run a read-only kubectl command against the current cluster.",
                        "parameters": {
                            "type": "object",
                            "properties": {"args": {"type": "array", "items": {"type": "string"}}},
                            "required": ["args"],
                        },
                    }
                ],
                ensure_ascii=False,
            )
        obj["category"] = cat
        lines.append(json.dumps(obj, ensure_ascii=False))
        n_user = sum(1 for role, _ in turns if role == "human")
        labels.append(
            {
                "file": name,
                "line_or_row": len(lines),
                "planted": "clean",
                "lang": lang_of(turns[0][1]),
                "turns": n_user,
            }
        )
    (OUT / name).write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_prefs(rng: random.Random, labels: list[dict]) -> None:
    """TRL-style preference rows: {"prompt", "chosen", "rejected", "category", "rejected_kind"}."""
    name = "ops_prefs.jsonl"
    base = {qa.question: qa for qa in load_base()}
    rows = []
    for header, line1, rest in parse_qa(SRC / "prefs.qa"):
        if header not in base:
            raise SystemExit(f"prefs.qa: no base question {header!r}")
        kind, rejected = (line1[1:], rest) if line1.startswith("~") else ("", (line1 + "\n" + rest).strip())
        qa = base[header]
        rows.append(
            {
                "prompt": qa.question,
                "chosen": qa.answer,
                "rejected": rejected,
                "category": qa.category,
                "rejected_kind": kind,
            }
        )
    rng.shuffle(rows)
    planted = ["clean"] * len(rows)
    # two planted problems: a pair whose rejected answer is the chosen one, and an exact duplicate pair
    bad = rows[7]
    rows.insert(20, {**bad, "rejected": bad["chosen"], "rejected_kind": "identical"})
    planted.insert(20, "junk:identical_pair")
    rows.insert(41, dict(rows[3]))
    planted.insert(41, "exact_dup")
    lines = [json.dumps(r, ensure_ascii=False) for r in rows]
    for i, (row, kind) in enumerate(zip(rows, planted, strict=True)):
        lab = {"file": name, "line_or_row": i + 1, "planted": kind, "lang": lang_of(row["prompt"])}
        if kind == "exact_dup":
            lab["of"] = 4
        labels.append(lab)
    (OUT / name).write_text("\n".join(lines) + "\n", encoding="utf-8")


def prose_of(answer: str) -> str:
    """An answer as one documentation paragraph: code blocks dropped, list markers and line breaks joined."""
    text = re.sub(r"```.*?```", " ", answer, flags=re.S)
    parts = []
    for line in text.splitlines():
        line = re.sub(r"^\s*(?:[-*]|\d+\.)\s+", "", line).strip()
        if line:
            parts.append(line)
    joined = ""
    for part in parts:
        if joined and lang_of(part) == "en" and not joined.endswith((" ", "\u3002", "\uff1a", "\uff1b")):
            joined += " "
        joined += part
    return re.sub(r"\s+", " ", joined).strip().rstrip("\uff1a:")


BOILERPLATE = [
    "版权所有 © 2019-2024 云帆运维平台团队 保留所有权利 | 京ICP备00000000号",
    "返回顶部 | 上一页 | 下一页 | 打印本页",
    "Page 14 of 52 - Internal use only - Do not distribute",
]


PLACEHOLDERS = ["TODO：本节内容待补充", "(this section intentionally left blank)"]


def write_docs(rng: random.Random, clean: list[QA], labels: list[dict]) -> None:
    """Plain text for continued pretraining, one paragraph per line: the handbook plus FAQ prose."""
    name = "ops_docs.txt"
    handbook = [
        line.strip() for line in (SRC / "docs.txt").read_text(encoding="utf-8").splitlines() if line.strip()
    ]
    faq = []
    for qa in rng.sample(clean, 110):
        para = prose_of(qa.answer)
        if len(para) >= 80:
            faq.append(para)
    faq = faq[:85]
    lines: list[tuple[str, dict]] = [(t, {"planted": "clean", "origin": "handbook"}) for t in handbook]
    for t in faq:
        lines.insert(rng.randrange(len(lines) + 1), (t, {"planted": "clean", "origin": "faq_answer"}))
    for t in BOILERPLATE:
        lines.insert(rng.randrange(len(lines) + 1), (t, {"planted": "junk:boilerplate"}))
    for t in PLACEHOLDERS:
        lines.insert(rng.randrange(len(lines) + 1), (t, {"planted": "junk:placeholder"}))
    html_src = rng.choice(handbook)
    lines.insert(rng.randrange(len(lines) + 1), (f"<p>{html_src}</p><br/>", {"planted": "junk:html"}))
    for src_text in rng.sample(handbook, 4):
        pos = next(i for i, (t, _) in enumerate(lines) if t == src_text)
        lines.insert(
            rng.randrange(pos + 1, len(lines) + 1), (src_text, {"planted": "exact_dup", "of_text": src_text})
        )
    first_line = {}
    for i, (t, _meta) in enumerate(lines):
        first_line.setdefault(t, i + 1)
    for i, (t, meta) in enumerate(lines):
        lab = {"file": name, "line_or_row": i + 1, "planted": meta["planted"], "lang": lang_of(t)}
        if "origin" in meta:
            lab["origin"] = meta["origin"]
        if "of_text" in meta:
            lab["of"] = first_line[t]
        labels.append(lab)
    (OUT / name).write_text("".join(t + "\n" for t, _ in lines), encoding="utf-8")


def main(out: Path | None = None) -> None:
    global OUT
    OUT = Path(out) if out else HERE
    OUT.mkdir(parents=True, exist_ok=True)
    rng = random.Random(SEED)
    rows, clean = build_items(rng)
    labels: list[dict] = []
    write_jsonl(rows, labels)
    write_csv(rows, labels)
    write_xlsx(rows, labels)
    write_multiturn(labels)
    write_prefs(random.Random(SEED + 1), labels)
    write_docs(random.Random(SEED + 2), clean, labels)
    with open(OUT / "labels.jsonl", "w", encoding="utf-8") as f:
        for lab in labels:
            f.write(json.dumps(lab, ensure_ascii=False) + "\n")
    for name in sorted({lab["file"] for lab in labels}):
        counts: dict[str, int] = {}
        for lab in labels:
            if lab["file"] == name:
                counts[lab["planted"]] = counts.get(lab["planted"], 0) + 1
        total = sum(counts.values())
        print(f"{name}: {total} rows {json.dumps(counts, ensure_ascii=False, sort_keys=True)}")


if __name__ == "__main__":
    import sys

    main(Path(sys.argv[1]) if len(sys.argv) > 1 else None)
