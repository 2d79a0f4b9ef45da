"""Progress on stderr for every long curate step: a rich bar on a terminal, plain periodic lines in a log.

A log file (cron, Airflow, ``2> run.err``) cannot show a bar, and with ``--json`` the bar would be the
only thing a scheduler sees besides the summary, so when stderr is not a terminal (or ``--json`` is on)
each step writes plain lines instead, at most one every :data:`INTERVAL` seconds::

    score ppl: 0/5,111 rows
    score ppl: 2,300/5,111 rows, 4.2 rows/s, ETA 11 min
    score ppl: 5,111/5,111 rows, 4.3 rows/s, done in 19 min

``TAMIS_PROGRESS_INTERVAL`` (seconds) overrides the interval; ``0`` writes a line on every update.

The contract the stages take as ``progress=`` is unchanged: ``progress(description, total)`` returns a
``tick(k)`` callable (also a context manager, as the score stage uses it). Use :func:`reporter` to get
the right kind for a command.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.progress import Progress as RichProgress

INTERVAL = 15.0  # seconds between two plain lines of one step: a 44-minute run writes ~180 lines


def interval() -> float:
    try:
        return max(0.0, float(os.environ.get("TAMIS_PROGRESS_INTERVAL", INTERVAL)))
    except ValueError:
        return INTERVAL


def stderr_is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def duration(seconds: float) -> str:
    """``42 s``, ``11 min``, ``2 h 05 min``: what a person reading a log wants from an ETA."""
    s = max(0, int(round(seconds)))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{round(s / 60)} min"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def plain_line(description: str, done: int, total: int, elapsed: float, unit: str, final: bool) -> str:
    text = f"{description}: {done:,}/{total:,} {unit}"
    if done and elapsed > 0:
        rate = done / elapsed
        text += f", {rate:,.1f} {unit}/s" if rate < 100 else f", {rate:,.0f} {unit}/s"
        if final:
            text += f", done in {duration(elapsed)}"
        elif total > done:
            text += f", ETA {duration((total - done) / rate)}"
    return text


def note(text: str) -> None:
    """One plain line on stderr (a stage transition in a log)."""
    print(text, file=sys.stderr, flush=True)


class Task:
    """One step's progress: call it with the number of units just done; finished at ``total`` (or on
    ``close()`` / leaving its ``with`` block)."""

    def __init__(self, owner: Progress, description: str, total: int, unit: str):
        self.owner, self.description, self.total, self.unit = owner, description, int(total), unit
        self.done = 0
        self.started = time.monotonic()
        self.last_line = self.started
        self.closed = False
        self._rich_id = None
        if owner.plain:
            note(plain_line(description, 0, self.total, 0.0, unit, False))
        elif owner.enabled:
            self._rich_id = owner._rich_task(description, self.total)

    def __call__(self, n: int = 1) -> None:
        if self.closed:
            return
        self.done += int(n)
        if self._rich_id is not None:
            self.owner._rich_advance(self._rich_id, int(n), self.done)
        elif self.owner.plain:
            now = time.monotonic()
            if self.done < self.total and now - self.last_line >= self.owner.interval:
                self.last_line = now
                note(
                    plain_line(self.description, self.done, self.total, now - self.started, self.unit, False)
                )
        if self.total and self.done >= self.total:
            self.close()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.owner.plain:
            elapsed = time.monotonic() - self.started
            note(plain_line(self.description, self.done, self.total, elapsed, self.unit, True))
        elif self._rich_id is not None:
            self.owner._rich_done(self._rich_id)

    def __enter__(self) -> Task:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class Progress:
    """A progress factory: ``progress(description, total) -> Task``.

    ``plain``: periodic plain lines (None: when stderr is not a terminal); ``enabled=False``: silent.
    On a terminal one rich display holds every running task and stops when the last one finishes.
    """

    def __init__(
        self,
        enabled: bool = True,
        *,
        plain: bool | None = None,
        every: float | None = None,
        transient: bool = True,
    ):
        self.enabled = enabled
        self.plain = enabled and (not stderr_is_terminal() if plain is None else plain)
        self.interval = interval() if every is None else every
        self.transient = transient
        self._rich = None
        self._open: set[int] = set()

    def __call__(self, description: str, total: int, unit: str = "rows") -> Task:
        if not self.enabled:
            return _SILENT
        return Task(self, description, total, unit)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        if self._rich is not None:
            self._rich.stop()
            self._rich = None
            self._open.clear()

    # -- rich (terminal) ----------------------------------------------------------------------------
    def _rich_task(self, description: str, total: int):
        if self._rich is None:
            self._rich = RichProgress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TaskProgressColumn(),
                TextColumn("{task.fields[rate]}"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=self.transient,
            )
            self._rich.start()
        task_id = self._rich.add_task(description, total=total, rate="")
        self._open.add(task_id)
        return task_id

    def _rich_advance(self, task_id, n: int, done: int) -> None:
        if self._rich is None:
            return
        self._rich.advance(task_id, n)
        speed = self._rich.tasks[[t.id for t in self._rich.tasks].index(task_id)].speed
        self._rich.update(task_id, rate=f"{speed:,.1f} rows/s" if speed else "")

    def _rich_done(self, task_id) -> None:
        self._open.discard(task_id)
        if not self._open:
            self.close()


class _Silent(Task):
    def __init__(self):  # noqa: D107 - no owner: every call does nothing
        self.closed = True

    def __call__(self, n: int = 1) -> None:
        return None

    def close(self) -> None:
        return None


_SILENT = _Silent()


def reporter(json_out: bool = False, *, enabled: bool = True) -> Progress:
    """The progress factory for a command: a rich bar on a terminal; plain periodic lines when stderr
    is not a terminal or ``--json`` is on (the JSON summary stays alone on stdout)."""
    return Progress(enabled, plain=True if json_out else None)
