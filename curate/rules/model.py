"""The rule model: a :class:`Rule` (one YAML rule after includes and overrides), a :class:`RuleSet`
(what :func:`curate.rules.loading.load_rules` returns), the :class:`Problem` / :class:`RuleError` a
broken file gives (file, line, key, message), and the vocabulary of the YAML format."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from curate.core import vocab
from curate.rules.checks import Check

STAGE = "filter"
ACTIONS = ("drop", "flag", "redact", "fix")
SCALAR_FIELDS = ("system", *vocab.TEXT_FIELDS)
HISTORY_FIELDS = {"history": None, "history_user": "user", "history_assistant": "assistant"}
ALIASES = {
    "any": (*SCALAR_FIELDS, "history"),
    "turns": (*vocab.TURN_FIELDS, "history"),
    "responses": ("answer", "chosen", "history_assistant"),
    "prompts": ("question", "history_user"),
}
FIELDS = SCALAR_FIELDS + tuple(HISTORY_FIELDS)
LANGS = ("zh", "en", "ja", "ko", "ru", "ar", "th", "hi", "mixed", "other")
SET_KEYS = ("name", "description", "include", "settings", "overrides", "rules")
RULE_KEYS = ("id", "description", "check", "fields", "params", "action", "lang", "enabled", "placeholder")
OVERRIDE_KEYS = ("description", "fields", "params", "action", "lang", "enabled", "placeholder")
SETTINGS = {"lid_model": (str, type(None)), "lid_min_confidence": (float, int), "placeholder": (str,)}
ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass
class Problem:
    file: str
    line: int | None
    key: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


class RuleError(ValueError):
    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


@dataclass
class Rule:
    id: str
    description: str
    check: str
    fields: tuple[str, ...]
    params: dict[str, Any]
    action: str
    lang: tuple[str, ...] | None = None
    enabled: bool = True
    placeholder: str | None = None
    file: str = ""
    line: int | None = None
    instance: Check | None = field(default=None, repr=False)

    def as_dict(self) -> dict[str, Any]:
        d = {
            "id": self.id,
            "description": self.description,
            "check": self.check,
            "fields": list(self.fields),
            "params": self.params,
            "action": self.action,
        }
        if self.lang:
            d["lang"] = list(self.lang)
        if self.placeholder:
            d["placeholder"] = self.placeholder
        if not self.enabled:
            d["enabled"] = False
        d["defined_in"] = f"{self.file}:{self.line}"
        return d


@dataclass
class RuleSet:
    rules: list[Rule]
    files: list[str]
    settings: dict[str, Any] = field(default_factory=dict)
    name: str = ""
    description: str = ""

    @property
    def active(self) -> list[Rule]:
        return [r for r in self.rules if r.enabled]
