"""Names shared by the commands and the writers, in a module light enough for `--help` to import."""

from __future__ import annotations

from collections.abc import Iterator, Mapping


class _Suffixes(Mapping):
    """stage name -> the file suffix it writes by default (`curate score data.csv` -> data.scored.jsonl),
    read from the stage registry each time (a stage registered later has its suffix too)."""

    def _table(self) -> dict[str, str]:
        from curate.stages import suffixes

        return suffixes()

    def __getitem__(self, name: str) -> str:
        return self._table()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._table())

    def __len__(self) -> int:
        return len(self._table())


STAGE_SUFFIX: Mapping[str, str] = _Suffixes()
