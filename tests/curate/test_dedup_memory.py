"""Bounded MinHash memory: candidates streamed band by band into a union-find, shingles stored once
(spilled to disk past a limit), a bounded cache of shingle sets; the clusters are those of the
materialised candidate list."""

import random

import numpy as np
import polars as pl
import pytest

from curate.dedup import DedupConfig, run
from curate.dedup import cluster as cl
from curate.dedup.engine import parse_size
from curate.dedup.minhash import (
    PairSet,
    ShingleArrays,
    ShingleSets,
    ShingleStore,
    UnionFind,
    bands_for,
    candidate_pairs,
    signatures,
    stream_clusters,
    verify,
)
from curate.dedup.text import normalise
from curate.records import Record, to_frame


def canonical(labels: np.ndarray) -> np.ndarray:
    """Each node's smallest fellow member (-1: in no cluster), whatever the label values."""
    out = np.full(len(labels), -1, dtype=np.int64)
    for lab in np.unique(labels[labels >= 0]):
        members = np.flatnonzero(labels == lab)
        out[members] = members.min()
    return out


def templated_docs(n: int, seed: int) -> list[str]:
    """Answers reused many times under short distinct questions (large buckets), near copies, and
    unrelated rows."""
    rnd = random.Random(seed)
    answers = [
        "".join(chr(rnd.randint(0x4E00, 0x9FA5)) for _ in range(rnd.randint(60, 120))) for _ in range(n // 40)
    ]
    docs = []
    for i in range(n):
        q = "".join(chr(rnd.randint(0x4E00, 0x9FA5)) for _ in range(rnd.randint(4, 16)))
        docs.append(f"{q}？{answers[i % len(answers)]}")
    for _ in range(n // 10):
        d = list(rnd.choice(docs))
        del d[rnd.randrange(len(d))]
        docs.append("".join(d))
    rnd.shuffle(docs)
    return docs


@pytest.mark.parametrize("threshold", [0.7, 0.8])
def test_streamed_clusters_equal_the_materialised_ones(threshold):
    docs = templated_docs(400, 3)
    ss, _ = signatures(normalise(pl.Series(docs)).to_list(), 5, 128, 42)
    b, r = bands_for(threshold, 128)
    eligible = ~ss.empty
    is_new = np.ones(ss.n, dtype=bool)
    is_new[:200] = False  # "earlier batch" rows: pairs among them are not candidates
    cand = candidate_pairs(ss.sigs, b, r, eligible, is_new)
    pairs, _ = verify(ss, cand, threshold, sets=ShingleSets(ss))
    old = cl.components(ss.n, pairs[:, 0], pairs[:, 1])
    # a cache of 2,000 shingles, 10 pairs verified at a time: sets are evicted and fetched again
    sets = ShingleSets(ss, max_items=2000)
    labels, counts = stream_clusters(ss.sigs, b, r, eligible, threshold, sets, is_new=is_new, verify_block=10)
    assert np.array_equal(canonical(labels), canonical(old))
    assert counts["candidate_pairs"] == len(cand) and counts["verified_pairs"] == len(pairs)
    assert counts["candidates_exact"] and sets.items <= 2000 + 20 * 140  # one block may overshoot
    assert len(pairs) > 100 and len(cand) > len(pairs)  # the case is not trivial


def test_pair_set_remembers_until_its_limit():
    ps = PairSet(max_codes=5)
    assert ps.new(np.array([3, 1, 3])).tolist() == [1, 3]
    assert ps.new(np.array([1, 2, 4])).tolist() == [2, 4]
    assert ps.exact
    assert ps.new(np.array([4, 5, 6])).tolist() == [5, 6]  # would hold 6 codes: stops remembering
    assert not ps.exact
    assert ps.new(np.array([1])).tolist() == [1]  # seen before, returned again: verified again


def test_union_find_matches_connected_components():
    rng = np.random.default_rng(0)
    n = 500
    a, b = rng.integers(0, n, 400), rng.integers(0, n, 400)
    uf = UnionFind(n)
    for s in range(0, 400, 37):  # edges in batches, as the bands stream them
        uf.union(a[s : s + 37], b[s : s + 37])
    assert np.array_equal(canonical(uf.labels()), canonical(cl.components(n, a, b)))


def test_shingle_store_spills_to_disk_with_the_same_sets(tmp_path):
    docs = templated_docs(200, 1)
    mem = ShingleStore(max_bytes=1 << 30)
    disk = ShingleStore(max_bytes=1000, spill_dir=str(tmp_path))
    ss, _ = signatures(normalise(pl.Series(docs)).to_list(), 5, 128, 42, chunk=64, store=mem)
    signatures(normalise(pl.Series(docs)).to_list(), 5, 128, 42, chunk=64, store=disk)
    assert disk.spilled and not mem.spilled
    rows = np.array([0, 5, 63, 64, 199, 100])
    assert disk.sets(rows) == mem.sets(rows) == [ss.shingle_set(int(i)) for i in rows]
    flat, offsets = disk.arrays(rows)
    assert [set(flat[offsets[k] : offsets[k + 1]].tolist()) for k in range(len(rows))] == disk.sets(rows)
    # stored canonical: every row's shingles sorted and distinct
    assert all(
        (np.diff(flat[offsets[k] : offsets[k + 1]].astype(np.int64)) > 0).all() for k in range(len(rows))
    )
    disk.close()


def test_engine_results_do_not_depend_on_the_budget(tmp_path):
    docs = templated_docs(300, 2)
    f = to_frame(Record("text", text=t).as_row() for t in docs)
    big = run(f, DedupConfig())
    small = run(f, DedupConfig(memory_budget="64MB", spill_dir=str(tmp_path)))
    assert big.kept["id"].to_list() == small.kept["id"].to_list()
    assert big.dropped["dup_of"].to_list() == small.dropped["dup_of"].to_list()
    assert big.stats["minhash"]["dropped"] > 0


def test_memory_budget_sizes():
    assert (
        parse_size("2GB") == 2 << 30 and parse_size("512M") == 512 << 20 and parse_size("1.5 GiB") == 3 << 29
    )
    assert parse_size("100000000") == 100_000_000
    with pytest.raises(ValueError, match="memory_budget"):  # the setting's name, not its flag (issue 14)
        DedupConfig(memory_budget="lots")
    with pytest.raises(ValueError, match="at least 64MB"):
        DedupConfig(memory_budget="1MB")


def test_vectorised_jaccard_equals_the_set_jaccard(tmp_path):
    docs = templated_docs(300, 4) + ["", "a"]
    store = ShingleStore(max_bytes=2000, spill_dir=str(tmp_path))  # spilled: read through a map
    ss, _ = signatures(normalise(pl.Series(docs)).to_list(), 5, 128, 42, chunk=50, store=store)
    rng = np.random.default_rng(1)
    a, b = rng.integers(0, len(docs), 3000), rng.integers(0, len(docs), 3000)
    a[:2], b[:2] = len(docs) - 2, [len(docs) - 2, len(docs) - 1]  # two empty sets; empty vs one
    arrays = ShingleArrays(store.arrays, canonical=True)
    sets = ShingleSets(ss)
    want = np.array([sets.jaccard(int(x), int(y)) for x, y in zip(a, b, strict=True)], dtype=np.float32)
    assert np.array_equal(arrays.jaccard_many(a, b), want)
    assert store.spilled
    cand = candidate_pairs(ss.sigs, 21, 6, ~ss.empty)
    assert np.array_equal(verify(ss, cand, 0.8, sets=arrays)[0], verify(ss, cand, 0.8)[0])
    store.close()
