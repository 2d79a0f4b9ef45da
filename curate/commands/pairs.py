"""`curate pairs`: DPO preference pairs (ranked answers, curated vs generated, existing pairs)."""

from __future__ import annotations

from curate.commands.common import fail
from curate.commands.generated import Invocation, StageCommand


class PairsCommand(StageCommand):
    """Build DPO preference pairs; identical or near-identical sides are dropped with a reason.

    \b
    Examples:
      curate pairs scored.jsonl --min-margin 0.5          # several answers per question, by reward
      curate pairs curated.jsonl --model ./models/base    # curated answer vs the base model's answer
      curate pairs dpo_zh.json                            # check existing preference data
    """

    stage = "pairs"

    def check_loaded(self, run: Invocation) -> None:
        """Ranked pairs asked for by name (--score or --mode ranked): a missing score column is an
        error, as for select --by, not a silent "0 pairs"."""
        named = run.given("score") or "ranked" in (run.options.get("modes") or ())
        frame = run.loaded.frame
        if not (named and "ranked" in run.config.modes and frame.height and (frame["kind"] == "sft").any()):
            return
        from curate.select import SelectError, column_values  # polars: not for --help

        try:
            column_values(frame, run.config.score)
        except SelectError as exc:
            fail(f"--score {run.config.score}: {exc} (run `curate score` first, or pick another --score)")


pairs = PairsCommand().command()
