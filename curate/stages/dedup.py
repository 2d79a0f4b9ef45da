"""dedup: exact, MinHash LSH and semantic duplicates (set scope: new rows against everything seen)."""

from __future__ import annotations

from curate.core.errors import TamisError
from curate.core.stage import Scope, Stage


class Dedup(Stage):
    name = "dedup"
    suffix = "deduped"
    scope = Scope.SET
    help = "Remove exact, near (MinHash LSH) and semantic duplicates."
    module = "curate.dedup.engine"
    config = "curate.configs.dedup:DedupConfig"
    command = "curate.commands.dedup:dedup"
    code = ("curate.dedup", "curate.embed")
    aliases = {"method": "methods", "field": "fields"}
    path_options = ("embed_model",)
    key_exclude = ("chunk", "memory_budget", "spill_dir")  # how, not what: same results
    incremental = True  # ctx.prior: the index of earlier batches (refresh, --state)
    # the text and MinHash helpers refuse settings the rows or the environment make impossible (fields
    # to compare, TAMIS_MINHASH) with ValueError
    user_errors = ("builtins:ValueError",)
    distributed_set = True  # the Ray engine's signatures + banding shuffle + connected components

    def models(self) -> list[str]:
        return [self.config_value.embed_model] if "semantic" in self.config_value.methods else []

    def run(self, frame):
        return self.stage_function()(
            frame, self.config_value, prior=self.ctx.prior, progress=self.ctx.progress
        )

    @classmethod
    def state(cls, path, config) -> DedupState:
        """The ``incremental`` capability: the state kept in ``path`` across batches (the index)."""
        return DedupState(path, config)

    def distributed(self, frame, run_on):
        # incremental state (refresh) and semantic dedup run on the driver: ray_dedup says so in its stats
        return run_on(
            self.stage_function(), frame, self.config_value, prior=self.ctx.prior, progress=self.ctx.progress
        )


class StateError(TamisError):
    """The dedup state cannot be used (parameters differ, locked, inconsistent) or updated."""


class DedupState:
    """Dedup's incremental state (``dedup --state DIR``), one cycle for every caller: open (lock the
    index, check its parameters, load the earlier rows as ``prior``) -> ``stage`` the new batch (written
    aside) -> ``commit`` it once the outputs it describes are written; a batch not committed when the
    cycle closes (an error, an interrupt) is discarded, so the state never runs ahead of the outputs."""

    def __init__(self, path, config, emb_model: str | None = None):
        self.path, self.config, self.emb_model = path, config, emb_model
        self.index = self.prior = self.staged = None

    def __enter__(self) -> DedupState:
        from curate.dedup.index import DedupIndex, IndexError_

        index = DedupIndex(self.path)
        try:
            self.index = index.__enter__()
            self.index.check(self.config)
            self.prior = self.index.load(emb_model=self.emb_model)
        except IndexError_ as exc:
            if self.index is not None:
                self.index.__exit__(None, None, None)
            raise StateError(str(exc)) from None
        return self

    def stage(self, frame, batch, inputs: list[str], label: str | None = None) -> dict:
        self.staged = self.index.stage(frame, batch, self.config, inputs, label)
        return self.staged.entry

    def commit(self) -> None:
        from curate.dedup.index import IndexError_

        staged, self.staged = self.staged, None
        if staged is None:
            return
        try:
            self.index.commit(staged)
        except (IndexError_, OSError) as exc:
            self.index.discard(staged)
            raise StateError(
                f"the outputs are written but the batch could not be added to {self.index.path}: {exc}"
            ) from None

    def batches(self) -> int:
        """How many batches the state holds (committed)."""
        return self.index.next_batch() - 1

    def rollback(self, batches: int) -> list[str]:
        """Before opening: drop the batches past ``batches`` (added by a run whose own commit never
        happened: `curate refresh` died between the index's commit and its CURRENT). Returns what was
        removed."""
        from curate.dedup.index import DedupIndex

        return DedupIndex(self.path).truncate(batches)

    def __exit__(self, *exc) -> None:
        if self.staged is not None:
            self.index.discard(self.staged)
            self.staged = None
        if self.index is not None:
            self.index.__exit__(*exc)
