"""One coercion and validation module for settings, wherever they come from: a recipe's YAML, a
``--set KEY=VALUE`` override, or a command-line flag. `curate` stages and `train` configs both use it.

- :func:`dataclass_config` builds a config dataclass from a mapping of options, checking every value
  against the field's annotation (:func:`check_type`), naming unknown keys' closest match, and passing
  the dataclass's own validation errors on as :class:`OptionError`.
- :func:`base_type` and :func:`parse_scalar` turn text (``--set lr=1e-4``, a flag) into the field's
  type with an error naming the key.

Errors carry the setting's field name and a message that does not spell it; the caller that knows
where the setting came from spells it (``--threshold`` on the command line, ``stages[1].dedup.threshold``
in a recipe): :meth:`~curate.core.errors.ConfigError.spelled`. A Config's own checks raise
:class:`OptionError` the same way (``OptionError("threshold", "must be in (0, 1]")``).
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from typing import Any

from curate.core.errors import ConfigError


class OptionError(ConfigError):
    """An option a stage does not accept; ``key`` names its field (None: the options as a whole), the
    message does not spell it (see :class:`~curate.core.errors.ConfigError`)."""

    def __init__(self, key: str | None, message: str, *, mentions: tuple[str, ...] = ()):
        super().__init__(message, key, mentions=mentions)


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
            raise OptionError(key, f"unknown option{hint}; options: {', '.join(names)}")
        fdef = next(f for f in dataclasses.fields(cls) if f.name == target)
        value = check_type(key, value, _field_type(cls, fdef))
        if isinstance(value, list) and (isinstance(fdef.default, tuple) or "tuple" in str(fdef.type).lower()):
            value = tuple(value)
        kwargs[target] = value
    try:
        return cls(**kwargs)
    except OptionError:
        raise  # the Config's own check, naming its setting
    except (TypeError, ValueError) as exc:
        raise OptionError(None, str(exc)) from None


def _field_type(cls: type, fdef: dataclasses.Field) -> Any:

    try:
        return typing.get_type_hints(cls).get(fdef.name, fdef.type)
    except Exception:  # an unresolvable annotation: no type check for it
        return None


def _accepts(tp: Any, value: Any) -> bool | None:
    """Whether ``value`` (as YAML gives it) fits the annotation ``tp``; None: cannot tell."""

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

    verdict = _accepts(tp, value)
    if verdict is False:
        raise OptionError(key, f"expected {_expected(tp)}, got {value!r}")
    members = typing.get_args(tp) if typing.get_origin(tp) in (typing.Union, types.UnionType) else (tp,)
    if verdict and isinstance(value, float) and int in members and float not in members:
        return int(value)
    numeric = isinstance(value, int | float) and not isinstance(value, bool)
    if verdict and numeric and str in members and int not in members and float not in members:
        return str(value)  # `name: 2024` is the name "2024"
    return value


def base_type(tp: Any) -> tuple[Any, bool, bool]:
    """(scalar type, optional?, list?) of an annotation such as ``list[str] | None``."""
    optional = False
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        optional = True
        tp = args[0]
        origin = typing.get_origin(tp)
    if origin in (list, tuple):
        args = [a for a in typing.get_args(tp) if a is not Ellipsis]
        return (args[0] if args else str), optional, True
    return tp, optional, False


TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")


def parse_scalar(key: str, tp: Any, value: Any) -> Any:
    """``value`` (text from ``--set`` or a flag, or a YAML scalar) as ``tp``; a ConfigError naming
    ``key`` when it is not one."""
    try:
        if tp is bool:
            if isinstance(value, bool):
                return value
            s = str(value).strip().lower()
            if s in TRUE_WORDS:
                return True
            if s in FALSE_WORDS:
                return False
            raise ValueError(value)
        if tp is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        if tp is float:
            return float(value)
        return str(value)
    except (TypeError, ValueError):
        raise ConfigError(f"expected {getattr(tp, '__name__', tp)}, got {value!r}", key) from None
