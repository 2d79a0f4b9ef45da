"""The export stage's settings (:class:`ExportConfig`) and which trainer layouts hold which kinds of
rows: light, for `curate export --help` (its pairing table, see :mod:`curate.configs`); the stage is
:mod:`curate.export`."""

from __future__ import annotations

from dataclasses import dataclass, field

from curate.core import vocab
from curate.core.coerce import OptionError

FORMATS = ("trl", "alpaca", "sharegpt", "openai", "llamafactory")
KINDS = vocab.KINDS
# (format, kind) -> the curate.io.formats name (None: written here; missing: not supported)
CONVERTER = {
    ("trl", "sft"): "openai",
    ("trl", "preference"): "trl-preference",
    ("trl", "kto"): "trl-prompt-completion",
    ("trl", "text"): "text",
    ("alpaca", "sft"): "alpaca",
    ("alpaca", "preference"): "alpaca",
    ("alpaca", "kto"): "alpaca",
    ("alpaca", "text"): "text",
    ("sharegpt", "sft"): "sharegpt",
    ("sharegpt", "preference"): "llamafactory-preference",
    ("sharegpt", "kto"): "sharegpt",
    ("openai", "sft"): "openai",
    ("openai", "preference"): None,
    ("llamafactory", "sft"): "sharegpt",
    ("llamafactory", "preference"): "llamafactory-preference",
    ("llamafactory", "kto"): "sharegpt",
    ("llamafactory", "text"): "text",
}


def formats_for(kind: str) -> list[str]:
    """The --format values whose layout holds rows of ``kind``."""
    return [f for f in FORMATS if (f, kind) in CONVERTER]


def check_pairing(fmt: str, kind: str | None) -> None:
    """An OptionError on ``format`` (a ValueError) when ``fmt`` has no layout for ``kind`` rows: said
    before anything is read or written, instead of an export that drops every row. The caller spells
    the setting (``--format`` on the command line, ``stages[i].export.format`` in a recipe)."""
    if kind is None or kind == "auto" or (fmt, kind) in CONVERTER:
        return
    raise OptionError(
        "format", f"{fmt} cannot hold {kind} rows; formats for {kind} rows: {', '.join(formats_for(kind))}"
    )


def pairing_table() -> str:
    """One line per kind: the formats that hold it (the text `curate export --help` shows)."""
    return "\n".join(f"{kind:<11} {', '.join(formats_for(kind))}" for kind in KINDS)


@dataclass
class ExportConfig:
    # field metadata: the `curate export` options (curate.commands.generated); output is its -o
    format: str = field(default="trl", metadata={"choices": FORMATS, "help": "Trainer layout to write."})
    output: str | None = None
    kind: str = field(
        default="auto",
        metadata={
            "choices": ("auto", *KINDS),
            "help": "Which records to export (auto: the most common kind); a file holds one kind.",
        },
    )
    keep_meta: bool = field(
        default=False,
        metadata={
            "flag": True,
            "help": "Write meta keys back as fields and restore each row's original shape (round trip). "
            "Default: a uniform, trainer-ready schema.",
        },
    )
    name: str | None = field(
        default=None,
        metadata={
            "help": "LLaMA-Factory: dataset name in dataset_info.json (default: the file name without its "
            "extension, e.g. ops.sft for ops.sft.json). An entry of that name for another file is an error."
        },
    )
    dataset_info: str | None = field(
        default=None,
        metadata={
            "path": "file",
            "help": "LLaMA-Factory: the dataset_info.json to update (default: beside the output).",
        },
    )

    def __post_init__(self) -> None:
        self.format = (self.format or "").lower()
        if self.format not in FORMATS:
            raise OptionError("format", f"{self.format!r}: choose one of {', '.join(FORMATS)}")
        if self.kind not in ("auto", *KINDS):
            raise OptionError("kind", f"{self.kind!r}: choose auto or one of {', '.join(KINDS)}")
