"""`--mix FILE:RATIO` on `train sft` / `train pt`: mix general data into the domain data.

The source article's warning: fine-tuning on domain data alone can make the model lose general ability
(catastrophic forgetting). Replaying a share of general data is the usual guard. RATIO is the share of the
*training set* that comes from FILE: with ``D`` domain rows and ratios ``r1..rk`` (sum < 1), the set has
``T = D / (1 - sum r)`` rows and FILE ``i`` contributes ``round(ri * T)`` of them. Rows are drawn without
replacement in an order fixed by ``--seed`` and the file's content (the same command always trains on the
same rows); a file with fewer rows than asked is repeated whole before the remainder is drawn, and the
plan says so. `train eval` then shows what the mix kept (loss per held-out set, general and domain).

Pure Python at import (``train.config`` validates the specs without loading anything heavy).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from train import data as D


class MixError(ValueError):
    """A malformed --mix spec (the message names it)."""


@dataclass(frozen=True)
class MixSpec:
    path: str
    ratio: float


def parse_mix(specs: list[str]) -> list[MixSpec]:
    """``FILE:RATIO`` strings -> specs; RATIO in (0, 1), ratios summing below 1. (The file is split at the
    last colon, so Windows drive letters and colons in names keep working.)"""
    out = []
    for spec in specs or []:
        path, sep, ratio_s = str(spec).rpartition(":")
        if not sep or not path.strip():
            raise MixError(f"mix {spec!r}: expected FILE:RATIO, e.g. general.jsonl:0.2")
        try:
            ratio = float(ratio_s)
        except ValueError:
            raise MixError(f"mix {spec!r}: RATIO {ratio_s!r} is not a number") from None
        if not 0 < ratio < 1:
            raise MixError(
                f"mix {spec!r}: RATIO must be in (0, 1) (the share of the training rows drawn from the file), "
                f"got {ratio}"
            )
        out.append(MixSpec(path.strip(), ratio))
    total = sum(m.ratio for m in out)
    if out and total >= 1:
        raise MixError(
            f"mix: the ratios sum to {total:g}; they must leave room for the domain data (sum < 1)"
        )
    return out


def planned_counts(domain_rows: int, specs: list[MixSpec]) -> list[int]:
    """How many rows each mixed file contributes to a set with ``domain_rows`` domain rows."""
    total = domain_rows / (1 - sum(m.ratio for m in specs)) if specs else domain_rows
    return [round(m.ratio * total) for m in specs]


def sample_indices(n_available: int, n_wanted: int, seed_key: str) -> list[int]:
    """``n_wanted`` row positions out of ``n_available``: whole passes over a shuffled file, then a
    deterministic sample of the rest (seeded by ``seed_key``, so the draw is reproducible)."""
    if n_available <= 0 or n_wanted <= 0:
        return []
    rng = random.Random(seed_key)
    out: list[int] = []
    while n_wanted - len(out) >= n_available:
        order = list(range(n_available))
        rng.shuffle(order)
        out += order
    out += sorted(rng.sample(range(n_available), n_wanted - len(out)))
    return out


def apply_mix(prep, specs: list[MixSpec], stage: str, loss_on: str, seed: int) -> list[dict[str, Any]]:
    """Append the sampled general rows to ``prep`` (a :class:`train.data.Prepared` of the domain data), and
    record the files in ``prep.files`` (so the run's data fingerprint covers them). Returns one summary
    per file for the plan."""
    domain = len(prep.rows)
    counts = planned_counts(domain, specs)
    summary = []
    for spec, wanted in zip(specs, counts, strict=True):
        if not Path(spec.path).exists():
            raise D.DataError(f"mix file not found: {spec.path}")
        general = D.prepare([spec.path], stage, loss_on)
        info = general.files[0]
        picked = sample_indices(len(general.rows), wanted, f"{seed}:{info['sha256']}")
        for i in picked:
            prep.rows.append(general.rows[i])
            prep.ids.append(general.ids[i])
        prep.files.append({**info, "mix_ratio": spec.ratio, "mixed_rows": len(picked)})
        summary.append(
            {
                "file": spec.path,
                "ratio": spec.ratio,
                "available": len(general.rows),
                "rows": len(picked),
                "repeated": len(picked) > len(general.rows),
            }
        )
    for s in summary:
        s["share"] = round(s["rows"] / max(1, len(prep.rows)), 4)
    return [{"domain_rows": domain, "total_rows": len(prep.rows)}, *summary]


def describe(mix: list[dict[str, Any]]) -> str:
    """One line for the plan: ``12 domain + 3 from general.jsonl (0.2, of 40) = 15 rows``."""
    head, files = mix[0], mix[1:]
    parts = [
        f"{f['rows']} from {Path(f['file']).name} (ratio {f['ratio']:g}, of {f['available']}"
        + (", repeated" if f["repeated"] else "")
        + ")"
        for f in files
    ]
    return f"{head['domain_rows']} domain + " + " + ".join(parts) + f" = {head['total_rows']} rows"
