"""Form problems: answer copying the question, truncated answers, unbalanced code fences, leftover
HTML, mojibake, messy whitespace."""

from __future__ import annotations

import html as html_lib
import re
from typing import Any

import polars as pl

from curate.rules.checks.base import FENCED_CODE, Check, Hit, Param, as_bool, excerpt, filled, rust_spans

_NORM_DROP = r"[\s\p{P}\p{S}]+"
FENCE_LINE = r"(?m)^[ \t]*(?:```|~~~)"


def _open_fence(t: pl.Series) -> pl.Series:
    """An odd number of fence lines; the regex only runs on texts that contain a fence at all."""
    has = t.str.contains("```", literal=True) | t.str.contains("~~~", literal=True)
    out = pl.Series([False] * len(t))
    idx = has.arg_true()
    if len(idx):
        out = out.scatter(idx, (t.gather(idx).str.count_matches(FENCE_LINE) % 2) == 1)
    return out


def _norm(s: pl.Series) -> pl.Series:
    return filled(s).str.to_lowercase().str.replace_all(_NORM_DROP, "")


class Copy(Check):
    name = "copy"
    help = "The answer equals the question, repeats it with little added, or is a piece of it."
    default_fields = ("question", "answer")
    row_level = True
    params = {
        "min_new_chars": Param(
            (int,), 5, "An answer that starts with the question must add at least this many characters."
        ),
        "min_piece_chars": Param(
            (int,), 8, "An answer contained in the question fires only from this length..."
        ),
        "min_piece_share": Param(
            (float, int),
            0.8,
            "...and when it is at least this share of the question (extraction tasks answer with a small piece).",
        ),
        "answer_fields": Param(
            (list,), ["answer", "chosen"], "Which answer fields are compared with the question."
        ),
        "compare_to": Param(
            (str,),
            "question",
            "The field the answers are compared with (e.g. chosen, to catch rejected == chosen pairs).",
            ("question", "system", "chosen", "rejected", "answer"),
        ),
    }

    def _fired(self, frame: pl.DataFrame, field: str) -> pl.Series:
        q, a = _norm(frame[self.p["compare_to"]]), _norm(frame[field])
        present = (
            frame[self.p["compare_to"]].is_not_null() & frame[field].is_not_null() & (a.str.len_chars() > 0)
        )
        equal = q == a
        qlen, alen = q.str.len_chars(), a.str.len_chars()
        starts = (
            pl.DataFrame({"q": q, "a": a})
            .select(pl.col("a").str.starts_with(pl.col("q")) & (pl.col("q").str.len_chars() > 0))
            .to_series()
        )
        inside = (
            pl.DataFrame({"q": q, "a": a})
            .select(pl.col("q").str.contains(pl.col("a"), literal=True))
            .to_series()
        )
        fired = (
            equal
            | (starts & (alen - qlen < self.p["min_new_chars"]))
            | (inside & (alen >= self.p["min_piece_chars"]) & (alen >= self.p["min_piece_share"] * qlen))
        )
        return as_bool(fired & present)

    def detect_rows(self, frame: pl.DataFrame) -> pl.Series:
        out = pl.Series([False] * frame.height)
        qlen = filled(frame[self.p["compare_to"]]).str.len_chars()
        for f in self.p["answer_fields"]:
            if f not in frame.columns or frame[f].null_count() == frame.height:
                continue
            # an answer much longer than the question can neither equal it, nor repeat it with
            # almost nothing added, nor be a piece of it: only shorter ones are normalised and compared
            cand = (filled(frame[f]).str.len_chars() <= qlen * 2 + 100).arg_true()
            if len(cand):
                out = out.scatter(
                    cand, out.gather(cand) | self._fired(frame[[*{self.p["compare_to"], f}]].gather(cand), f)
                )
        return as_bool(out)

    def explain_rows(self, frame: pl.DataFrame) -> list[tuple[str, Hit] | None]:
        out: list[tuple[str, Hit] | None] = [None] * frame.height
        for f in self.p["answer_fields"]:
            if f not in frame.columns:
                continue
            fired = self._fired(frame, f).to_list()
            qn, an = _norm(frame[self.p["compare_to"]]).to_list(), _norm(frame[f]).to_list()
            raw = frame[f].to_list()
            for i in range(frame.height):
                if out[i] is None and fired[i]:
                    why = (
                        f"{f} equals the {self.p['compare_to']}"
                        if qn[i] == an[i]
                        else (
                            f"{f} repeats the {self.p['compare_to']} and adds almost nothing"
                            if an[i].startswith(qn[i])
                            else f"{f} is a piece of the {self.p['compare_to']}"
                        )
                    )
                    out[i] = (f, Hit(why, 0, len(raw[i]), excerpt(raw[i], 0, len(raw[i]))))
        return out

    def explain_row(self, row: dict[str, Any]) -> tuple[str, Hit] | None:
        for f in self.p["answer_fields"]:
            a = row.get(f)
            if a is None or row.get(self.p["compare_to"]) is None:
                continue
            one = pl.DataFrame({self.p["compare_to"]: [row[self.p["compare_to"]]], f: [a]})
            if self._fired(one, f)[0]:
                qn, an = _norm(one[self.p["compare_to"]])[0], _norm(one[f])[0]
                why = (
                    f"{f} equals the {self.p['compare_to']}"
                    if qn == an
                    else (
                        f"{f} repeats the {self.p['compare_to']} and adds almost nothing"
                        if an.startswith(qn)
                        else f"{f} is a piece of the {self.p['compare_to']}"
                    )
                )
                return f, Hit(why, 0, len(a), excerpt(a, 0, len(a)))
        return None


class Truncated(Check):
    name = "truncated"
    help = "The text stops mid-sentence or inside an unclosed code block."
    default_fields = ("answer", "chosen")
    params = {
        "min_chars": Param(
            (int,), 20, "Shorter texts are not judged (short answers often lack final punctuation)."
        ),
        "prose": Param(
            (bool,),
            False,
            "Also fire on prose cut mid-sentence: the last line (20+ characters, not a list item, table, "
            "heading or hashtag) ends in a letter without closing punctuation, while the text has "
            "sentence-ending punctuation elsewhere.",
        ),
        "strict": Param(
            (bool,),
            False,
            "false: only clear cut-offs (ends with a comma, conjunction-like dangling punctuation or inside "
            "an open code block); true: also any text without closing punctuation.",
        ),
    }
    DANGLING = r"[，,、；：:\-–—(（\[【《“‘]\s*\z"
    # Only words that cannot end a sentence. Single-character Chinese conjunctions (和 与 及 或) are left
    # out: they also end normal sentences (元素之和, 共同参与, 问题涉及). "a"/"an" count only in lower
    # case and not after a word or mark that makes them an option letter ("the answer is A", "选 a").
    DANGLING_WORD = (
        r"(?:(?i:\b(?:and|or|but|the|of|to|with|for|that|which|because|such as|including))|"
        r"\ban|\ba|(?:或者|但是|而且|因为|所以|以及|并且|如果|例如|比如|包括))\s*\z"
    )
    OPTION_LETTER = (
        r"(?:(?i:\b(?:is|are|was|be|answer|answers|option|options|choice|choose|chose|select|pick|letter|"
        r"grade|type|plan|part|section|appendix|step|item|class|group|vitamin|point|column|row|version))|"
        r"[:：(（\[\"'“‘=]|[\p{Han}])\s*an?\s*\z"
    )
    CLOSED = r"[。！？.!?…」』”’\"'）)\]】》>*`~|\p{So}\p{Sk}\d%]\s*\z|(?:```|~~~)\s*\z|https?://\S+\s*\z"

    def detect(self, s: pl.Series) -> pl.Series:
        full = filled(s)
        long = full.str.len_chars() >= self.p["min_chars"]
        open_fence = _open_fence(full)
        t = full.str.slice(-300).str.strip_chars_end().str.slice(-200)  # only the end matters below
        end = t.str.slice(-40)
        fired = end.str.contains(self.DANGLING) | self._dangling_word(end) | open_fence
        if self.p["prose"] and not self.p["strict"]:
            fired = fired | self._prose_cut(full, t)
        if self.p["strict"]:
            last_line = t.str.extract(r"([^\n]*)\z", 1)
            list_item = last_line.str.contains(r"^\s*(?:[-*+]|\d+[.)、])\s")
            fired = fired | (~t.str.contains(self.CLOSED) & ~list_item.fill_null(False))
        return as_bool(fired & long)

    def _dangling_word(self, end: pl.Series) -> pl.Series:
        fired = end.str.contains(self.DANGLING_WORD).fill_null(False)
        idx = fired.arg_true()  # few rows: the option-letter exception is only looked at there
        if len(idx):
            fired = fired.scatter(idx, ~end.gather(idx).str.contains(self.OPTION_LETTER).fill_null(False))
        return fired

    def _prose_cut(self, full: pl.Series, tail: pl.Series) -> pl.Series:
        last = tail.str.extract(r"([^\n]*)\z", 1).fill_null("")
        return (
            ~tail.str.contains(self.CLOSED)
            & ~last.str.contains(r"^\s*(?:[-*+#|>]|\d+[.)、])|#\S+\s*\z")
            & full.str.contains(r"[。！？!?]|[.](?:\s|$)")
            & (last.str.strip_chars().str.len_chars() >= 20)
            & tail.str.contains(r"\p{L}\s*\z")
        ).fill_null(False)

    def explain_batch(self, texts: list[str]) -> list[Hit | None]:
        s = pl.Series(texts, dtype=pl.Utf8)
        fence = ((s.str.count_matches(FENCE_LINE) % 2) == 1).to_list()
        tails = s.str.strip_chars_end().str.slice(-200)
        dangling = tails.str.contains(self.DANGLING).to_list()
        word = self._dangling_word(tails.str.slice(-40)).to_list()
        spans = rust_spans(texts, r"(?m)^[ \t]*(?:```|~~~)[^\n]*\n[\s\S]*\z")
        out: list[Hit | None] = []
        for text, f, d, w, span in zip(texts, fence, dangling, word, spans, strict=True):
            n = len(text.rstrip())
            tail = text[max(0, n - 40) : n]
            if f:
                st = span[0] if span else max(0, n - 40)
                out.append(
                    Hit("ends inside an unclosed code block", st, n, excerpt(text, max(st, n - 80), n))
                )
            elif d:
                out.append(Hit(f"ends mid-sentence with {text.rstrip()[-1]!r}", max(0, n - 40), n, tail))
            elif w:
                last = text.rstrip().split()[-1] if text.rstrip().split() else text.rstrip()[-2:]
                out.append(Hit(f"ends mid-sentence with {last[-10:]!r}", max(0, n - 40), n, tail))
            else:
                out.append(Hit("ends without closing punctuation", max(0, n - 40), n, tail))
        return out


class CodeFence(Check):
    name = "code_fence"
    help = "Unbalanced ``` code fences (an odd number of fence lines)."
    default_fields = ("question", "answer", "chosen")
    params: dict[str, Param] = {}
    can_fix = True

    def detect(self, s: pl.Series) -> pl.Series:
        return as_bool(_open_fence(filled(s)))

    def explain_batch(self, texts: list[str]) -> list[Hit | None]:
        spans = rust_spans(texts, r"(?m)^[ \t]*(?:```|~~~)[^\n]*\n?[^`]*\z")
        return [
            Hit("unclosed code fence", sp[0], sp[1], excerpt(t, sp[0], sp[1], 60))
            if sp
            else Hit("unbalanced code fences")
            for t, sp in zip(texts, spans, strict=True)
        ]

    def fix(self, s: pl.Series) -> pl.Series:
        """Close the last fence."""
        return s.str.strip_chars_end() + "\n```"


# a ~~~ fenced block (fence lines at the start of a line; '好的~~~' in prose is not a fence)
TILDE_FENCE = r"(?ms)^[ \t]*~~~.*?(?:^[ \t]*~~~[^\n]*|\z)"
# code that fixes leave alone, as one capturing group for re.split: ``` and ~~~ blocks (FENCE_PARTS),
# and also `inline code` spans (CODE_PARTS)
_FENCES = r"```[\s\S]*?(?:```|\Z)|(?m:^[ \t]*~~~[\s\S]*?(?:^[ \t]*~~~[^\n]*|\Z))"
FENCE_PARTS = re.compile(f"({_FENCES})")
CODE_PARTS = re.compile(f"({_FENCES}|`[^`\\n]+`)")

HTML_TAG = (
    r"(?i)</?(?:div|span|p|br|hr|a|img|table|thead|tbody|tr|td|th|ul|ol|li|strong|em|b|i|u|font|center|"
    r"h[1-6]|section|article|header|footer|nav|script|style|iframe|form|input|button|label|sup|sub)\b[^<>]{0,300}>"
    r"|&(?:nbsp|lt|gt|amp|quot|apos|ldquo|rdquo|mdash|hellip|#\d{2,5}|#x[0-9a-f]{2,4});|<!--[\s\S]{0,200}?-->"
)


class Html(Check):
    name = "html"
    help = "Leftover HTML tags or entities outside code (scraped pages, rich-text exports)."
    default_fields = ("question", "answer", "chosen")
    params = {"min_count": Param((int,), 2, "Fires from this many tags/entities outside code.")}
    can_fix = True

    def _outside_code(self, s: pl.Series) -> pl.Series:
        return (
            filled(s)
            .str.replace_all(FENCED_CODE, "")
            .str.replace_all(TILDE_FENCE, "")
            .str.replace_all(r"`[^`\n]+`", "")
        )

    def detect(self, s: pl.Series) -> pl.Series:
        return as_bool(self._outside_code(s).str.count_matches(HTML_TAG) >= self.p["min_count"])

    def explain_batch(self, texts: list[str]) -> list[Hit | None]:
        t = self._outside_code(pl.Series(texts, dtype=pl.Utf8))
        counts = t.str.count_matches(HTML_TAG).to_list()
        out: list[Hit | None] = []
        for text, n, span in zip(texts, counts, rust_spans(t.to_list(), HTML_TAG), strict=True):
            if span is None:
                out.append(None)
                continue
            i = text.find(span[2])
            out.append(
                Hit(f"{n} HTML tags/entities, first {span[2][:40]!r}", i, i + len(span[2]), span[2][:80])
            )
        return out

    def fix(self, s: pl.Series) -> pl.Series:
        """Line breaks for <br>/<p>/<li>, drop other tags, scripts and comments, unescape entities;
        code is left alone: ``` and ~~~ fenced blocks and inline `code` spans."""
        tag = re.compile(HTML_TAG.split("|&")[0])
        out = []
        for text in s.to_list():
            if text is None:
                out.append(None)
                continue
            parts = CODE_PARTS.split(text)
            for k in range(0, len(parts), 2):  # even parts are outside code
                part = re.sub(r"(?is)<script\b.*?</script>|<style\b.*?</style>|<!--.*?-->", "", parts[k])
                part = re.sub(r"(?i)<br\s*/?>|</p>|</div>|</li>|</tr>|</h[1-6]>", "\n", part)
                part = re.sub(r"(?i)<li\b[^>]*>", "- ", part)
                part = html_lib.unescape(tag.sub("", part))
                parts[k] = re.sub(r"\n{3,}", "\n\n", part)  # blank lines left by removed tags
            out.append("".join(parts))
        return pl.Series(out, dtype=pl.Utf8)


# UTF-8 read as Latin-1/cp1252 (Ã©, â€™, å¤§, ï¼Œ), GBK/UTF-8 confusion (锟斤拷, 烫烫烫), U+FFFD
MOJIBAKE = (
    r"[ÃÂ][\x{80}-\x{BF}\x{A0}-\x{FF}€‚ƒ„…†‡ˆ‰Š‹ŒŽ‘’“”•–—˜™š›œžŸ]|â€[™œ\x{9D}\x{A6}”“˜¦]|"
    r"[åæçèéä][\x{80}-\x{BF}¤¥¦§¨©ª«¬®¯°±²³´µ¶·¸¹º»¼½¾¿][\x{80}-\x{BF}¤¥¦§¨©ª«¬®¯°±²³´µ¶·¸¹º»¼½¾¿ ]|"
    r"ï¼[\x{80}-\x{BF}Œš›ˆ‰Ÿ]|锟斤拷|烫烫烫|屯屯屯|\x{FFFD}"
)


class Mojibake(Check):
    name = "mojibake"
    help = "Garbled encoding: UTF-8 decoded as Latin-1/cp1252 ('Ã©', 'å¤§'), '锟斤拷', U+FFFD."
    default_fields = ("question", "answer", "chosen", "system")
    params = {"min_count": Param((int,), 2, "Fires from this many garbled sequences.")}
    can_fix = True

    def detect(self, s: pl.Series) -> pl.Series:
        return as_bool(filled(s).str.count_matches(MOJIBAKE) >= self.p["min_count"])

    def explain_batch(self, texts: list[str]) -> list[Hit | None]:
        counts = pl.Series(texts, dtype=pl.Utf8).str.count_matches(MOJIBAKE).to_list()
        return [
            None
            if sp is None
            else Hit(f"{n} garbled sequences, first {sp[2]!r}", sp[0], sp[1], excerpt(t, sp[0], sp[0] + 20))
            for t, n, sp in zip(texts, counts, rust_spans(texts, MOJIBAKE), strict=True)
        ]

    def fix(self, s: pl.Series) -> pl.Series:
        """Repair the encoding only, with ftfy's ``fix_encoding`` (undoes UTF-8-as-Latin-1 and similar);
        unrepairable U+FFFD stays. ``ftfy.fix_text`` is not used: it would also turn full-width
        punctuation (，：（）！) into ASCII, straighten curly quotes and NFC-normalise the text."""
        import ftfy

        return pl.Series([None if t is None else ftfy.fix_encoding(t) for t in s.to_list()], dtype=pl.Utf8)


_TRAILING_BLANKS = re.compile(r"([^ \t\n]?)([ \t]+)\n(?=([^\n]*))")
_LEADING_BLANK_LINES = re.compile(r"\A(?:[ \t\u3000]*\n)+")
_LEADING_INDENT = re.compile(r"\A([ \u3000]{1,3})(?=\S)")


def _trailing_blanks(m: re.Match) -> str:
    prev, blanks, following = m.group(1), m.group(2), m.group(3)
    if prev and "\t" not in blanks and len(blanks) >= 2 and following.strip():
        return m.group(0)  # two or more spaces before a line break: a Markdown hard break, kept
    return prev + "\n"


class Whitespace(Check):
    name = "whitespace"
    help = (
        "Messy whitespace: leading/trailing blanks, zero-width characters, 3+ blank lines, trailing spaces."
    )
    default_fields = ("system", "question", "answer", "chosen", "rejected", "history")
    params: dict[str, Param] = {}
    can_fix = True
    # trailing blanks count unless they are a Markdown hard break (2+ spaces after text, more text next)
    MESSY = (
        r"^[\s\u3000]|[\s\u3000]\z|[\u200b\u200c\u200d\u2060\ufeff]|\n[ \t]*\n[ \t]*\n[ \t]*\n|\r\n?"
        r"|[ \t]*\t[ \t]*\n|(?m:^[ \t]+\n)|(?:^|[^ \t\n]) \n|[ \t]+\n[ \t]*(?:\n|\z)"
    )

    def detect(self, s: pl.Series) -> pl.Series:
        return as_bool(filled(s).str.contains(self.MESSY))

    def explain_batch(self, texts: list[str]) -> list[Hit | None]:
        return [
            None if sp is None else Hit("messy whitespace", sp[0], sp[1])
            for sp in rust_spans(texts, self.MESSY)
        ]

    def fix(self, s: pl.Series) -> pl.Series:
        """CRLF/CR to LF and zero-width characters removed everywhere; outside fenced code (``` and
        ~~~, left exactly as written), trailing blanks removed (Markdown hard breaks kept) and runs of 3+
        blank lines collapsed to one; leading blank lines and trailing whitespace of the text removed,
        and the first line's indentation only when it is 1-3 spaces (4+ spaces or a tab is code)."""
        out = []
        for text in s.to_list():
            if text is None:
                out.append(None)
                continue
            text = re.sub(r"\r\n?", "\n", text)
            text = re.sub(r"[\u200b\u200c\u200d\u2060\ufeff]", "", text)
            parts = FENCE_PARTS.split(text)
            for k in range(0, len(parts), 2):  # even parts are outside code
                part = _TRAILING_BLANKS.sub(_trailing_blanks, parts[k])
                parts[k] = re.sub(r"\n{4,}", "\n\n", part)
            text = "".join(parts)
            text = _LEADING_BLANK_LINES.sub("", text)
            text = _LEADING_INDENT.sub("", text).rstrip()
            out.append(text)
        return pl.Series(out, dtype=pl.Utf8)
