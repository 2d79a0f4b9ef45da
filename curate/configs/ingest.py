"""The ingest stage's settings (:class:`IngestConfig`): how the inputs are read. Light, for `curate
ingest --help` (see :mod:`curate.configs`); the stage is :mod:`curate.io`. Every stage command reads its
inputs with the same options (:func:`curate.commands.common.read_options`, whose help is this)."""

from __future__ import annotations

import codecs
from dataclasses import dataclass, field

from curate.core.coerce import OptionError


@dataclass
class IngestConfig:
    """Options of the ingest stage: the `curate ingest` options, and a recipe's ``ingest:`` keys (the
    defaults of the inputs that do not set their own)."""

    encoding: str | None = field(
        default=None,
        metadata={
            "type": "encoding",
            "metavar": "NAME",
            "help": "Text encoding of the inputs (e.g. gb18030, big5, utf-16), when detection gets it wrong; "
            "default: detected per file (UTF-8/BOM, UTF-16, GB18030, statistical guess).",
        },
    )
    format: str | None = field(
        default=None,
        metadata={
            "metavar": "FORMAT",
            "help": "Override format detection: alpaca, sharegpt, openai, qa, preference, "
            "llamafactory-preference, trl-prompt-completion, trl-preference, kto, hh-rlhf, text, canonical.",
        },
    )
    # FIELD=COLUMN[,COLUMN] items; a recipe may write the mapping (``map: {question: 问题}``)
    map: tuple[str, ...] = field(
        default=(),
        metadata={
            "split": False,  # the commas separate the columns of one field
            "metavar": "FIELD=COLUMN[,COLUMN]",
            "help": "Map an input column to a record field (question, answer, system, chosen, rejected, "
            "label, text, history); several columns are joined with a newline. Repeatable.",
        },
    )
    sheet: str | None = field(
        default=None, metadata={"help": "XLSX: read only this sheet (default: every sheet)."}
    )

    @staticmethod
    def map_items(mapping: dict) -> list[str]:
        """A recipe's ``map: {question: 问题, answer: [a, b]}`` as the command line's items."""
        return [
            f"{key}={value if isinstance(value, str) else ','.join(map(str, value))}"
            for key, value in mapping.items()
        ]

    def __post_init__(self) -> None:
        if isinstance(self.map, str):  # one item is a list of one, never split on commas
            self.map = (self.map,)
        if self.encoding:
            try:
                codecs.lookup(self.encoding)
            except LookupError:
                raise OptionError("encoding", f"unknown encoding {self.encoding!r}") from None
