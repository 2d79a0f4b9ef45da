"""Incremental refresh: process only rows not seen before and publish a new dataset version.

The state directory (CURRENT, the lock, one folder per version, the incremental dedup index) is
described in :mod:`curate.pipeline.state`.

A refresh runs in three parts. Rows whose id was seen in any earlier version are skipped. The leading
row- and set-scoped stages of the recipe (dedup against everything seen, decontaminate, filter, score)
run on the new rows only; then the whole-set stages (augment, select, pairs, export) run again on the
pool of all rows that ever passed the first part, which gives the new dataset version. A changelog
compares it with the previous version (added, removed, changed, each with the reason).

Crash safety (see :mod:`curate.pipeline.refresh.commit`): a version folder is written under a
temporary name and renamed when complete; CURRENT is replaced last (the commit). A refresh killed at
any point, SIGKILL included, leaves CURRENT and the version it names untouched; the next refresh first
removes whatever an uncommitted run left behind (version folders above CURRENT, dedup index batches
past the committed count) and then computes exactly what the interrupted run would have: nothing
lost, nothing duplicated.

The package, by phase: :mod:`curate.pipeline.state` (the state directory, its lock, cleanup after an
interrupted refresh), :mod:`.batch` (what is new), :mod:`.stages` (the head on the new rows with the
incremental states, the tail on the pool), :mod:`.changelog`, :mod:`.version` (the version folder),
:mod:`.commit` (the commit and the publication, :mod:`curate.pipeline.publish`), :mod:`.runner` (one
refresh, phase by phase).
"""

from __future__ import annotations

from curate.pipeline import publish  # noqa: F401  (the publication protocol; tests replace its functions)
from curate.pipeline.refresh.batch import ingest_settings  # noqa: F401
from curate.pipeline.refresh.changelog import make_changelog, row_hashes  # noqa: F401
from curate.pipeline.refresh.runner import RefreshResult, refresh  # noqa: F401
from curate.pipeline.refresh.stages import head_signature, split_plan  # noqa: F401
from curate.pipeline.state import (  # noqa: F401  (refresh.py was their home)
    FAULT_ENV,
    FAULT_POINTS,
    Locked,
    StateLock,
    list_versions,
    read_current,
    version_dir,
)

EXIT_LOCKED = 3
