"""filter: YAML rules that drop, flag, redact and fix rows (row scope)."""

from __future__ import annotations

import hashlib
import json
import weakref
from dataclasses import dataclass, field
from typing import Any

from curate.core.coerce import OptionError, dataclass_config
from curate.core.stage import Scope, Stage, StageContext

KEYS = ("rules", "set", "disable")


@dataclass
class FilterConfig:
    """The rule sets to apply and the overrides on top of them (the recipe's ``filter:`` keys)."""

    rules: tuple[str, ...] = field(
        default=("default",),
        metadata={
            "flags": ("-r", "--rules"),
            "split": False,
            "metavar": "SET|FILE",
            "help": "Rule set: a shipped name (default, zh, en, pii, strict) or a YAML file. Repeatable; "
            "later sets add rules.",
        },
    )
    set: tuple[str, ...] = field(
        default=(),
        metadata={
            "split": False,
            "metavar": "RULE.KEY=VALUE",
            "help": "Override a rule parameter (value parsed as YAML), or its action/fields/lang/enabled, "
            "e.g. --set too-long.max_chars=8000 --set identity-leak.action=flag. Repeatable.",
        },
    )
    disable: tuple[str, ...] = field(
        default=(), metadata={"split": False, "metavar": "RULE", "help": "Switch a rule off. Repeatable."}
    )
    # the content of the loaded rules (not just their names): set when the config is built, so that
    # editing a rule file changes the cache key and re-runs the filter
    rules_sha256: str = field(default="", init=False)

    def __post_init__(self) -> None:
        for k in KEYS:  # one name is a list of one (`rules: zh`), never split on commas
            value = getattr(self, k)
            setattr(self, k, (value,) if isinstance(value, str) else tuple(value or ()))

    def rule_options(self) -> dict[str, list[str]]:
        """The rule sets, overrides and disabled rules as the rules engine loads them (no rule set
        named: the default one)."""
        return {
            "rules": list(self.rules) or ["default"],
            "set": list(self.set),
            "disable": list(self.disable),
        }

    def ruleset(self):
        """The loaded rule set (a ``curate.rules.RuleSet``; raises its ``RuleError``), parsed once per
        config: :meth:`Filter.build_config` loads it for the cache key, then the stage runs this same
        object, so a run reads the YAML once."""
        loaded = _LOADED.get(id(self))
        if loaded is None:
            opts = self.rule_options()
            loaded = Filter.load().load_rules(opts["rules"], sets=opts["set"], disable=opts["disable"])
            _LOADED[id(self)] = loaded
            weakref.finalize(self, _LOADED.pop, id(self), None)  # the config is gone and its id may be reused
        return loaded


# config id -> its loaded rule set, beside the config rather than on it: a config holds settings only
# (its attributes are what the cache key, the manifest and the parity tests compare)
_LOADED: dict[int, Any] = {}


def invalid_ruleset(problems) -> str:
    """The message for a rule set that cannot be loaded: every problem on its own line (each names
    its file and line, or ``<command line>`` for ``--set``/``--disable``)."""
    return "invalid rule set:\n" + "\n".join(f"  {p}" for p in problems)


class Filter(Stage):
    name = "filter"
    suffix = "filtered"
    scope = Scope.ROW
    help = "Apply YAML rules: drop, flag, redact, fix."
    module = "curate.rules.engine"
    config = "curate.stages.filter:FilterConfig"
    command = "curate.commands.filter:filter_cmd"
    code = ("curate.rules",)
    path_options = ("rules",)

    @classmethod
    def build_config(cls, options: dict[str, Any], ctx: StageContext) -> FilterConfig:
        """``rules`` (names of shipped sets or YAML paths), ``set`` (``rule.param=value`` overrides),
        ``disable`` (rule ids). The rule set is loaded now, so a broken rule file fails before any
        stage runs, and its content (not just its name) goes into the cache key: editing a rule file
        re-runs the filter."""
        cfg = dataclass_config(FilterConfig, options)
        try:
            rs = cfg.ruleset()
        except cls.load().RuleError as exc:  # the rule set as a whole (rules, set and disable together)
            raise OptionError(None, invalid_ruleset(exc.problems)) from None
        rules = [{k: v for k, v in r.as_dict().items() if k != "defined_in"} for r in rs.rules]
        cfg.rules_sha256 = hashlib.sha256(
            json.dumps([rules, rs.settings], sort_keys=True, default=str, ensure_ascii=False).encode()
        ).hexdigest()[:16]
        return cfg

    # the loaded rule set itself, here and on the engine's workers (it pickles): nothing parses the
    # YAML again
    def run(self, frame):
        return self.stage_function()(frame, self.config_value.ruleset(), progress=self.ctx.progress)

    def distributed(self, frame, run_on):
        return run_on(self.stage_function(), frame, self.config_value.ruleset())
