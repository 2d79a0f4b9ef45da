"""`curate filter` (apply YAML rule sets) and `curate rules list|show|lint|checks`."""

from __future__ import annotations

import difflib
import json
import sys
from typing import TYPE_CHECKING

import click

from curate.commands.common import EXIT_OK, EXIT_USAGE, fail
from curate.commands.generated import Invocation, StageCommand
from curate.stages.filter import invalid_ruleset

if TYPE_CHECKING:  # pragma: no cover
    from rich.console import Console
    from rich.table import Table

# The rules library (polars, numpy, yaml) and rich are imported where a command runs: not for --help.


def _load(rules, sets, disable):
    from curate.rules import RuleError, load_rules

    try:
        return load_rules(list(rules) or ["default"], sets=list(sets), disable=list(disable))
    except RuleError as exc:
        fail(invalid_ruleset(exc.problems))
    except FileNotFoundError as exc:
        fail(str(exc))


def _console(stderr: bool = False) -> Console:
    """A rich console that does not squeeze tables to 80 columns when output is not a terminal."""
    from rich.console import Console

    con = Console(stderr=stderr)
    if not con.is_terminal:
        con.width = 160
    return con


def _table(title: str, columns, **column_style) -> Table:
    """A left-titled table; ``columns``: names, or (name, justify) pairs."""
    from rich.markup import escape
    from rich.table import Table

    t = Table(title=escape(title), title_justify="left")
    for col in columns:
        name, justify = (col, "left") if isinstance(col, str) else col
        t.add_column(name, justify=justify, **column_style)
    return t


RULE_COLUMNS = ("fired", "dropped", "flagged", "redacted", "fixed")


def _rule_table(stats: dict, title: str) -> Table:
    t = _table(title, ("rule", "check", "action", *((c, "right") for c in (*RULE_COLUMNS, "s"))))
    for rid, st in stats.items():
        t.add_row(
            rid,
            st["check"],
            st["action"],
            *(f"{st[k]:,}" if st[k] else "·" for k in RULE_COLUMNS),
            f"{st['seconds']:.2f}",
        )
    return t


class FilterCommand(StageCommand):
    """Apply YAML rule sets to INPUT rows: drop, flag, redact, fix.

    Kept rows go to the output (with a `flags` column listing the flag rules that fired); dropped rows
    go to <output>.dropped.jsonl with every rule that fired, why, and the text span (drop_detail).
    Redact and fix rules run first and change the text; drop and flag rules then judge the repaired
    text. A per-rule table (fired, dropped, flagged, redacted, fixed) is printed on stderr, or with
    --json as part of the JSON summary on stdout. PII counts are per type; values are never printed.
    """

    stage = "filter"

    def report(self, run: Invocation, result) -> dict:
        from curate.rules.engine import top_drop

        ruleset = run.config.ruleset()  # the one the stage ran (loaded when the Config was built)
        stats = {
            "rule_sets": [str(f) for f in ruleset.files],
            "flagged": result.stats["flagged"],
            "pii": result.stats["pii"],
        }
        # the rule that dropped most, and how to disable it (from the per-rule counts: any engine)
        top = top_drop(result.stats["rules"], run.loaded.frame.height)
        if top is not None:
            stats["top_drop"] = top
        if run.json_out:
            stats["rules"] = result.stats["rules"]
        else:
            _console(stderr=True).print(_rule_table(result.stats["rules"], f"rules ({ruleset.name})"))
        return {"stats": stats}


filter_cmd = FilterCommand().command()


def json_option(help_text: str):
    return click.option("--json", "json_out", is_flag=True, help=help_text)


@click.group("rules")
def rules() -> None:
    """List, show and lint rule sets; list the checks a rule can use."""


@rules.command("list")
@json_option("Print as JSON.")
def rules_list(json_out):
    """The shipped rule sets (name, rules, description, file)."""
    from rich.markup import escape

    from curate.rules import load_rules, shipped_sets
    from curate.rules.engine import rule_dirs

    rows = []
    for name, path in shipped_sets().items():
        try:
            rs = load_rules([path])
            rows.append(
                {"name": name, "rules": len(rs.active), "description": rs.description, "file": str(path)}
            )
        except Exception as exc:  # a broken shipped file must still be listed
            rows.append({"name": name, "rules": None, "description": f"INVALID: {exc}", "file": str(path)})
    if json_out:
        click.echo(json.dumps(rows, ensure_ascii=False))
        return
    t = _table("rule sets", ("name", "rules", "description", "file"), overflow="fold")
    for r in rows:
        t.add_row(r["name"], str(r["rules"]), escape(r["description"]), r["file"])
    _console().print(t)
    if not rows:
        click.echo(
            f"no rule sets found (searched: {', '.join(map(str, rule_dirs())) or 'nothing'})", err=True
        )


@rules.command("show")
@click.argument("refs", nargs=-1)
@click.option("--set", "sets", multiple=True, metavar="RULE.KEY=VALUE", help="Apply an override first.")
@click.option("--disable", multiple=True, metavar="RULE", help="Switch a rule off first.")
@json_option("Print the resolved rules as JSON.")
@click.option(
    "--yaml", "yaml_out", is_flag=True, help="Print the resolved rules as one self-contained YAML set."
)
def rules_show(refs, sets, disable, json_out, yaml_out):
    """The resolved rules of REFS (shipped names or files; default: default), after includes and
    overrides: id, check, action, fields, language scope, parameters and where each was defined."""
    import yaml
    from rich.markup import escape

    rs = _load(refs, sets, disable)
    data = [r.as_dict() for r in rs.rules]
    if json_out:
        click.echo(
            json.dumps(
                {"name": rs.name, "files": rs.files, "settings": rs.settings, "rules": data},
                ensure_ascii=False,
            )
        )
        return
    if yaml_out:
        data = json.loads(json.dumps(data, ensure_ascii=False))  # plain dicts/lists for the YAML dumper
        doc = {"name": rs.name, "description": rs.description, "settings": rs.settings or None, "rules": data}
        for d in data:
            d.pop("defined_in", None)
        click.echo(yaml.safe_dump({k: v for k, v in doc.items() if v}, allow_unicode=True, sort_keys=False))
        return
    columns = ("id", "check", "action", "fields", "lang", "params", "defined in")
    t = _table(f"{rs.name}: {rs.description}", columns, overflow="fold")
    for r in rs.rules:
        params = json.dumps(r.params, ensure_ascii=False)
        t.add_row(
            r.id + ("" if r.enabled else " (off)"),
            r.check,
            r.action,
            ",".join(r.fields),
            ",".join(r.lang or ()) or "any",
            escape(params if len(params) <= 120 else params[:117] + "..."),
            f"{r.file.rsplit('/', 1)[-1]}:{r.line}",
        )
    _console().print(t)


@rules.command("lint")
@click.argument("files", nargs=-1, required=True)
@json_option("Print problems as JSON.")
def rules_lint(files, json_out):
    """Validate rule set FILES: YAML syntax, keys, checks, parameters, includes, overrides, regexes.
    Every problem is reported with file, line and key. Exit 0 when all files are valid, 2 otherwise."""
    from curate.rules.engine import lint

    result = lint(list(files))
    bad = {f: ps for f, ps in result.items() if ps}
    if json_out:
        click.echo(
            json.dumps(
                {
                    f: [{"file": p.file, "line": p.line, "key": p.key, "message": p.message} for p in ps]
                    for f, ps in result.items()
                },
                ensure_ascii=False,
            )
        )
    else:
        for f, ps in result.items():
            if not ps:
                click.echo(f"{f}: ok", err=True)
            for p in ps:
                click.echo(str(p), err=True)
    sys.exit(EXIT_USAGE if bad else EXIT_OK)


@rules.command("checks")
@click.argument("name", required=False)
def rules_checks(name):
    """The checks a rule can use (with NAME: its parameters, defaults and actions)."""
    from rich.markup import escape

    from curate.rules.checks import REGISTRY

    con = _console()
    if name is None:
        t = _table("checks", ("check", "what it finds", "actions", "default fields"), overflow="fold")
        for n, cls in sorted(REGISTRY.items()):
            acts = (
                ["drop", "flag"] + (["fix"] if cls.can_fix else []) + (["redact"] if cls.can_redact else [])
            )
            t.add_row(n, escape(cls.help), ",".join(acts), ",".join(cls.default_fields))
        con.print(t)
        return
    if name not in REGISTRY:
        hint = difflib.get_close_matches(name, list(REGISTRY), n=1)
        fail(f"no check {name!r}" + (f"; did you mean {hint[0]!r}?" if hint else ""))
    cls = REGISTRY[name]
    t = _table(f"{name}: {cls.help}", ("parameter", "type", "default", "meaning"), overflow="fold")
    for p, spec in cls.params.items():
        t.add_row(
            p, spec.type_name(), escape(json.dumps(spec.default, ensure_ascii=False)), escape(spec.help)
        )
    con.print(t)
