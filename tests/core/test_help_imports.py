"""`<command> --help` stays light: for every `curate` and `train` command (sub-commands included),
asking for its help imports none of the heavy libraries. A stage command's options come from its Config
dataclass, so the Config lives in a light module beside its library (curate/<stage>/config.py), and a
command keeps its library imports off the --help path."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("polars", "numpy", "torch", "transformers", "rich")
# yaml only where it always was: the recipe commands (one module, curate.commands.pipeline) read and
# write recipes
YAML_OK = ("init", "run", "runs", "refresh")

# One process per program walks every command: after each `--help` it looks at sys.modules, so the
# first command that pulls a heavy library in is the one reported (commands allowed yaml go last).
WALK = """
import json, sys
import click
from click.testing import CliRunner
from {module} import main

HEAVY, YAML_OK = {heavy!r}, {yaml_ok!r}

def heavy_loaded(cmd, before):
    allowed = cmd and cmd[0] in YAML_OK
    new = {{m.split(".")[0] for m in set(sys.modules) - before}}
    return sorted(new & set(HEAVY + (() if allowed else ("yaml",))))

def check(group, path):
    # each command's --help in turn, the command imported only for it (listing imports nothing)
    ctx = click.Context(group, info_name=path[-1] if path else None)
    names = sorted(group.list_commands(ctx), key=lambda n: not path and n in YAML_OK)
    for name in names:
        cmd = [*path, name]
        before = set(sys.modules)
        result = CliRunner().invoke(main, [*cmd, "--help"])
        seen.append({{"command": " ".join(cmd), "exit": result.exit_code, "heavy": heavy_loaded(cmd, before)}})
        if seen[-1]["heavy"] or result.exit_code:
            return False
        sub = group.get_command(ctx, name)
        if isinstance(sub, click.Group) and not check(sub, cmd):
            return False
    return True

seen = []
before = set(sys.modules)
result = CliRunner().invoke(main, ["--help"])
seen.append({{"command": "", "exit": result.exit_code, "heavy": heavy_loaded([], before)}})
if not seen[-1]["heavy"] and not result.exit_code:
    check(main, [])
print(json.dumps(seen))
"""


@pytest.mark.parametrize("program", ["curate", "train"])
def test_every_command_help_imports_no_heavy_library(program):
    # the commands are listed without loading them: importing a command for its --help is the test
    code = WALK.format(module=f"{program}.cli", heavy=HEAVY, yaml_ok=YAML_OK)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    bad = [s for s in seen if s["heavy"] or s["exit"]]
    assert not bad, (
        f"`{program} {bad[0]['command']} --help` exit {bad[0]['exit']}, imported {bad[0]['heavy']}"
    )
    names = {s["command"] for s in seen}
    assert {"", "dedup", "filter", "export"} <= names if program == "curate" else {"", "sft", "dpo"} <= names


def test_a_stage_cache_key_covers_its_config_module(monkeypatch):
    """The Configs live outside their stage packages (curate.configs): editing one still invalidates
    the stage's cached results, as editing the stage's own code does."""
    from curate import stages
    from curate.pipeline import fingerprint
    from curate.pipeline.stages import REGISTRY

    for stage in stages.STAGES:
        if not stage.config or stage.name not in REGISTRY:  # the source's key: planning.ingest_key
            continue
        spec = REGISTRY[stage.name]
        before = spec.code_fingerprint()
        monkeypatch.setitem(fingerprint._CODE_FP, stage.config.split(":")[0], "edited")
        assert spec.code_fingerprint() != before, stage.name
        monkeypatch.undo()
