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
    assert (spec.name, spec.ray_address, spec.ray_cpus, spec.block_rows) == ("ray", "auto", 2, 10)
    old = parse_engine({"name": "ray", "address": "auto", "num_cpus": 2, "block_rows": 10})
    assert old == spec
    with pytest.raises(RecipeError, match="same setting"):
        parse_engine({"name": "ray", "ray_cpus": 2, "num_cpus": 2})


# ---------------------------------------------------------------------------------------------- export


def _export_input(tmp_path: Path) -> Path:
    """Canonical rows for an alpaca export: SFT rows (two held out), one whose history alpaca cannot
    hold and one preference row (both dropped with their reason)."""
    from curate.io import write_frame
    from curate.records import Turn

    rows = [Record("sft", question=f"q{i}", answer=f"answer {i}", meta={"n": i}) for i in range(6)]
    rows.append(Record("sft", question="q", answer="a", history=[Turn("user", "u")]))  # odd history
    rows.append(Record("preference", question="q", chosen="c", rejected="r"))
    frame = to_frame(r.as_row() for r in rows)
    frame = frame.with_columns(pl.Series("split", ["train", "eval", "train", "test", None, None, None, None]))
    return write_frame(frame, tmp_path / "data.jsonl")


def _export_recipe(tmp_path: Path, name: str) -> Path:
    recipe = tmp_path / f"{name}.yaml"
    recipe.write_text(
        f"inputs: [data.jsonl]\nstages:\n  - export: {{format: alpaca, output: {name}/out.json}}\n"
        f"work_dir: .{name}\n",
        encoding="utf-8",
    )
    return recipe


def _files(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(d.iterdir()) if p.suffix == ".json"}


def test_export_has_one_conversion_on_the_command_the_stage_and_the_recipe_memo(tmp_path, monkeypatch):
    """`curate export`, the stage run (files written by its caller) and a recipe's per-row memo wrote
    through three conversions; now every path calls curate.export's one and writes the same bytes."""
    import inspect

    import curate.export
    from curate.io import load
    from curate.pipeline import fastexport
    from curate.pipeline.recipe import load_recipe
    from curate.pipeline.run import run_recipe
    from curate.stages.export import Export

    src = _export_input(tmp_path)
    calls = []
    one = curate.export.convert_row

    def spy(row, fmt, keep_meta=False):
        calls.append(row["question"])
        return one(row, fmt, keep_meta)

    monkeypatch.setattr(curate.export, "convert_row", spy)
    res = CliRunner().invoke(
        main, ["export", str(src), "-o", str(tmp_path / "cli" / "out.json"), "--format", "alpaca"]
    )
    assert res.exit_code == 0, res.output
    assert len(calls) == 7  # every sft row; the preference row is dropped by kind

    calls.clear()
    cfg = Export.build_config(
        {"format": "alpaca", "output": str(tmp_path / "stage" / "out.json")}, StageContext()
    )
    result = Export(cfg, StageContext(tmp_path)).run(load([src]).frame)
    assert len(calls) == 7 and not (tmp_path / "stage").exists()  # the stage itself writes nothing
    Export.write_outputs(cfg, result)

    calls.clear()
    first = run_recipe(load_recipe(_export_recipe(tmp_path, "memo")), quiet=True)
    assert len(calls) == 7
    calls.clear()
    again = run_recipe(load_recipe(_export_recipe(tmp_path, "memo")), quiet=True, rerun=("export",))
    assert calls == []  # every line from the memo
    stats = [next(s for s in r.manifest["stages"] if s["id"] == "export")["stats"] for r in (first, again)]
    assert (stats[0]["converted"], stats[1]["converted"], stats[1]["from_memo"]) == (7, 0, 6)

    expected = _files(tmp_path / "cli")
    assert set(expected) == {"out.json", "out.eval.json"}
    assert _files(tmp_path / "stage") == expected and _files(tmp_path / "memo") == expected
    assert result.dropped["drop_reason"].to_list() == [
        "export: cannot write as alpaca",
        "export: preference row in a sft export",
    ]
    # the memo is a cache: no conversion, drop reason, kind choice or writer of its own
    own = inspect.getsource(fastexport)
    for name in ("convert_row", "choose_kind", "mark_dropped", "write_lines", "epochs_hint", "cannot write"):
        assert name not in own, name


def test_export_accounting_is_checked_by_the_command_and_a_recipe(tmp_path, monkeypatch):
    """`curate export` passed no kept rows to finish(), so its accounting was never checked: a
    conversion that loses a row is now the same AccountingError on the command and in a recipe, and
    neither writes the trainer file."""
    import curate.export
    from curate.pipeline.recipe import load_recipe
    from curate.pipeline.run import run_recipe
    from curate.stage import AccountingError

    src = _export_input(tmp_path)
    honest = curate.export.export_rows

    def loses_a_row(frame, config, memo=None):
        res = honest(frame, config, memo)
        res.kept, res.lines, res.held_out = res.kept.tail(-1), res.lines[1:], res.held_out[1:]
        return res

    monkeypatch.setattr(curate.export, "export_rows", loses_a_row)
    out = tmp_path / "cli" / "out.json"
    res = CliRunner().invoke(main, ["export", str(src), "-o", str(out), "--format", "alpaca"])
    assert res.exit_code == 70, res.output  # a bug: the traceback, exit 70
    assert "AccountingError: curate export lost rows: 8 in + 0 added != 5 kept + 2 dropped" in res.output
    assert not out.parent.exists() or not any(out.parent.iterdir())  # checked before anything is written

    with pytest.raises(
        AccountingError, match=r"stage export lost rows: 8 in \+ 0 added != 5 kept \+ 2 dropped"
    ):
        run_recipe(load_recipe(_export_recipe(tmp_path, "recipe")), quiet=True)
    assert not (tmp_path / "recipe").exists()  # the runner writes the trainer files once it holds


def test_an_unusable_dataset_info_is_a_user_error_on_the_command_and_in_a_recipe(tmp_path):
    """A broken dataset_info.json beside a llamafactory export: exit 2 with one line from `curate
    export`; a recipe reported it as a bug in the stage (exit 70, a traceback)."""
    from curate.core.errors import TamisError
    from curate.pipeline.recipe import load_recipe
    from curate.pipeline.run import run_recipe

    src = _export_input(tmp_path)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "dataset_info.json").write_text("{not json", encoding="utf-8")
    args = ["export", str(src), "-o", str(tmp_path / "out" / "x.json"), "--format", "llamafactory"]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 2 and "not valid JSON" in res.output and "Traceback" not in res.output
    recipe = tmp_path / "lf.yaml"
    recipe.write_text(
        "inputs: [data.jsonl]\nstages:\n  - export: {format: llamafactory, output: out/y.json}\n",
        encoding="utf-8",
    )
    with pytest.raises(TamisError, match="stage export failed: .*not valid JSON"):
        run_recipe(load_recipe(recipe), quiet=True)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["dataset_info.json"]


def test_recipe_pairs_with_a_local_model_turns_on_generated_pairs(tmp_path):
    """The same with `model:` (a local model folder), the spelling the issue names."""
    from curate.stages.pairs import Pairs

    (tmp_path / "teacher").mkdir()
    cfg = Pairs.build_config({"model": str(tmp_path / "teacher")}, StageContext(tmp_path))
    assert cfg.modes == ("ranked", "existing", "generated")


@pytest.mark.parametrize("off", ["off", "none", "0"])
def test_select_split_semantic_off_is_the_same_config_on_the_command_and_in_a_recipe(tmp_path, off):
    """`--split-semantic off` gave None; a recipe's `split_semantic: off` (YAML: false) gave False, a
    different Config and cache key for the same setting."""
    import yaml

    from curate.stages.select import Select

    recipe_value = yaml.safe_load(f"v: {off}")["v"]  # what a recipe line `split_semantic: off` holds
    from_recipe = Select.build_config({"split_semantic": recipe_value}, StageContext(tmp_path))
    from_flag = Select.build_config({"split_semantic": off}, StageContext(tmp_path))
    assert from_recipe.split_semantic is None and from_flag.split_semantic is None
    assert Select.build_config({"split_semantic": "0.85"}, StageContext(tmp_path)).split_semantic == 0.85
    with pytest.raises(ValueError, match="split_semantic"):
        Select.build_config({"split_semantic": 1.5}, StageContext(tmp_path))
