"""select: thresholds and paper defaults, quantiles, diversity, stratification, and an eval split with
no near-duplicate leakage (proved by brute force over every train x eval pair)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner

from curate.augment.common import char_ngrams, jaccard, norm_key
from curate.cli import main
from curate.io import load
from curate.records import Record, to_frame
from curate.select import SelectConfig, SelectError, parse_where, run

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples" / "ops_qa.jsonl"


@pytest.fixture(scope="module")
def embedder():
    from curate.embed import get_embedder

    return get_embedder("use")


def scored(n=20, **cols):
    fr = to_frame(
        Record("sft", question=f"question number {i}?", answer=f"answer {i}").as_row() for i in range(n)
    )
    return fr.with_columns(*(pl.Series(k, v) for k, v in cols.items()))


def test_parse_where():
    c = parse_where("ifd < 1 and reward >= 0.2, meta.lang == 'zh' && quality is not null")
    assert [(x.column, x.op, x.value) for x in c] == [
        ("ifd", "<", 1),
        ("reward", ">=", 0.2),
        ("meta.lang", "==", "zh"),
        ("quality", "is not null", None),
    ]
    with pytest.raises(SelectError):
        parse_where("ifd <<< 1")


def test_paper_default_and_thresholds():
    ifd = [0.2, 0.5, 0.99, 1.0, 1.3, None] + [0.5] * 4
    reward = [1.0, -1.0, 0.5, 0.5, 0.5, 0.5, 0.1, 0.3, None, 2.0]
    fr = scored(10, ifd=ifd, reward=reward)
    res = run(fr, SelectConfig(min=("reward=0.2",)))
    reasons = dict(zip(res.dropped["id"].to_list(), res.dropped["drop_reason"].to_list(), strict=True))
    ids = fr["id"].to_list()
    assert reasons[ids[3]].startswith("select: paper default") and reasons[ids[4]].startswith(
        "select: paper default"
    )
    assert ids[5] not in reasons  # no IFD: the paper default does not judge it (reward 0.5 passes)
    assert reasons[ids[1]] == "select: min reward=0.2" and reasons[ids[6]] == "select: min reward=0.2"
    assert reasons[ids[8]] == "select: no reward value"  # an explicit threshold still needs a value
    assert sorted(res.kept["id"].to_list()) == sorted([ids[0], ids[2], ids[5], ids[7], ids[9]])
    assert res.kept.height + res.dropped.height == fr.height
    # no defaults, missing kept
    res = run(fr, SelectConfig(defaults=False, missing="keep", where=("ifd < 1.2",)))
    assert set(res.dropped["id"].to_list()) == {ids[4]}
    with pytest.raises(SelectError, match="no column"):
        run(fr, SelectConfig(where=("nope > 1",)))


def test_paper_default_judges_only_rows_with_an_ifd():
    """Plain text (continued pretraining) and unscored SFT rows have no IFD: the ``ifd < 1`` default
    passes them; only rows with IFD >= 1 are dropped. An explicit ``--where ifd < 1`` keeps SQL
    semantics (a row without a value is dropped unless ``missing="keep"``)."""
    sft_rows = [Record("sft", question=f"question {i}?", answer=f"answer {i}").as_row() for i in range(4)]
    text_rows = [Record("text", text=f"a paragraph of plain text number {i}.").as_row() for i in range(3)]
    fr = to_frame(sft_rows + text_rows).with_columns(
        pl.Series("ifd", [0.4, 1.2, None, float("nan"), None, None, None], dtype=pl.Float64)
    )
    ids = fr["id"].to_list()
    res = run(fr, SelectConfig())
    assert res.dropped["id"].to_list() == [ids[1]]
    assert res.dropped["drop_reason"][0].startswith("select: paper default")
    assert sorted(res.kept["id"].to_list()) == sorted(ids[:1] + ids[2:])
    assert res.stats["thresholds"] == {
        "paper default: IFD >= 1: the instruction does not help (Li et al. 2023)": 1
    }
    # the same condition written by the user: rows without a value are dropped, as documented
    res = run(fr, SelectConfig(defaults=False, where=("ifd < 1",)))
    assert sorted(res.kept["id"].to_list()) == [ids[0]]
    assert res.dropped.filter(pl.col("drop_reason") == "select: no ifd value").height == 5


def test_quantiles_and_target_order():
    fr = scored(100, reward=[float(i) for i in range(100)], ppl=[float(100 - i) for i in range(100)])
    res = run(fr, SelectConfig(min_quantile=("reward=0.25",), max_quantile=("ppl=0.5",), diversity="off"))
    # reward >= 24.75 and ppl <= 50.5 (i >= 50)
    assert res.kept.height == 50 and min(res.kept["reward"]) == 50
    res = run(fr, SelectConfig(target=10, diversity="off"))
    assert res.stats["by"] == "reward" and sorted(res.kept["reward"].to_list()) == list(range(90, 100))
    assert set(res.dropped["drop_reason"]) == {"select: target reached"}
    res = run(fr, SelectConfig(target=10, by="-reward", diversity="off"))
    assert sorted(res.kept["reward"].to_list()) == list(range(10))


def test_diversity_never_takes_two_near_duplicates(embedder):
    base = [
        ("How do I restart a deployment?", "kubectl rollout restart deploy/NAME"),
        ("How can I restart a deployment?", "kubectl rollout restart deploy/NAME"),
        ("How do I restart my deployment?", "Use kubectl rollout restart deploy/NAME."),
        ("怎么查看 Pod 日志？", "kubectl logs POD"),
        ("怎样查看 Pod 的日志？", "用 kubectl logs POD"),
        ("What is a PodDisruptionBudget?", "It limits voluntary evictions."),
        ("How do I back up etcd?", "etcdctl snapshot save backup.db"),
        ("Why is my pod pending?", "No node fits its requests, or a PVC is unbound."),
    ]
    fr = to_frame(Record("sft", question=q, answer=a).as_row() for q, a in base)
    fr = fr.with_columns(pl.Series("quality", np.linspace(1, 0, fr.height)))
    res = run(fr, SelectConfig(target=8, diversity=0.85), embedder=embedder)
    texts = [f"{q}\n{a}" for q, a in zip(res.kept["question"], res.kept["answer"], strict=True)]
    v = embedder.encode(texts)
    sims = v @ v.T - 2 * np.eye(len(texts))
    assert sims.max() < 0.85
    assert res.kept.height < fr.height
    too_close = res.dropped.filter(pl.col("drop_reason") == "select: too similar to a selected row")
    assert too_close.height >= 1
    d = json.loads(too_close["drop_detail"][0])
    assert d["nearest_id"] in res.kept["id"].to_list() and d["cosine"] >= 0.85


def test_stratified_shares():
    fr = scored(60, reward=[float(i) for i in range(60)])
    cat = ["a"] * 30 + ["b"] * 20 + ["c"] * 10
    fr = fr.with_columns(pl.Series("category", cat))
    res = run(fr, SelectConfig(target=12, stratify="category", diversity="off"))
    assert res.stats["per_stratum"] == {"a": 6, "b": 4, "c": 2}


def _perturb(text: str, rng: random.Random) -> str:
    chars = list(text)
    for _ in range(max(1, len(chars) // 30)):
        i = rng.randrange(len(chars))
        chars[i] = chars[i] + rng.choice("，的 ")
    return "".join(chars)


def assert_no_split_leak(kept: pl.DataFrame, embedder, jac=0.7, cos=0.9):
    train = kept.filter(pl.col("split") == "train")
    ev = kept.filter(pl.col("split") == "eval")
    assert train.height and ev.height
    assert not set(norm_key(q) for q in train["question"]) & set(norm_key(q) for q in ev["question"])
    vt, ve = embedder.encode(train["question"].to_list()), embedder.encode(ev["question"].to_list())
    assert float((vt @ ve.T).max()) < cos
    gt = [char_ngrams(q, 3) for q in train["question"]]
    ge = [char_ngrams(q, 3) for q in ev["question"]]
    worst = max(jaccard(a, b) for a in gt for b in ge)
    assert worst < 0.9  # no textual near-duplicate (a margin over the MinHash threshold's tokenisation)
    return worst


def test_eval_split_has_no_near_duplicate_leak(embedder):
    fr = load([SAMPLES]).frame.filter(pl.col("question").str.len_chars() > 8).head(160)
    rng = random.Random(3)
    twins = [
        Record("sft", question=_perturb(r["question"], rng), answer=r["answer"] or "x").as_row()
        for r in fr.head(50).to_dicts()
    ]
    fr = pl.concat([fr, to_frame(twins)], how="vertical")
    res = run(fr, SelectConfig(eval_size=0.2, seed=1), embedder=embedder)
    kept = res.kept
    assert res.stats["split"]["eval_rows"] == kept.filter(pl.col("split") == "eval").height > 0
    # every planted twin is on the same side as its original
    side = {}
    for q, s in zip(kept["question"], kept["split"], strict=True):
        side.setdefault(q, set()).add(s)
    for orig, twin in zip(fr.head(50).to_dicts(), twins, strict=True):
        if orig["question"] in side and twin["question"] in side:
            assert side[orig["question"]] == side[twin["question"]]
    assert_no_split_leak(kept, embedder)
    assert res.kept.height + res.dropped.height == fr.height
    # clusters never span splits
    by_cluster = kept.group_by("cluster").agg(pl.col("split").n_unique().alias("n"))
    assert by_cluster["n"].max() == 1


def test_eval_split_on_real_paraphrases(shared_data, embedder):
    # LCQMC: question pairs labelled as paraphrases; both sides become rows of one set
    lines = (shared_data / "lcqmc" / "dev.txt").read_text(encoding="utf-8").splitlines()
    rows, n_pos = [], 0
    for ln in lines:
        parts = ln.split("\t")
        if len(parts) == 3 and parts[2] == "1":
            rows += [parts[0], parts[1]]
            n_pos += 1
        if n_pos == 150:
            break
    fr = to_frame(
        Record("sft", question=q, answer=f"回答 {i}").as_row() for i, q in enumerate(dict.fromkeys(rows))
    )
    res = run(fr, SelectConfig(eval_size=0.2, seed=0), embedder=embedder)
    assert_no_split_leak(res.kept, embedder)


def test_select_cli(tmp_path):
    inp = tmp_path / "scored.jsonl"
    fr = scored(30, reward=[float(i) for i in range(30)], ifd=[0.5] * 25 + [1.5] * 5)
    fr.write_ndjson(inp)
    out = tmp_path / "sel.jsonl"
    r = CliRunner().invoke(
        main,
        [
            "select",
            str(inp),
            "-o",
            str(out),
            "--min",
            "reward=3",
            "--target",
            "10",
            "--diversity",
            "off",
            "--json",
        ],
    )
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout.strip().splitlines()[-1])
    assert s["kept"] == 10 and s["dropped"] == 20
    assert s["dropped_by_reason"]["select: min reward=3.0"] == 3
    kept = [json.loads(x) for x in out.read_text().splitlines()]
    assert sorted(k["reward"] for k in kept) == [float(i) for i in range(15, 25)]
    r = CliRunner().invoke(main, ["select", str(inp), "--where", "reward <<< 1"])
    assert r.exit_code == 2 and "cannot read" in r.output


def test_variants_stay_with_their_origin_in_the_split(embedder):
    from curate.augment import AugmentConfig
    from curate.augment import run as augment

    fr = load([SAMPLES]).frame.filter(pl.col("question").str.len_chars() > 8).head(60)
    aug = augment(fr, AugmentConfig(rephrase=2, system_variants=1)).kept
    res = run(aug, SelectConfig(eval_size=0.25, split_semantic=None, seed=2), embedder=embedder)
    side = dict(zip(res.kept["id"].to_list(), res.kept["split"].to_list(), strict=True))
    checked = 0
    for r in res.kept.to_dicts():
        origin = json.loads(r["meta"]).get("origin_id")
        if origin in side:
            assert side[origin] == side[r["id"]]
            checked += 1
    assert checked >= 100 and res.stats["split"]["variant_links"] >= 100
