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

from curate.core.stage import warn_deprecated
from curate.engines.local import run_stage as run_local
from curate.stages import for_function

ENGINES = ("local", "ray")
KINDS = ("row", "model", "dedup", "global")
# One name per setting everywhere: the stage commands' flags (--ray-address, --ray-cpus, --block-rows,
# --actors; --engine is ``name``) and, with underscores, the recipe's ``engine:`` keys, the run
# manifest's ``config.engine`` and the fields of EngineSpec.
SETTINGS = ("name", "ray_address", "ray_cpus", "block_rows", "actors")
# the recipe keys of the first releases (Ray's own names): still read, after one warning
OLD_SPELLINGS = {"address": "ray_address", "num_cpus": "ray_cpus"}
_COUNTS = ("ray_cpus", "block_rows", "actors")


@dataclass
class EngineSpec:
    """What ``--engine`` / ``engine:`` resolve to."""

    name: str = "local"
    ray_address: str | None = None
    ray_cpus: int | None = None  # local Ray cluster only
    block_rows: int | None = None  # rows per Ray Data block / batch (default: from the data size)
    actors: int | None = None  # actor-pool size for model stages (default: one per CPU / GPU)

    def __post_init__(self) -> None:
        if self.name not in ENGINES:
            raise ValueError(f"unknown engine {self.name!r}: choose {' or '.join(ENGINES)}")
        if self.name == "local" and self.ray_address:
            raise ValueError("--ray-address needs --engine ray")
        for key in _COUNTS:
            v = getattr(self, key)
            if v is not None and int(v) < 1:
                raise ValueError(f"--{key.replace('_', '-')} must be at least 1, got {v}")

    def settings(self) -> dict[str, Any]:
        """The settings that are set, by their names (what a run manifest records)."""
        return {k: getattr(self, k) for k in SETTINGS if getattr(self, k) is not None}


class SettingError(ValueError):
    """A bad ``engine:`` setting of a recipe; ``key`` is the key as the recipe wrote it."""

    def __init__(self, key: str, message: str):
        super().__init__(f"{key}: {message}")
        self.key = key
        self.message = message


def from_settings(settings: dict[str, Any]) -> EngineSpec:
    """A recipe's ``engine:`` mapping (keys from :data:`SETTINGS`; an old spelling prints one
    warning) -> EngineSpec. A :class:`SettingError` names the key as it was written."""
    given: dict[str, Any] = {}
    written: dict[str, str] = {}  # setting -> the key that gave it
    for key, value in settings.items():
        target = OLD_SPELLINGS.get(key, key)
        if target not in SETTINGS:
            raise SettingError(key, f"unknown engine key; allowed: {', '.join(SETTINGS)}")
        if target in written:
            old = key if key != target else written[target]
            raise SettingError(old, f"{old} and {target} are the same setting; give only {target}")
        if target != key:
            warn_deprecated(f"engine: {key} is deprecated; use {target}")
        given[target], written[target] = value, key
    for k in SETTINGS:
        v = given.get(k)
        if v is None:
            continue
        if k in _COUNTS and (isinstance(v, bool) or not isinstance(v, int)):
            raise SettingError(written[k], f"expected an integer, got {v!r}")
        if k in _COUNTS and v < 1:
            raise SettingError(written[k], f"must be at least 1, got {v}")
        if k not in _COUNTS and not isinstance(v, str):
            raise SettingError(written[k], f"expected a string, got {v!r}")
    name = given.get("name") or ("ray" if given.get("ray_address") else "local")
    if name not in ENGINES:
        raise SettingError(
            written.get("name", "name"), f"unknown engine {name!r}: choose {' or '.join(ENGINES)}"
        )
    if name == "local" and given.get("ray_address"):
        raise SettingError(written["ray_address"], "a Ray cluster to join needs name: ray, not local")
    return EngineSpec(name, *(given.get(k) for k in SETTINGS[1:]))


def overridden(base: EngineSpec | None, given: dict[str, Any]) -> EngineSpec | None:
    """``base`` (a recipe's ``engine:``; None: local) with the settings given on the command line:
    ``--ray-address`` implies ray; ``--engine local`` leaves the recipe's cluster address behind."""
    if not given:
        return base
    base = base or EngineSpec()
    name = given.get("name") or ("ray" if given.get("ray_address") else base.name)
    address = given.get("ray_address") or (base.ray_address if name == "ray" else None)
    return EngineSpec(name, address, *(given.get(k, getattr(base, k)) for k in _COUNTS))


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


def run_on_engine(
    frame,
    engine: EngineSpec | None,
    here: Callable[[Any], Any],
    distributed: Callable[[Any, Callable], Any] | None = None,
):
    """Where a configured stage runs (the stage commands and the pipeline both ask here): in this
    process, ``here(frame)``, on the local engine; on a cluster engine, ``distributed(frame,
    run_blocks)`` for a stage with the ``distributed`` capability (``run_blocks`` is this engine's
    :func:`run_stage`), else ``here`` once on the driver, which the engine notes in the stats."""
    if engine is None or engine.name == "local":
        return here(frame)
    if distributed is not None:
        return distributed(frame, functools.partial(_run_on, engine))
    return run_stage(lambda rows, _config: here(rows), frame, None, engine, kind="global")


def _run_on(engine: EngineSpec, fn: Callable, frame, config: Any, **kwargs: Any):
    return run_stage(fn, frame, config, engine, **kwargs)


def engine_options(f: Callable) -> Callable:
    """``--engine local|ray``, ``--ray-address``, ``--ray-cpus``, ``--block-rows``, ``--actors``.

    The command receives one ``engine`` argument, an :class:`EngineSpec`, to pass to :func:`run_stage`.
    """
    f = _flags(
        f,
        "Where the stage runs: local (this process, default) or ray (a Ray cluster; install "
        "tamis[ray]). Same results either way.",
        envvar="TAMIS_ENGINE",
    )
    return _fold(f, lambda given: overridden(None, given) or EngineSpec())


def recipe_engine_options(f: Callable) -> Callable:
    """The same five flags for the commands that run a recipe (``curate run``, ``curate refresh``):
    each one given overrides that setting of the recipe's ``engine:``. The command receives
    ``override_engine``, a function from the recipe's EngineSpec (or None) to the one to run on."""
    f = _flags(
        f,
        "Override the recipe's `engine:` (local: this process; ray: a Ray cluster). Results and "
        "cache keys are the same on both.",
        envvar=None,
    )
    return _fold(f, lambda given: functools.partial(_override_or_usage_error, given=given), "override_engine")


def _override_or_usage_error(base: EngineSpec | None, given: dict[str, Any]) -> EngineSpec | None:
    try:
        return overridden(base, given)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc


def _flags(f: Callable, engine_help: str, envvar: str | None) -> Callable:
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
    return click.option(
        "--engine",
        type=click.Choice(ENGINES),
        default=None,
        envvar=envvar,
        show_envvar=envvar is not None,
        help=engine_help,
    )(f)


def _fold(f: Callable, make: Callable[[dict[str, Any]], Any], into: str = "engine") -> Callable:
    """Fold the five engine flags into one keyword ``into``: ``make(the settings given)``."""

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        given = {"name": kwargs.pop("engine", None), **{k: kwargs.pop(k, None) for k in SETTINGS[1:]}}
        try:
            kwargs[into] = make({k: v for k, v in given.items() if v is not None})
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
    "OLD_SPELLINGS",
    "SETTINGS",
    "EngineSpec",
    "SettingError",
    "engine_options",
    "from_settings",
    "overridden",
    "ray_available",
    "recipe_engine_options",
    "run_on_engine",
    "run_stage",
    "stage_kind",
]
