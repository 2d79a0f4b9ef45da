"""`train grpo`: Group Relative Policy Optimisation (TRL GRPOTrainer) against rule rewards (exact/contains
answer match for CoT rows, format, length), a reward model, or both. The baseline is the group's mean
reward, scaled by its std (``--scale-rewards``); ``--loss-type`` picks the token aggregation (DAPO's by
default). Shared with RLOO: :mod:`train.online`."""

from __future__ import annotations

# the stage protocol: build_trainer plus the optional hooks (see train.run.stage_hook)
from train.online import build_trainer, filter_rows, preflight, run_summary

__all__ = ["build_trainer", "filter_rows", "preflight", "run_summary"]
