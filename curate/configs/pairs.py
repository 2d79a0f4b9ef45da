"""pairs' settings (:class:`PairsConfig`): light, for `curate pairs --help` (see :mod:`curate.configs`);
the stage is :mod:`curate.pairs`."""

from __future__ import annotations

from dataclasses import dataclass

from curate.configs.augment import GeneratorConfig, setting
from curate.core.coerce import OptionError

MODES = ("ranked", "generated", "existing")


@dataclass
class PairsConfig(GeneratorConfig):
    """pairs' settings; mode ``generated`` asks the generating model of :class:`GeneratorConfig`
    (``model``, ``model_url``, ``model_name`` and its client settings) for the rejected answers."""

    # None: ranked and existing, plus generated when a model (model or model_url) is given, the same
    # for `curate pairs --model X` and a recipe's `pairs: {model: X}`
    modes: tuple[str, ...] | None = setting(
        None,
        "Comma-separated: ranked (several answers to one question, best vs worst by --score), generated "
        "(curated answer vs --model's answer), existing (preference rows in the input). Default: "
        "ranked,existing, plus generated when --model or --model-url is given.",
        flags=("--mode",),
        multiple=False,
    )
    score: str = setting("reward", "Ranked: the score column to rank answers by.")
    min_margin: float = setting(0.0, "Ranked: best - worst score must be at least this.")
    max_similarity: float = setting(
        0.9, "Drop a pair whose sides share at least this Jaccard of character 3-grams (near-identical)."
    )
    keep_sft: bool = setting(False, "Also keep SFT rows that did not become pairs.", flag=True)

    def __post_init__(self) -> None:
        if self.modes is None:
            self.modes = ("ranked", "existing") + (("generated",) if self.has_model else ())
        if isinstance(self.modes, str):
            self.modes = tuple(m.strip() for m in self.modes.split(",") if m.strip())
        bad = [m for m in self.modes if m not in MODES]
        if bad or not self.modes:
            raise OptionError("modes", f"unknown pair mode(s) {bad}: choose from {', '.join(MODES)}")
        if "generated" in self.modes and not self.has_model:
            raise OptionError(
                "modes", "'generated' needs a model ({model} or {model_url})", mentions=("model", "model_url")
            )
        if not 0 < self.max_similarity <= 1:
            raise OptionError("max_similarity", "must be in (0, 1]")
        if self.min_margin < 0:
            raise OptionError("min_margin", "must be >= 0")
        self.check_generator()
