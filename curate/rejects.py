"""``--max-rejected``: how many unreadable input rows a run tolerates before it exits 1.

A real export of a few hundred thousand rows nearly always holds a handful of broken lines; with the
strict default (any rejected row: exit 1, "finished, but some input rows were rejected") a scheduler
marks every such run as partly failed. ``--max-rejected N`` (an integer >= 0) tolerates up to N
rejected rows; ``--max-rejected F`` (a fraction 0 < F < 1) tolerates up to that share of the input
rows (``0.001``: one row in a thousand). Within the limit the command exits 0; the rejected rows are
still written to ``<out>.rejects.jsonl`` and counted in the summary (``rejected``, and
``rejected_tolerated: true``). Above it, exit 1 as before. Other partial failures (failed teacher
requests, unreadable rows of an evaluation set) are not rows of the input and are never tolerated.
"""

from __future__ import annotations

import click

HELP = (
    "Tolerate up to N rejected (unreadable) input rows, or a fraction F < 1 of the input rows, before "
    "exiting 1; within the limit the exit code is 0 (the rejects file is still written). Default 0."
)


def parse(value: str | float | int | None, name: str = "--max-rejected") -> float | int:
    """``"5"`` -> 5 (rows), ``"0.01"`` -> 0.01 (share of the input rows); ValueError otherwise, its
    message led by ``name`` (the flag; a recipe's errors name the key and line themselves)."""
    if value is None or value == "":
        return 0
    text = str(value).strip()
    shown = f"{name} {text!r}" if name else repr(text)
    try:
        number = float(text)
    except ValueError:
        raise ValueError(f"{shown}: expected a row count (5) or a fraction below 1 (0.01)") from None
    if number < 0 or number != number:
        raise ValueError(f"{shown}: must be at least 0")
    if number < 1 and number != 0:
        return number
    if not number.is_integer():
        raise ValueError(f"{shown}: a row count is a whole number; a fraction is below 1")
    return int(number)


def tolerated(rejected: int, input_rows: int, limit: float | int) -> bool:
    """Whether ``rejected`` rows of ``input_rows`` are within ``limit`` (see :func:`parse`)."""
    if rejected <= 0:
        return True
    if isinstance(limit, float):
        return rejected <= limit * input_rows
    return rejected <= limit


def exit_code(rejected: int, input_rows: int, limit: float | int | None = None) -> int:
    """0 when no row was rejected or ``limit`` tolerates them, else 1; the ``limit`` of a recipe
    (``max_rejected:``) or, by default, the command's ``--max-rejected``."""
    return 0 if tolerated(rejected, input_rows, current() if limit is None else limit) else 1


def _store(ctx: click.Context, param: click.Parameter, value):
    try:
        ctx.meta["tamis.max_rejected"] = parse(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    if ctx.get_parameter_source(param.name) is not click.core.ParameterSource.DEFAULT:
        ctx.meta["tamis.max_rejected_given"] = True
    return value


def option(f):
    """``--max-rejected`` stored in the click context (read by :func:`current`), no signature change."""
    return click.option(
        "--max-rejected",
        default="0",
        show_default=True,
        metavar="N|F",
        expose_value=False,
        callback=_store,
        help=HELP,
    )(f)


def current() -> float | int:
    """The ``--max-rejected`` of the running command (0 outside a command)."""
    ctx = click.get_current_context(silent=True)
    return ctx.meta.get("tamis.max_rejected", 0) if ctx is not None else 0


def limit(default: float | int) -> float | int:
    """The ``--max-rejected`` of the running command when given on the command line, else ``default``
    (a recipe's ``max_rejected:``): the flag overrides the recipe, as ``--engine`` does."""
    ctx = click.get_current_context(silent=True)
    return current() if ctx is not None and ctx.meta.get("tamis.max_rejected_given") else default
