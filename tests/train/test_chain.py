"""`train chain`: the article's vertical-domain recipe (pt -> sft -> dpo, pt -> sft -> rloo) end to end
on the tiny model, re-runs that train nothing, an interrupted chain that resumes at the right stage,
bad chain files refused before any model loads, and the per-set held-out table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from train.cli import main


def _write(rows, path: Path) -> Path:
    from curate.io import write_frame
    from curate.records import to_frame

    write_frame(to_frame([r.as_row() for r in rows]), path)
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    from curate.records import Record

    d = tmp_path_factory.mktemp("chain_data")
    q = "Restart or check pod {}?"
    return {
        "domain": _write(
            [
                Record(kind="text", text=f"Pod {i} restarts when its deployment changes. " * 2)
                for i in range(8)
            ],
            d / "domain.jsonl",
        ),
        "sft": _write(
            [
                Record(kind="sft", question=q.format(i), answer="Restart" if i % 2 else "Check")
                for i in range(16)
            ],
            d / "sft.jsonl",
        ),
        "pairs": _write(
            [
                Record(kind="preference", question=q.format(i), chosen="Restart", rejected="Check")
                for i in range(8)
            ],
            d / "pairs.jsonl",
        ),
        "prompts": _write(
            [Record(kind="sft", question=q.format(i), answer="Restart") for i in range(8)], d / "p.jsonl"
        ),
        "general": _write(
            [Record(kind="sft", question=f"What is {i} plus one?", answer=str(i + 1)) for i in range(8)],
            d / "general.jsonl",
        ),
    }


SHARED = {"batch_size": 4, "global_batch": 4, "logging_steps": 1, "save_steps": 1, "max_length": 64}
PT = {"stage": "pt", "data": "domain.jsonl", "max_steps": 2}


def _chain(tmp: Path, files, lm, stages, **extra) -> Path:
    for src in files.values():
        (tmp / src.name).write_bytes(src.read_bytes())
    doc = {"model": str(lm), "settings": SHARED, "stages": stages, **extra}
    path = tmp / "chain.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


def _manifest(path: Path) -> dict:
    return json.loads((path.parent / "runs" / f"chain-{path.stem}" / "chain.json").read_text())


def test_pt_sft_dpo_chain_then_rerun_trains_nothing(files, tiny_models, tmp_path, monkeypatch):
    stages = [
        PT,  # lora: merged into the base for the next stage
        {"stage": "sft", "data": "sft.jsonl", "method": "full", "max_steps": 3, "mix": "general.jsonl:0.2"},
        {"stage": "dpo", "data": "pairs.jsonl", "max_steps": 2},
    ]
    path = _chain(
        tmp_path, files, tiny_models["lm"], stages, eval={"domain": "p.jsonl", "general": "general.jsonl"}
    )
    r = CliRunner().invoke(main, ["chain", str(path), "--dry-run", "--json"])
    assert r.exit_code == 0, r.output
    plans = json.loads(r.stdout)["stages"]
    assert [p["plan"]["epochs"] for p in plans] == [2, 15, 3]  # the per-stage tables (SFT: the article's)
    assert plans[1]["plan"]["mix"][1]["rows"] == 4 and all("memory" in p["plan"] for p in plans)
    assert not (tmp_path / "runs").exists()  # a dry run writes nothing

    r = CliRunner().invoke(main, ["chain", str(path), "--json"])
    assert r.exit_code == 0, r.output
    man = _manifest(path)
    assert man["status"] == "done" and [s["stage"] for s in man["stages"]] == ["pt", "sft", "dpo"]
    pt, sft, dpo = man["stages"]
    # each stage starts from the previous result: merged weights for adapters, final/ for full
    assert pt["result"].endswith("/export") and sft["model"] == pt["result"]
    assert (
        sft["result"].endswith("/final")
        and dpo["model"] == sft["result"]
        and dpo["result"].endswith("/export")
    )
    assert all(s["data"][0]["sha256"] and s["metrics"]["global_step"] > 0 for s in man["stages"])
    assert len(sft["data"]) == 2  # the mixed-in general file is part of the stage's data
    res = man["eval"]["results"]
    assert set(res) == {"base", "1:pt", "2:sft", "3:dpo"} and set(res["base"]) == {"domain", "general"}
    assert res["2:sft"]["domain"]["loss"] < res["base"]["domain"]["loss"]
    out = path.parent / "runs" / "chain-chain" / "eval"
    assert (out / "forgetting.png").stat().st_size > 1000 and "| 3:dpo |" in (
        out / "forgetting.md"
    ).read_text()

    import train.run

    def no_training(*a, **k):
        raise AssertionError("a finished stage was trained again")

    monkeypatch.setattr(train.run, "_fit", no_training)
    r = CliRunner().invoke(main, ["chain", str(path)])
    assert r.exit_code == 0, r.output
    assert all(s["skipped"] for s in _manifest(path)["stages"])
    assert "held-out evaluation unchanged" in r.stderr

    # `train eval` on the chain directory: the same per-set table on demand; --tasks needs lm_eval
    import importlib.util

    chain_dir = path.parent / "runs" / "chain-chain"
    argv = [
        "eval",
        str(chain_dir),
        "--heldout",
        f"general={tmp_path / 'general.jsonl'}",
        "--tasks",
        "arc_easy",
    ]
    if importlib.util.find_spec("lm_eval") is not None:
        argv = argv[:-2]
    r = CliRunner().invoke(main, [*argv, "--json"])
    assert r.exit_code == 0, r.output
    got = json.loads(r.stdout)["forgetting"]
    assert got["results"]["3:dpo"]["general"] == res["3:dpo"]["general"]
    if "--tasks" in argv:
        assert "not installed" in got["tasks"]["skipped"] and "not installed" in r.stderr


def test_killed_pt_sft_rloo_chain_resumes_at_the_stage(files, tiny_models, tmp_path):
    from transformers import TrainerCallback

    from train.callbacks import TrainInterrupted
    from train.chain import load_chain, run_chain

    stages = [
        {**PT, "method": "full"},
        {"stage": "sft", "data": "sft.jsonl", "max_steps": 3, "learning_rate": 1e-2},
        {
            "stage": "rloo",
            "data": "p.jsonl",
            "reward": ["exact", "length:2=0.1"],
            "max_steps": 2,
            "num_generations": 4,
            "max_completion_length": 4,
        },
    ]
    path = _chain(tmp_path, files, tiny_models["lm"], stages)

    class Kill(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if state.global_step == 2:  # checkpoint-1 is saved; step 2's is not
                raise KeyboardInterrupt

    from rich.console import Console

    console = Console(stderr=True)
    with pytest.raises(TrainInterrupted):
        run_chain(load_chain(path), console, callbacks_for=lambda i: [Kill()] if i == 2 else [])
    man = _manifest(path)
    assert man["status"] == "interrupted" and man["interrupted_stage"] == 2 and len(man["stages"]) == 1
    pt_meta = Path(man["stages"][0]["run_dir"]) / "run.json"
    before = pt_meta.read_text()

    res = run_chain(load_chain(path), console)
    pt, sft, rloo = res["stages"]
    assert pt["skipped"] and not sft["skipped"] and not rloo["skipped"]
    assert pt_meta.read_text() == before
    sft_meta = json.loads((Path(sft["run_dir"]) / "run.json").read_text())
    assert sft_meta["resumed_from"].endswith("checkpoint-1") and sft_meta["global_step"] == 3
    assert rloo["model"] == sft["result"] and "last_reward" in rloo["metrics"]
    # a LoRA policy saves its trained adapter only (TRL's frozen "ref" copy is not part of the result)
    assert not (Path(rloo["run_dir"]) / "final" / "ref").exists()
    assert _manifest(path)["status"] == "done"


@pytest.mark.parametrize(
    "stage,message",
    [
        ({"stage": "sft", "data": "missing.jsonl"}, "stage 2 (sft): data file not found"),
        ({"stage": "sft", "data": "sft.jsonl", "mix": "general.jsonl:1.2"}, "RATIO must be in (0, 1)"),
        ({"stage": "ppo", "data": "sft.jsonl"}, "unknown stage 'ppo'"),
        ({"stage": "rloo", "data": "p.jsonl", "reward_model": "{lm}"}, "is not a sequence classifier"),
        ({"stage": "rloo", "data": "p.jsonl"}, "needs a reward"),
    ],
)
def test_bad_chain_is_one_line_before_any_model(files, tiny_models, tmp_path, monkeypatch, stage, message):
    import train.methods

    def no_loading(*a, **k):  # pragma: no cover - reached only if a check is missing
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(train.methods, "load_model", no_loading)
    stage = {k: (v.format(lm=tiny_models["lm"]) if isinstance(v, str) else v) for k, v in stage.items()}
    path = _chain(tmp_path, files, tiny_models["lm"], [PT, stage])
    r = CliRunner().invoke(main, ["chain", str(path)])
    assert r.exit_code == 2, r.output
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], r.stderr
    assert not (tmp_path / "runs").exists()


def test_chain_paths_are_relative_to_the_file_and_names_stay_names(files, tmp_path):
    from train.chain import load_chain

    stages = [
        {**PT, "template": "chatml"},
        {"stage": "sft", "data": "sft.jsonl", "mix": "general.jsonl:0.25"},
    ]
    path = _chain(tmp_path, files, "some-org/some-model", stages, output="out")
    chain = load_chain(path)  # loads no model: a hub id of the local cache stays a name
    assert chain.model == "some-org/some-model" and chain.output == tmp_path / "out"
    assert chain.stages[0].settings["template"] == "chatml"
    assert chain.stages[1].data == [str(tmp_path / "sft.jsonl")]
    assert chain.stages[1].settings["mix"] == [f"{tmp_path / 'general.jsonl'}:0.25"]
