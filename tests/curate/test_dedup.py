import json
import random

import numpy as np
import polars as pl
import pytest

from curate.dedup import DedupConfig, run
from curate.dedup.minhash import ShingleSets, signatures
from curate.dedup.text import normalise
from curate.records import Record, to_frame

ZH = "高血压是指血压持续升高的一种慢性疾病，需要长期管理和治疗，包括饮食控制、规律运动、戒烟限酒以及遵医嘱服用降压药物等多种方式。"


def sft(rows, **kw):
    return to_frame(
        Record("sft", question=q, answer=a, source_file="in.jsonl", source_line=i + 1, **kw).as_row()
        for i, (q, a) in enumerate(rows)
    )


def check_accounting(frame, res):
    assert res.kept.height + res.dropped.height == frame.height
    assert set(res.kept["id"].to_list()) | set(res.dropped["id"].to_list()) <= set(frame["id"].to_list())


def test_exact_variants_cluster_and_record_survivor():
    f = sft(
        [
            ("什么是高血压？", ZH),
            ("什么是高血压?", ZH.replace("，", ",")),
            ("什么是 高血压", ZH + "！"),
            ("What is Python?", "A programming language."),
            ("WHAT IS PYTHON", "a programming language"),
            ("完全不同的问题", "完全不同的回答内容。"),
        ]
    )
    res = run(f, DedupConfig(methods="exact"))
    check_accounting(f, res)
    assert res.kept.height == 3
    d = res.dropped.sort("source")
    assert d["drop_reason"].unique().to_list() == ["exact duplicate"]
    assert d["dup_of"].to_list() == [f["id"][0], f["id"][0], f["id"][3]]
    detail = json.loads(d["drop_detail"][0])
    assert detail["method"] == "exact" and detail["survivor_source"] == "in.jsonl:1"
    assert detail["cluster"] == d["dup_cluster"][0]
    assert {c["size"] for c in res.clusters} == {3, 2}


def test_keep_policies():
    f = sft([("问题", "短答案。"), ("问题！", "短答案"), ("问 题", "短答案。。")])
    f = f.with_columns(pl.Series("score", [0.1, 0.9, None]))
    first = run(f, DedupConfig(methods="exact", fields="question", keep="first"))
    assert first.kept["source"].struct.field("line").to_list() == [1]
    longest = run(f, DedupConfig(methods="exact", fields="question", keep="longest"))
    assert longest.kept["answer"].to_list() == ["短答案。。"]
    best = run(f, DedupConfig(methods="exact", fields="question", keep="best:score"))
    assert best.kept["score"].to_list() == [0.9]
    with pytest.raises(ValueError, match="no column 'nope'"):
        run(f, DedupConfig(methods="exact", keep="best:nope"))
    with pytest.raises(ValueError):
        DedupConfig(keep="random")


def test_fields_question_only_and_preference_and_text_rows():
    f = sft([("同一个问题是什么", "回答一"), ("同一个问题是什么", "完全不同的回答二")])
    assert run(f, DedupConfig(methods="exact", fields="both")).dropped.height == 0
    assert run(f, DedupConfig(methods="exact", fields="question")).dropped.height == 1
    pref = to_frame(
        [
            Record("preference", question="q", chosen="good answer here", rejected="bad").as_row(),
            Record("preference", question="q", chosen="good answer here", rejected="worse").as_row(),
            Record("text", text="a plain pretraining text").as_row(),
            Record("text", text="A plain, pretraining text!").as_row(),
        ]
    )
    res = run(pref, DedupConfig(methods="exact"))
    assert res.dropped.height == 2  # chosen is compared for preference rows, text for text rows


def test_bad_values_never_crash():
    rows = [
        Record("sft", question="a", answer="").as_row(),
        Record("sft", question="a", answer="").as_row(),
        Record("sft", question="？", answer="！").as_row(),
        Record("sft", question="?", answer="!").as_row(),
        Record("sft", question="x", answer="😀").as_row(),
        Record("sft", question="", answer="").as_row(),
        Record("sft", question=" ", answer="\n").as_row(),
    ]
    f = to_frame(rows)
    res = run(f, DedupConfig(methods="exact,minhash"))
    check_accounting(f, res)
    assert res.stats["empty_not_compared"] == 2
    assert res.dropped.height == 2  # "a" twice; "？！" vs "?!"
    assert res.stats["minhash"]["short_texts"] >= 1
    empty = run(f.head(0), DedupConfig(methods="exact,minhash"))
    assert empty.kept.height == 0 and empty.dropped.height == 0


def _mutate(text, k, rnd):
    chars = list(text)
    for _ in range(k):
        i = rnd.randrange(len(chars))
        chars[i] = chr(rnd.randint(0x4E00, 0x9FA5))
    return "".join(chars)


def test_minhash_finds_planted_near_duplicates_with_exact_jaccard():
    rnd = random.Random(3)
    base = ["".join(chr(rnd.randint(0x4E00, 0x9FA5)) for _ in range(150)) for _ in range(150)]
    en = [
        " ".join(
            rnd.choice(
                [
                    "alpha",
                    "beta",
                    "gamma",
                    "delta",
                    "eps",
                    "zeta",
                    "eta",
                    "theta",
                    "iota",
                    "kappa",
                    "lam",
                    "mu",
                ]
            )
            + str(rnd.randint(0, 99))
            for _ in range(80)
        )
        for _ in range(50)
    ]
    docs = base + en
    variants = [_mutate(d, 1, rnd) for d in base[:40]] + [_mutate(d, 12, rnd) for d in base[40:60]]
    words = [d.split() for d in en[:20]]
    for w in words:
        w[5] = "changed"
    variants += [" ".join(w) for w in words]
    allx = docs + variants
    f = to_frame(Record("text", text=t, source_line=i).as_row() for i, t in enumerate(allx))
    res = run(f, DedupConfig(methods="minhash", threshold=0.8))
    check_accounting(f, res)
    # brute force truth on our own shingle sets
    ss, _ = signatures(normalise(pl.Series(allx)).to_list(), 5, 128, 42)
    sets = ShingleSets(ss)
    truth = {(i, j) for i in range(len(allx)) for j in range(i + 1, len(allx)) if sets.jaccard(i, j) >= 0.8}
    assert len(truth) >= 55
    dropped_lines = set(res.dropped["source"].struct.field("line").to_list())
    found = {(i, j) for i, j in truth if j in dropped_lines or i in dropped_lines}
    assert len(found) / len(truth) >= 0.95
    # every drop is a verified near-duplicate of its survivor, with the measured similarity
    assert (res.dropped["dup_similarity"] >= 0.8).all()
    assert res.stats["minhash"]["verified_pairs"] >= len(truth) * 0.95
    # the 12-edit variants (Jaccard ~0.5) are not duplicates
    assert not (set(range(len(docs) + 40, len(docs) + 60)) & dropped_lines)


def test_clusters_are_transitive_and_listed():
    a = "今天天气很好我们一起去公园散步然后去吃午饭再去图书馆看书最后回家做晚饭"
    b = a[:-1] + "菜"
    c = "今" + a[1:-1] + "菜"
    f = to_frame(
        Record("text", text=t, source_line=i).as_row()
        for i, t in enumerate([a, b, c, "无关的句子内容完全不一样的东西"])
    )
    res = run(f, DedupConfig(methods="minhash", threshold=0.7, ngram=3))
    assert res.dropped.height == 2
    assert res.dropped["dup_cluster"].n_unique() == 1
    (cl,) = res.clusters
    assert cl["size"] == 3 and cl["survivor"]["id"] == f["id"][0]
    assert sum(m["kept"] for m in cl["members"]) == 1


def test_semantic_with_multilingual_default():
    f = sft(
        [
            ("How do I reset my password?", "Click 'forgot password' on the login page."),
            ("How can I reset my password?", "Click 'forgot password' on the login page."),
            ("What is the capital of France?", "Paris."),
            ("如何重置我的密码？", "在登录页点击“忘记密码”。"),
            ("怎样重置我的密码？", "在登录页点击“忘记密码”。"),
            ("今天股市大跌的原因是什么", "主要是受到利率上升的影响。"),
        ]
    )
    res = run(f, DedupConfig(methods="semantic", semantic_threshold=0.85))
    check_accounting(f, res)
    assert res.stats["semantic"]["model"].startswith("use")
    dropped = set(res.dropped["question"].to_list())
    assert dropped == {"How can I reset my password?", "怎样重置我的密码？"}
    assert (res.dropped["dup_similarity"] >= 0.85).all()


def test_neighbour_pairs_blocked_equals_brute_force():
    from curate.dedup.semantic import neighbour_pairs

    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 16)).astype(np.float32)
    x[150:] = x[:150] + rng.normal(scale=0.3, size=(150, 16))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    pairs, sims = neighbour_pairs(x, x, 0.9, block_q=37, block_c=50)
    full = x @ x.T
    ii, jj = np.nonzero(np.triu(full >= 0.9, k=1))
    assert {tuple(p) for p in pairs.tolist()} == set(zip(ii.tolist(), jj.tolist(), strict=True))
    assert np.allclose(sims, full[pairs[:, 0], pairs[:, 1]], atol=1e-5)


def test_real_medical_csv_exact_duplicates(shared_data):
    from curate.io import load

    path = shared_data / "chinese-medical-dialogue" / "sample_internal_medicine_5000-6000.gb18030.csv"
    frame = load([path]).frame
    res = run(frame, DedupConfig(methods="exact,minhash"))
    check_accounting(frame, res)
    exact = res.stats["exact"]["dropped"]
    # the file has 378 byte-identical duplicate rows; normalisation finds those and a few more
    assert 378 <= exact <= 420
    assert (res.dropped["dup_similarity"] >= 0.8).all()
    src = res.dropped["dup_of_source"].to_list()
    assert all(s.startswith(str(path)) for s in src)


def test_single_method_stage_modules():
    from curate.dedup import exact, minhash

    f = sft([("问题一", ZH), ("问题一", ZH), ("问题一", ZH[:-3] + "好的。")])
    e = exact.run(f)
    assert e.stats["methods"] == "exact" and e.dropped.height == 1
    m = minhash.run(f, DedupConfig(threshold=0.7))
    assert m.stats["methods"] == "minhash" and m.dropped.height == 2


def test_estimate_verification_and_band_override():
    rnd = random.Random(5)
    base = ["".join(chr(rnd.randint(0x4E00, 0x9FA5)) for _ in range(200)) for _ in range(60)]
    docs = base + [_mutate(d, 1, rnd) for d in base[:30]]
    f = to_frame(Record("text", text=t, source_line=i).as_row() for i, t in enumerate(docs))
    exact_v = run(f, DedupConfig(methods="minhash"))
    est_v = run(f, DedupConfig(methods="minhash", verify="estimate"))
    assert exact_v.dropped.height == 30
    assert 25 <= est_v.dropped.height <= 30  # the estimate can miss pairs near the threshold
    forced = run(f, DedupConfig(methods="minhash", bands=16))
    assert forced.stats["minhash"]["bands"] == 16 and forced.stats["minhash"]["rows_per_band"] == 8
    with pytest.raises(ValueError):
        DedupConfig(bands=200).lsh_shape()


def test_datasketch_backend_makes_the_same_decisions_as_rensa(monkeypatch):
    """The card's datasketch and the faster rensa sit side by side: same MinHash semantics, so after
    exact Jaccard verification the same rows survive on the shipped samples."""
    from pathlib import Path

    from curate.io import load

    frame = load([Path(__file__).resolve().parents[2] / "samples" / "ops_qa.jsonl"]).frame
    cfg = DedupConfig(methods="minhash")
    results = {}
    for backend in ("rensa", "datasketch"):
        monkeypatch.setenv("TAMIS_MINHASH", backend)
        res = run(frame, cfg)
        assert res.stats["minhash"]["backend"] == backend
        check_accounting(frame, res)
        results[backend] = res
    assert results["rensa"].stats["minhash"]["dropped"] > 10  # the samples plant near duplicates
    assert results["rensa"].kept["id"].to_list() == results["datasketch"].kept["id"].to_list()


def test_both_backends_estimate_jaccard():
    from curate.dedup.minhash import datasketch_signatures

    rnd = np.random.default_rng(0)
    a = rnd.choice(2**32 - 1, size=400, replace=False).astype(np.uint64)
    b = np.concatenate([a[:300], rnd.choice(2**32 - 1, size=100, replace=False).astype(np.uint64)])
    true = 300 / 500
    sigs = datasketch_signatures(np.concatenate([a, b]), np.array([0, 400, 800]), 256, 1)
    assert abs(float(np.mean(sigs[0] == sigs[1])) - true) < 0.08
    from rensa import RMinHash

    dm = RMinHash.digest_matrix_from_flat_token_hashes(
        np.concatenate([a, b]), np.array([0, 400, 800], dtype=np.uint64), 256, 1
    )
    r = np.array(dm.to_rows(), dtype=np.uint32).reshape(2, 256)
    assert abs(float(np.mean(r[0] == r[1])) - true) < 0.08


def test_minhash_backend_env_is_checked(monkeypatch):
    from curate.dedup.minhash import minhash_backend

    monkeypatch.setenv("TAMIS_MINHASH", "simhash")
    with pytest.raises(ValueError, match="TAMIS_MINHASH='simhash'"):
        minhash_backend()


def test_keep_best_orders_huge_scores():
    f = sft([("hello there friend", "a")] * 2).with_columns(pl.Series("score", [1e16, 1e17]))
    assert run(f, DedupConfig(methods="exact", keep="best:score")).kept["score"].to_list() == [1e17]
    f = sft([("hello there friend", "a")] * 2).with_columns(pl.Series("score", [-1e16, None]))
    assert run(f, DedupConfig(methods="exact", keep="best:score")).kept["score"].to_list() == [-1e16]


def test_field_boundaries_are_not_duplicates():
    f = sft([("What is", "Python"), ("What", "is Python"), ("What is", "Python!")])
    res = run(f, DedupConfig())
    assert res.dropped["source"].struct.field("line").to_list() == [3]


def test_dup_of_is_always_a_kept_row():
    # row 3 is an exact copy of row 2, which MinHash then drops as a near copy of row 1
    words = [f"w{i}" for i in range(60)]
    a = " ".join(words)
    b = " ".join(words[:58] + ["zz", "yy"])
    f = to_frame(
        Record("text", text=t, source_file="in.jsonl", source_line=i + 1).as_row()
        for i, t in enumerate([a, b, b + "!"])
    )
    res = run(f, DedupConfig())
    kept = set(res.kept["id"].to_list())
    assert res.kept.height == 1
    assert set(res.dropped["dup_of"].to_list()) <= kept
    exact = res.dropped.filter(pl.col("dup_method") == "exact")
    detail = json.loads(exact["drop_detail"][0])
    assert detail["survivor_id"] == f["id"][0] and detail["via_id"] == f["id"][1]
    assert detail["survivor_source"] == "in.jsonl:1" and detail["via_source"] == "in.jsonl:2"
    (cx,) = [c for c in res.clusters if c["method"] == "exact"]
    assert cx["resolved_survivor"]["id"] == f["id"][0]
    assert not any(m["kept"] for m in cx["members"])  # its survivor was dropped by MinHash later


def templated(n: int, seed: int) -> tuple[pl.DataFrame, int]:
    """Rows sharing a long template (large LSH buckets) plus near copies with one word changed."""
    rnd = random.Random(seed)
    template = " ".join(f"t{i}" for i in range(120))
    docs = [template + " " + " ".join(f"u{k}x{j}" for j in range(10)) for k in range(n)]
    for k in rnd.sample(range(n), n // 5):
        p = rnd.randrange(10)
        docs.append(template + " " + " ".join("zz" if j == p else f"u{k}x{j}" for j in range(10)))
    f = to_frame(Record("text", text=t, source_line=i + 1).as_row() for i, t in enumerate(docs))
    return f, n // 5


def test_large_buckets_keep_recall():
    # every row shares the template's band buckets (hundreds of members): with the window alone four
    # of the 60 near copies were missed; the extra signature-column groups find all of them
    f, planted = templated(300, 0)
    res = run(f, DedupConfig(methods="minhash", threshold=0.9))
    assert res.dropped.height == planted
    assert (res.dropped["dup_similarity"] >= 0.9).all()


def test_bands_and_semantic_threshold_are_validated():
    for bad in (0, -1, 129):
        with pytest.raises(ValueError, match="bands"):
            DedupConfig(bands=bad)
    assert DedupConfig(bands=128).lsh_shape() == (128, 1)
    assert DedupConfig(bands=5).lsh_shape() == (5, 25)
    for bad in (0, -0.5, 1.5):
        with pytest.raises(ValueError, match="semantic_threshold"):
            DedupConfig(semantic_threshold=bad)
    DedupConfig(semantic_threshold=1.0)
