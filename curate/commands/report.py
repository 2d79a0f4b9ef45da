"""`curate report`: one self-contained HTML file about a run, a refresh state or a dataset."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from curate.commands.common import check_writable, emit_json, fail


@click.command()
@click.argument("target", type=click.Path(exists=True, path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The HTML file to write. Default: report.html inside TARGET when it is a directory, else "
    "<name>.report.html beside TARGET (data.curated.jsonl -> data.report.html; recipe.yaml -> "
    "recipe.report.html). Never a file the report reads.",
)
@click.option("--json", "json_out", is_flag=True, help="Print a one-line JSON summary on stdout.")
def report(target, output, json_out):
    """Write a self-contained HTML report (no network needed to open it) of TARGET: a recipe, a run
    manifest or run directory, a work directory (its latest run), a refresh state directory (every
    dataset version, with before/after), or a curated data file (with its .dropped.jsonl side file).

    The page shows the funnel of rows through the stages, drops by rule with examples, duplicate
    clusters, length and score histograms (kept vs dropped), the language mix, version changes, and a
    searchable, sortable table of sample rows with their scores and flags."""
    from curate.pipeline.recipe import RecipeError
    from curate.pipeline.report import ReportError, build_payload, render

    started = time.perf_counter()
    if output is None:
        from curate.io.writers import default_report_output  # polars: not for --help

        output = default_report_output(target)
    if output.resolve() == target.resolve():
        fail(f"refusing to overwrite {target}")
    _check_output(target, output)
    check_writable(output, "-o", any_extension=True)
    try:
        payload = build_payload(target)
    except (ReportError, RecipeError) as exc:
        fail(str(exc))
    from curate.io import atomic_write_text
    from curate.pipeline.report import _nan_safe

    html = render(_nan_safe(payload))
    atomic_write_text(output, html)
    summary = {
        "report": str(output),
        "source": payload.get("source"),
        "kind": payload.get("kind"),
        "bytes": len(html.encode("utf-8")),
        **{k: payload["summary"][k] for k in ("input", "kept", "dropped", "rejected")},
        "seconds": round(time.perf_counter() - started, 3),
    }
    summary["exit_code"] = 0
    if json_out:
        emit_json(summary)
    else:
        click.echo(
            f"wrote {output} ({summary['bytes'] / 1024:.0f} KiB): {summary['input']:,} rows in, "
            f"{summary['kept']:,} kept, {summary['dropped']:,} dropped, {summary['rejected']:,} rejected",
            err=True,
        )
    sys.exit(0)


def _check_output(target: Path, output: Path) -> None:
    """Exit 2 when -o is a file the report reads (the data and its dropped/rejects files, a manifest,
    the recipe, its inputs and outputs) or a non-HTML file inside a run, cache or state directory."""
    from curate.pipeline.report import report_sources

    files, dirs = report_sources(target)
    o = output.resolve()
    if o in files:
        fail(f"refusing to overwrite {files[o]} ({output}) with the report; choose another -o")
    if o.suffix.lower() not in (".html", ".htm"):
        for d in dirs:
            if o.is_relative_to(d):
                fail(f"refusing to write the report over {output}, inside {d} that the report reads")
