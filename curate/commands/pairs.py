"""`curate pairs`: DPO preference pairs (ranked answers, curated vs generated, existing pairs)."""

from __future__ import annotations

import time

import click

from curate.augment.teachers import TeacherError
from curate.commands.augment import teacher_options
from curate.commands.common import (
    Job,
    fail,
    input_options,
    load_inputs,
    output_options,
    resolve_output,
)
from curate.commands.common import StepProgress as Progress
from curate.pairs import PairsConfig, run
from curate.select import SelectError, column_values


@click.command()
@input_options
@output_options("pairs")
@click.option(
    "--mode",
    "modes",
    default=None,
    help="Comma-separated: ranked (several answers to one question, best vs worst by --score), generated "
    "(curated answer vs --model's answer), existing (preference rows in the input). Default: ranked,existing, "
    "plus generated when --model or --model-url is given.",
)
@click.option(
    "--score", default="reward", show_default=True, help="Ranked: the score column to rank answers by."
)
@click.option(
    "--min-margin",
    default=0.0,
    show_default=True,
    type=float,
    help="Ranked: best - worst score must be at least this.",
)
@click.option(
    "--max-similarity",
    default=0.9,
    show_default=True,
    type=float,
    help="Drop a pair whose sides share at least this Jaccard of character 3-grams (near-identical).",
)
@teacher_options()
@click.option("--keep-sft", is_flag=True, help="Also keep SFT rows that did not become pairs.")
@click.pass_context
def pairs(ctx, inputs, fmt, maps, sheet, output, json_out, modes, **opts) -> None:
    """Build DPO preference pairs; identical or near-identical sides are dropped with a reason.

    \b
    Examples:
      curate pairs scored.jsonl --min-margin 0.5          # several answers per question, by reward
      curate pairs curated.jsonl --model ./models/base    # curated answer vs the base model's answer
      curate pairs dpo_zh.json                            # check existing preference data
    """
    started = time.perf_counter()
    explicit_ranked = ctx.get_parameter_source("score") is not click.core.ParameterSource.DEFAULT or (
        modes is not None and "ranked" in [m.strip() for m in modes.split(",")]
    )
    try:
        config = PairsConfig(modes=modes, **opts)
    except ValueError as exc:
        fail(str(exc))
    out = resolve_output(inputs, output, "pairs")
    loaded = load_inputs(inputs, fmt, maps, sheet, quiet=json_out)
    if explicit_ranked and "ranked" in config.modes:
        # asked for by name (--score or --mode ranked): a missing score column is an error, as for
        # select --by, not a silent "0 pairs"
        frame = loaded.frame
        if frame.height and (frame["kind"] == "sft").any():
            try:
                column_values(frame, config.score)
            except SelectError as exc:
                fail(f"--score {config.score}: {exc} (run `curate score` first, or pick another --score)")
    try:
        with Progress(not json_out) as progress:
            result = run(loaded.frame, config, progress=progress)
    except TeacherError as exc:
        fail(str(exc))
    Job("pairs", inputs, out, loaded, json_out, started).finish(result)
