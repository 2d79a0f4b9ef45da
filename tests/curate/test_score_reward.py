"""Reward scorer: equals the model's own pooled output per row, independent of batching and padding;
pairwise margin for preference rows; clear errors for models that are not reward models."""

from __future__ import annotations

import json
import shutil

import pytest

from curate.records import Record


def _rows():
    return [
        Record("sft", question="How do I restart a pod?", answer="kubectl delete pod x.").as_row(),
        Record(
            "sft", question="什么是容器？", answer="容器是一种轻量级的虚拟化技术。", system="你是运维助手"
        ).as_row(),
        Record("sft", question="Why?", answer="Because the memory limit is too low " * 5).as_row(),
        Record(
            "preference", question="Which?", chosen="The first one, it is stable.", rejected="no"
        ).as_row(),
    ]


@pytest.fixture(scope="module")
def rm(tiny_models):
    from curate.score.reward import RewardConfig, RewardScorer

    return RewardScorer(RewardConfig(str(tiny_models["reward"]), device="cpu"))


def _reference(scorer, msgs, answer):
    """One row, no padding: the model's own output (HF pools at the last non-pad token)."""
    import torch

    text = scorer.tok.apply_chat_template(msgs + [{"role": "assistant", "content": answer}], tokenize=False)
    ids = scorer.tok(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        return float(scorer.model(input_ids=ids).logits[0, 0])


def test_matches_unbatched_model_output_and_margin(rm):
    from curate.records import messages_of

    rows = _rows()
    got = rm.score_rows(rows)
    for row, g in zip(rows[:3], got[:3], strict=True):
        ref = _reference(rm, messages_of(row, answer_field=None), row["answer"])
        assert abs(g["reward"] - ref) <= 1e-4 * max(1.0, abs(ref))
    pref = rows[3]
    msgs = messages_of(pref, answer_field=None)
    c, r = _reference(rm, msgs, pref["chosen"]), _reference(rm, msgs, pref["rejected"])
    assert abs(got[3]["reward_chosen"] - c) < 1e-4 and abs(got[3]["reward_rejected"] - r) < 1e-4
    assert got[3]["reward_margin"] == pytest.approx(got[3]["reward_chosen"] - got[3]["reward_rejected"])
    assert "reward" not in got[3]


def test_batching_and_order_invariant(rm, tiny_models):
    from curate.score.reward import RewardConfig, RewardScorer

    rows = _rows() * 3
    base = rm.score_rows(rows)
    one = RewardScorer(
        RewardConfig(str(tiny_models["reward"]), device="cpu", max_batch=1), model=rm.model, tokenizer=rm.tok
    )
    rev = one.score_rows(rows[::-1])[::-1]
    for a, b in zip(base, rev, strict=True):
        for k, v in a.items():
            if isinstance(v, float):
                assert b[k] == pytest.approx(v, rel=1e-5, abs=1e-6)


def test_truncation_and_bad_rows(rm, tiny_models):
    from curate.score.reward import RewardConfig, RewardScorer

    s = RewardScorer(
        RewardConfig(str(tiny_models["reward"]), device="cpu", max_tokens=48),
        model=rm.model,
        tokenizer=rm.tok,
    )
    long = Record("sft", question="why " * 100, answer="because it is so " * 3).as_row()
    empty = Record("sft", question="q", answer="").as_row()
    text = Record("text", text="just text").as_row()
    res = s.score_rows([long, empty, text])
    assert res[0]["truncated"] is True and isinstance(res[0]["reward"], float)
    ids, _ = s.encode(long)
    assert len(ids[0]) == 48
    assert ids[0][-5:] == rm.encode(long)[0][0][-5:]  # the end, where the score is read, is kept
    assert res[1] == {"error": "empty answer"}
    assert "no question and answer" in res[2]["error"]


def test_not_a_reward_model(tiny_models, tmp_path):
    from curate.score.common import ScoreError
    from curate.score.reward import RewardConfig, RewardScorer

    with pytest.raises(ScoreError, match="not a reward model"):
        RewardScorer(RewardConfig(str(tiny_models["lm"]), device="cpu"))
    multi = tmp_path / "multi"
    shutil.copytree(tiny_models["reward"], multi)
    cfg = json.loads((multi / "config.json").read_text())
    cfg["id2label"] = {"0": "a", "1": "b", "2": "c"}
    cfg["label2id"] = {"a": 0, "b": 1, "c": 2}
    (multi / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ScoreError, match="3 labels"):
        RewardScorer(RewardConfig(str(multi), device="cpu"))
    headless = tmp_path / "headless"
    shutil.copytree(tiny_models["lm"], headless)
    cfg = json.loads((headless / "config.json").read_text())
    cfg["architectures"] = ["LlamaForSequenceClassification"]
    cfg["id2label"], cfg["label2id"] = {"0": "LABEL_0"}, {"LABEL_0": 0}
    (headless / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ScoreError, match="not a trained reward model"):
        RewardScorer(RewardConfig(str(headless), device="cpu"))


def test_model_without_config_pad_token_still_batches(tiny_models, tmp_path):
    """HF sequence classifiers refuse batches of more than one row without config.pad_token_id; the
    scorer sets it, so a batch is one forward pass, not one per row."""
    from curate.score.reward import RewardConfig, RewardScorer

    nopad = tmp_path / "nopad"
    shutil.copytree(tiny_models["reward"], nopad)
    cfg = json.loads((nopad / "config.json").read_text())
    cfg.pop("pad_token_id", None)
    (nopad / "config.json").write_text(json.dumps(cfg))
    s = RewardScorer(RewardConfig(str(nopad), device="cpu"))
    assert s.model.config.pad_token_id == s.pad_id
    calls = []
    real = s.model.forward
    s.model.forward = lambda *a, **k: calls.append(1) or real(*a, **k)
    rows = _rows()[:3] * 4
    got = s.score_rows(rows)
    assert len(calls) == 1 and all("reward" in g for g in got)
