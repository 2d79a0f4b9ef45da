"""`curate select`: thresholds, a diverse subset of a target size, and a held-out eval split."""

from __future__ import annotations

import time
from pathlib import Path

import click

from curate.commands.common import (
    Job,
    check_writable,
    fail,
    input_options,
    load_inputs,
    output_options,
    protect,
    resolve_output,
    warn,
)
from curate.commands.generated import NUMBER
from curate.engines import engine_options, run_stage


@click.command()
@input_options
@output_options("select")
@click.option(
    "--where",
    multiple=True,
    metavar="EXPR",
    help='Keep rows where EXPR holds, e.g. "ifd < 1", "reward >= 0.2 and ppl < 80", "meta.lang == zh", '
    '"quality is not null". Repeatable (all must hold).',
)
@click.option(
    "--min", "min_", multiple=True, metavar="COL=VALUE", help="Keep rows with COL >= VALUE. Repeatable."
)
@click.option(
    "--max", "max_", multiple=True, metavar="COL=VALUE", help="Keep rows with COL <= VALUE. Repeatable."
)
@click.option(
    "--min-quantile",
    multiple=True,
    metavar="COL=Q",
    help="Drop rows below the Q quantile of COL (reward=0.25 drops the bottom quarter). Repeatable.",
)
@click.option(
    "--max-quantile",
    multiple=True,
    metavar="COL=Q",
    help="Drop rows above the Q quantile of COL (e.g. ppl=0.95).",
)
@click.option(
    "--defaults/--no-defaults",
    default=True,
    help="Apply the paper defaults (IFD >= 1 is dropped when an ifd column exists); --no-defaults: do not.",
)
@click.option(
    "--missing",
    default="drop",
    show_default=True,
    type=click.Choice(["drop", "keep"]),
    help="A row without a value in a column a threshold needs: drop it (SQL semantics) or keep it.",
)
@click.option("--target", default=None, type=int, help="Select at most N training rows.")
@click.option(
    "--by",
    default=None,
    metavar="COL",
    help="Quality order for selection, best first (default: quality, else reward; -COL sorts ascending, "
    "e.g. -ppl).",
)
@click.option(
    "--diversity",
    default="auto",
    show_default=True,
    help="Skip a row whose embedding cosine to an already selected row is at least this (DEITA); "
    "auto = 0.9 when --target is given, off otherwise; 'off' disables.",
)
@click.option(
    "--stratify",
    default=None,
    metavar="COL",
    help="Give each stratum a proportional share of --target: source (file), a column, or meta.KEY.",
)
@click.option(
    "--eval-size",
    default=None,
    type=NUMBER,
    help="Hold out this fraction (0 < F < 1) or this number of rows (an integer >= 1, fewer than the "
    "rows) as eval, by whole near-duplicate clusters.",
)
@click.option(
    "--split-threshold",
    default=0.7,
    show_default=True,
    type=float,
    help="Eval split: questions with MinHash Jaccard at least this are one cluster.",
)
@click.option(
    "--split-semantic",
    default="0.9",
    show_default=True,
    help="Eval split: questions with embedding cosine at least this are one cluster ('off' to skip).",
)
@click.option("--embed-model", default="use", show_default=True, help="use, minilm or a local model dir.")
@click.option(
    "--seed", default=0, show_default=True, type=int, help="Random seed of the eval split's cluster draw."
)
@click.option(
    "--eval-output",
    default=None,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the eval rows alone to this file (they are in the output too, with split=eval); "
    "never an input, the output or its side files.",
)
@click.option(
    "--template-diversity",
    default="auto",
    show_default=True,
    help="Rows that only share a template with a selected row (text overlap < 0.5) are dropped from this "
    "cosine on: auto (0.95 with the default --diversity, else --diversity), off (kept), or a number.",
)
@click.option(
    "--allow-demo-scores",
    is_flag=True,
    help="Let scores from the shipped demo models (demo_scores column) drive the default IFD cut and the "
    "default ranking; without it those defaults skip demo scores on data that is not a shipped sample.",
)
@engine_options
def select(
    inputs, fmt, maps, sheet, output, json_out, where, min_, max_, min_quantile, max_quantile, defaults,
    missing, target, by, diversity, stratify, eval_size, split_threshold, split_semantic, embed_model, seed,
    eval_output, template_diversity, allow_demo_scores, engine,
) -> None:  # fmt: skip
    """Pick a diverse, high-quality subset, and a held-out eval split with no near-duplicate leakage.

    \b
    Examples:
      curate select scored.jsonl --target 10000
      curate select scored.jsonl --where "ifd < 1" --min reward=0.2 --target 5000 --stratify meta.category
      curate select scored.jsonl --eval-size 0.05 -o train.jsonl
    """
    from curate.select import SelectConfig, SelectError, run

    started = time.perf_counter()
    try:
        sem = None if str(split_semantic).lower() in ("off", "none", "0") else float(split_semantic)
        config = SelectConfig(
            where=where,
            min=min_,
            max=max_,
            min_quantile=min_quantile,
            max_quantile=max_quantile,
            defaults=defaults,
            missing=missing,
            target=target,
            by=by,
            diversity=diversity,
            stratify=stratify,
            eval_size=eval_size,
            split_threshold=split_threshold,
            split_semantic=sem,
            embed_model=embed_model,
            seed=seed,
            allow_demo_scores=allow_demo_scores,
            template_diversity=template_diversity,
        )
    except (SelectError, ValueError) as exc:
        fail(str(exc))
    out = resolve_output(inputs, output, "select")
    if eval_output is not None:
        # checked before anything is read or written: the eval file must not replace an input, the
        # output or a side file of the output
        check_writable(eval_output, "--eval-output")
        protect(inputs, out, eval_output, "--eval-output")
    loaded = load_inputs(inputs, fmt, maps, sheet, quiet=json_out, engine=engine)
    if eval_size is not None and eval_size >= 1 and eval_size >= loaded.frame.height:
        fail(
            f"--eval-size {eval_size:g}: asks for at least as many eval rows as the {loaded.frame.height} "
            "rows read; nothing would be left to train on"
        )
    try:
        # select needs the whole set at once: on Ray it runs on the driver (the engine says so in stats)
        from curate.progress import reporter

        with reporter(json_out) as progress:
            result = run_stage(run, loaded.frame, config, engine, progress=progress)
    except SelectError as exc:
        fail(str(exc))
    stats = dict(result.stats)
    written = {}
    if eval_output is not None and "split" in result.kept.columns:
        import polars as pl

        from curate.io import write_frame

        write_frame(result.kept.filter(pl.col("split") == "eval"), eval_output)
        stats["eval_output"] = str(eval_output)
        written["eval"] = eval_output
    elif eval_output is not None:
        warn(f"--eval-output {eval_output}: no eval split (give --eval-size); nothing written there")
    Job("select", inputs, out, loaded, json_out, started).finish(result, stats=stats, extra_outputs=written)
