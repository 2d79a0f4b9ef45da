"""`curate dedup`, `curate decontaminate` and `curate score` are generated from their Configs: every
option is a Config field, a shared option or one of the few declared extras, every default shown is the
Config's, and the spellings users know are kept. `curate quality train` takes its options from
TrainParams the same way."""

from __future__ import annotations

import dataclasses

import click
import pytest

from curate import stages
from curate.cli import main
from curate.commands.generated import GeneratedCommand
from curate.core.coerce import dataclass_config
from curate.engines import engine_options

# the only hand-written options (parameter names): what is not a setting of the stage
EXTRAS = {
    "dedup": {"state", "batch_label", "clusters_path", "explain"},
    "decontaminate": set(),  # --against is a DecontamConfig field (issue 14)
    "score": {"no_cache"},
}


def _command(name: str) -> click.Command:
    return main.get_command(click.Context(main), name)


def _decorated(decorators) -> set[str]:
    def probe():
        pass

    for deco in reversed(list(decorators)):
        probe = deco(probe)
    return {p.name for p in getattr(probe, "__click_params__", ())}


def _default(fld: dataclasses.Field):
    if fld.default is not dataclasses.MISSING:
        return fld.default
    return fld.default_factory()


@pytest.mark.parametrize("name", sorted(EXTRAS))
def test_options_are_the_config_fields_the_shared_options_and_the_declared_extras(name):
    command = _command(name)
    assert isinstance(command, GeneratedCommand), f"curate {name} is hand-written"
    spec = command.spec
    assert _decorated(spec.extras) == EXTRAS[name]
    fields = {f.name for f in stages.get(name).fields()}
    assert not fields & EXTRAS[name]
    shared = _decorated(spec.shared_options()) | (_decorated([engine_options]) if spec.engine else set())
    assert {p.name for p in command.params} == fields | shared | EXTRAS[name]


@pytest.mark.parametrize("name", sorted(EXTRAS))
def test_every_default_shown_is_the_configs(name):
    params = {p.name: p for p in _command(name).params}
    for fld in stages.get(name).fields():
        default = _default(fld)
        if isinstance(default, tuple) and not params[fld.name].multiple:
            default = ",".join(default)  # one comma-separated value
        assert params[fld.name].default == default, fld.name


def test_the_spellings_users_know_are_kept():
    def spellings(name):
        return {o for p in _command(name).params for o in [*p.opts, *p.secondary_opts]}

    assert {
        "--method",
        "--fields",
        "--threshold",
        "--latin-ngram",
        "--memory-budget",
        "--keep",
        "--state",
        "--batch-label",
        "--clusters",
        "--explain",
        "--engine",
    } <= spellings("dedup")
    assert {"--against", "--ngram", "--fields", "--eval-fields", "--min-overlap"} <= spellings(
        "decontaminate"
    )
    assert {
        "--scorers",
        "--lm",
        "--batch-size",
        "--max-batch",
        "--cache",
        "--no-cache",
        "--trust-remote-code",
    } <= spellings("score")


def test_a_memory_budget_is_a_size_on_the_command_line_and_in_a_recipe():
    from curate.dedup.engine import DedupConfig, parse_size

    assert dataclass_config(DedupConfig, {"memory_budget": "512MB"}).memory_budget == parse_size("512MB")
    assert DedupConfig().memory_budget == parse_size("1GB")


def test_quality_train_options_come_from_train_params():
    from curate.commands.score import quality
    from curate.score.quality import TrainParams

    params = {p.name: p for p in quality.commands["train"].params}
    for fld in dataclasses.fields(TrainParams):
        if fld.name == "min_count":  # not an option
            assert fld.name not in params
            continue
        assert params[fld.name].default == fld.default, fld.name
    assert "--no-quantize" in params["quantize"].secondary_opts
