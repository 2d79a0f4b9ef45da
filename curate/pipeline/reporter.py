"""What `curate run` prints: one line per stage on stderr, plain lines in a log or with --json."""

from __future__ import annotations

import sys
from typing import Any

from rich.console import Console

from curate.progress import note, reporter, stderr_is_terminal


class Reporter:
    """One line per stage on stderr (rich), quiet when asked."""

    def __init__(self, quiet: bool = False):
        self.quiet = quiet
        self.console = None
        # a log (stderr not a terminal) or --json: plain lines for every stage start and end, and
        # periodic progress lines (curate.progress), so a 44-minute run is never silent
        self.plain = quiet or not stderr_is_terminal()
        if not quiet:
            self.console = Console(stderr=True, width=None if sys.stderr.isatty() else 120)

    def start(self, step_id: str, position: int, count: int, rows: int | None) -> None:
        if self.plain:
            what = f" on {rows:,} rows" if rows is not None else ""
            note(f"run: stage {position}/{count} {step_id} started{what}")

    def stage(self, step_id: str, acct: dict[str, Any], cached: bool, seconds: float) -> None:
        if self.quiet:
            n_in, kept = acct.get("in", 0), acct.get("kept", 0)
            how = "cached" if cached else f"done in {seconds:.1f} s"
            note(f"run: {step_id} {how}: {n_in:,} -> {kept:,} rows")
        if self.console is None:
            return
        n_in, kept = acct.get("in", 0), acct.get("kept", 0)
        extra = []
        if acct.get("dropped"):
            extra.append(f"-{acct['dropped']:,} dropped")
        if acct.get("rejected"):
            extra.append(f"{acct['rejected']:,} rejected")
        if acct.get("added"):
            extra.append(f"+{acct['added']:,} added")
        tag = "[dim]cached[/]" if cached else "[green]ran[/]   "
        self.console.print(
            f"  {tag} [bold]{step_id:<14}[/] {n_in:>9,} → {kept:>9,}  {', '.join(extra):<30} {seconds:7.2f}s",
            highlight=False,
        )

    def note(self, text: str) -> None:
        if self.console is not None:
            self.console.print(text, highlight=False)

    def progress_factory(self):
        return reporter(self.quiet)
