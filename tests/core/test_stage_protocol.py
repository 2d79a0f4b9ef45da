"""The one stage protocol: a stage declared once (name, suffix, scope, Config) is a `curate` command,
a recipe stage and a Ray stage, with no other table to edit (docs/architecture.md shows this toy)."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from curate import stages
from curate.core.stage import Scope, Stage
from curate.records import Record, to_frame
from curate.stage import StageResult, mark_dropped

# ----------------------------------------------------------------------------- the toy stage


@dataclass
class ShortConfig:
    min_chars: int = field(default=3, metadata={"help": "Drop answers shorter than this many characters."})
    reason: str = field(default="too_short", metadata={"help": "The drop reason written on dropped rows."})


def drop_short(frame: pl.DataFrame, config: ShortConfig) -> StageResult:
    mask = frame["answer"].fill_null("").str.len_chars() >= config.min_chars
    return StageResult(frame.filter(mask), mark_dropped(frame.filter(~mask), "short", config.reason), {})


class Short(Stage):
    name = "short"
    suffix = "shortened"
    scope = Scope.ROW
    help = "Drop answers shorter than --min-chars (a toy stage)."
    module = __name__
    config = f"{__name__}:ShortConfig"
    function = "drop_short"


@pytest.fixture
def toy_stage():
    stages.register(Short, before="export")
    yield Short
    stages.unregister("short")


def write_rows(path: Path, answers: list[str]) -> Path:
    path.write_text(
        "".join(json.dumps({"question": f"q{i}", "answer": a}) + "\n" for i, a in enumerate(answers)),
        encoding="utf-8",
    )
    return path


ANSWERS = ["ok", "a fine answer", "no", "yes indeed", "x"]


def test_a_registered_stage_is_a_command(toy_stage, tmp_path):
    from curate.cli import main

    listing = CliRunner().invoke(main, ["--help"])
    assert listing.exit_code == 0 and "short" in listing.output and "a toy stage" in listing.output
    helped = CliRunner().invoke(main, ["short", "--help"])
    assert "--min-chars" in helped.output and "--reason" in helped.output and "--engine" in helped.output
    src = write_rows(tmp_path / "in.jsonl", ANSWERS)
    res = CliRunner().invoke(main, ["short", str(src), "--min-chars", "4", "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert summary["kept"] == 2 and summary["dropped"] == 3
    assert Path(summary["outputs"]["output"]).name == "in.shortened.jsonl"  # the declared suffix
    bad = CliRunner().invoke(main, ["short", str(src), "--min-chars", "four"])
    assert bad.exit_code == 2 and "--min-chars" in bad.output


def test_a_registered_stage_runs_in_a_recipe(toy_stage, tmp_path):
    from curate.pipeline.recipe import load_recipe
    from curate.pipeline.run import run_recipe

    write_rows(tmp_path / "in.jsonl", ANSWERS)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("inputs: [in.jsonl]\nstages:\n  - short: {min_chars: 4}\n", encoding="utf-8")
    res = run_recipe(load_recipe(recipe), quiet=True)
    assert res.manifest["rows"]["output"] == 2
    assert res.manifest["stages"][1]["scope"] == "row"
    recipe.write_text("inputs: [in.jsonl]\nstages:\n  - short: {min_char: 4}\n", encoding="utf-8")
    from curate.pipeline.recipe import RecipeError

    with pytest.raises(RecipeError, match=r"recipe.yaml:3: .*short.*min_char.*did you mean 'min_chars'"):
        run_recipe(load_recipe(recipe), quiet=True)


def test_a_registered_stage_is_dispatched_by_scope():
    """No table names the stage: its function's kind comes from the declaration (row scope -> row
    blocks on Ray), the same way the shipped stages' kinds do."""
    from curate.engines import stage_kind

    stages.register(Short)
    try:
        assert stage_kind(drop_short) == "row"
        assert stages.for_function(drop_short) is Short
    finally:
        stages.unregister("short")
    assert stage_kind(drop_short) == "global"  # unregistered: the safe default


class FinalShort(Short):
    """The toy declared final (as export is): the recipe order rule is read from the declaration."""

    name = "finalshort"
    final = True


def test_a_final_stage_ends_a_recipe(tmp_path):
    from curate.pipeline.recipe import RecipeError, load_recipe

    write_rows(tmp_path / "in.jsonl", ANSWERS)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("inputs: [in.jsonl]\nstages:\n  - finalshort\n  - short\n", encoding="utf-8")
    stages.register(Short)
    stages.register(FinalShort)
    try:
        with pytest.raises(
            RecipeError, match="finalshort writes the final dataset, so only other finalshorts"
        ):
            load_recipe(recipe)
        recipe.write_text("inputs: [in.jsonl]\nstages:\n  - short\n  - finalshort\n", encoding="utf-8")
        assert [s.name for s in load_recipe(recipe).steps] == ["ingest", "short", "finalshort"]
    finally:
        stages.unregister("finalshort")
        stages.unregister("short")


@pytest.mark.slow
def test_a_registered_stage_runs_on_ray(toy_stage, tmp_path):
    pytest.importorskip("ray")
    from ray import cloudpickle

    from curate.engines import EngineSpec
    from curate.engines.ray import ensure_ray, shutdown
    from curate.pipeline.recipe import load_recipe
    from curate.pipeline.run import run_recipe

    ensure_ray(EngineSpec("ray", ray_cpus=1))
    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import test modules
    try:
        write_rows(tmp_path / "in.jsonl", ANSWERS * 3)
        recipe = tmp_path / "recipe.yaml"
        recipe.write_text(
            "inputs: [in.jsonl]\nengine: {name: ray, block_rows: 4}\nstages:\n  - short: {min_chars: 4}\n",
            encoding="utf-8",
        )
        res = run_recipe(load_recipe(recipe), quiet=True)
    finally:
        shutdown()
    stage = res.manifest["stages"][1]
    assert res.manifest["rows"]["output"] == 6
    assert stage["stats"]["engine"]["name"] == "ray" and stage["stats"]["engine"]["kind"] == "row"
    assert stage["stats"]["engine"]["blocks"] == 4


def test_registry_is_the_one_table():
    """Order, suffixes, commands, recipe stage names and scopes all come from the registry."""
    from curate.cli import commands
    from curate.names import STAGE_SUFFIX
    from curate.pipeline import stages as pipeline_stages

    names = stages.names()
    assert names[0] == "ingest" and names[-1] == "export"
    assert STAGE_SUFFIX == {s.name: s.suffix for s in stages.STAGES}
    assert set(names) <= set(commands())
    for s in stages.STAGES:
        assert s.scope in Scope
        if s.scope is not Scope.SOURCE:
            assert pipeline_stages.REGISTRY[s.name].scope == str(s.scope)


def test_frame_helper():
    frame = to_frame(Record(kind="sft", question="q", answer=a).as_row() for a in ANSWERS)
    res = drop_short(frame, ShortConfig(min_chars=4))
    assert res.kept.height == 2 and set(res.dropped["drop_reason"]) == {"too_short"}


def test_help_lists_the_registry_without_importing_stage_libraries():
    """`curate --help` reads every stage declaration but imports no stage library (polars, numpy,
    torch): it stays instant."""
    import subprocess

    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from curate.cli import main\n"
        "r = CliRunner().invoke(main, ['--help'])\n"
        "assert r.exit_code == 0 and 'dedup' in r.output, r.output\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('polars', 'numpy', 'torch', 'transformers'))\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
