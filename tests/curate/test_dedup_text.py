import numpy as np
import polars as pl
import pytest

from curate.dedup.minhash import bands_for, candidate_probability
from curate.dedup.text import doc_keys, fields_for, normalise, shingles, tokenize


def keys(texts):
    return doc_keys(tokenize(normalise(pl.Series(texts)).to_list()))


def test_normalisation_folds_width_case_space_and_punctuation():
    k = keys(
        [
            "Ｐｙｔｈｏｎ ３ 的安装？",
            "python 3的安装?",
            "PYTHON  3 ，的 安装",
            "python 3 的安裝",
            "python3 的安装",
        ]
    )
    assert k[0] == k[1] == k[2]
    assert k[3] != k[0]  # a different character (traditional 裝) is a different text
    assert k[4] != k[0]  # word boundaries in Latin text are kept: "python3" is not "python 3"


def test_units_cjk_chars_and_latin_words():
    tok = tokenize(normalise(pl.Series(["Python 3 的安装", "hello, world!", "中文"])).to_list())
    assert tok.counts.tolist() == [5, 2, 2]


def test_empty_and_punctuation_only_texts():
    k = keys(["", "   ", "？？？", "???", "!!!", "😀"])
    assert k[0] == 0 and k[1] == 0  # empty: not compared
    assert k[2] != 0 and k[2] == k[3]  # full-width and ASCII question marks are the same after NFKC
    assert k[4] != k[2] and k[5] != 0


def test_short_texts_become_one_shingle():
    tok = tokenize(normalise(pl.Series(["短", "一二三四五六七", "a b", ""])).to_list())
    sh = shingles(tok, 5)
    per_doc = np.diff(sh.offsets)
    assert per_doc.tolist() == [1, 3, 1, 0]
    assert sh.short.tolist() == [True, False, True, False]


def test_fields_parsing():
    assert fields_for("both") == ("question", "answer")
    assert fields_for("answer") == ("answer",)
    with pytest.raises(ValueError):
        fields_for("title")


@pytest.mark.parametrize("threshold", [0.5, 0.7, 0.8, 0.9, 0.95])
def test_bands_reach_candidate_recall(threshold):
    b, r = bands_for(threshold, 128)
    assert b * r <= 128
    assert candidate_probability(threshold, b, r) >= 0.995
    # one more row per band would fall below the target: the shape is the tightest that meets it
    assert candidate_probability(threshold, 128 // (r + 1), r + 1) < 0.995


def test_japanese_punctuation_is_a_separator():
    k = keys(
        [
            "ジョン・スミス",
            "ジョン スミス",
            "ジョン゠スミス",
            "ジョン゛スミス゜",
            "ジョンスミス",
            "ジョン・スミ",
        ]
    )
    assert k[0] == k[1] == k[2] == k[3] == k[4]
    assert k[5] != k[0]
    tok = tokenize(normalise(pl.Series(["・゠゛゜"])).to_list())
    assert tok.counts.tolist() == [0]


def test_field_boundaries_count():
    from curate.dedup.text import compare_text, content_lengths, display_series
    from curate.records import Record, to_frame

    f = to_frame(
        [
            Record("sft", question="What is", answer="Python").as_row(),
            Record("sft", question="What", answer="is Python").as_row(),
            Record("sft", question="", answer="").as_row(),
            Record("sft", question="?!", answer="").as_row(),
        ]
    )
    raw = compare_text(f, ("question", "answer"))
    k = doc_keys(tokenize(normalise(raw).to_list()))
    assert k[0] != k[1]  # the same words, split differently between question and answer
    assert k[2] == 0 and k[3] != 0  # a separator alone is no unit: empty rows stay empty
    assert display_series(raw).to_list()[:2] == ["What is\nPython", "What\nis Python"]
    assert content_lengths(f, raw).tolist() == [13, 13, 0, 2]
    # decontamination keeps plain concatenation
    assert compare_text(f, ("question", "answer"), sep="\n").to_list()[0] == "What is\nPython"
