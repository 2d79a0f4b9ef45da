"""Shingle units of near-duplicate dedup: Latin-script text is shingled by characters across words, so
a typo changes a few of ~one shingle per character instead of five of ~one per word."""

import json
import random

import numpy as np
import polars as pl
import pytest

from curate.dedup import DedupConfig, run
from curate.dedup.index import DedupIndex, IndexError_
from curate.dedup.text import doc_keys, normalise, number_shingles, shingles, tokenize
from curate.records import Record, to_frame

WORDS = (
    "the patient reported mild pain after surgery and was given a new prescription for the next two weeks "
    "while the doctor reviewed her blood tests results which showed normal levels of sugar but a slightly "
    "high count of white cells so further checks were planned before any change of treatment could be "
    "made by the team in charge of the ward during the night shift"
).split()


def typo(text: str, rnd: random.Random) -> str:
    """One edit per 80 characters: a dropped letter, an inserted comma or a case change."""
    chars = list(text)
    for _ in range(max(1, round(len(text) / 80))):
        i = rnd.choice([k for k, c in enumerate(chars) if c.isalpha()])
        op = rnd.randrange(3)
        if op == 0:
            del chars[i]
        elif op == 1:
            chars.insert(i, ",")
        else:
            chars[i] = chars[i].swapcase()
    return "".join(chars)


def english_rows(n: int, seed: int = 0) -> list[str]:
    rnd = random.Random(seed)
    return [
        " ".join(rnd.choice(WORDS) for _ in range(rnd.randint(30, 60))).capitalize() + "." for _ in range(n)
    ]


def frame_of(texts):
    f = to_frame(Record("text", text=t).as_row() for t in texts)
    return f.with_columns(pl.Series("id", [str(i) for i in range(len(texts))]))


def test_english_typo_copies_are_found():
    rnd = random.Random(1)
    rows = english_rows(60)
    copies = [typo(t, rnd) for t in rows]
    res = run(frame_of(rows + copies), DedupConfig())
    dup_of = dict(zip(res.dropped["id"].to_list(), res.dropped["dup_of"].to_list(), strict=True))
    found = sum(1 for i in range(len(rows)) if dup_of.get(str(len(rows) + i)) == str(i))
    assert found >= 57  # >= 0.95; word 5-grams found about a fifth of them
    assert res.kept.height == len(rows)


def test_word_shingles_remain_available():
    rnd = random.Random(1)
    rows = english_rows(60)
    copies = [typo(t, rnd) for t in rows]
    res = run(frame_of(rows + copies), DedupConfig(latin="words"))
    assert res.dropped.height < 30  # what the character shingles fix
    with pytest.raises(ValueError, match="latin units"):
        DedupConfig(latin="letters")


def test_different_meaning_sentences_are_not_merged():
    pairs = [
        (
            "The central bank raised its key interest rate by a quarter point on Tuesday, citing inflation.",
            "The central bank cut its key interest rate by half a point on Friday, citing a weak labour market.",
        ),
        (
            "Shares of the software maker rose 5 percent after it reported higher quarterly profit.",
            "Shares of the chip maker fell 12 percent after it warned of lower quarterly revenue.",
        ),
        (
            "How do I reset my password if I no longer have access to my email account?",
            "How do I change my email address if I still remember my password?",
        ),
        (
            "The committee approved the budget for the new hospital wing after a long debate.",
            "The committee rejected the plan for the new school building after a short debate.",
        ),
        (
            "Take two tablets every morning with food and drink plenty of water during the day.",
            "Take one tablet every evening before sleep and avoid drinking alcohol during treatment.",
        ),
    ]
    texts = [a for a, _ in pairs] + [b for _, b in pairs]
    res = run(frame_of(texts), DedupConfig())
    assert res.dropped.height == 0


def test_mrpc_different_meaning_pairs_stay_apart(shared_data):
    lines = (
        (shared_data / "mrpc" / "msr_paraphrase_test.txt").read_text(encoding="utf-8-sig").splitlines()[1:]
    )
    pairs = [(p[3], p[4]) for p in (ln.split("\t") for ln in lines) if p[0] == "0"]
    res = run(frame_of([a for a, _ in pairs] + [b for _, b in pairs]), DedupConfig())
    final = dict(zip(res.dropped["id"].to_list(), res.dropped["dup_of"].to_list(), strict=True))
    n = len(pairs)
    merged = sum(1 for i in range(n) if final.get(str(i), str(i)) == final.get(str(n + i), str(n + i)))
    assert merged / n <= 0.03


def templated(i: int, change: int, minutes: int) -> str:
    return (
        f"Case {i}: our ingress shows 502 Bad Gateway after the change #{change}. What should I check?\n"
        f"Start with `nginx upstream` for case {i} and read the events. 502 Bad Gateway usually points "
        f"at readiness probe; adjust it and watch for {minutes} minutes."
    )


def test_rows_that_differ_only_in_numbers_stay_apart_and_their_typo_copies_are_found():
    # templated rows differing only in their numbers mean different things; with 7-character shingles
    # and no number shingles pairs of these reached a Jaccard of ~0.85 and merged
    rnd = random.Random(3)
    rows = [templated(i, rnd.randint(100, 999), rnd.randint(2, 30)) for i in range(40)]
    rows += [
        f"集群 {i} 号环境里 pod 出现 CrashLoopBackOff，先用 kubectl logs 查看第 {i} 号环境。"
        for i in range(40)
    ]
    res = run(frame_of(rows), DedupConfig())
    assert res.dropped.height == 0
    copies = [typo(t, rnd) for t in rows[:40]]
    res = run(frame_of(rows + copies), DedupConfig())
    dup_of = dict(zip(res.dropped["id"].to_list(), res.dropped["dup_of"].to_list(), strict=True))
    assert sum(dup_of.get(str(len(rows) + i)) == str(i) for i in range(40)) >= 38
    assert res.kept.height == len(rows)


def test_number_shingles():
    norm = normalise(
        pl.Series(["case 3 and case 3 again", "case 11 and case 3 again", "no digits"])
    ).to_list()
    tok = tokenize(norm, "chars")
    num, doc = number_shingles(tok, np.array([100, 100, 100]))
    # a repeated number counts once; 0.2 x 100 text shingles per distinct number
    assert np.bincount(doc, minlength=3).tolist() == [20, 40, 0]
    assert len(set(num[doc == 0].tolist()) & set(num[doc == 1].tolist())) == 20  # the shared "3"
    # all the numbers of a document: at most as many shingles as its text
    many = normalise(pl.Series([" ".join(str(k) for k in range(50))])).to_list()
    _, doc = number_shingles(tokenize(many, "chars"), np.array([60]))
    assert len(doc) == 50  # 50 numbers, at least one shingle each (0.5 x 60 // 50 = 0)
    # identifiers are text, not numbers
    ids = normalise(pl.Series(["t0 t1 python3 u5x3", "2023年 #512"])).to_list()
    _, doc = number_shingles(tokenize(ids, "chars"), np.array([100, 100]))
    assert np.bincount(doc, minlength=2).tolist() == [0, 40]  # 2 numbers, 20 each (cap 0.5 x 100 / 2 = 25)
    assert number_shingles(tokenize(norm, "words"), np.array([100, 100, 100]))[0].size == 0


def test_character_units_and_mixed_shingle_lengths():
    norm = normalise(
        pl.Series(["Python 3 的安装", "hello, world!", "中文", "python3 的安装", "ab c", "a bc"])
    )
    tok = tokenize(norm.to_list(), "chars")
    # letters and digits are units, a boundary unit stands between two Latin words, CJK as before
    assert tok.counts.tolist() == [11, 11, 2, 10, 4, 4]
    k = doc_keys(tok)
    assert k[0] != k[3] and k[4] != k[5]  # word boundaries still count
    # pure CJK text gets exactly the word-mode shingles (CJK characters are units in both modes)
    zh = normalise(pl.Series(["患者男性六十岁，反复头晕两年，血压最高一百八十毫米汞柱"])).to_list()
    a, b = shingles(tokenize(zh, "chars"), 5, 7), shingles(tokenize(zh, "words"), 5)
    assert np.array_equal(np.sort(a.hashes), np.sort(b.hashes))
    # a Latin shingle spans latin_n units: "hello world" has 11 units, so 5 shingles of 7
    sh = shingles(tokenize(normalise(pl.Series(["hello world", "hi"])).to_list(), "chars"), 5, 7)
    assert np.diff(sh.offsets).tolist() == [5, 1] and sh.short.tolist() == [False, True]


def test_an_index_of_word_shingles_is_refused_with_a_rebuild_message(tmp_path):
    state = tmp_path / "s"
    cfg = DedupConfig()
    with DedupIndex(state) as idx:
        f = frame_of(["some english text that is long enough to shingle"])
        res = run(f, cfg)
        idx.append(f, res.batch, cfg, ["x"])
    m = json.loads((state / "manifest.json").read_text())
    m["version"] = 2
    (state / "manifest.json").write_text(json.dumps(m))
    with DedupIndex(state) as idx:
        with pytest.raises(IndexError_, match="index format 2.*shingled by characters.*numbers.*Rebuild"):
            idx.check(cfg)
    m["version"] = 3
    (state / "manifest.json").write_text(json.dumps(m))
    with DedupIndex(state) as idx:
        with pytest.raises(IndexError_, match="index format 3.*numbers now add shingles.*Rebuild"):
            idx.check(cfg)
