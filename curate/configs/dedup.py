"""The dedup and decontaminate stages' settings (:class:`DedupConfig`, :class:`DecontamConfig`) and the
defaults they name: light, for `curate dedup --help` and `curate decontaminate --help` (see
:mod:`curate.configs`); the stages are :mod:`curate.dedup.engine` and :mod:`curate.dedup.decontaminate`."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from curate.core.coerce import OptionError

DEFAULT_MEMORY_BUDGET = 1 << 30  # bench/bench_dedup_memory.py: 1M rows of any shape fit an 8 GB machine
DEFAULT_NGRAM = 5
DEFAULT_LATIN = "chars"  # Latin-script shingle units (see curate.dedup.text.tokenize; bench_dedup_shingles)
DEFAULT_LATIN_NGRAM = 7  # characters per shingle starting in Latin-script text (bench_dedup_shingles)
# How the letters/digits of non-CJK scripts become shingle units: "chars" (every character one unit,
# a boundary unit between two words; the default, so a typo changes ~n shingles of ~n per character)
# or "words" (every word one unit, as before: a typo changes n shingles of about one per word).
LATIN_UNITS = ("chars", "words")


def fields_setting(help_text: str) -> Any:
    """A Config field naming the compared fields: question, answer or both (the default; normalised
    by :func:`curate.dedup.text.fields_for`), one value on the command line."""
    metadata = {"multiple": False, "choices": ("question", "answer", "both"), "help": help_text}
    return dataclasses.field(default=("both",), metadata=metadata)


@dataclass
class DedupConfig:
    """Options of the dedup stage: the recipe keys, and (field metadata) the `curate dedup` options."""

    methods: tuple[str, ...] = field(
        default=("exact", "minhash"),
        metadata={
            "flags": ("--method",),
            "multiple": False,
            "help": "Comma-separated: exact, minhash, semantic (run in that order, each on the previous "
            "one's survivors).",
        },
    )
    fields: tuple[str, ...] = fields_setting(
        "What is compared: the question (with earlier turns), the answer (chosen for preference rows), "
        "or both. Plain-text rows always compare their text."
    )
    threshold: float = field(default=0.8, metadata={"help": "MinHash: Jaccard similarity threshold."})
    num_perm: int = field(default=128, metadata={"help": "MinHash: permutations per signature."})
    ngram: int = field(
        default=DEFAULT_NGRAM,
        metadata={
            "help": "MinHash: shingle size in CJK characters (Latin text: 7-character shingles across "
            "words). Shorter texts are one shingle."
        },
    )
    # shingle units of Latin-script (non-CJK) text: "chars" (character n-grams across words, catches
    # typos) or "words" (word n-grams, the behaviour before index format 3)
    latin: str = field(
        default=DEFAULT_LATIN,
        metadata={
            "choices": LATIN_UNITS,
            "help": "MinHash: shingle units of Latin-script text: characters across words (finds "
            "typo'd copies) or words.",
        },
    )
    latin_ngram: int = field(  # units per shingle starting in Latin text ("chars" mode)
        default=DEFAULT_LATIN_NGRAM,
        metadata={
            "min": 1,
            "max": 100,
            "help": "MinHash: characters per shingle starting in Latin-script text (--latin chars).",
        },
    )
    bands: int | None = field(  # rows per band follow; default derived from the threshold
        default=None,
        metadata={
            "help": "MinHash: LSH bands, 1 to --num-perm (default: derived from --threshold); rows per "
            "band = num_perm // bands, leftover columns unused for banding."
        },
    )
    seed: int = field(default=42, metadata={"help": "MinHash: seed of the permutations."})
    verify: str = field(  # "estimate": trust the MinHash estimate (faster, less precise)
        default="exact",
        metadata={
            "choices": ("exact", "estimate"),
            "help": "MinHash: confirm candidates by exact Jaccard of the shingle sets, or trust the "
            "signature estimate.",
        },
    )
    semantic_threshold: float | None = field(  # default per embedder
        default=None,
        metadata={
            "help": "Semantic: cosine threshold. Default per model and language (measured): use 0.95 "
            "for Chinese rows, 0.90 otherwise; minilm 0.97 / 0.95."
        },
    )
    embed_model: str = field(
        default="use", metadata={"help": "Semantic: use, minilm, or a local sentence-transformers dir."}
    )
    keep: str = field(
        default="first",
        metadata={"help": "Survivor of a cluster: first, longest, or best:<numeric column> (highest wins)."},
    )
    chunk: int = field(
        default=5_000,
        metadata={
            "min": 1,
            "help": "Rows tokenised and hashed per step (memory vs overhead; results do not depend on it).",
        },
    )
    # bytes for MinHash's working memory besides the signatures and the rows themselves: stored
    # shingles (then spilled to ``spill_dir``), the shingle sets being verified, candidate pairs; a
    # size ("1GB", "512M") or a number of bytes
    memory_budget: int | str = field(
        default=DEFAULT_MEMORY_BUDGET,
        metadata={
            "type": "text",
            "show_default": "1GB",
            "help": "MinHash: working memory besides the rows and signatures (stored shingles spill to "
            "the temp dir beyond a quarter of it).",
        },
    )
    spill_dir: str | None = field(  # default: the system temp dir
        default=None,
        metadata={
            "path": "dir",
            "help": "MinHash: where stored shingles spill past a quarter of --memory-budget (default: "
            "the temp dir).",
        },
    )

    def __post_init__(self) -> None:
        # the stage's parsers and names: not for --help (see curate.configs)
        from curate.dedup import cluster as cl
        from curate.dedup.engine import parse_size
        from curate.dedup.text import fields_for
        from curate.dedup.types import METHODS

        if isinstance(self.methods, str):
            self.methods = tuple(m.strip() for m in self.methods.split(",") if m.strip())
        bad = [m for m in self.methods if m not in METHODS]
        if bad or not self.methods:
            raise OptionError("methods", f"unknown dedup method(s) {bad}: choose from {', '.join(METHODS)}")
        self.methods = tuple(m for m in METHODS if m in self.methods)
        self.fields = fields_for(self.fields)
        if not 0 < self.threshold <= 1:
            raise OptionError("threshold", f"must be in (0, 1], got {self.threshold}")
        if self.latin not in LATIN_UNITS:
            raise OptionError(
                "latin", f"{self.latin!r} is not one of the latin units: {', '.join(LATIN_UNITS)}"
            )
        if self.ngram < 1:
            raise OptionError("ngram", f"must be at least 1, got {self.ngram}")
        if not 1 <= self.latin_ngram <= 100:
            raise OptionError("latin_ngram", f"must be between 1 and 100, got {self.latin_ngram}")
        if self.num_perm < 16 or self.num_perm > 1024:
            raise OptionError("num_perm", f"must be between 16 and 1024, got {self.num_perm}")
        if self.verify not in ("exact", "estimate"):
            raise OptionError("verify", "must be 'exact' or 'estimate'")
        if self.bands is not None and not 1 <= self.bands <= self.num_perm:
            raise OptionError(
                "bands",
                f"must be between 1 and {{num_perm}} ({self.num_perm}), got {self.bands}",
                mentions=("num_perm",),
            )
        if self.semantic_threshold is not None and not 0 < self.semantic_threshold <= 1:
            raise OptionError("semantic_threshold", f"must be in (0, 1], got {self.semantic_threshold}")
        try:
            cl.parse_keep(self.keep)
        except ValueError:
            raise OptionError("keep", f"{self.keep!r}: expected {cl.KEEP_HELP}") from None
        if isinstance(self.memory_budget, str):
            try:
                self.memory_budget = parse_size(self.memory_budget)
            except ValueError:
                raise OptionError(
                    "memory_budget", f"{self.memory_budget!r}: expected a size such as 2GB"
                ) from None
        if self.memory_budget < 64 << 20:
            raise OptionError("memory_budget", f"must be at least 64MB, got {self.memory_budget:,} bytes")

    def lsh_shape(self) -> tuple[int, int]:
        """(bands, rows per band). With ``--bands`` the rows are ``num_perm // bands``; the last
        ``num_perm % bands`` signature columns are then not used for banding (still for verification)."""
        if self.bands is not None:
            return self.bands, self.num_perm // self.bands
        from curate.dedup.lsh import bands_for  # not for --help

        return bands_for(self.threshold, self.num_perm)


@dataclass
class DecontamConfig:
    """Options of the decontaminate stage: the recipe keys, and (field metadata) the `curate
    decontaminate` options."""

    ngram: int = field(default=13, metadata={"help": "N-gram size in units (CJK characters or words)."})
    fields: tuple[str, ...] = fields_setting("Training-row fields scanned.")
    eval_fields: tuple[str, ...] = fields_setting("Eval-item fields indexed.")
    min_units: int = field(
        default=8,
        metadata={"help": "Eval items shorter than --ngram but at least this long are matched whole."},
    )
    min_hits: int = field(
        default=1, metadata={"help": "Drop a row once this many of its n-grams hit an eval item."}
    )
    min_overlap: float = field(
        default=0.0, metadata={"help": "...and at least this fraction of its n-grams."}
    )
    common: int = field(
        default=10,
        metadata={"help": "Ignore n-grams found in more than this many distinct eval texts (boilerplate)."},
    )
    chunk: int = field(
        default=5_000,
        metadata={
            "min": 1,
            "help": "Rows tokenised per step (memory vs overhead; results do not depend on it).",
        },
    )
    # the evaluation files (any format curate reads); a recipe resolves them against its folder
    against: tuple[str, ...] = field(
        default=(),
        metadata={
            "path": "file",
            "required": True,
            "split": False,  # a file name may hold a comma
            "metavar": "FILE",
            "help": "An evaluation/benchmark file (any input format). Repeatable.",
        },
    )
    # the eval files' contents, hashed when the stage's config is built: part of its cache key
    against_sha256: tuple[str, ...] = field(default=(), init=False)

    def __post_init__(self) -> None:
        from curate.dedup.text import fields_for  # not for --help

        self.fields = fields_for(self.fields)
        self.eval_fields = fields_for(self.eval_fields)
        if isinstance(self.against, str):  # one file is a list of one, never split on commas
            self.against = (self.against,)
        for name in ("ngram", "min_units", "min_hits"):
            if getattr(self, name) < 1:
                raise OptionError(name, f"must be at least 1, got {getattr(self, name)}")
        if not 0 <= self.min_overlap <= 1:
            raise OptionError("min_overlap", f"must be in [0, 1], got {self.min_overlap}")
