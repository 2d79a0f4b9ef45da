"""The published outputs of ``curate refresh`` as part of its commit protocol.

A refresh publishes files outside its state directory: ``outputs.data``, ``outputs.rejects``,
``outputs.report``, ``outputs.manifest`` and every export's files (train, eval, dataset_info.json).
They must never show a version that ``CURRENT`` does not name, and never stay behind it:

1. while the whole-set stages run and the version is written, every write to one of these paths is
   *staged* (:mod:`curate.staging`): the complete file waits beside its target under a temporary name;
2. before the commit, the pending moves are recorded in the new version's folder (``publish.json``);
3. after the commit they are renamed into place (each rename atomic) and ``<state>/PUBLISHED`` names
   the version; a failure there leaves the committed version standing and is reported as a warning;
4. every refresh starts (under the lock) by finishing the publication of ``CURRENT`` when
   ``PUBLISHED`` is behind it, and removes temporary files that no committed version names (left by a
   run killed before its commit, or by an older tamis).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from curate.io import atomic_write_text
from curate.pipeline.outputguard import recipe_writes
from curate.staging import Staging

JOURNAL = "publish.json"
PUBLISHED = "PUBLISHED"


def published_paths(recipe: Any, planned: list[Any]) -> list[Path]:
    """Every file a refresh of ``recipe`` publishes (stage caches are not published outputs)."""
    out: list[Path] = []
    for role, p in recipe_writes(recipe, planned).items():
        a = Path(os.path.abspath(p))
        if role != "outputs.dropped" and a not in out:  # refresh keeps dropped rows in its versions
            out.append(a)
    return out


def write_journal(version_dir: Path, staging: Staging) -> Path:
    """Record the pending moves in the (not yet committed) version folder."""
    journal = {
        "moves": [[str(tmp), str(final)] for final, tmp in sorted(staging.moves.items())],
        "removes": sorted(str(p) for p in staging.removes),
    }
    path = version_dir / JOURNAL
    atomic_write_text(path, json.dumps(journal, ensure_ascii=False, indent=1))
    return path


def read_published(state: Path) -> int | None:
    p = state / PUBLISHED
    try:
        return int(json.loads(p.read_text(encoding="utf-8"))["version"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


@dataclass
class Publication:
    version: int
    done: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def complete(state: Path, version: int, version_dir: Path) -> Publication:
    """Perform the moves and removals the committed ``version`` recorded, then name it in PUBLISHED.
    Idempotent: a move whose temporary file is gone was done before (or its file was lost: said)."""
    pub = Publication(version)
    jpath = version_dir / JOURNAL
    if jpath.is_file():
        try:
            journal = json.loads(jpath.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            pub.warnings.append(f"{jpath}: cannot read the list of outputs to publish ({exc})")
            return pub
        for tmp, final in journal.get("moves", []):
            try:
                os.replace(tmp, final)
                pub.done.append(final)
            except FileNotFoundError:
                if not Path(final).exists():
                    pub.warnings.append(f"{final}: its staged file {tmp} is gone; not published")
            except OSError as exc:
                pub.warnings.append(f"{final}: cannot publish it: {exc.strerror or exc}")
        for final in journal.get("removes", []):
            try:
                Path(final).unlink(missing_ok=True)
            except OSError as exc:
                pub.warnings.append(f"{final}: cannot remove it: {exc.strerror or exc}")
    if not pub.warnings:
        try:
            atomic_write_text(state / PUBLISHED, json.dumps({"version": version}))
        except OSError as exc:
            pub.warnings.append(f"{state / PUBLISHED}: {exc.strerror or exc} (the next refresh retries)")
    return pub


def stale_temp_files(paths: list[Path], keep: set[Path] = frozenset()) -> list[Path]:
    """Temporary files of atomic writes to ``paths`` (``.<name>.*.tmp`` beside each) not in ``keep``."""
    found = []
    for p in paths:
        try:
            cands = list(p.parent.glob(f".{p.name}.*.tmp"))
        except OSError:
            continue
        found += [c for c in cands if Path(os.path.abspath(c)) not in keep]
    return found


def recover(state: Path, current: int, version_dir: Path, outputs: list[Path]) -> Publication | None:
    """At the start of a refresh (under the lock): finish publishing ``CURRENT`` when PUBLISHED is
    behind it, then remove the temporary files of uncommitted runs. Returns what it did (None: nothing
    was pending)."""
    pub = None
    published = read_published(state)
    if current and (published is None or published < current):
        pub = complete(state, current, version_dir)
    keep: set[Path] = set()
    if pub is not None and pub.warnings and (version_dir / JOURNAL).is_file():
        # still pending (a rename failed): its files stay for the next try
        try:
            keep = {Path(t) for t, _ in json.loads((version_dir / JOURNAL).read_text("utf-8"))["moves"]}
        except (OSError, ValueError, KeyError):
            keep = set()
    removed = []
    for tmp in stale_temp_files(outputs, keep):
        try:
            tmp.unlink()
            removed.append(str(tmp))
        except OSError:
            pass
    if removed:
        pub = pub or Publication(current)
        pub.done += [f"removed {r}" for r in removed]
    return pub
