"""The select stage's settings (:class:`SelectConfig`, validated on construction) and the defaults
they fall back to: light, for `curate select --help` (see :mod:`curate.configs`); the stage is
:mod:`curate.select`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from curate.core.coerce import OptionError

PAPER_DEFAULTS = (("ifd", "<", 1.0, "IFD >= 1: the instruction does not help (Li et al. 2023)"),)
QUALITY_COLUMNS = ("quality", "reward", "deita", "score")
# the default cosine from which rows that only share a template are dropped too (measured in
# bench/bench_select_templates.py: on lawyer-llama's GPT-4 consultations 388 of 1,000 rows have a
# neighbour at cosine >= 0.9, every one of them a different answer from a shared template)
TEMPLATE_COSINE = 0.95


def _cosine_or_off(name: str, value: Any) -> float | None:
    """A cosine threshold in (0, 1], or None for off: 'off', 'none', '' or 0 as text (the command line)
    and false or 0 (a recipe: YAML reads a bare ``off`` as false) all mean the same."""
    if (
        value is None
        or value is False
        or (isinstance(value, str) and value.strip().lower() in ("off", "none", ""))
    ):
        return None
    try:
        cosine = float(value)
    except (TypeError, ValueError):
        raise OptionError(name, f"{value!r}: expected off or a cosine in (0, 1]") from None
    if cosine == 0:
        return None
    if not 0 < cosine <= 1:
        raise OptionError(name, "must be a cosine threshold in (0, 1], or off")
    return cosine


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
    split_semantic: float | str | None = field(
        default=0.9,
        metadata={
            "type": "text",  # 'off' (the Config maps it to None, as the recipe's off)
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
        # the stage's expression parser (polars): not for --help
        from curate.select.conditions import SelectError, parse_assign, parse_where

        for name in ("where", "min", "max", "min_quantile", "max_quantile"):
            setattr(self, name, _as_items(getattr(self, name)))
        if self.missing not in ("drop", "keep"):
            raise OptionError("missing", "must be 'drop' or 'keep'")
        if self.target is not None and self.target < 1:
            raise OptionError("target", "must be at least 1")
        explicit = self.diversity not in ("auto", None)
        if self.diversity == "auto":
            self.diversity = 0.9 if self.target else None
        elif self.diversity in ("off", "none", "", 0):
            self.diversity = None
        if self.diversity is not None:
            try:
                self.diversity = float(self.diversity)
            except (TypeError, ValueError):
                raise OptionError(
                    "diversity", f"{self.diversity!r}: expected auto, off or a cosine threshold in (0, 1]"
                ) from None
            if not 0 < self.diversity <= 1:
                raise OptionError("diversity", "must be a cosine threshold in (0, 1]")
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
                raise OptionError(
                    "template_diversity",
                    f"{self.template_diversity!r}: expected auto, off or a cosine in (0, 1]",
                ) from None
            if not 0 < self.template_diversity <= 1:
                raise OptionError("template_diversity", "must be a cosine threshold in (0, 1]")
        if self.eval_size is not None:
            # a fraction below 1, or a whole number of rows; 1.0 would be both "every row" and "one row"
            size = self.eval_size
            if isinstance(size, bool) or not isinstance(size, int | float) or size <= 0:
                raise OptionError("eval_size", "must be a fraction in (0, 1) or a row count")
            if size >= 1 and isinstance(size, float) and (size == 1.0 or not size.is_integer()):
                raise OptionError(
                    "eval_size", f"{size!r}: use an integer row count (2, 500) or a fraction < 1 (0.05)"
                )
        if not 0 < self.split_threshold <= 1:
            raise OptionError("split_threshold", "must be in (0, 1]")
        self.split_semantic = _cosine_or_off("split_semantic", self.split_semantic)
        for what in ("where", "min", "max", "min_quantile", "max_quantile"):
            for item in getattr(self, what):
                try:
                    q = parse_where(item) if what == "where" else parse_assign(item)[1]
                except SelectError as exc:
                    raise OptionError(what, str(exc)) from None
                if what.endswith("_quantile") and not 0 <= q <= 1:
                    raise OptionError(what, f"{item!r}: the quantile must be in [0, 1]")
