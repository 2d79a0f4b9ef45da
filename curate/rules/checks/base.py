"""The contract every check implements, and the registry the YAML ``check:`` key names.

A check looks at one text field at a time (``detect`` over a polars Series, vectorised where the
check allows) or, when ``row_level`` is set, at several fields of a row (``detect_rows`` over the
frame). ``explain`` is called only for rows that fired, so it may be slow Python: it returns the
human reason and the character span (``start``, ``end`` in the field's text) that caused the hit.
Checks that can repair text implement ``fix``; checks that can blank out spans implement ``redact``.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import polars as pl

from curate.core import vocab

REGISTRY: dict[str, type[Check]] = {}

# Unicode classes shared by several checks. Polars (Rust regex) understands \p{...}; Python's `re`
# does not, so Python-side helpers use the explicit ranges below.
CJK_RANGES = vocab.HAN_CHARS  # zh detection and the cjk ratio count Han (kana: KANA_RE)
CJK_RE = f"[{CJK_RANGES}]"
KANA_RE = f"[{vocab.KANA_CHARS}]"  # Japanese: kana (with Han, see language.script_language)
HANGUL_RE = f"[{vocab.HANGUL_CHARS}]"  # Korean
FENCED_CODE = r"(?s)```.*?(?:```|\z)"  # Rust regex: a fenced block, or an unclosed one to the end


@dataclass
class Param:
    """One parameter of a check: its type(s), default and help; validated when a rule set loads."""

    types: tuple[type, ...]
    default: Any
    help: str
    choices: tuple[Any, ...] | None = None
    required: bool = False

    def type_name(self) -> str:
        names = {
            str: "string",
            int: "integer",
            float: "number",
            bool: "true/false",
            list: "list",
            dict: "mapping",
        }
        return " or ".join(names.get(t, t.__name__) for t in self.types) + (
            " or null" if self.default is None and not self.required else ""
        )


@dataclass
class Hit:
    """Why one rule fired on one field of one row: the reason and the span of text that caused it."""

    reason: str
    start: int | None = None
    end: int | None = None
    match: str | None = None  # the text of the span (never set for PII: values are not logged)


class CheckError(ValueError):
    """A rule's parameters are valid YAML but unusable (bad regex, missing file...)."""

    def __init__(self, message: str, param: str | None = None):
        super().__init__(message)
        self.param = param


class Check:
    name: ClassVar[str] = ""
    help: ClassVar[str] = ""
    params: ClassVar[dict[str, Param]] = {}
    default_fields: ClassVar[tuple[str, ...]] = ("question", "answer")
    row_level: ClassVar[bool] = False
    can_fix: ClassVar[bool] = False
    can_redact: ClassVar[bool] = False

    def __init__(self, params: dict[str, Any], base_dir: Path | None = None):
        self.p = {k: spec.default for k, spec in self.params.items()}
        self.p.update(params)
        self.base_dir = base_dir
        self.prepare()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.name:
            REGISTRY[cls.name] = cls

    # -- hooks -------------------------------------------------------------------------------------
    def prepare(self) -> None:
        """Compile patterns, read lists; raise CheckError naming the parameter when unusable."""

    def detect(self, s: pl.Series) -> pl.Series:
        raise NotImplementedError

    def explain(self, text: str) -> Hit | None:
        return (
            self.explain_batch([text])[0]
            if type(self).explain_batch is not Check.explain_batch
            else Hit(self.help)
        )

    def explain_batch(self, texts: list[str]) -> list[Hit | None]:
        """Explanations for many fired texts at once; checks whose explanation needs polars override
        this (one vectorised pass instead of one small frame per row)."""
        return [self.explain(t) for t in texts]

    def detect_rows(self, frame: pl.DataFrame) -> pl.Series:
        raise NotImplementedError

    def explain_row(self, row: dict[str, Any]) -> tuple[str, Hit] | None:
        """For row-level checks: (field, hit)."""
        return None

    def explain_rows(self, frame: pl.DataFrame) -> list[tuple[str, Hit] | None]:
        return [self.explain_row(r) for r in frame.iter_rows(named=True)]

    def fix(self, s: pl.Series) -> pl.Series:
        raise NotImplementedError

    def redact(self, s: pl.Series, placeholder: str) -> tuple[pl.Series, Counter]:
        raise NotImplementedError


# -- helpers shared by checks ----------------------------------------------------------------------
def filled(s: pl.Series) -> pl.Series:
    return s.cast(pl.Utf8).fill_null("")


def as_bool(s: pl.Series) -> pl.Series:
    return s.fill_null(False).cast(pl.Boolean)


def rust_span(text: str, pattern: str) -> tuple[int, int, str] | None:
    """Character span of the first match of a polars/Rust regex in ``text`` (for explanations)."""
    one = pl.Series([text])
    m = one.str.extract(pattern, 0)[0]
    if m is None:
        return None
    b = one.str.find(pattern)[0]
    start = len(text.encode("utf-8")[:b].decode("utf-8", "ignore")) if b is not None else text.find(m)
    return start, start + len(m), m


def rust_spans(texts: list[str], pattern: str) -> list[tuple[int, int, str] | None]:
    """Vectorised :func:`rust_span` over many texts."""
    if not texts:
        return []
    s = pl.Series(texts, dtype=pl.Utf8)
    starts = s.str.find(pattern).to_list()
    matches = s.str.extract(pattern, 0).to_list()
    out: list[tuple[int, int, str] | None] = []
    for t, b, m in zip(texts, starts, matches, strict=True):
        if m is None or b is None:
            out.append(None)
            continue
        c = len(t.encode("utf-8")[:b].decode("utf-8", "ignore"))
        out.append((c, c + len(m), m))
    return out


def literal_span(text: str, needles: list[str], ignore_case: bool) -> tuple[int, int, str] | None:
    hay = text.lower() if ignore_case else text
    best = None
    for n in needles:
        i = hay.find(n.lower() if ignore_case else n)
        if i >= 0 and (best is None or i < best[0]):
            best = (i, i + len(n))
    if best is None:
        return None
    return best[0], best[1], text[best[0] : best[1]]


def excerpt(text: str, start: int, end: int, limit: int = 80) -> str:
    frag = text[start:end]
    return frag if len(frag) <= limit else frag[: limit - 1] + "…"


def read_list_file(path: str, base_dir: Path | None, param: str) -> list[str]:
    """One entry per line; blank lines and lines starting with # are skipped."""
    p = Path(path)
    if not p.is_absolute() and base_dir is not None:
        p = base_dir / p
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise CheckError(f"cannot read list file {p}: {exc.strerror or exc}", param) from exc
    return [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]


def compile_rust(pattern: str, param: str) -> str:
    """Validate a pattern with polars' regex engine (the one detect uses) and return it."""
    try:
        pl.Series([""]).str.contains(pattern)
    except Exception as exc:  # polars raises ComputeError with the regex parser's message
        msg = str(exc).strip().splitlines()
        raise CheckError(f"invalid regular expression {pattern!r}: {msg[-1] if msg else exc}", param) from exc
    return pattern


def python_regex(pattern: str, param: str, flags: int = 0) -> re.Pattern:
    try:
        return re.compile(pattern, flags)
    except re.error as exc:
        raise CheckError(f"invalid regular expression {pattern!r}: {exc}", param) from exc
