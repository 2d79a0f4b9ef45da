"""`curate refresh` finds a stage's incremental state by capability (``incremental`` and ``state()``),
never by name, and drives the state's one cycle: open (the earlier rows as ``ctx.prior``) -> stage the
new batch -> commit it with the version; a batch staged by a refresh that fails before its commit is
discarded."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import pytest

from curate import stages
from curate.core.stage import Scope, Stage
from curate.pipeline import publish
from curate.pipeline.recipe import load_recipe
from curate.pipeline.refresh import read_current, refresh, version
from curate.stage import StageResult, mark_dropped

EVENTS: list[tuple] = []


@dataclass
class SeenConfig:
    reason: str = field(default="seen earlier", metadata={"help": "The drop reason."})


class SeenState:
    """A toy incremental state: the questions of each committed batch, in one JSON file."""

    def __init__(self, path: Path, config: SeenConfig):
        self.file = Path(path) / "seen.json"
        self.prior: set[str] | None = None
        self.staged: set[str] | None = None

    def _batches(self) -> list[list[str]]:
        return json.loads(self.file.read_text()) if self.file.is_file() else []

    def __enter__(self) -> SeenState:
        self.file.parent.mkdir(parents=True, exist_ok=True)
        self.prior = {q for batch in self._batches() for q in batch}
        EVENTS.append(("open", len(self.prior)))
        return self

    def stage(
        self, frame: pl.DataFrame, batch: set[str], inputs: list[str], label: str | None = None
    ) -> None:
        self.staged = batch
        EVENTS.append(("stage", label, len(batch)))

    def commit(self) -> None:
        if self.staged is not None:
            self.file.write_text(json.dumps([*self._batches(), sorted(self.staged)]))
            self.staged = None
            EVENTS.append(("commit",))

    def batches(self) -> int:
        return len(self._batches())

    def rollback(self, batches: int) -> list[str]:
        if len(self._batches()) <= batches:
            return []
        self.file.write_text(json.dumps(self._batches()[:batches]))
        EVENTS.append(("rollback", batches))
        return [str(self.file)]

    def __exit__(self, *exc) -> None:
        if self.staged is not None:
            self.staged = None
            EVENTS.append(("discard",))


class Seen(Stage):
    name = "seen"
    suffix = "unseen"
    scope = Scope.SET
    help = "Drop rows whose question an earlier batch had (a toy incremental stage)."
    module = __name__
    config = f"{__name__}:SeenConfig"
    incremental = True

    @classmethod
    def state(cls, path, config) -> SeenState:
        return SeenState(path, config)

    def run(self, frame: pl.DataFrame) -> StageResult:
        prior = sorted(self.ctx.prior or ())
        mask = ~frame["question"].is_in(prior)
        result = StageResult(
            frame.filter(mask), mark_dropped(frame.filter(~mask), "seen", self.config_value.reason), {}
        )
        result.batch = set(frame["question"].to_list())
        return result


@pytest.fixture
def world(tmp_path: Path):
    stages.register(Seen, before="export")
    EVENTS.clear()
    rows = [{"question": f"q{i}", "answer": f"a{i}"} for i in range(3)]
    (tmp_path / "b1.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    # a new row (new id) with a question of batch 1, and a new question
    more = [{"question": "q0", "answer": "another answer"}, {"question": "q9", "answer": "a9"}]
    (tmp_path / "b2.jsonl").write_text("".join(json.dumps(r) + "\n" for r in more))
    (tmp_path / "recipe.yaml").write_text(
        "name: toy\ninputs: [b1.jsonl]\nstages:\n  - seen: {}\noutputs:\n  data: out/data.jsonl\nstate: state\n"
    )
    yield tmp_path
    stages.unregister("seen")


def test_refresh_drives_the_state_cycle_of_an_incremental_stage(world: Path):
    recipe = world / "recipe.yaml"
    first = refresh(load_recipe(recipe), quiet=True).summary
    assert first["rows"] == 3
    assert EVENTS == [("open", 0), ("stage", "v000001", 3), ("commit",)]
    EVENTS.clear()
    second = refresh(load_recipe(recipe), [world / "b2.jsonl"], quiet=True).summary
    assert EVENTS == [("open", 3), ("stage", "v000002", 2), ("commit",)]
    assert second["new_dropped_by_reason"] == {"seen earlier": 1} and second["rows"] == 4
    assert read_current(world / "state")["index_batches"] == {"seen": 2}
    seen = json.loads((world / "state" / "index" / "g1" / "seen" / "seen.json").read_text())
    assert seen == [["q0", "q1", "q2"], ["q0", "q9"]]


def test_a_refresh_failing_before_its_commit_discards_the_staged_batch(world: Path, monkeypatch):
    recipe = world / "recipe.yaml"
    refresh(load_recipe(recipe), quiet=True)
    seen = world / "state" / "index" / "g1" / "seen" / "seen.json"
    before = seen.read_text()
    EVENTS.clear()

    def broken(*a, **k):
        raise OSError(28, "No space left on device", "version folder")

    monkeypatch.setattr(version, "fill", broken)  # the version is never named, the batch never committed
    with pytest.raises(OSError):
        refresh(load_recipe(recipe), [world / "b2.jsonl"], quiet=True)
    assert EVENTS == [("open", 3), ("stage", "v000002", 2), ("discard",)]
    assert seen.read_text() == before and read_current(world / "state")["version"] == 1


def test_a_refresh_dying_between_the_states_commit_and_its_own_is_rolled_back(world: Path, monkeypatch):
    """The states commit before CURRENT does: the next refresh rolls each state back to the batches
    the committed version covers (by capability: ``rollback``), then does the batch again."""
    recipe = world / "recipe.yaml"
    refresh(load_recipe(recipe), quiet=True)
    seen = world / "state" / "index" / "g1" / "seen" / "seen.json"

    def broken(*a, **k):
        raise OSError(28, "No space left on device", "journal")

    monkeypatch.setattr(publish, "write_journal", broken)
    with pytest.raises(OSError):
        refresh(load_recipe(recipe), [world / "b2.jsonl"], quiet=True)
    assert len(json.loads(seen.read_text())) == 2 and read_current(world / "state")["version"] == 1
    monkeypatch.undo()
    EVENTS.clear()
    again = refresh(load_recipe(recipe), [world / "b2.jsonl"], quiet=True).summary
    assert EVENTS == [("rollback", 1), ("open", 3), ("stage", "v000002", 2), ("commit",)]
    assert again["version"] == "v000002" and again["new_dropped_by_reason"] == {"seen earlier": 1}
    assert json.loads(seen.read_text()) == [["q0", "q1", "q2"], ["q0", "q9"]]
