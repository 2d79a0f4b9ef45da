"""decontaminate: drop rows that overlap evaluation sets (n-gram overlap; row scope)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from curate.core.coerce import OptionError, dataclass_config
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
    path_options = ("against",)
    distributed = None  # on the driver: the eval index is built once, from files

    @classmethod
    def build_config(cls, options: dict[str, Any], ctx: StageContext) -> Any:
        """``against``: evaluation files (any format curate reads); the rest are DecontamConfig fields.
        The eval index is built when the stage runs (not when a cached run only checks its key); the
        eval files' contents are part of the key."""
        opts = dict(options)
        against = opts.pop("against", None)
        if not against:
            raise OptionError("against", "decontaminate needs `against:` (one or more evaluation files)")
        against = [against] if isinstance(against, str) else list(against)
        files = []
        for a in against:
            p = Path(a)
            if not p.is_file():
                raise OptionError("against", f"evaluation file {a} not found")
            files.append({"path": str(p), "sha256": sha256_file(p)})
        return {"against": files, "config": dataclass_config(cls.config_class(), opts)}

    def run(self, frame, evals=None):
        """``evals``: the evaluation rows when the caller has read them (`curate decontaminate` reads
        them itself to report unreadable eval rows); by default they are read from ``against``."""
        mod = self.load()
        config = self.config_value
        if evals is None:
            from curate.io import load  # polars: the declaration stays light for `curate --help`

            evals = load([f["path"] for f in config["against"]]).frame
        if evals.height == 0:  # an index of nothing would pass every row as "clean"
            names = ", ".join(f["path"] for f in config["against"])
            raise ValueError(f"against: no readable rows in {names}; nothing to check the rows against")
        index = mod.build_eval_index(evals, config["config"])
        return mod.run(frame, index, config["config"])
