"""`train rloo`: RLHF with REINFORCE Leave-One-Out (TRL RLOOTrainer) against a reward model from
`train rm`, rule rewards, or both. Each completion's baseline is the mean reward of the other completions
of its prompt. :mod:`train.online` holds what is shared with GRPO, and why this is the RLHF stage rather
than PPO."""

from __future__ import annotations

# the stage protocol: build_trainer plus the optional hooks (see train.run.stage_hook)
from train.online import build_trainer, filter_rows, preflight, run_summary

__all__ = ["build_trainer", "filter_rows", "preflight", "run_summary"]
