"""`curate`: the data half of tamis. One thin command per stage; heavy imports happen inside commands."""

from __future__ import annotations

import click

from curate import __version__
from curate.lazycli import LazyGroup

# name -> (module:attribute, short help). Each stage owns its command module under curate/commands/.
COMMANDS: dict[str, tuple[str, str]] = {
    "ingest": ("curate.commands.ingest:ingest", "Read raw Q&A in any format into canonical records."),
    "stats": ("curate.commands.stats:stats", "Rows, languages, lengths, turns and sources of a dataset."),
    "dedup": ("curate.commands.dedup:dedup", "Remove exact, near (MinHash LSH) and semantic duplicates."),
    "decontaminate": (
        "curate.commands.dedup:decontaminate",
        "Drop rows that overlap evaluation sets (n-gram overlap).",
    ),
    "filter": ("curate.commands.filter:filter_cmd", "Apply YAML rules: drop, flag, redact, fix."),
    "rules": ("curate.commands.filter:rules", "List, show and lint rule sets."),
    "score": ("curate.commands.score:score", "Score rows: perplexity/IFD, reward model, fastText quality."),
    "quality": ("curate.commands.score:quality", "Train and inspect the fastText quality classifier."),
    "augment": ("curate.commands.augment:augment", "Few-shot, chain-of-thought and rephrased variants."),
    "select": ("curate.commands.select:select", "Pick a diverse, high-quality subset and a held-out split."),
    "pairs": ("curate.commands.pairs:pairs", "Build DPO preference pairs."),
    "export": ("curate.commands.export:export", "Write a dataset for a trainer (trl, alpaca, sharegpt...)."),
    "run": ("curate.commands.pipeline:run", "Run a recipe: every stage, cached, with a manifest."),
    "init": ("curate.commands.pipeline:init", "Write a commented starter recipe."),
    "runs": ("curate.commands.pipeline:runs", "List past runs of a recipe."),
    "refresh": ("curate.commands.pipeline:refresh", "Process only new rows and write a new dataset version."),
    "report": ("curate.commands.report:report", "Write a self-contained HTML report of a run or dataset."),
}


@click.group(cls=LazyGroup, lazy_commands=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="curate")
def main() -> None:
    """Curate domain Q&A into a clean, scored fine-tuning set.

    Every command reads raw input of any supported format (JSONL, JSON, CSV, TSV, XLSX, Parquet,
    .gz/.zst) and writes next to the input unless -o is given. Exit codes: 0 ok, 1 finished but some
    input rows were rejected, 2 usage error or unreadable input.
    """
