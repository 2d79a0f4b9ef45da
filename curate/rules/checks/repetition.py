"""Repetition in the Gopher / RefinedWeb style, and degenerate repeats of one character or phrase.

Tokens are CJK-aware: every CJK, kana or hangul character is one token (Chinese has no spaces), any
other run of letters or digits is one word. Gopher's thresholds (Rae et al. 2021, table A1) are the
defaults for Latin text; because one CJK character carries less than one English word, n-gram sizes
are doubled for texts that are mostly CJK (``cjk_ngram_scale``).
"""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
import polars as pl

from curate.core import vocab
from curate.rules.checks.base import Check, CheckError, Hit, Param, as_bool, excerpt, filled

_CJK_CHARS = vocab.CJK_CHARS + vocab.HANGUL_CHARS  # one token per CJK character or Hangul syllable
TOKEN = re.compile(rf"[{_CJK_CHARS}]|[^\W{_CJK_CHARS}]+")
_CJK_ONE = re.compile(rf"[{_CJK_CHARS}]")

GOPHER_TOP = {2: 0.20, 3: 0.18, 4: 0.16}
GOPHER_DUP = {5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10}


def _int_keys(d: dict, param: str) -> dict[int, float]:
    try:
        return {int(k): float(v) for k, v in d.items()}
    except (TypeError, ValueError) as exc:
        raise CheckError(f"{param} must map n-gram sizes to shares, e.g. {{2: 0.2}}", param) from exc


def _dup_units(units: list[str]) -> tuple[float, float, str | None]:
    """(fraction of units that repeat an earlier one, fraction of their characters, first repeat)."""
    if len(units) < 2:
        return 0.0, 0.0, None
    seen: set[str] = set()
    dup = dup_chars = 0
    first = None
    for u in units:
        if u in seen:
            dup += 1
            dup_chars += len(u)
            first = first or u
        else:
            seen.add(u)
    total_chars = sum(len(u) for u in units) or 1
    return dup / len(units), dup_chars / total_chars, first


def _token_string(text: str) -> tuple[str, list[int], float]:
    """The text as a string with one character per token (words mapped to private-use characters),
    each token's length in the original, and the share of CJK tokens."""
    tokens = TOKEN.findall(text)
    if not tokens:
        return "", [], 0.0
    ids: dict[str, str] = {}
    chars = []
    n_cjk = 0
    for t in tokens:
        if len(t) == 1 and _CJK_ONE.match(t):
            chars.append(t)
            n_cjk += 1
        else:
            c = ids.get(t)
            if c is None:
                c = ids[t] = chr(0xF0000 + len(ids))
            chars.append(c)
    return "".join(chars), [len(t) for t in tokens], n_cjk / len(tokens)


def repetition_stats(text: str, top: dict[int, float], dup: dict[int, float], scale: int) -> list[tuple]:
    """Every Gopher measure: (name, value, example). Example is the repeated line or n-gram."""
    out = []
    lines = [ln.strip() for ln in text.split("\n") if ln.strip()]
    paras = [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]
    lf, lcf, lex = _dup_units(lines)
    pf, pcf, pex = _dup_units(paras)
    out += [("dup_line_frac", lf, lex), ("dup_line_char_frac", lcf, lex)]
    out += [("dup_para_frac", pf, pex), ("dup_para_char_frac", pcf, pex)]
    ts, lens, cjk_share = _token_string(text)
    if not ts:
        return out
    k = scale if cjk_share >= 0.5 else 1
    total = sum(lens)
    uniform = cjk_share == 1.0  # every token is one character: n-gram length is n
    for n in top:
        m = n * k
        if len(ts) < m + 1:
            continue
        grams = Counter([ts[i : i + m] for i in range(len(ts) - m + 1)])
        gram, c = max(grams.items(), key=lambda kv: kv[1])
        if c > 1:
            i = ts.find(gram)
            glen = m if uniform else sum(lens[i : i + m])
            out.append((f"top_{n}gram_char_frac", c * glen / total, (i, m)))
    for n in dup:
        m = n * k
        if len(ts) < m + 1:
            continue
        grams = [ts[i : i + m] for i in range(len(ts) - m + 1)]
        counts = Counter(grams)
        if len(counts) == len(grams):
            out.append((f"dup_{n}gram_char_frac", 0.0, None))
            continue
        covered = bytearray(len(ts))
        ex = None
        for i, g in enumerate(grams):
            if counts[g] > 1:
                if ex is None:
                    ex = (i, m)
                covered[i : i + m] = b"\x01" * m
        if uniform:
            frac = covered.count(1) / total
        else:
            frac = sum(ln for ln, c in zip(lens, covered, strict=True) if c) / total
        out.append((f"dup_{n}gram_char_frac", frac, ex))
    return out


_NON_TOKEN = re.compile(r"\W+")
_HASH_COEFFS = None


def repeated_window_share(texts: list[str], window: int, budget: int = 4_000_000) -> list[float]:
    """For each text, the share of its token characters (the text without separators: what
    :data:`TOKEN` keeps) covered by some ``window``-character substring that occurs at least twice in
    it. Every character of a repeated token n-gram (n >= ``window``) lies in such a window, so this bounds
    each ``dup_{n}gram_char_frac`` from above: a text whose share is under a limit cannot exceed it.
    Vectorised with numpy (a random linear hash of every window, sorted once per chunk); hash
    collisions can only raise the share, never hide a repeat."""
    global _HASH_COEFFS
    if _HASH_COEFFS is None or len(_HASH_COEFFS) < window:
        rng = np.random.default_rng(20240613)
        _HASH_COEFFS = rng.integers(1, 2**63, size=max(window, 64), dtype=np.uint64) | np.uint64(1)
    coeffs = _HASH_COEFFS
    norm = [_NON_TOKEN.sub("", t) for t in texts]
    out = [0.0] * len(norm)
    start = 0
    while start < len(norm):
        stop, size = start, 0
        while stop < len(norm) and (size == 0 or size + len(norm[stop]) < budget):
            size += len(norm[stop]) + 1
            stop += 1
        part = norm[start:stop]
        lens = np.fromiter((len(t) for t in part), dtype=np.int64, count=len(part))
        a = np.frombuffer("\x00".join(part).encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
        n = a.size
        if n >= window:
            text_at = np.repeat(np.arange(len(part)), lens + 1)[:n]  # separators go with the text before
            w = n - window + 1
            valid = text_at[:w] == text_at[window - 1 :]  # the window lies inside one text
            valid &= a[window - 1 :] != 0  # ...and does not end on its separator (the only 0 code point)
            h = np.zeros(w, dtype=np.uint64)
            with np.errstate(over="ignore"):
                for j in range(window):
                    h += a[j : j + w] * coeffs[j]
                starts = np.flatnonzero(valid)
                key = h[starts] + text_at[starts].astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
            order = np.argsort(key)
            ks = key[order]
            same = ks[1:] == ks[:-1]
            dup = np.zeros(ks.size, dtype=bool)
            dup[1:] |= same
            dup[:-1] |= same
            rep_starts = starts[order[dup]]
            if rep_starts.size:
                diff = np.bincount(rep_starts, minlength=n + 1) - np.bincount(
                    rep_starts + window, minlength=n + 1
                )
                covered = np.cumsum(diff[:n]) > 0
                per_text = np.bincount(text_at[covered], minlength=len(part))
                for k in np.flatnonzero(per_text):
                    out[start + int(k)] = float(per_text[k]) / max(int(lens[k]), 1)
        start = stop
    return out


class Repetition(Check):
    name = "repetition"
    help = "Gopher/RefinedWeb repetition: duplicate lines/paragraphs, top n-gram share, duplicated n-grams."
    default_fields = ("answer",)
    params = {
        "min_chars": Param((int,), 200, "Shorter texts are skipped (the fractions are noise on short text)."),
        "max_chars": Param(
            (int,), 20000, "Only the first max_chars characters are measured (bounds the cost)."
        ),
        "dup_line_frac": Param((float, int), 0.30, "Max share of lines that repeat an earlier line."),
        "dup_line_char_frac": Param((float, int), 0.20, "Max share of characters in repeated lines."),
        "dup_para_frac": Param((float, int), 0.30, "Max share of paragraphs that repeat an earlier one."),
        "dup_para_char_frac": Param((float, int), 0.20, "Max share of characters in repeated paragraphs."),
        "top_ngram": Param(
            (dict,), dict(GOPHER_TOP), "n -> max character share of the most frequent n-gram."
        ),
        "dup_ngram": Param(
            (dict,), dict(GOPHER_DUP), "n -> max character share covered by repeated n-grams."
        ),
        "cjk_ngram_scale": Param(
            (int,), 2, "Multiply n by this for mostly-CJK text (characters are tokens)."
        ),
    }

    def prepare(self) -> None:
        self.top = _int_keys(self.p["top_ngram"], "top_ngram")
        self.dup = _int_keys(self.p["dup_ngram"], "dup_ngram")
        self.limits = {
            k: self.p[k]
            for k in ("dup_line_frac", "dup_line_char_frac", "dup_para_frac", "dup_para_char_frac")
        }
        self.limits.update({f"top_{n}gram_char_frac": v for n, v in self.top.items()})
        self.limits.update({f"dup_{n}gram_char_frac": v for n, v in self.dup.items()})

    def _violations(self, text: str) -> list[tuple]:
        stats = repetition_stats(text, self.top, self.dup, self.p["cjk_ngram_scale"])
        return [(name, v, self.limits[name], ex) for name, v, ex in stats if v > self.limits[name]]

    def detect(self, s: pl.Series) -> pl.Series:
        t = filled(s)
        cand = (t.str.len_chars() >= self.p["min_chars"]).arg_true().to_list()
        fired = [False] * len(s)
        texts = t.to_list()
        if cand and not self.top:
            # Without top-n-gram limits a row can only fire if a line (or paragraph) repeats, or if
            # repeated n-grams cover more than their limit. Both are ruled out cheaply, and soundly, for
            # most rows before the Python measures: duplicate lines by polars, n-gram coverage by
            # :func:`repeated_window_share` (an upper bound of every dup_ngram measure).
            sub = t.gather(cand).str.slice(0, self.p["max_chars"])
            lines = (
                sub.str.split("\n").list.eval(pl.element().str.strip_chars()).list.filter(pl.element() != "")
            )
            rep = (lines.list.len() > lines.list.unique().list.len()).fill_null(False).to_list()
            if self.dup:
                rest = [k for k, r in enumerate(rep) if not r]
                share = repeated_window_share(
                    [texts[cand[k]][: self.p["max_chars"]] for k in rest], min(self.dup)
                )
                limit = min(self.dup.values())
                for k, v in zip(rest, share, strict=True):
                    rep[k] = bool(v > limit)
            cand = [c for c, r in zip(cand, rep, strict=True) if r]
        cut = self.p["max_chars"]
        for i in cand:
            fired[i] = bool(self._violations(texts[i][:cut]))
        return as_bool(pl.Series(fired, dtype=pl.Boolean))

    def explain(self, text: str) -> Hit | None:
        text = text[: self.p["max_chars"]]
        v = self._violations(text)
        if not v:
            return None
        name, value, limit, ex = max(v, key=lambda x: x[1] - x[2])
        reason = f"{name} {value:.2f} > {limit}" + (f" (+{len(v) - 1} more)" if len(v) > 1 else "")
        if isinstance(ex, str):
            i = text.find(ex)
            return Hit(reason, i, i + len(ex), excerpt(text, i, i + len(ex)))
        if ex is not None:  # (first token index, n): map tokens back to character offsets
            spans = [m.span() for m in TOKEN.finditer(text)]
            i, m = ex
            s, e = spans[i][0], spans[min(i + m, len(spans)) - 1][1]
            return Hit(reason, s, e, excerpt(text, s, e))
        return Hit(reason)


def periodic_runs(texts: list[str], max_unit: int, repeats: int, chunk: int = 20000) -> list[int]:
    """Indices of texts holding some unit of 1..max_unit characters repeated ``repeats`` times back to
    back. Vectorised with numpy over code points: for each period L, a run of at least
    (repeats-1)*L positions where text[i] == text[i+L]. A unique negative sentinel between texts
    keeps runs from crossing rows. Exact candidates; the Python check then applies the thresholds."""
    out: list[int] = []
    for c0 in range(0, len(texts), chunk):
        part = texts[c0 : c0 + chunk]
        lens = np.fromiter((len(t) + 1 for t in part), dtype=np.int64, count=len(part))
        if lens.sum() == len(part):
            continue
        a = np.frombuffer("\x00".join(part).encode("utf-32-le") + b"\0\0\0\0", dtype=np.int32).copy()
        ends = np.cumsum(lens) - 1  # sentinel positions
        a[ends] = -(np.arange(len(part), dtype=np.int32) + 1)
        hit = np.zeros(len(part), dtype=bool)
        for L in range(1, max_unit + 1):
            k = (repeats - 1) * L  # the run needs text[i] == text[i+L] for k consecutive i
            if a.size <= L + k:
                break
            idx = np.flatnonzero(a[L:] == a[:-L])  # sparse in normal text
            if idx.size < k:
                continue
            brk = np.flatnonzero(np.diff(idx) != 1)
            first = np.concatenate(([0], brk + 1))
            last = np.concatenate((brk, [idx.size - 1]))
            long_runs = idx[first][(idx[last] - idx[first] + 1) >= k]
            if long_runs.size:
                hit[np.searchsorted(ends, long_runs, side="left")] = True
        out.extend((np.flatnonzero(hit) + c0).tolist())
    return out


class Degenerate(Check):
    name = "degenerate"
    help = "One character or phrase repeated over and over (a generation loop)."
    default_fields = ("answer",)
    params = {
        "max_unit": Param((int,), 40, "Longest repeated unit looked for, in characters."),
        "min_repeats": Param((int,), 8, "Back-to-back repeats needed..."),
        "min_share": Param((float, int), 0.3, "...and the run must cover at least this share of the text..."),
        "always_repeats": Param(
            (int,), 30, "...unless it repeats at least this many times (then any share)."
        ),
        "max_chars": Param(
            (int,), 20000, "Only the first max_chars characters are searched (bounds the cost)."
        ),
        "ignore": Param(
            (str,),
            r"[\s\-=_*.~#|+<>/\\·…—。，,:;!?！？～、：；]+",
            "Units made only of these characters are ignored (Markdown rules, ellipses, tables, "
            "emphatic punctuation such as '！！！！' or '～～～').",
        ),
    }

    def prepare(self) -> None:
        u = self.p["max_unit"]
        if u < 1:
            raise CheckError("max_unit must be at least 1", "max_unit")
        r = max(1, min(self.p["min_repeats"], self.p["always_repeats"]) - 1)
        self.re = re.compile(rf"(.{{1,{u}}}?)\1{{{r},}}", re.S)
        try:
            self.ignore = re.compile(self.p["ignore"])
        except re.error as exc:
            raise CheckError(f"invalid regular expression: {exc}", "ignore") from exc

    def _find(self, text: str) -> tuple[int, int, str, int] | None:
        pos = 0
        n = len(text)
        while True:
            m = self.re.search(text, pos)
            if m is None:
                return None
            unit = m.group(1)
            reps = (m.end() - m.start()) // len(unit)
            if not self.ignore.fullmatch(unit):
                share = (m.end() - m.start()) / max(n, 1)
                if reps >= self.p["always_repeats"] or (
                    reps >= self.p["min_repeats"] and share >= self.p["min_share"]
                ):
                    return m.start(), m.end(), unit, reps
            pos = max(m.end(), m.start() + 1)

    def detect(self, s: pl.Series) -> pl.Series:
        texts = filled(s).str.slice(0, self.p["max_chars"]).to_list()
        r = max(2, min(self.p["min_repeats"], self.p["always_repeats"]))
        cand = periodic_runs(texts, self.p["max_unit"], r)
        fired = [False] * len(texts)
        for i in cand:
            fired[i] = self._find(texts[i]) is not None
        return pl.Series(fired, dtype=pl.Boolean)

    def explain(self, text: str) -> Hit | None:
        f = self._find(text)
        if f is None:
            return None
        s, e, unit, reps = f
        return Hit(
            f"{unit!r} repeated {reps} times ({(e - s) / max(len(text), 1):.0%} of the text)",
            s,
            e,
            excerpt(text, s, e),
        )
