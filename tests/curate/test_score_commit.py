"""The score cache commits every few seconds of work, not every 512 rows: Ctrl-C at 264/400 rows
keeps what was scored."""

from __future__ import annotations

import time

import pytest

import curate.score as score_mod
from curate.records import Record, to_frame
from curate.score import score_frame
from curate.score.cache import ScoreCache


class SlowScorer:
    name = "quality"
    fingerprint = "slow-test"

    def __init__(self, interrupt_after: int):
        self.done = 0
        self.interrupt_after = interrupt_after

    def payload(self, row):
        return row.get("answer")

    def score_rows(self, rows, advance=lambda n: None):
        out = []
        for _ in rows:
            if self.done >= self.interrupt_after:
                raise KeyboardInterrupt
            time.sleep(0.001)
            self.done += 1
            out.append({"quality": 0.5})
        advance(len(rows))
        return out


def test_interrupted_scoring_keeps_rows_scored_seconds_ago(tmp_path, monkeypatch):
    monkeypatch.setattr(score_mod, "COMMIT_SECONDS", 0.05)  # ~50 rows per chunk at 1 ms a row
    frame = to_frame(Record("sft", question=f"q{i}?", answer=f"a{i}").as_row() for i in range(400))
    with ScoreCache(tmp_path / "c.sqlite") as cache:
        with pytest.raises(KeyboardInterrupt):
            score_frame(frame, SlowScorer(interrupt_after=264), cache)
        kept = cache.count("quality")
    assert 200 <= kept <= 264  # all but the chunk in flight (before: 0, one commit per 512 rows)
