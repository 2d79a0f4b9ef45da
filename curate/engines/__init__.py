"""Execution engines: the same stage functions run in this process (``local``) or over a Ray cluster
(``ray``).

The entry point for commands and recipes is :func:`run_stage`::

    from curate.engines import run_stage
    result = run_stage(rules.run, frame, config, engine="ray")           # a local Ray cluster
    result = run_stage(dedup.run, frame, config, engine="ray", ray_address="auto")  # join one

How a stage runs on Ray depends on its *kind* (see :data:`KINDS`), which the engine derives from the
stage's declaration in :mod:`curate.stages` (its scope and capabilities; see
:meth:`curate.core.stage.Stage.engine_kind`), never from its name:

- ``row``: a row's fate depends on that row only (filter, cheap scorers). The stage function runs on
  Ray Data blocks (``map_batches`` over Arrow batches -> polars -> stage -> kept/dropped).
- ``model``: like ``row`` but the stage loads a model: it runs in an actor pool (class-based
  ``map_batches`` with ``concurrency``) so every actor loads the model once.
- ``dedup``: rows are compared with each other; MinHash signatures in parallel, LSH banding as a
  shuffle, connected components distributed (:mod:`curate.engines.ray_dedup`).
- ``global``: the result depends on the whole set (select, pairs, export); it runs once on the driver.

Nothing here imports ray at module level: ``curate --help`` and the local engine never pay for it.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import click

from curate.engines.local import run_stage as run_local
from curate.stages import for_function

ENGINES = ("local", "ray")
KINDS = ("row", "model", "dedup", "global")


@dataclass
class EngineSpec:
    """What ``--engine`` / ``engine:`` resolve to."""

    name: str = "local"
    ray_address: str | None = None
    num_cpus: int | None = None  # local Ray cluster only
    block_rows: int | None = None  # rows per Ray Data block / batch (default: from the data size)
    actors: int | None = None  # actor-pool size for model stages (default: one per CPU / GPU)

    def __post_init__(self) -> None:
        if self.name not in ENGINES:
            raise ValueError(f"unknown engine {self.name!r}: choose {' or '.join(ENGINES)}")
        if self.name == "local" and self.ray_address:
            raise ValueError("--ray-address needs --engine ray")
        for key in ("num_cpus", "block_rows", "actors"):
            v = getattr(self, key)
            if v is not None and int(v) < 1:
                raise ValueError(f"{key.replace('_', '-')} must be at least 1, got {v}")


def stage_kind(stage_fn: Callable, kind: str | None = None) -> str:
    """An explicit ``kind`` wins, then a function attribute ``engine_kind``, then the kind derived
    from the declaration of the stage the function belongs to."""
    if kind is None:
        kind = getattr(stage_fn, "engine_kind", None)
    if kind is None:
        stage = for_function(stage_fn)
        kind = stage.engine_kind() if stage is not None else None
    if kind is None:
        kind = "global"  # safe default: the whole frame, once, on the driver
    if kind not in KINDS:
        raise ValueError(f"unknown stage kind {kind!r}: choose from {', '.join(KINDS)}")
    return kind


def run_stage(
    stage_fn: Callable,
    frame,
    config: Any = None,
    engine: str | EngineSpec = "local",
    ray_address: str | None = None,
    *,
    kind: str | None = None,
    factory: Callable[[Any], Callable] | None = None,
    **stage_kwargs: Any,
):
    """Run ``stage_fn(frame, config, **stage_kwargs) -> StageResult`` on an engine.

    ``engine`` is ``"local"``, ``"ray"`` or an :class:`EngineSpec`. ``kind`` overrides the stage's
    kind (``row``, ``model``, ``dedup``, ``global``). ``factory`` (model stages) builds, once per
    actor, a callable ``frame -> StageResult`` from the config, so the model loads once per actor; by
    default each batch calls ``stage_fn(batch, config)``. The result has the same kept rows (in the
    same order), dropped rows and scores as the local engine.
    """
    spec = engine if isinstance(engine, EngineSpec) else EngineSpec(name=engine, ray_address=ray_address)
    if spec.name == "local":
        return run_local(stage_fn, frame, config, **stage_kwargs)
    # polars and the Ray driver code load only when a stage runs on Ray (engines.ray imports this package)
    from curate.engines.ray import run_stage as run_ray

    return run_ray(
        stage_fn, frame, config, spec, kind=stage_kind(stage_fn, kind), factory=factory, **stage_kwargs
    )


def engine_options(f: Callable) -> Callable:
    """``--engine local|ray``, ``--ray-address``, ``--ray-cpus``, ``--block-rows``, ``--actors``.

    The command receives one ``engine`` argument, an :class:`EngineSpec`, to pass to :func:`run_stage`.
    """

    f = click.option(
        "--actors",
        type=click.IntRange(min=1),
        default=None,
        help="Ray: actors in the pool of a model stage (each loads the model once). Default: one per CPU "
        "(or per GPU when the cluster has GPUs).",
    )(f)
    f = click.option(
        "--block-rows",
        type=click.IntRange(min=1),
        default=None,
        help="Ray: rows per block/batch. Default: enough blocks for 4 per CPU, 1,000-50,000 rows each.",
    )(f)
    f = click.option(
        "--ray-cpus",
        type=click.IntRange(min=1),
        default=None,
        help="Ray: CPUs of the local cluster started when no --ray-address is given (default: all).",
    )(f)
    f = click.option(
        "--ray-address",
        default=None,
        metavar="ADDRESS",
        help="Ray: join this cluster (host:port, ray://host:10001 or 'auto'). Implies --engine ray. "
        "Without it, --engine ray joins $RAY_ADDRESS when set, else starts a local cluster.",
    )(f)
    f = click.option(
        "--engine",
        type=click.Choice(ENGINES),
        default=None,
        envvar="TAMIS_ENGINE",
        show_envvar=True,
        help="Where the stage runs: local (this process, default) or ray (a Ray cluster; install "
        "tamis[ray]). Same results either way.",
    )(f)
    return _collect(f)


def _collect(f: Callable) -> Callable:
    """Fold the five engine options into one ``engine`` keyword (an EngineSpec)."""

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        name = kwargs.pop("engine", None)
        address = kwargs.pop("ray_address", None)
        cpus = kwargs.pop("ray_cpus", None)
        block_rows = kwargs.pop("block_rows", None)
        actors = kwargs.pop("actors", None)
        if name is None:
            name = "ray" if address else "local"
        try:
            kwargs["engine"] = EngineSpec(name, address, cpus, block_rows, actors)
        except ValueError as exc:
            raise click.UsageError(str(exc)) from exc
        return f(*args, **kwargs)

    return wrapper


def ray_available() -> bool:
    return importlib.util.find_spec("ray") is not None


def default_cpus() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


__all__ = [
    "ENGINES",
    "KINDS",
    "EngineSpec",
    "engine_options",
    "ray_available",
    "run_stage",
    "stage_kind",
]
