"""`curate score` and `curate quality` end to end: columns, model metadata, cache reuse on a grown
file, resume after an interruption, clear errors, and the embedded default models."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from curate.cli import main
from curate.records import Record, to_frame

ROOT = Path(__file__).resolve().parents[2]
EMBEDDED = ROOT / "samples" / "models"


def _write_qa(path: Path, n: int, start: int = 0) -> None:
    lines = []
    for i in range(start, start + n):
        answer = "" if i == 3 else f"Restart deployment {i} with kubectl rollout restart deploy/app{i}."
        lines.append(json.dumps({"question": f"How do I restart app{i}?", "answer": answer}))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.fixture(scope="module")
def quality_model(tmp_path_factory):
    from curate.score.quality import TrainParams, fasttext_text, train_classifier

    out = tmp_path_factory.mktemp("ft") / "q.ftz"
    good = [
        fasttext_text(
            {
                "kind": "sft",
                "question": f"restart app{i}",
                "answer": f"kubectl rollout restart deploy/app{i} then watch",
            }
        )
        for i in range(40)
    ]
    bad = [
        fasttext_text({"kind": "sft", "question": f"restart app{i}", "answer": w})
        for i, w in enumerate(["ok", "no", "sorry", "抱歉"] * 10)
    ]
    train_classifier(good, bad, out, TrainParams(epoch=10, dim=8, bucket=2000, cutoff=1000, holdout=0.2))
    return out


def _score(args, catch=False):
    res = CliRunner().invoke(main, ["score", *args, "--json"], catch_exceptions=catch)
    return res, (
        json.loads(res.stdout.strip().splitlines()[-1])
        if res.exit_code in (0, 1) and res.stdout.strip()
        else None
    )


def test_score_cli_columns_metadata_and_cache(tmp_path, tiny_models, quality_model):
    data = tmp_path / "qa.jsonl"
    _write_qa(data, 6)
    out = tmp_path / "qa.scored.parquet"
    common = [
        "--lm",
        str(tiny_models["lm"]),
        "--reward-model",
        str(tiny_models["reward"]),
        "--quality-model",
        str(quality_model),
        "-o",
        str(out),
    ]
    res, summary = _score([str(data), *common])
    assert res.exit_code == 0, res.output
    frame = pl.read_parquet(out)
    for col in (
        "ppl",
        "ppl_answer",
        "ifd",
        "ppl_tokens",
        "ppl_error",
        "reward",
        "reward_error",
        "quality",
        "quality_error",
    ):
        assert col in frame.columns
    assert frame.height == 6 and frame["ppl"].null_count() == 1
    assert frame.filter(pl.col("ppl").is_null())["ppl_error"].to_list() == ["empty answer"]
    models = json.loads((tmp_path / "qa.scored.models.json").read_text())
    assert set(models) == {"ppl", "reward", "quality"}
    assert summary["score_models"]["ppl"]["fingerprint"] == models["ppl"]["fingerprint"]
    assert summary["ppl"]["scored"] == 6 and summary["ppl"]["from_cache"] == 0
    assert (tmp_path / "qa.scored.cache.sqlite").is_file()

    # the file grows: only the new rows are scored, the old ones come from the cache unchanged
    _write_qa(data, 9)
    res, summary = _score([str(data), *common])
    assert res.exit_code == 0, res.output
    for name in ("ppl", "reward", "quality"):
        assert summary[name]["scored"] == 3 and summary[name]["from_cache"] == 6
    grown = pl.read_parquet(out)
    assert grown.head(6)["ppl"].to_list() == frame["ppl"].to_list()


def test_interrupted_run_resumes(tmp_path, tiny_models):
    from curate.score import score_frame
    from curate.score.cache import ScoreCache
    from curate.score.perplexity import PerplexityScorer, PplConfig

    scorer = PerplexityScorer(PplConfig(str(tiny_models["lm"]), device="cpu"))
    frame = to_frame(
        [Record("sft", question=f"q{i}?", answer=f"answer number {i}").as_row() for i in range(7)]
    )
    calls = {"n": 0}
    real = scorer.score_rows

    def flaky(rows, advance=lambda n: None):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(rows, advance)

    scorer.score_rows = flaky
    with ScoreCache(tmp_path / "c.sqlite") as cache:
        with pytest.raises(KeyboardInterrupt):
            score_frame(frame, scorer, cache, chunk_rows=2)
        assert cache.count("ppl") == 4  # two chunks were committed before the interruption
    scorer.score_rows = real
    with ScoreCache(tmp_path / "c.sqlite") as cache:
        out, stats = score_frame(frame, scorer, cache, chunk_rows=2)
    assert stats["scored"] == 3 and stats["from_cache"] == 4
    fresh, _ = score_frame(frame, scorer, None)
    assert out["ppl"].to_list() == pytest.approx(fresh["ppl"].to_list(), rel=1e-6)


def test_score_cli_errors(tmp_path, tiny_models):
    data = tmp_path / "qa.jsonl"
    _write_qa(data, 2)
    res = CliRunner().invoke(
        main, ["score", str(data), "--scorers", "ppl", "--lm", str(tmp_path / "missing")]
    )
    assert res.exit_code == 2 and "does not exist" in res.output
    res = CliRunner().invoke(main, ["score", str(data), "--scorers", "ppl,bogus"])
    assert res.exit_code == 2 and "unknown scorer" in res.output
    res = CliRunner().invoke(
        main, ["score", str(data), "--scorers", "reward", "--reward-model", str(tiny_models["lm"])]
    )
    assert res.exit_code == 2 and "not a reward model" in res.output
    res = CliRunner().invoke(main, ["score", str(data), "--scorers", "quality", "--quality-model", str(data)])
    assert res.exit_code == 2 and "not a fastText model" in res.output


def test_quality_train_and_eval_cli(tmp_path):
    good = [
        {
            "question": f"how to scale app{i}",
            "answer": f"kubectl scale deploy/app{i} --replicas=3 and check the hpa",
        }
        for i in range(30)
    ]
    bad = [
        {"question": f"how to scale app{i}", "answer": a}
        for i, a in enumerate(["ok", "no idea", "sorry I cannot", "???", "抱歉"] * 6)
    ]
    kept = tmp_path / "d.filtered.jsonl"
    kept.write_text("\n".join(json.dumps(r) for r in good) + "\n")
    (tmp_path / "d.filtered.dropped.jsonl").write_text("\n".join(json.dumps(r) for r in bad) + "\n")
    model = tmp_path / "q.ftz"
    args = ["--epoch", "10", "--dim", "8", "--bucket", "2000", "--cutoff", "1000"]
    res = CliRunner().invoke(
        main, ["quality", "train", "--from-filter", str(kept), "-o", str(model), *args, "--json"]
    )
    assert res.exit_code == 0, res.output
    info = json.loads(res.stdout.strip().splitlines()[-1])
    assert info["rows"]["good"] == 30 and info["rows"]["bad"] == 30
    assert info["heldout"]["auc"] is not None and model.is_file()
    res = CliRunner().invoke(
        main,
        [
            "quality",
            "eval",
            "-m",
            str(model),
            "--pos",
            str(kept),
            "--neg",
            str(tmp_path / "d.filtered.dropped.jsonl"),
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout.strip().splitlines()[-1])["eval"]["auc"] > 0.9
    res = CliRunner().invoke(main, ["quality", "train", "--pos", str(kept), "-o", str(model)])
    assert res.exit_code == 2
    res = CliRunner().invoke(
        main, ["quality", "train", "--pos", str(kept), "--neg", str(kept), "-o", str(kept)]
    )
    assert res.exit_code == 2 and "refusing to overwrite" in res.output


@pytest.mark.skipif(not (EMBEDDED / "lm" / "config.json").is_file(), reason="embedded models not built")
def test_embedded_defaults_score_the_samples_offline(tmp_path):
    sample = ROOT / "samples" / "ops_qa.jsonl"
    out = tmp_path / "ops.scored.jsonl"
    res, summary = _score([str(sample), "-o", str(out)])
    assert res.exit_code in (0, 1), res.output  # 1: the samples plant unreadable rows on purpose
    assert set(summary["score_models"]) == {"ppl", "reward", "quality"}
    frame = pl.read_ndjson(out)
    assert frame["ifd"].drop_nulls().len() > 0.9 * frame.height
    assert frame["quality"].drop_nulls().len() > 0.9 * frame.height


def test_transient_model_errors_are_not_cached(tmp_path, tiny_models):
    """An out-of-memory batch is reported, but the next run scores the rows again; deterministic
    per-row errors (an empty answer) stay cached."""
    from curate.score import score_frame
    from curate.score.cache import ScoreCache
    from curate.score.perplexity import PerplexityScorer, PplConfig

    scorer = PerplexityScorer(PplConfig(str(tiny_models["lm"]), device="cpu"))
    frame = to_frame(
        [
            Record("sft", question="What is DNS?", answer="A naming system.").as_row(),
            Record("sft", question="q", answer=" ").as_row(),
        ]
    )
    real = scorer.model.forward

    def oom(*a, **k):
        raise RuntimeError("CUDA out of memory (simulated)")

    scorer.model.forward = oom
    try:
        with ScoreCache(tmp_path / "c.sqlite") as cache:
            out, stats = score_frame(frame, scorer, cache)
            assert out["ppl_error"][0].startswith("model error:") and out["ppl"][0] is None
            assert cache.count("ppl") == 1  # only the empty answer
    finally:
        scorer.model.forward = real
    with ScoreCache(tmp_path / "c.sqlite") as cache:
        out, stats = score_frame(frame, scorer, cache)
    assert stats["scored"] == 1 and stats["from_cache"] == 1
    assert out["ppl"][0] > 1 and out["ppl_error"][0] is None
    assert out["ppl_error"][1] == "empty answer"
    # a model error stored by an older version is not trusted either: the row is scored again
    from curate.score.common import row_key

    row = frame.to_dicts()[0]
    key = row_key(row["id"], scorer.payload(row))
    with ScoreCache(tmp_path / "old.sqlite") as cache:
        cache.put_many({key: {"error": "model error: OutOfMemoryError: x"}}, "ppl", scorer.fingerprint)
        out, stats = score_frame(frame.head(1), scorer, cache)
    assert stats["scored"] == 1 and out["ppl"][0] > 1


def test_fingerprint_hashes_whole_weight_files_and_memoises(tmp_path, monkeypatch):
    """A retrain that changes only tensors in the middle of a large weight file changes the fingerprint;
    an unchanged file is read once, later runs use the memo."""
    import numpy as np
    from safetensors.numpy import save_file

    from curate.score import common

    monkeypatch.setenv("TAMIS_HASH_MEMO", str(tmp_path / "memo.sqlite"))
    model = tmp_path / "m"
    model.mkdir()
    (model / "config.json").write_text("{}")
    tensors = {n: np.zeros((1 << 20,), np.float32) for n in ("a.weight", "b.weight", "c.weight")}
    save_file(tensors, str(model / "model.safetensors"))  # 12 MiB: above the inline-hash size
    reads = []
    real = common._sha256_file
    monkeypatch.setattr(common, "_sha256_file", lambda p: reads.append(p) or real(p))
    f1 = common.fingerprint(model, {})
    assert common.fingerprint(model, {}) == f1 and len(reads) == 1  # memo hit: not read again
    tensors["b.weight"][:] = 1.0
    save_file(tensors, str(model / "model.safetensors"))
    f2 = common.fingerprint(model, {})
    assert f2 != f1 and len(reads) == 2
    assert common.fingerprint(model, {"max_tokens": 8}) != f2
