"""The embedding cache: a second select (or any encode of the same texts with the same model) embeds
nothing again; an edited text or another model misses."""

from __future__ import annotations

import numpy as np
import pytest

from curate.embed import get_embedder
from curate.embed_cache import EmbeddingCache, text_key
from curate.records import Record, to_frame
from curate.select import SelectConfig, run


@pytest.fixture
def counting(monkeypatch, tmp_path):
    monkeypatch.setenv("TAMIS_EMBED_CACHE", str(tmp_path / "emb.sqlite"))
    emb = get_embedder("use")
    calls: list[int] = []
    real = emb._encode_batch

    def encode_batch(texts):
        calls.append(len(texts))
        return real(texts)

    monkeypatch.setattr(emb, "_encode_batch", encode_batch)
    return emb, calls


def test_second_encode_embeds_nothing_and_returns_the_same_vectors(counting):
    emb, calls = counting
    texts = [f"如何排查第 {i} 号节点的磁盘压力？" for i in range(10)] + ["", None]
    first = emb.encode(texts)
    assert sum(calls) == 10
    calls.clear()
    second = emb.encode(texts)
    assert calls == [] and emb.last_cache_hits == 10
    np.testing.assert_array_equal(first, second)
    third = emb.encode([*texts[:9], "an edited question"])
    assert sum(calls) == 1 and emb.last_cache_hits == 9
    np.testing.assert_array_equal(third[:9], first[:9])


def test_vectors_are_keyed_by_model(tmp_path):
    cache = EmbeddingCache(tmp_path / "c.sqlite")
    cache.put_many({text_key("x"): np.ones(4, dtype=np.float32)}, "model-a")
    assert cache.get_many([text_key("x")], "model-b", 4) == {}
    assert cache.get_many([text_key("x")], "model-a", 8) == {}  # another shape: not this model
    assert list(cache.get_many([text_key("x")], "model-a", 4)) == [text_key("x")]


def test_select_rerun_uses_the_cache(counting):
    emb, calls = counting
    fr = to_frame(
        Record("sft", question=f"question {i} about pods?", answer=f"answer {i} " * (i + 1)).as_row()
        for i in range(12)
    )
    cfg = SelectConfig(target=6, diversity=0.95)
    first = run(fr, cfg, embedder=emb)
    assert sum(calls) == 12 and first.stats["embed_cache_hits"] == 0
    calls.clear()
    again = run(fr, cfg, embedder=emb)
    assert calls == [] and again.stats["embed_cache_hits"] == 12
    assert again.kept["id"].to_list() == first.kept["id"].to_list()


def test_cache_off(monkeypatch):
    monkeypatch.setenv("TAMIS_EMBED_CACHE", "off")
    assert not EmbeddingCache().enabled
