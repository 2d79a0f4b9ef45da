"""`curate augment`: few-shot, chain-of-thought, rephrased and system-prompt variants."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from curate.commands.common import EXIT_REJECTS, fail, warn
from curate.commands.generated import Invocation, StageCommand

if TYPE_CHECKING:  # pragma: no cover
    from curate.stage import StageResult


class AugmentCommand(StageCommand):
    """Add few-shot, chain-of-thought and rephrased variants of every SFT row.

    \b
    Examples:
      curate augment data.jsonl --fewshot 3
      curate augment data.jsonl --cot --model ./models/qwen2.5-7b-instruct
      curate augment data.jsonl --cot --model-url http://127.0.0.1:8000/v1 --model-name qwen --rpm 120
      curate augment data.jsonl --rephrase 2 --system-variants 1
    """

    stage = "augment"

    def report(self, run: Invocation, result: StageResult) -> dict[str, Any] | None:
        """Failed teacher requests: exit 1 when some failed, an error when every one did."""
        cot = result.stats.get("cot") or {}
        n_failed, n_asked = cot.get("failed_requests", 0), cot.get("requested", 0)
        if not n_failed:
            return None
        what = f"{n_failed} of {n_asked} teacher requests failed (first error: {cot.get('first_error')})"
        if n_failed >= n_asked:
            # nothing came back from the teacher: not a dataset, a broken endpoint or model
            fail(f"chain of thought: every teacher request failed; {what}; nothing was written")
        warn(f"chain of thought: {what}; those rows have no chain-of-thought variant (exit code 1)")
        return {"min_code": EXIT_REJECTS}


augment = AugmentCommand().command()
