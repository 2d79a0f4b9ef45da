"""Demo models decide nothing silently.

The models in ``samples/models`` (a 705k-parameter LM, a tiny reward model, a fastText classifier
trained on the ops samples) exist so that the samples and the tests run offline. On any other data
their scores are not evidence: the demo LM's IFD is at chance and the quality model knows only the
ops samples. So:

* scoring data that is **not a shipped sample** with a demo model prints a warning naming the model and
  the option that passes a real one, marks the model ``"demo": true`` in ``stats["score_models"]`` (and
  so in ``<out>.models.json`` and the run manifest), and adds the column ``demo_scores`` (the scorers
  whose values came from a demo model, e.g. ``["ppl", "quality"]``) to every row;
* ``curate select`` reads that column: its paper-default IFD cut and its default quality ranking skip
  demo scores unless the user asks for them (``--allow-demo-scores``, or naming the column explicitly
  with ``--where``/``--min``/``--by``);
* the report shows which scores are demo scores.

**What counts as a shipped sample.** A frame is the shipped sample when every row's ``source.file``
resolves inside the ``samples/`` directory of the source checkout, or when at least
:data:`SAMPLE_ID_SHARE` of its row ids are ids of the shipped sample rows (row ids hash the normalised
content, so a copy of ``samples/ops_qa.jsonl`` elsewhere, e.g. in a test's temporary directory,
counts too). The ids are read once per process from the sample data files.
"""

from __future__ import annotations

import json
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any

import polars as pl

from curate.io import load
from curate.score.common import REPO_ROOT, embedded_models_dir

DEMO_COLUMN = "demo_scores"
SAMPLE_ID_SHARE = 0.9
SAMPLE_FILES = (
    "ops_qa.jsonl",
    "ops_qa.gbk.csv",
    "ops_qa.xlsx",
    "ops_multiturn.sharegpt.jsonl",
    "ops_prefs.jsonl",
    "ops_docs.txt",
)
# the score columns each scorer writes (select and the report map a column back to its scorer)
SCORER_OF_COLUMN = {
    "ppl": "ppl",
    "ppl_tokens": "ppl",
    "ppl_answer": "ppl",
    "ifd": "ppl",
    "reward": "reward",
    "reward_chosen": "reward",
    "reward_rejected": "reward",
    "reward_margin": "reward",
    "quality": "quality",
}
OPTION_OF_SCORER = {"ppl": "--lm (recipe: lm:)", "reward": "--reward-model", "quality": "--quality-model"}
WHAT_OF_SCORER = {
    "ppl": "the demo LM (705k parameters; its IFD is at chance)",
    "reward": "the demo reward model (trained on the ops samples)",
    "quality": "the demo fastText quality model (trained on the ops samples)",
}


def samples_dir() -> Path:
    return REPO_ROOT / "samples"


def is_demo_model(path: str | Path | None) -> bool:
    """Whether a model path is one of the shipped demo models (``None`` means the default: a demo)."""
    if path is None:
        return True
    try:
        p = Path(path).expanduser().resolve()
        demo = embedded_models_dir().resolve()
    except OSError:
        return False
    return p == demo or demo in p.parents


@lru_cache(maxsize=1)
def sample_ids() -> frozenset[str]:
    """Row ids of the shipped sample data (empty when the samples are not there, e.g. a wheel install)."""
    ids: set[str] = set()
    for name in SAMPLE_FILES:
        path = samples_dir() / name
        if not path.is_file():
            continue
        try:
            ids.update(load([path]).frame["id"].to_list())
        except Exception:  # noqa: BLE001 - an unreadable sample only makes the check stricter
            continue
    return frozenset(ids)


def is_shipped_sample(frame: pl.DataFrame) -> bool:
    """Whether ``frame`` holds the shipped sample rows (see the module docstring for the rule)."""
    if frame.height == 0:
        return True
    if "source" in frame.columns and isinstance(frame["source"].dtype, pl.Struct):
        root = samples_dir().resolve()
        files = frame["source"].struct.field("file").unique().to_list()
        try:
            if files and all(f and root in Path(f).resolve().parents for f in files):
                return True
        except OSError:
            pass
    if "id" not in frame.columns:
        return False
    known = sample_ids()
    if not known:
        return False
    ids = frame["id"].to_list()
    return sum(i in known for i in ids) >= SAMPLE_ID_SHARE * len(ids)


def model_path(scorer: Any) -> str | Path | None:
    """The model file or directory a scorer loaded."""
    return getattr(scorer, "model_dir", None) or getattr(scorer, "path", None)


def demo_scorers(frame: pl.DataFrame, scorers: list[Any]) -> list[str]:
    """Names of the scorers that use a demo model on data that is not a shipped sample."""
    demo = [s.name for s in scorers if is_demo_model(model_path(s))]
    if not demo or is_shipped_sample(frame):
        return []
    return demo


def warning(name: str, model: str) -> str:
    return (
        f"warning: {name} scores come from {WHAT_OF_SCORER.get(name, 'a demo model')} at {model}, "
        f"meant for the shipped samples and the tests only; on your data they are not evidence. "
        f"Pass a real model with {OPTION_OF_SCORER.get(name, 'the model option')} (a local directory "
        f"or a hub id in the local cache). `curate select` ignores demo scores unless --allow-demo-scores."
    )


_WARNED: set[tuple[str, str]] = set()


def warn(name: str, model: str) -> None:
    """Print the demo warning on stderr, once per (scorer, model) per process."""
    if (name, model) in _WARNED:
        return
    _WARNED.add((name, model))
    print(warning(name, model), file=sys.stderr, flush=True)


def mark(frame: pl.DataFrame, names: list[str]) -> pl.DataFrame:
    """Add (or extend) the ``demo_scores`` column with ``names`` on every row."""
    if not names:
        return frame
    old = frame[DEMO_COLUMN].to_list() if DEMO_COLUMN in frame.columns else [None] * frame.height
    new = [sorted(set(o or []) | set(names)) for o in old]
    return frame.with_columns(pl.Series(DEMO_COLUMN, new, dtype=pl.List(pl.Utf8)))


def demo_columns(frame: pl.DataFrame) -> set[str]:
    """Score columns of ``frame`` whose values came from a demo model (per the ``demo_scores`` column)."""
    if DEMO_COLUMN not in frame.columns or frame.height == 0:
        return set()
    col = frame[DEMO_COLUMN]
    names: set[str] = set()
    if col.dtype == pl.List(pl.Utf8):
        for v in col.explode().drop_nulls().unique().to_list():
            names.add(v)
    else:  # a CSV round trip writes the list as JSON text
        for v in col.drop_nulls().unique().to_list():
            try:
                x = json.loads(v)
            except (TypeError, json.JSONDecodeError):
                x = [v]
            names.update(str(n) for n in (x if isinstance(x, list) else [x]))
    return {c for c, s in SCORER_OF_COLUMN.items() if s in names}
