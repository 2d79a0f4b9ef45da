"""Which format a file (or one XLSX sheet, or one row of a mixed file) is in, and its column roles,
from the keys of its rows; and what a reject reason says when a row fits no format."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from curate.io.decode import InputError
from curate.io.formats import detect_format, explain_qa
from curate.io.rawrows import RawRow


@dataclass
class Plan:
    fmt: str
    ctx: dict[str, Any]
    explanation: str


def segments(raw_rows: list[RawRow], kind: str) -> list[tuple[str | None, list[RawRow]]]:
    """XLSX sheets are read each with its own header, so each gets its own format and roles."""
    if kind not in ("xlsx", "dataset"):
        return [(None, raw_rows)]
    out: dict[str | None, list[RawRow]] = {}
    for r in raw_rows:
        out.setdefault(r.sheet, []).append(r)
    return list(out.items())


def plan_segment(path, sheet, rows, fmt, mapping, desc, kind, given="given by --format") -> Plan:
    """Format and column roles from the keys of the first rows (of one sheet)."""
    where = f"{path}" + (f" (sheet {sheet})" if sheet is not None else "")
    keys: set[str] = set()
    for r in rows[:200]:
        keys |= set(r.values)
    keys.discard("__images__")
    file_fmt = fmt or detect_format(keys)
    if file_fmt is None and mapping:
        file_fmt = "qa" if "question" in mapping else ("text" if "text" in mapping else None)
    if file_fmt is None:
        raise InputError(
            f"{where}: cannot tell the format from its columns ({', '.join(sorted(keys)[:12])}); "
            "use --format, or --map question=COLUMN --map answer=COLUMN"
        )
    if file_fmt == "implicit-preference" and isinstance(rows[0].values.get("chosen"), str):
        file_fmt = "hh-rlhf"
    ctx: dict[str, Any] = {}
    if file_fmt == "canonical":
        return Plan(file_fmt, ctx, "")
    if file_fmt == "qa":
        roles = _qa_roles(where, keys, mapping)
        ctx["roles"] = roles
        role_txt = "; ".join(f"{k} <- {' + '.join(v)}" for k, v in roles.items())
        other = sorted(keys - {c for cols in roles.values() for c in cols})
        text = f"{where}: {desc}: plain question/answer table: {role_txt}" + (
            f"; kept in meta: {', '.join(other)}" if other else ""
        )
    elif file_fmt == "text":
        ctx["roles"] = {"text": mapping.get("text", ["text"])}
        text = f"{where}: {desc}: plain text (one document per {'line' if kind == 'txt' else 'row'})"
    else:
        why = given if fmt else f"detected from keys {', '.join(sorted(keys)[:8])}"
        text = f"{where}: {desc}: {file_fmt} format ({why})"
    return Plan(file_fmt, ctx, text)


def _qa_roles(where: str, keys: set[str], mapping: dict[str, list[str]]) -> dict[str, list[str]]:
    """A plain table's column roles; an error when --map names a missing column or no question or
    answer column is found."""
    roles = explain_qa(keys, mapping)
    missing = [c for cols in roles.values() for c in cols if c not in keys]
    if missing:
        raise InputError(
            f"{where}: --map names columns that do not exist: {', '.join(missing)} "
            f"(columns: {', '.join(sorted(keys))})"
        )
    if "question" not in roles:
        raise InputError(
            f"{where}: no question column found among {', '.join(sorted(keys))}; use --map question=COLUMN"
        )
    if "answer" not in roles and "chosen" not in roles and "label" not in roles:
        raise InputError(
            f"{where}: no answer column found among {', '.join(sorted(keys))} (question-only data "
            "cannot become SFT rows); use --map answer=COLUMN"
        )
    return roles


def row_format(values: dict, cache: dict) -> tuple[str, dict] | None:
    """The format one row's own keys name (with its column roles for a plain Q&A row), or None."""
    keys = frozenset(k for k in values if k != "__images__")
    if keys in cache:
        return cache[keys]
    found = detect_format(set(keys))
    result: tuple[str, dict] | None = None
    if found == "implicit-preference" and isinstance(values.get("chosen"), str):
        found = "hh-rlhf"
    if found == "qa":
        roles = explain_qa(set(keys), {})
        if "question" in roles and "answer" in roles:
            result = ("qa", {"roles": roles})
    elif found == "text":
        result = ("text", {"roles": {"text": ["text"]}})
    elif found is not None and found != "canonical":
        result = (found, {})
    cache[keys] = result
    return result


# the keys each format needs (what a reject reason names as expected)
_REQUIRED = {
    "alpaca": ("instruction", "output"),
    "sharegpt": ("conversations",),
    "openai": ("messages",),
    "llamafactory-preference": ("conversations", "chosen", "rejected"),
    "llamafactory-v1-preference": ("chosen_messages", "rejected_messages"),
    "trl-preference": ("prompt", "chosen", "rejected"),
    "implicit-preference": ("chosen", "rejected"),
    "hh-rlhf": ("chosen", "rejected"),
    "trl-prompt-completion": ("prompt", "completion"),
}


def expected_vs_found(reason: str, plan: Plan, values: dict) -> str:
    """A row that fits no format says what the file's format expects and what the row holds."""
    if plan.fmt in ("qa", "text"):
        need = tuple(c for cols in plan.ctx.get("roles", {}).values() for c in cols)
    else:
        need = _REQUIRED.get(plan.fmt, ())
    if plan.fmt == "alpaca" and "chosen" in values and "rejected" in values:
        need = ("instruction", "chosen", "rejected")
    missing = [k for k in need if k not in values]
    if not missing:
        return reason
    found = ", ".join(sorted(str(k) for k in values if k != "__images__")[:12]) or "no fields"
    return f"{reason}: fits no known format (expected {plan.fmt} fields {', '.join(need)}; found {found})"
