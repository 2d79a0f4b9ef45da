"""The generating model's settings have one spelling in augment and pairs, on the command line and in
recipes (`--model`, `--model-url`, `--model-name` and the client's limits, declared once in
curate.augment.generator); augment's older `--teacher*` spellings still work, with one warning line."""

from __future__ import annotations

import dataclasses
import json

import click
import pytest
from click.testing import CliRunner

from curate.augment import AugmentConfig, teachers
from curate.augment.generator import GeneratorConfig
from curate.cli import main
from curate.core import stage as core_stage
from curate.core.coerce import OptionError
from curate.core.stage import StageContext
from curate.core.vocab import TEACHER_CLIENT_SETTINGS
from curate.pairs import PairsConfig
from curate.stages.augment import Augment
from curate.stages.pairs import Pairs

URL = "http://127.0.0.1:9/v1"


@pytest.fixture()
def calls(monkeypatch):
    """Every make_teacher call's arguments; the call then stops the command."""
    seen: list[dict] = []

    def fake_make_teacher(teacher, **kwargs):
        seen.append({"teacher": teacher, **kwargs})
        raise teachers.TeacherError("stop here")

    monkeypatch.setattr(teachers, "make_teacher", fake_make_teacher)
    monkeypatch.setattr(core_stage, "_WARNED", set())  # the warning is once per process
    return seen


@pytest.fixture()
def data(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"question": "What is 6 x 7?", "answer": "42"}) + "\n")
    return str(src)


def test_augment_model_flags_mean_what_the_teacher_flags_meant(calls, data):
    new = ["--model-url", URL, "--model-name", "m", "--max-retries", "0"]
    res = CliRunner().invoke(main, ["augment", data, "--cot", *new])
    assert res.exit_code == 2 and "stop here" in res.output
    assert "deprecated" not in res.stderr
    old = ["--teacher-url", URL, "--teacher-model", "m", "--max-retries", "0"]
    res = CliRunner().invoke(main, ["augment", data, "--cot", *old])
    assert res.exit_code == 2 and "stop here" in res.output
    assert calls[0] == calls[1] and calls[0]["url"] == URL and calls[0]["model"] == "m"
    warnings = [line for line in res.stderr.splitlines() if "deprecated" in line]
    assert warnings == [
        "warning: --teacher-url is deprecated; use --model-url",
        "warning: --teacher-model is deprecated; use --model-name",
    ]


def test_augment_model_flag_and_its_old_spelling_together_are_refused(calls, data):
    res = CliRunner().invoke(main, ["augment", data, "--cot", "--model", "a", "--teacher", "b"])
    assert res.exit_code == 2
    assert "--teacher is the old spelling of --model; give only --model" in res.stderr
    assert calls == []


def test_recipe_model_keys_mean_what_the_teacher_keys_meant(calls, tmp_path, capsys):
    ctx = StageContext(tmp_path)
    new = Augment.build_config({"cot": True, "model_url": URL, "model_name": "m"}, ctx)
    assert "deprecated" not in capsys.readouterr().err
    old = Augment.build_config({"cot": True, "teacher_url": URL, "teacher_model": "m"}, ctx)
    assert old == new and (old.model_url, old.model_name) == (URL, "m")
    assert "warning: augment: teacher_url is deprecated; use model_url" in capsys.readouterr().err
    Augment.build_config({"cot": True, "teacher_url": URL}, ctx)
    assert capsys.readouterr().err == ""  # one warning per spelling per process
    with pytest.raises(OptionError) as err:
        Augment.build_config({"cot": True, "teacher": "a", "model": "b"}, ctx)
    assert err.value.key == "teacher" and "teacher is the old spelling of model; give only model" in str(
        err.value
    )
    # the pairs stage reads the same keys
    assert Pairs.build_config({"model_url": URL, "model_name": "m"}, ctx).model_url == URL


def test_python_callers_keep_the_old_keyword_arguments():
    with pytest.warns(DeprecationWarning, match="use model_url"):
        old = AugmentConfig(cot=True, teacher_url=URL, teacher_model="m")
    assert old == AugmentConfig(cot=True, model_url=URL, model_name="m")


def _client_options(name: str) -> dict[str, tuple]:
    command = main.get_command(click.Context(main), name)
    fields = {f.name for f in dataclasses.fields(GeneratorConfig)}
    return {
        p.name: (tuple(p.opts), p.help, p.type.to_info_dict(), p.hidden)
        for p in command.params
        if isinstance(p, click.Option) and p.name in fields
    }


def test_augment_and_pairs_show_the_same_client_options():
    augment, pairs = _client_options("augment"), _client_options("pairs")
    assert set(augment) == {f.name for f in dataclasses.fields(GeneratorConfig)}
    assert augment == pairs
    assert augment["model"][0] == ("--model",) and augment["model_url"][0] == ("--model-url",)
    helped = CliRunner().invoke(main, ["augment", "--help"]).output
    assert "--model-url" in helped and "--teacher" not in helped  # the old spellings are hidden


def test_both_configs_inherit_the_one_declaration():
    assert issubclass(AugmentConfig, GeneratorConfig) and issubclass(PairsConfig, GeneratorConfig)
    # the settings that never change a row (left out of stage cache keys) are client settings
    names = {f.name for f in dataclasses.fields(GeneratorConfig)}
    assert set(TEACHER_CLIENT_SETTINGS) <= names


def test_the_generation_cache_key_does_not_depend_on_the_spelling(tmp_path):
    """The generation cache is keyed by the model's identity: the same endpoint and served name give
    the identity they gave before the settings were renamed, from either stage."""
    cache = str(tmp_path / "c.sqlite")
    with pytest.warns(DeprecationWarning):
        old = AugmentConfig(cot=True, teacher_url=URL, teacher_model="m", cache=cache)
    made = [
        old.make_generator(),
        AugmentConfig(cot=True, model_url=URL, model_name="m", cache=cache).make_generator(),
        PairsConfig(model_url=URL, model_name="m", cache=cache).make_generator(),
    ]
    try:
        assert {t.identity for t in made} == {f"openai:{URL}/chat/completions#m"}
        msgs = [{"role": "user", "content": "hi"}]
        assert len({teachers.TeacherCache.key(t.identity, t.params, msgs) for t in made}) == 1
    finally:
        for t in made:
            t.close()


def test_pairs_manifests_name_the_endpoint_without_its_secret(tmp_path):
    """pairs named its endpoint with the query string (an API key can ride there) in manifests and
    stage cache keys; it now names it as augment always did."""
    config = Pairs.build_config(
        {"model_url": URL + "?api-key=SECRET", "model_name": "m"}, StageContext(tmp_path)
    )
    assert Pairs(config).models() == [f"{URL}/chat/completions#m"]


@pytest.mark.parametrize("key", ["model", "teacher"])
def test_a_recipe_model_directory_is_resolved_beside_the_recipe_under_either_key(key, tmp_path, calls):
    """A recipe's paths are resolved before its deprecated keys are renamed: both keys are paths."""
    from curate.pipeline import stages as registry

    (tmp_path / "models" / "tiny").mkdir(parents=True)
    config = registry.get("augment").config({"cot": True, key: "models/tiny"}, StageContext(tmp_path))
    assert config.model == str(tmp_path / "models" / "tiny")
