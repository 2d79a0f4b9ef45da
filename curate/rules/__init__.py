"""YAML rule sets: cheap, explainable filters that data engineers can read and extend without Python.

``load_rules(["default"])`` resolves shipped sets and files (with includes and overrides) into a
:class:`RuleSet`; ``apply(frame, ruleset)`` runs it over a canonical frame and returns the stage
result; ``run(frame, config)`` is the stage entry point used by recipes.
"""

from curate.rules.engine import (
    Problem,
    Rule,
    RuleError,
    RuleSet,
    apply,
    find_set,
    load_rules,
    run,
    shipped_sets,
)

__all__ = [
    "Problem",
    "Rule",
    "RuleError",
    "RuleSet",
    "apply",
    "find_set",
    "load_rules",
    "run",
    "shipped_sets",
]
