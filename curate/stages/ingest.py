"""ingest: read raw Q&A in any format into canonical records (the source of every chain)."""

from __future__ import annotations

from curate.core.stage import Scope, Stage


class Ingest(Stage):
    name = "ingest"
    suffix = "ingested"
    scope = Scope.SOURCE
    help = "Read raw Q&A in any format into canonical records."
    module = "curate.io"
    command = "curate.commands.ingest:ingest"
    # a recipe's `ingest:` options (the inputs' defaults); the pipeline reads the inputs itself
    options = ("format", "map", "sheet", "encoding")
