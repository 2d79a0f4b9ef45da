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
    if config.how == "declared":  # a library's own exception the declaration calls a user error
        raise LookupError("no model named 'nope'")
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
    user_errors = ("builtins:LookupError",)


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


@pytest.mark.parametrize("how", ["declared", "user"])
def test_a_stage_user_error_is_one_line_on_the_command_and_in_a_recipe(broken, tmp_path, how):
    """The stage's declared user errors (``Stage.user_errors``) are read by the command and by the
    recipe runner alike: one error line, exit 2, on both paths."""
    recipe = _recipe(tmp_path, how)
    for res in (_curate("run", recipe), _curate("broken", tmp_path / "in.jsonl", "--how", how)):
        assert res.exit_code == 2, res.output
        assert "Traceback" not in res.stderr
        (line,) = [x for x in res.stderr.splitlines() if x.startswith("error:")]
        assert ("no model named 'nope'" if how == "declared" else "is not in the input") in line


def test_an_undeclared_library_error_is_a_bug_on_the_command_and_in_a_recipe(broken, tmp_path, monkeypatch):
    monkeypatch.setattr(Broken, "user_errors", ())
    recipe = _recipe(tmp_path, "declared")
    for res in (_curate("run", recipe), _curate("broken", tmp_path / "in.jsonl", "--how", "declared")):
        assert res.exit_code == 70 and "Traceback" in res.stderr, res.output


# ----------------------------------------------------------------------------- settings named as written


@pytest.fixture
def rows(tmp_path: Path) -> Path:
    path = tmp_path / "a.jsonl"
    path.write_text(
        '{"question": "q1", "answer": "a1", "reward": 1}\n{"question": "q1", "answer": "a2", "reward": 0}\n',
        encoding="utf-8",
    )
    return path


def _error_line(res) -> str:
    assert res.exit_code == 2, res.output
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, res.stderr
    return errors[0]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["select", "--target", "0"], "error: --target: must be at least 1"),
        (
            ["pairs", "--mode", "generated"],
            "error: --mode: 'generated' needs a model (--model or --model-url)",
        ),
        (["augment", "--cot"], "error: --cot: needs a teacher model (--model or --model-url)"),
        (["augment"], "error: nothing to do: ask for --fewshot, --cot, --rephrase or --system-variants"),
        (["dedup", "--bands", "500"], "error: --bands: must be between 1 and --num-perm (128), got 500"),
    ],
)
def test_a_command_names_the_flag(rows, args, message):
    assert _error_line(_curate(args[0], rows, *args[1:])) == message


@pytest.mark.parametrize(
    ("stage", "message", "override"),
    [
        ("select: {target: 0}", "stages[0].select.target: must be at least 1", "select.target=0"),
        (
            "pairs: {mode: generated}",
            "stages[0].pairs.mode: 'generated' needs a model (model or model_url)",
            "pairs.mode=generated",
        ),
        (
            "augment: {cot: true}",
            "stages[0].augment.cot: needs a teacher model (model or model_url)",
            "augment.cot=true",
        ),
        (
            "dedup: {bands: 500}",
            "stages[0].dedup.bands: must be between 1 and num_perm (128), got 500",
            "dedup.bands=500",
        ),
    ],
)
def test_a_recipe_names_the_key(rows, stage, message, override):
    recipe = rows.parent / "r.yaml"
    recipe.write_text(f"inputs: [a.jsonl]\nstages:\n  - {stage}\n", encoding="utf-8")
    assert _error_line(_curate("run", recipe)) == f"error: {recipe}:3: {message}"
    # the same setting given with --set: named as --set wrote it
    recipe.write_text(f"inputs: [a.jsonl]\nstages:\n  - {stage.split(':')[0]}\n", encoding="utf-8")
    key = override.split("=")[0]
    assert _error_line(_curate("run", recipe, "--set", override)).startswith(f"error: {key}: ")


def test_train_names_the_flag_or_the_key(tmp_path):
    from train.cli import main

    data = tmp_path / "a.jsonl"
    data.write_text('{"question": "q", "answer": "a"}\n', encoding="utf-8")

    def train(*args: str) -> str:
        return _error_line(CliRunner().invoke(main, ["sft", str(data), *args, "--dry-run"]))

    assert train("--epochs", "0") == "error: --epochs: must be > 0, got 0.0"
    assert train("--set", "epochs=0") == "error: epochs: must be > 0, got 0.0"
    config = tmp_path / "t.yaml"
    config.write_text("epochs: 0\n", encoding="utf-8")
    assert train("--config", str(config)) == "error: epochs: must be > 0, got 0.0"
    assert train("--batch-size", "8", "--global-batch", "4") == (
        "error: --global-batch: 4 is smaller than --batch-size (8)"
    )
    assert train("--mix", "general.jsonl") == (
        "error: --mix: 'general.jsonl': expected FILE:RATIO, e.g. general.jsonl:0.2"
    )


def test_train_failed_checks_are_exit_1_with_one_error_line(tiny_models, tmp_path):
    """Pre-flight checks that fail (no pair fits max_length 16) stop the run: exit 1 ("checks failed",
    as `train chain` says it), with its error line and, with --json, one JSON line."""
    from train.cli import main

    data = tmp_path / "pairs.jsonl"
    long = " ".join(f"word{i}" for i in range(120))
    data.write_text(
        "".join(
            json.dumps({"prompt": f"explain pod {i}", "chosen": long, "rejected": "no"}) + "\n"
            for i in range(3)
        ),
        encoding="utf-8",
    )
    args = ["rm", str(data), "--model", str(tiny_models["reward"]), "--max-length", "16", "--dry-run"]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 1, res.output
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert errors == ["error: pre-flight checks failed; fix the data or template, or pass --skip-check"]
    res = CliRunner().invoke(main, [*args, "--json"])
    lines = res.stdout.strip().splitlines()
    assert res.exit_code == 1 and len(lines) == 1 and json.loads(lines[0])["exit_code"] == 1


# ----------------------------------------------------------------------------- settings refused while a stage runs


@pytest.fixture
def kto_rows(tmp_path: Path) -> Path:
    path = tmp_path / "kto.jsonl"
    rows = [{"prompt": f"q{i}", "completion": "a", "label": i % 2 == 0} for i in range(4)]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


PAIRING = "openai cannot hold kto rows; formats for kto rows: trl, alpaca, sharegpt, llamafactory"


@pytest.mark.parametrize("kind", [[], ["--kind", "kto"]])
def test_a_format_that_cannot_hold_the_rows_names_the_flag(kto_rows, kind):
    """Checked before reading (an explicit --kind) or when writing (the kind detected): --format both times."""
    res = _curate("export", kto_rows, "-o", kto_rows.parent / "out.jsonl", "--format", "openai", *kind)
    assert _error_line(res) == f"error: --format: {PAIRING}"


@pytest.mark.parametrize("kind", ["", ", kind: kto"])
def test_a_format_that_cannot_hold_the_rows_names_the_recipe_key(kto_rows, kind):
    recipe = kto_rows.parent / "r.yaml"
    stage = f"export: {{format: openai, output: out.jsonl{kind}}}"
    recipe.write_text(f"inputs: [kto.jsonl]\nstages:\n  - {stage}\n", encoding="utf-8")
    assert _error_line(_curate("run", recipe)) == f"error: {recipe}:3: stages[0].export.format: {PAIRING}"
    recipe.write_text("inputs: [kto.jsonl]\nstages:\n  - export: {output: out.jsonl}\n", encoding="utf-8")
    res = _curate("run", recipe, "--set", "export.format=openai")
    assert _error_line(res) == f"error: export.format: {PAIRING} (from --set)"


def test_a_select_threshold_refused_at_run_time_names_the_flag_or_the_key(rows):
    message = "question=0.5: column 'question' has no numeric values"
    res = _curate("select", rows, "--min-quantile", "question=0.5")
    assert _error_line(res) == f"error: --min-quantile: {message}"
    recipe = rows.parent / "r.yaml"
    recipe.write_text(
        "inputs: [a.jsonl]\nstages:\n  - select: {min_quantile: [question=0.5]}\n", encoding="utf-8"
    )
    assert (
        _error_line(_curate("run", recipe)) == f"error: {recipe}:3: stages[0].select.min_quantile: {message}"
    )


def test_a_setting_refused_at_run_time_in_a_refresh_names_the_recipe_key(rows):
    """`curate refresh` runs the same stages as `curate run`: the same error line, key and recipe line."""
    message = "question=0.5: column 'question' has no numeric values"
    recipe = rows.parent / "r.yaml"
    recipe.write_text(
        "inputs: [a.jsonl]\nstages:\n  - select: {min_quantile: [question=0.5]}\n", encoding="utf-8"
    )
    res = _curate("refresh", recipe)
    assert _error_line(res) == f"error: {recipe}:3: stages[0].select.min_quantile: {message}", res.output


def test_set_ingest_settings_are_checked_as_the_recipe_ones(rows):
    recipe = rows.parent / "r.yaml"
    recipe.write_text("inputs: [a.jsonl]\nstages:\n  - select\n", encoding="utf-8")
    res = _curate("run", recipe, "--set", "ingest.encoding=nope")
    assert _error_line(res) == "error: ingest.encoding: unknown encoding 'nope' (from --set)"
    res = _curate("run", recipe, "--set", "ingest.sheet=[1, 2]")
    assert _error_line(res).startswith("error: ingest.sheet: ") and res.stderr.rstrip().endswith(
        "(from --set)"
    )
    recipe.write_text("inputs: [a.jsonl]\nstages:\n  - ingest: {encoding: nope}\n", encoding="utf-8")
    assert (
        _error_line(_curate("run", recipe))
        == f"error: {recipe}:3: stages[0].ingest.encoding: unknown encoding 'nope'"
    )


@pytest.mark.parametrize(
    ("flags", "options", "key", "message"),
    [
        (
            ["dedup", "--keep", "best:nope"],
            'dedup: {keep: "best:nope"}',
            "keep",
            "best:nope: no column 'nope' in the input (columns: ",
        ),
        (
            ["augment", "--fewshot", "1", "--check", "bogus"],
            "augment: {fewshot: 1, check: bogus}",
            "check",
            "'bogus': expected contains, final or overlap:X with 0 < X <= 1",
        ),
        (
            ["score", "--scorers", "ppl", "--device", "tpu"],
            "score: {scorers: [ppl], device: tpu}",
            "device",
            "'tpu': expected auto, cpu or cuda[:N]",
        ),
    ],
)
def test_a_stage_setting_refused_by_its_library_names_the_flag_or_the_key(rows, flags, options, key, message):
    """The stage modules' own checks (dedup's survivor column, augment's rationale check, score's
    device) spell no flag: the command names --KEY, the recipe stages[0].STAGE.KEY."""
    flag = "--" + key.replace("_", "-")
    assert _error_line(_curate(flags[0], rows, *flags[1:])).startswith(f"error: {flag}: {message}")
    recipe = rows.parent / "r.yaml"
    recipe.write_text(f"inputs: [a.jsonl]\nstages:\n  - {options}\n", encoding="utf-8")
    line = _error_line(_curate("run", recipe))
    assert line.startswith(f"error: {recipe}:3: stages[0].{flags[0]}.{key}: {message}")
