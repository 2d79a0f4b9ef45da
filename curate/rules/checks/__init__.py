"""Check families; importing this package registers every check in ``REGISTRY`` by name."""

from curate.rules.checks import charclass, form, language, length, lists, pii, repetition, structure  # noqa: F401
from curate.rules.checks.base import REGISTRY, Check, CheckError, Hit, Param

__all__ = ["REGISTRY", "Check", "CheckError", "Hit", "Param"]
