"""export: the dataset in a trainer's format (trl, alpaca, sharegpt, openai, llamafactory)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from curate.core.coerce import OptionError, dataclass_config
from curate.core.stage import Scope, Stage, StageContext


class Export(Stage):
    name = "export"
    suffix = "exported"
    scope = Scope.GLOBAL
    help = "Write a dataset for a trainer (trl, alpaca, sharegpt...)."
    module = "curate.export"
    config = "curate.configs.export:ExportConfig"
    command = "curate.commands.export:export"
    output_options = ("output", "dataset_info")
    # where the files go does not change what is in them; a missing or edited export file is
    # rewritten by the pipeline (see run.py), not by invalidating the key
    key_exclude = ("output", "dataset_info")
    # converts only (curate.export.export_rows); the files are written by the caller (write_outputs)
    function = "export_rows"
    # capability: the conversion is a pure function of each row, so a pipeline may memoise it per row
    # (curate.pipeline.fastexport.RowMemo, handed over as ctx.extra["row_memo"]); the result is the same
    row_memo = True
    final = True  # the trainer files are the end of a chain: nothing may change rows after them

    @classmethod
    def build_config(cls, options: dict[str, Any], ctx: StageContext) -> Any:
        cfg = dataclass_config(cls.config_class(), options)
        if not cfg.output:
            raise OptionError("output", "export needs `output:` (the trainer file to write, .jsonl or .json)")
        return cfg

    @classmethod
    def side_outputs(cls, config: Any) -> dict[str, Path]:
        """Capability: the files :meth:`write_outputs` writes (or removes) beside the output: the trainer
        file, the eval split, dataset_info.json (the pipeline checks them against its inputs)."""
        if not getattr(config, "output", None):
            return {}
        from curate.export import output_paths  # polars: `curate --help` imports every declaration

        return output_paths(config, Path(config.output))

    def run(self, frame):
        """The rows converted (kept) or dropped with the reason, and the lines to write; no file."""
        return self.stage_function()(frame, self.config_value, memo=self.ctx.extra.get("row_memo"))

    @classmethod
    def write_outputs(cls, config: Any, result: Any) -> dict[str, str] | None:
        """Capability: write the files a result describes (the trainer file, its eval split, the dataset
        card, dataset_info.json), for the command or the pipeline's runner: the stage never writes."""
        from curate.export import write_result  # polars: `curate --help` imports every declaration

        return write_result(result, config)
