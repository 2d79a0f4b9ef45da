"""Planning a run before anything runs: every stage's config resolved and checked, the models it
loads fingerprinted, every file the run writes checked against what it reads, and the chained cache
keys (the ingest key hashes the inputs; each later key hashes the previous one, the stage's config,
models and code)."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from curate import stages as declared
from curate.io import InputError
from curate.io.sources import expand, input_files
from curate.pipeline import outputguard
from curate.pipeline import stages as registry
from curate.pipeline.recipe import (  # noqa: F401  (default_outputs re-exported)
    InputSpec,
    Recipe,
    RecipeError,
    Step,
    canonical_json,
    default_outputs,
    option_error,
)


@dataclass
class Planned:
    step: Step
    spec: registry.StageSpec | None
    config: Any
    models: list[dict[str, Any]]
    key: str = ""


def _key(*parts: Any) -> str:
    return hashlib.sha256(canonical_json(parts).encode("utf-8")).hexdigest()[:20]


def input_label(recipe: Recipe, path: Path) -> str:
    """How an input file is named in records and manifests: relative to the recipe when it can be."""
    try:
        return os.path.relpath(path, recipe.base) if recipe.path else str(path)
    except ValueError:
        return str(path)


def plan(
    recipe: Recipe, ctx: registry.StageContext, extra_outputs: dict[str, Path] | None = None
) -> list[Planned]:
    """Resolve every stage before anything runs: unknown options, unavailable stages, missing
    inputs and outputs that would overwrite an input, the recipe or each other are reported up front,
    not after an hour of scoring. ``extra_outputs`` are files the command writes besides the recipe's
    outputs (``--report`` of `curate run`: it replaces ``outputs.report``)."""
    out: list[Planned] = []
    check_inputs(recipe)
    # derived outputs too (the dropped/rejects files beside the data): a refresh batch or an input
    # that is one of them would be overwritten or removed by this run
    in_paths = {s.path.resolve(): s.path for s in recipe.inputs}
    for kind, target in default_outputs(recipe).items():
        if Path(target).resolve() in in_paths:
            raise RecipeError(
                f"{recipe.path or '<recipe>'}: input {in_paths[Path(target).resolve()]} is this recipe's "
                f"{kind} output; a run never overwrites its inputs (move the file or change `outputs:`)"
            )
    for step in recipe.steps:
        if registry.source(step.name):
            out.append(Planned(step, None, dict(step.options), []))
            continue
        spec = registry.get(step.name)
        try:
            config = spec.config(step.options, ctx)
        except registry.StageUnavailable as exc:
            raise option_error(recipe, step, None, str(exc)) from None
        except registry.StageOptionError as exc:
            raise option_error(recipe, step, exc.key, exc.message) from None
        try:
            models = [
                {"stage": step.id, **registry.model_fingerprint(m)}
                for m in registry.models_of(spec, step.options, config)
            ]
        except Exception as exc:  # e.g. an embedded default model that is not there
            raise option_error(recipe, step, None, f"{type(exc).__name__}: {exc}") from None
        cfg = registry.config_to_dict(config)
        inputs = {s.path.resolve() for s in recipe.inputs}
        for k in spec.output_options:
            v = cfg.get(k) if isinstance(cfg, dict) else None
            if isinstance(v, str) and v and Path(v).resolve() in inputs:
                raise option_error(recipe, step, k, f"{v} is an input; a recipe never overwrites its inputs")
        # files the stage writes (or removes) itself: an export's eval file and dataset_info.json
        for kind, target in registry.side_outputs(spec, config).items():
            if Path(target).resolve() in inputs:
                raise option_error(
                    recipe,
                    step,
                    "output",
                    f"{target} (the {spec.name}'s {kind} file) is an input; a recipe never overwrites its inputs",
                )
        out.append(Planned(step, spec, config, models))
    check_outputs(recipe, out, extra_outputs)
    return out


def check_inputs(recipe: Recipe) -> None:
    """Every input is there and is something `curate ingest` reads (a file, a Parquet shard folder, a
    save_to_disk folder, a dataset_info.json), by the io layer's own expansion: its error, with the
    recipe line of the input."""
    for spec in recipe.inputs:
        if not os.path.lexists(spec.path):
            label = input_label(recipe, spec.path)
            raise input_error(recipe, spec, f"input {label} not found ({spec.path})")
        try:
            expand([spec.path])
        except InputError as exc:
            raise input_error(recipe, spec, str(exc)) from None


def input_error(recipe: Recipe, spec: InputSpec, message: str) -> RecipeError:
    """An error about one input, pointing at its recipe line (a refresh batch's file has none)."""
    lines = getattr(recipe, "lines", None)
    if lines is not None and spec.where is not None:
        return lines.error(spec.where, message)
    return RecipeError(f"{recipe.path or '<recipe>'}: {message}")


def check_outputs(recipe: Recipe, planned: list[Planned], extra: dict[str, Path] | None = None) -> None:
    """Every file a run writes (data, dropped, rejects, report, manifest, each export's files, the
    ``--report`` of the command line) is its own file, and none is a file the run reads: an input, the
    recipe itself, an evaluation or rule file a stage names."""
    where = str(recipe.path or "<recipe>")
    writes = outputguard.recipe_writes(recipe, planned, extra, caches=True)
    reads: dict[Path, str] = {}
    if recipe.path is not None:
        reads[recipe.path.resolve()] = "the recipe file"
    for s in recipe.inputs:
        reads.setdefault(s.path.resolve(), f"the input {input_label(recipe, s.path)}")
        for f in input_files(s.path):  # a folder's shards, the files a dataset_info.json lists
            reads.setdefault(f.resolve(), f"a file of the input {input_label(recipe, s.path)}")
    folders = {s.path.resolve(): s.path for s in recipe.inputs if s.path.is_dir()}
    for p in planned:
        if p.spec is None:
            continue
        opts = registry.resolve_paths(p.step.options, p.spec.path_options, recipe.base)
        for k in p.spec.path_options:
            if k == "cache" or k in p.spec.output_options:
                continue
            vals = opts.get(k)
            for v in vals if isinstance(vals, list | tuple) else [vals]:
                if isinstance(v, str) and v and Path(v).is_file():
                    reads.setdefault(Path(v).resolve(), f"{p.step.id}.{k} file {v}")
    seen: dict[Path, str] = {}
    for name, target in writes.items():
        r = target.resolve()
        if r in reads:
            raise RecipeError(f"{where}: {name} {target} is {reads[r]}; a run never overwrites what it reads")
        inside = next((folders[d] for d in r.parents if d in folders), None)
        if inside is not None:  # the next run would read it as one more shard
            raise RecipeError(f"{where}: {name} {target} is inside the input folder {inside}")
        shared = (".dataset_info", ".dataset_card")
        if r in seen and not (name.endswith(shared) and seen[r].endswith(shared)):
            # (several exports share one dataset_info.json / README.md: each adds its entry)
            raise RecipeError(
                f"{where}: {name} and {seen[r]} are the same file ({target}); every output needs its own path"
            )
        seen[r] = name
    outputguard.check(recipe, outputguard.recipe_writes(recipe, planned, extra))  # no caches: shared


def ingest_key(recipe: Recipe, hashes: list[str]) -> str:
    return _key(
        declared.source().name,
        registry.code_fingerprint(("curate.io", "curate.records")),
        [
            {
                "label": input_label(recipe, s.path),
                "sha256": h,
                "format": s.format,
                "map": s.mapping,
                "sheet": s.sheet,
                # only when set, so caches made before the option existed stay valid
                **({"encoding": s.encoding} if s.encoding else {}),
            }
            for s, h in zip(recipe.inputs, hashes, strict=True)
        ],
    )


def chain_keys(planned: list[Planned], first_key: str) -> None:
    prev = first_key
    planned[0].key = first_key
    for p in planned[1:]:
        p.key = _key(
            prev,
            p.step.name,
            registry.key_config(p.spec, p.config),
            [m["fingerprint"] for m in p.models],
            p.spec.code_fingerprint(),
        )
        prev = p.key
