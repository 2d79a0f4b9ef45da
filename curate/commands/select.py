"""`curate select`: thresholds, a diverse subset of a target size, and a held-out eval split."""

from __future__ import annotations

from pathlib import Path

import click

from curate.commands.common import check_writable, fail, protect, warn
from curate.commands.generated import Invocation, StageCommand


class SelectCommand(StageCommand):
    """Pick a diverse, high-quality subset, and a held-out eval split with no near-duplicate leakage.

    \b
    Examples:
      curate select scored.jsonl --target 10000
      curate select scored.jsonl --where "ifd < 1" --min reward=0.2 --target 5000 --stratify meta.category
      curate select scored.jsonl --eval-size 0.05 -o train.jsonl
    """

    stage = "select"
    extras = (
        click.option(
            "--eval-output",
            default=None,
            type=click.Path(dir_okay=False, path_type=Path),
            help="Also write the eval rows alone to this file (they are in the output too, with "
            "split=eval); never an input, the output or its side files.",
        ),
    )

    def check_outputs(self, run: Invocation) -> None:
        eval_output = run.params["eval_output"]
        if eval_output is not None:
            # checked before anything is read or written: the eval file must not replace an input, the
            # output or a side file of the output
            check_writable(eval_output, "--eval-output")
            protect(run.inputs, run.out, eval_output, "--eval-output")

    def check_loaded(self, run: Invocation) -> None:
        eval_size, height = run.config.eval_size, run.loaded.frame.height
        if eval_size is not None and eval_size >= 1 and eval_size >= height:
            fail(
                f"--eval-size {eval_size:g}: asks for at least as many eval rows as the {height} "
                "rows read; nothing would be left to train on"
            )

    def report(self, run: Invocation, result) -> dict:
        import polars as pl  # not for --help

        from curate.io import write_frame  # polars: not for --help

        stats = dict(result.stats)
        written = {}
        eval_output = run.params["eval_output"]
        if eval_output is not None and "split" in result.kept.columns:
            write_frame(result.kept.filter(pl.col("split") == "eval"), eval_output)
            stats["eval_output"] = str(eval_output)
            written["eval"] = eval_output
        elif eval_output is not None:
            warn(f"--eval-output {eval_output}: no eval split (give --eval-size); nothing written there")
        return {"stats": stats, "extra_outputs": written}


select = SelectCommand().command()
