"""Parametrised over the stage registry: every stage's settings have one name on the command line and
in a recipe, and a command and a one-stage recipe with the same settings write the same rows."""

from __future__ import annotations

import json
import typing
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from curate import stages
from curate.cli import main
from curate.commands.generated import field_default
from curate.core.coerce import OptionError, base_type, dataclass_config
from curate.core.stage import StageContext

STAGES = stages.STAGES


def _flags(command: click.Command) -> set[str]:
    return {
        o.lstrip("-").replace("-", "_")
        for p in command.params
        if isinstance(p, click.Option)
        for o in [*p.opts, *p.secondary_opts]
    }


def _command(stage) -> click.Command:
    return main.get_command(click.Context(main), stage.name)


@pytest.mark.parametrize("stage", STAGES, ids=lambda s: s.name)
def test_every_setting_has_one_name_on_the_command_line_and_in_a_recipe(stage):
    command = _command(stage)
    flags = _flags(command)
    assert stage.fields(), f"{stage.name} has no Config fields"
    cfg = stage.config_class()
    for fld in stage.fields():
        if fld.name in command.spec.skip:  # given by a shared option (export's output is -o)
            continue
        spellings = {fld.name} | {a for a, target in stage.aliases.items() if target == fld.name}
        assert spellings & flags, f"curate {stage.name}: no option for the setting {fld.name!r}"
        default = field_default(fld)
        for key in spellings & flags:  # the command-line spelling is also a recipe key
            value = list(default) if isinstance(default, tuple) else default
            try:
                dataclass_config(cfg, {key: value}, rename=stage.aliases)
            except OptionError as exc:  # the settings as a whole may need more ("nothing to do")
                assert exc.key != key, f"{stage.name}: the recipe refuses {key!r}: {exc}"


# -------------------------------------------------------------------------------- one value, two paths

# the settings a stage needs before any other (recipe keys; the command line gives the same)
BASE = {
    "decontaminate": {"against": ["{eval}"]},
    "augment": {"rephrase": 1},
    "export": {"output": "{out}/base.jsonl"},
}

# values the field's type, choices and range cannot give: paths, model names, expressions, and
# settings that only make sense with another one (a recipe's keys: the field's and its companions)
VALUES: dict[tuple[str, str], dict[str, object]] = {
    ("ingest", "encoding"): {"encoding": "big5"},
    ("ingest", "format"): {"format": "qa"},
    ("ingest", "map"): {"map": {"question": "Q", "answer": ["A1", "A2"]}},
    ("dedup", "memory_budget"): {"memory_budget": "512M"},
    ("dedup", "keep"): {"keep": "longest"},
    ("dedup", "embed_model"): {"embed_model": "minilm", "methods": ["semantic"]},
    ("dedup", "semantic_threshold"): {"semantic_threshold": 0.5, "methods": ["semantic"]},
    ("dedup", "bands"): {"bands": 16},
    ("filter", "rules"): {"rules": ["zh"]},
    ("filter", "set"): {"set": ["question-too-short.min_chars=5"]},
    ("filter", "disable"): {"disable": ["html-leftover"]},
    ("score", "scorers"): {"scorers": ["quality"]},
    ("score", "device"): {"device": "cpu"},
    ("augment", "rephrase"): {"rephrase": 2},
    ("augment", "check"): {"check": "final"},
    ("augment", "cot"): {"cot": True, "model_url": "http://127.0.0.1:9/v1", "model_name": "m"},
    ("augment", "embed_model"): {"embed_model": "minilm"},
    ("select", "where"): {"where": ["reward > 0"]},
    ("select", "min"): {"min": ["reward=0.5"]},
    ("select", "max"): {"max": ["reward=2"]},
    ("select", "min_quantile"): {"min_quantile": ["reward=0.1"]},
    ("select", "max_quantile"): {"max_quantile": ["reward=0.9"]},
    ("select", "by"): {"by": "reward", "target": 3},
    ("select", "stratify"): {"stratify": "kind", "eval_size": 2},
    ("select", "diversity"): {"diversity": 0.8},
    ("select", "template_diversity"): {"template_diversity": 0.5},
    ("select", "split_semantic"): {"split_semantic": 0.8},
    ("select", "embed_model"): {"embed_model": "minilm"},
    ("pairs", "modes"): {"modes": ["existing"]},
    ("pairs", "score"): {"score": "quality"},
    ("export", "output"): {"output": "{out}/other.json"},
    ("export", "name"): {"name": "ops", "format": "llamafactory"},
    ("export", "dataset_info"): {"dataset_info": "{out}/dataset_info.json", "format": "llamafactory"},
}


def _hints(stage) -> dict:
    return typing.get_type_hints(stage.config_class())


def _derived(stage, fld) -> object:
    """A valid value other than the default, from the field's type, choices and range."""
    md = fld.metadata
    default = field_default(fld)
    tp, _optional, is_list = base_type(_hints(stage)[fld.name])
    if tp is bool:
        return not default
    if md.get("choices"):
        other = next(c for c in md["choices"] if c not in (default if is_list else (default,)))
        return [other] if is_list else other
    if is_list:
        return list(default[:1]) if default and len(default) > 1 else ["custom"]
    if tp is int or (tp is float and md.get("type") != "text" and isinstance(default, int)):
        value = (default + 1) if default is not None else max(md.get("min", 1), 1)
        return value if "max" not in md or value <= md["max"] else default - 1
    if tp is float:
        return round(default + 0.05, 4) if default is not None else 0.5
    return "custom"


def _path_value(fld, tmp: Path) -> str:
    target = tmp / "paths" / fld.name
    target.parent.mkdir(exist_ok=True)
    if fld.metadata["path"] == "dir":
        target.mkdir()
    else:
        target.write_text(json.dumps({"question": "q", "answer": "a"}) + "\n", encoding="utf-8")
    return str(target)


def _settings(stage, fld, tmp: Path) -> tuple[dict[str, object], dict[str, object]]:
    """The recipe keys of one case: the stage's base settings, and those with the field's value."""
    fill = {"eval": str(tmp / "eval.jsonl"), "out": str(tmp / "out")}

    def filled(v):
        if isinstance(v, str):
            return v.format(**fill)
        return [filled(x) for x in v] if isinstance(v, list) else v

    base = {k: filled(v) for k, v in BASE.get(stage.name, {}).items()}
    opts = dict(base)
    if (stage.name, fld.name) in VALUES:
        opts.update({k: filled(v) for k, v in VALUES[stage.name, fld.name].items()})
    elif fld.metadata.get("path"):
        value = _path_value(fld, tmp)
        opts[fld.name] = [value] if base_type(_hints(stage)[fld.name])[2] else value
    else:
        opts[fld.name] = _derived(stage, fld)
    return base, opts


def _argv(stage, command: click.Command, opts: dict[str, object]) -> list[str]:
    """The command line that gives the recipe keys ``opts``."""
    params = {p.name: p for p in command.params}
    fields = {f.name: f for f in stage.fields()}
    hints = _hints(stage)
    argv: list[str] = []
    for key, value in opts.items():
        if key in command.spec.skip:  # export's output: -o
            argv += ["-o", str(value)]
            continue
        fld, param = fields[key], params[key]
        flag = next(o for o in param.opts if o.startswith("--"))
        tp, _optional, is_list = base_type(hints[key])
        if tp is bool and not is_list:
            argv.append(flag if value else (param.secondary_opts or [flag])[0])
            if value and not fld.metadata.get("flag"):
                argv[-1] = flag
        elif isinstance(value, dict):  # a recipe's mapping: the command line's FIELD=COLUMN items
            for k, v in value.items():
                argv += [flag, f"{k}={v if isinstance(v, str) else ','.join(v)}"]
        elif isinstance(value, list) and param.multiple:
            for v in value:
                argv += [flag, str(v)]
        elif isinstance(value, list):
            argv += [flag, ",".join(map(str, value))]
        else:
            argv += [flag, str(value)]
    return argv


class _Built(Exception):
    """Raised once the command has built its Config: nothing more needs to run."""


def _config_from_the_command_line(stage, argv: list[str], monkeypatch) -> object:
    built = []
    original = stage.build_config

    def capture(options, ctx):
        built.append(original(options, ctx))
        raise _Built

    monkeypatch.setattr(stage, "build_config", capture)
    res = CliRunner().invoke(main, [stage.name, "in.jsonl", *argv])
    monkeypatch.setattr(stage, "build_config", original)
    assert built, f"curate {stage.name} {' '.join(argv)}: {res.output}"
    return built[0]


def _config_from_a_recipe(stage, opts: dict[str, object], base: Path) -> object:
    from curate.pipeline.stages import REGISTRY

    ctx = StageContext(base=base)
    if stage.name not in REGISTRY:  # the source stage: no pipeline spec, the declaration's config
        return stage.build_config(opts, ctx)
    return REGISTRY[stage.name].config(opts, ctx)  # what planning does: paths, then build_config


def _settings_of(stage, config) -> dict:
    """The config's fields but those the caller sets (score's progress: a command shows bars)."""
    return {k: v for k, v in vars(config).items() if k not in stage.internal}


def _cases():
    return [
        pytest.param(stage, fld, id=f"{stage.name}.{fld.name}") for stage in STAGES for fld in stage.fields()
    ]


@pytest.mark.parametrize(("stage", "fld"), _cases())
def test_a_setting_lands_in_the_same_config_field_from_the_command_line_and_a_recipe(
    stage, fld, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    Path("in.jsonl").write_text(json.dumps({"question": "q", "answer": "a"}) + "\n")
    Path("eval.jsonl").write_text(json.dumps({"question": "q", "answer": "a"}) + "\n")
    (tmp_path / "out").mkdir()
    base, opts = _settings(stage, fld, tmp_path)
    from_cli = _config_from_the_command_line(stage, _argv(stage, _command(stage), opts), monkeypatch)
    from_recipe = _config_from_a_recipe(stage, opts, tmp_path)
    assert _settings_of(stage, from_cli) == _settings_of(stage, from_recipe)
    default = _config_from_a_recipe(stage, base, tmp_path)
    assert getattr(from_cli, fld.name) != getattr(default, fld.name), f"{fld.name} kept its default"


ROWS = [
    ("How do I reset my password?", "Open Settings, choose Security, then Reset password."),
    ("How do I reset my password?", "Open Settings, choose Security, then Reset password."),
    ("How do I reset my password ?", "Open Settings, choose Security, then Reset password!"),
    ("怎么导出报表？", "在报表页面点击右上角的导出按钮，选择格式后下载。"),
    ("怎么导出报表？", "在报表页面点击右上角的导出按钮，选择格式后下载。"),
    ("What is the SLA for P1 incidents?", "P1 incidents are answered within 15 minutes, around the clock."),
    ("Can I change the billing date?", "Yes: Billing, Payment settings, Change date; it applies next cycle."),
    ("Where are the logs kept?", "ok"),
    ("How do I add a user?", "Admin console, Users, Add user; they get an invitation e-mail."),
    ("VPN keeps dropping", "Update the client to 5.2 and switch the protocol to IKEv2 in Preferences."),
]

# stage -> (settings as a recipe writes them, the same settings as flags, extra input files)
CASES = {
    "ingest": (
        {"format": "qa", "map": {"question": "question", "answer": "answer"}},
        ["--format", "qa", "--map", "question=question", "--map", "answer=answer"],
    ),
    "dedup": (
        {"threshold": 0.7, "method": "exact,minhash"},
        ["--threshold", "0.7", "--method", "exact,minhash"],
    ),
    "decontaminate": ({"against": "eval.jsonl", "ngram": 4}, ["--against", "eval.jsonl", "--ngram", "4"]),
    "filter": (
        {"rules": "default", "disable": ["html-leftover"]},
        ["--rules", "default", "--disable", "html-leftover"],
    ),
    "score": ({"scorers": "quality"}, ["--scorers", "quality"]),
    "augment": ({"rephrase": 1, "seed": 3}, ["--rephrase", "1", "--seed", "3"]),
    "select": ({"target": 4, "defaults": False}, ["--target", "4", "--no-defaults"]),
    "pairs": ({"max_similarity": 0.8, "mode": "existing"}, ["--max-similarity", "0.8", "--mode", "existing"]),
    "export": ({"format": "alpaca", "output": "cli.json"}, ["--format", "alpaca"]),
}


def test_every_registered_stage_has_a_parity_case():
    assert {s.name for s in STAGES} <= set(CASES)


@pytest.mark.parametrize("stage", STAGES, ids=lambda s: s.name)
def test_command_and_one_stage_recipe_write_the_same_rows(stage, tmp_path, monkeypatch):
    rows = [{"question": q, "answer": a} for q, a in ROWS]
    if stage.name == "pairs":
        rows = [
            {"prompt": q, "chosen": a, "rejected": a[::-1] if i % 2 else a} for i, (q, a) in enumerate(ROWS)
        ]
    _assert_same_rows(stage.name, *CASES[stage.name], rows, tmp_path, monkeypatch)


def test_generated_pairs_from_a_model_are_the_same_rows_from_the_command_and_a_recipe(
    tiny_models, tmp_path, monkeypatch
):
    model = str(tiny_models["lm"])
    settings = {"model": model, "mode": "generated", "max_new_tokens": 12, "no_cache": True}
    flags = ["--model", model, "--mode", "generated", "--max-new-tokens", "12", "--no-cache"]
    rows = [{"question": q, "answer": a} for q, a in ROWS[3:7]]
    # (the tiny model's answers are empty: the pairs are dropped with that reason, the same from both)
    _assert_same_rows("pairs", settings, flags, rows, tmp_path, monkeypatch)


def _assert_same_rows(name, settings, flags, rows, tmp_path, monkeypatch):
    from curate.io import load
    from curate.pipeline.recipe import load_recipe
    from curate.pipeline.run import run_recipe
    from curate.score import demo

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(demo, "_WARNED", set())  # the demo-model warning is once per process: not ours
    Path("in.jsonl").write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8"
    )
    Path("eval.jsonl").write_text(json.dumps({"question": ROWS[6][0], "answer": ROWS[6][1]}) + "\n")

    out = "cli.json" if name == "export" else "cli.jsonl"
    res = CliRunner().invoke(main, [name, "in.jsonl", "-o", out, *flags, "--json"])
    assert res.exit_code == 0, res.output

    opts = dict(settings)
    if name == "export":
        opts["output"] = "recipe.json"
    Path("recipe.yaml").write_text(
        json.dumps({"inputs": ["in.jsonl"], "stages": [{name: opts}], "outputs": {"data": "recipe.jsonl"}}),
        encoding="utf-8",
    )
    run_recipe(load_recipe(Path("recipe.yaml")), quiet=True)
    if name == "export":  # the trainer file is the output of both
        assert Path("cli.json").read_text(encoding="utf-8") == Path("recipe.json").read_text(encoding="utf-8")
        return
    cli_rows = load(["cli.jsonl"]).frame.drop("source")
    recipe_rows = load(["recipe.jsonl"]).frame.drop("source")
    assert cli_rows.to_dicts() == recipe_rows.to_dicts()
    dropped = 0
    if Path("cli.dropped.jsonl").exists() or Path("recipe.dropped.jsonl").exists():
        cli_dropped = _dropped("cli.dropped.jsonl")
        assert cli_dropped == _dropped("recipe.dropped.jsonl")
        dropped = len(cli_dropped)
    assert cli_rows.height + dropped > 0


def _dropped(path: str) -> list[dict]:
    """The dropped rows and why, with the files they name relative to the test's folder (a recipe
    resolves eval.jsonl to a full path)."""
    text = Path(path).read_text(encoding="utf-8").replace(f"{Path.cwd()}/", "")
    return [{k: v for k, v in json.loads(line).items() if k != "source"} for line in text.splitlines()]


def test_a_recipe_resolves_every_path_setting_against_its_folder(tmp_path, monkeypatch):
    """A Config field with ``path`` metadata is a path wherever it is set: a recipe resolves it
    against its own folder (dedup's spill_dir was resolved against the working directory)."""
    from curate.pipeline.stages import REGISTRY

    for stage in STAGES:
        typed = {f.name for f in stage.fields() if f.metadata.get("path")} - set(stage.output_options)
        if stage.name in REGISTRY:
            assert typed <= set(REGISTRY[stage.name].path_options), stage.name
    recipe_dir, elsewhere = tmp_path / "recipes", tmp_path / "elsewhere"
    (recipe_dir / "spill").mkdir(parents=True)
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    config = REGISTRY["dedup"].config({"spill_dir": "spill"}, StageContext(base=recipe_dir))
    assert Path(config.spill_dir) == recipe_dir / "spill"
    (recipe_dir / "eval.jsonl").write_text(json.dumps({"question": "q", "answer": "a"}) + "\n")
    config = REGISTRY["decontaminate"].config({"against": "eval.jsonl"}, StageContext(base=recipe_dir))
    assert [Path(p) for p in config.against] == [recipe_dir / "eval.jsonl"]


def test_a_recipe_checks_its_ingest_settings_as_the_command_does(tmp_path):
    from curate.pipeline.recipe import RecipeError, load_recipe

    (tmp_path / "in.jsonl").write_text(json.dumps({"question": "q", "answer": "a"}) + "\n")
    recipe = tmp_path / "r.yaml"
    recipe.write_text("inputs: [in.jsonl]\nstages:\n  - ingest: {encoding: nope}\n", encoding="utf-8")
    with pytest.raises(RecipeError, match=r"r.yaml:3: .*ingest.*unknown encoding 'nope'"):
        load_recipe(recipe)
    recipe.write_text("inputs: [in.jsonl]\nstages:\n  - ingest: {map: {question: Q}}\n", encoding="utf-8")
    assert load_recipe(recipe).inputs[0].mapping == {"question": ["Q"]}
