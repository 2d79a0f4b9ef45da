"""Demo models decide nothing silently: a warning and a `demo` mark when the shipped demo models score
data that is not a shipped sample, and select's default IFD cut and ranking skip demo scores."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from curate.cli import main
from curate.io import load
from curate.records import Record, to_frame
from curate.score import ScoreConfig, run
from curate.score.demo import DEMO_COLUMN, demo_columns, is_demo_model, is_shipped_sample
from curate.select import SelectConfig
from curate.select import run as select_run

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples" / "ops_qa.jsonl"
QUALITY = ROOT / "samples" / "models" / "quality.ftz"
needs_demo = pytest.mark.skipif(not QUALITY.is_file(), reason="embedded models not built")


def legal_rows(n=12):
    return to_frame(
        Record(
            "sft",
            question=f"合同纠纷第 {i} 例应当如何起诉？",
            answer=f"作为律师，我建议第 {i} 例先固定证据。",
        ).as_row()
        for i in range(n)
    )


def test_shipped_sample_is_recognised_by_path_and_by_content(tmp_path):
    assert is_shipped_sample(load([SAMPLES]).frame)
    copy = tmp_path / "copy.jsonl"
    shutil.copy(SAMPLES, copy)
    assert is_shipped_sample(load([copy]).frame)  # same rows elsewhere: same ids
    assert not is_shipped_sample(legal_rows())
    assert is_demo_model(None) and is_demo_model(QUALITY) and not is_demo_model(tmp_path)


@needs_demo
def test_demo_model_on_real_data_warns_and_marks(capsys, monkeypatch):
    import curate.score.demo as demo

    monkeypatch.setattr(demo, "_WARNED", set())  # once per process: another test may have warned
    res = run(legal_rows(), ScoreConfig(scorers=("quality",)))
    err = capsys.readouterr().err
    assert "demo fastText quality model" in err and "--quality-model" in err
    assert res.stats["score_models"]["quality"]["demo"] is True
    assert res.kept[DEMO_COLUMN].to_list()[0] == ["quality"]
    assert demo_columns(res.kept) == {"quality"}


@needs_demo
def test_demo_model_on_the_samples_is_silent(capsys):
    frame = load([SAMPLES]).frame.head(30)
    res = run(frame, ScoreConfig(scorers=("quality",)))
    assert "warning" not in capsys.readouterr().err
    assert "demo" not in res.stats["score_models"]["quality"]
    assert DEMO_COLUMN not in res.kept.columns


def test_select_defaults_skip_demo_scores():
    fr = legal_rows(10).with_columns(
        pl.Series("ifd", [1.5] * 5 + [0.5] * 5),
        pl.Series("quality", [float(i) for i in range(10)]),
        pl.Series(DEMO_COLUMN, [["ppl", "quality"]] * 10),
    )
    res = select_run(fr, SelectConfig(target=4, diversity="off"))
    assert res.kept.height == 4 and res.stats["by"] is None  # no IFD cut, input order
    assert res.kept["id"].to_list() == fr["id"].to_list()[:4]
    assert res.stats["demo_scores_ignored"] == ["ifd", "quality"]
    allowed = select_run(fr, SelectConfig(target=4, diversity="off", allow_demo_scores=True))
    assert allowed.stats["by"] == "quality"
    assert allowed.kept["ifd"].to_list() == [0.5] * 4  # IFD >= 1 cut, best quality first
    # a threshold the user names is applied whatever the model
    explicit = select_run(fr, SelectConfig(where=("ifd < 1",), diversity="off"))
    assert explicit.kept.height == 5
    # real scores (no demo column): the paper default applies as before
    real = select_run(fr.drop(DEMO_COLUMN), SelectConfig(diversity="off"))
    assert real.kept.height == 5


@needs_demo
def test_score_cli_models_file_marks_demo(tmp_path):
    data = tmp_path / "legal.jsonl"
    data.write_text(
        "".join(
            json.dumps(
                {
                    "instruction": f"问题 {i}：租赁合同能否解除？",
                    "output": f"作为律师，我认为第 {i} 条可以解除。",
                }
            )
            + "\n"
            for i in range(8)
        ),
        encoding="utf-8",
    )
    res = CliRunner().invoke(main, ["score", str(data), "--scorers", "quality", "--json"])
    assert res.exit_code == 0, res.output
    models = json.loads((tmp_path / "legal.scored.models.json").read_text())
    assert models["quality"]["demo"] is True
    sel = CliRunner().invoke(main, ["select", str(tmp_path / "legal.scored.jsonl"), "--json"])
    assert json.loads(sel.stdout.strip().splitlines()[-1])["demo_scores_ignored"] == ["quality"]
