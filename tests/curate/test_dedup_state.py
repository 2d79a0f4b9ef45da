import json

import pytest

from curate.dedup import DedupConfig, run
from curate.dedup.index import DedupIndex, IndexError_
from curate.records import Record, to_frame

A1 = "患者男性六十岁，反复头晕两年，血压最高一百八十毫米汞柱，平时不规律服药，近日头晕加重伴恶心，应该怎么办"
A2 = "糖尿病患者在饮食上需要注意控制总热量，少吃精制碳水化合物，多吃蔬菜和粗粮，同时规律监测血糖变化情况"


def batch(rows, file):
    return to_frame(
        Record("sft", question=q, answer=a, source_file=file, source_line=i + 2).as_row()
        for i, (q, a) in enumerate(rows)
    )


def dedup_batch(state, frame, cfg, label=None):
    with DedupIndex(state) as idx:
        idx.check(cfg)
        prior = idx.load()
        res = run(frame, cfg, prior=prior)
        idx.append(frame, res.batch, cfg, ["x"], label)
    return res


def test_new_batch_deduplicated_against_earlier_batches(tmp_path):
    state = tmp_path / "state"
    cfg = DedupConfig(methods="exact,minhash,semantic", semantic_threshold=0.9)
    b1 = batch([("头晕怎么办", A1), ("糖尿病吃什么", A2), ("头晕怎么办？", A1)], "v1.csv")
    r1 = dedup_batch(state, b1, cfg, "v1")
    assert r1.dropped.height == 1
    b2 = batch(
        [
            ("头晕怎么办！", A1),  # exact duplicate of batch 1 (after normalisation)
            ("糖尿病吃什么", A2[:-2] + "情形"),  # near duplicate of batch 1
            (
                "新的问题：感冒发烧怎么处理",
                "多喝水，注意休息，体温超过三十八度五可以服用退烧药，持续不退请就医。",
            ),
            (
                "新的问题：感冒发烧怎么处理",
                "多喝水，注意休息，体温超过三十八度五可以服用退烧药，持续不退请就医。",
            ),
        ],
        "v2.csv",
    )
    r2 = dedup_batch(state, b2, cfg, "v2")
    assert r2.kept.height + r2.dropped.height == b2.height
    d = {row["source"]["line"]: row for row in r2.dropped.iter_rows(named=True)}
    assert set(d) == {2, 3, 5}
    exact = json.loads(d[2]["drop_detail"])
    assert exact["method"] == "exact"
    assert exact["survivor_id"] == b1["id"][0]
    assert exact["survivor_source"] == "v1.csv:2"
    assert exact["survivor_batch"] == 1
    near = json.loads(d[3]["drop_detail"])
    assert (
        near["method"] == "minhash" and near["survivor_source"] == "v1.csv:3" and near["survivor_batch"] == 1
    )
    within = json.loads(d[5]["drop_detail"])
    assert within["survivor_source"] == "v2.csv:4" and "survivor_batch" not in within
    # batch 1 rows are not re-emitted; the manifest knows both batches
    assert r2.kept["source"].struct.field("file").unique().to_list() == ["v2.csv"]
    m = json.loads((state / "manifest.json").read_text())
    assert [b["label"] for b in m["batches"]] == ["v1", "v2"]
    assert [b["rows"] for b in m["batches"]] == [3, 4]
    # a third batch matches rows that were themselves new in batch 2
    b3 = batch(
        [
            (
                "新的问题：感冒发烧怎么处理？",
                "多喝水，注意休息，体温超过三十八度五可以服用退烧药，持续不退请就医。",
            )
        ],
        "v3.csv",
    )
    r3 = dedup_batch(state, b3, cfg)
    assert json.loads(r3.dropped["drop_detail"][0])["survivor_batch"] == 2


def test_parameters_must_match(tmp_path):
    state = tmp_path / "s"
    dedup_batch(state, batch([("q", A1)], "a"), DedupConfig())
    with DedupIndex(state) as idx:
        with pytest.raises(IndexError_, match="num_perm"):
            idx.check(DedupConfig(num_perm=64))
        idx.check(DedupConfig(threshold=0.7))  # the threshold may change between batches


def test_lock_refuses_a_second_writer(tmp_path):
    with DedupIndex(tmp_path / "s"):
        with pytest.raises(IndexError_, match="locked"):
            with DedupIndex(tmp_path / "s"):
                pass
