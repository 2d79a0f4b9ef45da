"""The Ray engine on a local 2-CPU cluster gives the local engine's results: same kept rows (same
order), same dropped rows and drop details, same clusters and counts, same scores.

One Ray session for the whole module (starting one takes ~5 s)."""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import polars as pl
import pytest

pytest.importorskip("ray")

from curate.dedup.engine import DedupConfig  # noqa: E402
from curate.dedup.engine import run as dedup_run  # noqa: E402
from curate.engines import EngineSpec, run_stage  # noqa: E402
from curate.records import Record, to_frame  # noqa: E402
from curate.stage import StageResult, mark_dropped  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples"


@pytest.fixture(scope="module")
def ray_cluster():
    import sys

    from ray import cloudpickle

    from curate.engines.ray import ensure_ray, shutdown

    ensure_ray(EngineSpec("ray", ray_cpus=2))
    # the stages defined in this test module travel by value (workers cannot import test modules)
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield
    shutdown()


def spec(block_rows: int) -> EngineSpec:
    return EngineSpec("ray", ray_cpus=2, block_rows=block_rows)


def synthetic(n: int, seed: int = 7) -> pl.DataFrame:
    """English and Chinese Q&A with exact copies, near copies, chains of edits, empty and
    punctuation-only rows, plain-text rows and a numeric score column."""
    rnd = random.Random(seed)
    vocab = ["".join(rnd.choice("abcdefghijklmnop") for _ in range(rnd.randint(2, 8))) for _ in range(2000)]
    cjk = [chr(c) for c in range(0x4E00, 0x4E00 + 1500)]
    base: list[tuple[str, str]] = []
    rows = []
    chain: tuple[str, list[str]] | None = None
    for i in range(n):
        r = rnd.random()
        if base and r < 0.12:
            q, a = rnd.choice(base)
        elif base and r < 0.30:
            q, a = rnd.choice(base)
            words = a.split(" ") if " " in a else list(a)
            for _ in range(max(1, len(words) // 30)):
                words[rnd.randrange(len(words))] = rnd.choice(vocab)
            a = (" " if " " in a else "").join(words)
        elif r < 0.40:
            # a chain: each row is one edit away from the previous one (a path in the match graph)
            if chain is None or rnd.random() < 0.15:
                chain = (
                    " ".join(rnd.choice(vocab) for _ in range(5)),
                    [rnd.choice(vocab) for _ in range(90)],
                )
            words = chain[1]
            words[rnd.randrange(len(words))] = rnd.choice(vocab)
            q, a = chain[0], " ".join(words)
        elif r < 0.42:
            q, a = rnd.choice([("", ""), ("?!", "……"), ("", "!!"), ("ok", "")])
        elif rnd.random() < 0.5:
            q = " ".join(rnd.choice(vocab) for _ in range(rnd.randint(3, 12)))
            a = " ".join(rnd.choice(vocab) for _ in range(rnd.randint(15, 60)))
            base.append((q, a))
        else:
            q = "".join(rnd.choice(cjk) for _ in range(rnd.randint(4, 15)))
            a = "".join(rnd.choice(cjk) for _ in range(rnd.randint(20, 90)))
            base.append((q, a))
        if rnd.random() < 0.05:
            rec = Record(kind="text", text=q + " " + a, source_file="syn.jsonl", source_line=i + 1)
        else:
            rec = Record(kind="sft", question=q, answer=a, source_file="syn.jsonl", source_line=i + 1)
        rows.append(rec.as_row())
    f = to_frame(rows)
    return f.with_columns(
        pl.Series("score", [round(rnd.random(), 3) if rnd.random() > 0.1 else None for _ in range(n)])
    )


def strip_timing(stats):
    if isinstance(stats, dict):
        return {k: strip_timing(v) for k, v in stats.items() if "second" not in k and k != "engine"}
    return stats


def assert_same_dedup(local, distributed):
    assert distributed.kept["id"].to_list() == local.kept["id"].to_list()
    assert distributed.kept.equals(local.kept)
    assert distributed.dropped.equals(local.dropped)  # drop reasons, details, dup_* columns
    assert distributed.clusters == local.clusters
    assert strip_timing(distributed.stats) == strip_timing(local.stats)


@pytest.mark.parametrize("keep", ["first", "longest", "best:score"])
def test_dedup_same_as_local(ray_cluster, keep):
    frame = synthetic(700)
    config = DedupConfig(keep=keep)
    local = dedup_run(frame, config)
    assert (
        local.stats["exact"]["dropped"] > 20 and local.stats["minhash"]["dropped"] > 20
    )  # the data has work
    dist = run_stage(dedup_run, frame, config, spec(block_rows=60))
    assert dist.stats["engine"]["blocks"] == 12
    assert_same_dedup(local, dist)


def test_dedup_chains_take_several_rounds_and_still_match(ray_cluster):
    frame = synthetic(500, seed=3)
    config = DedupConfig(threshold=0.9, methods=("minhash",), fields=("answer",))
    local = dedup_run(frame, config)
    dist = run_stage(dedup_run, frame, config, spec(block_rows=45))
    assert_same_dedup(local, dist)
    assert max(c["size"] for c in local.clusters) >= 4
    assert dist.stats["engine"]["component_rounds"] >= 2


def test_dedup_exact_only_and_estimate_verification(ray_cluster):
    frame = synthetic(300, seed=11)
    for config in (
        DedupConfig(methods=("exact",)),
        DedupConfig(verify="estimate", threshold=0.7, num_perm=64),
    ):
        assert_same_dedup(dedup_run(frame, config), run_stage(dedup_run, frame, config, spec(block_rows=40)))


def test_dedup_samples_same_as_local(ray_cluster):
    path = SAMPLES / "ops_qa.jsonl"
    if not path.exists():
        pytest.skip("samples/ops_qa.jsonl not built")
    from curate.io import load

    frame = load([path]).frame
    config = DedupConfig()
    local = dedup_run(frame, config)
    assert local.dropped.height > 0
    assert_same_dedup(local, run_stage(dedup_run, frame, config, spec(block_rows=25)))


def test_dedup_keep_longest_counts_question_and_answer_as_locally(ray_cluster):
    # compared on the question only; "longest" still means the most question + answer characters
    frame = to_frame(
        Record(kind="sft", question=q, answer=a, source_file="l.jsonl", source_line=i + 1).as_row()
        for i, (q, a) in enumerate(
            [("hello there friend", "a much longer answer here"), ("hello there friend!!", "short")]
        )
    )
    config = DedupConfig(keep="longest", fields=("question",))
    local = dedup_run(frame, config)
    assert local.kept["answer"].to_list() == ["a much longer answer here"]
    assert_same_dedup(local, run_stage(dedup_run, frame, config, spec(block_rows=1)))


def test_dedup_large_buckets_and_survivor_chains_same_as_local(ray_cluster):
    # templated rows: LSH buckets of hundreds of members (the extra signature-column groups); then an
    # exact copy of a row MinHash drops (its dup_of is resolved to the row kept)
    rnd = random.Random(0)
    template = " ".join(f"t{i}" for i in range(120))
    docs = [template + " " + " ".join(f"u{k}x{j}" for j in range(10)) for k in range(300)]
    for k in rnd.sample(range(300), 60):
        p = rnd.randrange(10)
        docs.append(template + " " + " ".join("zz" if j == p else f"u{k}x{j}" for j in range(10)))
    words = [f"w{i}" for i in range(60)]
    docs += [" ".join(words), " ".join(words[:58] + ["zz", "yy"]), " ".join(words[:58] + ["zz", "yy"]) + "!"]
    frame = to_frame(
        Record(kind="text", text=t, source_file="t.jsonl", source_line=i + 1).as_row()
        for i, t in enumerate(docs)
    )
    for config in (DedupConfig(methods=("minhash",), threshold=0.9), DedupConfig()):
        local = dedup_run(frame, config)
        if config.methods == ("minhash",):
            assert local.dropped.height == 62  # all 60 (4 need the large-bucket groups) + the chain
        assert set(local.dropped["dup_of"].to_list()) <= set(local.kept["id"].to_list())
        assert_same_dedup(local, run_stage(dedup_run, frame, config, spec(block_rows=50)))
    assert any("resolved_survivor" in c for c in local.clusters)


def test_dedup_bad_keep_column_fails_before_the_cluster_works(ray_cluster):
    with pytest.raises(ValueError, match="no column 'nope'"):
        run_stage(dedup_run, synthetic(20), DedupConfig(keep="best:nope"), spec(block_rows=10))


def drop_short(frame: pl.DataFrame, config: dict) -> StageResult:
    """A row-local stage that also adds a column: answer length, short answers dropped."""
    frame = frame.with_columns(pl.col("answer").fill_null("").str.len_chars().alias("answer_chars"))
    short = frame["answer_chars"] < config["min_chars"]
    dropped = mark_dropped(
        frame.filter(short),
        "lengths",
        "short answer",
        [{"chars": int(c)} for c in frame.filter(short)["answer_chars"]],
    )
    return StageResult(
        frame.filter(~short), dropped, {"short": int(short.sum()), "min_chars": config["min_chars"]}
    )


def test_row_stage_same_as_local(ray_cluster):
    frame = synthetic(400, seed=5)
    config = {"min_chars": 40}
    local = drop_short(frame, config)
    dist = run_stage(drop_short, frame, config, spec(block_rows=37), kind="row")
    assert dist.kept.equals(local.kept)
    assert dist.dropped.equals(local.dropped)
    assert strip_timing(dist.stats) == local.stats
    assert dist.stats["engine"]["kind"] == "row" and dist.stats["engine"]["blocks"] == 11


class TokenScorer:
    """A model stage: loads a tokenizer from disk (once per actor, recorded in ``loads_dir``) and
    scores each row by the token count of its answer."""

    def __init__(self, config: dict):
        from tokenizers import Tokenizer

        self.tok = Tokenizer.from_file(str(Path(config["tokenizer"]) / "tokenizer.json"))
        Path(config["loads_dir"], f"{os.getpid()}-{id(self)}").touch()

    def __call__(self, frame: pl.DataFrame) -> StageResult:
        answers = frame["answer"].fill_null("").to_list()
        counts = [len(e.ids) for e in self.tok.encode_batch(answers)]
        kept = frame.with_columns(pl.Series("answer_tokens", counts, dtype=pl.Int64))
        return StageResult(kept, mark_dropped(frame.head(0), "score", []), {"scored": frame.height})


def score_tokens(frame: pl.DataFrame, config: dict) -> StageResult:
    return TokenScorer(config)(frame)


def test_model_stage_runs_in_an_actor_pool_that_loads_once(ray_cluster, tiny_models, tmp_path):
    frame = synthetic(300, seed=9)
    loads = tmp_path / "loads"
    loads.mkdir()
    config = {"tokenizer": str(tiny_models["tokenizer"]), "loads_dir": str(loads)}
    local = score_tokens(frame, config)
    for p in loads.iterdir():
        p.unlink()
    dist = run_stage(
        score_tokens,
        frame,
        config,
        EngineSpec("ray", block_rows=25, actors=2),
        kind="model",
        factory=TokenScorer,
    )
    assert dist.kept.equals(local.kept)
    assert dist.stats["scored"] == 300 and dist.stats["engine"]["actors"] == 2
    assert 1 <= len(list(loads.iterdir())) <= 2  # 12 batches, at most one model load per actor


def test_global_stage_runs_once_on_the_driver(ray_cluster):
    frame = synthetic(50)
    res = run_stage(drop_short, frame, {"min_chars": 30}, spec(10), kind="global")
    assert res.kept.equals(drop_short(frame, {"min_chars": 30}).kept)
    assert res.stats["engine"]["kind"] == "global"


def test_ingest_one_task_per_file_same_as_local(ray_cluster, tiny_datasets):
    from curate.engines.ray import load as ray_load
    from curate.io import InputError, load

    paths = [tiny_datasets[k] for k in ("alpaca", "sharegpt", "qa_gbk_csv", "kto", "text")]
    local = load(paths)
    dist = ray_load(paths, spec=spec(10))
    assert dist.frame.equals(local.frame)
    assert dist.rejects.equals(local.rejects)
    assert (dist.input_rows, dist.repaired, dist.explanations) == (
        local.input_rows,
        local.repaired,
        local.explanations,
    )
    with pytest.raises(InputError, match="nope"):
        ray_load([paths[0], Path("/nonexistent/nope.jsonl")], spec=spec(10))


def test_score_stage_in_actor_pool_same_scores(ray_cluster, tiny_models):
    from curate.score import ScoreConfig
    from curate.score import run as score_run

    frame = synthetic(64, seed=13)
    config = ScoreConfig(
        scorers=("ppl", "ifd", "reward"),
        lm=str(tiny_models["lm"]),
        reward_model=str(tiny_models["reward"]),
        device="cpu",
    )
    local = score_run(frame, config)
    dist = run_stage(score_run, frame, config, EngineSpec("ray", block_rows=32, actors=1))
    assert dist.stats["engine"]["kind"] == "model" and dist.stats["engine"]["actors"] == 1
    assert dist.kept.columns == local.kept.columns
    assert dist.dropped.height == 0
    score_cols = ["ppl", "ppl_answer", "ifd", "reward"]
    assert dist.kept.drop(score_cols).equals(local.kept.drop(score_cols))
    for col in score_cols:
        a, b = local.kept[col].to_numpy(), dist.kept[col].to_numpy()
        assert np.isclose(a, b, rtol=1e-5, atol=0, equal_nan=True).all(), col  # batch padding: last bits
    for name in ("ppl", "reward"):
        for key in ("rows", "errors", "truncated"):
            assert dist.stats[name][key] == local.stats[name][key]
        # identical rows are scored once per batch (once per run locally)
        assert local.stats[name]["scored"] <= dist.stats[name]["scored"] <= frame.height
        for key in ("ppl", "reward"):
            if key in local.stats[name]:
                assert dist.stats[name][key]["p50"] == pytest.approx(local.stats[name][key]["p50"], rel=1e-4)


def test_filter_rules_same_as_local(ray_cluster):
    path = SAMPLES / "ops_qa.jsonl"
    if not path.exists():
        pytest.skip("samples/ops_qa.jsonl not built")
    from curate.io import load
    from curate.rules.engine import run as rules_run

    frame = load([path]).frame
    config = {"rules": ["default"]}
    local = rules_run(frame, config)
    assert local.dropped.height > 0
    dist = run_stage(rules_run, frame, config, spec(block_rows=40))
    assert dist.stats["engine"]["kind"] == "row"
    assert dist.kept.equals(local.kept)  # redactions and fixes included
    assert dist.dropped.equals(local.dropped)
    assert strip_timing(dist.stats) == strip_timing(local.stats)


def test_dedup_tiny_and_odd_inputs_one_row_per_block(ray_cluster):
    rows = [("hello there", "general kenobi")] * 2 + [("", "")] * 2 + [("?!", "……"), ("?!", "……"), ("", "!!")]
    frame = to_frame(Record(kind="sft", question=q, answer=a).as_row() for q, a in rows)
    config = DedupConfig()
    for f in (frame, frame.head(1)):
        assert_same_dedup(dedup_run(f, config), run_stage(dedup_run, f, config, spec(block_rows=1)))
