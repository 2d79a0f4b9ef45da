"""Stage commands are generated from their Config (curate.commands.generated): every option is a
Config field, a shared option or a declared extra; field metadata shapes the options; old spellings
keep working with a warning."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from curate import stages
from curate.commands.generated import GeneratedCommand, StageCommand, field_options
from curate.core.stage import Scope, Stage
from curate.stage import StageResult, mark_dropped


@dataclass
class TrimConfig:
    min_chars: int = field(
        default=3,
        metadata={"help": "Drop answers shorter than this.", "flags": ("-m", "--min-chars"), "min": 1,
                  "deprecated": ("--min-length",)},
    )  # fmt: skip
    reason: str = field(default="short", metadata={"help": "Drop reason.", "choices": ("short", "tiny")})
    words: tuple[str, ...] = field(default=(), metadata={"help": "Also drop answers with these words."})
    exact: bool = field(default=False, metadata={"help": "Match whole answers only.", "flag": True})
    strict: bool = field(default=True, metadata={"help": "Refuse empty answers."})


def trim(frame, config: TrimConfig) -> StageResult:
    import polars as pl

    answer = pl.col("answer").fill_null("")
    bad = answer.str.len_chars() < config.min_chars
    for w in config.words:
        bad = bad | (answer == w if config.exact else answer.str.contains(w, literal=True))
    return StageResult(frame.filter(~bad), mark_dropped(frame.filter(bad), "trim", config.reason), {})


class Trim(Stage):
    name = "trim"
    suffix = "trimmed"
    scope = Scope.ROW
    help = "Drop short answers (a test stage)."
    module = __name__
    config = f"{__name__}:TrimConfig"
    function = "trim"


@pytest.fixture
def trim_stage():
    stages.register(Trim, before="export")
    yield Trim
    stages.unregister("trim")


def _options(command: click.Command) -> set[str]:
    return {p.name for p in command.params if isinstance(p, click.Option) and not p.hidden}


def _decorated_names(decorators) -> set[str]:
    def probe():
        pass

    for deco in reversed(decorators):
        probe = deco(probe)
    return {p.name for p in getattr(probe, "__click_params__", ()) if isinstance(p, click.Option)}


@pytest.mark.parametrize("stage", stages.STAGES, ids=lambda s: s.name)
def test_a_generated_command_has_exactly_the_config_fields_shared_options_and_extras(stage):
    from curate.cli import main

    command = main.get_command(click.Context(main), stage.name)
    assert isinstance(command, GeneratedCommand), f"curate {stage.name} is not generated from its Config"
    spec = command.spec
    fields = {f.name for f in stage.fields()} - set(spec.skip)
    shared = _decorated_names(spec.shared_options()) | ({"engine"} if spec.engine else set())
    engine_extra = {"ray_address", "ray_cpus", "block_rows", "actors"} if spec.engine else set()
    extras = _decorated_names(spec.extras)
    assert _options(command) == fields | shared | engine_extra | extras
    assert not fields & extras, "an extra restates a Config field"
    assert command.help == spec.description() and command.help.strip()


def test_field_metadata_shapes_the_options(trim_stage):
    by_name = {p.name: p for p in field_options(Trim)}
    assert by_name["min_chars"].opts == ["-m", "--min-chars"] and by_name["min_chars"].default == 3
    assert isinstance(by_name["min_chars"].type, click.IntRange)
    assert by_name["reason"].type.choices == ("short", "tiny")
    assert by_name["words"].multiple and by_name["exact"].is_flag
    assert by_name["strict"].secondary_opts == ["--no-strict"]
    old = next(p for p in field_options(Trim) if p.opts == ["--min-length"])
    assert old.hidden


def _rows(path: Path) -> Path:
    answers = ["ok", "a fine answer", "fine", "yes indeed", "x"]
    path.write_text(
        "".join(json.dumps({"question": f"q{i}", "answer": a}) + "\n" for i, a in enumerate(answers))
    )
    return path


def test_generated_command_options_reach_the_config(trim_stage, tmp_path):
    from curate.cli import main

    src = _rows(tmp_path / "in.jsonl")
    helped = CliRunner().invoke(main, ["trim", "--help"])
    assert "[default: 3;" in helped.output and "--min-length" not in helped.output  # deprecated: hidden
    res = CliRunner().invoke(main, ["trim", str(src), "-m", "4", "--words", "fine,yes", "--exact", "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    # "ok" and "x" are short, "fine" is a whole word; "yes indeed" only contains one
    assert summary["kept"] == 2 and summary["dropped"] == 3
    bad = CliRunner().invoke(main, ["trim", str(src), "--min-chars", "0"])
    assert bad.exit_code == 2 and "--min-chars" in bad.output
    bad = CliRunner().invoke(main, ["trim", str(src), "--reason", "gone"])
    assert bad.exit_code == 2 and "--reason" in bad.output


def test_a_deprecated_spelling_still_works_and_warns(trim_stage, tmp_path):
    from curate.cli import main

    src = _rows(tmp_path / "in.jsonl")
    old = CliRunner().invoke(
        main, ["trim", str(src), "--min-length", "4", "-o", str(tmp_path / "old.jsonl"), "--json"]
    )
    new = CliRunner().invoke(
        main, ["trim", str(src), "--min-chars", "4", "-o", str(tmp_path / "new.jsonl"), "--json"]
    )
    assert old.exit_code == new.exit_code == 0, old.output
    assert "warning: --min-length is deprecated; use --min-chars" in old.stderr
    assert [ln for ln in old.stderr.splitlines() if "deprecated" in ln] == [
        "warning: --min-length is deprecated; use --min-chars"
    ]
    assert "deprecated" not in new.stderr
    assert (tmp_path / "old.jsonl").read_text() == (tmp_path / "new.jsonl").read_text()
    both = CliRunner().invoke(main, ["trim", str(src), "--min-length", "4", "--min-chars", "4"])
    assert both.exit_code == 2 and "give only --min-chars" in both.output


def test_a_command_spec_adds_extras_and_hooks(trim_stage, tmp_path):
    """A StageCommand subclass: an extra option mapped into the Config, and extra stats after the run."""

    class TrimCommand(StageCommand):
        """Trim, with --tiny as a shortcut for --reason tiny --min-chars 5."""

        stage = "trim"
        extras = (click.option("--tiny", is_flag=True, help="Shortcut."),)

        def prepare(self, run):
            if run.params.pop("tiny"):
                run.options.update(reason="tiny", min_chars=5)

        def report(self, run, result):
            return {"stats": {**result.stats, "reason": run.config.reason}}

    command = TrimCommand().command()
    assert isinstance(command, GeneratedCommand) and command.help.startswith("Trim, with --tiny")
    src = _rows(tmp_path / "in.jsonl")
    res = CliRunner().invoke(command, [str(src), "--tiny", "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert summary["reason"] == "tiny" and summary["kept"] == 2
    assert dataclasses.fields(TrimConfig)[0].default == 3  # the Config itself is untouched
