"""Online RL (`train rloo`, `train grpo`), ORPO and `--mix`, on the tiny local models.

The toy task: every prompt asks "Restart or check pod N?"; an SFT'd tiny policy answers Restart or Check
about half the time each. The rule (exact answer match against "Restart") or a reward model trained on
(Restart > Check) pairs prefers one answer, so the mean reward rises only if the policy is updated."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from train.cli import main
from train.run import prepare, train


def _write(rows, path: Path) -> Path:
    from curate.io import write_frame
    from curate.records import to_frame

    write_frame(to_frame([r.as_row() for r in rows]), path)
    return path


@pytest.fixture(scope="module")
def toy(tmp_path_factory, tiny_models, quick_cfg):
    """{"sft": 50/50 answers, "prompts": rows whose reference is Restart, "pairs": Restart > Check,
    "policy": the tiny LM after SFT on the 50/50 answers}."""
    from curate.records import Record

    d = tmp_path_factory.mktemp("toy")
    q = "Restart or check pod {}?"
    data = {
        "sft": _write(
            [
                Record(kind="sft", question=q.format(i), answer="Restart" if i % 2 else "Check")
                for i in range(32)
            ],
            d / "sft.jsonl",
        ),
        "prompts": _write(
            [Record(kind="sft", question=q.format(i), answer="Restart") for i in range(16)], d / "p.jsonl"
        ),
        "pairs": _write(
            [
                Record(kind="preference", question=q.format(i), chosen="Restart", rejected="Check")
                for i in range(16)
            ],
            d / "pairs.jsonl",
        ),
    }
    cfg = quick_cfg(
        "sft",
        tiny_models["lm"],
        data["sft"],
        d / "sft_run",
        method="full",
        max_steps=40,
        learning_rate=1e-2,
        batch_size=8,
        global_batch=8,
        logging_steps=10,
    )
    data["policy"] = train(prepare(cfg)) / "final"
    return data


def _logs(run_dir: Path) -> list[dict]:
    return [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]


def _rewards(run_dir: Path, key: str = "reward") -> list[float]:
    return [r[key] for r in _logs(run_dir) if key in r]


RL = dict(batch_size=16, global_batch=16, num_generations=8, max_completion_length=6, logging_steps=1)


def test_rloo_rule_reward_rises(toy, quick_cfg, tmp_path):
    cfg = quick_cfg(
        "rloo",
        toy["policy"],
        toy["prompts"],
        tmp_path / "rloo",
        method="full",
        reward=["exact"],
        max_steps=8,
        learning_rate=3e-3,
        **RL,
    )
    ctx = prepare(cfg)
    # the plan explains the generation before anything loads: 2 prompts x 8 completions per step
    gen = ctx.plan["generation"]
    assert gen["group_size"] == 8 and gen["prompts_per_step"] == 2 and gen["kv_cache"] > 0
    assert gen["reference"] > 0  # full fine-tuning keeps a frozen reference copy
    run_dir = train(ctx)
    rewards = _rewards(run_dir)
    assert len(rewards) == 8
    first, last = sum(rewards[:2]) / 2, sum(rewards[-3:]) / 3
    assert last > first + 0.25, rewards
    logs = _logs(run_dir)
    assert any("kl" in r and r["kl"] > 0 for r in logs)
    assert all(k in logs[0] for k in ("reward_std", "completions/mean_length", "rewards/exact/mean"))
    assert list((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["last_reward"] == rewards[-1] and (run_dir / "reward.png").is_file()


def test_grpo_against_a_lora_reward_model(toy, tiny_models, quick_cfg, tmp_path):
    """The reward model is a LoRA `train rm` run directory (merged on load) that prefers Restart."""
    from train.rewards import load_reward_model

    rm_cfg = quick_cfg(
        "rm",
        tiny_models["reward"],
        toy["pairs"],
        tmp_path / "rm",
        max_steps=8,
        learning_rate=1e-2,
        batch_size=8,
        global_batch=8,
    )
    rm_run = train(prepare(rm_cfg))
    rm, rm_tok = load_reward_model(str(rm_run), None)
    scores = [
        rm(
            **rm_tok(
                rm_tok.apply_chat_template(
                    [
                        {"role": "user", "content": "Restart or check pod 1?"},
                        {"role": "assistant", "content": a},
                    ],
                    tokenize=False,
                ),
                return_tensors="pt",
            )
        )
        .logits[0, 0]
        .item()
        for a in ("Restart", "Check")
    ]
    assert scores[0] > scores[1]  # the toy's reward model prefers the one answer
    cfg = quick_cfg(
        "grpo",
        toy["policy"],
        toy["prompts"],
        tmp_path / "grpo",
        reward_model=str(rm_run),
        method="full",
        max_steps=6,
        learning_rate=3e-3,
        **RL,
    )
    run_dir = train(prepare(cfg))
    rewards = _rewards(run_dir, "rewards/reward_model/mean")
    first, last = sum(rewards[:2]) / 2, sum(rewards[-2:]) / 2
    assert last > first + 0.3, rewards


def test_orpo_trains_on_pairs(toy, quick_cfg, tmp_path):
    run_dir = train(prepare(quick_cfg("orpo", toy["policy"], toy["pairs"], tmp_path / "orpo", max_steps=2)))
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["status"] == "done" and any("log_odds_ratio" in r for r in _logs(run_dir))


@pytest.mark.parametrize(
    "args,message",
    [
        (["--reward-model", "{lm}"], "is not a sequence classifier"),
        (["--reward-model", "{sft_run}"], "is a `train sft` run, not a reward model"),
        (["--reward-model", "{missing}"], "not found"),
    ],
)
def test_bad_reward_model_is_one_line_before_loading(toy, tiny_models, tmp_path, args, message, monkeypatch):
    import train.methods

    def no_loading(*a, **k):  # pragma: no cover - reached only if the check is missing
        raise AssertionError("a model was loaded before the reward model was checked")

    monkeypatch.setattr(train.methods, "load_model", no_loading)
    where = {
        "lm": str(tiny_models["lm"]),
        "sft_run": str(toy["policy"].parent),
        "missing": str(tmp_path / "nope"),
    }
    argv = ["rloo", str(toy["prompts"]), "--model", str(toy["policy"]), "--output", str(tmp_path / "r")]
    r = CliRunner().invoke(main, argv + [a.format(**where) for a in args])
    assert r.exit_code == 2, r.output
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], r.stderr
    assert not (tmp_path / "r").exists()


def test_rewards_parse_and_score():
    from train.rewards import RewardSpecError, make_rule, parse_rewards

    specs = parse_rewards(["exact", "format=0.5", "length:4=0.2"])
    assert [(s.label, s.weight) for s in specs] == [("exact", 1.0), ("format", 0.5), ("length_4", 0.2)]
    for bad in (["bogus"], ["length"], ["exact=x"], ["exact", "exact"]):
        with pytest.raises(RewardSpecError):
            parse_rewards(bad)
    exact, fmt, length = (make_rule(s) for s in specs)
    cot = "Pods restart when the deployment changes.\nFinal answer: Restart."
    done = [[{"role": "assistant", "content": c}] for c in (cot, "Check", "<think>why</think>\nrestart")]
    refs = ["Restart"] * 3
    assert exact(completions=done, reference=refs) == [1.0, 0.0, 1.0]
    assert fmt(completions=done) == [1.0, 0.0, 1.0]
    assert length(completions=done, completion_ids=[[1] * 4, [1] * 2, [1] * 12]) == [1.0, 0.5, 0.0]


def test_mix_ratio_is_exact_and_deterministic(train_data, tiny_models, quick_cfg, tmp_path):
    from train.mix import MixError, parse_mix, planned_counts

    for bad in (["g.jsonl:0"], ["g.jsonl:1"], ["g.jsonl:1.5"], ["g.jsonl"], ["a:0.6", "b:0.5"]):
        with pytest.raises(MixError):
            parse_mix(bad)
    # 24 domain rows, 20% general: 30 rows, 6 of them general
    assert planned_counts(24, parse_mix(["g:0.2"])) == [6]
    assert planned_counts(24, parse_mix(["g:0.25", "h:0.25"])) == [12, 12]
    from curate.records import Record

    general = _write(
        [Record(kind="sft", question=f"What is {i} + 1?", answer=str(i + 1)) for i in range(12)],
        tmp_path / "g.jsonl",
    )
    cfg = quick_cfg("sft", tiny_models["lm"], train_data["sft"], tmp_path / "m", mix=[f"{general}:0.2"])
    ctx = prepare(cfg)
    head, general = ctx.plan["mix"]
    assert (
        head == {"domain_rows": 24, "total_rows": 30} and general["rows"] == 6 and general["available"] == 12
    )
    assert ctx.plan["rows"] == 30 and len(ctx.prep.files) == 2
    again = prepare(quick_cfg("sft", tiny_models["lm"], train_data["sft"], tmp_path / "m", mix=cfg.mix))
    assert again.prep.ids == ctx.prep.ids  # the same rows every time
    other = prepare(
        quick_cfg("sft", tiny_models["lm"], train_data["sft"], tmp_path / "m", mix=cfg.mix, seed=7)
    )
    assert other.prep.ids[24:] != ctx.prep.ids[24:] and len(other.prep.ids) == 30


def test_tasks_go_to_lm_evaluation_harness(tiny_models, monkeypatch):
    """--tasks hands each model directory to lm_eval.simple_evaluate and keeps the numeric metrics (a
    stand-in module: the harness itself is optional and its task data is not offline)."""
    import importlib.machinery
    import sys
    import types

    from train.multieval import run_tasks

    calls = []
    fake = types.ModuleType("lm_eval")
    fake.__spec__ = importlib.machinery.ModuleSpec("lm_eval", None)

    def simple_evaluate(**kw):
        calls.append(kw)
        return {"results": {"cmmlu": {"acc,none": 0.25 * len(calls), "alias": "cmmlu"}}}

    fake.simple_evaluate = simple_evaluate
    monkeypatch.setitem(sys.modules, "lm_eval", fake)
    models = [("base", str(tiny_models["lm"])), ("1:sft", str(tiny_models["lm"]))]
    res = run_tasks(models, ["cmmlu"], limit=5)
    assert res == {"base": {"cmmlu": {"acc,none": 0.25}}, "1:sft": {"cmmlu": {"acc,none": 0.5}}}
    assert calls[0]["model"] == "hf" and calls[0]["tasks"] == ["cmmlu"] and calls[0]["limit"] == 5
    assert f"pretrained={tiny_models['lm']}" in calls[0]["model_args"]
    monkeypatch.delitem(sys.modules, "lm_eval")
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *a: None)
    assert "not installed" in run_tasks(models, ["cmmlu"])["skipped"]
