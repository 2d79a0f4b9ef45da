"""`train X` with no arguments does the obvious thing: the newest curated file in the working directory
whose rows suit the stage (later curate stages first: an export is what a trainer is meant to take), and
``train.yaml`` / ``tamis.yaml`` found there as the config. On the ``train X --help`` path."""

from __future__ import annotations

import json
from pathlib import Path

from curate import stages as curate_stages
from curate.stages import STAGE_SUFFIX
from train.config import STAGE_KINDS

# later curate stages first: an export is what a trainer is meant to take
_STAGE_ORDER = tuple(reversed(curate_stages.names()))


def _stage_rank(name: str, stem: str) -> int:
    """Where a file named by a curate stage (data.scored.jsonl, or the stage name itself) sits in
    _STAGE_ORDER; 99 for anything else."""
    for i, s in enumerate(_STAGE_ORDER):
        for tag in (STAGE_SUFFIX.get(s, s), s):
            if f".{tag}." in name or stem.endswith(tag):
                return i
    return 99


def _first_kind(path: Path) -> str | None:
    try:
        if path.suffix == ".jsonl":
            with open(path, encoding="utf-8") as fh:
                line = fh.readline()
            return json.loads(line).get("kind")
        if path.suffix == ".parquet":
            import polars as pl

            return pl.read_parquet(path, n_rows=1)["kind"][0]
    except Exception:
        return None
    return None


def find_curated(stage: str, where: Path) -> Path | None:
    """The newest curated file in ``where`` (or one level below) whose rows suit ``stage``."""
    cands = []
    for pat in ("*.jsonl", "*.parquet", "*/*.jsonl", "*/*.parquet"):
        for p in where.glob(pat):
            if p.name.endswith((".dropped.jsonl", ".rejects.jsonl")) or "runs" in p.parts:
                continue
            kind = _first_kind(p)
            if kind in STAGE_KINDS[stage]:
                rank = _stage_rank(p.name, p.stem)
                cands.append((rank, -p.stat().st_mtime, p))
    return sorted(cands)[0][2] if cands else None


def auto_config(stage: str, config_file: str | None, console) -> str | None:
    if config_file:
        return config_file
    for name in ("train.yaml", "tamis.yaml"):
        if Path(name).is_file():
            console.print(f"using config [bold]{name}[/bold] found in the current directory")
            return name
    return None
