"""Language identification by script (always available, vectorised), optionally by a fastText
language-id model (``lid.176.bin`` or any model with ``__label__xx`` labels), and the checks built on
it: a language allow list and a question/answer language mismatch."""

from __future__ import annotations

import re
from typing import Any

import polars as pl

from curate.rules.checks.base import (
    CJK_RE,
    FENCED_CODE,
    HANGUL_RE,
    KANA_RE,
    Check,
    CheckError,
    Hit,
    Param,
    as_bool,
    filled,
)

# unit counts per script: characters for scripts without spaces, words for the others
SCRIPTS = {
    "zh": CJK_RE,
    "ja": KANA_RE,
    "ko": HANGUL_RE,
    "en": r"[A-Za-z\u00c0-\u024f]+",
    "ru": r"\p{Cyrillic}+",
    "ar": r"\p{Arabic}+",
    "th": r"\p{Thai}",
    "hi": r"\p{Devanagari}+",
}
ISO3 = {"zho": "zh", "eng": "en", "jpn": "ja", "kor": "ko", "rus": "ru", "ara": "ar", "tha": "th", "hin": "hi",
        "fra": "fr", "deu": "de", "spa": "es", "por": "pt", "ita": "it", "vie": "vi", "yue": "zh", "wuu": "zh"}  # fmt: skip


def script_language(s: pl.Series, dominance: float = 0.7, head: int = 2000) -> pl.Series:
    """zh, ja, ko, en (Latin script), ru, ar, th, hi by the dominant script; ``mixed`` when no script
    has ``dominance`` of the units; ``other`` when there are no letters. Japanese is Han + kana with
    at least 10% kana. Code blocks are ignored; only the first ``head`` characters are read.

    Not :func:`curate.core.vocab.han_share`: that weighs Chinese against English only, this picks
    the dominant one of eight scripts (Han against kana decides Chinese or Japanese)."""
    t = filled(s).str.slice(0, head).str.replace_all(FENCED_CODE, " ")
    c = pl.DataFrame({k: t.str.count_matches(p).cast(pl.Float64) for k, p in SCRIPTS.items()})
    # Japanese text uses Han too: Han counts as Japanese when kana is at least 10% of Han + kana
    ja = (c["ja"] > 0) & (c["ja"] >= 0.1 * (c["ja"] + c["zh"]))
    c = c.with_columns(
        pl.when(ja).then(c["ja"] + c["zh"]).otherwise(c["ja"]).alias("ja"),
        pl.when(ja).then(0.0).otherwise(c["zh"]).alias("zh"),
        pl.col("th") / 4,  # Thai has no spaces: ~4 characters per word
    )
    total = c.sum_horizontal()
    top = c.max_horizontal()
    expr = pl.when(pl.lit(total) == 0).then(pl.lit("other"))
    for k in SCRIPTS:
        expr = expr.when((c[k] == top) & (top >= dominance * total)).then(pl.lit(k))
    return c.select(expr.otherwise(pl.lit("mixed")).alias("lang")).to_series()


_FT: dict[str, Any] = {}


def fasttext_language(s: pl.Series, model_path: str, min_confidence: float) -> pl.Series:
    """Language by a fastText LID model; rows under ``min_confidence`` fall back to the script."""
    if model_path not in _FT:
        try:
            import fasttext
        except ImportError as exc:  # pragma: no cover - fasttext-wheel is a dependency
            raise CheckError(
                "the fasttext package is not installed (pip install fasttext-wheel)", "model"
            ) from exc
        try:
            _FT[model_path] = fasttext.load_model(str(model_path))
        except (ValueError, OSError) as exc:
            raise CheckError(f"cannot load fastText model {model_path}: {exc}", "model") from exc
    model = _FT[model_path]
    script = script_language(s)
    out = []
    for text, fallback in zip(filled(s).to_list(), script.to_list(), strict=True):
        flat = re.sub(r"\s+", " ", text).strip()
        if not flat:
            out.append("other")
            continue
        # the low-level call: model.predict is broken with numpy 2 in fasttext-wheel 0.9.2
        pred = model.f.predict(flat, 1, 0.0, "strict")
        if not pred or pred[0][0] < min_confidence:
            out.append(fallback)
            continue
        lab = pred[0][1].replace("__label__", "")
        base = re.split(r"[-_]", lab)[0].lower()
        out.append(ISO3.get(base, base))
    return pl.Series("lang", out, dtype=pl.Utf8)


def identify(s: pl.Series, model: str | None = None, min_confidence: float = 0.5) -> pl.Series:
    return fasttext_language(s, model, min_confidence) if model else script_language(s)


def _lid_params() -> dict[str, Param]:
    return {
        "model": Param((str,), None, "Path to a fastText language-id model (.bin/.ftz); default: by script."),
        "min_confidence": Param(
            (float, int), 0.5, "fastText predictions below this fall back to the script."
        ),
        "min_chars": Param((int,), 10, "Texts shorter than this (without code) are not judged."),
    }


class Language(Check):
    name = "language"
    help = "The text's language is not in the allow list (script-based, or a fastText LID model)."
    default_fields = ("question", "answer")
    params = {
        "allow": Param((list,), ["zh", "en"], "Accepted languages; 'mixed' accepts mixed-script text."),
        **_lid_params(),
    }

    def prepare(self) -> None:
        if self.p["model"] and self.base_dir is not None and not re.match(r"^(/|~)", self.p["model"]):
            cand = self.base_dir / self.p["model"]
            if cand.exists():
                self.p["model"] = str(cand)

    def _langs(self, s: pl.Series) -> pl.Series:
        return identify(s, self.p["model"], self.p["min_confidence"])

    def detect(self, s: pl.Series) -> pl.Series:
        t = filled(s).str.slice(0, 2000)
        long = t.str.replace_all(FENCED_CODE, "").str.strip_chars().str.len_chars() >= self.p["min_chars"]
        idx = long.arg_true()
        out = pl.Series([False] * len(s))
        if len(idx):
            langs = self._langs(t.gather(idx))
            out = out.scatter(idx, ~langs.is_in(self.p["allow"]))
        return as_bool(out)

    def explain_batch(self, texts: list[str]) -> list[Hit | None]:
        langs = self._langs(pl.Series(texts, dtype=pl.Utf8).str.slice(0, 2000)).to_list()
        how = "fastText" if self.p["model"] else "script"
        return [
            Hit(f"language {lg} ({how}) not in {self.p['allow']}", 0, len(t), t[:60])
            for t, lg in zip(texts, langs, strict=True)
        ]


class LangMismatch(Check):
    name = "lang_mismatch"
    help = "The answer is in another language than the question (translation requests are exempt)."
    default_fields = ("question", "answer")
    row_level = True
    params = {
        **_lid_params(),
        "answer_fields": Param((list,), ["answer", "chosen"], "Answer fields compared with the question."),
        "exempt": Param(
            (list,),
            [
                "翻译",
                "译成",
                "译为",
                "英文",
                "英语",
                "中文",
                "汉语",
                "translat",
                "english",
                "chinese",
                "in japanese",
                "日语",
            ],
            "Questions containing any of these (case-insensitive) may be answered in another language.",
        ),
        "min_question_chars": Param((int,), 5, "Questions shorter than this (without code) are not judged."),
        "languages": Param(
            (list,),
            ["zh", "en", "ja", "ko", "ru"],
            "Only a pair of these definite languages counts as a mismatch.",
        ),
    }

    def _pair(
        self, frame: pl.DataFrame, field: str, qcache: dict | None = None
    ) -> tuple[pl.Series, pl.Series, pl.Series]:
        q, a = filled(frame["question"]).str.slice(0, 2000), filled(frame[field]).str.slice(0, 2000)
        ok = (
            q.str.replace_all(FENCED_CODE, "").str.strip_chars().str.len_chars()
            >= self.p["min_question_chars"]
        ) & (a.str.replace_all(FENCED_CODE, "").str.strip_chars().str.len_chars() >= self.p["min_chars"])
        ok = ok & ~q.str.contains_any(self.p["exempt"], ascii_case_insensitive=True)
        idx = ok.arg_true()
        ql = pl.Series([None] * len(q), dtype=pl.Utf8)
        al = pl.Series([None] * len(q), dtype=pl.Utf8)
        if len(idx):
            if qcache is None or "q" not in qcache:
                qall = (
                    identify(q, self.p["model"], self.p["min_confidence"])
                    if self.p["model"] is None
                    else None
                )
                if qcache is not None and qall is not None:
                    qcache["q"] = qall
            qall = qcache.get("q") if qcache else None
            ql = ql.scatter(
                idx,
                qall.gather(idx)
                if qall is not None
                else identify(q.gather(idx), self.p["model"], self.p["min_confidence"]),
            )
            al = al.scatter(idx, identify(a.gather(idx), self.p["model"], self.p["min_confidence"]))
        fired = ql.is_in(self.p["languages"]) & al.is_in(self.p["languages"]) & (ql != al)
        return as_bool(fired), ql, al

    def detect_rows(self, frame: pl.DataFrame) -> pl.Series:
        out = pl.Series([False] * frame.height)
        cache: dict = {}
        for f in self.p["answer_fields"]:
            if f in frame.columns and frame[f].null_count() < frame.height:
                out = out | self._pair(frame, f, cache)[0]
        return as_bool(out)

    def explain_rows(self, frame: pl.DataFrame) -> list[tuple[str, Hit] | None]:
        out: list[tuple[str, Hit] | None] = [None] * frame.height
        for f in self.p["answer_fields"]:
            if f not in frame.columns:
                continue
            fired, ql, al = self._pair(frame, f)
            texts = frame[f].to_list()
            for i, (x, q, a) in enumerate(zip(fired.to_list(), ql.to_list(), al.to_list(), strict=True)):
                if x and out[i] is None:
                    out[i] = (f, Hit(f"question is {q}, answer is {a}", 0, len(texts[i]), texts[i][:60]))
        return out

    def explain_row(self, row: dict[str, Any]) -> tuple[str, Hit] | None:
        for f in self.p["answer_fields"]:
            if row.get(f) is None or row.get("question") is None:
                continue
            fired, ql, al = self._pair(pl.DataFrame({"question": [row["question"]], f: [row[f]]}), f)
            if fired[0]:
                return f, Hit(f"question is {ql[0]}, answer is {al[0]}", 0, len(row[f]), row[f][:60])
        return None
