"""The diversity pass reports rows that only share a template apart from near-duplicates."""

from __future__ import annotations

import json

import numpy as np
import polars as pl

from curate.records import Record, to_frame
from curate.select import SAME_TEMPLATE, TOO_SIMILAR, SelectConfig, run


class SameVector:
    """Every text embeds to one vector: the cosine test alone cannot tell the rows apart."""

    name = "same-vector"
    last_cache_hits = 0

    def encode(self, texts, progress=None):
        v = np.ones((len(texts), 4), dtype=np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_template_rows_are_counted_apart_from_near_duplicates():
    template = "首先，{a}。其次，{b}。最后，建议您保留证据，必要时咨询律师。"
    rows = [
        (
            "离婚需要户口本吗？",
            template.format(a="离婚登记需要双方户口本和身份证", b="协议离婚须双方亲自到场"),
        ),
        (
            "工伤怎么认定？",
            template.format(a="工伤认定向社会保险行政部门申请", b="申请期限为事故发生之日起三十日内"),
        ),
        # a near copy of the first row: two characters changed
        (
            "离婚需要户口本吗?",
            template.format(a="离婚登记需要双方户口簿和身份证", b="协议离婚须双方亲自到场"),
        ),
    ]
    fr = to_frame(Record("sft", question=q, answer=a).as_row() for q, a in rows)
    fr = fr.with_columns(pl.Series("quality", [0.9, 0.5, 0.4]))
    res = run(fr, SelectConfig(target=3, diversity=0.9), embedder=SameVector())
    assert res.kept["question"].to_list() == ["离婚需要户口本吗？"]
    reasons = dict(zip(res.dropped["question"].to_list(), res.dropped["drop_reason"].to_list(), strict=True))
    assert reasons["工伤怎么认定？"] == SAME_TEMPLATE
    assert reasons["离婚需要户口本吗?"] == TOO_SIMILAR
    assert res.stats["diversity_drops"] == {"near_duplicate": 1, "template": 1, "template_kept": 0}
    detail = json.loads(res.dropped.filter(pl.col("drop_reason") == SAME_TEMPLATE)["drop_detail"][0])
    assert detail["text_overlap"] < 0.5 and detail["cosine"] >= 0.9


class FixedVectors:
    """Rows 0 and 2 embed alike (cosine 1); row 1 at cosine 0.92 to both: a template neighbour."""

    name = "fixed-vectors"
    last_cache_hits = 0

    def encode(self, texts, progress=None):
        a = np.array([1.0, 0.0], dtype=np.float32)
        b = np.array([0.92, np.sqrt(1 - 0.92**2)], dtype=np.float32)
        return np.stack([a, b, a][: len(texts)])


def test_default_keeps_template_rows_below_the_measured_cosine():
    template = "首先，{a}。其次，{b}。最后，建议您保留证据，必要时咨询律师。"
    rows = [
        (
            "离婚需要户口本吗？",
            template.format(a="离婚登记需要双方户口本和身份证", b="协议离婚须双方亲自到场"),
        ),
        (
            "工伤怎么认定？",
            template.format(a="工伤认定向社会保险行政部门申请", b="申请期限为事故发生之日起三十日内"),
        ),
        (
            "离婚需要户口本吗?",
            template.format(a="离婚登记需要双方户口簿和身份证", b="协议离婚须双方亲自到场"),
        ),
    ]
    fr = to_frame(Record("sft", question=q, answer=a).as_row() for q, a in rows)
    fr = fr.with_columns(pl.Series("quality", [0.9, 0.5, 0.4]))
    res = run(fr, SelectConfig(target=3), embedder=FixedVectors())  # --diversity auto (0.9)
    assert res.stats["template_diversity"] == 0.95
    assert res.kept["question"].to_list() == ["离婚需要户口本吗？", "工伤怎么认定？"]
    assert res.dropped["drop_reason"].to_list() == [TOO_SIMILAR]
    assert res.stats["diversity_drops"] == {"near_duplicate": 1, "template": 0, "template_kept": 1}
    # asked for: template rows dropped from an explicit cosine on
    strict = run(fr, SelectConfig(target=3, template_diversity=0.9), embedder=FixedVectors())
    assert sorted(strict.dropped["drop_reason"].to_list()) == sorted([TOO_SIMILAR, SAME_TEMPLATE])
