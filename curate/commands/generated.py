"""Commands generated from a stage's declaration: one option per field of its Config (the way
`train` generates its options), plus the options every command shares (inputs, -o, --json, engine).

A stage declared without a hand-written ``command`` (see :mod:`curate.core.stage`) gets its command
here: ``curate.commands.generated:<name>``. The options and the recipe keys are the Config's field
names (``min_chars`` -> ``--min-chars``), and both build the Config through the same coercion
(:meth:`Stage.build_config`), so a command and a one-stage recipe with the same settings give the same
rows.
"""

from __future__ import annotations

import dataclasses
import functools
import time
import typing
from pathlib import Path
from typing import Any

import click

from curate.commands.common import (
    Job,
    StepProgress,
    input_options,
    load_inputs,
    output_options,
    resolve_output,
)
from curate.core.coerce import base_type, parse_scalar
from curate.core.stage import Stage, StageContext
from curate.engines import engine_options, run_stage


def _default_text(fld: dataclasses.Field) -> str | None:
    if fld.default is not dataclasses.MISSING:
        value = fld.default
    elif fld.default_factory is not dataclasses.MISSING:
        value = fld.default_factory()
    else:
        return None
    if value in (None, (), [], ""):
        return None
    if isinstance(value, list | tuple):
        return ",".join(map(str, value))
    return str(value)


def config_options(stage: type[Stage], skip: tuple[str, ...] = ()):
    """Decorator: one option per Config field of ``stage`` (``--field-name``), default None (= not
    given: the Config's own default applies). Help and choices come from the field metadata."""

    def deco(f):
        cfg = stage.config_class()
        hints = typing.get_type_hints(cfg) if cfg is not None else {}
        for fld in reversed(stage.fields()):
            if fld.name in skip:
                continue
            tp, _optional, is_list = base_type(hints.get(fld.name, str))
            flag = "--" + fld.name.replace("_", "-")
            help_text = fld.metadata.get("help") or f"{stage.name}: the {fld.name} setting."
            default = _default_text(fld)
            if default is not None and "default" not in help_text:
                help_text += f" [default: {default}]"
            choices = fld.metadata.get("choices")
            if tp is bool and not is_list:
                f = click.option(f"{flag}/--no-{flag[2:]}", fld.name, default=None, help=help_text)(f)
            elif is_list:
                f = click.option(
                    flag, fld.name, multiple=True, metavar="VALUE[,VALUE]", help=help_text + " Repeatable."
                )(f)
            elif choices:
                f = click.option(flag, fld.name, type=click.Choice(choices), default=None, help=help_text)(f)
            else:
                ctype = {int: int, float: float}.get(tp, str)
                f = click.option(flag, fld.name, type=ctype, default=None, help=help_text)(f)
        return f

    return deco


def given_options(stage: type[Stage], kwargs: dict[str, Any]) -> dict[str, Any]:
    """The Config options the command line gave (the others keep the Config's defaults), typed: the
    same mapping a recipe's ``<stage>: {...}`` gives."""
    cfg = stage.config_class()
    hints = typing.get_type_hints(cfg) if cfg is not None else {}
    out: dict[str, Any] = {}
    for fld in stage.fields():
        value = kwargs.pop(fld.name, None)
        if value is None or value == ():
            continue
        tp, _optional, is_list = base_type(hints.get(fld.name, str))
        flag = "--" + fld.name.replace("_", "-")
        if is_list:
            items = [v.strip() for item in value for v in str(item).split(",") if v.strip()]
            value = [parse_scalar(flag, tp, v) for v in items]
        out[fld.name] = value
    return out


def run_stage_instance(stage: Stage, frame, engine) -> Any:
    """A configured stage on the chosen engine: its ``distributed`` capability on a cluster engine,
    ``run`` here otherwise."""
    if engine is not None and engine.name != "local" and stage.distributes():
        return stage.distributed(frame, functools.partial(_run_on, engine))
    return stage.run(frame)


def _run_on(engine, fn, frame, config, **kwargs):
    return run_stage(fn, frame, config, engine, **kwargs)


def stage_command(stage: type[Stage]) -> click.Command:
    """The `curate <stage>` command of a declared stage."""

    @click.command(name=stage.name, help=stage.help)
    @input_options
    @output_options(stage.name)
    @config_options(stage)
    @engine_options
    def command(inputs, fmt, maps, sheet, output, json_out, engine, **kwargs) -> None:
        started = time.perf_counter()
        ctx = StageContext(base=Path.cwd(), engine=engine)
        config = stage.build_config(given_options(stage, kwargs), ctx)
        out = resolve_output(inputs, output, stage.name)
        loaded = load_inputs(inputs, fmt, maps, sheet, quiet=json_out, engine=engine)
        with StepProgress(not json_out) as progress:
            ctx.progress = progress
            result = run_stage_instance(stage(config, ctx), loaded.frame, engine)
        Job(stage.name, inputs, out, loaded, json_out, started).finish(result)

    return command


def __getattr__(name: str) -> click.Command:
    """``curate.commands.generated:<stage>``: the generated command of a registered stage."""
    from curate import stages

    try:
        return stage_command(stages.get(name))
    except KeyError:
        raise AttributeError(name) from None
