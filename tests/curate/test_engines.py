"""The engine switch without a cluster: options, specs, stage kinds, stats merging, the local engine."""

from __future__ import annotations

import click
import polars as pl
import pytest
from click.testing import CliRunner

from curate.engines import EngineSpec, engine_options, run_stage, stage_kind
from curate.engines.ray import merge_stats
from curate.records import Record, to_frame
from curate.stage import StageResult, mark_dropped


def short_answer_stage(frame: pl.DataFrame, config: dict) -> StageResult:
    """A real row-local stage: drop rows whose answer is shorter than config['min_chars']."""
    short = frame["answer"].fill_null("").str.len_chars() < config["min_chars"]
    kept = frame.filter(~short)
    dropped = mark_dropped(frame.filter(short), "test", "short answer")
    return StageResult(kept, dropped, {"short": int(short.sum()), "min_chars": config["min_chars"]})


def frame_of(answers: list[str]) -> pl.DataFrame:
    return to_frame(Record(kind="sft", question=f"q{i}", answer=a).as_row() for i, a in enumerate(answers))


def test_local_engine_runs_the_stage_unchanged():
    f = frame_of(["yes", "a longer answer", "no", "another long one"])
    direct = short_answer_stage(f, {"min_chars": 4})
    via = run_stage(short_answer_stage, f, {"min_chars": 4}, engine="local")
    assert via.kept.equals(direct.kept)
    assert via.dropped.equals(direct.dropped)
    assert via.stats == {"short": 2, "min_chars": 4}


def test_engine_spec_validation():
    with pytest.raises(ValueError, match="unknown engine"):
        EngineSpec("spark")
    with pytest.raises(ValueError, match="--ray-address needs --engine ray"):
        EngineSpec("local", ray_address="127.0.0.1:6379")
    with pytest.raises(ValueError, match="block-rows"):
        EngineSpec("ray", block_rows=0)
    with pytest.raises(ValueError, match="unknown engine"):
        run_stage(short_answer_stage, frame_of(["x"]), {"min_chars": 1}, engine="dask")


def test_stage_kind_resolution():
    from curate.dedup.engine import run as dedup_run

    assert stage_kind(dedup_run) == "dedup"
    assert stage_kind(short_answer_stage) == "global"  # unknown stages run whole, on the driver
    assert stage_kind(short_answer_stage, "row") == "row"

    def declared(frame, config):
        return short_answer_stage(frame, config)

    declared.engine_kind = "model"
    assert stage_kind(declared) == "model"
    with pytest.raises(ValueError, match="unknown stage kind"):
        stage_kind(short_answer_stage, "gpu")


def _cli():
    @click.command()
    @engine_options
    def cmd(engine):
        click.echo(
            f"{engine.name}|{engine.ray_address}|{engine.ray_cpus}|{engine.block_rows}|{engine.actors}"
        )

    return cmd


def test_engine_options_fold_into_one_spec(monkeypatch):
    monkeypatch.delenv("TAMIS_ENGINE", raising=False)
    runner = CliRunner()
    assert runner.invoke(_cli(), []).output.strip() == "local|None|None|None|None"
    out = runner.invoke(
        _cli(), ["--engine", "ray", "--ray-cpus", "2", "--block-rows", "500", "--actors", "3"]
    )
    assert out.output.strip() == "ray|None|2|500|3"
    # an address implies the ray engine
    assert runner.invoke(_cli(), ["--ray-address", "auto"]).output.strip().startswith("ray|auto|")
    bad = runner.invoke(_cli(), ["--engine", "local", "--ray-address", "auto"])
    assert bad.exit_code == 2 and "--ray-address needs --engine ray" in bad.output
    bad = runner.invoke(_cli(), ["--engine", "spark"])
    assert bad.exit_code == 2
    monkeypatch.setenv("TAMIS_ENGINE", "ray")
    assert runner.invoke(_cli(), []).output.strip().startswith("ray|")


def test_merge_stats_adds_counts_and_keeps_settings():
    parts = [
        (
            {
                "dropped": 3,
                "threshold": 0.8,
                "name": "rules",
                "by_rule": {"a": 1, "b": 2},
                "mean": 1.0,
                "warn": ["x"],
            },
            10,
        ),
        (
            {
                "dropped": 3,
                "threshold": 0.8,
                "name": "rules",
                "by_rule": {"a": 4},
                "mean": 4.0,
                "warn": ["x", "y"],
            },
            30,
        ),
    ]
    m = merge_stats(parts)
    assert m["dropped"] == 6  # equal counts still add up
    assert m["threshold"] == 0.8
    assert m["name"] == "rules"
    assert m["by_rule"] == {"a": 5, "b": 2}
    assert m["mean"] == pytest.approx((1.0 * 10 + 4.0 * 30) / 40)
    assert m["warn"] == ["x", "y"]
    assert merge_stats([]) == {}
    # with the stage's stats on an empty frame, settings that look like counts are kept
    m = merge_stats(
        [({"n": 3, "num_perm": 128}, 5), ({"n": 2, "num_perm": 128}, 5)], {"n": 0, "num_perm": 128}
    )
    assert m == {"n": 5, "num_perm": 128}


def test_ray_engine_without_ray_installed_says_how_to_get_it(monkeypatch):
    import sys

    from curate.engines.ray import RayEngineError, ensure_ray

    monkeypatch.setitem(sys.modules, "ray", None)  # as if ray were not installed
    with pytest.raises(RayEngineError, match=r"pip install 'tamis\[ray\]'"):
        ensure_ray(EngineSpec("ray"))
    with pytest.raises(ValueError):  # commands report it like any bad option (exit 2)
        run_stage(short_answer_stage, frame_of(["x"]), {"min_chars": 1}, engine="ray", kind="row")
