"""Reading rule sets: files (following includes), settings, rules and overrides, validated with every
problem collected (``file:line: key: message``) before :class:`~curate.rules.model.RuleError` is
raised; ``--set``/``--disable`` from the command line; ``lint`` for ``curate rules lint``."""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any

import yaml

from curate import yamlsafe
from curate.rules.checks import REGISTRY, CheckError
from curate.rules.model import (
    ACTIONS,
    ALIASES,
    FIELDS,
    ID_RE,
    LANGS,
    OVERRIDE_KEYS,
    RULE_KEYS,
    SET_KEYS,
    SETTINGS,
    Problem,
    Rule,
    RuleError,
    RuleSet,
)
from curate.rules.sets import find_set
from curate.rules.yamllines import LineDict, LineList, LineLoader


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
            doc = yaml.load(text, Loader=LineLoader)  # noqa: S506 - SafeLoader subclass
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
