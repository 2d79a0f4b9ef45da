"""`curate export`: write a dataset in the layout a trainer reads (TRL, Alpaca, ShareGPT, OpenAI,
LLaMA-Factory with its dataset_info.json entry), with the epochs hint in the summary.

Unlike the other commands, ``--format`` names the *output* layout here (``curate export DATA -o OUT
--format trl``); the input format override is ``--input-format``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from curate.commands.common import (
    check_side_files,
    check_writable,
    encoding_option,
    fail,
    finish,
    inputs_argument,
    protect,
)
from curate.commands.generated import Invocation, StageCommand, flag_of
from curate.configs.export import check_pairing, pairing_table
from curate.core.coerce import OptionError
from curate.core.vocab import TRAINER_EXTENSIONS

# what the summary takes from the files the export wrote (besides the output itself)
WRITTEN_KEYS = (
    "eval",
    "dataset_info",
    "dataset_name",
    "removed_stale_eval",
    "dataset_card",
    "dataset_card_skipped",
)
WRITTEN_FILES = ("eval", "dataset_info", "dataset_card")


def _export_inputs(f):
    """INPUT... and the input overrides; ``--format`` is the output layout here, so the input format
    override is ``--input-format``; -o takes the trainer file."""
    for deco in reversed(
        [
            inputs_argument,
            click.option(
                "-o",
                "--output",
                default=None,
                type=click.Path(dir_okay=False, path_type=Path),
                help="Output file (.jsonl or .json). Default: next to the first input, as "
                "<name>.exported.jsonl (data.selected.jsonl -> data.exported.jsonl, which `train` picks up "
                "without arguments). Held-out rows (split or meta.split = eval/test/validation/dev) go to "
                "<name>.eval.<ext>.",
            ),
            click.option(
                "--input-format",
                "fmt",
                default=None,
                metavar="FORMAT",
                help="Override input format detection.",
            ),
            click.option(
                "--map", "maps", multiple=True, metavar="FIELD=COLUMN[,COLUMN]", help="Map an input column."
            ),
            click.option("--sheet", default=None, help="XLSX: read only this sheet."),
            encoding_option,
            click.option("--json", "json_out", is_flag=True, help="Print a one-line JSON summary on stdout."),
        ]
    ):
        f = deco(f)
    return f


class ExportCommand(StageCommand):
    """Write DATA for a trainer: --format trl | alpaca | sharegpt | openai | llamafactory.

    \b
    Examples:
      curate export curated.jsonl --format trl          # writes curated.exported.jsonl
      curate export curated.jsonl -o train.jsonl --format trl
      curate export pairs.jsonl -o data/dpo.json --format llamafactory --name my_dpo
    The summary ends with a hint: the row count and the epochs the source article's table suggests.

    \b
    Which formats hold which kinds (any other pairing is refused before anything is written, exit 2):
      {pairings}
    """

    stage = "export"
    skip = ("output",)  # the trainer file is -o
    engine = False

    def description(self) -> str:
        return super().description().replace("{pairings}", pairing_table().replace("\n", "\n      "))

    def shared_options(self) -> list:
        return [_export_inputs]

    def prepare(self, run: Invocation) -> None:
        """The trainer file (-o, or <name>.exported.jsonl like every command), checked first."""
        from curate.io import default_output  # polars: not for --help

        output = run.params["output"]
        if output is None:
            output = default_output(Path(run.inputs[0]), "export")
        if output.suffix.lower() not in TRAINER_EXTENSIONS:
            fail(f"{output}: exports are {' or '.join(TRAINER_EXTENSIONS)} files")
        check_writable(output, "-o", TRAINER_EXTENSIONS)
        run.options["output"] = str(output)
        run.extra["output"] = output

    def resolve_output(self, run: Invocation) -> Path:
        return run.extra["output"]

    def check_outputs(self, run: Invocation) -> None:
        from curate.export import output_paths  # the stage (polars): not for --help

        try:
            check_pairing(run.config.format, run.config.kind)  # an explicit --kind: refused before reading
        except OptionError as exc:
            raise exc.spelled(flag_of(run.stage)) from None
        # every file the export writes (or removes: a stale eval file) and the side files, checked
        # before anything is written
        for what, p in output_paths(run.config, run.out).items():
            fix = "--dataset-info" if what == "dataset_info" else "-o"
            protect(run.inputs, None, p, f"the {what} file of {run.out}", fix)
        check_side_files(run.inputs, run.out)

    def execute(self, run: Invocation):
        """The export stage converts the rows (it writes nothing; :meth:`finish` writes the files)."""
        return run.stage(run.config, run.context).run(run.loaded.frame)

    def finish(self, run: Invocation, result) -> None:
        def write_output() -> tuple[dict[str, Any], dict[str, Any]]:
            # the trainer files, once finish() has checked the accounting, before the side files
            try:
                written = run.stage.write_outputs(run.config, result)
            except OptionError as exc:  # the detected kind does not fit --format
                raise exc.spelled(flag_of(run.stage)) from None
            except (ValueError, OSError) as exc:
                fail(str(exc))
            done = result.stats
            stats: dict[str, Any] = {
                "format": run.config.format,
                "kind": done["kind"],
                # kept: every row written (train + eval), like the other commands; exported/eval_rows split it
                "kept": done["rows"] + done["eval_rows"],
                "exported": done["rows"],
                "eval_rows": done["eval_rows"],
                "epochs_hint": done["hint"].get("epochs_rounded"),
                "output": str(run.out),
                **{k: v for k, v in written.items() if k in WRITTEN_KEYS},
                "hint": done["hint"]["text"],
            }
            return stats, {"output": run.out, **{k: written.get(k) for k in WRITTEN_FILES}}

        finish(
            "export",
            inputs=run.inputs,
            out=run.out,
            loaded=run.loaded,
            kept=result.kept,
            dropped=result.dropped,
            json_out=run.json_out,
            started=run.started,
            write_output=write_output,
        )


export = ExportCommand().command()
