"""The score stage's settings (:class:`ScoreConfig`) and the fastText quality classifier's training
settings (:class:`TrainParams`): light, for `curate score --help` and `curate quality train --help`
(see :mod:`curate.configs`); the stage is :mod:`curate.score`, the classifier
:mod:`curate.score.quality`."""

from __future__ import annotations

from dataclasses import dataclass, field

from curate.core.coerce import OptionError

SCORERS = ("ppl", "ifd", "reward", "quality")


@dataclass
class ScoreConfig:
    """Options of the score stage (the same names as the CLI options and recipe keys)."""

    scorers: tuple[str, ...] = field(
        default=SCORERS,
        metadata={
            "multiple": False,
            "help": "Comma-separated: ppl (perplexity of the answer given the question), ifd (also the "
            "answer alone, and their ratio), reward (reward model), quality (fastText P(good)). Default: "
            "all four.",
        },
    )
    lm: str | None = field(
        default=None,
        metadata={
            "help": "Causal LM for ppl/ifd: a local directory or a hub id already in the local cache "
            "(never downloaded). Default: the embedded demo model samples/models/lm."
        },
    )
    reward_model: str | None = field(
        default=None,
        metadata={"help": "Sequence-classification reward model. Default: samples/models/reward."},
    )
    quality_model: str | None = field(
        default=None,
        metadata={"help": "fastText quality model (.ftz/.bin). Default: samples/models/quality.ftz."},
    )
    device: str = field(default="auto", metadata={"help": "auto (CUDA when available), cpu or cuda[:N]."})
    dtype: str = field(
        default="auto",
        metadata={
            "choices": ("auto", "float32", "bfloat16", "float16"),
            "help": "auto: bfloat16 on a GPU that supports it, float32 on CPU.",
        },
    )
    max_tokens: int = field(
        default=2048,
        metadata={
            "min": 8,
            "help": "Longest sequence scored; longer rows are truncated (rule in docs/score.md) and flagged.",
        },
    )
    token_budget: int = field(
        default=16384,
        metadata={"min": 64, "help": "Padded tokens per forward pass (rows x longest row in a batch)."},
    )
    max_batch: int = field(
        default=64,
        metadata={
            "flags": ("--batch-size", "--max-batch"),
            "min": 1,
            "help": "Most sequences per forward pass.",
        },
    )
    lm_chat_template: str | None = field(
        default=None, metadata={"path": "file", "help": "Jinja chat template for an LM without one."}
    )
    reward_chat_template: str | None = field(
        default=None, metadata={"path": "file", "help": "Jinja chat template for the reward model."}
    )
    trust_remote_code: bool = field(
        default=False,
        metadata={"flag": True, "help": "Allow model code from the model directory (off by default)."},
    )
    cache: str | None = field(  # SQLite cache file; None: no cache
        default=None,
        metadata={
            "path": "file",
            "help": "Score cache (SQLite). Default: <output>.cache.sqlite beside the output.",
        },
    )
    progress: bool = False

    def __post_init__(self):
        if isinstance(self.scorers, str):
            self.scorers = tuple(s.strip() for s in self.scorers.split(",") if s.strip())
        self.scorers = tuple(self.scorers)
        unknown = [s for s in self.scorers if s not in SCORERS]
        if unknown:
            raise OptionError(
                "scorers", f"unknown scorer(s) {', '.join(unknown)}; choose from {', '.join(SCORERS)}"
            )
        if not self.scorers:
            raise OptionError("scorers", "no scorers selected")
        for name in ("max_tokens", "token_budget", "max_batch"):
            if int(getattr(self, name)) < 1:
                raise OptionError(name, "must be a positive integer")


@dataclass
class TrainParams:
    """fastText training settings (field metadata: the `curate quality train` options)."""

    epoch: int = field(default=25, metadata={"min": 1, "help": "Training epochs."})
    lr: float = field(default=0.5, metadata={"min": 0, "min_open": True, "help": "Learning rate."})
    word_ngrams: int = field(default=2, metadata={"min": 1, "help": "2: word (and CJK character) bigrams."})
    dim: int = field(default=32, metadata={"min": 2, "help": "Vector size."})
    bucket: int = field(
        default=200_000, metadata={"min": 0, "help": "Hash buckets for n-grams (model size ~ bucket x dim)."}
    )
    min_count: int = 1
    quantize: bool = field(
        default=True,
        metadata={
            "help": "Quantise the model (.ftz); --no-quantize saves the full .bin model (larger; "
            "quantising takes seconds)."
        },
    )
    cutoff: int = field(default=20_000, metadata={"min": 0, "help": "Rows kept when quantising (0: all)."})
    holdout: float = field(
        default=0.2,
        metadata={"min": 0, "max": 0.9, "help": "Share of rows held out for precision/recall/AUC."},
    )
    seed: int = field(default=0, metadata={"help": "Random seed of the held-out split and training."})
    threshold: float = field(
        default=0.5,
        metadata={
            "min": 0,
            "max": 1,
            "help": "P(good) at or above which a row counts as good (precision, recall, accuracy).",
        },
    )
