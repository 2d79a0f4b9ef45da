"""The places where the command line and recipes had drifted apart, each pinned."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from curate.cli import main
from curate.core.stage import StageContext
from curate.records import Record, to_frame


def test_recipe_pairs_with_a_model_turns_on_generated_pairs_like_the_command(tmp_path):
    """`curate pairs --model X` adds generated pairs; a recipe's `pairs: {model: X}` did not."""
    from curate.stages.pairs import Pairs

    cfg = Pairs.build_config(
        {"model_url": "http://127.0.0.1:9/v1", "model_name": "m"}, StageContext(tmp_path)
    )
    assert cfg.modes == ("ranked", "existing", "generated")
    assert Pairs.build_config({}, StageContext(tmp_path)).modes == ("ranked", "existing")
    assert Pairs.build_config({"mode": "existing"}, StageContext(tmp_path)).modes == ("existing",)


def test_pairs_max_retries_reaches_the_teacher_from_the_command_and_a_recipe(tmp_path, monkeypatch):
    """`curate pairs --max-retries` was accepted and dropped; a recipe setting it was refused."""
    from curate.augment import teachers
    from curate.stages.pairs import Pairs

    seen = {}

    def fake_make_teacher(*args, **kwargs):
        seen.update(kwargs)
        raise teachers.TeacherError("stop here")

    monkeypatch.setattr(teachers, "make_teacher", fake_make_teacher)
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"question": "q", "answer": "a long enough answer"}) + "\n")
    res = CliRunner().invoke(
        main,
        [
            "pairs",
            str(src),
            "--model-url",
            "http://127.0.0.1:9/v1",
            "--model-name",
            "m",
            "--max-retries",
            "0",
        ],
    )
    assert res.exit_code == 2 and "stop here" in res.output
    assert seen["max_retries"] == 0
    assert Pairs.build_config({"max_retries": 2}, StageContext(tmp_path)).max_retries == 2


def test_row_accounting_is_an_error_not_an_assert():
    """The command path asserted (gone under python -O); now both paths raise the same error."""
    from curate.commands.common import finish
    from curate.stage import AccountingError

    frame = to_frame(Record(kind="sft", question=f"q{i}", answer="a").as_row() for i in range(3))

    class Loaded:
        input_rows = 3
        rejects = pl.DataFrame()
        repaired = 0

    with pytest.raises(AccountingError, match="curate toy lost rows: 3 in"):
        finish("toy", inputs=["x"], out=None, loaded=Loaded(), kept=frame.head(1), dropped=frame.head(0))


def test_dedup_state_commits_only_after_the_outputs_without_systemexit(tmp_path, monkeypatch):
    """The --state batch joins the index once the outputs are written (no SystemExit caught to find
    out); when writing the outputs fails, the staged batch is discarded."""
    import curate.io
    from curate.dedup.index import DedupIndex

    src = tmp_path / "a.jsonl"
    src.write_text(
        "".join(json.dumps({"question": f"q{i}", "answer": f"answer {i}"}) + "\n" for i in range(4))
    )
    state = tmp_path / "state"

    def broken(*a, **k):
        raise OSError(28, "No space left on device", str(tmp_path / "a.deduped.jsonl"))

    with monkeypatch.context() as m:
        m.setattr(curate.io, "write_frame", broken)
        res = CliRunner().invoke(main, ["dedup", str(src), "--state", str(state)])
    assert res.exit_code == 2 and "No space left" in res.output
    assert DedupIndex(state).manifest()["batches"] == []
    assert not [p for p in state.iterdir() if p.name.startswith(".batch-")]  # nothing staged is left
    res = CliRunner().invoke(main, ["dedup", str(src), "--state", str(state), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout.splitlines()[-1])["state"]["batch"] == 1
    assert len(DedupIndex(state).manifest()["batches"]) == 1
    source = Path(__file__).parent.parent.parent / "curate" / "commands" / "dedup.py"
    assert "SystemExit" not in source.read_text(encoding="utf-8")


def test_ray_settings_have_the_command_line_names_in_recipes():
    """`--ray-address` / `--ray-cpus` on the command line; `ray_address:` / `ray_cpus:` in a recipe."""
    from curate.pipeline.recipe import RecipeError, parse_engine

    spec = parse_engine({"name": "ray", "ray_address": "auto", "ray_cpus": 2, "block_rows": 10})
    assert (spec.name, spec.ray_address, spec.num_cpus, spec.block_rows) == ("ray", "auto", 2, 10)
    old = parse_engine({"name": "ray", "address": "auto", "num_cpus": 2, "block_rows": 10})
    assert old == spec
    with pytest.raises(RecipeError, match="same setting"):
        parse_engine({"name": "ray", "ray_cpus": 2, "num_cpus": 2})
