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


WORDS = [f"w{i}" for i in range(60)]


def text_batch(texts, file):
    return to_frame(
        Record("text", text=t, source_file=file, source_line=i + 1).as_row() for i, t in enumerate(texts)
    )


def test_a_batch_without_minhash_is_still_compared_by_minhash_later(tmp_path):
    state = tmp_path / "s"
    base = " ".join(WORDS)
    dedup_batch(state, text_batch([base], "a"), DedupConfig(methods="exact"))
    res = dedup_batch(state, text_batch([base + " today"], "b"), DedupConfig(methods="exact,minhash"))
    assert res.dropped.height == 1
    detail = json.loads(res.dropped["drop_detail"][0])
    assert detail["method"] == "minhash" and detail["survivor_batch"] == 1


def test_a_dropped_earlier_row_is_never_named_as_survivor(tmp_path):
    # batch 1: D is dropped as a near copy of K (Jaccard 0.81); batch 2: N matches D (0.75) but not K
    # (Jaccard of word 5-grams: the chain is built for word shingles)
    k = " ".join(WORDS)
    d = " ".join(WORDS[:54] + ["x1", "x2", "x3", "x4", "x5", "x6"])
    nn = " ".join(WORDS[:51] + ["x1", "x2", "x3", "x4", "x5", "x6", "y1", "y2", "y3"])
    cfg = DedupConfig(threshold=0.75, latin="words")
    state = tmp_path / "s"
    b1 = text_batch([k, d], "a")
    r1 = dedup_batch(state, b1, cfg)
    assert r1.dropped["dup_of"].to_list() == [b1["id"][0]]
    r2 = dedup_batch(state, text_batch([nn], "b"), cfg)
    assert r2.dropped["dup_of"].to_list() == [b1["id"][0]]  # K, not the dropped D
    detail = json.loads(r2.dropped["drop_detail"][0])
    assert detail["survivor_source"] == "a:1" and detail["survivor_batch"] == 1
    assert detail["via_id"] == b1["id"][1] and detail["via_batch"] == 1
    (c,) = r2.clusters
    assert c["resolved_survivor"]["id"] == b1["id"][0]
    assert [m["kept"] for m in c["members"]] == [False, False]  # D (dropped in batch 1), N


class FakeEmbedder:
    """Embeds by the first word (one-hot in 4 dimensions)."""

    def __init__(self, name):
        self.name = self.fingerprint = name

    def encode(self, texts, progress=None):
        import numpy as np

        out = np.zeros((len(texts), 4), np.float32)
        for i, t in enumerate(texts):
            out[i, {"alpha": 0, "beta": 1}.get(t.split()[0], 2)] = 1
        return out


def test_embeddings_of_the_current_model_are_compared_the_others_reported(tmp_path):
    state = tmp_path / "s"
    cfg = DedupConfig(methods="semantic", semantic_threshold=0.9)

    def sem(texts, model):
        with DedupIndex(state) as idx:
            prior = idx.load(emb_model=model)
            res = run(text_batch(texts, model), cfg, prior=prior, embedder=FakeEmbedder(model))
            idx.append(text_batch(texts, model), res.batch, cfg, ["x"])
        return res

    sem(["alpha one"], "A")
    r2 = sem(["beta two"], "B")
    assert r2.kept.height == 1
    assert any("embedded with A, not B" in w for w in r2.stats["warnings"])
    r3 = sem(["beta three"], "B")
    assert r3.dropped.height == 1  # batch 2 (model B) is compared although batch 1 used A
    assert json.loads(r3.dropped["drop_detail"][0])["survivor_batch"] == 2
    assert any("1 earlier rows were embedded with A" in w for w in r3.stats["warnings"])
    # a batch that never ran the semantic step is reported, not silently skipped
    dedup_batch(state, text_batch(["gamma four"], "c"), DedupConfig(methods="exact"))
    r5 = sem(["gamma five"], "B")
    assert any("1 earlier kept rows have no embeddings" in w for w in r5.stats["warnings"])


def test_an_index_of_an_earlier_key_version_is_refused(tmp_path):
    state = tmp_path / "s"
    dedup_batch(state, batch([("q", A1)], "a"), DedupConfig())
    m = json.loads((state / "manifest.json").read_text())
    m["version"] = 1
    m["params"]["normalisation"] = "nfkc-lower-units-v1"
    (state / "manifest.json").write_text(json.dumps(m))
    with DedupIndex(state) as idx:
        with pytest.raises(IndexError_, match="earlier version of tamis.*Rebuild"):
            idx.check(DedupConfig())


def test_a_staged_batch_joins_the_index_only_at_commit(tmp_path):
    state = tmp_path / "s"
    cfg = DedupConfig()
    f = batch([("q", A1)], "a")
    with DedupIndex(state) as idx:
        res = run(f, cfg, prior=idx.load())
        staged = idx.stage(f, res.batch, cfg, ["x"])
        assert idx.load() is None and not (state / "batch-000001").exists()
        # a run that died after renaming its batch folder, before the manifest listed it
        staged.tmp.rename(state / "batch-000001")
    with DedupIndex(state) as idx:
        assert idx.load() is None
        res = run(f, cfg, prior=None)
        entry = idx.append(f, res.batch, cfg, ["x"])  # the orphan folder is replaced
        assert entry["batch"] == 1 and idx.load().n == 1
        assert [p.name for p in state.iterdir() if p.name.startswith(("batch-", ".batch-"))] == [
            "batch-000001"
        ]


def test_model_directory_fingerprint_covers_every_weight_file(tmp_path):
    from curate.embed import _dir_fingerprint

    d = tmp_path / "model"
    (d / "1_Pooling").mkdir(parents=True)
    (d / "modules.json").write_text("[]")
    (d / "1_Pooling" / "config.json").write_text('{"mean": true}')
    (d / "pytorch_model.bin").write_bytes(b"\0" * 1000)
    big = d / "0_Transformer" / "model.onnx"
    big.parent.mkdir()
    big.write_bytes(b"\1" * (9 << 20))
    seen = {_dir_fingerprint(d)}
    (d / "pytorch_model.bin").write_bytes(b"\0" * 999 + b"\1")  # same size, other weights
    seen.add(_dir_fingerprint(d))
    (d / "1_Pooling" / "config.json").write_text('{"mean": false}')
    seen.add(_dir_fingerprint(d))
    with open(big, "r+b") as fh:  # a change in the middle of a large file
        fh.seek(5 << 20)
        fh.write(b"\2" * (1 << 20))
    seen.add(_dir_fingerprint(d))
    assert len(seen) == 4
    (d / "README.md").write_text("notes")
    assert _dir_fingerprint(d) in seen  # documentation does not count
