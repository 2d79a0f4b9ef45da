"""What every `curate` command shares: input options, loading with rejects, atomic outputs, the summary
(human table on stderr or one JSON line on stdout), and exit codes.

Exit codes: 0 ok; 1 finished, but some input rows could not be read (they are in the rejects file),
or some of the work could not be done (failed teacher requests, unreadable eval rows); 2 usage error,
unreadable input or no readable rows at all; 3 (refresh) the state is locked; 70 an internal error
(a bug: the traceback is printed). With ``--json`` every failure also prints one JSON line on stdout:
``{"status": "error", "error": "...", "exit_code": N}``.
"""

from __future__ import annotations

import codecs
import dataclasses
import difflib
import functools
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import click

from curate import rejects
from curate.commands.jsonline import emit_json, json_error, json_mode  # noqa: F401  (re-exported)
from curate.configs.ingest import IngestConfig
from curate.core.errors import InputUnusable, TamisError
from curate.core.vocab import WRITABLE_EXTENSIONS as WRITABLE
from curate.core.vocab import side_path  # noqa: F401  (re-exported: the commands' name for it)
from curate.stages import STAGE_SUFFIX  # the registry's suffix table (filled on import)

EXIT_OK, EXIT_REJECTS, EXIT_USAGE = 0, 1, 2
EXIT_SOFTWARE = 70  # EX_SOFTWARE: an unexpected exception (a bug), never 1 ("partial success")
# the side files finish() writes beside an output (and removes when a run has none of those rows)
SIDE_FILES = ("dropped", "rejects")


def input_options(f: Callable) -> Callable:
    """INPUT... plus the format/mapping overrides accepted by every command."""
    f = read_options(f)
    f = rejects.option(f)
    f = inputs_argument(f)
    return f


def read_options(f: Callable) -> Callable:
    """How input files are read: ``--format``, ``--encoding``, ``--map``, ``--sheet`` (every command
    that reads data files, also `curate quality`'s labelled files); their help is the ingest settings'
    (IngestConfig, whose fields are `curate ingest`'s options)."""
    f = click.option("--sheet", default=None, **_ingest_setting("sheet"))(f)
    f = click.option("--map", "maps", multiple=True, **_ingest_setting("map"))(f)
    f = click.option("--format", "fmt", default=None, **_ingest_setting("format"))(f)
    f = encoding_option(f)
    return f


def _ingest_setting(name: str) -> dict[str, Any]:
    """The help and metavar of the ingest setting ``name`` (one text for every command's option)."""
    md = next(f for f in dataclasses.fields(IngestConfig) if f.name == name).metadata
    return {"help": md["help"], "metavar": md.get("metavar")}


def inputs_argument(f: Callable) -> Callable:
    """INPUT...: files, Parquet shard folders, save_to_disk folders or a LLaMA-Factory dataset_info.json;
    a path that cannot be looked at (a symlink loop) is a usage error before anything else runs."""
    return click.argument(
        "inputs", nargs=-1, required=True, type=click.Path(path_type=Path), callback=_checked_inputs
    )(f)


def _checked_inputs(ctx: click.Context, param: click.Parameter, value):
    for p in value or ():
        if os.path.islink(p):
            from curate.io.sources import check_path  # curate.io pulls in polars: not for --help

            try:
                check_path(p)
            except InputUnusable as exc:
                raise click.BadParameter(str(exc)) from None
    return value


class Encoding(click.ParamType):
    """A text encoding Python knows (``gb18030``, ``big5``, ``utf-16``)."""

    name = "encoding"

    def convert(self, value, param, ctx):
        if value:
            try:
                codecs.lookup(value)
            except LookupError:
                self.fail(f"unknown encoding {value!r}", param, ctx)
        return value


ENCODING = Encoding()


def encoding_option(f: Callable) -> Callable:
    """``--encoding NAME``: stored in the click context (read by load_inputs), no signature change."""
    return click.option(
        "--encoding",
        default=None,
        type=ENCODING,
        expose_value=False,  # read by load_inputs from the click context: no command signature changes
        callback=_remember_encoding,
        **_ingest_setting("encoding"),
    )(f)


def _remember_encoding(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value:
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


# the record fields a --map can fill (the help of --map lists them)
MAP_FIELDS = ("question", "answer", "system", "chosen", "rejected", "label", "text", "history")


def parse_maps(maps: tuple[str, ...]) -> dict[str, list[str]]:
    mapping: dict[str, list[str]] = {}
    for item in maps:
        if "=" not in item:
            raise click.UsageError(f"--map {item!r}: expected FIELD=COLUMN")
        key, cols = item.split("=", 1)
        key = key.strip()
        if key not in MAP_FIELDS:
            close = difflib.get_close_matches(key, MAP_FIELDS, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise click.UsageError(
                f"--map {item!r}: unknown field {key}{hint}; fields: {', '.join(MAP_FIELDS)}"
            )
        columns = [c.strip() for c in cols.split(",") if c.strip()]
        if not columns:
            raise click.UsageError(f"--map {item!r}: no column after '='")
        mapping[key] = columns
    return mapping


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """Raise the user error ``message`` (exit ``code``): the CLI's handler prints the ``error:`` line
    (and the JSON error line with --json). A helper raises; it never exits the process itself."""
    error = TamisError(message)
    error.exit_code = code
    raise error


def warn(message: str) -> None:
    click.echo(f"warning: {message}", err=True)


def load_inputs(inputs, fmt=None, maps=(), sheet=None, *, quiet: bool = False, engine=None, encoding=None):
    """Read every input into one canonical frame; an unreadable file exits 2 with its name and reason,
    and so do inputs with no readable row at all (a one-shot command would otherwise write an empty
    output and exit 0). With a Ray ``engine`` (an EngineSpec) the files are read in parallel, one task
    per file. ``encoding``: default, the command's ``--encoding``."""
    from curate import io as dataio  # polars: not for --help; by module: tests replace curate.io.load

    load = dataio.load
    if engine is not None and engine.name == "ray":
        from curate.engines.ray import load as ray_load  # Ray is optional

        load = functools.partial(ray_load, spec=engine)
    ctx = click.get_current_context(silent=True)
    if encoding is None and ctx is not None:
        encoding = ctx.meta.get("curate.encoding")
    kwargs = {"encoding": encoding} if encoding else {}
    try:
        result = load(list(inputs), fmt=fmt, mapping=parse_maps(tuple(maps)), sheet=sheet, **kwargs)
    except InputUnusable as exc:
        fail(str(exc))
    except RuntimeError as exc:  # Ray missing or the cluster unreachable
        fail(str(exc))
    if not quiet:
        for line in result.explanations:
            click.echo(line, err=True)
    if sheet is not None:
        not_xlsx = [str(p) for p in inputs if not str(p).lower().endswith((".xlsx", ".xlsm"))]
        if not_xlsx:
            warn(f"--sheet {sheet} applies to XLSX files only; ignored for {', '.join(not_xlsx)}")
    if result.frame.height == 0:
        fail(no_rows_message(inputs, result.rejects))
    return result


def no_rows_message(inputs, rejects) -> str:
    """``no readable rows in a.jsonl`` (with the number of rejected rows and the first reason)."""
    msg = f"no readable rows in {', '.join(str(p) for p in inputs)}"
    if rejects is not None and rejects.height:
        first = rejects.row(0, named=True)
        where = ":".join(str(x) for x in (first.get("file"), first.get("line")) if x is not None)
        msg += f" ({rejects.height} rejected; first: {where}: {first.get('reason')})"
    else:
        msg += " (the files hold no rows)"
    return msg


def resolve_output(inputs, output: Path | None, stage: str) -> Path:
    """The output of a command (``-o`` or the default beside the first input), checked before anything
    is read: a writable extension, a directory that exists (or can be created) and is writable, not an
    input, and side files that are not inputs either."""
    from curate.io import default_output  # polars: not for --help

    out = output if output is not None else default_output(Path(inputs[0]), stage)
    check_writable(out, "-o" if output is not None else "the output")
    resolved = out.resolve()
    for src in inputs:
        if Path(src).resolve() == resolved:
            fail(f"refusing to overwrite the input {src}; choose another -o")
    check_side_files(inputs, out)
    return out


def check_writable(
    path: Path, what: str = "-o", extensions: tuple[str, ...] | None = None, *, any_extension: bool = False
) -> None:
    """Exit 2 unless ``path`` can be written: a known extension (``extensions``, default: the data
    formats curate writes), not a directory, and a parent that is (or can be created as) a writable
    directory. Checked before a command loads anything."""
    if extensions is None:
        extensions = WRITABLE
    path = Path(path)
    ext = path.suffix.lower()
    if not any_extension and ext not in extensions:
        fail(
            f"{what} {path}: cannot write {ext or 'a file without an extension'}; "
            f"use one of {' '.join(extensions)}"
        )
    if path.is_dir():
        fail(f"{what} {path} is a directory; give a file name")
    parent = Path(os.path.abspath(path)).parent
    existing = parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        fail(f"{what} {path}: cannot create the directory {parent}: {existing} is not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):  # outputs are written beside, then renamed
        fail(f"{what} {path}: the directory {existing} is not writable")


def same_file(a: Path | str, b: Path | str) -> bool:
    """The same path, or the same file under two names (a hard link or a symlink)."""
    a, b = Path(a), Path(b)
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and a.samefile(b))
    except OSError:
        return False


def protect(inputs, out: Path | None, path: Path | str | None, what: str, fix: str | None = None) -> None:
    """Exit 2 when an extra file a command writes (``what``) would be an input, the output, or one of
    the output's side files."""
    if path is None:
        return
    path = Path(path)
    fix = fix or what
    for src in inputs:
        if same_file(path, src):
            fail(f"refusing to overwrite the input {src} with {what}; choose another {fix}")
    if out is not None:
        if same_file(path, out):
            fail(f"refusing to write {what} over the output {out}; choose another {fix}")
        for kind, side in side_files(inputs, out).items():
            if same_file(path, side):
                fail(f"refusing to write {what} over the {kind} rows file {side}; choose another {fix}")


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
    extra_outputs: dict[str, Any] | None = None,
    min_code: int = EXIT_OK,
    on_written: Callable[[], None] | None = None,
    write_output: Callable[[], tuple[dict[str, Any], dict[str, Any]]] | None = None,
) -> None:
    """Write kept/dropped/rejects atomically, print the summary, exit with the right code.

    A side file (``<out>.dropped.jsonl``, ``<out>.rejects.jsonl``) is written only when there are such
    rows; one an earlier run left beside ``out`` is removed when this run has none, so the files beside
    an output always describe that output. A side file that would be an input is a usage error (exit 2),
    checked before anything is written. ``extra_outputs`` are files the command wrote itself (listed
    under ``outputs``); ``min_code`` raises the exit code (1: part of the work could not be done).
    ``on_written`` runs once every output is written, before the summary: an incremental stage commits
    its state there (``dedup --state``), so state never runs ahead of the files it describes.
    ``write_output`` writes the command's own output in place of the kept rows (export: the trainer
    files), once the accounting holds; it returns the summary's stats and the files it wrote."""
    from curate import io as dataio  # polars: not for --help; by module: tests replace write_frame
    from curate.stage import check_accounting, drop_counts

    check_side_files(inputs, out, has_rejects=bool(loaded.rejects.height))
    sides = side_files(inputs, out)
    stats = dict(stats or {})
    n_in = loaded.input_rows
    n_rejected = loaded.rejects.height
    if kept is not None and dropped is not None:  # checked before anything is written
        check_accounting(
            f"curate {stage}", n_in, kept.height, dropped.height, stats.get("added", 0), n_rejected
        )
    outputs: dict[str, str] = {}
    stale: list[str] = []
    written: dict[str, Any] = {}
    if write_output is not None:
        written_stats, written = write_output()
        stats.update(written_stats)
    elif out is not None and kept is not None:
        dataio.write_frame(kept, out)
        outputs["output"] = str(out)
    if out is not None and dropped is not None and dropped.height:
        dataio.write_frame(dropped, sides["dropped"])
        outputs["dropped"] = str(sides["dropped"])
    elif out is not None and _remove_stale(sides["dropped"]):
        stale.append(str(sides["dropped"]))
    if n_rejected:
        dataio.write_rejects(loaded.rejects, sides["rejects"])
        outputs["rejects"] = str(sides["rejects"])
    elif out is not None and _remove_stale(sides["rejects"]):
        stale.append(str(sides["rejects"]))
    if on_written is not None:
        on_written()
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
            summary["dropped_by_reason"] = drop_counts(dropped)
    if loaded.repaired:
        summary["repaired"] = loaded.repaired
    if getattr(loaded, "encoding_guessed", 0):  # files read with a statistical encoding guess
        summary["encoding_guessed"] = loaded.encoding_guessed
    summary.update(stats)
    for kind, path in {**(extra_outputs or {}), **written}.items():
        if path is not None:
            outputs[kind] = str(path)
    summary["outputs"] = outputs
    if stale:
        summary["removed_stale"] = stale
    if started is not None:
        summary["seconds"] = round(time.perf_counter() - started, 3)
    rejects_code = rejects.exit_code(n_rejected, n_in)
    if n_rejected and rejects_code == EXIT_OK:
        summary["rejected_tolerated"] = True  # --max-rejected: listed in the rejects file, exit 0
    code = max(rejects_code, min_code)
    summary["exit_code"] = code

    if json_out:
        emit_json(summary)
    else:
        print_summary(summary, extra_tables or {})
    sys.exit(code)


@dataclass
class Job:
    """What a stage command carries from its arguments to :func:`finish`: ``Job(stage, inputs, out,
    loaded, json_out, started).finish(result)`` writes the rows, prints the summary and exits."""

    stage: str
    inputs: Any
    out: Path | None
    loaded: Any
    json_out: bool
    started: float | None = None

    def finish(self, result, stats: dict[str, Any] | None = None, **extra: Any) -> None:
        finish(
            self.stage,
            inputs=self.inputs,
            out=self.out,
            loaded=self.loaded,
            kept=result.kept,
            dropped=result.dropped,
            stats=result.stats if stats is None else stats,
            json_out=self.json_out,
            started=self.started,
            **extra,
        )


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
    """Progress for a command's steps (curate.progress): a rich bar on a terminal; plain periodic lines
    when stderr is not a terminal, or when ``enabled`` is false (--json), so a log shows them.
    ``progress(description, total)`` returns a ``tick(k)`` callable, the contract the stages take."""

    def __init__(self, enabled: bool):
        from curate.progress import reporter  # rich's progress bar: not for --help

        self._p = reporter(json_out=not enabled)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._p.close()

    def __call__(self, description: str, total: int, unit: str = "rows"):
        return self._p(description, total, unit)
