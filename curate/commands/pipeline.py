"""`curate run | init | runs | refresh`: recipes, the stage cache, manifests and dataset versions.

Exit codes: 0 ok; 1 finished, but some input rows could not be read (rejects); 2 usage error, bad
recipe, unreadable input, no readable rows (`run`) or a stage that failed or is not available; 3
(refresh only) another refresh of the same state is running, nothing was changed. With --json every
failure also prints one JSON error line on stdout.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click
import yaml

from curate import rejects, yamlsafe
from curate.commands.common import EXIT_USAGE, check_writable, emit_json, fail, no_rows_message, warn
from curate.engines import recipe_engine_options

EXIT_LOCKED = 3


def _load(recipe_path: Path, sets: tuple[str, ...] = ()):
    from curate.pipeline.recipe import RecipeError, load_recipe

    overrides = {}
    for item in sets:
        if "=" not in item:
            fail(f"--set {item!r}: expected STAGE.OPTION=VALUE")
        k, v = item.split("=", 1)
        try:
            overrides[k.strip()] = yamlsafe.load(v)
        except yaml.YAMLError:
            overrides[k.strip()] = v
    try:
        return load_recipe(recipe_path, overrides=overrides)
    except RecipeError as exc:
        fail(str(exc))


def _errors():
    from curate.io import InputError
    from curate.pipeline.recipe import RecipeError
    from curate.pipeline.run import PipelineError
    from curate.pipeline.stages import StageUnavailable

    return (RecipeError, PipelineError, StageUnavailable, InputError)


def _tolerated(recipe, rows: dict) -> bool:
    """Rejected input rows within the recipe's max_rejected (--max-rejected): exit 0, said in --json."""
    n = rows.get("rejected", 0)
    return bool(n) and rejects.tolerated(n, rows.get("input", 0) or 0, recipe.max_rejected)


@click.command()
@click.argument("recipe", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Ignore the stage cache and recompute every stage.")
@click.option(
    "--rerun",
    multiple=True,
    metavar="STAGE",
    help="Recompute this stage (and every later one) even if cached. Repeatable.",
)
@click.option(
    "--set",
    "sets",
    multiple=True,
    metavar="STAGE.OPTION=VALUE",
    help="Override one stage option for this run (YAML value), e.g. --set dedup.threshold=0.9.",
)
@click.option(
    "--report",
    "report_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the HTML report here (default: outputs.report of the recipe, if set).",
)
@recipe_engine_options
@rejects.option
@click.option("--json", "json_out", is_flag=True, help="Print a one-line JSON summary on stdout.")
def run(recipe, force, rerun, sets, report_path, override_engine, json_out):
    """Run RECIPE (a YAML file): ingest the inputs, run every stage in order, write the outputs and a
    manifest. Each stage's result is cached in the work directory under a key made of its input, its
    options, its code and its models, so an unchanged re-run recomputes nothing and changing one stage
    re-runs from that stage on."""
    from curate.pipeline.run import run_recipe

    r = _load(recipe, sets)
    r.engine = override_engine(r.engine)  # the engine flags given override the recipe's `engine:`
    r.max_rejected = rejects.limit(r.max_rejected)  # --max-rejected overrides the recipe's max_rejected
    if report_path is not None:
        check_writable(report_path, "--report", any_extension=True)
    try:
        res = run_recipe(
            r,
            force=force,
            rerun=tuple(rerun),
            quiet=json_out,
            argv=sys.argv,
            extra_outputs={"--report": report_path} if report_path is not None else None,
        )
    except _errors() as exc:
        fail(str(exc))
    readable = (res.manifest.get("stages") or [{}])[0].get("kept")
    if readable == 0:
        # a one-shot run over inputs with no readable row is an error, not an empty dataset
        from curate.pipeline.run import input_label

        msg = no_rows_message([input_label(r, s.path) for s in r.inputs], None)
        if res.manifest["rows"].get("rejected"):
            msg = msg.replace("(the files hold no rows)", f"({res.manifest['rows']['rejected']} rejected)")
        fail(msg)
    for st in res.manifest.get("stages") or []:
        cot = (st.get("stats") or {}).get("cot") or {}
        if cot.get("failed_requests"):
            # part of the work failed (the rows have no chain-of-thought variant): exit 1, not 0
            warn(
                f"stage {st['id']}: {cot['failed_requests']} of {cot.get('requested')} teacher requests "
                f"failed (first error: {cot.get('first_error')}); `curate run --rerun {st['id']}` retries them"
            )
            res.exit_code = max(res.exit_code, 1)
    target = report_path or r.outputs.get("report")
    if target is not None:
        from curate.pipeline.run import write_run_report

        written = write_run_report(r, res, target)
        res.manifest.setdefault("outputs", {})["report"] = {"path": str(target), "rewritten": written}
        if not json_out:
            click.echo(f"  report: {target}{'' if written else ' (unchanged)'}", err=True)
    if json_out:
        from curate.export import export_files

        m = res.manifest
        emit_json(
            {
                "status": m["status"],
                "run_id": m["run_id"],
                "rows": m["rows"],
                "stages": {
                    s["id"]: {k: s[k] for k in ("in", "kept", "dropped", "added", "cached")}
                    for s in m["stages"]
                },
                "cache": m["cache"],
                "outputs": m["outputs"],
                "exports": export_files(m),
                "manifest": str(res.manifest_path),
                "seconds": m["seconds"],
                "exit_code": res.exit_code,
                **({"rejected_tolerated": True} if _tolerated(r, m["rows"]) else {}),
            }
        )
    sys.exit(res.exit_code)


@click.command()
@click.argument("output", type=click.Path(dir_okay=False, path_type=Path), default=Path("recipe.yaml"))
@click.option(
    "--input",
    "input_path",
    multiple=True,
    default=("data.jsonl",),
    show_default=True,
    help="An input file the starter recipe names. Repeatable: every one is kept.",
)
@click.option(
    "--name",
    default=None,
    help="Recipe name (default: the output file's stem; my-dataset when the file is recipe.yaml).",
)
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
def init(output, input_path, name, force):
    """Write a commented starter recipe to OUTPUT (default recipe.yaml)."""
    from curate.io import atomic_write_text
    from curate.pipeline.recipe import starter

    if output.exists() and not force:
        fail(f"{output} exists; use --force to overwrite it")
    name = name or (output.stem if output.stem != "recipe" else "my-dataset")
    atomic_write_text(output, starter(name, input_path, output.name))
    click.echo(f"wrote {output}; edit the inputs and stages, then: curate run {output}", err=True)


@click.command()
@click.argument("recipe", type=click.Path(path_type=Path))
@click.option("--json", "json_out", is_flag=True, help="One JSON object per run on stdout.")
@click.option(
    "-n",
    "--last",
    "last",
    type=click.IntRange(min=1),
    default=20,
    show_default=True,
    help="Show the last N runs (N >= 1).",
)
@click.option(
    "--prune",
    "prune_keep",
    type=int,
    default=None,
    metavar="N",
    help="Delete cache entries and manifests not needed by the last N successful runs, then list.",
)
def runs(recipe, json_out, last, prune_keep):
    """List past runs of RECIPE (or of a work directory): when, status, rows in and out, cached stages,
    time; and the dataset versions made by `curate refresh`. `--prune N` reclaims the space of stage
    cache entries that only older runs used."""
    from curate.pipeline.refresh import list_versions
    from curate.pipeline.run import list_runs, prune

    if recipe.is_dir():
        work_dir, state_dir = recipe, recipe / "state"
    else:
        r = _load(recipe)
        work_dir, state_dir = r.work_dir, r.state_dir
    if prune_keep is not None:
        if prune_keep < 1:
            fail("--prune N: keep at least the last run (N >= 1)")
        done = prune(work_dir, prune_keep)
        msg = {
            "pruned_cache_entries": len(done["cache_entries"]),
            "pruned_runs": len(done["runs"]),
            "bytes_freed": done["bytes"],
        }
        if json_out:
            click.echo(json.dumps({**msg, "exit_code": 0}))
        else:
            click.echo(
                f"pruned {msg['pruned_cache_entries']} cache entries and {msg['pruned_runs']} run manifests "
                f"({done['bytes'] / 1e6:.1f} MB freed)",
                err=True,
            )
    items = list_runs(work_dir)[-last:]
    vers = list_versions(state_dir)
    if json_out:
        for m in items:
            click.echo(
                json.dumps(
                    {
                        k: m.get(k)
                        for k in ("run_id", "status", "started", "seconds", "rows", "cache", "error", "_path")
                    },
                    ensure_ascii=False,
                )
            )
        for v in vers:
            click.echo(
                json.dumps(
                    {
                        "version": v["version"],
                        "created": v.get("created"),
                        "rows": v.get("rows"),
                        "added": v["added"]["count"],
                        "removed": v["removed"]["count"],
                    },
                    ensure_ascii=False,
                )
            )
        return
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 150)
    if not items and not vers:
        console.print(f"no runs yet in {work_dir}")
        return
    if items:
        t = Table(title=f"runs in {work_dir}", title_justify="left")
        for col in (
            "run",
            "started",
            "status",
            "input",
            "output",
            "dropped",
            "rejected",
            "cached",
            "seconds",
        ):
            t.add_column(col, justify="right" if col not in ("run", "started", "status") else "left")
        for m in items:
            rows = m.get("rows") or {}
            cache = m.get("cache") or {}
            n_st = len(m.get("stages") or [])
            t.add_row(
                m["run_id"],
                m.get("started", ""),
                m.get("status", "") if m.get("status") == "ok" else f"[red]{m.get('status')}[/]",
                f"{rows.get('input', '')}",
                f"{rows.get('output', '')}",
                f"{rows.get('dropped', '')}",
                f"{rows.get('rejected', '')}",
                f"{cache.get('hits', 0)}/{n_st}",
                f"{m.get('seconds', '')}",
            )
        console.print(t)
    if vers:
        t = Table(title=f"dataset versions in {state_dir}", title_justify="left")
        for col in ("version", "created", "rows", "new rows", "added", "removed", "changed", "new dropped"):
            t.add_column(col)
        for v in vers:
            t.add_row(
                v["version"],
                v.get("created", ""),
                str(v.get("rows")),
                str(v.get("new_rows")),
                str(v["added"]["count"]),
                str(v["removed"]["count"]),
                str(v["changed"]["count"]),
                str(v["new_rows_dropped"]["count"]),
            )
        console.print(t)


@click.command()
@click.argument("recipe", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("new_inputs", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "--state",
    "state_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="State directory (default: the recipe's `state:`, else <work_dir>/state).",
)
@click.option(
    "--rebuild",
    is_flag=True,
    help="Reprocess every row seen so far (needed after changing the dedup/filter/score options).",
)
@recipe_engine_options
@rejects.option
@click.option(
    "--json", "json_out", is_flag=True, help="Print a one-line JSON summary on stdout (for schedulers)."
)
def refresh(recipe, new_inputs, state_dir, rebuild, override_engine, json_out):
    """Add NEW_INPUTS (default: the recipe's inputs, e.g. a raw export or a shard folder that keeps
    growing; anything `curate ingest` reads) to the dataset: only rows not seen before (by id) are processed, deduplicated against everything seen,
    filtered and scored; the whole-set stages (select, pairs, export) run again and a new dataset version
    is written with a changelog. Safe to kill at any point; the next run finishes the job.

    Exit codes: 0 ok (also when there was nothing new), 1 some input rows rejected, 2 error,
    3 another refresh of the same state is running (nothing changed)."""
    from curate.pipeline.refresh import Locked
    from curate.pipeline.refresh import refresh as do_refresh

    r = _load(recipe)
    r.engine = override_engine(r.engine)  # the engine flags given override the recipe's `engine:`
    r.max_rejected = rejects.limit(r.max_rejected)  # --max-rejected overrides the recipe's max_rejected
    if state_dir is not None:
        r.state_dir = state_dir
    for p in new_inputs:
        if not os.path.lexists(p):
            fail(f"{p}: input file not found")
    try:
        res = do_refresh(r, list(new_inputs) or None, quiet=json_out, rebuild=rebuild)
    except Locked as exc:
        if json_out:
            emit_json(
                {
                    "status": "locked",
                    "state": str(r.state_dir),
                    "error": str(exc),
                    "message": str(exc),
                    "exit_code": EXIT_LOCKED,
                }
            )
        fail(str(exc), EXIT_LOCKED)
    except _errors() as exc:
        if json_out:
            emit_json({"status": "error", "error": str(exc), "message": str(exc), "exit_code": EXIT_USAGE})
        fail(str(exc))
    s = res.summary
    if s.get("input_rows") is not None and s.get("input_rows", 0) - s.get("rejected", 0) <= 0:
        # cron-friendly: an empty batch changes nothing and is not an error, but it is said
        batch = ", ".join(str(p) for p in (new_inputs or [i.path for i in r.inputs]))
        warning = f"no readable rows in {batch}"
        if s.get("rejected"):
            warning += f" ({s['rejected']} rejected)"
        warn(warning + (f"; the dataset stays at {s['version']}" if s.get("status") == "unchanged" else ""))
        s["warning"] = warning
    for w in s.get("warnings", []):  # the refresh wrote its report; a failure after its commit is a warning
        warn(w)
    res.summary["exit_code"] = res.exit_code
    if json_out:
        emit_json(res.summary)
    sys.exit(res.exit_code)
