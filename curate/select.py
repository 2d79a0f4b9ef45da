"""The select stage: thresholds on score columns, a held-out eval split by near-duplicate cluster, and a
diverse, high-quality subset of a target size.

Order of work:

1. **Thresholds.** Paper defaults first (``defaults=True``): rows with ``ifd >= 1`` are dropped when an
   ``ifd`` column exists (Li et al. 2023, *From Quantity to Quality*: an IFD at or above 1 means the
   instruction does not help the model produce the answer). A row without an IFD value (plain text for
   continued pretraining, or a row the scorer could not measure) passes the default whatever
   ``missing`` says: the default judges instructions, not the absence of a score. Then ``where`` expressions
   (``"ifd < 1"``, ``"reward >= 0.2 and ppl < 80"``), ``min``/``max`` (``reward=0.2``) and quantiles
   (``min_quantile reward=0.25`` drops the bottom quarter). A row without a value for a column a
   threshold needs is dropped (``missing="drop"``, SQL semantics) or kept (``missing="keep"``).
2. **Eval split** (``eval_size``: a fraction below 1 or a row count). Rows are grouped into clusters of
   near-duplicates with the dedup engine (exact, MinHash at ``split_threshold`` Jaccard and embedding
   cosine >= ``split_semantic`` on the question), and whole clusters go to eval, so no near-duplicate
   of an eval row stays in train. Eval rows are kept with ``split = "eval"``; train rows get ``split =
   "train"``; both get ``cluster``.
3. **Diverse selection** (DEITA, Liu et al. 2024): train candidates sorted by ``by`` (default: the
   first of ``quality``, ``reward`` present; ``-ppl`` sorts ascending), each taken only when its
   embedding's cosine to every row already taken is below ``diversity``, until ``target`` rows;
   ``stratify`` (``source``, a column, or ``meta.KEY``) gives every stratum a share of the target
   proportional to its size (a share a stratum cannot fill goes to the others).

Scores from the shipped demo models on data that is not a shipped sample (the ``demo_scores`` column
that ``curate score`` writes, see :mod:`curate.score.demo`) decide nothing by default: the paper-default
IFD cut and the default ranking column skip them (``stats["demo_scores_ignored"]``) unless
``allow_demo_scores``; thresholds and ``by`` the user names explicitly still apply.

Every row not kept is in ``dropped`` with the reason (the threshold, the nearest selected row and its
cosine, "target reached"...).
"""

from __future__ import annotations

import json
import math
import operator
import random
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from curate.score.demo import demo_columns
from curate.stage import StageResult, empty_dropped, mark_dropped

STAGE = "select"
PAPER_DEFAULTS = (("ifd", "<", 1.0, "IFD >= 1: the instruction does not help (Li et al. 2023)"),)
QUALITY_COLUMNS = ("quality", "reward", "deita", "score")
TOO_SIMILAR = "select: too similar to a selected row"  # a near-duplicate of a row already taken
SAME_TEMPLATE = "select: same template as a selected row"  # close embeddings, different text
# character 5-gram Jaccard at or above which a "too similar" row is a near-duplicate rather than a row
# sharing a template (measured in bench/bench_select_templates.py)
NEAR_DUP_OVERLAP = 0.5
# the default cosine from which rows that only share a template are dropped too (measured in
# bench/bench_select_templates.py: on lawyer-llama's GPT-4 consultations 388 of 1,000 rows have a
# neighbour at cosine >= 0.9, every one of them a different answer from a shared template)
TEMPLATE_COSINE = 0.95
OPS: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "=": operator.eq,
    "!=": operator.ne,
}
_COND = re.compile(r"^\s*([A-Za-z_][\w.]*)\s*(<=|>=|==|!=|<|>|=)\s*([^<>=!\s].*?)\s*$")
_NULL = re.compile(r"^\s*([A-Za-z_][\w.]*)\s+is\s+(not\s+)?null\s*$", re.IGNORECASE)


class SelectError(ValueError):
    pass


@dataclass
class Condition:
    column: str
    op: str
    value: Any
    text: str
    # overrides the run's ``missing`` policy for this condition ("keep" or "drop"); None: the run's
    missing: str | None = None

    def mask(self, frame: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """(passes, missing) as boolean arrays."""
        values = column_values(frame, self.column)
        if self.op in ("is null", "is not null"):
            missing = np.array([v is None for v in values], dtype=bool)
            return (missing if self.op == "is null" else ~missing), np.zeros(len(values), dtype=bool)
        fn = OPS[self.op]
        passes = np.zeros(len(values), dtype=bool)
        missing = np.zeros(len(values), dtype=bool)
        for i, v in enumerate(values):
            if v is None or (isinstance(v, float) and math.isnan(v)):
                missing[i] = True
                continue
            try:
                passes[i] = bool(fn(v, self.value))
            except TypeError:
                passes[i] = bool(fn(str(v), str(self.value)))
        return passes, missing


def column_values(frame: pl.DataFrame, column: str) -> list[Any]:
    """A column, ``source`` (the file), or ``meta.KEY`` (a key of the meta JSON) as Python values."""
    if column in frame.columns:
        col = frame[column]
        if column == "source" and isinstance(col.dtype, pl.Struct):
            return col.struct.field("file").to_list()
        return col.to_list()
    key = column[5:] if column.startswith("meta.") else column
    metas = frame["meta"].to_list() if "meta" in frame.columns else []
    # a bare name falls back to a meta key (a raw file's "reward" field lands in meta when read)
    if column.startswith("meta.") or any(m and f'"{key}":' in m for m in metas):
        out = []
        for m in metas or [None] * frame.height:
            try:
                d = json.loads(m) if m else {}
            except json.JSONDecodeError:
                d = {}
            v = d.get(key) if isinstance(d, dict) else None
            out.append(v if not isinstance(v, dict | list) else json.dumps(v, ensure_ascii=False))
        return out
    raise SelectError(
        f"no column {column!r} in the data and no such key in meta (columns: {', '.join(frame.columns)})"
    )


def _literal(text: str) -> Any:
    t = text.strip()
    if len(t) >= 2 and t[0] == t[-1] and t[0] in "'\"":
        return t[1:-1]
    if t.lower() in ("true", "false"):
        return t.lower() == "true"
    try:
        return int(t)
    except ValueError:
        pass
    try:
        return float(t)
    except ValueError:
        return t


def parse_where(expr: str) -> list[Condition]:
    """``"ifd < 1 and reward >= 0.2"`` -> conditions (all must hold). Also ``col is [not] null``."""
    conds = []
    for part in re.split(r"\s+and\s+|\s*&&\s*|\s*,\s*", expr.strip(), flags=re.IGNORECASE):
        if not part:
            continue
        m = _NULL.match(part)
        if m:
            conds.append(
                Condition(m.group(1), "is not null" if m.group(2) else "is null", None, part.strip())
            )
            continue
        m = _COND.match(part)
        if not m:
            raise SelectError(
                f"--where {expr!r}: cannot read {part!r}; write COLUMN OP VALUE with OP one of "
                "< <= > >= == != (several joined by 'and'), or COLUMN is [not] null"
            )
        col, op, val = m.groups()
        conds.append(Condition(col, "==" if op == "=" else op, _literal(val), part.strip()))
    if not conds:
        raise SelectError(f"--where {expr!r}: empty expression")
    return conds


def parse_assign(item: str, what: str) -> tuple[str, float]:
    if "=" not in item:
        raise SelectError(f"--{what} {item!r}: expected COLUMN=VALUE")
    col, val = item.split("=", 1)
    try:
        return col.strip(), float(val)
    except ValueError:
        raise SelectError(f"--{what} {item!r}: {val!r} is not a number") from None


def _as_items(v: Any) -> tuple[str, ...]:
    if v is None:
        return ()
    if isinstance(v, str):
        return (v,)
    if isinstance(v, dict):
        return tuple(f"{k}={x}" for k, x in v.items())
    return tuple(str(x) for x in v)


@dataclass
class SelectConfig:
    # field metadata: the `curate select` options (curate.commands.generated)
    where: tuple[str, ...] = field(
        default=(),
        metadata={
            "split": False,
            "metavar": "EXPR",
            "help": 'Keep rows where EXPR holds, e.g. "ifd < 1", "reward >= 0.2 and ppl < 80", '
            '"meta.lang == zh", "quality is not null". Repeatable (all must hold).',
        },
    )
    min: tuple[str, ...] = field(
        default=(), metadata={"split": False, "metavar": "COL=VALUE", "help": "Keep rows with COL >= VALUE."}
    )
    max: tuple[str, ...] = field(
        default=(), metadata={"split": False, "metavar": "COL=VALUE", "help": "Keep rows with COL <= VALUE."}
    )
    min_quantile: tuple[str, ...] = field(
        default=(),
        metadata={
            "split": False,
            "metavar": "COL=Q",
            "help": "Drop rows below the Q quantile of COL (reward=0.25 drops the bottom quarter).",
        },
    )
    max_quantile: tuple[str, ...] = field(
        default=(),
        metadata={
            "split": False,
            "metavar": "COL=Q",
            "help": "Drop rows above the Q quantile of COL (e.g. ppl=0.95).",
        },
    )
    defaults: bool = field(
        default=True,
        metadata={
            "show_default": False,
            "help": "Apply the paper defaults (IFD >= 1 is dropped when an ifd column exists); "
            "--no-defaults: do not.",
        },
    )
    missing: str = field(
        default="drop",
        metadata={
            "choices": ("drop", "keep"),
            "help": "A row without a value in a column a threshold needs: drop it (SQL semantics) or keep it.",
        },
    )
    target: int | None = field(default=None, metadata={"help": "Select at most N training rows."})
    by: str | None = field(
        default=None,
        metadata={
            "metavar": "COL",
            "help": "Quality order for selection, best first (default: quality, else reward; -COL sorts "
            "ascending, e.g. -ppl).",
        },
    )
    diversity: float | str | None = field(
        default="auto",
        metadata={
            "type": "text",
            "help": "Skip a row whose embedding cosine to an already selected row is at least this (DEITA); "
            "auto = 0.9 when --target is given, off otherwise; 'off' disables.",
        },
    )
    # rows that only share a template (text overlap < NEAR_DUP_OVERLAP) are dropped from this cosine on;
    # auto: TEMPLATE_COSINE with the default --diversity, the same as an explicit --diversity; off: kept
    template_diversity: float | str | None = field(
        default="auto",
        metadata={
            "type": "text",
            "help": "Rows that only share a template with a selected row (text overlap < 0.5) are dropped "
            "from this cosine on: auto (0.95 with the default --diversity, else --diversity), off (kept), "
            "or a number.",
        },
    )
    stratify: str | None = field(
        default=None,
        metadata={
            "metavar": "COL",
            "help": "Give each stratum a proportional share of --target: source (file), a column, or meta.KEY.",
        },
    )
    eval_size: float | None = field(
        default=None,
        metadata={
            "type": "number",
            "help": "Hold out this fraction (0 < F < 1) or this number of rows (an integer >= 1, fewer than "
            "the rows) as eval, by whole near-duplicate clusters.",
        },
    )
    split_threshold: float = field(
        default=0.7,
        metadata={"help": "Eval split: questions with MinHash Jaccard at least this are one cluster."},
    )
    split_semantic: float | None = field(
        default=0.9,
        metadata={
            "type": "text",  # 'off' on the command line: curate.commands.select maps it to None
            "help": "Eval split: questions with embedding cosine at least this are one cluster ('off' to skip).",
        },
    )
    embed_model: str = field(default="use", metadata={"help": "use, minilm or a local model dir."})
    seed: int = field(default=0, metadata={"help": "Random seed of the eval split's cluster draw."})
    # use scores from the shipped demo models (``demo_scores`` column, see curate.score.demo) for the
    # paper-default IFD cut and the default quality ranking; off: those defaults skip demo scores
    allow_demo_scores: bool = field(
        default=False,
        metadata={
            "flag": True,
            "help": "Let scores from the shipped demo models (demo_scores column) drive the default IFD cut "
            "and the default ranking; without it those defaults skip demo scores on data that is not a "
            "shipped sample.",
        },
    )

    def __post_init__(self) -> None:
        for name in ("where", "min", "max", "min_quantile", "max_quantile"):
            setattr(self, name, _as_items(getattr(self, name)))
        if self.missing not in ("drop", "keep"):
            raise SelectError("missing must be 'drop' or 'keep'")
        if self.target is not None and self.target < 1:
            raise SelectError("--target must be at least 1")
        explicit = self.diversity not in ("auto", None)
        if self.diversity == "auto":
            self.diversity = 0.9 if self.target else None
        elif self.diversity in ("off", "none", "", 0):
            self.diversity = None
        if self.diversity is not None:
            try:
                self.diversity = float(self.diversity)
            except (TypeError, ValueError):
                raise SelectError(
                    f"--diversity {self.diversity!r}: expected auto, off or a cosine threshold in (0, 1]"
                ) from None
            if not 0 < self.diversity <= 1:
                raise SelectError("--diversity is a cosine threshold in (0, 1]")
        if self.template_diversity == "auto":
            # an explicit --diversity means what it says for every row; the default keeps template rows
            # up to the cosine measured on real sets
            self.template_diversity = self.diversity if explicit else TEMPLATE_COSINE
        elif self.template_diversity in ("off", "none", "", 0, None):
            self.template_diversity = None
        if self.template_diversity is not None:
            try:
                self.template_diversity = float(self.template_diversity)
            except (TypeError, ValueError):
                raise SelectError(
                    f"--template-diversity {self.template_diversity!r}: expected auto, off or a cosine in (0, 1]"
                ) from None
            if not 0 < self.template_diversity <= 1:
                raise SelectError("--template-diversity is a cosine threshold in (0, 1]")
        if self.eval_size is not None:
            # a fraction below 1, or a whole number of rows; 1.0 would be both "every row" and "one row"
            size = self.eval_size
            if isinstance(size, bool) or not isinstance(size, int | float) or size <= 0:
                raise SelectError("--eval-size must be a fraction in (0, 1) or a row count")
            if size >= 1 and isinstance(size, float) and (size == 1.0 or not size.is_integer()):
                raise SelectError(
                    f"--eval-size {size!r}: use an integer row count (2, 500) or a fraction < 1 (0.05)"
                )
        if not 0 < self.split_threshold <= 1:
            raise SelectError("--split-threshold must be in (0, 1]")
        for item in self.where:
            parse_where(item)
        for what in ("min", "max"):
            for item in getattr(self, what):
                parse_assign(item, what)
        for what in ("min_quantile", "max_quantile"):
            for item in getattr(self, what):
                _, q = parse_assign(item, what.replace("_", "-"))
                if not 0 <= q <= 1:
                    raise SelectError(f"--{what.replace('_', '-')} {item!r}: the quantile must be in [0, 1]")


# ---------------------------------------------------------------------------------------------------- steps


def threshold_conditions(frame: pl.DataFrame, config: SelectConfig) -> list[tuple[Condition, str]]:
    """Every threshold as (condition, label for the drop reason); quantiles become values here."""
    conds: list[tuple[Condition, str]] = []
    if config.defaults:
        demo = set() if config.allow_demo_scores else demo_columns(frame)
        for col, op, val, why in PAPER_DEFAULTS:
            if col in frame.columns and col not in demo:
                # only rows with a value are judged: plain text and unscored rows have no IFD
                cond = Condition(col, op, val, f"{col} {op} {val}", missing="keep")
                conds.append((cond, f"paper default: {why}"))
    for expr in config.where:
        for c in parse_where(expr):
            conds.append((c, f"where {c.text}"))
    for item in config.min:
        col, v = parse_assign(item, "min")
        conds.append((Condition(col, ">=", v, f"{col} >= {v}"), f"min {col}={v}"))
    for item in config.max:
        col, v = parse_assign(item, "max")
        conds.append((Condition(col, "<=", v, f"{col} <= {v}"), f"max {col}={v}"))
    for what, op in (("min_quantile", ">="), ("max_quantile", "<=")):
        for item in getattr(config, what):
            col, q = parse_assign(item, what)
            vals = np.array(
                [v for v in column_values(frame, col) if isinstance(v, int | float) and not math.isnan(v)],
                dtype=np.float64,
            )
            if not len(vals):
                raise SelectError(f"--{what.replace('_', '-')} {item}: column {col!r} has no numeric values")
            cut = float(np.quantile(vals, q))
            conds.append(
                (
                    Condition(col, op, cut, f"{col} {op} {cut:.6g}"),
                    f"{what.replace('_', ' ')} {col}={q} ({cut:.6g})",
                )
            )
    return conds


def _cluster_labels(
    frame: pl.DataFrame, config: SelectConfig, embedder, progress=None
) -> tuple[np.ndarray, dict]:
    """Near-duplicate clusters of the question (with earlier turns and system prompt).

    Textual: the dedup engine (exact + MinHash LSH at ``split_threshold``) over the question normalised
    hard (NFKC, lower case, no whitespace or punctuation) and spelled out one character per unit, so the
    shingles are character 5-grams: an inserted space or comma inside a word does not hide a copy.
    Semantic: every pair of question embeddings with cosine >= ``split_semantic``. Clusters are the
    connected components of both kinds of edges."""
    from curate.augment.common import norm_key
    from curate.dedup.cluster import components
    from curate.dedup.engine import DedupConfig
    from curate.dedup.engine import run as dedup_run

    n = frame.height
    texts = _prompt_texts(frame)
    spelled = [" ".join(norm_key(t)) for t in texts]
    tmp = frame.select("id").with_columns(
        pl.lit("sft").alias("kind"), pl.Series("question", spelled, dtype=pl.Utf8), pl.lit("").alias("answer")
    )
    dc = DedupConfig(methods=("exact", "minhash"), fields=("question",), threshold=config.split_threshold)
    res = dedup_run(tmp, dc)
    a, b = [], []
    for c in res.clusters:
        rows = [m["row"] for m in c["members"] if m.get("row") is not None]
        a += [rows[0]] * (len(rows) - 1)
        b += rows[1:]
    st: dict[str, Any] = {"text_pairs": len(a)}
    # a variant (curate augment) is one cluster with its origin, whatever its surface form
    first_of: dict[str, int] = {}
    for i, rid in enumerate(frame["id"].to_list()):
        first_of.setdefault(rid, i)
    linked = 0
    for i, m in enumerate(frame["meta"].to_list() if "meta" in frame.columns else []):
        if m and '"origin_id"' in m:
            try:
                origin = json.loads(m).get("origin_id")
            except (json.JSONDecodeError, AttributeError):
                continue
            if origin in first_of:
                a.append(first_of[origin])
                b.append(i)
                linked += 1
    st["variant_links"] = linked
    if config.split_semantic and n > 1:
        from curate.dedup.semantic import neighbour_pairs

        emb = embedder.encode(
            texts, progress=progress("select: embed questions", len(texts)) if progress else None
        )
        pairs, _ = neighbour_pairs(emb, emb, config.split_semantic)
        a += pairs[:, 0].tolist()
        b += pairs[:, 1].tolist()
        st["semantic_pairs"] = int(len(pairs))
    labels = components(n, np.array(a, dtype=np.int64), np.array(b, dtype=np.int64))
    st["multi_row_clusters"] = int(len(np.unique(labels[labels >= 0])))
    singles = labels < 0
    labels[singles] = labels.max(initial=-1) + 1 + np.arange(int(singles.sum()))
    st["clusters"] = int(len(np.unique(labels)))
    return labels, st


def _prompt_texts(frame: pl.DataFrame) -> list[str]:
    out = []
    for hist, q, t in zip(
        frame["history"].to_list(),
        frame["question"].to_list(),
        frame["text"].to_list(),
        strict=True,
    ):
        parts = [h["content"] or "" for h in hist or [] if h["role"] == "user"]
        parts.append(q if q is not None else (t or ""))
        out.append("\n".join(p for p in parts if p))
    return out


def eval_split(
    frame: pl.DataFrame, config: SelectConfig, embedder=None, progress=None
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """-> (is_eval mask, cluster labels, stats): whole clusters drawn at random until eval_size rows."""
    n = frame.height
    size = config.eval_size or 0
    want = int(round(size * n)) if size < 1 else int(size)
    want = min(want, n)
    labels, st = _cluster_labels(frame, config, embedder, progress)
    order = np.unique(labels)
    rng = random.Random(config.seed)
    order = order.tolist()
    rng.shuffle(order)
    counts = np.bincount(labels)
    is_eval = np.zeros(n, dtype=bool)
    got = 0
    for lab in order:
        if got >= want:
            break
        if got + counts[lab] > want and counts[lab] > 1 and got > 0:
            continue  # a big cluster would overshoot: try smaller ones
        is_eval[labels == lab] = True
        got += int(counts[lab])
    st.update({"eval_rows": int(is_eval.sum()), "eval_requested": want})
    return is_eval, labels, st


def _quality_order(
    frame: pl.DataFrame, by: str | None, skip: set[str] = frozenset()
) -> tuple[np.ndarray, str | None]:
    """Row order by ``by`` (or the first quality column present that is not in ``skip``), best first."""
    n = frame.height
    if by is None:
        by = next((c for c in QUALITY_COLUMNS if c in frame.columns and c not in skip), None)
        if by is None:
            return np.arange(n), None
    asc = by.startswith("-")
    col = by.lstrip("-+")
    vals = column_values(frame, col)
    arr = np.array(
        [float(v) if isinstance(v, int | float) and v is not None else np.nan for v in vals], dtype=np.float64
    )
    key = np.where(np.isnan(arr), np.inf, arr if asc else -arr)  # missing scores last
    return np.argsort(key, kind="stable"), by


def _quotas(strata: list[Any], target: int) -> dict[Any, int]:
    """Largest-remainder shares of ``target`` proportional to stratum sizes."""
    sizes: dict[Any, int] = {}
    for s in strata:
        sizes[s] = sizes.get(s, 0) + 1
    total = sum(sizes.values())
    exact = {s: target * c / total for s, c in sizes.items()}
    q = {s: min(sizes[s], int(math.floor(v))) for s, v in exact.items()}
    left = target - sum(q.values())
    for s in sorted(exact, key=lambda s: exact[s] - math.floor(exact[s]), reverse=True):
        if left <= 0:
            break
        if q[s] < sizes[s]:
            q[s] += 1
            left -= 1
    return q


def diverse_take(
    emb: np.ndarray | None,
    order: np.ndarray,
    target: int | None,
    threshold: float | None,
    strata: list[Any] | None = None,
    block: int = 256,
    classify: Callable[[int, int, float], tuple[str, dict] | None] | None = None,
) -> tuple[list[int], dict[int, tuple[str, dict]]]:
    """Greedy DEITA-style pass -> (taken indices in order, {index: (reason, detail)} for the rest).

    ``classify(row, nearest taken row, cosine)`` decides a row whose cosine reaches ``threshold``:
    ``(reason, extra detail)`` drops it, None keeps it (default: every such row is too similar)."""
    n = len(order)
    target = target or n
    quotas = _quotas([strata[i] for i in order], target) if strata is not None else None
    taken: list[int] = []
    taken_emb: list[np.ndarray] = []
    reasons: dict[int, tuple[str, dict]] = {}
    counts: dict[Any, int] = {}
    passes = [True, False] if quotas is not None else [False]
    remaining = list(order)
    for use_quota in passes:
        later: list[int] = []
        for s in range(0, len(remaining), block):
            chunk = remaining[s : s + block]
            if len(taken) >= target:
                later.extend(chunk)
                continue
            if threshold is not None and emb is not None:
                e = emb[chunk]
                prev = np.vstack(taken_emb) if taken_emb else np.zeros((0, emb.shape[1]), dtype=emb.dtype)
                sim_prev = e @ prev.T if len(prev) else np.zeros((len(chunk), 0), dtype=emb.dtype)
                sim_in = e @ e.T
            accepted_local: list[int] = []
            for li, i in enumerate(chunk):
                if len(taken) >= target:
                    later.append(i)
                    continue
                if use_quota and counts.get(strata[i], 0) >= quotas.get(strata[i], 0):
                    later.append(i)
                    reasons[i] = ("select: stratum share full", {"stratum": strata[i]})
                    continue
                if threshold is not None and emb is not None:
                    best, best_j = -2.0, None
                    if sim_prev.shape[1]:
                        j = int(np.argmax(sim_prev[li]))
                        best, best_j = float(sim_prev[li, j]), taken[j]
                    for lj in accepted_local:
                        if sim_in[li, lj] > best:
                            best, best_j = float(sim_in[li, lj]), chunk[lj]
                    if best >= threshold:
                        verdict = (TOO_SIMILAR, {}) if classify is None else classify(i, int(best_j), best)
                        if verdict is not None:
                            reasons[i] = (
                                verdict[0],
                                {"nearest": int(best_j), "cosine": round(best, 4), "threshold": threshold}
                                | verdict[1],
                            )
                            continue
                accepted_local.append(li)
                taken.append(i)
                reasons.pop(i, None)
                if strata is not None:
                    counts[strata[i]] = counts.get(strata[i], 0) + 1
            if threshold is not None and emb is not None and accepted_local:
                taken_emb.append(e[accepted_local])
        remaining = later
    for i in remaining:
        if i not in reasons or len(taken) >= target:
            reasons[i] = ("select: target reached", {"target": target})
    return taken, reasons


def row_texts(frame: pl.DataFrame) -> list[str]:
    """What the diversity pass compares: the question and the answer (or chosen / text)."""
    return [
        "\n".join(x for x in (q or "", a or c or t or "") if x)
        for q, a, c, t in zip(
            frame["question"].to_list(),
            frame["answer"].to_list(),
            frame["chosen"].to_list(),
            frame["text"].to_list(),
            strict=True,
        )
    ]


def embed_rows(frame: pl.DataFrame, embedder, progress=None) -> np.ndarray:
    texts = row_texts(frame)
    return embedder.encode(texts, progress=progress("select: embed rows", len(texts)) if progress else None)


def template_classifier(train: pl.DataFrame, template_threshold: float | None):
    """Tell near-duplicates from rows that only share a template, for :func:`diverse_take`.

    The embedding cosine cannot: answers written from one template ('首先…其次…', the same law
    citations and closing) embed close together while saying different things. So a row whose cosine
    to a taken row reaches ``--diversity`` is checked on its text: character 5-gram Jaccard with that
    row. At or above :data:`NEAR_DUP_OVERLAP` it is a near-duplicate (dropped, "too similar to a
    selected row"); below, it only shares a template, and it is dropped ("same template as a selected
    row") only when its cosine also reaches ``template_threshold`` (None: template rows are kept).
    Measured in ``bench/bench_select_templates.py``: planted near-copies overlap 0.82+, while on
    lawyer-llama's GPT-4 consultations every neighbour pair at cosine >= 0.9 overlaps under 0.5
    (median 0.04). Returns ``(classify, counts)``; counts fill ``stats["diversity_drops"]``."""
    from curate.augment.common import char_ngrams, jaccard

    texts = row_texts(train)
    grams: dict[int, set[str]] = {}
    counts = {"near_duplicate": 0, "template": 0, "template_kept": 0}

    def of(i: int) -> set[str]:
        if i not in grams:
            grams[i] = char_ngrams(texts[i])
        return grams[i]

    def classify(i: int, nearest: int, cosine: float) -> tuple[str, dict] | None:
        overlap = round(jaccard(of(i), of(nearest)), 4)
        if overlap >= NEAR_DUP_OVERLAP:
            counts["near_duplicate"] += 1
            return TOO_SIMILAR, {"text_overlap": overlap}
        if template_threshold is not None and cosine >= template_threshold:
            counts["template"] += 1
            return SAME_TEMPLATE, {"text_overlap": overlap, "template_threshold": template_threshold}
        counts["template_kept"] += 1
        return None

    return classify, counts


def run(
    frame: pl.DataFrame, config: SelectConfig | None = None, *, embedder=None, progress=None
) -> StageResult:
    """``progress``: a factory ``progress(description, total) -> tick`` (curate.progress) for the
    embedding passes, the long part on a real set (vectors come from the embedding cache when seen)."""
    config = config or SelectConfig()
    n = frame.height
    stats: dict[str, Any] = {"input": n}
    demo = set() if config.allow_demo_scores else demo_columns(frame)
    if demo:
        # the defaults never decide on demo-model scores; an explicit --where/--min/--by still may
        ignored = sorted(demo & ({c for c, *_ in PAPER_DEFAULTS} | set(QUALITY_COLUMNS)) & set(frame.columns))
        if ignored:
            stats["demo_scores_ignored"] = ignored
            print(
                f"warning: select: {', '.join(ignored)} came from the shipped demo models (demo_scores "
                "column): the default IFD cut and ranking skip them; pass real models to `curate score`, "
                "or --allow-demo-scores (recipe: allow_demo_scores: true) to use them anyway",
                file=sys.stderr,
                flush=True,
            )
    # 1. thresholds
    alive = np.ones(n, dtype=bool)
    reason: list[str | None] = [None] * n
    detail: list[Any] = [None] * n
    thr_stats: dict[str, int] = {}
    for cond, label in threshold_conditions(frame, config) if n else []:
        passes, missing = cond.mask(frame)
        if (cond.missing or config.missing) == "keep":
            passes = passes | missing
        fail = alive & ~passes
        for i in np.flatnonzero(fail):
            if missing[i]:
                reason[i] = f"select: no {cond.column} value"
                detail[i] = {"condition": cond.text}
            else:
                reason[i] = f"select: {label}"
                detail[i] = {"condition": cond.text, "value": column_values(frame[int(i)], cond.column)[0]}
        thr_stats[label] = int(fail.sum())
        alive &= ~fail
    stats["thresholds"] = thr_stats
    stats["after_thresholds"] = int(alive.sum())

    cand = np.flatnonzero(alive)
    sub = frame[cand] if len(cand) else frame.head(0)
    need_emb = (config.diversity is not None) or (config.eval_size and config.split_semantic)
    if need_emb and embedder is None and sub.height:
        from curate.embed import get_embedder

        embedder = get_embedder(config.embed_model)

    # 2. eval split
    split = np.array(["train"] * len(cand), dtype=object)
    cluster = None
    if config.eval_size and sub.height:
        is_ev, labels, st = eval_split(sub, config, embedder, progress)
        split[is_ev] = "eval"
        cluster = labels
        stats["split"] = st

    # 3. diverse selection among train candidates
    train_local = np.flatnonzero(split == "train")
    train = sub[train_local] if len(train_local) else sub.head(0)
    order, by = _quality_order(train, config.by, demo)
    stats["by"] = by
    emb = embed_rows(train, embedder, progress) if config.diversity is not None and train.height else None
    if emb is not None:
        stats["embed_cache_hits"] = int(getattr(embedder, "last_cache_hits", 0))
    strata = (
        [str(v) for v in column_values(train, config.stratify)] if config.stratify and train.height else None
    )
    classify, counts = (
        template_classifier(train, config.template_diversity) if emb is not None else (None, None)
    )
    taken, why = diverse_take(emb, order, config.target, config.diversity, strata, classify=classify)
    stats["diversity"] = config.diversity
    if counts is not None:
        stats["template_diversity"] = config.template_diversity
        stats["diversity_drops"] = counts
    stats["selected"] = len(taken)
    if strata is not None:
        per: dict[str, int] = {}
        for i in taken:
            per[strata[i]] = per.get(strata[i], 0) + 1
        stats["per_stratum"] = dict(sorted(per.items()))
    train_ids = train["id"].to_list() if train.height else []
    for li, (r, d) in why.items():
        gi = int(cand[train_local[li]])
        if "nearest" in d:
            d = {**d, "nearest_id": train_ids[d.pop("nearest")]}
        reason[gi], detail[gi] = r, d

    keep_global = [int(cand[train_local[i]]) for i in taken]
    eval_global = [int(cand[i]) for i in np.flatnonzero(split == "eval")]
    kept = frame[keep_global + eval_global] if keep_global or eval_global else frame.head(0)
    if config.eval_size:
        pos = {int(g): k for k, g in enumerate(cand)}
        kept = kept.with_columns(
            pl.Series("split", ["train"] * len(keep_global) + ["eval"] * len(eval_global), dtype=pl.Utf8),
            pl.Series(
                "cluster",
                [f"c{int(cluster[pos[g]])}" for g in keep_global + eval_global]
                if cluster is not None
                else None,
                dtype=pl.Utf8,
            ),
        )
    stats["kept_train"] = len(keep_global)
    stats["kept_eval"] = len(eval_global)
    drop_idx = [i for i in range(n) if reason[i] is not None]
    if drop_idx:
        dropped = mark_dropped(
            frame[drop_idx], STAGE, [reason[i] for i in drop_idx], [detail[i] for i in drop_idx]
        )
    else:
        dropped = empty_dropped(frame)
    return StageResult(kept, dropped, stats)


__all__ = ["SelectConfig", "SelectError", "parse_where", "run"]
