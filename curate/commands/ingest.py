"""`curate ingest`: raw Q&A in any format -> canonical records. Its options are IngestConfig's fields
(``--format``, ``--map``, ``--sheet``, ``--encoding``: how the inputs are read), generated like every
stage's, in place of the reading options the other commands share."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from curate import rejects
from curate.commands.common import inputs_argument, load_inputs, output_options
from curate.commands.generated import Invocation, StageCommand

if TYPE_CHECKING:  # pragma: no cover
    from curate.stage import StageResult


def _inputs(f: Callable) -> Callable:
    """INPUT... and ``--max-rejected``: the shared input options without the reading ones (the Config's)."""
    return inputs_argument(rejects.option(f))


class IngestCommand(StageCommand):
    """Read INPUT files (JSONL, JSON, CSV, TSV, XLSX, Parquet, TXT, optionally .gz/.zst) into canonical
    records. Format, column roles and text encoding are detected and explained on stderr; rows that
    cannot be read go to <output>.rejects.jsonl with file, line, field and reason."""

    stage = "ingest"

    def shared_options(self) -> list[Callable]:
        return [_inputs, output_options(self.stage)]

    def load(self, run: Invocation) -> Any:
        """The inputs read with the settings (the IngestConfig the command line gave)."""
        c = run.config
        return load_inputs(
            run.inputs, c.format, c.map, c.sheet, quiet=run.json_out, engine=run.engine, encoding=c.encoding
        )

    def execute(self, run: Invocation) -> StageResult:
        """Reading the inputs is the stage: every readable row is kept."""
        from curate.stage import StageResult  # polars: not for --help

        frame = run.loaded.frame
        kinds = frame["kind"].value_counts().sort("kind").rows() if frame.height else []
        files = {f["file"]: f.get("format") for f in run.loaded.files}
        return StageResult(frame, None, {"kinds": dict(kinds), "files": files})


ingest = IngestCommand().command()
