"""`--engine ray` on the commands and `engine:` in recipes: same files out as the local engine.

The commands start (and this module stops) one local 2-CPU Ray cluster."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from curate.cli import main
from curate.pipeline.recipe import RecipeError, parse_recipe

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples"
RAY = ["--engine", "ray", "--ray-cpus", "2"]


def curate(*args) -> tuple[int, str]:
    res = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    return res.exit_code, res.stdout


@pytest.fixture(scope="module")
def ray_session():
    pytest.importorskip("ray")
    yield
    from curate.engines.ray import shutdown

    shutdown()


def test_recipe_engine_key_forms():
    base = "name: t\ninputs: [a.jsonl]\nstages:\n  - dedup: {}\n"
    assert parse_recipe(base).engine is None
    assert parse_recipe(base + "engine: ray\n").engine.name == "ray"
    spec = parse_recipe(base + "engine:\n  address: auto\n  actors: 3\n").engine
    assert (spec.name, spec.ray_address, spec.actors) == ("ray", "auto", 3)
    with pytest.raises(
        RecipeError, match=r"<recipe>:6: engine.adress: unknown engine key \(did you mean 'ray_address'"
    ):
        parse_recipe(base + "engine:\n  adress: auto\n")
    with pytest.raises(RecipeError, match="unknown engine 'spark'"):
        parse_recipe(base + "engine: spark\n")
    # issue 14: the error names the key as the recipe wrote it (was: "--ray-address needs --engine ray")
    with pytest.raises(RecipeError, match="engine.address: a Ray cluster to join needs name: ray"):
        parse_recipe(base + "engine: {name: local, address: auto}\n")


def test_stage_commands_same_files_on_ray(ray_session, tmp_path):
    inputs = [SAMPLES / "ops_qa.jsonl", SAMPLES / "ops_qa.gbk.csv"]
    outs = {}
    for engine, extra in (("local", []), ("ray", [*RAY, "--block-rows", "100"])):
        d = tmp_path / engine
        d.mkdir()
        code, out = curate("dedup", *inputs, "-o", d / "dedup.jsonl", "--json", *extra)
        assert code == 1  # the samples plant unreadable rows (rejects), on both engines
        summary = json.loads(out)
        assert summary["input_rows"] == summary["kept"] + summary["dropped"] + summary["rejected"]
        assert (summary.get("engine") or {}).get("name", "local") == engine
        code, out = curate("filter", d / "dedup.jsonl", "-o", d / "filter.jsonl", "--json", *extra)
        assert code == 0
        code, out = curate(
            "score",
            d / "filter.jsonl",
            "--scorers",
            "quality",
            "--no-cache",
            "-o",
            d / "score.jsonl",
            "--json",
            *extra,
        )
        assert code == 0
        outs[engine] = d
    for name in (
        "dedup.jsonl",
        "dedup.dropped.jsonl",
        "dedup.rejects.jsonl",
        "filter.jsonl",
        "filter.dropped.jsonl",
        "score.jsonl",
    ):
        assert (outs["local"] / name).read_bytes() == (outs["ray"] / name).read_bytes(), name


def test_same_recipe_on_both_engines_by_changing_engine_only(ray_session, tmp_path):
    for p in ("ops_qa.jsonl", "ops_qa.gbk.csv"):
        shutil.copy(SAMPLES / p, tmp_path / p)
    body = (
        "inputs: [ops_qa.jsonl, ops_qa.gbk.csv]\n"
        "stages:\n"
        "  - dedup: {methods: [exact, minhash]}\n"
        "  - filter: {rules: [default]}\n"
        f"  - score: {{scorers: [quality], quality_model: {SAMPLES / 'models' / 'quality.ftz'}}}\n"
        "  - select: {diversity: off}\n"
        "  - export: {format: trl, output: out/{engine}.trl.jsonl}\n"
        "outputs: {data: out/{engine}.curated.jsonl}\n"
        "work_dir: work/{engine}\n"
    )
    manifests = {}
    for engine in ("local", "ray"):
        recipe = tmp_path / f"{engine}.yaml"
        recipe.write_text(
            f"name: ops\nengine: {engine}\n" + body.replace("{engine}", engine), encoding="utf-8"
        )
        code, out = curate("run", recipe, "--json")
        assert code == 1, out  # planted unreadable rows
        manifests[engine] = json.loads(Path(json.loads(out)["manifest"]).read_text(encoding="utf-8"))
    assert manifests["ray"]["config"]["engine"]["name"] == "ray"
    assert manifests["local"]["config"]["engine"] == {"name": "local"}
    assert manifests["local"]["rows"] == manifests["ray"]["rows"]
    for name in ("curated.jsonl", "curated.dropped.jsonl", "trl.jsonl"):
        local = (tmp_path / "out" / f"local.{name}").read_bytes()
        assert local == (tmp_path / "out" / f"ray.{name}").read_bytes(), name
