"""`curate stats`: a quick profile of a dataset."""

from __future__ import annotations

import sys

import click

from curate import rejects
from curate.commands.common import emit_json, fail, input_options, load_inputs


@click.command()
@input_options
@click.option(
    "--tokenizer", default=None, help="Tokenizer (hub id or local path) for token-length percentiles."
)
@click.option("--json", "json_out", is_flag=True, help="Print the statistics as one JSON line on stdout.")
def stats(inputs, fmt, maps, sheet, tokenizer, json_out):
    """Rows, languages (zh/en/mixed by script), length percentiles in characters (and tokens with
    --tokenizer), turns, system prompts and per-source counts."""
    from curate.stats import compute

    loaded = load_inputs(inputs, fmt, maps, sheet, quiet=True)
    if not json_out:
        for line in loaded.explanations:
            # stats writes no files: the rejected rows are summarised here instead
            click.echo(line.replace("(see the rejects file)", "(listed below)"), err=True)
    tok = None
    if tokenizer:
        from transformers import AutoTokenizer

        try:
            tok = AutoTokenizer.from_pretrained(tokenizer)
        except (OSError, ValueError) as exc:
            fail(f"cannot load tokenizer {tokenizer!r}: {exc}")
    result = compute(loaded.frame, tok)
    result["input_rows"] = loaded.input_rows
    result["rejected"] = loaded.rejects.height
    if loaded.rejects.height:
        result["rejects_by_reason"] = dict(
            loaded.rejects["reason"].value_counts().sort("count", descending=True).head(10).rows()
        )
    code = rejects.exit_code(loaded.rejects.height, loaded.input_rows)  # --max-rejected
    result["exit_code"] = code
    if json_out:
        emit_json(result)
        sys.exit(code)
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    con = Console(stderr=False)
    t = Table(title="dataset", show_header=False, title_justify="left")
    for k in ("input_rows", "rows", "rejected", "unique_ids", "with_system"):
        t.add_row(k.replace("_", " "), f"{result.get(k, 0):,}")
    for k, v in (result.get("kinds") or {}).items():
        t.add_row(escape(f"kind: {k}"), f"{v:,}")
    for k, v in (result.get("languages") or {}).items():
        t.add_row(escape(f"language: {k}"), f"{v:,}")
    for k, v in (result.get("turns") or {}).items():
        t.add_row(escape(f"turns: {k}"), f"{v:,}")
    con.print(t)
    for unit in ("chars", "tokens"):
        if result.get(unit):
            lt = Table(title=f"length in {unit}", title_justify="left")
            lt.add_column("field")
            for c in ("min", "p10", "p50", "p90", "p99", "max", "mean"):
                lt.add_column(c, justify="right")
            for field, pct in result[unit].items():
                lt.add_row(
                    escape(str(field)),
                    *[str(pct.get(c, "")) for c in ("min", "p10", "p50", "p90", "p99", "max", "mean")],
                )
            con.print(lt)
    st = Table(title="sources", title_justify="left")
    st.add_column("file")
    st.add_column("rows", justify="right")
    for k, v in (result.get("sources") or {}).items():
        st.add_row(escape(str(k)), f"{v:,}")
    con.print(st)
    if loaded.rejects.height:
        rt = Table(
            title="rejected rows (not written: run `curate ingest` for the rejects file)",
            title_justify="left",
        )
        rt.add_column("reason")
        rt.add_column("rows", justify="right")
        for reason, n in result["rejects_by_reason"].items():
            rt.add_row(escape(str(reason)), f"{n:,}")
        con.print(rt)
    sys.exit(code)
