"""The one stage protocol: every curate stage is declared once, as a :class:`Stage` subclass, and the
CLI, recipes, `curate refresh` and the engines all read that declaration.

A declaration says
- ``name``: CLI command = recipe key = registry key = ``drop_stage`` of its dropped rows;
- ``suffix``: the default output ``data.<suffix>.jsonl``;
- ``scope``: the only taxonomy (refresh and the engines both read it), see :class:`Scope`;
- ``config``: ``"module:Class"`` of its typed Config dataclass (imported when needed, so that listing
  the registry for ``curate --help`` imports no stage library); field metadata carries help and
  choices, the declaration names the roles (paths, models, outputs, what the cache key ignores);
- ``module``: the implementation (its availability, and with ``code`` its cache fingerprint).

An instance is built once with its config and a :class:`StageContext` and runs on a frame:
``Stage(config, ctx).run(frame) -> StageResult``. It never writes files itself and never loses a row.

Optional capabilities are found by capability, never by name:
- ``distributed(frame, run_on)``: how a row/set-scoped stage runs on a cluster engine (default: its
  stage function over blocks; ``None``: on the driver); ``run_on(fn, frame, config, **kwargs)`` is the
  engine's block runner (given by the caller, so a stage never imports an engine);
- ``actor_factory(config)`` (classmethod): build, once per worker, a ``frame -> StageResult`` callable
  (the stage loads models: the engine runs it in an actor pool);
- ``merge_stats(parts, result)`` (staticmethod): merge per-block stats that need the merged frame;
- ``distributed_set``: the engine's distributed set algorithm (signatures, banding shuffle, connected
  components) computes this set-scoped stage;
- ``incremental``: the stage keeps state across batches (`curate refresh`, ``dedup --state``):
  ``state(path, config)`` (classmethod) opens it as a context manager that locks and checks it and
  loads the earlier rows (``.prior``, handed to the stage as ``ctx.prior``), then ``stage(frame,
  batch, inputs, label)`` writes the new batch aside, ``commit()`` adds it once the outputs it
  describes are written, ``batches()`` counts the committed ones; a batch not committed on exit is
  discarded; ``rollback(n)`` (before opening) drops committed batches past ``n``.

This module is light (standard library only): `curate --help` imports it.
"""

from __future__ import annotations

import dataclasses
import enum
import importlib
import importlib.util
import inspect
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from curate.core.coerce import OptionError, dataclass_config
from curate.core.errors import TamisError, is_user_error

if TYPE_CHECKING:  # pragma: no cover
    import polars as pl

    from curate.stage import StageResult


class Scope(str, enum.Enum):
    """What a row's fate depends on, which decides what `curate refresh` recomputes and how an engine
    distributes the stage.

    - ``source``: reads the inputs (ingest); runs first, once per batch.
    - ``row``: that row only (filter, score, decontaminate): new rows only, in parallel blocks.
    - ``set``: the other rows too (dedup): new rows against everything seen.
    - ``global``: the whole set (augment, select, pairs, export): re-run on the pool, on the driver.
    """

    SOURCE = "source"
    ROW = "row"
    SET = "set"
    GLOBAL = "global"

    def __str__(self) -> str:  # "row" in manifests, messages and comparisons with plain strings
        return self.value


class StageUnavailable(TamisError, RuntimeError):
    """The module implementing a stage is not installed (or not written yet)."""


@dataclass
class StageContext:
    """What the pipeline hands a stage besides its config: where relative paths start, a progress
    factory, (refresh) the incremental state, and the engine."""

    base: Path = field(default_factory=Path.cwd)
    progress: Callable[[str, int], Callable[[int], None]] | None = None
    prior: Any = None  # curate.dedup.engine.Prior for refresh
    extra: dict[str, Any] = field(default_factory=dict)
    engine: Any = None  # curate.engines.EngineSpec; None or local: this process


_WARNED: set[str] = set()


def warn_deprecated(message: str) -> None:
    """``warning: MESSAGE`` on stderr, once per message per process (a recipe is read more than once)."""
    if message not in _WARNED:
        _WARNED.add(message)
        print(f"warning: {message}", file=sys.stderr, flush=True)


def deprecated_keys(cfg: type | None) -> dict[str, str]:
    """Old spellings of a Config's fields as recipe keys -> field names, from each field's
    ``deprecated`` metadata (the hidden command-line flags: ``--teacher-url`` -> ``teacher_url``)."""
    if cfg is None:
        return {}
    return {
        old.lstrip("-").replace("-", "_"): f.name
        for f in dataclasses.fields(cfg)
        for old in f.metadata.get("deprecated", ())
    }


def load_object(target: str) -> Any:
    """``"package.module:Attr"`` -> the object."""
    module, _, attr = target.partition(":")
    obj = importlib.import_module(module)
    for part in attr.split(".") if attr else ():
        obj = getattr(obj, part)
    return obj


def load_module(stage: str, module: str):
    """Import a stage's implementation; :class:`StageUnavailable` (a user error naming the stage) when
    it is not installed or fails to import."""
    if module in sys.modules:
        return sys.modules[module]
    try:
        spec = importlib.util.find_spec(module)
    except (ModuleNotFoundError, ValueError):
        spec = None
    if spec is None:
        raise StageUnavailable(
            f"stage {stage!r} is not available in this installation: its module {module} "
            f"is not installed (remove the stage from the recipe, or upgrade tamis)"
        )
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise StageUnavailable(f"stage {stage!r} cannot be loaded: importing {module} failed: {exc}") from exc


class Stage:
    """Base class of every curate stage declaration (see the module docstring)."""

    name: ClassVar[str]
    suffix: ClassVar[str]
    scope: ClassVar[Scope]
    help: ClassVar[str]  # one line: `curate --help` and the recipe docs
    module: ClassVar[str]  # the implementation
    config: ClassVar[str | None] = None  # "module:Class" of the Config dataclass (None: no options)
    function: ClassVar[str] = "run"  # the module's stage function (engines run it on blocks)
    code: ClassVar[tuple[str, ...]] = ()  # extra modules whose source is part of the cache key
    # a hand-written click command ("module:attr"); None: the command is generated from the Config
    command: ClassVar[str | None] = None
    aliases: ClassVar[dict[str, str]] = {}  # accepted spellings -> field names (method -> methods)
    # settings that name a file or dir but are not typed as one (a model: a local dir or a hub id),
    # resolved against the recipe dir like the Config fields with ``path`` metadata (path_settings)
    path_options: ClassVar[tuple[str, ...]] = ()
    output_options: ClassVar[tuple[str, ...]] = ()  # files to write (always resolved there)
    model_options: ClassVar[tuple[str, ...]] = ()  # models (fingerprinted for the cache key)
    key_exclude: ClassVar[tuple[str, ...]] = ()  # fields that do not change results (cache files...)
    internal: ClassVar[tuple[str, ...]] = ()  # Config fields the caller sets, not user settings
    incremental: ClassVar[bool] = False
    distributed_set: ClassVar[bool] = False
    # writes the finished dataset (export): in a recipe only other final stages may follow it
    final: ClassVar[bool] = False
    # exceptions ("module:Class", imported when one is raised) that mean bad data or settings when the
    # stage raises them, beyond the shared user errors (curate.core.errors.is_user_error): the command
    # and a recipe both report them as one error line (exit 2), never as a bug
    user_errors: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def declares_user_error(cls, exc: BaseException) -> bool:
        """Whether ``exc`` is one of the stage's ``user_errors`` (not TamisError, already one)."""
        declared = tuple(load_object(e) for e in cls.user_errors)
        return bool(declared) and isinstance(exc, declared) and not isinstance(exc, TamisError)

    @classmethod
    def is_user_error(cls, exc: BaseException) -> bool:
        """Whether ``exc``, raised by this stage, is the user's error: a shared user error or a
        declared one (``user_errors``)."""
        return is_user_error(exc) or cls.declares_user_error(exc)

    def __init__(self, config: Any, ctx: StageContext | None = None):
        self.config_value = config
        self.ctx = ctx or StageContext()

    # -------------------------------------------------------------- declaration helpers

    @classmethod
    def load(cls):
        """The implementation module; :class:`StageUnavailable` when it is not installed."""
        return load_module(cls.name, cls.module)

    @classmethod
    def config_class(cls) -> type | None:
        return load_object(cls.config) if cls.config else None

    @classmethod
    def fields(cls) -> list[dataclasses.Field]:
        """The settable fields of the Config (what the CLI and a recipe both accept)."""
        cfg = cls.config_class()
        if cfg is None:
            return []
        return [f for f in dataclasses.fields(cfg) if f.init and f.name not in cls.internal]

    @classmethod
    def path_settings(cls) -> tuple[str, ...]:
        """The settings a recipe resolves against its folder: every Config field with ``path``
        metadata that the stage reads (files it writes are ``output_options``), and ``path_options``."""
        typed = [f.name for f in cls.fields() if f.metadata.get("path") and f.name not in cls.output_options]
        return tuple(dict.fromkeys([*cls.path_options, *typed]))

    @classmethod
    def build_config(cls, options: dict[str, Any], ctx: StageContext) -> Any:
        """The Config from a mapping of options (a recipe's, or the command line's); every value is
        checked by :mod:`curate.core.coerce`. Stages with extra validation override this."""
        cfg = cls.config_class()
        if cfg is None:
            return dict(options)
        try:
            return dataclass_config(cfg, cls.undeprecate(options), rename=cls.aliases)
        except OptionError as exc:  # the Config names its field: name it as the options wrote it
            written = cls.written_keys(options)
            if exc.key not in written:
                raise
            raise OptionError(written[exc.key], exc.template, mentions=exc.mentions) from None

    @classmethod
    def written_keys(cls, options: dict[str, Any]) -> dict[str, str]:
        """Config field -> the key ``options`` gave it under, where that is another spelling (an alias
        such as ``mode`` for ``modes``, a deprecated key, ``min-chars``)."""
        old_keys = deprecated_keys(cls.config_class())
        out = {}
        for key in options:
            name = old_keys.get(key, key)
            name = cls.aliases.get(name, name).replace("-", "_")
            if name != key:
                out[name] = key
        return out

    @classmethod
    def undeprecate(cls, options: dict[str, Any]) -> dict[str, Any]:
        """A recipe's ``options`` with each deprecated key (a Config field's ``deprecated`` metadata:
        ``--teacher-url`` is the key ``teacher_url``) renamed to its field, after one warning line on
        stderr (once per key per process); a setting given under both names is an error."""
        old_keys = deprecated_keys(cls.config_class())
        out: dict[str, Any] = {}
        for key, value in options.items():
            target = old_keys.get(key)
            if target is None:
                out[key] = value
                continue
            if target in options:
                raise OptionError(key, f"{key} is the old spelling of {target}; give only {target}")
            warn_deprecated(f"{cls.name}: {key} is deprecated; use {target}")
            out[target] = value
        return out

    @classmethod
    def stage_function(cls) -> Callable:
        return getattr(cls.load(), cls.function)

    @classmethod
    def engine_kind(cls) -> str:
        """How an engine distributes the stage, derived from its scope and capabilities."""
        if cls.scope is Scope.ROW:
            return "model" if hasattr(cls, "actor_factory") else "row"
        if cls.scope is Scope.SET and cls.distributed_set:
            return "dedup"
        return "global"

    # -------------------------------------------------------------- the instance

    def models(self) -> list[str]:
        """The models this configured stage loads (cache keys and manifests); default: the values of
        ``model_options``."""
        out = []
        for k in self.model_options:
            v = getattr(self.config_value, k, None) if not isinstance(self.config_value, dict) else None
            if v is None and isinstance(self.config_value, dict):
                v = self.config_value.get(k)
            if isinstance(v, str) and v:
                out.append(v)
        return out

    def run(self, frame: pl.DataFrame) -> StageResult:
        fn = self.stage_function()
        if self.ctx.progress is not None and "progress" in inspect.signature(fn).parameters:
            return fn(frame, self.config_value, progress=self.ctx.progress)  # lines in a log, bars on a TTY
        return fn(frame, self.config_value)

    def distributed(self, frame: pl.DataFrame, run_on: Callable) -> StageResult:
        """Default for row- and set-scoped stages: the stage function over the engine's blocks (a stage
        whose config is not what its function takes overrides this; ``distributed = None``: always
        on the driver). Global stages never distribute."""
        return run_on(self.stage_function(), frame, self.config_value)

    @classmethod
    def distributes(cls) -> bool:
        return cls.scope in (Scope.ROW, Scope.SET) and callable(getattr(cls, "distributed", None))
