"""The shared vocabulary's model fingerprint (curate.core.vocab.dir_fingerprint) and its four callers:
the teacher cache, the stage cache and manifests, the embedding cache and the score cache."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from curate.core import vocab


def model_tree(root: Path) -> Path:
    """A model directory exercising every fingerprint rule: small and large files, a subfolder, a
    README, a hidden file and a hidden folder (what `hf download --local-dir` leaves)."""
    (root / "1_Pooling").mkdir(parents=True)
    (root / ".cache" / "huggingface").mkdir(parents=True)
    (root / "config.json").write_bytes(b'{"hidden_size": 8}')
    (root / "README.md").write_bytes(b"# a model\n")
    (root / "1_Pooling" / "config.json").write_bytes(b'{"mean": true}')
    (root / ".gitattributes").write_bytes(b"*.bin lfs\n")
    (root / ".cache" / "huggingface" / "model.bin.metadata").write_bytes(b"commit 1234\n")
    for name, size in (("tokenizer.bin", 5 << 20), ("medium.bin", 10 << 20), ("model.bin", 70 << 20)):
        with open(root / name, "wb") as fh:  # sparse: zeros with a marker at each end and in the middle
            fh.truncate(size)
            for off in (0, size // 2, size - 8):
                fh.seek(off)
                fh.write(name.encode()[:8].ljust(8, b"."))
    return root


@pytest.fixture
def model(tmp_path, monkeypatch):
    monkeypatch.setenv("TAMIS_HASH_MEMO", str(tmp_path / "memo.sqlite"))
    return model_tree(tmp_path / "model")


def _poke(path: Path, offset: int) -> None:
    with open(path, "r+b") as fh:
        fh.seek(offset)
        fh.write(b"X")


def test_which_files_count(model):
    rel = [p.relative_to(model).as_posix() for p in vocab.fingerprint_files(model)]
    # hidden files and everything in hidden folders are left out; subfolders are not
    assert rel == [
        "1_Pooling/config.json",
        "README.md",
        "config.json",
        "medium.bin",
        "model.bin",
        "tokenizer.bin",
    ]
    assert "README.md" not in [p.name for p in vocab.fingerprint_files(model, (".md",))]
    assert vocab.fingerprint_files(model / "config.json") == [model / "config.json"]
    before = vocab.dir_fingerprint(model)
    (model / ".cache" / "huggingface" / "model.bin.metadata").write_bytes(b"commit 5678, downloaded again\n")
    (model / ".gitattributes").write_bytes(b"changed")
    assert vocab.dir_fingerprint(model) == before
    (model / "1_Pooling" / "config.json").write_bytes(b'{"mean": false}')
    assert vocab.dir_fingerprint(model) != before


def test_content_not_mtime_and_size_counts(model, tmp_path):
    before = vocab.dir_fingerprint(model)
    os.utime(model / "config.json", (1, 1))
    assert vocab.dir_fingerprint(model) == before  # touching a file is not a change
    copy = shutil.copytree(model, tmp_path / "elsewhere" / "model")
    assert vocab.dir_fingerprint(copy) == before  # nor is copying the model
    with open(model / "model.bin", "r+b") as fh:  # same ends, one byte longer
        fh.truncate((70 << 20) + 1)
    assert vocab.dir_fingerprint(model) != before


def test_large_files_by_their_ends_unless_the_caller_samples_more(model):
    before = vocab.dir_fingerprint(model)
    _poke(model / "medium.bin", 5 << 20)  # 10 MiB: hashed whole by default
    middle_of_medium = vocab.dir_fingerprint(model)
    assert middle_of_medium != before
    _poke(model / "model.bin", 35 << 20)  # 70 MiB: first and last MiB only
    assert vocab.dir_fingerprint(model) == middle_of_medium
    _poke(model / "model.bin", (70 << 20) - 100)
    assert vocab.dir_fingerprint(model) != middle_of_medium
    # the header and the seed are part of the key
    assert vocab.dir_fingerprint(model, entry="{rel}{size}") != vocab.dir_fingerprint(model)
    assert vocab.dir_fingerprint(model, seed=b"settings") != vocab.dir_fingerprint(model)


# The four cache keys as they were before one definition replaced their four copies (computed from
# model_tree by the old code): unifying changed none of them. The one fix: the teacher and stage keys
# used to include files in hidden folders (.git/, .cache/), so they only match when there is none.
OLD_KEYS = {
    "teacher": "9fcf9d2d017320a3",
    "stage": "3842cd2a1558ed8a",
    "stage_file": "beabdfde1998137e",
    "embed": "model@48cc5baecc1a",
    "score": "51a906974fb4169d",
}


def caller_keys(model: Path) -> dict[str, str]:
    from curate.augment.teacher_base import dir_fingerprint as teacher_fingerprint
    from curate.embed import _dir_fingerprint as embed_fingerprint
    from curate.pipeline import fingerprint as stage_fp
    from curate.score.common import fingerprint as score_fingerprint

    stage_fp._MODEL_FP.clear()
    return {
        "teacher": teacher_fingerprint(model),
        "stage": stage_fp.model_fingerprint(str(model))["fingerprint"],
        "stage_file": stage_fp.model_fingerprint(str(model / "config.json"))["fingerprint"],
        "embed": embed_fingerprint(model),
        "score": score_fingerprint(model, {"max_tokens": 8}),
    }


def test_cache_keys_kept_their_values(model):
    assert caller_keys(model) == OLD_KEYS


def test_every_caller_uses_the_one_definition(model, monkeypatch):
    seen = []
    real = vocab.dir_fingerprint
    monkeypatch.setattr(
        vocab, "dir_fingerprint", lambda root, **kw: seen.append(Path(root).name) or real(root, **kw)
    )
    caller_keys(model)
    assert seen == ["model", "model", "config.json", "model", "model"]


# ------------------------------------------------------------------ "how Chinese is this text"


@pytest.mark.parametrize(
    "text, share",
    [
        ("中文", 1.0),
        ("𠀀𠀁 ok", 2 / 3),  # extension B is Han; one Latin word weighs one character
        ("かなカナ only", 0.0),  # kana is not Chinese, nor a Latin word
        ("한국어", None),  # Hangul: neither side
        ("ｶﾀｶﾅ", None),  # half-width katakana: neither side
        ("", None),
        ("使用 Kubernetes 部署", 4 / 5),
    ],
)
def test_han_share(text, share):
    assert vocab.han_share(text) == (pytest.approx(share) if share is not None else None)


def test_callers_keep_their_thresholds_on_the_one_share():
    import polars as pl

    from curate import stats
    from curate.augment import common

    texts = ["中文", "使用 Kubernetes 部署 on a cluster today", "a b c d 中", "かな", "한국어", "", "𠀀 a b"]
    langs = pl.DataFrame({"t": texts}).select(stats.language_expr("t").alias("lang"))["lang"].to_list()
    for text, lang in zip(texts, langs, strict=True):
        share = vocab.han_share(text)
        want = (
            "other"
            if share is None
            else "zh"
            if share >= stats.ZH_SHARE
            else "en"
            if share <= stats.EN_SHARE
            else "mixed"
        )
        assert lang == want, text
        assert common.lang_of(text) == (
            "zh" if share is not None and share >= common.ZH_TEMPLATE_SHARE else "en"
        )
    assert common.lang_of("a b c d 中") == "zh" and langs[2] == "en"  # a fifth picks Chinese templates


def test_rule_scripts_come_from_the_vocabulary():
    import polars as pl

    from curate.rules.checks import base
    from curate.rules.checks.language import script_language

    assert base.KANA_RE == f"[{vocab.KANA_CHARS}]" and base.HANGUL_RE == f"[{vocab.HANGUL_CHARS}]"
    # half-width katakana, katakana extensions and Hangul compatibility jamo used to count as nothing
    got = script_language(pl.Series(["ｶﾀｶﾅﾃﾞｽ", "ㇰㇱㇲ", "ㅋㅋㅋ ㅎㅎ", "한국어 ㅋㅋ"])).to_list()
    assert got == ["ja", "ja", "ko", "ko"]


# ------------------------------------------------------------------ records and files


def test_record_vocabulary_is_derived_not_retyped():
    from curate.engines.ray_dedup import COMPARED_COLUMNS
    from curate.rules import model
    from curate.rules.checks.structure import REQUIRED, Empty

    assert vocab.TURN_FIELDS == ("question", "answer", "chosen", "rejected")
    assert vocab.RESPONSE_FIELDS == ("answer", "chosen", "text")
    assert COMPARED_COLUMNS == ("kind", "history", "question", "answer", "chosen", "text")
    assert model.SCALAR_FIELDS == ("system", *vocab.TEXT_FIELDS)
    assert model.ALIASES["turns"] == ("question", "answer", "chosen", "rejected", "history")
    assert {f: set(k) for f, k in REQUIRED.items()} == {
        "question": {"sft", "kto", "preference"},
        "answer": {"sft", "kto"},
        "chosen": {"preference"},
        "rejected": {"preference"},
        "text": {"text"},
    }
    assert Empty.default_fields == (*vocab.TEXT_FIELDS, "history")


def test_default_output_needs_the_stage_registry(monkeypatch):
    import curate.stages  # noqa: F401  (fills the suffix table)
    from curate.io import writers

    assert writers.default_output(Path("d/data.deduped.jsonl.gz"), "filter") == Path("d/data.filtered.jsonl")
    with pytest.raises(KeyError, match="unknown stage"):
        writers.default_output(Path("data.jsonl"), "nonesuch")
    monkeypatch.setattr(writers, "STAGE_SUFFIX", {})  # as if curate.stages had not been imported
    with pytest.raises(KeyError, match="registry"):
        writers.default_output(Path("data.jsonl"), "dedup")


def test_default_report_output(tmp_path):
    from curate.io.writers import default_report_output

    assert default_report_output(tmp_path) == tmp_path / "report.html"
    assert default_report_output(tmp_path / "data.curated.jsonl") == tmp_path / "data.report.html"
    assert default_report_output(tmp_path / "recipe.yaml") == tmp_path / "recipe.report.html"
