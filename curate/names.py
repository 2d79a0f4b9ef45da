"""Names shared by the commands and the writers, in a module light enough for `--help` to import."""

# the file suffix each stage writes by default: `curate score data.csv` -> data.scored.jsonl
STAGE_SUFFIX = {
    "ingest": "ingested",
    "dedup": "deduped",
    "decontaminate": "decontaminated",
    "filter": "filtered",
    "score": "scored",
    "augment": "augmented",
    "select": "selected",
    "pairs": "paired",
    "export": "exported",
}
