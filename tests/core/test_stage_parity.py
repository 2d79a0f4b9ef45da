"""Parametrised over the stage registry: every stage's settings have one name on the command line and
in a recipe, and a command and a one-stage recipe with the same settings write the same rows."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from curate import stages
from curate.cli import main
from curate.core.coerce import OptionError, dataclass_config
from curate.core.stage import Scope

STAGES = [s for s in stages.STAGES if s.scope is not Scope.SOURCE]


def _flags(command: click.Command) -> set[str]:
    return {
        o.lstrip("-").replace("-", "_")
        for p in command.params
        if isinstance(p, click.Option)
        for o in [*p.opts, *p.secondary_opts]
    }


@pytest.mark.parametrize("stage", STAGES, ids=lambda s: s.name)
def test_every_setting_has_one_name_on_the_command_line_and_in_a_recipe(stage):
    command = main.get_command(click.Context(main), stage.name)
    flags = _flags(command)
    settings = [f.name for f in stage.fields()] or list(getattr(stage, "options", ()))
    assert settings, stage
    cfg = stage.config_class()
    for name in settings:
        spellings = {name} | {a for a, target in stage.aliases.items() if target == name}
        assert spellings & flags, f"curate {stage.name}: no option for the setting {name!r}"
        if cfg is None:
            continue
        fld = next(f for f in dataclasses.fields(cfg) if f.name == name)
        default = fld.default if fld.default is not dataclasses.MISSING else fld.default_factory()
        for key in spellings & flags:  # the command-line spelling is also a recipe key
            value = list(default) if isinstance(default, tuple) else default
            try:
                dataclass_config(cfg, {key: value}, rename=stage.aliases)
            except OptionError as exc:  # the settings as a whole may need more ("nothing to do")
                assert exc.key != key, f"{stage.name}: the recipe refuses {key!r}: {exc}"


ROWS = [
    ("How do I reset my password?", "Open Settings, choose Security, then Reset password."),
    ("How do I reset my password?", "Open Settings, choose Security, then Reset password."),
    ("How do I reset my password ?", "Open Settings, choose Security, then Reset password!"),
    ("怎么导出报表？", "在报表页面点击右上角的导出按钮，选择格式后下载。"),
    ("怎么导出报表？", "在报表页面点击右上角的导出按钮，选择格式后下载。"),
    ("What is the SLA for P1 incidents?", "P1 incidents are answered within 15 minutes, around the clock."),
    ("Can I change the billing date?", "Yes: Billing, Payment settings, Change date; it applies next cycle."),
    ("Where are the logs kept?", "ok"),
    ("How do I add a user?", "Admin console, Users, Add user; they get an invitation e-mail."),
    ("VPN keeps dropping", "Update the client to 5.2 and switch the protocol to IKEv2 in Preferences."),
]

# stage -> (settings as a recipe writes them, the same settings as flags, extra input files)
CASES = {
    "dedup": (
        {"threshold": 0.7, "method": "exact,minhash"},
        ["--threshold", "0.7", "--method", "exact,minhash"],
    ),
    "decontaminate": ({"against": "eval.jsonl", "ngram": 4}, ["--against", "eval.jsonl", "--ngram", "4"]),
    "filter": (
        {"rules": "default", "disable": ["html-leftover"]},
        ["--rules", "default", "--disable", "html-leftover"],
    ),
    "score": ({"scorers": "quality"}, ["--scorers", "quality"]),
    "augment": ({"rephrase": 1, "seed": 3}, ["--rephrase", "1", "--seed", "3"]),
    "select": ({"target": 4, "defaults": False}, ["--target", "4", "--no-defaults"]),
    "pairs": ({"max_similarity": 0.8, "mode": "existing"}, ["--max-similarity", "0.8", "--mode", "existing"]),
    "export": ({"format": "alpaca", "output": "cli.json"}, ["--format", "alpaca"]),
}


def test_every_registered_stage_has_a_parity_case():
    assert {s.name for s in STAGES} <= set(CASES)


@pytest.mark.parametrize("stage", STAGES, ids=lambda s: s.name)
def test_command_and_one_stage_recipe_write_the_same_rows(stage, tmp_path, monkeypatch):
    from curate.io import load
    from curate.pipeline.recipe import load_recipe
    from curate.pipeline.run import run_recipe

    settings, flags = CASES[stage.name]
    monkeypatch.chdir(tmp_path)
    from curate.score import demo

    monkeypatch.setattr(demo, "_WARNED", set())  # the demo-model warning is once per process: not ours
    rows = [{"question": q, "answer": a} for q, a in ROWS]
    if stage.name == "pairs":
        rows = [
            {"prompt": q, "chosen": a, "rejected": a[::-1] if i % 2 else a} for i, (q, a) in enumerate(ROWS)
        ]
    Path("in.jsonl").write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8"
    )
    Path("eval.jsonl").write_text(json.dumps({"question": ROWS[6][0], "answer": ROWS[6][1]}) + "\n")

    out = "cli.json" if stage.name == "export" else "cli.jsonl"
    res = CliRunner().invoke(main, [stage.name, "in.jsonl", "-o", out, *flags, "--json"])
    assert res.exit_code == 0, res.output

    opts = dict(settings)
    if stage.name == "export":
        opts["output"] = "recipe.json"
    Path("recipe.yaml").write_text(
        json.dumps(
            {"inputs": ["in.jsonl"], "stages": [{stage.name: opts}], "outputs": {"data": "recipe.jsonl"}}
        ),
        encoding="utf-8",
    )
    run_recipe(load_recipe(Path("recipe.yaml")), quiet=True)
    if stage.name == "export":  # the trainer file is the output of both
        assert Path("cli.json").read_text(encoding="utf-8") == Path("recipe.json").read_text(encoding="utf-8")
        return
    cli_rows = load(["cli.jsonl"]).frame.drop("source")
    recipe_rows = load(["recipe.jsonl"]).frame.drop("source")
    assert cli_rows.height > 0
    assert cli_rows.to_dicts() == recipe_rows.to_dicts()
