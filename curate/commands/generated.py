"""Stage commands generated from the stage's declaration: one option per field of its Config (the way
`train` generates its options), plus the options every command shares (inputs, -o, --json, engine),
plus only the true extras a command declares.

Every `curate <stage>` command is a :class:`StageCommand`. A stage declared without a hand-written
``command`` (see :mod:`curate.core.stage`) gets the plain one here (``curate.commands.generated:<name>``);
a stage whose command needs more subclasses :class:`StageCommand` in ``curate/commands/<stage>.py``
and overrides only the hooks it needs (see docs/architecture.md, "Converting a command").

The options and the recipe keys are the Config's field names (``min_chars`` -> ``--min-chars``), and
both build the Config through the same coercion (:meth:`Stage.build_config`), so a command and a
one-stage recipe with the same settings give the same rows. Only the options given on the command line
reach the Config (the others keep the Config's own defaults, which are what ``--help`` shows).

Field metadata (``field(default=..., metadata={...})`` in the Config dataclass) shapes an option:

=================  ==================================================================================
``help``           the help text (the default is appended by click from the dataclass default)
``choices``        allowed values (``click.Choice``)
``flags``          every spelling, e.g. ``("-r", "--rules")`` (default: ``--field-name``)
``deprecated``     hidden old spellings that still work and print one deprecation warning on stderr
``metavar``        the placeholder in ``--help``
``min``/``max``    a range (``IntRange``/``FloatRange``); ``min_open``/``max_open`` exclude the bound
``path``           ``"file"``, ``"dir"`` or ``"any"``: a path option (``exists``: must exist); the
                   Config gets the text
``type``           ``"text"`` (taken as text, the Config parses it: ``auto``/``off`` or a number),
                   ``"number"`` (an integer when written as one, else a float) or ``"encoding"``
``multiple``       list fields: repeatable (default) or ``False``: one comma-separated value
``split``          repeatable list fields: also split each value on commas (default True)
``flag``           booleans: a plain ``--x`` switch (default: ``--x/--no-x``)
``show_default``   ``False`` hides the default in ``--help``; a text replaces it
``required``       the command line must give it (a recipe's ``build_config`` says what is missing)
=================  ==================================================================================
"""

from __future__ import annotations

import dataclasses
import time
import typing
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from curate import stages
from curate.commands.common import (
    ENCODING,
    Job,
    StepProgress,
    fail,
    input_options,
    load_inputs,
    output_options,
    resolve_output,
    warn,
)
from curate.core.coerce import OptionError, base_type, parse_scalar
from curate.core.stage import Stage, StageContext
from curate.engines import engine_options, run_on_engine

GIVEN = (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)


class Number(click.ParamType):
    """An integer when written as one (``1`` is one row), else a float (``0.05``, ``1.0``)."""

    name = "NUMBER"

    def convert(self, value, param, ctx):
        if isinstance(value, int | float):
            return value
        try:
            return int(value)
        except ValueError:
            pass
        try:
            return float(value)
        except ValueError:
            self.fail(f"{value!r} is not a number", param, ctx)


NUMBER = Number()
NAMED_TYPES: dict[str, click.ParamType] = {"text": click.STRING, "number": NUMBER, "encoding": ENCODING}


# ---------------------------------------------------------------------------------------------------- options


def field_default(fld: dataclasses.Field) -> Any:
    if fld.default is not dataclasses.MISSING:
        return fld.default
    if fld.default_factory is not dataclasses.MISSING:
        return fld.default_factory()
    return None


def flag_spellings(fld: dataclasses.Field) -> tuple[str, ...]:
    """The spellings of a field's option (``--min-chars``, or the ``flags`` metadata)."""
    return tuple(fld.metadata.get("flags") or ("--" + fld.name.replace("_", "-"),))


def long_flag(fld: dataclasses.Field) -> str:
    """The canonical spelling, used in messages (``--rules`` for ``-r/--rules``)."""
    spellings = flag_spellings(fld)
    return next((s for s in spellings if s.startswith("--")), spellings[0])


def flag_of(stage: type[Stage]) -> Callable[[str], str]:
    """A setting's name -> its option on the command line (``target`` -> ``--target``, ``methods`` ->
    ``--method``): how a Config's error is spelled for a command (:meth:`ConfigError.spelled`)."""
    flags = {fld.name: long_flag(fld) for fld in stage.fields()}
    return lambda name: flags.get(name) or "--" + name.replace("_", "-")


def _click_type(tp: Any, md: dict[str, Any]) -> Any:
    if md.get("choices"):
        return click.Choice(list(md["choices"]))
    if md.get("path"):
        kind = md["path"]
        return click.Path(file_okay=kind != "dir", dir_okay=kind != "file", exists=md.get("exists", False))
    if md.get("type"):
        return NAMED_TYPES[md["type"]]
    scalar = {int: int, float: float}.get(tp, str)
    if "min" in md or "max" in md:
        bounds = {k: md[k] for k in ("min", "max", "min_open", "max_open") if k in md}
        return (click.IntRange if scalar is int else click.FloatRange)(**bounds)
    return scalar


def _option(spellings: tuple[str, ...], name: str, fld: dataclasses.Field, tp, is_list, **kw) -> click.Option:
    """One click option for ``fld`` under ``spellings`` and parameter ``name``."""
    md = fld.metadata
    default = field_default(fld)
    attrs: dict[str, Any] = {"metavar": md.get("metavar"), **kw}
    if tp is bool and not is_list:
        if md.get("flag"):
            return click.Option([*spellings, name], **attrs, is_flag=True, default=bool(default))
        longs = [s for s in spellings if s.startswith("--")]
        pair = "/".join([*longs[:1], "--no-" + longs[0][2:]])
        decls = [s for s in spellings if s not in longs[:1]] + [pair]
        return click.Option([*decls, name], **attrs, default=default)
    ctype = _click_type(tp, md)
    if is_list and md.get("multiple", True):
        attrs["metavar"] = attrs["metavar"] or "VALUE[,VALUE]"
        return click.Option(
            [*spellings, name], type=ctype, multiple=True, default=tuple(default or ()), **attrs
        )
    if is_list:  # one comma-separated value
        default = ",".join(map(str, default)) if default else None
    return click.Option([*spellings, name], type=ctype, default=default, **attrs)


def field_options(stage: type[Stage], skip: tuple[str, ...] = ()) -> list[click.Option]:
    """One option per settable Config field of ``stage`` (and a hidden one per deprecated spelling).
    The default shown in ``--help`` is the dataclass default; a value only reaches the Config when the
    command line gives it (:func:`given_options`)."""
    return dataclass_field_options(stage.config_class(), stage.fields(), stage.name, skip)


def dataclass_field_options(
    cfg: type | None, fields: list[dataclasses.Field], owner: str, skip: tuple[str, ...] = ()
) -> list[click.Option]:
    """One option per field of ``fields`` (of the dataclass ``cfg``), shaped by its metadata."""
    hints = typing.get_type_hints(cfg) if cfg is not None else {}
    params: list[click.Option] = []
    for fld in fields:
        if fld.name in skip:
            continue
        md = fld.metadata
        tp, _optional, is_list = base_type(hints.get(fld.name, str))
        help_text = md.get("help") or f"{owner}: the {fld.name} setting."
        show = md.get("show_default", True)
        if is_list and md.get("multiple", True) and "Repeatable" not in help_text:
            help_text += " Repeatable."
        params.append(
            _option(
                flag_spellings(fld),
                fld.name,
                fld,
                tp,
                is_list,
                help=help_text,
                show_default=show,
                required=md.get("required", False),
            )
        )
        for i, old in enumerate(md.get("deprecated", ())):
            params.append(_option((old,), deprecated_name(fld, i), fld, tp, is_list, hidden=True))
    return params


def _params_decorator(params: Callable[[], list[click.Option]]) -> Callable:
    def deco(f: Callable) -> Callable:
        # what click.option does: parameters collect on the function, innermost first
        memo = f.__dict__.setdefault("__click_params__", [])
        memo.extend(reversed(params()))
        return f

    return deco


def config_options(stage: type[Stage], skip: tuple[str, ...] = ()) -> Callable:
    """Decorator: the options of :func:`field_options`, in field order."""
    return _params_decorator(lambda: field_options(stage, skip))


def dataclass_options(cfg: type, skip: tuple[str, ...] = (), only: tuple[str, ...] | None = None) -> Callable:
    """Decorator: one option per init field of the dataclass ``cfg`` (or of the fields named in
    ``only``), shaped by the same field metadata, for a command that is not a stage (`curate quality
    train`); the command gets every value (the dataclass default when not given) under the field's
    name."""
    fields = [f for f in dataclasses.fields(cfg) if f.init and (only is None or f.name in only)]
    return _params_decorator(lambda: dataclass_field_options(cfg, fields, cfg.__name__, skip))


def deprecated_name(fld: dataclasses.Field, i: int) -> str:
    return f"_deprecated_{i}_{fld.name}"


def _typed(fld: dataclasses.Field, tp: Any, is_list: bool, value: Any) -> Any:
    """A value as click gave it -> the recipe's form: paths as text, lists split and typed."""
    if isinstance(value, Path):
        value = str(value)
    if not is_list:
        return value
    values = [value] if isinstance(value, str) else list(value)
    if fld.metadata.get("split", True) or not fld.metadata.get("multiple", True):
        values = [v.strip() for item in values for v in str(item).split(",") if v.strip()]
    return [parse_scalar(long_flag(fld), tp, str(v) if isinstance(v, Path) else v) for v in values]


def given_options(
    stage: type[Stage], params: dict[str, Any], ctx: click.Context | None = None, skip: tuple[str, ...] = ()
) -> dict[str, Any]:
    """The Config options the command line gave (popped from ``params``; the others keep the Config's
    defaults), typed: the same mapping a recipe's ``<stage>: {...}`` gives. A deprecated spelling
    counts as its field and prints one warning."""
    cfg = stage.config_class()
    hints = typing.get_type_hints(cfg) if cfg is not None else {}
    ctx = ctx or click.get_current_context()
    out: dict[str, Any] = {}
    for fld in stage.fields():
        if fld.name in skip:  # given by a shared option (export's -o): the command maps it
            continue
        tp, _optional, is_list = base_type(hints.get(fld.name, str))
        value = params.pop(fld.name, None)
        if ctx.get_parameter_source(fld.name) in GIVEN:
            out[fld.name] = _typed(fld, tp, is_list, value)
        for i, old in enumerate(fld.metadata.get("deprecated", ())):
            name = deprecated_name(fld, i)
            old_value = params.pop(name, None)
            if ctx.get_parameter_source(name) not in GIVEN:
                continue
            if fld.name in out:
                raise click.UsageError(
                    f"{old} is the old spelling of {long_flag(fld)}; give only {long_flag(fld)}"
                )
            warn(f"{old} is deprecated; use {long_flag(fld)}")
            out[fld.name] = _typed(fld, tp, is_list, old_value)
    return out


# ---------------------------------------------------------------------------------------------------- running


@dataclass
class Invocation:
    """One run of a stage command: what the hooks of :class:`StageCommand` read and fill in."""

    stage: type[Stage]
    params: dict[str, Any]  # the shared and extra parameters (the Config options are in ``options``)
    click_ctx: click.Context
    started: float = field(default_factory=time.perf_counter)
    options: dict[str, Any] = field(default_factory=dict)  # the Config options given (a recipe's mapping)
    config: Any = None
    out: Path | None = None
    loaded: Any = None
    context: StageContext = field(default_factory=StageContext)
    # what lasts until the command ends (a lock, an open state): a hook enters it here, it is closed
    # however the command ends
    resources: ExitStack = field(default_factory=ExitStack)
    extra: dict[str, Any] = field(default_factory=dict)  # what a command's hooks hand each other

    @property
    def inputs(self) -> tuple:
        return self.params["inputs"]

    @property
    def json_out(self) -> bool:
        return bool(self.params.get("json_out"))

    @property
    def engine(self) -> Any:
        return self.params.get("engine")

    def given(self, name: str) -> bool:
        """Whether the command line gave the parameter ``name`` (a Config field or an extra)."""
        return self.click_ctx.get_parameter_source(name) in GIVEN

    def job(self) -> Job:
        return Job(self.stage.name, self.inputs, self.out, self.loaded, self.json_out, self.started)


class GeneratedCommand(click.Command):
    """A click command built by :meth:`StageCommand.command` (``spec`` is the StageCommand)."""

    spec: StageCommand


class StageCommand:
    """The `curate <stage>` command: shared options + one per Config field + the declared ``extras``,
    and one skeleton (build the Config, resolve the output, load, run, finish). A command that needs
    more subclasses this and overrides only its hooks; its docstring is the command's long help.

    Hooks, in the order they run (each gets the :class:`Invocation`):
    ``prepare`` (map extras into ``run.options``, validate them; before the Config is built),
    ``check_outputs`` (extra files the command writes; before anything is read), ``load`` (read the
    inputs), ``check_loaded`` (after the inputs are read), ``execute`` (run the stage; default: on the chosen engine),
    ``report`` (after the run: extra stats, tables, files; returns :meth:`Job.finish` keywords)."""

    stage: str = ""
    extras: tuple[Callable, ...] = ()  # click.option(...) decorators: the true extras
    skip: tuple[str, ...] = ()  # Config fields a shared option gives (export: output is -o)
    engine: bool = True  # --engine, --ray-address...

    def __init__(self, stage: str | None = None):
        if stage is not None:
            self.stage = stage

    # ------------------------------------------------------------------ the declaration

    def declaration(self) -> type[Stage]:
        return stages.get(self.stage)

    def description(self) -> str:
        doc = type(self).__doc__ if type(self) is not StageCommand else None
        return doc or self.declaration().help

    def shared_options(self) -> list[Callable]:
        """The options every stage command has (outermost first)."""
        return [input_options, output_options(self.stage)]

    def command(self) -> click.Command:
        stage = self.declaration()

        def callback(**params: Any) -> None:
            self.invoke(params)

        decorators = [
            *self.shared_options(),
            config_options(stage, self.skip),
            *self.extras,
            *([engine_options] if self.engine else []),
        ]
        for deco in reversed(decorators):
            callback = deco(callback)
        command = click.command(name=stage.name, cls=GeneratedCommand, help=self.description())(callback)
        command.spec = self
        return command

    # ------------------------------------------------------------------ the skeleton

    def invoke(self, params: dict[str, Any]) -> None:
        run = Invocation(self.declaration(), params, click.get_current_context())
        with run.resources:  # closed however the command ends (an error, an exit)
            self.steps(run)

    def steps(self, run: Invocation) -> None:
        """The skeleton: build the Config, resolve the output, load, run, finish (with the hooks)."""
        stage = run.stage
        run.context = StageContext(base=Path.cwd(), engine=run.engine)
        run.options = given_options(stage, run.params, run.click_ctx, self.skip)
        self.prepare(run)
        try:
            run.config = stage.build_config(run.options, run.context)
        except OptionError as exc:  # the Config names its field: the command line wrote it as a flag
            raise exc.spelled(flag_of(stage)) from None
        run.out = self.resolve_output(run)
        self.check_outputs(run)
        run.loaded = self.load(run)
        self.check_loaded(run)
        try:
            result = self.execute(run)
        except OptionError as exc:  # a setting refused while the stage runs: spelled as a flag too
            raise exc.spelled(flag_of(stage)) from None
        except Exception as exc:
            if stage.declares_user_error(exc):  # one error line, as a recipe reports it
                fail(str(exc))
            raise
        self.finish(run, result)

    # ------------------------------------------------------------------ hooks

    def prepare(self, run: Invocation) -> None:
        """Before the Config is built: map extras into ``run.options``, validate them."""

    def resolve_output(self, run: Invocation) -> Path | None:
        return resolve_output(run.inputs, run.params.get("output"), self.stage)

    def check_outputs(self, run: Invocation) -> None:
        """Before anything is read: check the extra files the command will write."""

    def load(self, run: Invocation) -> Any:
        """Read the inputs with the shared reading options (``--format``, ``--map``, ...)."""
        p = run.params
        return load_inputs(
            run.inputs, p.get("fmt"), p.get("maps", ()), p.get("sheet"), quiet=run.json_out, engine=run.engine
        )

    def check_loaded(self, run: Invocation) -> None:
        """After the inputs are read, before the stage runs."""

    def execute(self, run: Invocation) -> Any:
        """Run the configured stage (with a progress display) on the chosen engine."""
        with StepProgress(not run.json_out) as progress:
            run.context.progress = progress
            stage = run.stage(run.config, run.context)
            distributed = stage.distributed if stage.distributes() else None
            return run_on_engine(run.loaded.frame, run.engine, stage.run, distributed)

    def report(self, run: Invocation, result: Any) -> dict[str, Any] | None:
        """After the run: keywords for :meth:`Job.finish` (``stats``, ``extra_outputs``, ``min_code``,
        ``extra_tables``); print extra tables here."""
        return None

    def finish(self, run: Invocation, result: Any) -> None:
        run.job().finish(result, **(self.report(run, result) or {}))


def stage_command(stage: type[Stage]) -> click.Command:
    """The `curate <stage>` command of a declared stage without a command of its own."""
    return StageCommand(stage.name).command()


def __getattr__(name: str) -> click.Command:
    """``curate.commands.generated:<stage>``: the generated command of a registered stage."""
    try:
        return stage_command(stages.get(name))
    except KeyError:
        raise AttributeError(name) from None
