"""ingest: read raw Q&A in any format into canonical records (the source of every chain)."""

from __future__ import annotations

from typing import Any

from curate.core.stage import Scope, Stage, StageContext


class Ingest(Stage):
    name = "ingest"
    suffix = "ingested"
    scope = Scope.SOURCE
    help = "Read raw Q&A in any format into canonical records."
    module = "curate.io"
    # a recipe's `ingest:` keys are the defaults of its inputs; the pipeline reads the inputs itself
    config = "curate.configs.ingest:IngestConfig"
    command = "curate.commands.ingest:ingest"

    @classmethod
    def build_config(cls, options: dict[str, Any], ctx: StageContext) -> Any:
        """A recipe writes ``map`` as a mapping (``{question: 问题}``), the command line as items
        (``--map question=问题``): both are the same setting."""
        opts = dict(options)
        if isinstance(opts.get("map"), dict):
            opts["map"] = cls.config_class().map_items(opts["map"])
        return super().build_config(opts, ctx)
