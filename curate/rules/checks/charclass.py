"""Character-class ratios: CJK, Latin, digits, punctuation, symbols, control, private-use."""

from __future__ import annotations

import polars as pl

from curate.rules.checks.base import CJK_RE, Check, CheckError, Hit, Param, as_bool, filled, rust_spans

CLASSES = {
    "cjk": CJK_RE,
    "latin": r"[A-Za-z\u00c0-\u024f]",
    "letter": r"\p{L}",
    "digit": r"\p{Nd}",
    "punct": r"\p{P}",
    "symbol": r"\p{S}",
    "control": r"[\p{Cc}--[\n\r\t]]",
    "private_use": r"[\p{Co}\p{Cn}]",
    "replacement": r"\x{FFFD}",
    "whitespace": r"\s",
}


class CharRatio(Check):
    name = "char_ratio"
    help = "Share of characters of a class outside [min, max] (share of non-whitespace characters)."
    params = {
        "classes": Param(
            (list, str),
            None,
            "One class or a list whose shares are summed: " + ", ".join(CLASSES) + ".",
            required=True,
        ),
        "min": Param((float, int), None, "A share below this fires."),
        "max": Param((float, int), None, "A share above this fires."),
        "min_chars": Param((int,), 1, "Texts shorter than this (non-whitespace characters) are skipped."),
    }

    def prepare(self) -> None:
        classes = self.p["classes"]
        if isinstance(classes, str):
            classes = [classes]
        unknown = [c for c in classes if c not in CLASSES]
        if unknown:
            raise CheckError(f"unknown class {unknown[0]!r}; choose from {', '.join(CLASSES)}", "classes")
        self.classes = classes
        self.pattern = "|".join(CLASSES[c] for c in classes)
        if self.p["min"] is None and self.p["max"] is None:
            raise CheckError("set min or max", "min")
        for k in ("min", "max"):
            if self.p[k] is not None and not 0 <= self.p[k] <= 1:
                raise CheckError(f"{k} must be a share between 0 and 1, got {self.p[k]}", k)

    def _share(self, s: pl.Series) -> tuple[pl.Series, pl.Series]:
        t = filled(s)
        total = t.str.len_chars() - t.str.count_matches(r"\s")
        share = t.str.count_matches(self.pattern) / total.cast(pl.Float64)
        return share, total

    def detect(self, s: pl.Series) -> pl.Series:
        share, total = self._share(s)
        fired = pl.Series([False] * len(s))
        if self.p["min"] is not None:
            fired = fired | (share < self.p["min"])
        if self.p["max"] is not None:
            fired = fired | (share > self.p["max"])
        return as_bool(fired & (total >= max(1, self.p["min_chars"])))

    def explain_batch(self, texts: list[str]) -> list[Hit | None]:
        shares = self._share(pl.Series(texts, dtype=pl.Utf8))[0].to_list()
        spans = rust_spans(texts, self.pattern)
        what = "+".join(self.classes)
        out: list[Hit | None] = []
        for text, share, span in zip(texts, shares, spans, strict=True):
            if share is None:
                out.append(None)
            elif self.p["max"] is not None and share > self.p["max"]:
                s, e = (span[0], span[1]) if span else (0, len(text))
                out.append(Hit(f"{what} share {share:.2f} > max {self.p['max']}", s, e, text[s:e]))
            else:
                out.append(Hit(f"{what} share {share:.2f} < min {self.p['min']}", 0, len(text)))
        return out

    can_fix = True

    def fix(self, s: pl.Series) -> pl.Series:
        """Remove the characters of the class (meant for control / private-use / replacement)."""
        return s.str.replace_all(self.pattern, "")
