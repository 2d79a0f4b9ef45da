"""The Ray session of the Ray engine: start a local cluster or join one (:func:`ensure_ray`), stop the
one this process started, and the block sizes and Arrow blocks that the row stages and the distributed
dedup (:mod:`curate.engines.ray_dedup`) both cut a frame into."""

from __future__ import annotations

import atexit
import logging
import math
import os
from typing import Any

import polars as pl

from curate.core.errors import TamisError
from curate.engines import EngineSpec, default_cpus

MIN_BLOCK_ROWS = 1_000
MAX_BLOCK_ROWS = 50_000
BLOCKS_PER_CPU = 4

_started_here = False


class RayEngineError(TamisError, RuntimeError, ValueError):
    """Ray is missing or the cluster cannot be reached (a problem the user can fix; a ValueError so
    that commands report it as a usage error, exit 2)."""


def ensure_ray(spec: EngineSpec | None = None):
    """Connect to ``spec.ray_address`` (or $RAY_ADDRESS), or start a local cluster; reuse a session
    that is already up. Returns the ``ray`` module."""
    global _started_here
    spec = spec or EngineSpec("ray")
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise RayEngineError(
            "the ray engine needs Ray: pip install 'tamis[ray]' (or pip install 'ray>=2.40')"
        ) from exc
    if ray.is_initialized():
        return ray
    kwargs: dict[str, Any] = dict(
        include_dashboard=False,
        log_to_driver=False,
        logging_level=logging.WARNING,
        ignore_reinit_error=True,
    )
    address = spec.ray_address or os.environ.get("RAY_ADDRESS") or None
    try:
        if address:
            ray.init(address=address, **kwargs)
        else:
            ray.init(num_cpus=spec.ray_cpus or default_cpus(), **kwargs)
    except Exception as exc:  # noqa: BLE001 - ray raises ConnectionError, RuntimeError, ValueError...
        where = f"the Ray cluster at {address}" if address else "a local Ray cluster"
        raise RayEngineError(f"could not start or join {where}: {exc}") from exc
    _started_here = True
    atexit.register(shutdown)
    configure_data()
    return ray


def configure_data() -> None:
    import ray.data

    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True
    ctx.enable_progress_bars = False
    for name in ("ray", "ray.data", "ray._private"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # "Progress bars disabled" on every first dataset: tamis reports progress itself
    logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)


def shutdown() -> None:
    """Stop the local cluster this process started (a joined cluster keeps running)."""
    global _started_here
    try:
        import ray
    except ImportError:
        return
    if _started_here and ray.is_initialized():
        ray.shutdown()
    _started_here = False


def cluster_cpus() -> int:
    import ray

    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def block_rows_for(n: int, spec: EngineSpec) -> int:
    if spec.block_rows:
        return int(spec.block_rows)
    per = math.ceil(n / (cluster_cpus() * BLOCKS_PER_CPU)) if n else 1
    return max(MIN_BLOCK_ROWS, min(MAX_BLOCK_ROWS, per))


def to_arrow(frame: pl.DataFrame):
    return frame.to_arrow(compat_level=pl.CompatLevel.oldest())


def split_frame(frame: pl.DataFrame, block_rows: int) -> list:
    """Arrow tables of at most ``block_rows`` consecutive rows (at least one table)."""
    if frame.height == 0:
        return [to_arrow(frame)]
    return [to_arrow(frame.slice(s, block_rows)) for s in range(0, frame.height, block_rows)]
