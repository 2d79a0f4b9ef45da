"""Load, validate and run YAML rule sets.

A rule set file::

    name: my-rules
    description: what the set is for
    include: [default]            # shipped set names or paths (relative to this file)
    settings:                     # optional, for the whole set
      lid_model: null             # fastText language-id model used for `lang:` scopes
      placeholder: "[{TYPE}]"     # default redaction placeholder
    overrides:                    # change rules that came from an include
      answer-too-long: {params: {max_chars: 4000}}
      identity-leak: {action: flag}
      html-leftover: {enabled: false}
    rules:
      - id: no-lorem
        description: Lorem ipsum filler
        check: keywords
        fields: [answer]
        params: {words: [lorem ipsum]}
        action: drop              # drop | flag | redact | fix
        lang: [en]                # optional: only rows in these languages

Errors name the file, line and key (``rules.yaml:12: rules[3].params.max_chars: expected an
integer, got 'many'``); :func:`load_rules` collects every problem before raising.

Running: redact and fix rules run first, in file order, and change the text; then drop and flag rules
all run on the repaired text, so every rule that fires on a row is reported, with the field, the reason
and the character span. A row is dropped when any drop rule fired.

This module is the filter stage's entry point (:func:`run`); the work lives beside it and is
re-exported here: :mod:`~curate.rules.sets` (finding shipped sets and files),
:mod:`~curate.rules.yamllines` (YAML with line numbers), :mod:`~curate.rules.loading` (includes,
overrides, validation, lint), :mod:`~curate.rules.model` (Rule, RuleSet, Problem) and
:mod:`~curate.rules.running` (applying a set to a frame, stats).
"""

from __future__ import annotations

import json
from typing import Any

import polars as pl

from curate.rules.loading import lint, load_rules, parse_set_option
from curate.rules.model import (
    ACTIONS,
    ALIASES,
    FIELDS,
    HISTORY_FIELDS,
    ID_RE,
    LANGS,
    OVERRIDE_KEYS,
    RULE_KEYS,
    SCALAR_FIELDS,
    SET_KEYS,
    SETTINGS,
    STAGE,
    Problem,
    Rule,
    RuleError,
    RuleSet,
)
from curate.rules.running import apply, summary_rows, top_drop
from curate.rules.sets import find_set, rule_dirs, shipped_sets
from curate.rules.yamllines import LineDict, LineList
from curate.stage import StageResult


def run(frame: pl.DataFrame, config: dict[str, Any] | RuleSet | None = None, *, progress=None) -> StageResult:
    """The stage contract: ``config`` is a RuleSet or ``{"rules": [names or paths], "set":
    ["rule.param=value"], "disable": [rule ids]}``. ``progress``: a factory ``progress(description,
    total) -> tick`` (curate.progress), ticked once per rule."""
    if isinstance(config, RuleSet):
        rs = config
    else:
        config = config or {}
        refs = config.get("rules") or ["default"]
        rs = load_rules(
            refs if isinstance(refs, list) else [refs],
            sets=config.get("set", ()),
            disable=config.get("disable", ()),
        )
    if progress is None:
        return apply(frame, rs)
    tick = progress("filter", len(rs.active), unit="rules")
    return apply(frame, rs, progress=lambda rule_id: tick(1))


def dumps_rule(rule: Rule) -> str:
    return json.dumps(rule.as_dict(), ensure_ascii=False)


__all__ = [
    "ACTIONS",
    "ALIASES",
    "FIELDS",
    "HISTORY_FIELDS",
    "ID_RE",
    "LANGS",
    "OVERRIDE_KEYS",
    "RULE_KEYS",
    "SCALAR_FIELDS",
    "SET_KEYS",
    "SETTINGS",
    "STAGE",
    "LineDict",
    "LineList",
    "Problem",
    "Rule",
    "RuleError",
    "RuleSet",
    "apply",
    "dumps_rule",
    "find_set",
    "lint",
    "load_rules",
    "parse_set_option",
    "rule_dirs",
    "run",
    "shipped_sets",
    "summary_rows",
    "top_drop",
]
