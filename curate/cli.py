"""`curate`: the data half of tamis. One thin command per stage; heavy imports happen inside commands."""

from __future__ import annotations

import os

import click

from curate import __version__, offline, stages
from curate.commands.jsonline import json_error
from curate.core.errors import handle
from curate.lazycli import LazyGroup

offline.enforce()  # before any command imports a hub library (TAMIS_ALLOW_NETWORK=1 opts out)

# name -> (module:attribute, short help). The stage commands come from the stage registry (one
# declaration per stage, curate.stages); the other commands are listed here.
OTHER_COMMANDS: dict[str, tuple[str, str]] = {
    "stats": ("curate.commands.stats:stats", "Rows, languages, lengths, turns and sources of a dataset."),
    "rules": ("curate.commands.filter:rules", "List, show and lint rule sets."),
    "quality": ("curate.commands.score:quality", "Train and inspect the fastText quality classifier."),
    "run": ("curate.commands.pipeline:run", "Run a recipe: every stage, cached, with a manifest."),
    "init": ("curate.commands.pipeline:init", "Write a commented starter recipe."),
    "runs": ("curate.commands.pipeline:runs", "List past runs of a recipe."),
    "refresh": ("curate.commands.pipeline:refresh", "Process only new rows and write a new dataset version."),
    "report": ("curate.commands.report:report", "Write a self-contained HTML report of a run or dataset."),
}


def commands() -> dict[str, tuple[str, str]]:
    """Every `curate` command: one per registered stage (its hand-written command, or one generated
    from its Config), then the others."""
    table = {s.name: (s.command or f"curate.commands.generated:{s.name}", s.help) for s in stages.STAGES}
    return {**table, **OTHER_COMMANDS}


COMMANDS = commands()  # as imported (StageGroup re-reads the registry when it lists or loads)


class StageGroup(LazyGroup):
    """Reads the stage registry when it lists or loads commands, so a stage registered after import
    (a plug-in, a test's toy stage) is a command too."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        self.lazy_commands = commands()
        return super().list_commands(ctx)

    def get_command(self, ctx: click.Context, cmd_name: str):
        self.lazy_commands = commands()
        return super().get_command(ctx, cmd_name)


class CurateGroup(StageGroup):
    """The top-level error handler (:func:`curate.core.errors.handle`): whatever a command raises ends
    in a one-line ``error:`` on stderr (and one JSON error line on stdout with ``--json``) and an exit
    code a scheduler can trust: 2 for a usage error, an unreadable or unwritable file; 70
    (EX_SOFTWARE, with the traceback) for a bug. Never 1, which means "finished, some rows rejected"."""

    def invoke(self, ctx: click.Context):
        args = [*getattr(ctx, "_protected_args", []), *ctx.args]
        if "--" in args:
            args = args[: args.index("--")]
        if "--json" in args:
            ctx.meta["curate.json"] = True

        def report(message: str, code: int) -> None:
            with ctx.scope(cleanup=False):
                json_error(message, code)

        return handle(
            lambda: super(CurateGroup, self).invoke(ctx),
            prog="curate",
            echo=lambda line: click.echo(line, err=True),
            json_error=report,
        )


@click.group(
    cls=CurateGroup, lazy_commands=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]}
)
@click.version_option(__version__, prog_name="curate")
@click.option(
    "--no-csv-formula-guard",
    is_flag=True,
    help="Write .csv/.tsv cells that start with = + - @ (or a tab/CR) unchanged. Default: they get a "
    "leading ' so that Excel and LibreOffice show them as text instead of running them as formulas "
    "(also TAMIS_CSV_FORMULA_GUARD=0).",
)
def main(no_csv_formula_guard: bool = False) -> None:
    """Curate domain Q&A into a clean, scored fine-tuning set.

    Every command reads raw input of any supported format (JSONL, JSON, CSV, TSV, XLSX, Parquet,
    .gz/.zst) and writes next to the input unless -o is given. Exit codes: 0 ok, 1 finished but some
    input rows were rejected (or some of the work failed, e.g. teacher requests), 2 usage error,
    unreadable input, no readable rows or an unwritable output, 3 (refresh) the state is locked,
    70 internal error (a bug; the traceback is printed). With --json every command prints one JSON
    line on stdout, also on failure ({"status": "error", "error": ...}).
    """
    if no_csv_formula_guard:
        os.environ["TAMIS_CSV_FORMULA_GUARD"] = "0"  # read by the writers (and by workers they start)
