"""Pieces the augmenters share: language detection, template files, variant rows, text similarity.

Nothing here imports torch or transformers.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import polars as pl

from curate.core import vocab
from curate.core.errors import UsageError
from curate.io.formats import semantic_hints
from curate.records import CORE_COLUMNS, SCHEMA, normalise_text, record_id

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
LANGS = ("zh", "en")
# columns a variant keeps from its origin; every other extra column (scores, flags) describes the origin's
# content, not the variant's, so it is left empty on the variant (re-score variants to measure them)
INHERITED_EXTRA = ("split", "cluster")

# lang_of's threshold on vocab.han_share, lower than the statistics' 0.7: a Chinese question full of
# English terms still wants the Chinese templates, so a fifth of the units being Han is enough
ZH_TEMPLATE_SHARE = 0.2


class TemplateError(UsageError):
    """A prompt template that cannot be used (a user error: exit 2)."""


def lang_of(text: str | None) -> str:
    """``zh`` when Han characters make up at least a fifth of the units (:func:`curate.core.vocab.han_share`),
    else ``en``."""
    share = vocab.han_share(text) if text else None
    return "zh" if share is not None and share >= ZH_TEMPLATE_SHARE else "en"


def template_path(kind: str, lang: str, templates_dir: str | Path | None = None) -> Path:
    base = Path(templates_dir) if templates_dir else TEMPLATES_DIR
    path = base / f"{kind}_{lang}.txt"
    if not path.is_file():
        if templates_dir and (TEMPLATES_DIR / path.name).is_file():
            return TEMPLATES_DIR / path.name  # a user directory may override only some templates
        raise TemplateError(f"no {kind} template for language {lang!r}: {path} does not exist")
    return path


def read_lines_template(kind: str, lang: str, templates_dir: str | Path | None = None) -> list[str]:
    """One template per line; ``#`` comments and blank lines skipped; ``\\n`` becomes a newline."""
    path = template_path(kind, lang, templates_dir)
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        s = s.replace("\\n", "\n")
        if kind == "rephrase" and "{question}" not in s:
            raise TemplateError(f"{path}:{n}: a rephrase template must contain {{question}}")
        out.append(s)
    if not out:
        raise TemplateError(f"{path}: no templates in the file")
    return out


def read_prompt_template(kind: str, lang: str, templates_dir: str | Path | None = None) -> tuple[str, str]:
    """A prompt file with ``=== system ===`` and ``=== user ===`` parts -> (system, user)."""
    path = template_path(kind, lang, templates_dir)
    parts: dict[str, list[str]] = {}
    current = None
    for line in path.read_text(encoding="utf-8").splitlines():
        m = re.fullmatch(r"\s*===\s*(system|user)\s*===\s*", line)
        if m:
            current = m.group(1)
            parts[current] = []
            continue
        if current is None:
            if line.strip() and not line.lstrip().startswith("#"):
                raise TemplateError(f"{path}: text before '=== system ===' / '=== user ==='")
            continue
        parts[current].append(line)
    if "user" not in parts:
        raise TemplateError(f"{path}: no '=== user ===' section")
    user = "\n".join(parts["user"]).strip()
    if "{question}" not in user:
        raise TemplateError(f"{path}: the user section must contain {{question}}")
    return "\n".join(parts.get("system", [])).strip(), user


def fill(template: str, **values: str | None) -> str:
    """Replace ``{name}`` placeholders literally (answers may contain braces; no str.format)."""
    out = template
    for k, v in values.items():
        out = out.replace("{" + k + "}", "" if v is None else str(v))
    return out


def meta_dict(row: Mapping[str, Any]) -> dict[str, Any]:
    m = row.get("meta")
    if isinstance(m, str) and m:
        try:
            v = json.loads(m)
            return v if isinstance(v, dict) else {"_meta": v}
        except json.JSONDecodeError:
            return {"_meta": m}
    return dict(m) if isinstance(m, dict) else {}


# split values that mark a held-out row (``augment`` never uses them, ``export`` writes them to the eval file)
HELD_OUT = ("eval", "test", "validation", "dev")


def is_eval(row: Mapping[str, Any]) -> bool:
    """A held-out row: the ``split`` column (written by `curate select`), or ``meta.split`` when the
    column is absent or null, is eval/test/validation/dev (any case). One definition for `augment` and
    `export`; :func:`eval_mask` is its vectorised form."""
    s = row.get("split")
    if s is None:
        s = meta_dict(row).get("split")
    return str(s).lower() in HELD_OUT if s is not None else False


def eval_mask(frame: pl.DataFrame) -> pl.Series:
    """:func:`is_eval` for every row of ``frame`` at once (a boolean Series)."""
    if frame.height == 0:
        return pl.Series("is_eval", [], dtype=pl.Boolean)
    parts = []
    if "split" in frame.columns:
        col = frame["split"]
        if col.dtype == pl.Boolean:
            col = col.cast(pl.Utf8).str.to_lowercase()  # str(True).lower(), as is_eval reads it
        parts.append(pl.lit(col.cast(pl.Utf8, strict=False)))
    if "meta" in frame.columns and frame["meta"].dtype == pl.Utf8:
        parts.append(pl.col("meta").str.json_path_match("$.split"))
    if not parts:
        return pl.Series("is_eval", [False] * frame.height, dtype=pl.Boolean)
    split = pl.coalesce(parts) if len(parts) > 1 else parts[0]
    return frame.select(split.str.to_lowercase().is_in(list(HELD_OUT)).fill_null(False).alias("is_eval"))[
        "is_eval"
    ]


def is_variant(row: Mapping[str, Any]) -> bool:
    return bool(meta_dict(row).get("variant"))


def variant_row(row: Mapping[str, Any], variant: str, extra_meta: dict[str, Any] | None = None, **changes):
    """A new row derived from ``row``: content fields replaced by ``changes``, a fresh id, ``meta.variant``
    and ``meta.origin_id`` set, score columns emptied (they measured the origin)."""
    new = dict(row)
    new.update(changes)
    meta = meta_dict(row)
    # the origin's input shape no longer describes this row, but the roles of final turns it keeps (a tool
    # result, a function call) still do
    hints = semantic_hints(
        meta.pop("_fmt", None), question="question" not in changes, answer="answer" not in changes
    )
    if hints:
        meta["_fmt"] = hints
    meta["variant"] = variant
    meta["origin_id"] = row["id"]
    if extra_meta:
        meta.update(extra_meta)
    new["meta"] = json.dumps(meta, ensure_ascii=False, sort_keys=True, default=str)
    hist = new.get("history") or []
    new["id"] = record_id(
        new["kind"],
        system=new.get("system"),
        history=[(t["role"], t["content"]) for t in hist],
        question=new.get("question"),
        answer=new.get("answer"),
        chosen=new.get("chosen"),
        rejected=new.get("rejected"),
        label=new.get("label"),
        text=new.get("text"),
    )
    for k in list(new):
        if k not in CORE_COLUMNS and k not in INHERITED_EXTRA:
            new[k] = None
    return new


def rows_to_frame(rows: list[dict[str, Any]], like: pl.DataFrame) -> pl.DataFrame:
    """Rows (dicts with the columns of ``like``) -> a frame with ``like``'s schema."""
    if not rows:
        return like.head(0)
    schema = {c: like.schema[c] for c in like.columns}
    return pl.DataFrame([{c: r.get(c) for c in like.columns} for r in rows], schema=schema)


def norm_key(text: str | None) -> str:
    """Comparison key: NFKC, lower case, no whitespace or punctuation."""
    s = unicodedata.normalize("NFKC", normalise_text(text)).lower()
    return "".join(ch for ch in s if not (ch.isspace() or unicodedata.category(ch).startswith("P")))


def char_ngrams(text: str | None, n: int = 5) -> set[str]:
    s = norm_key(text)
    if len(s) < n:
        return {s} if s else set()
    return {s[i : i + n] for i in range(len(s) - n + 1)}


def containment(a: set[str], b: set[str]) -> float:
    """|a ∩ b| / min(|a|, |b|): 1.0 when one text is (nearly) inside the other."""
    if not a or not b:
        return 0.0
    return len(a & b) / min(len(a), len(b))


def jaccard(a: set[str], b: set[str]) -> float:
    if not a or not b:
        return 0.0
    return len(a & b) / len(a | b)


def first_occurrence(rows: list[dict[str, Any]]) -> list[bool]:
    """An exact duplicate (same id) is augmented once: its variants would be identical."""
    seen: set[str] = set()
    out = []
    for r in rows:
        out.append(r["id"] not in seen)
        seen.add(r["id"])
    return out


__all__ = [
    "first_occurrence",
    "LANGS",
    "SCHEMA",
    "TEMPLATES_DIR",
    "TemplateError",
    "char_ngrams",
    "containment",
    "HELD_OUT",
    "eval_mask",
    "fill",
    "is_eval",
    "is_variant",
    "jaccard",
    "lang_of",
    "meta_dict",
    "norm_key",
    "read_lines_template",
    "read_prompt_template",
    "rows_to_frame",
    "variant_row",
]
