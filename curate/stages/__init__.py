"""The one ordered registry of curate stages: recipe order, default output suffixes, the `curate`
commands, `curate refresh`'s scopes and the engines' dispatch all come from it.

Adding a stage: one module here declaring a :class:`~curate.core.stage.Stage` subclass, and one line in
:data:`STAGES` (see docs/architecture.md). Every declaration module is light (no stage library is
imported until the stage runs), so `curate --help` can list them.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable

from curate.core.stage import Scope, Stage
from curate.names import STAGE_SUFFIX
from curate.stages.augment import Augment
from curate.stages.decontaminate import Decontaminate
from curate.stages.dedup import Dedup
from curate.stages.export import Export
from curate.stages.filter import Filter
from curate.stages.ingest import Ingest
from curate.stages.pairs import Pairs
from curate.stages.score import Score
from curate.stages.select import Select

# the order a recipe runs them in (and the order of `curate --help`'s stage commands)
STAGES: list[type[Stage]] = [Ingest, Dedup, Decontaminate, Filter, Score, Augment, Select, Pairs, Export]


def _publish() -> None:
    """Keep the light name tables that lower layers read in step with the registry."""
    STAGE_SUFFIX.clear()
    STAGE_SUFFIX.update(suffixes())


def names() -> tuple[str, ...]:
    return tuple(s.name for s in STAGES)


def get(name: str) -> type[Stage]:
    for s in STAGES:
        if s.name == name:
            return s
    close = difflib.get_close_matches(name, names(), n=1)
    raise KeyError(f"unknown stage {name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))


def suffixes() -> dict[str, str]:
    """stage name -> default output suffix (``score`` -> ``scored``)."""
    return {s.name: s.suffix for s in STAGES}


def register(stage: type[Stage], *, before: str | None = None) -> type[Stage]:
    """Add a stage (a plug-in, or a test's toy stage) to the registry, before ``before`` or last; a
    stage of the same name is replaced in place. Returns the stage (usable as a decorator)."""
    for i, s in enumerate(STAGES):
        if s.name == stage.name:
            STAGES[i] = stage
            break
    else:
        STAGES.insert(names().index(before) if before else len(STAGES), stage)
    _publish()
    return stage


def unregister(name: str) -> None:
    STAGES[:] = [s for s in STAGES if s.name != name]
    _publish()


_publish()


def source() -> type[Stage]:
    """The stage that reads the inputs (scope ``source``: ingest); a recipe always starts with it."""
    return next(s for s in STAGES if s.scope is Scope.SOURCE)


def for_function(fn: Callable) -> type[Stage] | None:
    """The stage whose declared stage function ``fn`` is (engines find a function's scope and
    capabilities this way), without importing any stage library."""
    module = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", None)
    for s in STAGES:
        if s.scope is not Scope.SOURCE and s.module == module and s.function == qualname:
            return s
    return None


__all__ = [
    "STAGE_SUFFIX",
    "STAGES",
    "Ingest",
    "Scope",
    "Stage",
    "for_function",
    "get",
    "names",
    "register",
    "source",
    "suffixes",
    "unregister",
]
