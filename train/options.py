"""The options of the `train` commands, generated from the typed configs in :mod:`train.config` (so
`--help` lists every setting with its default), and the resolution of a stage's config from its YAML,
flags and ``--set``. On the ``train X --help`` path: no heavy imports."""

from __future__ import annotations

import dataclasses
import sys
from typing import Any

import click

from train.config import cli_fields, field_type, parse_set, resolve


def _fmt_default(v: Any) -> str:
    if isinstance(v, list):
        return ",".join(map(str, v)) or "none"
    return str(v)


def config_options(stage: str):
    """Decorator adding one option per config field of ``stage`` (all default None = 'not given')."""

    def deco(f):
        for fld in reversed(cli_fields(stage)):
            name = fld.name
            opt = "--" + name.replace("_", "-")
            tp, optional, is_list = field_type(stage, name)
            if fld.default is not dataclasses.MISSING:
                default = fld.default
            elif fld.default_factory is not dataclasses.MISSING:
                default = fld.default_factory()
            else:
                default = None
            help_text = fld.metadata.get("help", "")
            if "default" in help_text:
                pass
            elif default is None and name not in ("model", "output", "template", "bf16"):
                help_text += " [default: planned]"
            elif default not in (None, [], ""):
                help_text += f" [default: {_fmt_default(default)}]"
            if name == "data":
                f = click.option("--data", "data_opt", multiple=True, help=help_text)(f)
                continue
            if name == "trainer":  # a mapping: YAML `trainer:` or --set trainer.KEY=VALUE
                continue
            if name == "output":  # --output-dir: the Hugging Face / LLaMA-Factory / TRL name
                f = click.option(opt, "--output-dir", name, type=str, default=None, help=help_text)(f)
                continue
            if is_list:
                f = click.option(opt, name, multiple=True, help=help_text)(f)
            elif tp is bool:
                f = click.option(f"{opt}/--no-{name.replace('_', '-')}", name, default=None, help=help_text)(
                    f
                )
            elif "choices" in fld.metadata:
                f = click.option(
                    opt, name, type=click.Choice(fld.metadata["choices"]), default=None, help=help_text
                )(f)
            else:
                ctype = {int: int, float: float}.get(tp, str)
                f = click.option(opt, name, type=ctype, default=None, help=help_text)(f)
        return f

    return deco


def common_options(f):
    f = click.option("--json", "as_json", is_flag=True, help="Print a machine-readable summary on stdout.")(f)
    f = click.option(
        "--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override any setting (repeatable)."
    )(f)
    f = click.option(
        "--config",
        "config_file",
        type=click.Path(dir_okay=False),
        help="YAML config (a `sft:` section etc. overrides the top level).",
    )(f)
    f = click.argument("data", nargs=-1, type=click.Path())(f)
    return f


def stderr_console():
    from rich.console import Console  # (not on the --help path)

    # in logs (not a terminal) lines are not wrapped at 80 columns: errors stay greppable
    return Console(stderr=True, soft_wrap=not sys.stderr.isatty())


def flag_values(stage: str, kwargs: dict[str, Any], data: tuple[str, ...]) -> dict[str, Any]:
    flags = {}
    names = {f.name for f in cli_fields(stage)}
    for k, v in kwargs.items():
        if k in names and v is not None and v != ():
            flags[k] = list(v) if isinstance(v, tuple) else v
    all_data = list(data) + list(kwargs.get("data_opt") or ())
    if all_data:
        flags["data"] = all_data
    return flags


def resolve_config(stage: str, config_file, kwargs, data, sets, console=None, flag_stage: str | None = None):
    """The stage's config from the YAML, the generated flags (``flag_stage``'s, for plan/check, which
    take the sft flags) and --set; peer keys that were ignored or passed through are printed."""
    flags = flag_values(flag_stage or stage, kwargs, data)
    if flag_stage:
        names = {f.name for f in cli_fields(stage)}
        flags = {k: v for k, v in flags.items() if k in names}
    # a ConfigError (a TamisError) names the setting as given (--epochs, or epochs from the YAML/--set):
    # the `train` group prints it as one error line
    cfg = resolve(stage, config_file, flags, parse_set(sets))
    if console is not None:
        for warning in getattr(cfg, "warnings", ()):
            console.print(f"[yellow]note:[/yellow] {warning}", soft_wrap=True, markup=True, highlight=False)
    return cfg
