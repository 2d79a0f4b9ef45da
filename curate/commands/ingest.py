"""`curate ingest`: raw Q&A in any format -> canonical records."""

from __future__ import annotations

from typing import TYPE_CHECKING

from curate.commands.generated import Invocation, StageCommand

if TYPE_CHECKING:  # pragma: no cover
    from curate.stage import StageResult


class IngestCommand(StageCommand):
    """Read INPUT files (JSONL, JSON, CSV, TSV, XLSX, Parquet, TXT, optionally .gz/.zst) into canonical
    records. Format, column roles and text encoding are detected and explained on stderr; rows that
    cannot be read go to <output>.rejects.jsonl with file, line, field and reason."""

    stage = "ingest"

    def execute(self, run: Invocation) -> StageResult:
        """Reading the inputs is the stage: every readable row is kept."""
        from curate.stage import StageResult  # polars: not for --help

        frame = run.loaded.frame
        kinds = frame["kind"].value_counts().sort("kind").rows() if frame.height else []
        files = {f["file"]: f.get("format") for f in run.loaded.files}
        return StageResult(frame, None, {"kinds": dict(kinds), "files": files})


ingest = IngestCommand().command()
