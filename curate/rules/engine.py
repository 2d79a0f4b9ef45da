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
"""

from __future__ import annotations

import difflib
import json
import os
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import yaml

from curate import yamlsafe
from curate.rules.checks import REGISTRY, Check, CheckError, Hit
from curate.rules.checks.structure import REQUIRED
from curate.stage import StageResult, empty_dropped, mark_dropped

STAGE = "filter"
ACTIONS = ("drop", "flag", "redact", "fix")
SCALAR_FIELDS = ("system", "question", "answer", "chosen", "rejected", "text")
HISTORY_FIELDS = {"history": None, "history_user": "user", "history_assistant": "assistant"}
ALIASES = {
    "any": ("system", "question", "answer", "chosen", "rejected", "text", "history"),
    "turns": ("question", "answer", "chosen", "rejected", "history"),
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


# -- locating rule sets ----------------------------------------------------------------------------
def rule_dirs() -> list[Path]:
    """Where shipped rule sets live, first match wins: $TAMIS_RULES_PATH (os.pathsep-separated),
    the source checkout's ``rules/``, then the installed copy under ``<prefix>/share/tamis/rules``."""
    import sys
    import sysconfig

    dirs = [Path(p) for p in os.environ.get("TAMIS_RULES_PATH", "").split(os.pathsep) if p]
    dirs.append(Path(__file__).resolve().parents[2] / "rules")
    for base in {sys.prefix, sysconfig.get_path("data")}:
        dirs.append(Path(base) / "share" / "tamis" / "rules")
    return [d for d in dirs if d.is_dir()]


def shipped_sets() -> dict[str, Path]:
    out: dict[str, Path] = {}
    for d in rule_dirs():
        for p in sorted(d.glob("*.yaml")):
            out.setdefault(p.stem, p)
    return out


def find_set(ref: str | Path, base_dir: Path | None = None) -> Path:
    """A path (absolute, or relative to ``base_dir`` / the working directory) or a shipped set name."""
    ref = str(ref)
    cands = []
    p = Path(ref).expanduser()
    if base_dir is not None and not p.is_absolute():
        cands += [base_dir / p, base_dir / f"{ref}.yaml"]
    cands += [p, Path(f"{ref}.yaml")]
    for c in cands:
        if c.is_file():
            return c
    sets = shipped_sets()
    name = Path(ref).name.removesuffix(".yaml").removesuffix(".yml")
    if name in sets and ("/" not in ref or not p.exists()):
        return sets[name]
    hint = difflib.get_close_matches(name, list(sets), n=1)
    raise FileNotFoundError(
        f"rule set {ref!r} not found (no such file; shipped sets: {', '.join(sets) or 'none'})"
        + (f"; did you mean {hint[0]!r}?" if hint else "")
    )


# -- YAML with line numbers ------------------------------------------------------------------------
class LineDict(dict):
    line: int = 0
    lines: dict

    def line_of(self, key: str) -> int:
        return self.lines.get(key, self.line)


class LineList(list):
    line: int = 0
    lines: list


class _Loader(yamlsafe.BoundedSafeLoader):
    pass


def _mapping(loader: _Loader, node: yaml.MappingNode) -> LineDict:
    loader.flatten_mapping(node)
    d = LineDict()
    d.line, d.lines = node.start_mark.line + 1, {}
    for k_node, v_node in node.value:
        key = loader.construct_object(k_node, deep=True)
        if key in d:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first on line {d.lines[key]})", k_node.start_mark
            )
        d[key] = loader.construct_object(v_node, deep=True)
        d.lines[key] = k_node.start_mark.line + 1
    return d


def _sequence(loader: _Loader, node: yaml.SequenceNode) -> LineList:
    out = LineList(loader.construct_object(n, deep=True) for n in node.value)
    out.line, out.lines = node.start_mark.line + 1, [n.start_mark.line + 1 for n in node.value]
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _sequence)


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


# -- the rule model --------------------------------------------------------------------------------
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


def _type_name(t: tuple[type, ...]) -> str:
    names = {
        str: "a string",
        int: "an integer",
        float: "a number",
        bool: "true/false",
        list: "a list",
        dict: "a mapping",
    }
    return " or ".join(names.get(x, x.__name__) for x in t if x is not type(None))


def _type_ok(value: Any, types: tuple[type, ...]) -> bool:
    if isinstance(value, bool) and bool not in types:
        return False
    return isinstance(value, types)


def _suggest(word: str, options) -> str:
    m = difflib.get_close_matches(str(word), list(options), n=1)
    return f"; did you mean {m[0]!r}?" if m else ""


class _Builder:
    """Reads files (following includes), validates them and collects every problem."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []
        self.rules: dict[str, Rule] = {}
        self.settings: dict[str, Any] = {}
        self.files: list[str] = []
        self.stack: list[Path] = []
        self.name = ""
        self.description = ""

    def err(self, file: str, line: int | None, key: str, msg: str) -> None:
        self.problems.append(Problem(file, line, key, msg))

    def load_file(self, path: Path, *, top: bool) -> None:
        path = path.resolve()
        fname = str(path)
        if path in self.stack:
            chain = " -> ".join(p.name for p in [*self.stack, path])
            self.err(str(self.stack[-1]), None, "include", f"include cycle: {chain}")
            return
        if str(path) in self.files:
            return  # included twice (diamond): once is enough
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            self.err(fname, None, "", f"cannot read: {exc.strerror or exc}")
            return
        except UnicodeDecodeError as exc:
            self.err(fname, None, "", f"not UTF-8 text: {exc}")
            return
        try:
            doc = yaml.load(text, Loader=_Loader)  # noqa: S506 - SafeLoader subclass
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
            msg = " ".join(
                str(x) for x in (getattr(exc, "context", None), getattr(exc, "problem", None)) if x
            )
            self.err(fname, mark.line + 1 if mark else None, "", f"YAML syntax error: {msg or exc}")
            return
        if doc is None:
            doc = LineDict()
            doc.line, doc.lines = 1, {}
        if not isinstance(doc, dict):
            self.err(fname, 1, "", "a rule set must be a mapping with keys: " + ", ".join(SET_KEYS))
            return
        self.files.append(fname)
        for key in doc:
            if key not in SET_KEYS:
                self.err(
                    fname,
                    doc.line_of(key),
                    str(key),
                    "unknown key" + _suggest(key, SET_KEYS) + f" (allowed: {', '.join(SET_KEYS)})",
                )
        if top:
            self.name = str(doc.get("name") or path.stem)
            self.description = str(doc.get("description") or "")
        self.stack.append(path)
        inc = doc.get("include") or []
        if isinstance(inc, str):
            inc = [inc]
        if not isinstance(inc, list):
            self.err(fname, doc.line_of("include"), "include", "expected a set name or a list of them")
            inc = []
        for k, ref in enumerate(inc):
            line = inc.lines[k] if isinstance(inc, LineList) else doc.line_of("include")
            try:
                self.load_file(find_set(str(ref), path.parent), top=False)
            except FileNotFoundError as exc:
                self.err(fname, line, f"include[{k}]", str(exc))
        self.stack.pop()
        self._settings(doc, fname)
        rules = doc.get("rules")
        if rules is not None and not isinstance(rules, list):
            self.err(
                fname, doc.line_of("rules"), "rules", "expected a list of rules (each starting with '- id:')"
            )
            rules = []
        for k, raw in enumerate(rules or []):
            self._rule(raw, k, fname, rules.lines[k] if isinstance(rules, LineList) else None, path.parent)
        self._overrides(doc.get("overrides"), fname, doc.line_of("overrides"), path.parent)

    def _settings(self, doc: LineDict, fname: str) -> None:
        s = doc.get("settings")
        if s is None:
            return
        if not isinstance(s, dict):
            self.err(fname, doc.line_of("settings"), "settings", "expected a mapping")
            return
        for k, v in s.items():
            line = s.line_of(k) if isinstance(s, LineDict) else None
            if k not in SETTINGS:
                self.err(
                    fname,
                    line,
                    f"settings.{k}",
                    "unknown setting" + _suggest(k, SETTINGS) + f" (allowed: {', '.join(SETTINGS)})",
                )
            elif not _type_ok(v, SETTINGS[k]):
                self.err(fname, line, f"settings.{k}", f"expected {_type_name(SETTINGS[k])}, got {v!r}")
            elif k == "placeholder" and not self._placeholder(v, fname, line, f"settings.{k}"):
                continue
            else:
                if k == "lid_model" and v and not Path(v).is_absolute():
                    v = str(Path(fname).parent / v)
                self.settings[k] = v

    def _fields(self, value: Any, fname: str, line: int | None, key: str) -> tuple[str, ...] | None:
        vals = [value] if isinstance(value, str) else value
        if not isinstance(vals, list) or not vals:
            self.err(fname, line, key, "expected a field name or a non-empty list of them")
            return None
        out: list[str] = []
        for v in vals:
            if v in ALIASES:
                out += [f for f in ALIASES[v] if f not in out]
            elif v in FIELDS:
                if v not in out:
                    out.append(v)
            else:
                opts = (*FIELDS, *ALIASES)
                self.err(
                    fname,
                    line,
                    key,
                    f"unknown field {v!r}{_suggest(v, opts)} (fields: {', '.join(FIELDS)}; groups: {', '.join(ALIASES)})",
                )
                return None
        return tuple(out)

    def _lang(self, value: Any, fname: str, line: int | None, key: str) -> tuple[str, ...] | None:
        vals = [value] if isinstance(value, str) else value
        if value is None:
            return None
        if not isinstance(vals, list) or not all(isinstance(v, str) for v in vals):
            self.err(fname, line, key, "expected a language code or a list of them")
            return None
        if not vals:
            self.err(
                fname,
                line,
                key,
                "empty list: name at least one language, or leave lang out to judge every row",
            )
            return None
        return tuple(vals)

    def _placeholder(self, value: Any, fname: str, line: int | None, key: str) -> bool:
        """A redaction placeholder is a string whose only fields are {type} and {TYPE}."""
        if not isinstance(value, str):
            self.err(fname, line, key, f"expected a string such as '[{{TYPE}}]', got {value!r}")
            return False
        try:
            value.format(type="email", TYPE="EMAIL")
        except (KeyError, IndexError, ValueError, AttributeError) as exc:
            what = f"unknown field {{{exc.args[0]}}}" if isinstance(exc, KeyError) else str(exc)
            self.err(
                fname,
                line,
                key,
                f"{value!r}: {what}; the placeholder may use {{TYPE}} (EMAIL) and {{type}} (email), and "
                f"{{{{ }}}} for literal braces",
            )
            return False
        return True

    def _params(
        self, check: str, params: Any, fname: str, line: int | None, key: str, partial: bool = False
    ) -> dict | None:
        if params is None:
            return {}
        if not isinstance(params, dict):
            self.err(fname, line, key, "expected a mapping of parameter: value")
            return None
        spec = REGISTRY[check].params
        ok = True
        for p, v in params.items():
            pline = params.line_of(p) if isinstance(params, LineDict) else line
            if p not in spec:
                allowed = ", ".join(spec) or "none"
                self.err(
                    fname,
                    pline,
                    f"{key}.{p}",
                    f"check {check!r} has no parameter {p!r}{_suggest(p, spec)} (parameters: {allowed})",
                )
                ok = False
            elif v is None:
                if spec[p].required:
                    self.err(fname, pline, f"{key}.{p}", "required, cannot be null")
                    ok = False
            elif not _type_ok(v, spec[p].types):
                self.err(fname, pline, f"{key}.{p}", f"expected {_type_name(spec[p].types)}, got {v!r}")
                ok = False
            elif spec[p].choices and v not in spec[p].choices:
                self.err(
                    fname, pline, f"{key}.{p}", f"{v!r} is not one of {', '.join(map(str, spec[p].choices))}"
                )
                ok = False
        for p, s in spec.items():
            if s.required and not partial and params.get(p) is None:
                self.err(fname, line, f"{key}.{p}", "missing required parameter")
                ok = False
        return dict(params) if ok else None

    def _rule(self, raw: Any, k: int, fname: str, line: int | None, base: Path) -> None:
        where = f"rules[{k}]"
        if not isinstance(raw, dict):
            self.err(fname, line, where, "each rule must be a mapping with id, description, check, action")
            return
        line = raw.line if isinstance(raw, LineDict) else line
        ln = raw.line_of if isinstance(raw, LineDict) else (lambda _k: line)
        rid = raw.get("id")
        if rid is not None:
            where = f"rules[{k}] ({rid})"
        bad = False
        for key in raw:
            if key not in RULE_KEYS:
                self.err(
                    fname,
                    ln(key),
                    f"{where}.{key}",
                    "unknown key" + _suggest(key, RULE_KEYS) + f" (allowed: {', '.join(RULE_KEYS)})",
                )
                bad = True
        for req in ("id", "description", "check"):
            if raw.get(req) in (None, ""):
                self.err(fname, line, f"{where}.{req}", "missing")
                bad = True
        if bad:
            return
        if not isinstance(rid, str) or not ID_RE.match(rid):
            self.err(fname, ln("id"), f"{where}.id", f"{rid!r}: use letters, digits, '-', '_' or '.'")
            return
        if rid in self.rules:
            prev = self.rules[rid]
            self.err(
                fname,
                ln("id"),
                f"{where}.id",
                f"duplicate rule id {rid!r} (defined in {prev.file}:{prev.line}); use overrides: to change an included rule",
            )
            return
        check = raw["check"]
        if check not in REGISTRY:
            self.err(
                fname,
                ln("check"),
                f"{where}.check",
                f"unknown check {check!r}{_suggest(check, REGISTRY)} (see `curate rules checks`)",
            )
            return
        action = raw.get("action", "drop")
        if "fields" in raw and REGISTRY[check].row_level:
            self._row_level_fields(check, fname, ln("fields"), f"{where}.fields")
            return
        fields = (
            self._fields(raw["fields"], fname, ln("fields"), f"{where}.fields")
            if "fields" in raw
            else REGISTRY[check].default_fields
        )
        params = self._params(check, raw.get("params"), fname, ln("params"), f"{where}.params")
        lang = self._lang(raw.get("lang"), fname, ln("lang"), f"{where}.lang")
        enabled = raw.get("enabled", True)
        if not isinstance(enabled, bool):
            self.err(fname, ln("enabled"), f"{where}.enabled", f"expected true/false, got {enabled!r}")
            return
        ph = raw.get("placeholder")
        if ph is not None and not self._placeholder(ph, fname, ln("placeholder"), f"{where}.placeholder"):
            return
        if "lang" in raw and raw.get("lang") is not None and lang is None:
            return
        if fields is None or params is None:
            return
        self.rules[rid] = Rule(
            rid, str(raw["description"]), check, fields, params, action, lang, enabled, ph, fname, line
        )
        self.rules[rid].base_dir = base  # type: ignore[attr-defined]

    def _row_level_fields(self, check: str, fname: str, line: int | None, key: str) -> None:
        spec = REGISTRY[check]
        knobs = [p for p in ("answer_fields", "compare_to") if p in spec.params]
        hint = f"; choose what it compares with params {' and '.join(knobs)}" if knobs else ""
        self.err(
            fname,
            line,
            key,
            f"check {check!r} looks at whole rows ({', '.join(spec.default_fields)}) and has no fields "
            f"setting{hint}",
        )

    def _overrides(self, ov: Any, fname: str, line: int | None, base: Path) -> None:
        if ov is None:
            return
        if not isinstance(ov, dict):
            self.err(fname, line, "overrides", "expected a mapping of rule id: changes")
            return
        for rid, change in ov.items():
            oline = ov.line_of(rid) if isinstance(ov, LineDict) else line
            self.override(rid, change, fname, oline)

    def override(self, rid: str, change: Any, fname: str, line: int | None) -> None:
        key = f"overrides.{rid}"
        if rid not in self.rules:
            self.err(fname, line, key, f"no rule {rid!r} to override{_suggest(rid, self.rules)}")
            return
        if not isinstance(change, dict):
            self.err(
                fname,
                line,
                key,
                "expected a mapping (params, action, fields, lang, enabled, description, placeholder)",
            )
            return
        rule = self.rules[rid]
        ln = change.line_of if isinstance(change, LineDict) else (lambda _k: line)
        for k, v in change.items():
            if k not in OVERRIDE_KEYS:
                self.err(
                    fname,
                    ln(k),
                    f"{key}.{k}",
                    "cannot override"
                    + _suggest(k, OVERRIDE_KEYS)
                    + f" (allowed: {', '.join(OVERRIDE_KEYS)})",
                )
            elif k == "params":
                p = self._params(rule.check, v, fname, ln(k), f"{key}.params", partial=True)
                if p is not None:
                    rule.params = {**rule.params, **p}
            elif k == "fields":
                if REGISTRY[rule.check].row_level:
                    self._row_level_fields(rule.check, fname, ln(k), f"{key}.fields")
                    continue
                f = self._fields(v, fname, ln(k), f"{key}.fields")
                if f is not None:
                    rule.fields = f
            elif k == "lang":
                rule.lang = self._lang(v, fname, ln(k), f"{key}.lang")
            elif k == "placeholder":
                if v is None or self._placeholder(v, fname, ln(k), f"{key}.placeholder"):
                    rule.placeholder = v
            elif k == "enabled":
                if isinstance(v, bool):
                    rule.enabled = v
                else:
                    self.err(fname, ln(k), f"{key}.enabled", f"expected true/false, got {v!r}")
            else:
                setattr(rule, k, v)
        rule.overridden = f"{fname}:{line}"  # type: ignore[attr-defined]

    def finish(self) -> RuleSet:
        """Check actions, languages and check-specific parameters once overrides are applied."""
        for rule in self.rules.values():
            spec = REGISTRY[rule.check]
            where = f"rule {rule.id}"
            src = getattr(rule, "overridden", None) or f"{rule.file}:{rule.line}"
            f, _, l_ = src.rpartition(":")
            line = int(l_) if l_.isdigit() else None
            if rule.action not in ACTIONS:
                self.err(
                    f,
                    line,
                    f"{where}.action",
                    f"{rule.action!r} is not one of {', '.join(ACTIONS)}{_suggest(rule.action, ACTIONS)}",
                )
                continue
            if rule.action == "fix" and not spec.can_fix:
                fixable = sorted(n for n, c in REGISTRY.items() if c.can_fix)
                self.err(
                    f,
                    line,
                    f"{where}.action",
                    f"check {rule.check!r} cannot fix text (fixable checks: {', '.join(fixable)})",
                )
                continue
            if rule.action == "redact" and not spec.can_redact:
                self.err(f, line, f"{where}.action", f"check {rule.check!r} cannot redact (use pii or regex)")
                continue
            if rule.action in ("fix", "redact") and spec.row_level:
                self.err(
                    f, line, f"{where}.action", f"check {rule.check!r} looks at whole rows; use drop or flag"
                )
                continue
            for lg in rule.lang or ():
                if self.settings.get("lid_model") and re.fullmatch(r"[a-z]{2,3}", lg):
                    continue  # a fastText model can name any language
                if lg not in LANGS:
                    self.err(
                        f,
                        line,
                        f"{where}.lang",
                        f"unknown language {lg!r}{_suggest(lg, LANGS)} (known by script: {', '.join(LANGS)}; set settings.lid_model for others)",
                    )
            try:
                rule.instance = spec(rule.params, getattr(rule, "base_dir", None))
            except CheckError as exc:
                key = f"{where}.params" + (f".{exc.param}" if exc.param else "")
                self.err(f, line, key, str(exc))
        if self.problems:
            raise RuleError(self.problems)
        return RuleSet(list(self.rules.values()), self.files, self.settings, self.name, self.description)


def parse_set_option(item: str) -> tuple[str, str, Any]:
    """``rule-id.param=value`` or ``rule-id.action=flag`` (value parsed as YAML) -> (id, key, value)."""
    if "=" not in item or "." not in item.split("=", 1)[0]:
        raise ValueError(f"--set {item!r}: expected RULE.PARAM=VALUE (or RULE.action=flag)")
    lhs, value = item.split("=", 1)
    rid, key = lhs.rsplit(".", 1)
    try:
        parsed = yamlsafe.load(value) if value.strip() else ""
    except yaml.YAMLError:
        parsed = value
    return rid.strip(), key.strip(), parsed


def load_rules(
    refs: list[str | Path] | str | Path | None = None,
    *,
    sets: list[str] | tuple[str, ...] = (),
    disable: list[str] | tuple[str, ...] = (),
) -> RuleSet:
    """Load rule sets by name or path (default: the shipped ``default`` set); ``sets`` are command-line
    overrides (``rule.param=value``), ``disable`` rule ids to switch off. Raises RuleError."""
    if refs is None or refs == []:
        refs = ["default"]
    if isinstance(refs, str | Path):
        refs = [refs]
    b = _Builder()
    for k, ref in enumerate(refs):
        try:
            path = find_set(str(ref))
        except FileNotFoundError as exc:
            b.err(str(ref), None, "", str(exc))
            continue
        b.load_file(path, top=k == 0)
    for item in sets:
        try:
            rid, key, value = parse_set_option(item)
        except ValueError as exc:
            b.err("<command line>", None, "--set", str(exc))
            continue
        known_rule = b.rules.get(rid)
        if key in OVERRIDE_KEYS and key != "params":
            change = {key: value}
        elif (
            known_rule is not None and key not in REGISTRY[known_rule.check].params and key in ("id", "check")
        ):
            b.err("<command line>", None, f"--set {item}", f"{key} cannot be changed")
            continue
        else:
            change = {"params": {key: value}}
        b.override(rid, change, "<command line>", None)
    for rid in disable:
        b.override(rid, {"enabled": False}, "<command line>", None)
    if len(refs) > 1:
        b.name = "+".join(Path(str(r)).stem for r in refs)
    return b.finish()


def lint(paths: list[str | Path]) -> dict[str, list[Problem]]:
    """Problems per file (an empty list means the file is fine)."""
    out: dict[str, list[Problem]] = {}
    for p in paths:
        try:
            load_rules([p])
            out[str(p)] = []
        except RuleError as exc:
            out[str(p)] = exc.problems
    return out


# -- running ---------------------------------------------------------------------------------------
def _history_frame(frame: pl.DataFrame, role: str | None) -> pl.DataFrame:
    """One row per history turn: _row (frame row), _turn (index in the history), role, content."""
    h = (
        frame.select(pl.int_range(pl.len(), dtype=pl.Int64).alias("_row"), pl.col("history"))
        .filter(pl.col("history").list.len() > 0)
        .with_columns(pl.int_ranges(pl.col("history").list.len()).alias("_turn"))
        .explode(["history", "_turn"])
        .unnest("history")
    )
    if role is not None:
        h = h.filter(pl.col("role") == role)
    return h


def _excerpt_hit(h: Hit, text: str | None) -> dict[str, Any]:
    d: dict[str, Any] = {"reason": h.reason}
    if h.start is not None and h.end is not None:
        d["span"] = [h.start, h.end]
        if h.match is not None:
            d["text"] = h.match if len(h.match) <= 80 else h.match[:79] + "…"
        elif text is not None:
            frag = text[h.start : h.end]
            d["text"] = frag if len(frag) <= 80 else frag[:79] + "…"
    return d


@dataclass
class _Run:
    frame: pl.DataFrame
    ruleset: RuleSet
    hits: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    stats: dict[str, dict[str, Any]] = field(default_factory=dict)
    pii: Counter = field(default_factory=Counter)
    _lang: pl.Series | None = None

    def lang(self) -> pl.Series:
        if self._lang is None:
            from curate.rules.checks.language import identify

            f = self.frame
            parts = [
                pl.col(c).fill_null("") for c in ("question", "answer", "chosen", "text") if c in f.columns
            ]
            joined = (
                f.select(pl.concat_str(parts, separator="\n").alias("t"))["t"]
                if parts
                else pl.Series([""] * f.height)
            )
            s = self.ruleset.settings
            self._lang = identify(joined, s.get("lid_model"), s.get("lid_min_confidence", 0.5))
        return self._lang

    def scope(self, rule: Rule) -> pl.Series | None:
        return self.lang().is_in(list(rule.lang)) if rule.lang else None

    def record(self, rule: Rule, row: int, field_name: str, hit: Hit, text: str | None) -> None:
        d = {"rule": rule.id, "action": rule.action, "field": field_name, **_excerpt_hit(hit, text)}
        self.hits.setdefault(row, []).append(d)


def _detect_field(rule: Rule, frame: pl.DataFrame, fname: str, s: pl.Series) -> pl.Series:
    fired = rule.instance.detect(s)
    if rule.check == "empty" and fname in REQUIRED:
        fired = fired | (s.is_null() & frame["kind"].is_in(list(REQUIRED[fname])))
    return fired.fill_null(False)


def apply(frame: pl.DataFrame, ruleset: RuleSet, *, stage: str = STAGE, progress=None) -> StageResult:
    """Run ``ruleset`` over a canonical frame: (kept, dropped, stats). Nothing is lost.
    ``progress(rule_id)`` is called after each rule (the CLI drives a progress bar with it)."""
    n = frame.height
    run = _Run(frame, ruleset)
    rules = ruleset.active
    for r in rules:
        run.stats[r.id] = {
            "check": r.check,
            "action": r.action,
            "fired": 0,
            "dropped": 0,
            "flagged": 0,
            "redacted": 0,
            "fixed": 0,
            "seconds": 0.0,
        }
    if n == 0:
        out = (
            frame
            if "flags" in frame.columns
            else frame.with_columns(pl.lit(None, pl.List(pl.Utf8)).alias("flags"))
        )
        return StageResult(out, empty_dropped(out), {"rules": run.stats, "pii": {}, "flagged": 0})
    # phase 1: redact and fix change the text
    for r in (r for r in rules if r.action in ("redact", "fix")):
        t0 = time.perf_counter()
        changed = _rewrite(run, r)
        run.stats[r.id]["redacted" if r.action == "redact" else "fixed"] = len(changed)
        run.stats[r.id]["fired"] = len(changed)
        run.stats[r.id]["seconds"] = round(time.perf_counter() - t0, 3)
        if progress is not None:
            progress(r.id)
    # phase 2: drop and flag read the repaired text; every rule runs on every row
    drop = pl.Series([False] * n)
    flags: dict[int, list[str]] = {}
    for r in (r for r in rules if r.action in ("drop", "flag")):
        t0 = time.perf_counter()
        fired = _judge(run, r)
        st = run.stats[r.id]
        st["fired"] = int(fired.sum())
        if r.action == "drop":
            drop = drop | fired
            st["dropped"] = st["fired"]
        else:
            st["flagged"] = st["fired"]
            for i in fired.arg_true().to_list():
                flags.setdefault(i, []).append(r.id)
        st["seconds"] = round(time.perf_counter() - t0, 3)
        if progress is not None:
            progress(r.id)
    out = run.frame
    # flags: earlier stages' flags are kept, this run's are appended
    old = out["flags"].to_list() if "flags" in out.columns else [None] * n
    new_flags = [((old[i] or []) + flags[i]) if i in flags else old[i] for i in range(n)]
    out = out.with_columns(pl.Series("flags", new_flags, dtype=pl.List(pl.Utf8)))
    drop_idx = drop.arg_true()
    kept = out.filter(~drop)
    dropped_rows = out.gather(drop_idx)
    reasons, details = [], []
    for i in drop_idx.to_list():
        hs = run.hits.get(i, [])
        first = next((h["rule"] for h in hs if h["action"] == "drop"), "rules")
        reasons.append(first)
        details.append([h for h in hs if h["action"] in ("drop", "flag")])
    dropped = mark_dropped(dropped_rows, stage, reasons, details) if len(drop_idx) else empty_dropped(out)
    stats = {
        "rules": run.stats,
        "pii": dict(sorted(run.pii.items())),
        # kept rows that this run's flag rules flagged (flags from earlier stages are not counted)
        "flagged": int((~drop.gather(list(flags))).sum()) if flags else 0,
        "rule_files": ruleset.files,
    }
    return StageResult(kept, dropped, stats)


def top_drop(rule_stats: dict[str, dict[str, Any]], rows: int) -> dict[str, Any] | None:
    """The rule that dropped most rows, its share and how to turn it off (the summaries name it: a
    default rule that removes a sixth of a domain set is the first thing to look at)."""
    best = max(rule_stats.items(), key=lambda kv: kv[1].get("dropped", 0), default=None)
    if best is None or not best[1].get("dropped"):
        return None
    rid, st = best
    return {
        "rule": rid,
        "dropped": int(st["dropped"]),
        "share": round(st["dropped"] / rows, 4) if rows else None,
        "disable": f"curate filter --disable {rid} (recipe: disable: [{rid}] under the filter stage)",
    }


def _field_series(run: _Run, fname: str) -> pl.Series | None:
    if fname in SCALAR_FIELDS:
        return run.frame[fname] if fname in run.frame.columns else None
    return None


def _judge(run: _Run, r: Rule) -> pl.Series:
    frame, n = run.frame, run.frame.height
    scope = run.scope(r)
    chk = r.instance
    if chk.row_level:
        fired = chk.detect_rows(frame).fill_null(False)
        if scope is not None:
            fired = fired & scope
        idx = fired.arg_true()
        if len(idx):
            for i, res in zip(idx.to_list(), chk.explain_rows(frame.gather(idx)), strict=True):
                if res is not None:
                    run.record(r, i, res[0], res[1], None)
                else:
                    run.record(r, i, ",".join(r.fields), Hit(chk.help), None)
        return fired
    fired = pl.Series([False] * n)
    for fname in r.fields:
        if fname in HISTORY_FIELDS:
            if "history" not in frame.columns:
                continue
            h = _history_frame(frame, HISTORY_FIELDS[fname])
            if h.height == 0:
                continue
            f_turn = chk.detect(h["content"]).fill_null(False)
            if r.check == "empty":
                f_turn = f_turn | h["content"].is_null()
            rows = h["_row"].filter(f_turn)
            if scope is not None:
                keep = scope.gather(rows)
                rows, sub = rows.filter(keep), h.filter(f_turn).filter(keep)
            else:
                sub = h.filter(f_turn)
            sub = sub.unique("_row", keep="first", maintain_order=True)  # one hit per row explains it
            texts = [t or "" for t in sub["content"].to_list()]
            for row, turn, text, hit in zip(
                sub["_row"].to_list(), sub["_turn"].to_list(), texts, chk.explain_batch(texts), strict=True
            ):
                run.record(r, row, f"history[{turn}]", hit or Hit(chk.help), text)
            if rows.len():
                fired = fired.scatter(rows.unique(), True)
            continue
        s = _field_series(run, fname)
        if s is None:
            continue
        f = _detect_field(r, frame, fname, s)
        if scope is not None:
            f = f & scope
        idx = f.arg_true()
        if not len(idx):
            continue
        texts = s.gather(idx).to_list()
        present = [k for k, t in enumerate(texts) if t is not None]
        hits: list[Hit | None] = [Hit(f"{fname} is missing")] * len(texts)
        for k, h in zip(present, chk.explain_batch([texts[k] for k in present]), strict=True):
            hits[k] = h
        for i, text, hit in zip(idx.to_list(), texts, hits, strict=True):
            run.record(r, i, fname, hit or Hit(chk.help), text)
        fired = fired | f
    return fired


def _rewrite(run: _Run, r: Rule) -> set[int]:
    """Apply a redact or fix rule; returns the rows whose text changed."""
    frame = run.frame
    scope = run.scope(r)
    placeholder = r.placeholder or run.ruleset.settings.get("placeholder", "[{TYPE}]")
    changed: set[int] = set()
    updates: dict[str, pl.Series] = {}
    for fname in r.fields:
        if fname in HISTORY_FIELDS:
            if "history" not in frame.columns:
                continue
            h = _history_frame(frame, HISTORY_FIELDS[fname])
            if h.height == 0:
                continue
            content = h["content"]
            new, rows = _rewrite_series(
                run, r, content, placeholder, scope.gather(h["_row"]) if scope is not None else None
            )
            if not rows:
                continue
            hist = frame["history"].to_list()
            for k in rows:
                i, turn = h["_row"][k], h["_turn"][k]
                hist[i] = [dict(t) for t in hist[i]]
                hist[i][turn]["content"] = new[k]
                changed.add(i)
            frame = frame.with_columns(pl.Series("history", hist, dtype=frame["history"].dtype))
            continue
        s = _field_series(run, fname)
        if s is None:
            continue
        new, rows = _rewrite_series(run, r, s, placeholder, scope)
        if rows:
            updates[fname] = new
            changed.update(rows)
    if updates:
        frame = frame.with_columns(*[v.alias(k) for k, v in updates.items()])
    run.frame = frame
    return changed


def _rewrite_series(
    run: _Run, r: Rule, s: pl.Series, placeholder: str, scope: pl.Series | None
) -> tuple[pl.Series, list[int]]:
    chk = r.instance
    s = s.cast(pl.Utf8)
    if r.action == "redact":
        cand = s.is_not_null()
        if scope is not None:
            cand = cand & scope
        idx = cand.arg_true()
        if not len(idx):
            return s, []
        sub = s.gather(idx)
        new_sub, counts = chk.redact(sub, placeholder)
        if r.check == "pii":
            run.pii.update(counts)
    else:
        fired = chk.detect(s).fill_null(False) & s.is_not_null()
        if scope is not None:
            fired = fired & scope
        idx = fired.arg_true()
        if not len(idx):
            return s, []
        sub = s.gather(idx)
        new_sub = chk.fix(sub)
    diff = (new_sub != sub).fill_null(False)
    rows = idx.filter(diff).to_list()
    if not rows:
        return s, []
    return s.scatter(idx, new_sub), rows


# -- stage entry point -----------------------------------------------------------------------------
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


def summary_rows(stats: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"rule": rid, **st} for rid, st in stats.get("rules", {}).items()]


def dumps_rule(rule: Rule) -> str:
    return json.dumps(rule.as_dict(), ensure_ascii=False)
