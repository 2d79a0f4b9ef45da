"""The one error contract of `curate` and `train` (issue 14): a user error (a TamisError) is exit 2 with
one ``error:`` line, anything else a bug: exit 70 with the traceback; and the messages name a setting as
the user wrote it (a flag on the command line, a key in a recipe or a YAML config)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from curate import stages
from curate.core.errors import UsageError
from curate.core.stage import Scope, Stage
from curate.stage import StageResult

# ----------------------------------------------------------------------------- stage failures in a recipe


@dataclass
class BrokenConfig:
    how: str = field(default="bug", metadata={"help": "bug, lose or user: how the stage goes wrong."})


def broken_stage(frame: pl.DataFrame, config: BrokenConfig) -> StageResult:
    if config.how == "bug":
        raise RuntimeError("an index off by one")
    if config.how == "user":
        raise UsageError("the column 'score' is not in the input")
    # "lose": one row neither kept nor dropped
    return StageResult(frame.head(frame.height - 1), frame.clear(), {})


class Broken(Stage):
    name = "broken"
    suffix = "broken"
    scope = Scope.GLOBAL
    help = "A toy stage that goes wrong."
    module = __name__
    config = f"{__name__}:BrokenConfig"
    function = "broken_stage"


@pytest.fixture
def broken():
    stages.register(Broken, before="export")
    yield Broken
    stages.unregister("broken")


def _recipe(tmp_path: Path, how: str) -> Path:
    (tmp_path / "in.jsonl").write_text(
        "".join(json.dumps({"question": f"q{i}", "answer": f"answer {i}"}) + "\n" for i in range(3)),
        encoding="utf-8",
    )
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(f"inputs: [in.jsonl]\nstages:\n  - broken: {{how: {how}}}\n", encoding="utf-8")
    return recipe


def _curate(*args: str):
    from curate.cli import main

    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.mark.parametrize(
    ("how", "raised"), [("bug", "RuntimeError: an index off by one"), ("lose", "AccountingError")]
)
def test_a_bug_in_a_recipe_stage_is_exit_70_with_its_traceback(broken, tmp_path, how, raised):
    res = _curate("run", _recipe(tmp_path, how))
    assert res.exit_code == 70, res.output
    assert "Traceback" in res.stderr and raised in res.stderr
    assert "stage broken" in res.stderr  # the note (or the accounting message) names the stage
    res = _curate("run", _recipe(tmp_path, how), "--json")
    assert res.exit_code == 70 and json.loads(res.stdout.strip().splitlines()[-1])["exit_code"] == 70


def test_a_user_error_in_a_recipe_stage_is_one_error_line(broken, tmp_path):
    res = _curate("run", _recipe(tmp_path, "user"))
    assert res.exit_code == 2, res.output
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert errors == ["error: stage broken failed: UsageError: the column 'score' is not in the input"]
    assert "Traceback" not in res.stderr
