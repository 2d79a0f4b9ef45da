"""The local engine: the stage function runs once, in this process, over the whole frame."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def run_stage(stage_fn: Callable, frame, config: Any = None, **stage_kwargs: Any):
    return stage_fn(frame, config, **stage_kwargs)
