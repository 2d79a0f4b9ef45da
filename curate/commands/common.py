"""What every `curate` command shares: input options, loading with rejects, atomic outputs, the summary
(human table on stderr or one JSON line on stdout), and exit codes.

Exit codes: 0 ok; 1 finished, but some input rows could not be read (they are in the rejects file);
2 usage error or unreadable input.
"""

from __future__ import annotations

import functools
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from curate.names import STAGE_SUFFIX

EXIT_OK, EXIT_REJECTS, EXIT_USAGE = 0, 1, 2
# the side files finish() writes beside an output (and removes when a run has none of those rows)
SIDE_FILES = ("dropped", "rejects")


def input_options(f: Callable) -> Callable:
    """INPUT... plus the format/mapping overrides accepted by every command."""
    f = click.option("--sheet", default=None, help="XLSX: read only this sheet (default: every sheet).")(f)
    f = click.option(
        "--map",
        "maps",
        multiple=True,
        metavar="FIELD=COLUMN[,COLUMN]",
        help="Map an input column to a record field (question, answer, system, chosen, rejected, "
        "label, text, history); several columns are joined with a newline. Repeatable.",
    )(f)
    f = click.option(
        "--format",
        "fmt",
        default=None,
        metavar="FORMAT",
        help="Override format detection: alpaca, sharegpt, openai, qa, preference, "
        "llamafactory-preference, trl-prompt-completion, trl-preference, kto, hh-rlhf, text, canonical.",
    )(f)
    f = click.option(
        "--encoding",
        default=None,
        metavar="NAME",
        expose_value=False,  # read by load_inputs from the click context: no command signature changes
        callback=_remember_encoding,
        help="Text encoding of the inputs (e.g. gb18030, big5, utf-16), when detection gets it wrong; "
        "default: detected per file (UTF-8/BOM, UTF-16, GB18030, statistical guess).",
    )(f)
    f = click.argument("inputs", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))(f)
    return f


def _remember_encoding(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value:
        import codecs

        try:
            codecs.lookup(value)
        except LookupError:
            raise click.BadParameter(f"unknown encoding {value!r}") from None
        ctx.meta["curate.encoding"] = value
    return value


def output_options(stage: str) -> Callable:
    def deco(f: Callable) -> Callable:
        f = click.option(
            "--json",
            "json_out",
            is_flag=True,
            help="Print a one-line JSON summary on stdout (for schedulers).",
        )(f)
        f = click.option(
            "-o",
            "--output",
            type=click.Path(dir_okay=False, path_type=Path),
            default=None,
            help=f"Output file; format from its extension (.jsonl .json .parquet .csv .tsv .xlsx). "
            f"Default: next to the first input, as <name>.{STAGE_SUFFIX.get(stage, stage)}.jsonl.",
        )(f)
        return f

    return deco


def parse_maps(maps: tuple[str, ...]) -> dict[str, list[str]]:
    mapping: dict[str, list[str]] = {}
    for item in maps:
        if "=" not in item:
            raise click.UsageError(f"--map {item!r}: expected FIELD=COLUMN")
        key, cols = item.split("=", 1)
        mapping[key.strip()] = [c.strip() for c in cols.split(",") if c.strip()]
    return mapping


def fail(message: str, code: int = EXIT_USAGE) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def load_inputs(inputs, fmt=None, maps=(), sheet=None, *, quiet: bool = False, engine=None):
    """Read every input into one canonical frame; an unreadable file exits 2 with its name and reason.
    With a Ray ``engine`` (an EngineSpec) the files are read in parallel, one task per file."""
    from curate.io import InputError, load

    if engine is not None and engine.name == "ray":
        from curate.engines.ray import load

        load = functools.partial(load, spec=engine)
    ctx = click.get_current_context(silent=True)
    encoding = ctx.meta.get("curate.encoding") if ctx is not None else None
    kwargs = {"encoding": encoding} if encoding else {}
    try:
        result = load(list(inputs), fmt=fmt, mapping=parse_maps(tuple(maps)), sheet=sheet, **kwargs)
    except InputError as exc:
        fail(str(exc))
    except RuntimeError as exc:  # Ray missing or the cluster unreachable
        fail(str(exc))
    if not quiet:
        for line in result.explanations:
            click.echo(line, err=True)
    return result


def resolve_output(inputs, output: Path | None, stage: str) -> Path:
    from curate.io import default_output

    out = output if output is not None else default_output(Path(inputs[0]), stage)
    resolved = out.resolve()
    for src in inputs:
        if Path(src).resolve() == resolved:
            fail(f"refusing to overwrite the input {src}; choose another -o")
    check_side_files(inputs, out)
    return out


def side_files(inputs, out: Path | None) -> dict[str, Path]:
    """The side files of a run: ``dropped`` and ``rejects`` beside ``out``; without an output, the
    rejects beside the first input."""
    if out is None:
        return {"rejects": side_path(Path(inputs[0]), "rejects")}
    return {kind: side_path(out, kind) for kind in SIDE_FILES}


def check_side_files(inputs, out: Path | None, has_rejects: bool = True) -> None:
    """Exit 2 when a side file of this run would be one of the inputs (it would be overwritten, or
    removed as stale). Without an output only a rejects file is ever written, and only when there are
    rejects."""
    sources = {Path(src).resolve(): src for src in inputs}
    for kind, p in side_files(inputs, out).items():
        if out is None and not has_rejects:
            continue
        src = sources.get(p.resolve())
        if src is not None:
            fail(f"refusing to overwrite the input {src} with the {kind} rows of {out}; choose another -o")


def _remove_stale(path: Path) -> bool:
    """Remove a side file an earlier run left (this run has no such rows); True when one was removed."""
    try:
        if path.is_file() or path.is_symlink():
            path.unlink()
            return True
    except FileNotFoundError:
        pass
    except OSError as exc:
        fail(f"cannot remove the stale side file {path} from an earlier run: {exc}")
    return False


def side_path(out: Path, suffix: str) -> Path:
    """`data.filtered.jsonl` -> `data.filtered.dropped.jsonl` (side files are always JSONL)."""
    name = out.name
    for ext in (".jsonl", ".json", ".parquet", ".csv", ".tsv", ".xlsx"):
        if name.endswith(ext):
            name = name[: -len(ext)]
            break
    return out.with_name(f"{name}.{suffix}.jsonl")


def finish(
    stage: str,
    *,
    inputs,
    out: Path | None,
    loaded,
    kept=None,
    dropped=None,
    stats: dict[str, Any] | None = None,
    json_out: bool = False,
    started: float | None = None,
    extra_tables: dict[str, list[tuple[str, Any]]] | None = None,
) -> None:
    """Write kept/dropped/rejects atomically, print the summary, exit with the right code.

    A side file (``<out>.dropped.jsonl``, ``<out>.rejects.jsonl``) is written only when there are such
    rows; one an earlier run left beside ``out`` is removed when this run has none, so the files beside
    an output always describe that output. A side file that would be an input is a usage error (exit 2),
    checked before anything is written."""
    from curate.io import write_frame, write_rejects

    check_side_files(inputs, out, has_rejects=bool(loaded.rejects.height))
    sides = side_files(inputs, out)
    stats = dict(stats or {})
    n_in = loaded.input_rows
    n_rejected = loaded.rejects.height
    outputs: dict[str, str] = {}
    stale: list[str] = []
    if out is not None and kept is not None:
        write_frame(kept, out)
        outputs["output"] = str(out)
    if out is not None and dropped is not None and dropped.height:
        write_frame(dropped, sides["dropped"])
        outputs["dropped"] = str(sides["dropped"])
    elif out is not None and _remove_stale(sides["dropped"]):
        stale.append(str(sides["dropped"]))
    if n_rejected:
        write_rejects(loaded.rejects, sides["rejects"])
        outputs["rejects"] = str(sides["rejects"])
    elif out is not None and _remove_stale(sides["rejects"]):
        stale.append(str(sides["rejects"]))
    summary: dict[str, Any] = {
        "stage": stage,
        "inputs": [str(p) for p in inputs],
        "input_rows": n_in,
        "rejected": n_rejected,
    }
    if kept is not None:
        summary["kept"] = kept.height
    if dropped is not None:
        summary["dropped"] = dropped.height
        if dropped.height and "drop_reason" in dropped.columns:
            from curate.stage import drop_counts

            summary["dropped_by_reason"] = drop_counts(dropped)
    if loaded.repaired:
        summary["repaired"] = loaded.repaired
    summary.update(stats)
    summary["outputs"] = outputs
    if stale:
        summary["removed_stale"] = stale
    if started is not None:
        summary["seconds"] = round(time.perf_counter() - started, 3)
    code = EXIT_REJECTS if n_rejected else EXIT_OK
    summary["exit_code"] = code
    if kept is not None and dropped is not None:
        # the accounting every command guarantees
        assert kept.height + dropped.height + n_rejected == n_in + stats.get("added", 0), summary

    if json_out:
        click.echo(json.dumps(summary, ensure_ascii=False, default=str))
    else:
        print_summary(summary, extra_tables or {})
    sys.exit(code)


def print_summary(summary: dict[str, Any], extra_tables: dict[str, list[tuple[str, Any]]]) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    def cell(value: Any) -> str:  # paths and reasons are text, not markup ("data[1].jsonl")
        return escape(f"{value:,}" if isinstance(value, int) else str(value))

    console = Console(stderr=True)
    table = Table(title=f"curate {summary['stage']}", show_header=False, title_justify="left")
    table.add_column("what")
    table.add_column("value", justify="right")
    skip = {"stage", "outputs", "exit_code", "dropped_by_reason", "inputs"}
    for key, value in summary.items():
        if key in skip or isinstance(value, dict | list):
            continue
        table.add_row(cell(key.replace("_", " ")), cell(value))
    for reason, n in (summary.get("dropped_by_reason") or {}).items():
        table.add_row(cell(f"  dropped: {reason}"), cell(n))
    for key, value in summary.items():
        if isinstance(value, dict) and key not in skip:
            for k, v in value.items():
                table.add_row(cell(f"{key.replace('_', ' ')}: {k}"), cell(v))
    for kind, path in summary.get("outputs", {}).items():
        table.add_row(cell(kind), cell(path))
    for path in summary.get("removed_stale", []):
        table.add_row("removed (stale)", cell(path))
    console.print(table)
    for title, rows in extra_tables.items():
        t = Table(title=escape(title), title_justify="left")
        t.add_column("name")
        t.add_column("value", justify="right")
        for name, value in rows:
            t.add_row(cell(name), cell(value))
        console.print(t)


class StepProgress:
    """rich progress bars on stderr, one per step (silent with --json). ``progress(description, total)``
    returns a ``tick(k)`` callable, the contract the stages take as ``progress=``."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self._p = None

    def __enter__(self):
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._p = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self._p.__enter__()
        return self

    def __exit__(self, *exc):
        if self._p is not None:
            self._p.__exit__(*exc)

    def __call__(self, description: str, total: int):
        if self._p is None:
            return lambda k: None
        task = self._p.add_task(description, total=total)
        return lambda k: self._p.advance(task, k)
