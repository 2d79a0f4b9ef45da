"""One name per engine setting (issue 14): the stage commands' flags (--ray-address, --ray-cpus,
--block-rows, --actors), the same flags on `curate run` / `curate refresh`, the recipe's `engine:`
keys (ray_address, ray_cpus...) and the run manifest's `config.engine`; the first releases' recipe keys
(address, num_cpus) still work, with one warning, and old manifests still read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from curate import engines
from curate.cli import main
from curate.core import stage as stage_protocol
from curate.engines import EngineSpec
from curate.pipeline.recipe import RecipeError, parse_recipe

BASE = "name: t\ninputs: [a.jsonl]\n"
FLAGS = ["--engine", "--ray-address", "--ray-cpus", "--block-rows", "--actors"]


@pytest.fixture()
def fresh_warnings(monkeypatch):
    """Each deprecation warning prints once per process: start from none printed."""
    monkeypatch.setattr(stage_protocol, "_WARNED", set())


def _engine(text: str) -> EngineSpec:
    return parse_recipe(BASE + text).engine


def test_the_recipe_keys_are_the_flags_names(fresh_warnings, capsys):
    spec = _engine("engine: {name: ray, ray_address: auto, ray_cpus: 8, block_rows: 200, actors: 2}\n")
    assert spec == EngineSpec("ray", "auto", 8, 200, 2)
    assert capsys.readouterr().err == ""
    assert engines.SETTINGS == ("name", "ray_address", "ray_cpus", "block_rows", "actors")
    # each setting but --engine (name) is the flag with underscores
    assert [f"--{k.replace('_', '-')}" for k in engines.SETTINGS[1:]] == FLAGS[1:]


def test_old_recipe_keys_still_work_with_one_warning(fresh_warnings, capsys):
    old = _engine("engine: {address: auto, num_cpus: 8}\n")
    assert old == EngineSpec("ray", "auto", 8)
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "warning: engine: address is deprecated; use ray_address",
        "warning: engine: num_cpus is deprecated; use ray_cpus",
    ]
    _engine("engine: {address: auto, num_cpus: 8}\n")  # a recipe is read more than once: said once
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(
    ("engine", "message"),
    [
        ("{ray_cpus: 0}", r"<recipe>:3: engine.ray_cpus: must be at least 1, got 0"),
        ("{num_cpus: 0}", r"<recipe>:3: engine.num_cpus: must be at least 1, got 0"),
        ("{block_rows: many}", r"engine.block_rows: expected an integer, got 'many'"),
        ("{ray_address: 6379}", r"engine.ray_address: expected a string, got 6379"),
        ("{name: local, ray_address: auto}", r"engine.ray_address: a Ray cluster to join needs name: ray"),
        ("{ray_cpus: 2, num_cpus: 2}", r"engine.num_cpus: num_cpus and ray_cpus are the same setting"),
        ("{num_cpus: 2, ray_cpus: 2}", r"engine.num_cpus: num_cpus and ray_cpus are the same setting"),
        ("{ray_cpu: 2}", r"engine.ray_cpu: unknown engine key \(did you mean 'ray_cpus'\?\)"),
        ("{name: spark}", r"engine.name: unknown engine 'spark'"),
    ],
)
def test_errors_name_the_key_as_written(fresh_warnings, engine, message):
    with pytest.raises(RecipeError, match=message):
        _engine(f"engine: {engine}\n")


def test_engine_spec_errors_name_the_flags():
    with pytest.raises(ValueError, match="--ray-cpus must be at least 1, got 0"):
        EngineSpec("ray", ray_cpus=0)


def test_the_manifest_records_the_same_names():
    recipe = parse_recipe(BASE + "engine: {name: ray, ray_address: auto, ray_cpus: 4, actors: 2}\n")
    assert recipe.resolved()["engine"] == {"name": "ray", "ray_address": "auto", "ray_cpus": 4, "actors": 2}
    assert parse_recipe(BASE).resolved()["engine"] == {"name": "local"}


@pytest.mark.parametrize("command", ["run", "refresh", "dedup", "filter"])
def test_recipe_commands_take_the_stage_commands_engine_flags(command):
    params = {p.name: p for p in main.get_command(None, command).params}
    flags = [opt for p in params.values() for opt in p.opts if opt in FLAGS]
    assert sorted(flags) == sorted(FLAGS)


def test_engine_flags_override_the_recipes_settings_one_by_one():
    base = EngineSpec("ray", "head:6379", 8, 100, 2)
    assert engines.overridden(base, {}) is base
    assert engines.overridden(None, {}) is None
    assert engines.overridden(base, {"actors": 5}) == EngineSpec("ray", "head:6379", 8, 100, 5)
    assert engines.overridden(base, {"name": "local"}) == EngineSpec("local", None, 8, 100, 2)
    assert engines.overridden(None, {"ray_address": "auto"}) == EngineSpec("ray", "auto")
    with pytest.raises(ValueError, match="--ray-address needs --engine ray"):
        engines.overridden(base, {"name": "local", "ray_address": "auto"})


def _tiny(tmp_path: Path, engine: str = "") -> Path:
    rows = [
        {"question": f"question {i} about disks?", "answer": f"answer {i} is long enough"} for i in range(3)
    ]
    (tmp_path / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"name: r\ninputs: [a.jsonl]\n{engine}", encoding="utf-8")
    return recipe


def test_run_flags_reach_the_manifest_and_old_manifests_still_read(tmp_path):
    recipe = _tiny(tmp_path, "engine: {name: local, block_rows: 100}\n")
    res = CliRunner().invoke(main, ["run", str(recipe), "--json", "--ray-cpus", "3", "--actors", "2"])
    assert res.exit_code == 0, res.output
    manifest_path = Path(json.loads(res.stdout.splitlines()[-1])["manifest"])
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    assert manifest["config"]["engine"] == {"name": "local", "ray_cpus": 3, "block_rows": 100, "actors": 2}
    bad = CliRunner().invoke(main, ["run", str(recipe), "--engine", "local", "--ray-address", "auto"])
    assert bad.exit_code == 2 and "--ray-address needs --engine ray" in bad.stderr

    # a manifest written before the rename (address, num_cpus) lists and reports as before
    manifest["config"]["engine"] = {"name": "ray", "address": "auto", "num_cpus": 3}
    manifest_path.write_text(json.dumps(manifest), encoding="utf-8")
    listed = CliRunner().invoke(main, ["runs", str(recipe), "--json"])
    assert listed.exit_code == 0, listed.output
    assert [json.loads(line)["run_id"] for line in listed.stdout.splitlines()] == [manifest["run_id"]]
    report = CliRunner().invoke(main, ["report", str(manifest_path), "-o", str(tmp_path / "r.html")])
    assert report.exit_code == 0, report.output


def test_refresh_flags_override_the_recipes_engine(tmp_path, monkeypatch):
    from curate.pipeline import refresh as refresh_module

    seen = {}

    def fake_refresh(recipe, new_inputs, **_kwargs):
        seen["engine"] = recipe.engine
        raise RecipeError("stop here")

    monkeypatch.setattr(refresh_module, "refresh", fake_refresh)
    recipe = _tiny(tmp_path, "engine: {name: ray, ray_address: 'head:6379', ray_cpus: 8}\n")
    res = CliRunner().invoke(main, ["refresh", str(recipe), "--block-rows", "50", "--engine", "ray"])
    assert res.exit_code == 2 and "stop here" in res.stderr
    assert seen["engine"] == EngineSpec("ray", "head:6379", 8, 50)
