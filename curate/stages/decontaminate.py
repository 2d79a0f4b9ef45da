"""decontaminate: drop rows that overlap evaluation sets (n-gram overlap; row scope)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from curate.core.coerce import OptionError, dataclass_config
from curate.core.errors import InputUnusable
from curate.core.stage import Scope, Stage, StageContext
from curate.core.vocab import sha256_file


class Decontaminate(Stage):
    name = "decontaminate"
    suffix = "decontaminated"
    scope = Scope.ROW
    help = "Drop rows that overlap evaluation sets (n-gram overlap)."
    module = "curate.dedup.decontaminate"
    config = "curate.configs.dedup:DecontamConfig"
    command = "curate.commands.dedup:decontaminate"
    code = ("curate.dedup", "curate.io")
    distributed = None  # on the driver: the eval index is built once, from files

    @classmethod
    def build_config(cls, options: dict[str, Any], ctx: StageContext) -> Any:
        """The DecontamConfig, its evaluation files (``against``) checked and hashed: their contents are
        part of the cache key. The eval index is built when the stage runs (not when a cached run only
        checks its key)."""
        config = dataclass_config(cls.config_class(), options)
        if not config.against:
            raise OptionError("against", "decontaminate needs `against:` (one or more evaluation files)")
        for a in config.against:
            if not Path(a).is_file():
                raise OptionError("against", f"evaluation file {a} not found")
        config.against_sha256 = tuple(sha256_file(Path(a)) for a in config.against)
        return config

    def run(self, frame, evals=None):
        """``evals``: the evaluation rows when the caller has read them (`curate decontaminate` reads
        them itself to report unreadable eval rows); by default they are read from ``against``."""
        mod = self.load()
        config = self.config_value
        if evals is None:
            from curate.io import load  # polars: the declaration stays light for `curate --help`

            evals = load(list(config.against)).frame
        if evals.height == 0:  # an index of nothing would pass every row as "clean"
            names = ", ".join(config.against)
            raise InputUnusable(f"against: no readable rows in {names}; nothing to check the rows against")
        index = mod.build_eval_index(evals, config)
        return mod.run(frame, index, config)
