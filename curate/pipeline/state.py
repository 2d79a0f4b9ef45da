"""The state directory of `curate refresh`: its layout, its lock, the committed version (CURRENT), the
version folders, and the cleanup after a refresh that was interrupted before its commit. Read by
`curate refresh`, `curate report` and `curate runs`.

State directory::

    <state>/CURRENT                    the committed version: {"version": N, ...} (replaced atomically)
    <state>/.lock                      flock: one refresh at a time (a second one exits with code 3)
    <state>/versions/v000001/          one folder per version, complete before it is named:
        delta.parquet                  new rows that passed the incremental stages in this version
        dropped.parquet                new rows those stages dropped (stage, reason, detail)
        rejects.parquet                input rows that could not be read
        data.parquet                   the dataset of this version (after select/augment/pairs/export)
        tail_dropped.parquet           rows the whole-set stages left out of this version
        changelog.json, manifest.json
    <state>/index/<gen>/<dedup-step>/  the incremental dedup index (signatures of every row seen);
                                       a new generation <gen> is started by --rebuild
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import time
from pathlib import Path
from typing import Any

from curate.pipeline.history import now_iso

# tests: "kill:<point>" makes the process SIGKILL itself at that point, "sleep:<point>:<seconds>" pauses
FAULT_ENV = "TAMIS_REFRESH_FAULT"
FAULT_POINTS = (
    "after-lock",
    "after-ingest",
    "after-head",
    "after-tail",
    "before-version-rename",
    "after-version-rename",
    "after-index",
    "before-commit",
    "after-commit",
    "after-publish",
)


class Locked(RuntimeError):
    """Another refresh holds the state's lock."""


def fault(point: str) -> None:
    """Test hook (TAMIS_REFRESH_FAULT): SIGKILL this process, no cleanup, or pause, at ``point``."""
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return
    parts = spec.split(":")
    if len(parts) >= 2 and parts[1] == point:
        if parts[0] == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        elif parts[0] == "sleep":
            time.sleep(float(parts[2]) if len(parts) > 2 else 5.0)


class StateLock:
    def __init__(self, state_dir: Path):
        self.path = state_dir / ".lock"
        self.fd: int | None = None

    def __enter__(self) -> StateLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                holder = os.read(fd, 200).decode("utf-8", "replace").strip()
            except OSError:
                holder = ""
            os.close(fd)
            raise Locked(
                f"another refresh of {self.path.parent} is running ({holder or 'holder unknown'}); "
                f"this one exits without changing anything"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} since {now_iso()}".encode())
        self.fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


def vname(n: int) -> str:
    return f"v{n:06d}"


def read_current(state_dir: Path) -> dict[str, Any] | None:
    p = state_dir / "CURRENT"
    if not p.is_file():
        return None
    return json.loads(p.read_text(encoding="utf-8"))


def version_dir(state_dir: Path, n: int) -> Path:
    return state_dir / "versions" / vname(n)


def list_versions(state_dir: Path, upto: int | None = None) -> list[dict[str, Any]]:
    """The changelogs of the committed versions (or of versions 1..``upto``)."""
    cur = read_current(state_dir) if upto is None else {"version": upto}
    if cur is None:
        return []
    out = []
    for n in range(1, cur["version"] + 1):
        p = version_dir(state_dir, n) / "changelog.json"
        if p.is_file():
            out.append(json.loads(p.read_text(encoding="utf-8")))
    return out


def cleanup(state_dir: Path, current: int, gen: str) -> list[str]:
    """Remove what an interrupted refresh left behind: version folders it did not commit, index
    generations other than the committed one (the batches it added to the committed generation are
    rolled back by each incremental state, :func:`curate.pipeline.refresh.stages.roll_back`). Returns
    what was removed (for the log)."""
    removed = []
    vroot = state_dir / "versions"
    if vroot.is_dir():
        for d in vroot.iterdir():
            if d.name.startswith(".tmp-") or (
                d.name.startswith("v") and d.name[1:].isdigit() and int(d.name[1:]) > current
            ):
                shutil.rmtree(d, ignore_errors=True)
                removed.append(str(d))
    iroot = state_dir / "index"
    if iroot.is_dir():
        for g in iroot.iterdir():
            if g.name != gen:  # an older generation (after a committed --rebuild) or an uncommitted new one
                shutil.rmtree(g, ignore_errors=True)
                removed.append(str(g))
    return removed
