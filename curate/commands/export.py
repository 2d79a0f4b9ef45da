"""`curate export`: write a dataset in the layout a trainer reads (TRL, Alpaca, ShareGPT, OpenAI,
LLaMA-Factory with its dataset_info.json entry), with the epochs hint in the summary.

Unlike the other commands, ``--format`` names the *output* layout here (``curate export DATA -o OUT
--format trl``); the input format override is ``--input-format``.
"""

from __future__ import annotations

import time
from pathlib import Path

import click

from curate.commands.common import (
    check_side_files,
    check_writable,
    encoding_option,
    fail,
    finish,
    inputs_argument,
    load_inputs,
    protect,
)


@click.command()
@inputs_argument
@click.option(
    "-o",
    "--output",
    default=None,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Output file (.jsonl or .json). Default: next to the first input, as <name>.exported.jsonl "
    "(data.selected.jsonl -> data.exported.jsonl, which `train` picks up without arguments). Held-out "
    "rows (split or meta.split = eval/test/validation/dev) go to <name>.eval.<ext>.",
)
@click.option(
    "--format",
    "target",
    default="trl",
    show_default=True,
    type=click.Choice(["trl", "alpaca", "sharegpt", "openai", "llamafactory"]),
    help="Trainer layout to write.",
)
@click.option(
    "--kind",
    default="auto",
    show_default=True,
    type=click.Choice(["auto", "sft", "preference", "kto", "text"]),
    help="Which records to export (auto: the most common kind); a file holds one kind.",
)
@click.option(
    "--keep-meta",
    is_flag=True,
    help="Write meta keys back as fields and restore each row's original shape (round trip). Default: "
    "a uniform, trainer-ready schema.",
)
@click.option(
    "--name",
    default=None,
    help="LLaMA-Factory: dataset name in dataset_info.json (default: the file name without its extension, "
    "e.g. ops.sft for ops.sft.json). An entry of that name for another file is an error.",
)
@click.option(
    "--dataset-info",
    default=None,
    type=click.Path(dir_okay=False),
    help="LLaMA-Factory: the dataset_info.json to update (default: beside the output).",
)
@click.option(
    "--input-format", "fmt", default=None, metavar="FORMAT", help="Override input format detection."
)
@click.option("--map", "maps", multiple=True, metavar="FIELD=COLUMN[,COLUMN]", help="Map an input column.")
@click.option("--sheet", default=None, help="XLSX: read only this sheet.")
@encoding_option
@click.option("--json", "json_out", is_flag=True, help="Print a one-line JSON summary on stdout.")
def export(inputs, output, target, kind, keep_meta, name, dataset_info, fmt, maps, sheet, json_out) -> None:
    """Write DATA for a trainer: --format trl | alpaca | sharegpt | openai | llamafactory.

    \b
    Examples:
      curate export curated.jsonl --format trl          # writes curated.exported.jsonl
      curate export curated.jsonl -o train.jsonl --format trl
      curate export pairs.jsonl -o data/dpo.json --format llamafactory --name my_dpo
    The summary ends with a hint: the row count and the epochs the source article's table suggests.

    \b
    Which formats hold which kinds (any other pairing is refused before anything is written, exit 2):
      sft         trl, alpaca, sharegpt, openai, llamafactory
      preference  trl, alpaca, sharegpt, openai, llamafactory
      kto         trl, alpaca, sharegpt, llamafactory
      text        trl, alpaca, llamafactory
    """
    from curate.export import ExportConfig, check_pairing, convert, epochs_hint, output_paths, write

    started = time.perf_counter()
    if output is None:
        from curate.io import default_output

        output = default_output(Path(inputs[0]), "export")  # like every command: <name>.exported.jsonl
    if output.suffix.lower() not in (".jsonl", ".json"):
        fail(f"{output}: exports are .jsonl or .json files")
    check_writable(output, "-o", (".jsonl", ".json"))
    try:
        config = ExportConfig(
            format=target, kind=kind, keep_meta=keep_meta, name=name, dataset_info=dataset_info
        )
        check_pairing(target, kind)  # an explicit --kind: refused before anything is read
    except ValueError as exc:
        fail(str(exc))
    # every file the export writes (or removes: a stale eval file) and the side files, checked before
    # anything is written
    for what, p in output_paths(config, output).items():
        fix = "--dataset-info" if what == "dataset_info" else "-o"
        protect(inputs, None, p, f"the {what} file of {output}", fix)
    check_side_files(inputs, output)
    loaded = load_inputs(inputs, fmt, maps, sheet, quiet=json_out)
    records, splits, kind_used, kept, dropped = convert(loaded.frame, config)
    try:
        written = write(records, splits, kind_used, config, output)
    except (ValueError, OSError) as exc:
        fail(str(exc))
    n_eval = sum(1 for s in splits if s == "eval")
    hint = epochs_hint(len(records) - n_eval, kind_used)
    stats = {
        "format": target,
        "kind": kind_used,
        # kept: every row written (train + eval), like the other commands; exported/eval_rows split it
        "kept": len(records),
        "exported": len(records) - n_eval,
        "eval_rows": n_eval,
        "epochs_hint": hint.get("epochs_rounded"),
        "output": str(output),
    }
    keys = (
        "eval",
        "dataset_info",
        "dataset_name",
        "removed_stale_eval",
        "dataset_card",
        "dataset_card_skipped",
    )
    stats.update({k: v for k, v in written.items() if k in keys})
    stats["hint"] = hint["text"]
    files = {"output": output, **{k: written.get(k) for k in ("eval", "dataset_info", "dataset_card")}}
    # the export file is written above; finish() writes the dropped rows and rejects beside it
    finish(
        "export",
        inputs=inputs,
        out=output,
        loaded=loaded,
        kept=None,
        dropped=dropped,
        stats=stats,
        json_out=json_out,
        started=started,
        extra_outputs=files,
    )
