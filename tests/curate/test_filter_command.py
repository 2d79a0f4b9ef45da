"""`curate filter` is a plain stage command: it runs through the generic skeleton (issue 14), reads the
rule YAML once per run, and writes what a recipe's filter stage writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from curate.cli import main
from curate.commands.filter import filter_cmd
from curate.commands.generated import StageCommand
from curate.io import load, write_frame
from curate.pipeline.recipe import RecipeError, load_recipe
from curate.pipeline.run import run_recipe
from curate.rules import engine as rules_engine
from curate.rules.synthetic import planted_frame

SETTINGS = {"rules": ["strict"], "disable": ["answer-too-short"], "set": ["too-long.max_chars=300"]}
FLAGS = ["--rules", "strict", "--disable", "answer-too-short", "--set", "too-long.max_chars=300"]


@pytest.fixture
def data(tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    write_frame(planted_frame(120, seed=5), tmp_path / "in.jsonl")
    return tmp_path


@pytest.fixture
def rule_loads(monkeypatch) -> list:
    """Every rule set loaded (the stage, its config and the rules engine all load through
    ``curate.rules.engine.load_rules``)."""
    calls = []
    real = rules_engine.load_rules

    def counting(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(rules_engine, "load_rules", counting)
    return calls


def _recipe(settings: dict, output: str = "recipe.jsonl") -> Path:
    path = Path("recipe.yaml")
    recipe = {"inputs": ["in.jsonl"], "stages": [{"filter": settings}], "outputs": {"data": output}}
    path.write_text(json.dumps(recipe), encoding="utf-8")
    return path


def test_filter_runs_through_the_generic_skeleton():
    spec = filter_cmd.spec
    assert isinstance(spec, StageCommand)
    assert type(spec).execute is StageCommand.execute and type(spec).prepare is StageCommand.prepare


def test_the_rule_yaml_is_read_once_per_command_and_per_recipe(data, rule_loads):
    res = CliRunner().invoke(main, ["filter", "in.jsonl", "-o", "cli.jsonl", *FLAGS, "--json"])
    assert res.exit_code == 0, res.output
    assert len(rule_loads) == 1
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert [Path(f).name for f in summary["rule_sets"]][:1] == ["strict.yaml"]
    rule_loads.clear()
    run_recipe(load_recipe(_recipe(SETTINGS)), quiet=True)
    assert len(rule_loads) == 1


def test_the_command_writes_what_a_recipe_filter_stage_writes(data):
    res = CliRunner().invoke(main, ["filter", "in.jsonl", "-o", "cli.jsonl", *FLAGS, "--json"])
    assert res.exit_code == 0, res.output
    run_recipe(load_recipe(_recipe(SETTINGS)), quiet=True)
    for name in ("{}.jsonl", "{}.dropped.jsonl"):
        cli = load([name.format("cli")]).frame.drop("source")
        recipe = load([name.format("recipe")]).frame.drop("source")
        assert cli.height > 0 and cli.to_dicts() == recipe.to_dicts(), name


def test_a_broken_rule_set_is_one_message_listing_every_problem(data):
    Path("bad.yaml").write_text(
        "rules:\n  - id: x\n    description: d\n    check: nope\n"
        "  - id: y\n    description: d\n    check: length\n    params: {max_chars: abc}\n",
        encoding="utf-8",
    )
    res = CliRunner().invoke(main, ["filter", "in.jsonl", "-r", "bad.yaml", "--disable", "nosuch"])
    assert res.exit_code == 2
    lines = res.stderr.strip().splitlines()
    assert lines[0] == "error: invalid rule set:" and len(lines) == 4
    assert "bad.yaml:4: rules[0] (x).check: unknown check 'nope'" in lines[1]
    assert "bad.yaml:8: " in lines[2] and "max_chars" in lines[2]
    assert lines[3].startswith("  <command line>: ") and "nosuch" in lines[3]
    assert not Path("in.filtered.jsonl").exists()
    # a recipe says the same, at the filter stage
    with pytest.raises(RecipeError, match=r"filter: invalid rule set:\n  .*bad.yaml:4: rules\[0\]"):
        run_recipe(load_recipe(_recipe({"rules": ["bad.yaml"]})), quiet=True)
