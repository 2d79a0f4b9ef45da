"""fastText quality classifier: text preparation, training with held-out metrics, determinism, AUC."""

from __future__ import annotations

import json
import random

import pytest

from curate.records import Record
from curate.score.quality import TrainParams, classification_metrics, clean, fasttext_text, roc_auc

FAST = dict(epoch=20, lr=0.5, dim=16, bucket=5_000, cutoff=2_000, holdout=0.25, seed=0)


def _synthetic(n=120, seed=0):
    """Good: on-topic ops answers; bad: refusals, one-word and gibberish answers."""
    rng = random.Random(seed)
    topics = ["pod", "node", "ingress", "volume", "deployment", "容器", "集群", "日志"]
    verbs = ["restart", "check", "scale", "describe", "inspect", "drain"]
    good, bad = [], []
    for i in range(n):
        t, v = rng.choice(topics), rng.choice(verbs)
        q = f"how do I {v} the {t} {i}"
        good.append(
            fasttext_text(
                {
                    "kind": "sft",
                    "question": q,
                    "answer": f"run kubectl {v} {t} then look at events and logs of the {t}",
                }
            )
        )
        junk = rng.choice(
            [
                "sorry, I cannot help with that",
                "ok",
                "asdf qwer zxcv " * 3,
                "抱歉，我无法回答这个问题",
            ]
        )
        bad.append(fasttext_text({"kind": "sft", "question": q, "answer": junk}))
    return good, bad


def test_text_preparation():
    t = fasttext_text({"kind": "sft", "question": "Pod 重启了\n怎么办？", "answer": "Check  LOGS"})
    assert t == "__q__ pod 重 启 了 怎 么 办 ? __a__ check logs"
    assert fasttext_text({"kind": "preference", "question": "q", "chosen": "A"}) == "__q__ q __a__ a"
    assert clean("ｆｕｌｌ\twidth") == "full width"


def test_auc_matches_definition():
    assert roc_auc([0.1, 0.4, 0.35, 0.8], [False, False, True, True]) == pytest.approx(0.75)
    assert roc_auc([0.5, 0.5], [True, False]) == pytest.approx(0.5)
    assert roc_auc([1, 2], [True, True]) is None
    m = classification_metrics([0.9, 0.8, 0.2, 0.6], [True, True, False, False], 0.5)
    assert (m["precision"], m["recall"], m["accuracy"]) == (round(2 / 3, 4), 1.0, 0.75)


def test_train_evaluate_deterministic(tmp_path):
    from curate.score.quality import QualityScorer, evaluate, train_classifier

    good, bad = _synthetic()
    a = train_classifier(good, bad, tmp_path / "a.ftz", TrainParams(**FAST))
    train_classifier(good, bad, tmp_path / "b.ftz", TrainParams(**FAST))
    assert a["heldout"]["auc"] >= 0.95 and a["heldout"]["rows"] > 0
    assert (tmp_path / "a.ftz").read_bytes() == (tmp_path / "b.ftz").read_bytes()
    side = json.loads((tmp_path / "a.ftz.json").read_text())
    assert side["heldout"] == a["heldout"] and side["params"]["bucket"] == 5_000
    assert (tmp_path / "a.ftz").stat().st_size < 1_000_000
    ev = evaluate(tmp_path / "a.ftz", good[:20], bad[:20])
    assert ev["auc"] > 0.9
    scorer = QualityScorer(tmp_path / "a.ftz")
    rows = [
        Record(
            "sft",
            question="how do I drain the node",
            answer="run kubectl drain node then look at events and logs of the node",
        ).as_row(),
        Record("sft", question="how do I drain the node", answer="ok").as_row(),
        Record("sft", question="", answer="").as_row() | {"question": "", "answer": ""},
    ]
    res = scorer.score_rows(rows)
    assert res[0]["quality"] > res[1]["quality"]
    assert 0.0 <= res[1]["quality"] <= 1.0
    assert res[2] == {"error": "empty text"}


def test_train_refuses_too_little_data(tmp_path):
    from curate.score.common import ScoreError
    from curate.score.quality import train_classifier

    with pytest.raises(ScoreError, match="at least 2"):
        train_classifier(["a b", "a b"], ["c d", "e f"], tmp_path / "m.ftz", TrainParams(**FAST))


def test_wrong_model_file(tmp_path):
    from curate.score.common import ScoreError
    from curate.score.quality import load_fasttext

    with pytest.raises(ScoreError, match="does not exist"):
        load_fasttext(tmp_path / "missing.ftz")
    junk = tmp_path / "junk.ftz"
    junk.write_bytes(b"not a model")
    with pytest.raises(ScoreError, match="not a fastText model"):
        load_fasttext(junk)


def test_a_class_that_falls_entirely_into_the_holdout_still_trains(tmp_path):
    """Both good texts hash into the 20 % held-out split: one is moved back to training, so the model
    knows both labels (before, fastText was trained on the bad label alone)."""
    from curate.score.common import ScoreError
    from curate.score.quality import _in_holdout, load_fasttext, train_classifier

    good = ["good answer number 9 with kubectl", "good answer number 16 with kubectl"]
    assert all(_in_holdout(t, 0.2, 0) for t in good)
    bad = ["sorry no", "ok", "asdf qwer", "抱 歉", "no idea", "n a"]
    params = TrainParams(**{**FAST, "holdout": 0.2})
    info = train_classifier(good, bad, tmp_path / "m.ftz", params)
    assert info["rows"]["train"] > 0 and info["heldout"]["positives"] == 1
    assert set(load_fasttext(tmp_path / "m.ftz").get_labels()) == {"__label__good", "__label__bad"}
    with pytest.raises(ScoreError, match="holdout"):
        train_classifier(good, bad, tmp_path / "m2.ftz", TrainParams(**{**FAST, "holdout": 1.0}))
