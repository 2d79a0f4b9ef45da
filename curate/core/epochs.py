"""Epochs per training stage from the dataset size: one table for both halves. `train plan` plans
with it and `curate export` prints the same hint, so curate never imports train.

Sources: the SFT table comes from the project's source article ("ChatGPT 是如何炼成的", SFT best
practice: 100 rows -> 15 epochs, 1,000 -> 10, 10,000 -> 2, and 100,000 rows "2-3 epochs"); preference
stages (DPO, KTO, reward models) get 1-3 epochs and continued pretraining 1-2.
"""

from __future__ import annotations

import math

# (rows, epochs): the article's table; 100k rows: "2-3 epochs" -> 2 (the lower end keeps the curve monotone).
# It is an SFT table: many epochs over a few hundred Q&A rows teach a format.
EPOCH_TABLE: tuple[tuple[int, float], ...] = ((100, 15.0), (1_000, 10.0), (10_000, 2.0), (100_000, 2.0))
# Preference tuning (DPO, KTO, reward models) over-optimises within a few epochs (the implicit reward
# margin keeps growing while held-out preference accuracy falls; TRL, Zephyr and the RM papers use 1-3):
# 3 epochs up to 1k pairs, 2 at 10k, 1 from 100k.
PREFERENCE_EPOCH_TABLE: tuple[tuple[int, float], ...] = ((1_000, 3.0), (10_000, 2.0), (100_000, 1.0))
# Continued pretraining sees raw text about once (repeating it mostly memorises): 2 epochs for a small
# domain corpus (up to 1k documents), 1 from 10k.
PRETRAIN_EPOCH_TABLE: tuple[tuple[int, float], ...] = ((1_000, 2.0), (10_000, 1.0))
# Online RL (RLOO/GRPO) samples fresh completions every step, so a pass over the prompts is not a pass over
# fixed targets: 2 passes over a small prompt set (up to 1k), 1 from 10k; the reward curve and the KL decide.
ONLINE_EPOCH_TABLE: tuple[tuple[int, float], ...] = ((1_000, 2.0), (10_000, 1.0))
EPOCH_TABLES: dict[str, tuple[tuple[int, float], ...]] = {
    "sft": EPOCH_TABLE,
    "dpo": PREFERENCE_EPOCH_TABLE,
    "kto": PREFERENCE_EPOCH_TABLE,
    "rm": PREFERENCE_EPOCH_TABLE,
    "pt": PRETRAIN_EPOCH_TABLE,
    "orpo": PREFERENCE_EPOCH_TABLE,
    "rloo": ONLINE_EPOCH_TABLE,
    "grpo": ONLINE_EPOCH_TABLE,
}
EPOCH_REASONS: dict[str, str] = {
    "sft": "article's SFT table (100 rows: 15, 1k: 10, 10k: 2; interpolated)",
    "dpo": "preference tuning: 1-3 epochs (3 up to 1k pairs, 2 at 10k, 1 from 100k); more over-optimises",
    "kto": "preference tuning: 1-3 epochs (3 up to 1k rows, 2 at 10k, 1 from 100k); more over-optimises",
    "rm": "reward model: 1-3 epochs (3 up to 1k pairs, 2 at 10k, 1 from 100k); more overfits the pairs",
    "pt": "continued pretraining: 1-2 passes over the text (2 up to 1k docs, 1 from 10k)",
    "orpo": "ORPO (SFT + odds-ratio preference in one loss): 1-3 epochs (3 up to 1k pairs, 2 at 10k, 1 from 100k)",
    "rloo": "online RL: 1-2 passes over the prompts (2 up to 1k, 1 from 10k), fresh completions every step",
    "grpo": "online RL: 1-2 passes over the prompts (2 up to 1k, 1 from 10k), fresh completions every step",
}


def planned_epochs(rows: int, stage: str = "sft") -> float:
    """Epochs for a dataset of ``rows`` rows of ``stage``: log-linear interpolation of the stage's table
    (:data:`EPOCH_TABLES`), clamped at both ends. SFT uses the article's table (fewer than 100 rows: 15;
    more than 100k: 2); preference stages 3 -> 1, continued pretraining 2 -> 1."""
    table = EPOCH_TABLES[stage]
    if rows <= table[0][0]:
        return table[0][1]
    for (n0, e0), (n1, e1) in zip(table, table[1:], strict=False):
        if rows <= n1:
            t = (math.log10(rows) - math.log10(n0)) / (math.log10(n1) - math.log10(n0))
            return round(e0 + t * (e1 - e0), 1)
    return table[-1][1]
