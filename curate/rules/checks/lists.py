"""Pattern lists: regex and keyword block/allow lists, boilerplate openers and refusals, identity
leakage, leftover template placeholders. All vectorised (polars regex / Aho-Corasick)."""

from __future__ import annotations

import re
from collections import Counter

import polars as pl

from curate.rules.checks.base import (
    FENCED_CODE,
    Check,
    CheckError,
    Hit,
    Param,
    as_bool,
    compile_rust,
    excerpt,
    filled,
    literal_span,
    read_list_file,
    rust_spans,
)

_LEAD = r"^[\s\p{P}\p{S}]*"  # openers may follow whitespace, quotes, bullets


def _mode_param() -> Param:
    return Param(
        (str,),
        "block",
        "block: fire when a pattern matches; allow: fire when none matches.",
        ("block", "allow"),
    )


class Regex(Check):
    name = "regex"
    help = "Regular expressions (Rust/polars syntax) as a block list or an allow list."
    params = {
        "patterns": Param((list, str), [], "One pattern or a list; any match counts."),
        "file": Param((str,), None, "A file with one pattern per line (relative to the YAML file)."),
        "ignore_case": Param((bool,), False, "Case-insensitive matching."),
        "mode": _mode_param(),
        "ignore_code": Param((bool,), False, "Do not look inside ``` fenced code blocks."),
        "replacement": Param((str,), "", "For action fix/redact: what a match is replaced with."),
    }

    def prepare(self) -> None:
        pats = self.p["patterns"]
        pats = [pats] if isinstance(pats, str) else list(pats)
        if self.p["file"]:
            pats += read_list_file(self.p["file"], self.base_dir, "file")
        if not pats:
            raise CheckError("no patterns: set patterns or file", "patterns")
        for p in pats:
            if not isinstance(p, str):
                raise CheckError(f"patterns must be strings, got {p!r}", "patterns")
            compile_rust(p, "patterns")
        flag = "(?i)" if self.p["ignore_case"] else ""
        self.pattern = flag + "(?:" + "|".join(f"(?:{p})" for p in pats) + ")"
        compile_rust(self.pattern, "patterns")

    can_fix = True
    can_redact = True

    def _text(self, s: pl.Series) -> pl.Series:
        t = filled(s)
        return t.str.replace_all(FENCED_CODE, "") if self.p["ignore_code"] else t

    def detect(self, s: pl.Series) -> pl.Series:
        m = self._text(s).str.contains(self.pattern)
        return as_bool((~m if self.p["mode"] == "allow" else m) & s.is_not_null())

    def explain_batch(self, texts: list[str]) -> list[Hit | None]:
        if self.p["mode"] == "allow":
            return [Hit("matches none of the allowed patterns", 0, len(t)) for t in texts]
        stripped = self._text(pl.Series(texts, dtype=pl.Utf8)).to_list()
        out: list[Hit | None] = []
        for text, span in zip(texts, rust_spans(stripped, self.pattern), strict=True):
            if span is None:
                out.append(None)
                continue
            i = text.find(span[2])
            out.append(
                Hit(f"matches {span[2][:40]!r}", i, i + len(span[2]), excerpt(text, i, i + len(span[2])))
            )
        return out

    def fix(self, s: pl.Series) -> pl.Series:
        return s.str.replace_all(self.pattern, self.p["replacement"])

    def redact(self, s: pl.Series, placeholder: str):
        n = int(s.str.count_matches(self.pattern).fill_null(0).sum())
        return s.str.replace_all(
            self.pattern, self.p["replacement"] or placeholder.format(type="match", TYPE="MATCH")
        ), Counter({"match": n})


class Keywords(Check):
    name = "keywords"
    help = "Literal words or phrases (Aho-Corasick), as a block list or an allow list."
    params = {
        "words": Param((list,), [], "Words or phrases; any occurrence counts."),
        "file": Param((str,), None, "A file with one word per line (relative to the YAML file)."),
        "ignore_case": Param((bool,), True, "ASCII case-insensitive matching."),
        "mode": _mode_param(),
        "position": Param(
            (str,),
            "anywhere",
            "anywhere, or start: only within the first `within` characters.",
            ("anywhere", "start"),
        ),
        "within": Param((int,), 30, "With position: start, how many leading characters are searched."),
    }

    def prepare(self) -> None:
        words = [str(w) for w in self.p["words"]]
        if self.p["file"]:
            words += read_list_file(self.p["file"], self.base_dir, "file")
        words = [w for w in words if w]
        if not words:
            raise CheckError("no words: set words or file", "words")
        self.words = words

    def _text(self, s: pl.Series) -> pl.Series:
        t = filled(s)
        if self.p["position"] == "start":
            t = t.str.replace(_LEAD, "").str.slice(0, self.p["within"])
        return t

    def detect(self, s: pl.Series) -> pl.Series:
        m = self._text(s).str.contains_any(self.words, ascii_case_insensitive=self.p["ignore_case"])
        return as_bool((~m if self.p["mode"] == "allow" else m) & s.is_not_null())

    def explain(self, text: str) -> Hit | None:
        if self.p["mode"] == "allow":
            return Hit("contains none of the required words", 0, len(text))
        limit = len(text)
        if self.p["position"] == "start":
            lead = len(text) - len(re.sub(r"^[\W_]*", "", text))
            limit = lead + self.p["within"]
        span = literal_span(text[:limit], self.words, self.p["ignore_case"])
        if span is None:
            return None
        where = "opens with" if self.p["position"] == "start" else "contains"
        return Hit(f"{where} {span[2]!r}", span[0], span[1], span[2])


class Phrases(Keywords):
    """Boilerplate openers and refusals: ``keywords`` plus regex patterns, at the start by default."""

    name = "phrases"
    help = "Boilerplate openers / refusals ('作为一个AI语言模型', 'As an AI language model', '作为律师，我')."
    default_fields = ("answer", "chosen")
    params = {
        **Keywords.params,
        "words": Param((list,), [], "Literal phrases."),
        "patterns": Param((list,), [], "Regex phrases (Rust syntax), e.g. '作为一?[名个位]?律师[，,]'."),
        "position": Keywords.params["position"].__class__(
            (str,),
            "start",
            "start: only within the first `within` characters; or anywhere.",
            ("anywhere", "start"),
        ),
        "within": Param((int,), 40, "With position: start, how many leading characters are searched."),
        "fix_scope": Param(
            (str,),
            "clause",
            "For action fix: clause removes the phrase and the rest of its clause; match replaces only "
            "the matched text with `replacement` (which may name a group: '${pronoun}').",
            ("clause", "match"),
        ),
        "replacement": Param((str,), "", "For action fix with fix_scope: match, what a match becomes."),
    }

    def prepare(self) -> None:
        self.words = [str(w) for w in self.p["words"] if str(w)]
        if self.p["file"]:
            self.words += read_list_file(self.p["file"], self.base_dir, "file")
        for p in self.p["patterns"]:
            compile_rust(p, "patterns")
        if not self.words and not self.p["patterns"]:
            raise CheckError("no phrases: set words, patterns or file", "words")
        flag = "(?i)" if self.p["ignore_case"] else ""
        alts = [re.escape(w) for w in self.words] + list(self.p["patterns"])
        self.pattern = flag + "(?:" + "|".join(f"(?:{a})" for a in alts) + ")"
        compile_rust(self.pattern, "patterns")

    def detect(self, s: pl.Series) -> pl.Series:
        t = self._text(s)
        m = (
            t.str.contains_any(self.words, ascii_case_insensitive=self.p["ignore_case"])
            if self.words
            else None
        )
        if self.p["patterns"]:
            flag = "(?i)" if self.p["ignore_case"] else ""
            r = t.str.contains(flag + "(?:" + "|".join(f"(?:{p})" for p in self.p["patterns"]) + ")")
            m = r if m is None else (m | r)
        return as_bool((~m if self.p["mode"] == "allow" else m) & s.is_not_null())

    def explain(self, text: str) -> Hit | None:
        return self.explain_batch([text])[0]

    def explain_batch(self, texts: list[str]) -> list[Hit | None]:
        heads = self._text(pl.Series(texts, dtype=pl.Utf8)).to_list()
        where = "opens with" if self.p["position"] == "start" else "contains"
        out: list[Hit | None] = []
        for text, span in zip(texts, rust_spans(heads, self.pattern), strict=True):
            if span is None:
                out.append(None)
                continue
            i = text.find(span[2])
            out.append(Hit(f"{where} {span[2]!r}", i, i + len(span[2]), span[2]))
        return out

    can_fix = True

    def fix(self, s: pl.Series) -> pl.Series:
        """Action fix: remove the phrase and the rest of its clause (up to the first ，,。.:： or newline,
        or the end of the text). With ``position: start`` only an opener is removed; with
        ``anywhere`` every occurrence. With ``fix_scope: match`` only the matched text is replaced (by
        ``replacement``): '作为律师，我认为…' -> '我认为…', nothing after the opener is lost."""
        if self.p["fix_scope"] == "match":
            rep = self.p["replacement"].replace("$", "$$").replace("$${", "${")  # only ${name} expands
            if self.p["position"] == "start":
                lead = _LEAD.removeprefix("^") + f".{{0,{max(self.p['within'] - 1, 0)}}}?"
                return s.str.replace(f"^(?P<tamis_lead>{lead})(?:{self.pattern})", "${tamis_lead}" + rep)
            return s.str.replace_all(self.pattern, rep)
        clause = "(?:" + self.pattern + r")[^，,。.:：\n]*(?:[，,。.:：\n]\s*|\z)"
        if self.p["position"] == "start":
            # the opener as detect sees it: it must start within the first `within` characters
            at_start = s.str.replace(_LEAD + clause, "")  # leading blanks and marks go too
            lead = _LEAD.removeprefix("^") + f".{{0,{max(self.p['within'] - 1, 0)}}}?"
            later = s.str.replace(f"^({lead}){clause}", "${1}")  # '您好！作为律师，…' keeps '您好！'
            return pl.select(
                pl.when(at_start != s).then(at_start).otherwise(later).alias(s.name or "")
            ).to_series()
        return s.str.replace_all(clause, "")


DEFAULT_NAMES = [
    "ChatGPT", "GPT-4", "GPT-4o", "GPT-3.5", "GPT-3", "OpenAI", "Claude", "Anthropic", "Bard", "Gemini",
    "LLaMA", "Llama", "文心一言", "ERNIE Bot", "通义千问", "Qwen", "讯飞星火", "ChatGLM", "Kimi", "DeepSeek",
]  # fmt: skip


class Identity(Check):
    name = "identity"
    help = (
        "The answer claims to be another model or made by another lab ('我是ChatGPT', 'trained by OpenAI')."
    )
    default_fields = ("answer", "chosen")
    params = {
        "names": Param((list,), DEFAULT_NAMES, "Model and organisation names that must not be claimed."),
        "allow": Param((list,), [], "Names your own model may claim (removed from names)."),
        "claims": Param(
            (list,),
            [
                # "I am / my name is <name>" followed by the end of the claim, not "I'm a ChatGPT power user"
                r"\b(?:I am|I'm|I was|I've been|my name is)\s+(?:an?\s+)?(?:AI\s+)?(?:language\s+model\s+)?"
                r"(?:called\s+|named\s+)?{name}\s*(?:[\d.]+\s*)?(?:[,.;:!?()\n]|\z|\s+(?:and|a|an|the|by|"
                r"from|made|created|developed|trained|built|designed|model|assistant|AI|chatbot|here|version|"
                r"who|which|that)\b)",
                # "I am / I was (an AI assistant) trained by <name>"; not "I use GPT-4, which was developed by"
                r"\b(?:I am|I'm|I was|I've been|I have been)[\s,]+(?:(?:an?|the|just|only|simply|originally|"
                r"large|AI|artificial|intelligence|language|model|assistant|chatbot|chat|bot|virtual|"
                r"conversational|helpful|digital)[\s,]+){{0,6}}(?:trained|developed|created|built|made|designed|"
                r"programmed)\s+by\s+(?:the\s+)?(?:team\s+at\s+)?{name}",
                r"\b{name}\s+(?:trained|developed|created|built|made|designed|programmed)\s+me\b",
                r"\bas an? (?:large\s+)?(?:language model|AI(?: assistant| model)?|assistant)\s+(?:trained|developed|created|made|built)\s+by\s+{name}",
                # 我是<name>, then the end of the claim: not 我是ChatGPT的重度用户
                r"(?:我是|我叫|我名叫|我的名字是|本人是)\s*(?:一个|一款|一种)?\s*(?:名为|叫做?)?\s*{name}\s*"
                r"(?:[\d.]+\s*)?(?:[，,。.!！?？、：:；;（(\n]|\z|助手|模型|人工智能|AI|语言模型|聊天机器人|智能)",
                r"我(?:是|乃|由|被)\s*(?:一个|一款|一种|一名)?\s*(?:(?:大型|人工智能|AI|语言|模型|助手|聊天机器人)\s*){{0,4}}"
                r"(?:由|被)?\s*{name}\s*(?:公司|团队)?\s*(?:开发|训练|创建|研发|打造|推出)",
                r"作为\s*{name}\s*(?:[\d.]+\s*)?(?:模型|助手)?\s*[，,]\s*我",
                r"作为(?:一个|一款|一种|一名)?\s*(?:由\s*)?{name}\s*(?:公司|团队)?\s*(?:开发|训练|创建|创造|研发|打造)的",
            ],
            "Claim patterns; {name} is replaced by the alternation of names.",
        ),
    }

    def prepare(self) -> None:
        allow = {a.lower() for a in self.p["allow"]}
        names = [n for n in self.p["names"] if n.lower() not in allow]
        if not names:
            raise CheckError("every name is allowed; nothing to look for", "names")
        alt = "(?:" + "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True)) + ")"
        try:
            parts = [c.format(name=alt) for c in self.p["claims"]]
        except (KeyError, IndexError, ValueError) as exc:
            raise CheckError(
                f"bad claim pattern: {exc}; use {{name}} for the names, {{{{ }}}} for braces", "claims"
            ) from exc
        self.pattern = "(?i)(?:" + "|".join(f"(?:{p})" for p in parts) + ")"
        compile_rust(self.pattern, "claims")
        self.names = names

    def detect(self, s: pl.Series) -> pl.Series:
        t = filled(s)
        pre = t.str.contains_any(self.names, ascii_case_insensitive=True)
        out = pl.Series([False] * len(s))
        idx = pre.arg_true()
        if len(idx):
            out = out.scatter(idx, t.gather(idx).str.contains(self.pattern))
        return as_bool(out)

    # what a claim pattern matches after the name to end the claim; not part of the reported span
    _CLAIM_END = re.compile(
        r"(?:\s*[,.;:!?()\n，。！？、：；（]|\s+(?:and|a|an|the|by|from|made|created|developed|trained|built|"
        r"designed|model|assistant|AI|chatbot|here|version|who|which|that))\Z",
        re.I,
    )

    def explain_batch(self, texts: list[str]) -> list[Hit | None]:
        out: list[Hit | None] = []
        for sp in rust_spans(texts, self.pattern):
            if sp is None:
                out.append(None)
                continue
            claim = self._CLAIM_END.sub("", sp[2]) or sp[2]
            out.append(Hit(f"claims another identity: {claim!r}", sp[0], sp[0] + len(claim), claim))
        return out


class Placeholder(Check):
    name = "placeholder"
    help = "Leftover template placeholders and special tokens ({{name}}, <unk>, [INSERT ...], <|im_end|>)."
    default_fields = ("question", "answer", "chosen", "system")
    params = {
        "patterns": Param(
            (list,),
            [
                r"\{\{\s*[\w.\-\s]{1,40}\}\}",
                r"<unk>|<pad>|<mask>|\[UNK\]|\[PAD\]|\[MASK\]|\[CLS\]|\[SEP\]|</?s>",
                r"<\|(?:im_start|im_end|endoftext|eot_id|begin_of_text|end_of_text|start_header_id|end_header_id)\|>",
                r"\[(?:INSERT|YOUR|PLACEHOLDER|填写|此处|请填写|插入)[^\]\n]{0,40}\]",
                r"(?i)\b(?:lorem ipsum)\b",
                r"【(?:此处|请填写|插入)[^】\n]{0,20}】",
            ],
            "Patterns (Rust syntax) of leftover template syntax.",
        ),
        "ignore_code": Param(
            (bool,), True, "Do not look inside ``` fenced code (templates are legitimate code)."
        ),
    }

    def prepare(self) -> None:
        for p in self.p["patterns"]:
            compile_rust(p, "patterns")
        self.pattern = "(?:" + "|".join(f"(?:{p})" for p in self.p["patterns"]) + ")"

    def _text(self, s: pl.Series) -> pl.Series:
        t = filled(s)
        if self.p["ignore_code"]:
            t = t.str.replace_all(FENCED_CODE, "").str.replace_all(r"`[^`\n]+`", "")
        return t

    def detect(self, s: pl.Series) -> pl.Series:
        raw = filled(s).str.contains(self.pattern)
        idx = raw.arg_true()  # code is stripped only where the raw text matches at all
        if self.p["ignore_code"] and len(idx):
            raw = raw.scatter(idx, self._text(s.gather(idx)).str.contains(self.pattern))
        return as_bool(raw)

    def explain_batch(self, texts: list[str]) -> list[Hit | None]:
        stripped = self._text(pl.Series(texts, dtype=pl.Utf8)).to_list()
        out: list[Hit | None] = []
        for text, span in zip(texts, rust_spans(stripped, self.pattern), strict=True):
            if span is None:
                out.append(None)
                continue
            i = text.find(span[2])
            out.append(Hit(f"leftover placeholder {span[2]!r}", i, i + len(span[2]), span[2]))
        return out
