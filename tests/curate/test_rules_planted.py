"""The default set against planted problems (synthetic rows written for this project) and, where
../shared/data is present, against the real problems the issue names."""

from __future__ import annotations

import json

import polars as pl
import pytest

from curate.rules import apply, load_rules
from curate.rules.synthetic import BAD_KINDS, DROP_KINDS, FLAG_KINDS, planted_frame


def planted(f):
    return f["meta"].str.json_path_match("$.planted")


@pytest.fixture(scope="module")
def default_rules():
    return load_rules(["default"])


def test_default_set_meets_catch_and_keep_targets(default_rules):
    f = planted_frame(1500, seed=11)
    kept, dropped, stats = apply(f, default_rules)
    k, d = planted(kept), planted(dropped)
    bad = planted(f).is_in(DROP_KINDS)
    caught = d.is_in(DROP_KINDS).sum() / bad.sum()
    good = ~planted(f).is_in(BAD_KINDS)
    kept_good = (~k.is_in(BAD_KINDS) & (kept["flags"].list.len().fill_null(0) == 0)).sum() / good.sum()
    assert caught >= 0.95, kept.filter(k.is_in(DROP_KINDS))
    assert kept_good >= 0.97  # kept and not even flagged
    # the flag-for-review kinds are kept with the rule in `flags`; the zh set drops them
    flagged = kept.filter(k.is_in(FLAG_KINDS))
    assert flagged.height and all("lang-mismatch" in (fl or []) for fl in flagged["flags"].to_list())
    _, d_zh, _ = apply(f.filter(planted(f).is_in(FLAG_KINDS)), load_rules(["zh"]))
    assert d_zh.height == flagged.height
    # every planted kind is caught by at least one row, and every drop is explained with a span or a reason
    assert set(d.unique().to_list()) >= set(DROP_KINDS)
    for detail in dropped["drop_detail"].to_list():
        hits = json.loads(detail)
        assert hits and all(h["reason"] for h in hits)
    # fixable rows are kept, repaired
    fixed = kept.filter(k == "fixable")
    text = fixed.select(pl.concat_str(["question", "answer"], separator="\n")).to_series()
    assert not text.str.contains(r"<p>|&nbsp;|\r|\u200b|@163\.com|11010519491231002X").any()
    assert stats["pii"]["cn_id"] >= 1 and stats["pii"]["email"] >= 1


def test_strict_set_drops_at_least_as_much(default_rules):
    f = planted_frame(400, seed=5)
    _, d_default, _ = apply(f, default_rules)
    _, d_strict, _ = apply(f, load_rules(["strict"]))
    assert set(d_default["id"].to_list()) <= set(d_strict["id"].to_list())


def _load(path):
    from curate.io import load

    return load([path]).frame


def test_real_lawyer_openers_sharegpt_and_toy_repeat(shared_data, default_rules):
    legal = _load(shared_data / "lawyer-llama-legal-qa" / "legal_advice.json").head(1500)
    kept, dropped, stats = apply(legal, default_rules)
    openers = legal["answer"].str.contains(r"^\s*作为律师，我")
    assert openers.sum() > 100
    assert stats["rules"]["persona-opener"]["fired"] >= openers.sum()
    assert not kept["answer"].str.contains(r"^\s*作为律师，我").any()
    assert dropped.height / legal.height < 0.35  # the rest of the legal set survives

    share = _load(shared_data / "medicalgpt-samples" / "sharegpt_zh_1K_format.jsonl")
    kept, dropped, stats = apply(share, default_rules)
    assert stats["rules"]["identity-leak"]["fired"] >= 10
    assert stats["rules"]["empty-turn"]["fired"] >= 1
    assert not kept["answer"].str.contains("我是由OpenAI").any()

    toy = _load(shared_data / "openai-toy-chat" / "toy_chat_fine_tuning.jsonl")
    kept, dropped, _ = apply(toy, default_rules)
    banana = dropped.filter(pl.col("answer").str.len_chars() > 20000)
    assert banana.height == 1
    rules = {h["rule"] for h in json.loads(banana["drop_detail"][0])}
    assert {"degenerate-repeat", "too-long"} <= rules
    assert kept.height == toy.height - 1


def test_shipped_samples_behave(default_rules):
    """samples/ (written by another engineer, with its own labels): clean rows stay, PII is masked,
    rule-detectable junk is dropped."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "samples"
    if not (root / "labels.jsonl").exists() or not (root / "ops_qa.jsonl").exists():
        pytest.skip("samples/ not built")
    labels = {
        lab["line_or_row"]: lab
        for lab in map(json.loads, (root / "labels.jsonl").read_text(encoding="utf-8").splitlines())
        if lab["file"] == "ops_qa.jsonl"
    }
    kept, dropped, stats = apply(_load(root / "ops_qa.jsonl"), default_rules)
    fate = {}
    for fr, what in ((kept, "kept"), (dropped, "dropped")):
        for src in fr["source"].to_list():
            fate[src["line"]] = what
    clean = [
        ln
        for ln, lab in labels.items()
        if lab["planted"] in ("clean", "exact_dup", "near_dup") and ln in fate
    ]
    assert sum(fate[ln] == "kept" for ln in clean) / len(clean) >= 0.97
    # junk that rules can see (not off-topic answers, which need a model; html is repaired instead)
    junk = [
        ln
        for ln, lab in labels.items()
        if lab["planted"].startswith("junk:")
        and lab["planted"] not in ("junk:unrelated", "junk:html", "junk:mojibake")
        and ln in fate
    ]
    assert sum(fate[ln] == "dropped" for ln in junk) / len(junk) >= 0.85
    text = "\n".join(kept.select(pl.concat_str(["question", "answer"], separator="\n")).to_series().to_list())
    values = [
        lab["value"] for lab in labels.values() if lab["planted"].startswith("pii:") and lab.get("value")
    ]
    assert values and not [v for v in values if v in text]
