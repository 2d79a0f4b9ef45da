"""The pipeline's view of the stage registry (:mod:`curate.stages`): one :class:`StageSpec` per
declared stage, which resolves a recipe's options into the stage's config (validated by
:mod:`curate.core.coerce`, with the option name in every error), resolves paths against the recipe's
directory, fingerprints the models and code for the cache key, and runs the stage here or on an engine.

The stage's *scope* decides what `curate refresh` recomputes:

- ``row``: a row's fate depends on that row only (filter, score, decontaminate): new rows only.
- ``set``: rows are compared with each other (dedup): new rows against everything seen.
- ``global``: the result depends on the whole set (augment, select, pairs, export): re-run on the pool.

A stage whose module is not installed raises :class:`StageUnavailable` with a clear message; the
pipeline never substitutes a fake result.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from curate import stages as declared
from curate.core.coerce import OptionError as StageOptionError  # noqa: F401  (the pipeline's name)
from curate.core.coerce import check_type, dataclass_config  # noqa: F401  (re-exported)
from curate.core.stage import Scope, Stage, StageContext, StageUnavailable, load_module  # noqa: F401
from curate.engines import run_on_engine
from curate.pipeline import fastexport
from curate.pipeline.fingerprint import (  # noqa: F401  (re-exported: stages.py was their home)
    _CODE_FP,
    _MODEL_FP,
    code_fingerprint,
    model_fingerprint,
)
from curate.stage import StageResult


@dataclass
class StageSpec:
    name: str
    scope: str
    module: str
    help: str
    build: Callable[[Any, dict[str, Any], StageContext], Any]  # (module, options, ctx) -> config
    call: Callable[[Any, pl.DataFrame, Any, StageContext], StageResult]
    path_options: tuple[str, ...] = ()  # options holding files/dirs (resolved against the recipe dir)
    output_options: tuple[str, ...] = ()  # options naming files to write (always resolved there)
    model_options: tuple[str, ...] = ()  # options naming models (fingerprinted for the cache key)
    code: tuple[str, ...] = ()  # extra modules whose source is part of the cache key
    key_exclude: tuple[str, ...] = ()  # config fields that do not change results (cache files, progress)
    models: Callable[[Any], list[str]] | None = None  # config -> models it loads (default: model_options)
    # (module, frame, config, ctx, run_blocks) -> StageResult on a cluster engine (None: the stage runs
    # on the driver); run_blocks is the engine's block runner (see curate.engines.run_on_engine)
    distributed: Callable[[Any, pl.DataFrame, Any, StageContext, Callable], StageResult] | None = None
    stage: type[Stage] | None = None  # the declaration this spec was made from

    @classmethod
    def of(cls, stage: type[Stage]) -> StageSpec:
        """The spec of a declared stage: every field comes from the declaration."""

        def build(mod, options, ctx):
            return stage.build_config(options, ctx)

        def call(mod, frame, config, ctx):
            memo_dir = ctx.extra.get("export_memo_dir")
            if getattr(stage, "row_memo", False) and memo_dir is not None:
                memo = fastexport.RowMemo(Path(memo_dir), config)
                ctx = dataclasses.replace(ctx, extra={**ctx.extra, "row_memo": memo})
            return stage(config, ctx).run(frame)

        def distributed(mod, frame, config, ctx, run_blocks):
            return stage(config, ctx).distributed(frame, run_blocks)

        return cls(
            name=stage.name,
            scope=str(stage.scope),
            module=stage.module,
            help=stage.help,
            build=build,
            call=call,
            path_options=stage.path_settings(),
            output_options=stage.output_options,
            model_options=stage.model_options,
            # and the Config's module (curate.configs.<stage>: outside the stage's package, still its code)
            code=(*stage.code, *([stage.config.split(":")[0]] if stage.config else [])),
            key_exclude=stage.key_exclude,
            models=lambda config: stage(config).models(),
            distributed=distributed if stage.distributes() else None,
            stage=stage,
        )

    def load(self):
        return load_module(self.name, self.module)

    @property
    def available(self) -> bool:
        try:
            self.load()
            return True
        except StageUnavailable:
            return False

    def config(self, options: dict[str, Any], ctx: StageContext):
        mod = self.load()
        opts = resolve_paths(options, self.path_options, ctx.base)
        for k in self.output_options:
            v = opts.get(k)
            if isinstance(v, str) and v and not os.path.isabs(os.path.expanduser(v)):
                opts[k] = os.path.normpath(ctx.base / v)
        return self.build(mod, opts, ctx)

    def write_outputs(self, config: Any, result: StageResult) -> None:
        """Write the files a stage's result describes besides its rows (the ``write_outputs``
        capability: export's trainer files); the runner calls it once the accounting holds."""
        write = getattr(self.stage, "write_outputs", None)
        if write is not None:
            write(config, result)

    def run(self, frame: pl.DataFrame, config: Any, ctx: StageContext) -> StageResult:
        mod = self.load()
        distributed = self.distributed
        return run_on_engine(
            frame,
            ctx.engine,
            lambda rows: self.call(mod, rows, config, ctx),
            (lambda rows, run_blocks: distributed(mod, rows, config, ctx, run_blocks))
            if distributed
            else None,
        )

    def code_fingerprint(self) -> str:
        return code_fingerprint((self.module, *self.code))


# ----------------------------------------------------------------------------------------------------
# helpers


def resolve_paths(options: dict[str, Any], keys: tuple[str, ...], base: Path) -> dict[str, Any]:
    """Relative paths in ``keys`` that exist beside the recipe become absolute; anything else (a
    built-in rule set name, a hub id, a URL) is left as written."""
    out = dict(options)

    def fix(v: Any) -> Any:
        if isinstance(v, str) and v and "://" not in v and not os.path.isabs(os.path.expanduser(v)):
            cand = base / v
            if cand.exists():
                return os.path.normpath(cand)
        if isinstance(v, str) and v.startswith("~"):
            return os.path.expanduser(v)
        return v

    for k in keys:
        if k in out:
            v = out[k]
            out[k] = [fix(x) for x in v] if isinstance(v, list | tuple) else fix(v)
    return out


def config_to_dict(config: Any) -> Any:
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return {f.name: config_to_dict(getattr(config, f.name)) for f in dataclasses.fields(config)}
    if isinstance(config, dict):
        return {str(k): config_to_dict(v) for k, v in config.items()}
    if isinstance(config, list | tuple):
        return [config_to_dict(v) for v in config]
    if isinstance(config, Path):
        return str(config)
    if isinstance(config, str | int | float | bool) or config is None:
        return config
    return repr(config)


# ----------------------------------------------------------------------------------------------------
# the registry: one spec per declared stage (ingest, the source, is read by the pipeline itself)

REGISTRY: dict[str, StageSpec] = {
    s.name: StageSpec.of(s) for s in declared.STAGES if s.scope is not Scope.SOURCE
}


def sync() -> None:
    """Bring REGISTRY in line with :data:`curate.stages.STAGES` after a stage was registered."""
    for s in declared.STAGES:
        current = REGISTRY.get(s.name)
        # (a spec made by hand, as tests do, stays)
        if s.scope is not Scope.SOURCE and (current is None or current.stage not in (None, s)):
            REGISTRY[s.name] = StageSpec.of(s)


def get(name: str) -> StageSpec:
    sync()
    if name not in REGISTRY:
        close = difflib.get_close_matches(name, list(REGISTRY), n=1)
        raise KeyError(f"unknown stage {name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    return REGISTRY[name]


def models_of(spec: StageSpec, options: dict[str, Any], config: Any) -> list[str]:
    """The models a configured stage will load (for cache keys and the manifest)."""
    if spec.models is not None:
        return spec.models(config)
    out = []
    cfg = config_to_dict(config) if config is not None else options
    for k in spec.model_options:
        v = cfg.get(k) if isinstance(cfg, dict) else None
        if isinstance(v, str) and v:
            out.append(v)
    return out


def key_config(spec: StageSpec, config: Any) -> Any:
    """The part of a stage's config that can change its result (what the cache key hashes)."""
    d = config_to_dict(config)
    if isinstance(d, dict):
        return {k: v for k, v in d.items() if k not in spec.key_exclude}
    return d


def side_outputs(spec: StageSpec, config: Any) -> dict[str, Path]:
    """Files a stage writes itself besides its rows (the ``side_outputs`` capability): kind -> path."""
    fn = getattr(spec.stage, "side_outputs", None)
    return dict(fn(config)) if fn is not None else {}


def incremental(spec: StageSpec) -> bool:
    """Whether a stage keeps state across refresh batches (the ``incremental`` capability)."""
    return bool(getattr(spec.stage, "incremental", False))


def source(name: str) -> bool:
    """Whether the stage named so reads the inputs (scope ``source``: ingest)."""
    return name in {s.name for s in declared.STAGES if s.scope is Scope.SOURCE}


def availability() -> dict[str, bool]:
    return {name: spec.available for name, spec in REGISTRY.items()}
