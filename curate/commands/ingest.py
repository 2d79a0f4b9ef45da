"""`curate ingest`: raw Q&A in any format -> canonical records."""

from __future__ import annotations

import time

import click

from curate.commands.common import finish, input_options, load_inputs, output_options, resolve_output
from curate.engines import engine_options


@click.command()
@input_options
@output_options("ingest")
@engine_options
def ingest(inputs, fmt, maps, sheet, output, json_out, engine):
    """Read INPUT files (JSONL, JSON, CSV, TSV, XLSX, Parquet, TXT, optionally .gz/.zst) into canonical
    records. Format, column roles and text encoding are detected and explained on stderr; rows that
    cannot be read go to <output>.rejects.jsonl with file, line, field and reason."""
    started = time.perf_counter()
    out = resolve_output(inputs, output, "ingest")
    loaded = load_inputs(inputs, fmt, maps, sheet, quiet=json_out, engine=engine)
    kinds = loaded.frame["kind"].value_counts().sort("kind").rows() if loaded.frame.height else []
    finish(
        "ingest",
        inputs=inputs,
        out=out,
        loaded=loaded,
        kept=loaded.frame,
        stats={"kinds": dict(kinds), "files": {f["file"]: f.get("format") for f in loaded.files}},
        json_out=json_out,
        started=started,
    )
