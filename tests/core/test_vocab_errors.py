"""The shared vocabulary and the one error hierarchy (curate.core)."""

from __future__ import annotations

import json
import re

import polars as pl
import pytest

from curate.core import errors, vocab


@pytest.mark.parametrize(
    "char, cjk, han",
    [
        ("中", True, True),  # unified ideograph
        ("𠀀", True, True),  # extension B (U+20000): beyond the BMP, still Han
        ("𪜀", True, True),  # extension C (U+2A700)
        ("か", True, False),  # hiragana: CJK (no spaces between words) but not Chinese
        ("カ", True, False),  # katakana
        ("ｶ", True, False),  # half-width katakana
        ("ㄅ", True, False),  # bopomofo
        ("한", False, False),  # Hangul: Korean separates words with spaces, so a word is a word
        ("a", False, False),
        ("。", False, False),  # punctuation is a separator, not a character unit
    ],
)
def test_one_cjk_definition(char, cjk, han):
    assert vocab.is_cjk(char) is cjk
    assert vocab.is_han(char) is han
    # the regex forms agree with the predicates, in Python's re and in polars (Rust regex)
    assert bool(re.fullmatch(vocab.CJK_PATTERN, char)) is cjk
    assert bool(re.fullmatch(vocab.HAN_PATTERN, char)) is han
    assert pl.Series([char]).str.count_matches(vocab.CJK_PATTERN)[0] == int(cjk)


def test_stages_use_the_one_definition():
    from curate.dedup import semantic, text
    from curate.rules.checks import base

    assert text.CJK_RANGES == vocab.CJK_RANGES
    assert semantic.CJK_PATTERN == vocab.CJK_PATTERN
    assert base.CJK_RE == vocab.HAN_PATTERN


def test_user_errors_share_one_base():
    from curate.engines.ray import RayEngineError
    from curate.io import InputError
    from curate.pipeline.recipe import RecipeError
    from curate.pipeline.run import PipelineError
    from curate.pipeline.stages import StageOptionError, StageUnavailable
    from train.config import ConfigError

    for cls in (InputError, RecipeError, PipelineError, StageOptionError, StageUnavailable, RayEngineError):
        assert issubclass(cls, errors.TamisError), cls
        assert errors.exit_code_of(cls("x") if cls is not StageOptionError else cls("k", "x")) == 2
    assert issubclass(ConfigError, errors.TamisError)
    assert errors.exit_code_of(RuntimeError("bug")) == errors.EXIT_SOFTWARE
    assert errors.exit_code_of(FileNotFoundError(2, "No such file", "x.jsonl")) == 2
    assert errors.describe(FileNotFoundError(2, "No such file", "x.jsonl")) == "x.jsonl: No such file"


def test_train_gets_the_curate_error_contract(monkeypatch):
    """A bug in a train command: traceback, one error line, exit 70 (was: a bare traceback, exit 1);
    a user error: exit 2 and one JSON line with --json."""
    import click
    from click.testing import CliRunner

    from train import cli

    @click.command()
    @click.option("--json", "as_json", is_flag=True)
    @click.option("--bug", is_flag=True)
    def boom(as_json, bug):
        if bug:
            raise KeyError("oops")
        raise errors.UsageError("--lr must be positive")

    monkeypatch.setitem(cli.main.lazy_commands, "boom", ("x:y", "test"))
    monkeypatch.setattr(cli.TrainGroup, "_load", lambda self, name: boom)
    r = CliRunner().invoke(cli.main, ["boom", "--bug"])
    assert r.exit_code == 70 and "internal error: KeyError" in r.stderr
    r = CliRunner().invoke(cli.main, ["boom", "--json"])
    assert r.exit_code == 2 and r.stderr.strip() == "error: --lr must be positive"
    line = json.loads(r.stdout.strip())
    assert line["status"] == "error" and line["error"] == "--lr must be positive" and line["exit_code"] == 2


def test_epochs_table_is_shared_and_curate_never_imports_train():
    import subprocess
    import sys

    from curate.core import epochs
    from train import plan

    assert plan.EPOCH_TABLES is epochs.EPOCH_TABLES and plan.planned_epochs is epochs.planned_epochs
    code = "import sys, curate.export; curate.export.epochs_hint(500); print(any(m == 'train' or m.startswith('train.') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
