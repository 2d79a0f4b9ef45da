"""`--mix FILE:RATIO` on `train sft` / `train pt`: mix general data into the domain data.

The source article's warning: fine-tuning on domain data alone can make the model lose general ability
(catastrophic forgetting). Replaying a share of general data is the usual guard. RATIO is the share of the
*training set* that comes from FILE: with ``D`` domain rows and ratios ``r1..rk`` (sum < 1), the set has
``T = D / (1 - sum r)`` rows and FILE ``i`` contributes ``round(ri * T)`` of them. Rows are drawn without
replacement in an order fixed by ``--seed`` and the file's content (the same command always trains on the
same rows); a file with fewer rows than asked is repeated whole before the remainder is drawn, and the
plan says so. `train eval` then shows what the mix kept (loss per held-out set, general and domain).

The specs are parsed in :mod:`train.specs` (pure Python: ``train.config`` validates them).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from train import data as D
from train.specs import MixError, MixSpec, parse_mix  # noqa: F401  (re-exported)


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
