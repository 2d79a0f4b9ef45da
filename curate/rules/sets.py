"""Where rule sets live: the shipped sets (``default``, ``strict``, ``zh`` ...) and rule files named by
path, relative to the including file or the working directory."""

from __future__ import annotations

import difflib
import os
import sys
import sysconfig
from pathlib import Path


def rule_dirs() -> list[Path]:
    """Where shipped rule sets live, first match wins: $TAMIS_RULES_PATH (os.pathsep-separated),
    the source checkout's ``rules/``, then the installed copy under ``<prefix>/share/tamis/rules``."""
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
