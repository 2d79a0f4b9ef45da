"""The one JSON line of a `curate` invocation with ``--json``: its summary, or its error. Light (json
and click only): the group's error handler imports it, and `curate --help` must stay instant."""

from __future__ import annotations

import json
from typing import Any

import click


def json_mode() -> bool:
    """Whether this invocation asked for ``--json`` (the command's own flag, or seen by the group)."""
    ctx = click.get_current_context(silent=True)
    if ctx is None:
        return False
    if ctx.meta.get("curate.json"):
        return True
    while ctx is not None:
        if ctx.params.get("json_out"):
            return True
        ctx = ctx.parent
    return False


def emit_json(obj: dict[str, Any]) -> None:
    """Print the one JSON line of this invocation on stdout (a later failure prints no second one)."""
    click.echo(json.dumps(obj, ensure_ascii=False, default=str))
    ctx = click.get_current_context(silent=True)
    if ctx is not None:
        ctx.meta["curate.json_emitted"] = True


def json_error(message: str, code: int, **extra: Any) -> None:
    """With ``--json``: the error as the one JSON line on stdout (unless a summary was printed)."""
    if not json_mode():
        return
    ctx = click.get_current_context(silent=True)
    if ctx is not None and ctx.meta.get("curate.json_emitted"):
        return
    emit_json({"status": "error", "error": message, **extra, "exit_code": code})
