"""pairs: ranked answers by reward, curated vs generated (tiny local model), existing preference files,
identical / near-identical sides dropped with a reason, nothing lost."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from curate.augment.common import meta_dict
from curate.augment.teachers import HFTeacher, TeacherCache
from curate.cli import main
from curate.io import load
from curate.pairs import PairsConfig, run, sides_problem
from curate.records import Record, to_frame

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def sft(q, a, **kw):
    return Record("sft", question=q, answer=a, **kw).as_row()


def test_sides_problem():
    assert sides_problem("a", "", 0.9)[0] == "pairs: empty rejected answer"
    assert sides_problem("Use kubectl.", "use  kubectl", 0.9)[0] == "pairs: identical sides"
    long = "Run kubectl rollout restart deployment/web and watch the rollout status until it completes."
    assert sides_problem(long, long.replace("watch", "watsh"), 0.9)[0] == "pairs: near-identical sides"
    assert sides_problem(long, "Delete the cluster.", 0.9) is None


def test_ranked_pairs_best_vs_worst_and_margin():
    rows = [
        sft("How do I restart a deployment?", "kubectl rollout restart deploy/web", meta={"n": 1}),
        sft("How do I restart a deployment?", "Reboot every node.", meta={"n": 2}),
        sft("How do I restart a deployment?", "Delete the pods one by one by hand.", meta={"n": 3}),
        sft("How do I list pods?", "kubectl get pods"),
        sft("How do I list pods?", "kubectl get pod -A"),
        sft("Single answer question?", "Only one answer."),
        sft("Same answers?", "identical"),
        sft("Same answers?", "Identical."),
    ]
    fr = to_frame(rows).with_columns(pl.Series("reward", [2.0, -1.0, 0.5, 0.3, 0.2, 1.0, 0.9, 0.1]))
    res = run(fr, PairsConfig(min_margin=0.5))
    prefs = res.kept.filter(pl.col("kind") == "preference")
    assert prefs.height == 1
    p = prefs.row(0, named=True)
    assert p["chosen"] == "kubectl rollout restart deploy/web" and p["rejected"] == "Reboot every node."
    m = meta_dict(p)
    assert m["pair_source"] == "ranked" and m["margin"] == 3.0 and m["answers"] == 3
    reasons = res.dropped["drop_reason"].to_list()
    assert reasons.count("pairs: margin below --min-margin") == 2
    assert "pairs: no pair for this row" in reasons  # the single answer, and the identical ones
    assert res.kept.height + res.dropped.height == fr.height + res.stats["added"]
    # without a score column: nothing ranked, every SFT row reported
    res = run(fr.drop("reward"), PairsConfig())
    assert res.kept.height == 0 and "no 'reward' column" in res.stats["ranked"]


def test_ranked_rejected_is_the_lowest_answer_that_passes_the_side_checks():
    long = "Run kubectl rollout restart deployment/web and watch the rollout status until it completes."
    q1, q2, q3 = "How do I restart a deployment?", "How do I roll back?", "How do I scale?"
    undo = "Run kubectl rollout undo deployment/web, then wait until the rollout status reports success."
    rows = [
        # q1: the worst answer is the best one again (after normalisation), the next is near-identical,
        # the third from the bottom is a usable rejected answer
        sft(q1, long),
        sft(q1, "Reboot every node in the cluster."),
        sft(q1, long.replace("watch", "watsh")),
        sft(q1, "  " + long.upper() + "  "),
        # q2: every other answer is the chosen one in another spelling: no pair, rows dropped with a reason
        sft(q2, undo),
        sft(q2, undo + " "),
        sft(q2, undo.upper()),
        sft(q2, undo.replace("wait", "wiat")),
        # q3: an empty answer is neither side; the usable pair is made
        sft(q3, "kubectl scale deploy/web --replicas=3"),
        sft(q3, "Buy more servers."),
        sft(q3, ""),
    ]
    reward = [3.0, 1.0, 0.0, -2.0, 2.0, 1.5, 1.0, -5.0, 1.0, 0.0, -9.0]
    fr = to_frame(rows).with_columns(pl.Series("reward", reward))
    res = run(fr, PairsConfig())
    prefs = {p["question"]: p for p in res.kept.filter(pl.col("kind") == "preference").to_dicts()}
    assert set(prefs) == {q1, q3}
    ids = fr["id"].to_list()
    p = prefs[q1]
    assert p["chosen"] == long and p["rejected"] == "Reboot every node in the cluster."
    m = meta_dict(p)
    assert (m["chosen_id"], m["rejected_id"], m["rejected_score"], m["margin"]) == (ids[0], ids[1], 1.0, 2.0)
    assert prefs[q3]["rejected"] == "Buy more servers."
    # no pair with bad sides was made and then thrown away
    assert "pairs: identical sides" not in res.dropped["drop_reason"].to_list()
    assert res.stats["rejected_pairs"] == 0 and res.stats["new_pairs"] == 2
    assert res.stats["ranked"] == {
        "groups_with_several_answers": 3,
        "pairs": 2,
        "below_margin": 0,
        "no_usable_rejected": 1,
    }
    why = {r["id"]: r for r in res.dropped.to_dicts()}
    for i in (4, 5, 6, 7):
        assert why[ids[i]]["drop_reason"] == "pairs: no answer usable as rejected"
    detail = json.loads(why[ids[4]]["drop_detail"])
    assert detail["problems"] == {"pairs: identical sides": 2, "pairs: near-identical sides": 1}
    assert why[ids[3]]["drop_reason"] == "pairs: used as a middle answer of a ranked pair"
    assert why[ids[1]]["drop_reason"] == "pairs: used as rejected of a ranked pair"
    assert why[ids[10]]["drop_reason"] == "pairs: no pair for this row"
    assert res.kept.height + res.dropped.height == fr.height + res.stats["added"]


def test_existing_preference_files(shared_data):
    fr = load(
        [FIXTURES / "trl_pref.jsonl", FIXTURES / "llamafactory_pref.json", FIXTURES / "hh_rlhf.jsonl"]
    ).frame
    bad = to_frame(
        [
            Record("preference", question="q?", chosen="Same answer.", rejected="same answer").as_row(),
            Record(
                "preference",
                question="q2?",
                chosen="Restart the kubelet service on the node and check the logs for errors.",
                rejected="Restart the kubelet service on the node and check the log for errors.",
            ).as_row(),
        ]
    )
    fr = pl.concat([fr, bad], how="diagonal_relaxed")
    res = run(fr, PairsConfig(modes=("existing",)))
    assert res.kept.height == fr.height - 2
    assert sorted(res.dropped["drop_reason"].to_list()) == [
        "pairs: identical sides",
        "pairs: near-identical sides",
    ]
    real = load([shared_data / "medicalgpt-samples" / "dpo_zh_500.jsonl"]).frame
    res = run(real, PairsConfig(modes=("existing",)))
    assert res.kept.height + res.dropped.height == real.height and res.kept.height > 400


def test_generated_pairs_with_local_tiny_model(tiny_models, tmp_path):
    fr = to_frame(
        [sft("怎么查看日志？", "用 kubectl logs POD 查看。"), sft("How to list nodes?", "kubectl get nodes")]
    )
    gen = HFTeacher(tiny_models["lm"], cache=TeacherCache(tmp_path / "c.sqlite"), max_new_tokens=12)
    res = run(fr, PairsConfig(modes=("generated",), model=str(tiny_models["lm"])), generator=gen)
    assert gen.requests == 2
    prefs = res.kept.to_dicts() + res.dropped.filter(pl.col("kind") == "preference").to_dicts()
    assert len(prefs) == 2
    for p in prefs:
        assert p["chosen"] in ("用 kubectl logs POD 查看。", "kubectl get nodes")
        assert meta_dict(p)["rejected_model"].startswith("hf:lm@")
    assert res.kept.height + res.dropped.height == fr.height + res.stats["added"]
    gen.close()


def test_pairs_cli(tmp_path):
    inp = tmp_path / "answers.jsonl"
    rows = [
        {"question": "Q1?", "answer": "good answer one", "reward": 1.0},
        {"question": "Q1?", "answer": "bad answer", "reward": -1.0},
    ]
    inp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "pairs.jsonl"
    r = CliRunner().invoke(main, ["pairs", str(inp), "-o", str(out), "--json"])
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout.strip().splitlines()[-1])
    assert s["new_pairs"] == 1 and s["kept"] == 1
    got = [json.loads(x) for x in out.read_text().splitlines()]
    assert got[0]["chosen"] == "good answer one" and got[0]["rejected"] == "bad answer"
    r = CliRunner().invoke(main, ["pairs", str(inp), "--mode", "generated"])
    assert r.exit_code == 2 and "--model" in r.output


@pytest.mark.parametrize("mode", ["bogus"])
def test_bad_mode(mode):
    with pytest.raises(ValueError):
        PairsConfig(modes=mode)
