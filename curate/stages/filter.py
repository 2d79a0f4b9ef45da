"""filter: YAML rules that drop, flag, redact and fix rows (row scope)."""

from __future__ import annotations

import difflib
import hashlib
import json
from typing import Any

from curate.core.coerce import OptionError
from curate.core.stage import Scope, Stage, StageContext

KEYS = ("rules", "set", "disable")


class Filter(Stage):
    name = "filter"
    suffix = "filtered"
    scope = Scope.ROW
    help = "Apply YAML rules: drop, flag, redact, fix."
    module = "curate.rules.engine"
    command = "curate.commands.filter:filter_cmd"
    code = ("curate.rules",)
    path_options = ("rules",)
    options = KEYS  # no Config dataclass: the rule set is the config (loaded and hashed at build time)

    @classmethod
    def build_config(cls, options: dict[str, Any], ctx: StageContext) -> dict[str, Any]:
        """``rules`` (names of shipped sets or YAML paths), ``set`` (``rule.param=value`` overrides),
        ``disable`` (rule ids). The rule set is loaded now, so a broken rule file fails before any
        stage runs, and its content (not just its name) goes into the cache key: editing a rule file
        re-runs the filter."""
        for k in options:
            if k not in KEYS:
                close = difflib.get_close_matches(k, KEYS, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise OptionError(k, f"unknown option{hint}; options: {', '.join(KEYS)}")
        cfg = {k: options[k] for k in KEYS if k in options}
        for k in KEYS:
            if k in cfg and isinstance(cfg[k], str):
                cfg[k] = [cfg[k]]
        try:
            rs = cls.load().load_rules(
                cfg.get("rules") or ["default"], sets=cfg.get("set", ()), disable=cfg.get("disable", ())
            )
        except Exception as exc:  # RuleError lists every problem with file and line
            raise OptionError("rules", str(exc)) from None
        rules = [{k: v for k, v in r.as_dict().items() if k != "defined_in"} for r in rs.rules]
        cfg["rules_sha256"] = hashlib.sha256(
            json.dumps([rules, rs.settings], sort_keys=True, default=str, ensure_ascii=False).encode()
        ).hexdigest()[:16]
        return cfg

    @property
    def rule_options(self) -> dict[str, Any]:
        return {k: v for k, v in self.config_value.items() if k in KEYS}

    def run(self, frame):
        return self.stage_function()(frame, self.rule_options, progress=self.ctx.progress)

    def distributed(self, frame, run_on):
        return run_on(self.stage_function(), frame, self.rule_options)
