import random

import polars as pl

from curate.stage import drop_counts


def test_drop_counts_most_first_and_ties_by_reason():
    """Summaries, manifests and the report print these counts: the same data must give the same order
    on every run (polars' group_by order is arbitrary, so tied counts used to come out shuffled)."""
    reasons = [f"rule-{k:02d}" for k in range(40)]
    rows = ["top"] * 3 + ["second"] * 2 + reasons
    random.Random(7).shuffle(rows)
    counts = drop_counts(pl.DataFrame({"drop_reason": rows}))
    assert list(counts) == ["top", "second", *reasons]
    assert counts["top"] == 3 and counts["second"] == 2 and counts["rule-00"] == 1
    assert drop_counts(pl.DataFrame({"drop_reason": []}, schema={"drop_reason": pl.Utf8})) == {}
