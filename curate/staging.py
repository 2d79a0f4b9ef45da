"""Deferred publication of output files (used by ``curate refresh``'s commit protocol).

While a :class:`Staging` is active, every atomic write (:func:`curate.io.atomic_path`) to one of the
paths it claims stops one step short: the complete temporary file stays beside its target and is
recorded instead of being renamed over it, and removals of claimed paths are recorded instead of done.
The refresh names these pending moves in the version it is about to commit and performs them only after
the commit (see :mod:`curate.pipeline.publish`), so a published output never shows a version that
``CURRENT`` does not name. Without an active staging (every other command) writes are unchanged.

This module has no dependencies: the io layer consults it, the pipeline drives it.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path


class Staging:
    def __init__(self, claimed: set[Path] | list[Path]):
        self.claimed = {Path(os.path.abspath(p)) for p in claimed}
        self.moves: dict[Path, Path] = {}  # final -> complete temporary file beside it
        self.removes: set[Path] = set()
        self._lock = threading.Lock()

    def claims(self, path: Path | str) -> bool:
        return Path(os.path.abspath(path)) in self.claimed

    def defer(self, tmp: Path, final: Path | str) -> None:
        final = Path(os.path.abspath(final))
        with self._lock:
            old = self.moves.get(final)
            self.moves[final] = Path(os.path.abspath(tmp))
            self.removes.discard(final)
        if old is not None and old != Path(os.path.abspath(tmp)):
            old.unlink(missing_ok=True)  # written twice in one run (a shared dataset_info.json): last wins

    def remove(self, final: Path | str) -> None:
        final = Path(os.path.abspath(final))
        with self._lock:
            old = self.moves.pop(final, None)
            self.removes.add(final)
        if old is not None:
            old.unlink(missing_ok=True)

    def discard(self) -> None:
        """Drop every pending file (the run failed before its commit)."""
        with self._lock:
            pending, self.moves = list(self.moves.values()), {}
            self.removes = set()
        for tmp in pending:
            tmp.unlink(missing_ok=True)


_active: Staging | None = None
_guard = threading.Lock()


def activate(staging: Staging | None) -> Staging | None:
    """Make ``staging`` the active one (None ends staging); returns the one it replaces. Process-wide
    (not a context variable) because a refresh writes its outputs from worker threads too."""
    global _active
    with _guard:
        previous, _active = _active, staging
    return previous


def claimed(path: Path | str) -> Staging | None:
    """The active staging if it claims ``path`` (the io layer then defers the rename), else None."""
    s = _active
    return s if s is not None and s.claims(path) else None


def read_path(path: Path | str) -> Path:
    """Where the current content of ``path`` is: its pending file when this run already staged one
    (read-modify-write outputs such as a dataset_info.json shared by several exports)."""
    s = claimed(path)
    if s is not None:
        pending = s.moves.get(Path(os.path.abspath(path)))
        if pending is not None:
            return pending
    return Path(path)


def unlink(path: Path | str) -> None:
    """Remove an output file now, or after the commit when a staging claims it."""
    s = claimed(path)
    if s is not None:
        s.remove(path)
    else:
        Path(path).unlink(missing_ok=True)
